"""One MSRP session over one connection, as its receiving and sending endpoint (RFC 4975 §7).

Sans-I/O: :meth:`MsrpSession.receive` takes octets and ``now``; what to send is in :meth:`outputs`, what
happened in :meth:`events`; transaction timeouts are deadlines (:meth:`next_deadline`,
:meth:`handle_timer`).

Receiving a SEND: the first URI of its To-Path must be ours (else 481); each chunk is answered 200 unless
it asked ``Failure-Report: no``, or ``partial`` (then only failures are answered); content of a type
outside ``accept_types`` gets 415; chunks are put together
by Message-ID and Byte-Range, up to ``max_message`` octets (413 beyond, and the message is dropped); a
``#`` chunk drops it; once the last chunk is in, :class:`MessageReceived` is an event and a
``Success-Report: yes`` gets a REPORT with ``Status: 000 200 OK`` for the whole range. A REPORT received is
an event and gets no response (§7.1.2). Other methods get 501.

Sending: :meth:`send_message` cuts the content into chunks (a fresh transaction id each); each chunk awaits
its response until ``transaction_timeout``; a failure response or a timeout is a :class:`SendFailed` event,
the last 200 a :class:`SendDone`. :meth:`report` sends a REPORT for a message received (delivery failures
found later by the application).
"""

from __future__ import annotations

import secrets
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field

from .msrp import (
    DEFAULT_MAX_CHUNK,
    ByteRange,
    Frame,
    MsrpError,
    MsrpParser,
    MsrpUri,
    StatusHeader,
    new_transaction_id,
    render,
)

__all__ = [
    "DEFAULT_MAX_MESSAGE",
    "MessageReceived",
    "MsrpSession",
    "ReportReceived",
    "SendDone",
    "SendFailed",
    "SessionClosed",
    "SessionEvent",
]

DEFAULT_MAX_MESSAGE = 1024 * 1024
DEFAULT_TRANSACTION_TIMEOUT = 30.0  # RFC 4975 §7.1.1 suggests 30 s
SEND_CHUNK = 2048  # chunks we cut our own messages into (RFC 4975 §7.1: 2048 octets is a good size)
MAX_ASSEMBLING = 16  # messages being put together at once on one session

_REASONS = {
    200: "OK",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    408: "Request Timeout",
    413: "Too Large",
    415: "Unsupported Media Type",
    423: "Out of Bounds",
    481: "No Such Session",
    501: "Not Implemented",
    506: "Wrong Session",
}


@dataclass(frozen=True, slots=True)
class MessageReceived:
    """A whole message (all chunks in) from the peer."""

    message_id: str
    content_type: str
    body: bytes
    success_report: bool
    failure_report: str


@dataclass(frozen=True, slots=True)
class ReportReceived:
    message_id: str
    status: StatusHeader
    byte_range: ByteRange


@dataclass(frozen=True, slots=True)
class SendDone:
    message_id: str


@dataclass(frozen=True, slots=True)
class SendFailed:
    message_id: str
    status: int
    reason: str


@dataclass(frozen=True, slots=True)
class SessionClosed:
    """The stream broke (unparsable octets): the connection must be closed."""

    reason: str


SessionEvent = MessageReceived | ReportReceived | SendDone | SendFailed | SessionClosed


@dataclass(slots=True)
class _Assembly:
    content_type: str
    success_report: bool
    failure_report: str
    pieces: dict[int, bytes] = field(default_factory=dict)  # start (1-based) -> octets
    size: int = 0
    total: int | None = None
    last_end: int | None = None  # end of the chunk that carried "$"

    def complete(self) -> bytes | None:
        end = self.total if self.total is not None else self.last_end
        if end is None:
            return None
        out = bytearray()
        pos = 1
        for start in sorted(self.pieces):
            piece = self.pieces[start]
            if start > pos:
                return None
            if start + len(piece) > pos:
                out += piece[pos - start :]
                pos = start + len(piece)
        return bytes(out) if pos - 1 == end else None


@dataclass(slots=True)
class _Outgoing:
    message_id: str
    deadline: float


class MsrpSession:
    """See the module docstring. *local* is our URI (its session-id is what a peer must address);
    *remote* the peer's path from its SDP (our To-Path), or learnt from its first request."""

    def __init__(
        self,
        local: MsrpUri,
        remote: tuple[MsrpUri, ...] = (),
        *,
        parser: MsrpParser | None = None,
        max_message: int = DEFAULT_MAX_MESSAGE,
        transaction_timeout: float = DEFAULT_TRANSACTION_TIMEOUT,
        chunk_size: int = SEND_CHUNK,
        accept_types: tuple[str, ...] = ("*",),
    ) -> None:
        self.local = local
        self.remote = remote
        self.parser = (
            parser if parser is not None else MsrpParser(max_chunk=max(DEFAULT_MAX_CHUNK, chunk_size))
        )
        self.max_message = max_message
        self.transaction_timeout = transaction_timeout
        self.chunk_size = chunk_size
        self.accept_types = tuple(t.lower() for t in accept_types)
        self.closed = False
        self._out: list[bytes] = []
        self._events: list[SessionEvent] = []
        self._assembling: dict[str, _Assembly] = {}
        self._dropped: set[str] = set()
        # in the order sent, so in deadline order (``now`` does not go back): the first is the earliest
        self._pending: OrderedDict[str, _Outgoing] = OrderedDict()
        self._tids: dict[str, set[str]] = {}  # message id -> its chunks' transactions not answered yet

    # ---- octets in ----------------------------------------------------------------------------------
    def receive(self, data: bytes, now: float) -> None:
        if self.closed:
            return
        try:
            frames = self.parser.feed(data)
        except MsrpError as exc:
            self.closed = True
            self._events.append(SessionClosed(exc.reason))
            return
        self.handle_frames(frames, now)

    def handle_frames(self, frames: Iterable[Frame], now: float) -> None:
        for frame in frames:
            if frame.is_request:
                self._request(frame, now)
            else:
                self._response(frame)

    def _request(self, frame: Frame, now: float) -> None:
        try:
            to_path, from_path = frame.to_path, frame.from_path
        except MsrpError as exc:
            return self._reject(frame, 400, exc.reason)
        if to_path[0].session_id != self.local.session_id:
            return self._reject(frame, 481, "")
        if not self.remote:
            self.remote = from_path
        if frame.method == "REPORT":
            return self._report(frame)
        if frame.method != "SEND":
            return self._reject(frame, 501, "")
        try:
            failure = frame.failure_report
            brange = frame.byte_range
        except MsrpError as exc:
            return self._reject(frame, 400, exc.reason)
        message_id = frame.message_id
        if message_id is None:
            return self._reject(frame, 400, "no Message-ID")
        status = self._chunk(frame, message_id, brange, failure)
        if status != 200:
            return self._respond(frame, status, failure)
        self._respond(frame, 200, failure)
        self._completed(message_id)

    def _chunk(self, frame: Frame, message_id: str, brange: ByteRange, failure: str) -> int:
        if message_id in self._dropped:
            if frame.flag != "+":
                self._dropped.discard(message_id)
            return 413
        body = frame.body or b""
        asm = self._assembling.get(message_id)
        if asm is None:
            if frame.flag == "#":
                return 200
            if len(self._assembling) >= MAX_ASSEMBLING:
                return 413
            if body and not self._accepts(frame.content_type or ""):
                return 415
            asm = _Assembly(frame.content_type or "text/plain", frame.success_report, failure)
            self._assembling[message_id] = asm
        if frame.flag == "#":  # the sender aborted the message (RFC 4975 §7.1.1)
            del self._assembling[message_id]
            return 200
        end = brange.start + len(body) - 1
        if (brange.end is not None and brange.end != end) or (
            brange.total is not None and end > brange.total
        ):
            del self._assembling[message_id]
            return 400
        too_big = (brange.total or 0) > self.max_message or end > self.max_message
        if too_big or asm.size + len(body) > self.max_message:
            del self._assembling[message_id]
            if frame.flag == "+":
                self._dropped.add(message_id)
            return 413
        if body:
            asm.pieces[brange.start] = body
            asm.size += len(body)
        if brange.total is not None:
            asm.total = brange.total
        if frame.flag == "$":
            asm.last_end = end
        return 200

    def _accepts(self, content_type: str) -> bool:
        kind = content_type.split(";", 1)[0].strip().lower()
        major = kind.split("/", 1)[0] + "/*"
        return "*" in self.accept_types or kind in self.accept_types or major in self.accept_types

    def _completed(self, message_id: str) -> None:
        asm = self._assembling.get(message_id)
        if asm is None or (asm.last_end is None and asm.total is None):
            return
        body = asm.complete()
        if body is None:
            return
        del self._assembling[message_id]
        self._events.append(
            MessageReceived(message_id, asm.content_type, body, asm.success_report, asm.failure_report)
        )
        if asm.success_report:
            self.report(message_id, 200, len(body))

    def _report(self, frame: Frame) -> None:
        try:
            status = frame.status_header
            brange = frame.byte_range
        except MsrpError:
            return  # a REPORT gets no response, not even to refuse it (RFC 4975 §7.1.2)
        if status is not None and frame.message_id is not None:
            self._events.append(ReportReceived(frame.message_id, status, brange))

    def _reject(self, frame: Frame, status: int, reason: str) -> None:
        if frame.method == "REPORT":
            return
        failure = "yes"
        try:
            failure = frame.failure_report
        except MsrpError:
            pass
        self._respond(frame, status, failure, reason)

    def _respond(self, frame: Frame, status: int, failure: str, reason: str = "") -> None:
        """A response to a request: none with ``Failure-Report: no``, only failures with ``partial``."""
        if failure == "no" or (failure == "partial" and status == 200):
            return
        try:
            to = frame.header("From-Path") or str(self.remote[0])
        except IndexError:
            return
        comment = _REASONS.get(status, reason or "Error")
        headers = (("To-Path", to.split()[0]), ("From-Path", str(self.local)))
        self._out.append(render(Frame(frame.tid, status=status, comment=comment, headers=headers)))

    def _response(self, frame: Frame) -> None:
        sent = self._pending.pop(frame.tid, None)
        if sent is None:
            return
        tids = self._tids.get(sent.message_id)
        if tids is not None:
            tids.discard(frame.tid)
        assert frame.status is not None
        if frame.status != 200:
            self._fail(sent.message_id, frame.status, frame.comment)
        elif not tids:
            self._tids.pop(sent.message_id, None)
            self._events.append(SendDone(sent.message_id))

    def _fail(self, message_id: str, status: int, reason: str) -> None:
        for tid in self._tids.pop(message_id, ()):
            self._pending.pop(tid, None)
        self._events.append(SendFailed(message_id, status, reason))

    # ---- octets out ---------------------------------------------------------------------------------
    def send_message(
        self,
        content_type: str,
        body: bytes,
        now: float,
        *,
        success_report: bool = False,
        message_id: str | None = None,
    ) -> str:
        """Send *body* in chunks; the message id. Each chunk is answered (``Failure-Report: yes``)."""
        if not self.remote:
            raise ValueError("the peer's path is not known")
        message_id = message_id or secrets.token_hex(10)
        total = len(body)
        starts = range(0, total, self.chunk_size) if total else range(1)
        for start in starts:
            piece = body[start : start + self.chunk_size]
            last = start + self.chunk_size >= total
            headers = [
                ("To-Path", " ".join(str(u) for u in self.remote)),
                ("From-Path", str(self.local)),
                ("Message-ID", message_id),
                ("Byte-Range", str(ByteRange(start + 1, start + len(piece), total))),
            ]
            if success_report:
                headers.append(("Success-Report", "yes"))
            headers.append(("Content-Type", content_type))
            tid = self._tid(piece)
            frame = Frame(tid, method="SEND", headers=tuple(headers), body=piece, flag="$" if last else "+")
            self._out.append(render(frame))
            self._pending[tid] = _Outgoing(message_id, now + self.transaction_timeout)
            self._tids.setdefault(message_id, set()).add(tid)
        return message_id

    def report(self, message_id: str, status: int, total: int) -> None:
        """A REPORT about a message the peer sent us (delivery success or a failure found later)."""
        if not self.remote:
            return
        comment = _REASONS.get(status, "Error")
        headers = (
            ("To-Path", " ".join(str(u) for u in self.remote)),
            ("From-Path", str(self.local)),
            ("Message-ID", message_id),
            ("Byte-Range", str(ByteRange(1, total, total))),
            ("Status", str(StatusHeader(status, comment))),
        )
        self._out.append(render(Frame(self._tid(b""), method="REPORT", headers=headers)))

    @staticmethod
    def _tid(body: bytes) -> str:
        while True:
            tid = new_transaction_id()
            if b"-------" + tid.encode() not in body:
                return tid

    def outputs(self) -> list[bytes]:
        out, self._out = self._out, []
        return out

    def events(self) -> list[SessionEvent]:
        out, self._events = self._events, []
        return out

    # ---- deadlines ----------------------------------------------------------------------------------
    def next_deadline(self) -> float | None:
        for sent in self._pending.values():
            return sent.deadline
        return None

    def handle_timer(self, now: float) -> None:
        while self._pending:
            sent = next(iter(self._pending.values()))
            if now < sent.deadline:
                break
            self._pending.popitem(last=False)
            self._fail(sent.message_id, 408, "Request Timeout")
