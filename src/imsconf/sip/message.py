"""SIP messages: parse and serialize (RFC 3261 §7), datagram and stream framing (§18.3).

``Content-Length`` is framing, not content: the parser consumes it and the serializer always writes the
body's real length, so ``parse(bytes(m)) == m`` holds for every message the core builds.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

from . import grammar
from .errors import LocalProtocolError, SipParseError
from .headers import (
    _NAME_CACHE,
    LIST_HEADERS,
    SINGLE_HEADERS,
    CSeq,
    Headers,
    Via,
    canonical_name,
    split_header_value,
)
from .uri import NameAddr, SipUri

# RFC 3261 §18.1.1: a request larger than MTU-200 bytes goes over a congestion-controlled transport
UDP_MTU_LIMIT = 1300
MAX_MESSAGE_SIZE = 65535  # stream framing cap (header block + body); beyond it: 513 and close
MAX_HEADER_LINES = 256
MAX_HEADER_BLOCK = 16384


class _Accessors:
    """Typed views of the headers every transaction needs (raise SipParseError when missing/malformed)."""

    __slots__ = ()
    headers: Headers

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
class Request(_Accessors):
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


@dataclass(slots=True)
class Response(_Accessors):
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


Message = Request | Response


def _required(headers: Headers, name: str) -> str:
    # *name* is one of the canonical spellings above: scan directly
    for n, v in headers.items:
        if n == name:
            return v
    raise SipParseError(f"missing {name} header")


_TOKEN_NAMES: set[str] = set()  # header names already checked to be tokens (for _serialize)


def _serialize(start: str, headers: Headers, body: bytes) -> bytes:
    if any(c in start for c in "\r\n"):
        raise LocalProtocolError("CR or LF in the start line")
    lines = [start]
    valid = _TOKEN_NAMES
    for n, v in headers.items:
        if n == "Content-Length":
            continue
        if n not in valid:
            if not grammar.FULL_TOKEN_RE.match(n):
                raise LocalProtocolError(f"header name is not a token: {n[:40]!r}")
            if len(valid) >= 4096:
                valid.clear()  # bounded: names can come from peers
            valid.add(n)
        if "\r" in v or "\n" in v:
            # a folded or injected line would be read as another header by the peer
            raise LocalProtocolError(f"CR or LF in the value of {n}")
        lines.append(f"{n}: {v}")
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape") + body


# ---- parsing ---------------------------------------------------------------------------------------


def _split_head(data: bytes) -> tuple[bytes, bytes]:
    # The first empty line ends the head, CRLF CRLF or (leniently) bare LF: whichever comes first, so that a
    # bare-LF head is never extended into a body that happens to contain CRLF CRLF.
    m = grammar.BLANK_LINE_RE.search(data)
    if m is None:
        raise SipParseError("no blank line after headers")
    return data[: m.start()], data[m.end() :]


def _content_length(value: str, current: int | None, msg: Request | Response) -> int:
    # Content-Length = 1*DIGIT.  More than 9 digits cannot be honoured (no message that large is accepted).
    if not grammar.DIGITS_RE.fullmatch(value):
        raise SipParseError("bad Content-Length", 400, msg)
    if len(value.lstrip("0")) > 9:
        raise SipParseError("Content-Length too large", 513, msg)
    n = int(value)
    if current is not None and n != current:
        # RFC 4475 §3.3.9: the body's extent is unknowable; answer 400
        raise SipParseError("conflicting Content-Length headers", 400, msg)
    return n


def parse_head(head: bytes) -> tuple[Request | Response, int | None]:
    """Parse a start line and header block.  Returns the message (empty body) and its Content-Length."""
    if len(head) > MAX_HEADER_BLOCK:
        raise SipParseError("header block too large", 513)
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = head.decode("utf-8", "surrogateescape")
    if "\n " in text or "\n\t" in text:  # folded lines (rare): unfold first
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
        reason = m.group(3) or ""
        if "\r" in reason:
            raise SipParseError("CR inside the status line")
        msg = Response(status, reason, version=m.group(1))
    else:
        m = grammar.REQUEST_LINE_RE.match(start)
        if not m:
            partial = _lenient_request_line(start)
            if partial is not None:
                # RFC 4475 §3.1.2.8-10 want a 400 answer, which needs Via/From/To/Call-ID/CSeq: read the
                # headers into a partial request, then refuse it
                with contextlib.suppress(SipParseError):
                    _parse_headers(lines, partial)
            raise SipParseError("malformed request line", 400, partial)
        msg = Request(m.group(1), m.group(2), version=m.group(3))
    return msg, _parse_headers(lines, msg)


def _lenient_request_line(start: str) -> Request | None:
    """A request line with extra or embedded whitespace, read only to have something to answer 400 to."""
    parts = start.split(" ")
    parts = [p for p in parts if p]
    if len(parts) < 3 or not grammar.FULL_TOKEN_RE.match(parts[0]):
        return None
    if not grammar.VERSION_RE.match(parts[-1]):
        return None
    return Request(parts[0], " ".join(parts[1:-1]), version=parts[-1])


def _parse_headers(lines: list[str], msg: Request | Response) -> int | None:
    """Add the header lines (after the start line) to *msg*; return the Content-Length, if any."""
    if len(lines) - 1 > MAX_HEADER_LINES:
        raise SipParseError("too many header lines", 513, msg)
    content_length: int | None = None
    items = msg.headers.items
    match = grammar.HEADER_LINE_RE.match
    names = _NAME_CACHE
    for line in lines[1:]:
        if not line.strip(" \t"):
            continue
        if "\r" in line:
            # a lone CR is not a line break here but is one for some peers: refuse the ambiguity
            raise SipParseError("CR inside a header line", 400, msg)
        hm = match(line)
        if not hm:
            raise SipParseError(f"malformed header line {line[:40]!r}", 400, msg)
        raw, value = hm.groups()
        name = names.get(raw) or canonical_name(raw)
        value = value.strip(" \t")
        if name == "Content-Length":
            content_length = _content_length(value, content_length, msg)
            continue
        is_list = _LIST_KIND.get(name)
        if is_list is None:
            is_list = _list_kind(name)
        if not is_list:
            items.append((name, value))  # a single-valued header: as split_header_value would return it
            continue
        try:
            for part in split_header_value(name, value):
                items.append((name, part))
        except SipParseError as exc:
            raise SipParseError(exc.reason, 400, msg) from None
    return content_length


_LIST_KIND: dict[str, bool] = {}  # canonical header name -> is a list header (LIST_HEADERS)


def _list_kind(name: str) -> bool:
    if len(_LIST_KIND) >= 4096:
        _LIST_KIND.clear()  # bounded: extension names are attacker-chosen
    kind = _LIST_KIND[name] = name.lower() in LIST_HEADERS
    return kind


def parse_message(data: bytes, *, datagram: bool = True) -> Request | Response:
    """Parse one complete message.  On a datagram, octets past Content-Length are discarded (§18.3).

    Leading CRLFs before the start line are ignored (RFC 3261 §7.5).  Without Content-Length, a datagram's
    body runs to its end; on a stream that is an error.
    """
    if len(data) > MAX_MESSAGE_SIZE:
        raise SipParseError("message too large", 513)
    data = data.lstrip(b"\r\n")
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
    """Check what every transaction relies on (RFC 3261 §8.1.1, §8.2.2).  Raises SipParseError.

    Checked: the version (505), the presence of Via/From/To/Call-ID/CSeq and the uniqueness of
    single-valued headers (400), that every Via, From, To, Contact and CSeq parses, Max-Forwards is 0-255,
    and for requests the Request-URI parses, carries no headers, and the CSeq method equals the request
    method (400, or 501 when the method is unknown, RFC 4475 §3.1.2.18).  Semantic checks (Require,
    schemes, Content-Type, Max-Forwards 0) are left to the application: RFC 4475 §3.3 expects those
    messages to be parsed.
    """
    if msg.version != grammar.VERSION:
        raise SipParseError("SIP version not supported", 505, msg)
    # one pass over the headers (names are stored canonical): every value of the headers checked here
    seen: dict[str, list[str]] = {}
    for n, v in msg.headers.items:
        if n in _VALIDATED:
            if n in seen:
                seen[n].append(v)
            else:
                seen[n] = [v]
    for name in ("Via", "From", "To", "Call-ID", "CSeq"):
        if name not in seen:
            raise SipParseError(f"missing {name} header", 400, msg)
    for name in _SINGLE_ORDER:
        if len(seen.get(name, ())) > 1:
            raise SipParseError(f"more than one {name} header", 400, msg)
    if not seen["Call-ID"][0].strip():
        raise SipParseError("empty Call-ID", 400, msg)
    try:
        cseq = CSeq.parse(seen["CSeq"][0])
        NameAddr.parse(seen["From"][0])
        NameAddr.parse(seen["To"][0])
        for via in seen["Via"]:
            Via.parse(via)
    except SipParseError as exc:
        raise SipParseError(exc.reason, 400, msg) from None
    try:
        for contact in seen.get("Contact", ()):
            if contact != "*":
                NameAddr.parse(contact)
    except SipParseError as exc:  # the answer's reason names the header (a registrar's 400)
        raise SipParseError(f"bad Contact: {exc.reason}", 400, msg) from None
    mfs = seen.get("Max-Forwards")
    mf = mfs[0] if mfs else None
    if mf is not None:
        m = grammar.MAX_FORWARDS_RE.match(mf)
        if m is None or int(m.group(1)) > 255:
            raise SipParseError("bad Max-Forwards", 400, msg)
    if isinstance(msg, Request):
        if cseq.method != msg.method:
            status = 400 if msg.method in grammar.KNOWN_METHODS else 501
            raise SipParseError("CSeq method does not match the request method", status, msg)
        try:
            uri = msg.request_uri
        except SipParseError as exc:
            raise SipParseError(f"bad Request-URI: {exc.reason}", 400, msg) from None
        if uri.headers is not None:
            raise SipParseError("headers are not allowed in a Request-URI", 400, msg)


# validate(): the single-valued headers in the order their duplicates are reported, and every header it reads
_SINGLE_ORDER = tuple(canonical_name(n) for n in SINGLE_HEADERS)
_VALIDATED = frozenset(_SINGLE_ORDER) | {"Via", "Contact"}


class StreamFramer:
    """Content-Length framing for TCP/TLS (RFC 3261 §18.3), with RFC 5626 keep-alives.

    Items are a parsed message (body attached, not yet validated) or one of the keep-alive markers
    :data:`PING` (CRLFCRLF: answer with CRLF) and :data:`PONG` (a lone CRLF).  A CRLF alone at the end of the
    buffer is held until the next octet tells whether it was a pong or the first half of a ping.

    Two ways to drive it: ``feed(data)`` returns every item framed so far, or, h11-style, ``receive(data)``
    then ``next_item()`` until it returns None.  A framing error raises SipParseError, from then on on every
    call: the connection must be closed.  With ``feed`` the items framed before the error in the same call
    are lost with it; ``next_item`` hands them out first.
    """

    PING = "ping"  # CRLFCRLF from the peer: answer CRLF
    PONG = "pong"  # a lone CRLF

    def __init__(self, max_size: int = MAX_MESSAGE_SIZE) -> None:
        self._buf = bytearray()
        self._max = max_size
        self._head: Request | Response | None = None
        self._need = 0
        self._scanned = 0  # octets of _buf already searched for the end of the head
        self._error: SipParseError | None = None

    def feed(self, data: bytes) -> list[Request | Response | str]:
        self.receive(data)
        out: list[Request | Response | str] = []
        while (item := self.next_item()) is not None:
            out.append(item)
        return out

    def receive(self, data: bytes) -> None:
        if self._error is not None:
            raise self._error
        self._buf += data

    def next_item(self) -> Request | Response | str | None:
        """The next framed item, or None when more octets are needed."""
        if self._error is not None:
            raise self._error
        try:
            return self._next()
        except SipParseError as exc:
            self._error = exc
            self._buf.clear()
            raise

    def _next(self) -> Request | Response | str | None:
        if self._head is None:
            # keep-alives between messages
            if self._buf.startswith(b"\r\n\r\n"):
                del self._buf[:4]
                self._scanned = 0
                return self.PING
            if self._buf.startswith(b"\r\n"):
                if len(self._buf) < 4 and self._buf == b"\r\n\r"[: len(self._buf)]:
                    return None  # might be the start of a CRLFCRLF
                del self._buf[:2]
                self._scanned = 0
                return self.PONG
            idx = self._buf.find(b"\r\n\r\n", max(0, self._scanned - 3))
            if idx < 0:
                if len(self._buf) > MAX_HEADER_BLOCK:
                    raise SipParseError("header block too large", 513)
                self._scanned = len(self._buf)
                return None
            self._scanned = 0
            msg, clen = parse_head(bytes(self._buf[:idx]))
            if clen is None:
                raise SipParseError("missing Content-Length on a stream transport", 400, msg)
            if idx + 4 + clen > self._max:
                raise SipParseError("message too large", 513, msg)
            self._head = msg
            self._need = clen
            del self._buf[: idx + 4]
        if len(self._buf) < self._need:
            return None
        msg = self._head
        msg.body = bytes(self._buf[: self._need])
        del self._buf[: self._need]
        self._head = None
        return msg

    @property
    def buffered(self) -> int:
        return len(self._buf)
