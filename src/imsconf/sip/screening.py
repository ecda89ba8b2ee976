"""What a UA core answers before any application sees a request (RFC 3261 §8.2, §16.3 item 3).

Pure functions: a validated request and the endpoint's capabilities in, ``None`` (go on) or the
rejection to send out.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import SipParseError
from .message import Request, Response
from .util import make_response

KNOWN_METHODS = frozenset(
    ["INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "PRACK", "SUBSCRIBE", "NOTIFY", "PUBLISH",
     "INFO", "REFER", "MESSAGE", "UPDATE"]
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What this endpoint implements; advertised in Allow / Supported / Accept and enforced here."""

    allow: tuple[str, ...] = ("INVITE", "ACK", "BYE", "CANCEL", "OPTIONS")
    supported: tuple[str, ...] = ()
    accept: tuple[str, ...] = ("application/sdp",)
    accept_encoding: tuple[str, ...] = ("identity",)
    user_agent: str = "imsconf"

    def decorate(self, resp: Response) -> Response:
        """Add Allow, Accept, Supported (for 200 OPTIONS, 405, 415 and the like)."""
        resp.headers.set("Allow", ", ".join(self.allow))
        resp.headers.set("Accept", ", ".join(self.accept))
        resp.headers.set("Accept-Encoding", ", ".join(self.accept_encoding))
        if self.supported:
            resp.headers.set("Supported", ", ".join(self.supported))
        return resp


def screen_request(req: Request, caps: Capabilities) -> Response | None:
    """Return the rejection the core must send for *req*, or None when the application may see it.

    ACK never gets a response; the caller must not call this for ACK.
    """
    # §8.2.1 method inspection
    if req.method not in caps.allow:
        if req.method in KNOWN_METHODS:
            return caps.decorate(make_response(req, 405, "Method Not Allowed"))
        resp = make_response(req, 501, "Not Implemented")
        resp.headers.set("Allow", ", ".join(caps.allow))
        return resp
    # Max-Forwards 0 (§16.3 item 3, RFC 4475 §3.3.11): OPTIONS addressed to us is still answered
    mf = req.headers.get("Max-Forwards")
    if mf is not None and int(mf) == 0 and req.method != "OPTIONS":
        return make_response(req, 483, "Too Many Hops")
    # Request-URI scheme (§8.2.2.1, RFC 4475 §3.3.2)
    try:
        uri = req.request_uri
    except SipParseError:
        return make_response(req, 400, "Bad Request-URI")
    if uri.scheme not in ("sip", "sips"):
        resp = make_response(req, 416, "Unsupported URI Scheme")
        return resp
    # §8.2.2.3 Require: every option-tag we do not support is listed in Unsupported
    unsupported = [tag for tag in req.headers.tokens("Require") if tag not in caps.supported]
    if unsupported and req.method != "CANCEL":
        resp = make_response(req, 420, "Bad Extension")
        resp.headers.set("Unsupported", ", ".join(unsupported))
        return resp
    # §8.2.3 content processing
    if req.body:
        ctype = (req.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if not ctype:
            return make_response(req, 400, "Body without Content-Type")
        accepted = [a.lower() for a in caps.accept]
        if ctype not in accepted and not (ctype.startswith("multipart/") and "multipart/mixed" in accepted):
            return caps.decorate(make_response(req, 415, "Unsupported Media Type"))
        encodings = [e for e in req.headers.tokens("Content-Encoding") if e not in caps.accept_encoding]
        if encodings:
            return caps.decorate(make_response(req, 415, "Unsupported Content-Encoding"))
    return None


def options_response(req: Request, caps: Capabilities) -> Response:
    """200 OK to OPTIONS with Allow, Accept, Supported (RFC 3261 §11.2)."""
    return caps.decorate(make_response(req, 200, "OK"))
