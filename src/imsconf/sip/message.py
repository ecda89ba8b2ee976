"""SIP messages: parse and serialize (RFC 3261 §7), datagram and stream framing (§18.3).

``Content-Length`` is framing, not content: the parser consumes it and the serializer always writes the
body's real length, so ``parse(bytes(m)) == m`` holds for every message the core builds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import grammar
from .errors import SipParseError
from .headers import SINGLE_HEADERS, CSeq, Headers, Via, canonical_name, split_header_value
from .uri import NameAddr, SipUri

MAX_MESSAGE_SIZE = 65535  # stream framing cap (header block + body); beyond it: 513 and close
MAX_HEADER_LINES = 256
MAX_HEADER_BLOCK = 16384


@dataclass(slots=True)
class Request:
    method: str
    uri: str
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""
    version: str = grammar.VERSION

    @property
    def is_request(self) -> bool:
        return True

    def __bytes__(self) -> bytes:
        return _serialize(f"{self.method} {self.uri} {self.version}", self.headers, self.body)

    @property
    def request_uri(self) -> SipUri:
        return SipUri.parse(self.uri)

    # convenience accessors (raise SipParseError when the header is missing or malformed)
    @property
    def call_id(self) -> str:
        return _required(self.headers, "Call-ID")

    @property
    def cseq(self) -> CSeq:
        return CSeq.parse(_required(self.headers, "CSeq"))

    @property
    def from_(self) -> NameAddr:
        return NameAddr.parse(_required(self.headers, "From"))

    @property
    def to(self) -> NameAddr:
        return NameAddr.parse(_required(self.headers, "To"))

    @property
    def top_via(self) -> Via:
        return Via.parse(_required(self.headers, "Via"))


@dataclass(slots=True)
class Response:
    status: int
    reason: str
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""
    version: str = grammar.VERSION

    @property
    def is_request(self) -> bool:
        return False

    def __bytes__(self) -> bytes:
        return _serialize(f"{self.version} {self.status} {self.reason}", self.headers, self.body)

    @property
    def call_id(self) -> str:
        return _required(self.headers, "Call-ID")

    @property
    def cseq(self) -> CSeq:
        return CSeq.parse(_required(self.headers, "CSeq"))

    @property
    def from_(self) -> NameAddr:
        return NameAddr.parse(_required(self.headers, "From"))

    @property
    def to(self) -> NameAddr:
        return NameAddr.parse(_required(self.headers, "To"))

    @property
    def top_via(self) -> Via:
        return Via.parse(_required(self.headers, "Via"))


Message = Request | Response


def _required(headers: Headers, name: str) -> str:
    v = headers.get(name)
    if v is None:
        raise SipParseError(f"missing {name} header")
    return v


def _serialize(start: str, headers: Headers, body: bytes) -> bytes:
    lines = [start]
    lines.extend(f"{n}: {v}" for n, v in headers.items if n != "Content-Length")
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape") + body


# ---- parsing ---------------------------------------------------------------------------------------


def _split_head(data: bytes) -> tuple[bytes, bytes]:
    idx = data.find(b"\r\n\r\n")
    if idx >= 0:
        return data[:idx], data[idx + 4 :]
    idx = data.find(b"\n\n")  # bare LF tolerated (RFC 3261 §7 says CRLF; robustness principle)
    if idx >= 0:
        return data[:idx], data[idx + 2 :]
    raise SipParseError("no blank line after headers")


def parse_head(head: bytes) -> tuple[Request | Response, int | None]:
    """Parse a start line and header block.  Returns the message (empty body) and its Content-Length."""
    if len(head) > MAX_HEADER_BLOCK:
        raise SipParseError("header block too large", 513)
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = head.decode("utf-8", "surrogateescape")
    text = grammar.FOLD_RE.sub(" ", text)
    lines = text.replace("\r\n", "\n").split("\n")
    start = lines[0]
    msg: Request | Response
    if start.startswith("SIP/"):
        m = grammar.STATUS_LINE_RE.match(start)
        if not m:
            raise SipParseError("malformed status line")
        status = int(m.group(2))
        if not 100 <= status <= 699:
            raise SipParseError("status code out of range")
        msg = Response(status, m.group(3), version=m.group(1))
    else:
        m = grammar.REQUEST_LINE_RE.match(start)
        if not m:
            raise SipParseError("malformed request line")
        msg = Request(m.group(1), m.group(2), version=m.group(3))
    if len(lines) - 1 > MAX_HEADER_LINES:
        raise SipParseError("too many header lines", 513, msg)
    content_length: int | None = None
    for line in lines[1:]:
        if not line.strip():
            continue
        hm = grammar.HEADER_LINE_RE.match(line)
        if not hm:
            raise SipParseError(f"malformed header line {line[:40]!r}", 400, msg)
        name = canonical_name(hm.group(1))
        value = hm.group(2).strip()
        if name == "Content-Length":
            if not value.isdigit():
                raise SipParseError("bad Content-Length", 400, msg)
            if content_length is not None and int(value) != content_length:
                raise SipParseError("conflicting Content-Length headers", 400, msg)
            if len(value) > 9:
                raise SipParseError("Content-Length too large", 513, msg)
            content_length = int(value)
            continue
        try:
            for part in split_header_value(name, value):
                msg.headers.add(name, part)
        except SipParseError as exc:
            raise SipParseError(exc.reason, 400, msg) from None
    return msg, content_length


def parse_message(data: bytes, *, datagram: bool = True) -> Request | Response:
    """Parse one complete message.  On a datagram, octets past Content-Length are discarded (§18.3)."""
    head, rest = _split_head(data)
    msg, clen = parse_head(head)
    if clen is None:
        if not datagram:
            raise SipParseError("missing Content-Length on a stream transport", 400, msg)
        msg.body = rest
    else:
        if clen > len(rest):
            raise SipParseError("Content-Length larger than the message", 400, msg)
        msg.body = rest[:clen]
    return msg


def validate(msg: Request | Response) -> None:
    """Check the headers every transaction needs (RFC 3261 §8.1.1).  Raises SipParseError."""
    if msg.version != grammar.VERSION:
        raise SipParseError("SIP version not supported", 505, msg)
    for name in ("Via", "From", "To", "Call-ID", "CSeq"):
        if msg.headers.get(name) is None:
            raise SipParseError(f"missing {name} header", 400, msg)
    for name in SINGLE_HEADERS:
        if len(msg.headers.get_all(name)) > 1:
            raise SipParseError(f"more than one {canonical_name(name)} header", 400, msg)
    try:
        cseq = msg.cseq
        msg.from_  # noqa: B018 - parse for validity
        msg.to  # noqa: B018
        msg.top_via  # noqa: B018
    except SipParseError as exc:
        raise SipParseError(exc.reason, 400, msg) from None
    if isinstance(msg, Request):
        if cseq.method != msg.method:
            raise SipParseError("CSeq method does not match the request method", 400, msg)
        mf = msg.headers.get("Max-Forwards")
        if mf is not None and (not mf.strip().isdigit() or len(mf.strip()) > 3 or int(mf) > 255):
            raise SipParseError("bad Max-Forwards", 400, msg)
        try:
            uri = msg.request_uri
        except SipParseError as exc:
            raise SipParseError(f"bad Request-URI: {exc.reason}", 400, msg) from None
        if uri.headers is not None:
            raise SipParseError("headers are not allowed in a Request-URI", 400, msg)


class StreamFramer:
    """Content-Length framing for TCP/TLS (RFC 3261 §18.3), with RFC 5626 keep-alives.

    ``feed(data)`` returns a list of items: a parsed message (body attached, not yet validated) or one of
    the keep-alive markers :data:`PING` (CRLFCRLF: answer with CRLF) and :data:`PONG` (a lone CRLF).
    A framing error raises SipParseError; the connection must then be closed (state is unusable).
    """

    PING = "ping"  # CRLFCRLF from the peer: answer CRLF
    PONG = "pong"  # a lone CRLF

    def __init__(self, max_size: int = MAX_MESSAGE_SIZE) -> None:
        self._buf = bytearray()
        self._max = max_size
        self._head: Request | Response | None = None
        self._need = 0

    def feed(self, data: bytes) -> list[Request | Response | str]:
        self._buf += data
        out: list[Request | Response | str] = []
        while True:
            if self._head is None:
                # keep-alives between messages
                if self._buf.startswith(b"\r\n\r\n"):
                    del self._buf[:4]
                    out.append(self.PING)
                    continue
                if self._buf.startswith(b"\r\n"):
                    if len(self._buf) < 4 and self._buf == b"\r\n\r"[: len(self._buf)]:
                        break  # might be the start of a CRLFCRLF
                    del self._buf[:2]
                    out.append(self.PONG)
                    continue
                idx = self._buf.find(b"\r\n\r\n")
                if idx < 0:
                    if len(self._buf) > MAX_HEADER_BLOCK:
                        raise SipParseError("header block too large", 513)
                    break
                head = bytes(self._buf[:idx])
                msg, clen = parse_head(head)
                if clen is None:
                    raise SipParseError("missing Content-Length on a stream transport", 400, msg)
                if idx + 4 + clen > self._max:
                    raise SipParseError("message too large", 513, msg)
                self._head = msg
                self._need = clen
                del self._buf[: idx + 4]
            if len(self._buf) < self._need:
                break
            self._head.body = bytes(self._buf[: self._need])
            del self._buf[: self._need]
            out.append(self._head)
            self._head = None
        return out

    @property
    def buffered(self) -> int:
        return len(self._buf)
