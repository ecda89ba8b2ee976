"""Helpers shared by the transaction and dialog layers.

Identifiers come from :mod:`secrets` (RFC 3261 §8.1.1.4, §8.1.1.7, §19.3 want them globally unique and
unguessable).  Responses are built from requests per §8.2.6, CANCEL per §9.1, the ACK for a non-2xx per
§17.1.1.3.  The Via helpers implement §18.2.1/§18.2.2 with RFC 3581 (rport).
"""

from __future__ import annotations

import ipaddress
import secrets

from .errors import LocalProtocolError
from .events import RELIABLE_TRANSPORTS, Address
from .headers import CSeq, Headers, Via, canonical_name
from .message import Request, Response
from .uri import NameAddr

MAGIC_COOKIE = "z9hG4bK"

REASON_PHRASES: dict[int, str] = {
    100: "Trying",
    180: "Ringing",
    181: "Call Is Being Forwarded",
    182: "Queued",
    183: "Session Progress",
    199: "Early Dialog Terminated",
    200: "OK",
    202: "Accepted",
    204: "No Notification",
    300: "Multiple Choices",
    301: "Moved Permanently",
    302: "Moved Temporarily",
    305: "Use Proxy",
    380: "Alternative Service",
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    410: "Gone",
    412: "Conditional Request Failed",
    413: "Request Entity Too Large",
    414: "Request-URI Too Long",
    415: "Unsupported Media Type",
    416: "Unsupported URI Scheme",
    420: "Bad Extension",
    421: "Extension Required",
    422: "Session Interval Too Small",
    423: "Interval Too Brief",
    429: "Provide Referrer Identity",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    483: "Too Many Hops",
    484: "Address Incomplete",
    485: "Ambiguous",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    489: "Bad Event",
    491: "Request Pending",
    493: "Undecipherable",
    494: "Security Agreement Required",
    500: "Server Internal Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Server Time-out",
    505: "Version Not Supported",
    513: "Message Too Large",
    580: "Precondition Failure",
    600: "Busy Everywhere",
    603: "Decline",
    604: "Does Not Exist Anywhere",
    606: "Not Acceptable",
}


def reason_phrase(status: int) -> str:
    return REASON_PHRASES.get(status) or REASON_PHRASES.get(status // 100 * 100, "Unknown")


def header_safe_text(text: str, limit: int = 80, *, replacement: str = "?", quoted: bool = False) -> str:
    """``text`` made safe for a reason phrase or a header value: only printable US-ASCII is kept (every
    other character becomes ``replacement``; ``""`` drops it), then cut to ``limit`` characters.

    With ``quoted`` the result also goes inside a quoted-string (a Warning's warn-text, RFC 3261 §25.1),
    so ``"`` and ``\\`` are treated as unsafe too.  The text often comes from the peer (a parse error
    naming its bytes, an SDP attribute), so it must never carry CR/LF into the message we send.
    """
    unsafe = '"\\' if quoted else ""
    return "".join(c if 0x20 <= ord(c) < 0x7F and c not in unsafe else replacement for c in text)[:limit]


# ---- identifiers ----------------------------------------------------------------------------------


def new_branch() -> str:
    """An RFC 3261 branch: the magic cookie plus 128 random bits."""
    return MAGIC_COOKIE + secrets.token_hex(16)


def new_tag() -> str:
    """A From/To tag with 64 random bits (§19.3 asks for at least 32)."""
    return secrets.token_hex(8)


def new_call_id(host: str | None = None) -> str:
    """A Call-ID with 128 random bits, optionally ``@host``."""
    token = secrets.token_hex(16)
    return f"{token}@{host}" if host else token


def new_cseq() -> int:
    """An initial CSeq number: random, well below 2**31 so that a long dialog cannot overflow (§8.1.1.5)."""
    return secrets.randbelow(2**16) + 1


def is_reliable(transport: str) -> bool:
    return transport.upper() in RELIABLE_TRANSPORTS


def default_port(transport: str) -> int:
    """5061 for TLS-based transports, 5060 otherwise (RFC 3261 §18.2.2; WS/WSS ports are not implied)."""
    return 5061 if transport.upper() in ("TLS", "TLS-SCTP", "WSS") else 5060


def new_via(transport: str, host: str, port: int | None = None, *, branch: str | None = None) -> str:
    """A Via value for a request we send, with a fresh branch and an empty ``rport`` (RFC 3581 §3)."""
    via = Via(transport.upper(), host, port, {"branch": branch or new_branch(), "rport": None})
    return str(via)


# ---- building messages ----------------------------------------------------------------------------


def make_response(
    req: Request,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    headers: Headers | None = None,
    body: bytes = b"",
) -> Response:
    """A response to *req* per RFC 3261 §8.2.6: Via (all, in order), From, To, Call-ID and CSeq copied.

    *to_tag* is added to To unless the request's To already has a tag (in-dialog requests).  A 100 also
    copies Timestamp (§8.2.6.1).  A 101-299 copies every Record-Route, in order (§12.1.1: a response that
    forms a dialog carries the proxies' route set back to the caller; a proxy record-routes only requests
    that form dialogs, so other responses have none to copy).  Extra *headers* are appended after the
    copied ones.
    """
    if not 100 <= status <= 699:
        raise LocalProtocolError(f"status {status} out of range")
    if req.method == "ACK":
        raise LocalProtocolError("an ACK is never answered")
    if status == 100 and to_tag is not None:
        raise LocalProtocolError("a 100 Trying carries no To tag (RFC 3261 §8.2.6.2)")
    # one pass over the request's headers (stored under canonical names): every Via, the first of the others
    vias: list[tuple[str, str]] = []
    routes: list[tuple[str, str]] = []
    first: dict[str, str] = {}
    for n, v in req.headers.items:
        if n == "Via":
            vias.append((n, v))
        elif n == "Record-Route":
            routes.append((n, v))
        elif n in _ECHOED and n not in first:
            first[n] = v
    items = vias
    if routes and 101 <= status <= 299:
        items.extend(routes)
    for name in ("From", "To", "Call-ID", "CSeq"):
        value = first.get(name)
        if value is None:
            raise LocalProtocolError(f"cannot answer a request without {name}")
        if name == "To" and to_tag is not None:
            to = NameAddr.parse(value)
            if to.tag is None:
                value = str(to.with_tag(to_tag))
        items.append((name, value))
    if status == 100:
        stamp = first.get("Timestamp")
        if stamp is not None:
            items.append(("Timestamp", stamp))
    if headers is not None:
        for name, value in headers:
            items.append((canonical_name(name), value))
    return Response(status, reason if reason is not None else reason_phrase(status), Headers(items), body)


_ECHOED = frozenset(["From", "To", "Call-ID", "CSeq", "Timestamp"])


def make_cancel(invite: Request) -> Request:
    """CANCEL for a pending INVITE we sent (RFC 3261 §9.1): same Request-URI, Call-ID, From, To, CSeq number,
    Route and a single Via equal to the INVITE's top Via (so the same branch)."""
    if invite.method != "INVITE":
        raise LocalProtocolError("only an INVITE can be cancelled by a UA")
    return _echo_request(invite, "CANCEL", to=invite.headers.get("To"))


def make_ack_for_non2xx(invite: Request, response: Response) -> Request:
    """ACK for a 300-699 answer to *invite*, built by the INVITE client transaction (RFC 3261 §17.1.1.3)."""
    if not 300 <= response.status <= 699:
        raise LocalProtocolError("the transaction ACKs only 300-699 responses")
    return _echo_request(invite, "ACK", to=response.headers.get("To"))


def _echo_request(invite: Request, method: str, to: str | None) -> Request:
    h = Headers()
    h.add("Via", invite.headers.get_all("Via")[0])
    for name in ("Max-Forwards", "From"):
        value = invite.headers.get(name)
        if value is not None:
            h.add(name, value)
    if to is None:
        raise LocalProtocolError("no To header to copy")
    h.add("To", to)
    h.add("Call-ID", invite.call_id)
    h.add("CSeq", str(CSeq(invite.cseq.number, method)))
    for route in invite.headers.get_all("Route"):
        h.add("Route", route)
    if h.get("Max-Forwards") is None:
        h.add("Max-Forwards", "70")
    return Request(method, invite.uri, h)


# ---- Via: received / rport (RFC 3261 §18.2.1, §18.2.2, RFC 3581) -----------------------------------


def _bare_host(host: str) -> str:
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def _same_host(a: str, b: str) -> bool:
    a, b = _bare_host(a).lower(), _bare_host(b).lower()
    if a == b:
        return True
    try:
        return ipaddress.ip_address(a) == ipaddress.ip_address(b)
    except ValueError:
        return False


def stamp_received(req: Request, source_host: str, source_port: int) -> Request:
    """Return *req* with its top Via stamped as a server does on receipt.

    ``received=<source>`` is added when the sent-by host differs from the source address, or whenever the
    Via carries an empty ``rport`` (RFC 3581 §4, "even if it is identical"); an empty ``rport`` is filled
    with the source port.  The request is copied, never changed in place.
    """
    top = req.headers.get("Via")
    if top is None:
        return req
    via = Via.parse(top)
    params = dict(via.params)
    wants_rport = "rport" in params and not params["rport"]
    if wants_rport:
        params["rport"] = str(source_port)
    if wants_rport or not _same_host(via.host, source_host):
        params["received"] = _bare_host(source_host)
    if params == via.params:
        return req
    stamped = Via(via.transport, via.host, via.port, params, via.protocol)
    headers = req.headers.copy()
    for i, (name, _) in enumerate(headers.items):
        if name == "Via":
            headers.items[i] = ("Via", str(stamped))
            break
    return Request(req.method, req.uri, headers, req.body, req.version)


def response_destination(msg: Request | Response, transport: str) -> Address:
    """Where a response goes, from its (the request's) top Via: RFC 3261 §18.2.2 with RFC 3581 §4.

    maddr wins (port: sent-by port or the default); else the ``received`` address with ``rport`` (when it has
    a value) or the sent-by port; else the sent-by host and port.  The default port is 5060, 5061 for TLS.
    On a reliable transport the caller should first reuse the connection the request arrived on.
    """
    top = msg.headers.get("Via")
    if top is None:
        raise LocalProtocolError("no Via to answer to")
    via = Via.parse(top)
    port = via.port if via.port is not None else default_port(via.transport or transport)
    maddr = via.params.get("maddr")
    if maddr:
        return (_bare_host(maddr), port)
    received = via.params.get("received")
    rport = via.params.get("rport")
    if rport and rport.isdigit() and 0 < int(rport) < 65536:
        port = int(rport)
    if received:
        return (_bare_host(received), port)
    return (_bare_host(via.host), port)
