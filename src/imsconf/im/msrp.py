"""MSRP framing (RFC 4975 §7, §9): an incremental parser (bytes in, frames out) and the serialiser.

Sans-I/O. :class:`MsrpParser` takes the octets of one connection in pieces of any size and returns the
complete frames (requests and responses) found so far. A frame is the start line
``MSRP <transaction-id> <method>`` or ``MSRP <transaction-id> <status> [comment]``, its header lines, an
optional body (after ``Content-Type`` and an empty line) and the end-line ``-------<transaction-id>``
followed by the continuation flag: ``$`` (last chunk), ``+`` (more chunks follow) or ``#`` (aborted).

The body ends at the first ``CRLF -------<transaction-id><flag> CRLF`` of *this* transaction id: text
in the body that looks like an end-line (another id, no CRLF before it, another flag character) is body.
The serialiser refuses a body that contains its own end-line, so everything it writes parses back.

Every problem in received octets is an :class:`MsrpError` with the MSRP status to answer (400, 413) and
nothing else; the header block and the body of one chunk are capped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = [
    "DEFAULT_MAX_CHUNK",
    "DEFAULT_MAX_HEADER",
    "ByteRange",
    "Frame",
    "MsrpError",
    "MsrpParser",
    "MsrpUri",
    "StatusHeader",
    "find_end_line",
    "new_transaction_id",
    "render",
]

DEFAULT_MAX_HEADER = 16 * 1024  # start line and header lines of one frame
DEFAULT_MAX_CHUNK = 256 * 1024  # the body of one chunk
END_DASHES = b"-------"
FLAGS = b"$+#"
_TID = re.compile(r"[A-Za-z0-9][A-Za-z0-9.\-+%=]{3,31}")
_METHOD = re.compile(r"[A-Z]+")
_HEADER_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")
_BYTE_RANGE = re.compile(r"(\d{1,18})-(\d{1,18}|\*)/(\d{1,18}|\*)")
_STATUS = re.compile(r"(\d{3}) (\d{3})(?: ([^\r\n]*))?")
_URI = re.compile(
    r"(msrps?)://(?:[^@/;\s]+@)?(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.\-]+)(?::(\d{1,5}))?"
    r"/([A-Za-z0-9\-._~!$&'()*+,=:@%/]+);([A-Za-z0-9\-.]+)(;[^\s]*)?"
)


class MsrpError(Exception):
    """Received octets that are not MSRP we accept; ``status`` is the MSRP response code to use."""

    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


def new_transaction_id() -> str:
    """A fresh, unguessable transaction id (RFC 4975 §7.1: random enough that a body will not hold it)."""
    import secrets

    return secrets.token_hex(8)


@dataclass(frozen=True, slots=True)
class MsrpUri:
    """``msrp[s]://host[:port]/session-id;transport`` (RFC 4975 §9)."""

    scheme: str
    host: str
    port: int | None
    session_id: str
    transport: str = "tcp"

    @classmethod
    def parse(cls, text: str) -> MsrpUri:
        m = _URI.fullmatch(text.strip())
        if m is None:
            raise MsrpError(f"bad MSRP URI {text[:80]!r}")
        port = int(m.group(3)) if m.group(3) else None
        if port is not None and not 0 < port <= 65535:
            raise MsrpError(f"bad port in MSRP URI {text[:80]!r}")
        return cls(m.group(1).lower(), m.group(2).lower(), port, m.group(4), m.group(5).lower())

    @property
    def secure(self) -> bool:
        return self.scheme == "msrps"

    def __str__(self) -> str:
        port = f":{self.port}" if self.port is not None else ""
        return f"{self.scheme}://{self.host}{port}/{self.session_id};{self.transport}"


@dataclass(frozen=True, slots=True)
class ByteRange:
    """``Byte-Range: start-end/total``; ``end`` and ``total`` are None for ``*`` (RFC 4975 §7.1.1)."""

    start: int = 1
    end: int | None = None
    total: int | None = None

    @classmethod
    def parse(cls, text: str) -> ByteRange:
        m = _BYTE_RANGE.fullmatch(text.strip())
        if m is None:
            raise MsrpError(f"bad Byte-Range {text[:40]!r}")
        start = int(m.group(1))
        end = None if m.group(2) == "*" else int(m.group(2))
        total = None if m.group(3) == "*" else int(m.group(3))
        if (
            start < 1
            or (end is not None and end < start - 1)
            or (total is not None and end is not None and end > total)
        ):
            raise MsrpError(f"inconsistent Byte-Range {text[:40]!r}")
        return cls(start, end, total)

    def __str__(self) -> str:
        end = "*" if self.end is None else str(self.end)
        total = "*" if self.total is None else str(self.total)
        return f"{self.start}-{end}/{total}"


@dataclass(frozen=True, slots=True)
class StatusHeader:
    """``Status: 000 <code> [comment]`` of a REPORT (RFC 4975 §7.1.2)."""

    code: int
    comment: str = ""
    namespace: int = 0

    @classmethod
    def parse(cls, text: str) -> StatusHeader:
        m = _STATUS.fullmatch(text.strip())
        if m is None:
            raise MsrpError(f"bad Status {text[:40]!r}")
        return cls(int(m.group(2)), m.group(3) or "", int(m.group(1)))

    def __str__(self) -> str:
        text = f"{self.namespace:03d} {self.code:03d}"
        return f"{text} {self.comment}" if self.comment else text


@dataclass(frozen=True, slots=True)
class Frame:
    """One MSRP request (``method`` set) or response (``status`` set), with its body and flag."""

    tid: str
    method: str | None = None
    status: int | None = None
    comment: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None  # None: no Content-Type and no body at all
    flag: str = "$"

    def __post_init__(self) -> None:
        if (self.method is None) == (self.status is None):
            raise ValueError("a frame is a request (method) or a response (status)")
        if _TID.fullmatch(self.tid) is None:
            raise ValueError(f"bad transaction id {self.tid!r}")
        if self.flag not in ("$", "+", "#"):
            raise ValueError(f"bad continuation flag {self.flag!r}")

    @property
    def is_request(self) -> bool:
        return self.method is not None

    def header(self, name: str) -> str | None:
        low = name.lower()
        return next((v for n, v in self.headers if n.lower() == low), None)

    def _paths(self, name: str) -> tuple[MsrpUri, ...]:
        value = self.header(name)
        if value is None:
            raise MsrpError(f"no {name}")
        uris = tuple(MsrpUri.parse(u) for u in value.split())
        if not uris:
            raise MsrpError(f"empty {name}")
        return uris

    @property
    def to_path(self) -> tuple[MsrpUri, ...]:
        return self._paths("To-Path")

    @property
    def from_path(self) -> tuple[MsrpUri, ...]:
        return self._paths("From-Path")

    @property
    def message_id(self) -> str | None:
        return self.header("Message-ID")

    @property
    def byte_range(self) -> ByteRange:
        value = self.header("Byte-Range")
        return ByteRange() if value is None else ByteRange.parse(value)

    @property
    def success_report(self) -> bool:
        return (self.header("Success-Report") or "no").strip().lower() == "yes"

    @property
    def failure_report(self) -> str:
        value = (self.header("Failure-Report") or "yes").strip().lower()
        if value not in ("yes", "no", "partial"):
            raise MsrpError(f"bad Failure-Report {value[:20]!r}")
        return value

    @property
    def content_type(self) -> str | None:
        return self.header("Content-Type")

    @property
    def status_header(self) -> StatusHeader | None:
        value = self.header("Status")
        return None if value is None else StatusHeader.parse(value)


def render(frame: Frame) -> bytes:
    """The octets of *frame*; Content-Type goes last, before the body (RFC 4975 §7.1)."""
    if frame.method is not None:
        start = f"MSRP {frame.tid} {frame.method}"
    else:
        start = f"MSRP {frame.tid} {frame.status:03d}" + (f" {frame.comment}" if frame.comment else "")
    lines = [start]
    content_type: str | None = None
    for name, value in frame.headers:
        if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
            raise ValueError(f"line break in header {name!r}")
        if name.lower() == "content-type":
            content_type = value
        else:
            lines.append(f"{name}: {value}")
    end = END_DASHES + frame.tid.encode() + frame.flag.encode() + b"\r\n"
    if frame.body is None:
        if content_type is not None:
            lines.append(f"Content-Type: {content_type}")
            return ("\r\n".join(lines) + "\r\n\r\n").encode() + b"\r\n" + end
        return ("\r\n".join(lines) + "\r\n").encode() + end
    if find_end_line(frame.body + b"\r\n" + end, 0, frame.tid) != len(frame.body):
        raise ValueError("the body holds the frame's own end-line: use another transaction id")
    lines.append(f"Content-Type: {content_type or 'text/plain'}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + frame.body + b"\r\n" + end


def find_end_line(buf: bytes | bytearray, start: int, tid: str) -> int | None:
    """Where the data before the end-line of *tid* ends in *buf* (searching from *start*): the first
    ``CRLF -------<tid><flag> CRLF``; None when *buf* holds none yet."""
    needle = b"\r\n" + END_DASHES + tid.encode()
    idx = buf.find(needle, start)
    while idx >= 0:
        tail = idx + len(needle)
        if bytes(buf[tail : tail + 1]) in (b"$", b"+", b"#") and buf[tail + 1 : tail + 3] == b"\r\n":
            return idx
        idx = buf.find(needle, idx + 1)
    return None


@dataclass(slots=True)
class _Partial:
    tid: str
    method: str | None
    status: int | None
    comment: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    body_start: int | None = None  # offset in the buffer where the body begins
    scan: int = 0  # where the end-line search resumes


class MsrpParser:
    """Incremental MSRP framing for one connection; :meth:`feed` returns the frames completed."""

    def __init__(self, *, max_header: int = DEFAULT_MAX_HEADER, max_chunk: int = DEFAULT_MAX_CHUNK) -> None:
        self.max_header = max_header
        self.max_chunk = max_chunk
        self._buf = bytearray()
        self._pos = 0  # the start of the frame being parsed (or of its next header line)
        self._frame_start = 0
        self._partial: _Partial | None = None
        self._broken: MsrpError | None = None

    @property
    def pending(self) -> int:
        """Octets held that are not a complete frame yet."""
        return len(self._buf) - self._frame_start

    def feed(self, data: bytes) -> list[Frame]:
        """Add octets; the frames they complete. After an :class:`MsrpError` the stream is unusable."""
        if self._broken is not None:
            raise self._broken
        self._buf += data
        out: list[Frame] = []
        try:
            while True:
                frame = self._next()
                if frame is None:
                    break
                out.append(frame)
        except MsrpError as exc:
            self._broken = exc
            raise
        if self._frame_start > 65536 or self._frame_start == len(self._buf):
            self._compact()
        return out

    def _compact(self) -> None:
        cut = self._frame_start
        del self._buf[:cut]
        self._pos -= cut
        self._frame_start = 0
        p = self._partial
        if p is not None:
            p.scan -= cut
            if p.body_start is not None:
                p.body_start -= cut

    def _line(self) -> str | None:
        """The next CRLF-terminated line from ``_pos`` (without the CRLF), or None if incomplete."""
        idx = self._buf.find(b"\r\n", self._pos)
        if idx < 0:
            if len(self._buf) - self._frame_start > self.max_header:
                raise MsrpError("header block too large", 413)
            return None
        if idx - self._frame_start > self.max_header:
            raise MsrpError("header block too large", 413)
        raw = bytes(self._buf[self._pos : idx])
        self._pos = idx + 2
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise MsrpError("header line is not UTF-8") from None

    def _next(self) -> Frame | None:
        p = self._partial
        if p is None:
            while self._buf.startswith(b"\r\n", self._frame_start):  # tolerate CRLF between frames
                self._frame_start += 2
                self._pos = self._frame_start
            line = self._line()
            if line is None:
                return None
            p = self._partial = _start_line(line)
        while p.body_start is None:
            line = self._line()
            if line is None:
                return None
            if line == "":
                if not any(n.lower() == "content-type" for n, _ in p.headers):
                    raise MsrpError("a body without Content-Type")
                p.body_start = p.scan = self._pos
                break
            if line.startswith("-------"):
                rest = line[7:]
                if rest[:-1] != p.tid or rest[-1:] not in ("$", "+", "#"):
                    raise MsrpError("end-line of another transaction")
                if any(n.lower() == "content-type" for n, _ in p.headers):
                    raise MsrpError("Content-Type without a body")
                return self._finish(p, None, rest[-1])
            name, sep, value = line.partition(":")
            if not sep or _HEADER_NAME.fullmatch(name) is None:
                raise MsrpError(f"bad header line {line[:40]!r}")
            p.headers.append((name, value.strip()))
            if len(p.headers) > 64:
                raise MsrpError("too many header lines")
        return self._body(p)

    def _body(self, p: _Partial) -> Frame | None:
        assert p.body_start is not None
        needle = b"\r\n" + END_DASHES + p.tid.encode()
        # the data ends with the CRLF before the end-line: an empty body is the needle at body_start
        search_from = max(p.scan, p.body_start)
        buf = self._buf
        while True:
            idx = buf.find(needle, search_from)
            if idx < 0:
                p.scan = max(search_from, len(buf) - len(needle) + 1)
                if len(buf) - p.body_start > self.max_chunk + len(needle) + 3:
                    raise MsrpError("chunk too large", 413)
                return None
            tail = idx + len(needle)
            if len(buf) < tail + 3:
                p.scan = idx
                return None
            flag = bytes(buf[tail : tail + 1])
            if flag in (b"$", b"+", b"#") and buf[tail + 1 : tail + 3] == b"\r\n":
                body = bytes(buf[p.body_start : idx])
                if len(body) > self.max_chunk:
                    raise MsrpError("chunk too large", 413)
                self._pos = tail + 3
                return self._finish(p, body, flag.decode())
            search_from = idx + 1

    def _finish(self, p: _Partial, body: bytes | None, flag: str) -> Frame:
        self._partial = None
        self._frame_start = self._pos
        return Frame(p.tid, p.method, p.status, p.comment, tuple(p.headers), body, flag)


def _start_line(line: str) -> _Partial:
    parts = line.split(" ", 3)
    if len(parts) < 3 or parts[0] != "MSRP":
        raise MsrpError(f"not an MSRP start line {line[:40]!r}")
    tid = parts[1]
    if _TID.fullmatch(tid) is None:
        raise MsrpError(f"bad transaction id {tid[:40]!r}")
    what = parts[2]
    if len(what) == 3 and what.isdigit():
        comment = parts[3] if len(parts) > 3 else ""
        return _Partial(tid, None, int(what), comment)
    if _METHOD.fullmatch(what) is None or len(parts) > 3:
        raise MsrpError(f"bad method {what[:20]!r}")
    return _Partial(tid, what, None, "")
