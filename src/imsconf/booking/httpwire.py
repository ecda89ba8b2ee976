"""HTTP/1.1 framing for the booking API (RFC 9112), sans-I/O: parse a request head, render a response.

Deliberately small and strict — the API's clients are scripts and operators, not browsers:

- origin-form targets only (``/bookings?x=y``), methods are tokens, versions HTTP/1.0 and HTTP/1.1;
- lines end in CRLF; a bare CR or LF, obs-fold, whitespace before a colon or a control character in a field
  is a 400 (RFC 9112 §2.2, §5.1, §5.2) — leniency is where request smuggling lives;
- ``Transfer-Encoding`` is not supported (501, RFC 9112 §6.1); the body is framed by ``Content-Length`` only,
  conflicting lengths are a 400 (§6.3);
- an HTTP/1.1 request without exactly one ``Host`` is a 400 (§3.2);
- caps: head ``MAX_HEAD`` bytes (431 beyond), ``MAX_HEADERS`` fields, target ``MAX_TARGET`` characters,
  body ``MAX_BODY`` bytes (413).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any, Final

from .model import BookingError

__all__ = [
    "MAX_BODY",
    "MAX_HEAD",
    "HttpError",
    "RequestHead",
    "parse_request_head",
    "render_response",
]

MAX_HEAD: Final = 16 * 1024
MAX_HEADERS: Final = 64
MAX_TARGET: Final = 2048
MAX_BODY: Final = 64 * 1024

# RFC 9110 §5.6.2: token = 1*tchar
_TOKEN_RE: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z", re.A)
# RFC 9112 §3.2.1 origin-form = absolute-path [ "?" query ]
# pchar = unreserved / pct-encoded / sub-delims / ":" / "@";  query = *( pchar / "/" / "?" )
_PCHAR: Final = r"(?:[A-Za-z0-9\-._~!$&'()*+,;=:@]|%[0-9A-Fa-f]{2})"
_ORIGIN_FORM_RE: Final = re.compile(rf"(?:/{_PCHAR}*)+(?:\?(?:{_PCHAR}|[/?])*)?\Z", re.A)
# RFC 9110 §5.5: field-value = *field-content; VCHAR / obs-text / SP / HTAB (obs-text decoded as latin-1)
_FIELD_VALUE_RE: Final = re.compile(r"[\t\x20-\x7e\x80-\xff]*\Z")
_VERSIONS: Final = ("HTTP/1.1", "HTTP/1.0")
# RFC 9110 §15 reason phrases
REASONS: Final = {
    200: "OK",
    201: "Created",
    204: "No Content",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    409: "Conflict",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    503: "Service Unavailable",
    505: "HTTP Version Not Supported",
}


class HttpError(Exception):
    """An answer to send instead of handling the request: status, human reason, optional field errors.

    *close*: the connection cannot be trusted any more (framing broken) and is closed after the answer.
    """

    def __init__(
        self,
        status: int,
        reason: str,
        *,
        errors: Sequence[BookingError] = (),
        headers: Sequence[tuple[str, str]] = (),
        close: bool = False,
    ) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason
        self.errors = tuple(errors)
        self.headers = tuple(headers)
        self.close = close

    def body(self) -> dict[str, Any]:
        return {"error": self.reason, "errors": [e.as_json() for e in self.errors]}


@dataclass(frozen=True, slots=True)
class RequestHead:
    method: str
    target: str
    version: str
    headers: tuple[tuple[str, str], ...] = field(default=())  # (lower-cased name, value)
    content_length: int = 0

    @property
    def path(self) -> str:
        return self.target.partition("?")[0]

    @property
    def query(self) -> str:
        return self.target.partition("?")[2]

    def get_all(self, name: str) -> list[str]:
        name = name.lower()
        return [v for n, v in self.headers if n == name]

    def get(self, name: str) -> str | None:
        """The one value of *name*; HttpError 400 when it is repeated."""
        values = self.get_all(name)
        if len(values) > 1:
            raise HttpError(400, f"{name} header repeated", close=True)
        return values[0] if values else None

    @property
    def keep_alive(self) -> bool:
        tokens = {t.strip().lower() for v in self.get_all("connection") for t in v.split(",")}
        if self.version == "HTTP/1.0":
            return "keep-alive" in tokens
        return "close" not in tokens


def _bad(reason: str, status: int = 400) -> HttpError:
    return HttpError(status, reason, close=True)


def parse_request_head(data: bytes) -> RequestHead:
    """Parse a request line and header fields (the blank line terminator optional).  HttpError on any flaw."""
    if len(data) > MAX_HEAD + 4:
        raise _bad("request head too large", 431)
    text = data.decode("latin-1")
    while text.startswith("\r\n"):  # RFC 9112 §2.2: ignore empty lines before the request line
        text = text[2:]
    text = text.removesuffix("\r\n\r\n")
    lines = text.split("\r\n")
    if any("\r" in line or "\n" in line for line in lines):
        raise _bad("bare CR or LF in request head")
    request_line, fields = lines[0], lines[1:]
    parts = request_line.split(" ")
    if len(parts) != 3:
        raise _bad("malformed request line")
    method, target, version = parts
    if not _TOKEN_RE.match(method):
        raise _bad("malformed method")
    if not version.startswith("HTTP/") or not re.fullmatch(r"HTTP/[0-9]\.[0-9]", version, re.A):
        raise _bad("malformed HTTP version")
    if version not in _VERSIONS:
        raise _bad("only HTTP/1.1 and HTTP/1.0 are supported", 505)
    if len(target) > MAX_TARGET:
        raise _bad("request target too long", 431)
    if not _ORIGIN_FORM_RE.match(target):
        raise _bad("request target must be an absolute path such as /bookings")
    if len(fields) > MAX_HEADERS:
        raise _bad("too many header fields", 431)
    headers: list[tuple[str, str]] = []
    for line in fields:
        if not line:
            raise _bad("empty line inside the request head")
        if line[0] in " \t":
            raise _bad("obsolete line folding is not accepted")
        name, sep, value = line.partition(":")
        if not sep or not _TOKEN_RE.match(name):
            raise _bad("malformed header field")
        value = value.strip(" \t")
        if not _FIELD_VALUE_RE.match(value):
            raise _bad(f"control character in header field {name[:40]}")
        headers.append((name.lower(), value))
    head = RequestHead(method, target, version, tuple(headers))
    if head.get_all("transfer-encoding"):
        raise _bad("Transfer-Encoding is not supported; send Content-Length", 501)
    lengths = [part.strip() for v in head.get_all("content-length") for part in v.split(",")]
    length = 0
    if lengths:
        values = set(lengths)
        if len(values) != 1:
            raise _bad("conflicting Content-Length")
        (value,) = values
        if not value.isascii() or not value.isdigit() or len(value) > 12:
            raise _bad("malformed Content-Length")
        length = int(value)
    if version == "HTTP/1.1" and len(head.get_all("host")) != 1:
        raise _bad("HTTP/1.1 request needs exactly one Host header")
    return RequestHead(method, target, version, tuple(headers), length)


def render_response(
    status: int,
    body: dict[str, Any] | None,
    *,
    headers: Sequence[tuple[str, str]] = (),
    close: bool = False,
    date: str | None = None,
) -> bytes:
    """A complete HTTP/1.1 response with a JSON body (none for *body* None)."""
    payload = b"" if body is None else json.dumps(body, indent=None, separators=(",", ":")).encode() + b"\n"
    lines = [
        f"HTTP/1.1 {status} {REASONS.get(status, 'Unknown')}",
        f"Date: {date or formatdate(usegmt=True)}",
        "Server: imsconf",
        "Cache-Control: no-store",
        "X-Content-Type-Options: nosniff",
    ]
    if status != 204:  # RFC 9110 §8.6: no Content-Length in a 204
        lines.append(f"Content-Length: {len(payload)}")
    if body is not None:
        lines.append("Content-Type: application/json")
    lines += [f"{name}: {value}" for name, value in headers]
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload
