"""A small blocking MSRP client for the integration tests (RFC 4975), independent of ``imsconf.im``.

Its framing is its own: a frame is found by its start line ``MSRP <tid> <method|status>`` and the first
end-line ``-------<tid><flag>`` that begins a line after it. It answers every SEND it receives with 200
(unless it was told to stay silent) and puts chunked messages together by Message-ID.
"""

from __future__ import annotations

import re
import secrets
import socket
import ssl
import time
from dataclasses import dataclass, field

_START = re.compile(rb"MSRP ([A-Za-z0-9][A-Za-z0-9.\-+%=]{3,31}) ([A-Z]+|\d{3})(?: ([^\r\n]*))?\r\n")


@dataclass
class Frame:
    tid: str
    method: str | None
    status: int | None
    headers: dict[str, str]
    body: bytes
    flag: str


@dataclass
class Message:
    message_id: str
    content_type: str
    body: bytes


@dataclass
class MsrpClient:
    host: str
    port: int
    own_path: str  # our URI (its session-id is ours; the focus never connects to it)
    ssl_context: ssl.SSLContext | None = None
    server_hostname: str = "localhost"
    buf: bytes = b""
    frames: list[Frame] = field(default_factory=list)
    parts: dict[str, bytes] = field(default_factory=dict)

    def __post_init__(self) -> None:
        raw = socket.create_connection((self.host, self.port), timeout=5)
        if self.ssl_context is not None:
            self.sock: socket.socket = self.ssl_context.wrap_socket(raw, server_hostname=self.server_hostname)
        else:
            self.sock = raw

    def close(self) -> None:
        self.sock.close()

    # ---- sending ---------------------------------------------------------------------------------
    def send(
        self,
        to_path: str,
        body: bytes,
        content_type: str = "text/plain",
        *,
        chunks: int = 1,
        message_id: str | None = None,
        extra: tuple[str, ...] = (),
    ) -> list[str]:
        """SEND *body* cut into *chunks* pieces; the transaction ids."""
        message_id = message_id or secrets.token_hex(6)
        size = max(1, -(-len(body) // chunks))
        tids = []
        starts = list(range(0, len(body), size)) or [0]
        for start in starts:
            piece = body[start : start + size]
            tid = secrets.token_hex(6)
            last = start + size >= len(body)
            end = start + len(piece)
            lines = [
                f"MSRP {tid} SEND",
                f"To-Path: {to_path}",
                f"From-Path: {self.own_path}",
                f"Message-ID: {message_id}",
                f"Byte-Range: {start + 1}-{end}/{len(body)}",
                *extra,
                f"Content-Type: {content_type}",
                "",
                "",
            ]
            flag = "$" if last else "+"
            self.sock.sendall("\r\n".join(lines).encode() + piece + f"\r\n-------{tid}{flag}\r\n".encode())
            tids.append(tid)
        return tids

    def respond(self, frame: Frame, status: int = 200, comment: str = "OK") -> None:
        to = frame.headers.get("From-Path", "")
        data = f"MSRP {frame.tid} {status} {comment}\r\nTo-Path: {to}\r\nFrom-Path: {self.own_path}\r\n"
        self.sock.sendall(data.encode() + f"-------{frame.tid}$\r\n".encode())

    # ---- receiving -------------------------------------------------------------------------------
    def next_frame(self, timeout: float = 5.0) -> Frame | None:
        deadline = time.monotonic() + timeout
        while True:
            frame = self._parse()
            if frame is not None:
                return frame
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                return None
            except (ConnectionResetError, ssl.SSLError):
                data = b""
            if not data:
                raise EOFError("connection closed")
            self.buf += data

    def response(self, tid: str, timeout: float = 5.0) -> Frame | None:
        """The response to our transaction *tid*; SENDs on the way are answered and kept."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            frame = self.next_frame(left)
            if frame is None:
                return None
            if frame.status is not None and frame.tid == tid:
                return frame
            self._keep(frame)
        return None

    def messages(self, count: int, timeout: float = 5.0) -> list[Message]:
        """*count* whole messages (SENDs answered with 200); fewer if the time runs out."""
        out = [m for m in (self._assemble(f) for f in self._take_sends()) if m is not None]
        deadline = time.monotonic() + timeout
        while len(out) < count and (left := deadline - time.monotonic()) > 0:
            frame = self.next_frame(left)
            if frame is None:
                break
            if frame.method == "SEND":
                self.respond(frame)
                msg = self._assemble(frame)
                if msg is not None:
                    out.append(msg)
            else:
                self.frames.append(frame)
        return out

    def _take_sends(self) -> list[Frame]:
        sends = [f for f in self.frames if f.method == "SEND"]
        self.frames = [f for f in self.frames if f.method != "SEND"]
        return sends

    def _keep(self, frame: Frame) -> None:
        if frame.method == "SEND":
            self.respond(frame)
        self.frames.append(frame)

    def _assemble(self, frame: Frame) -> Message | None:
        mid = frame.headers.get("Message-ID", "")
        self.parts[mid] = self.parts.get(mid, b"") + frame.body
        if frame.flag != "$":
            return None
        return Message(mid, frame.headers.get("Content-Type", ""), self.parts.pop(mid))

    def _parse(self) -> Frame | None:
        m = _START.match(self.buf)
        if m is None:
            if self.buf and not b"MSRP ".startswith(self.buf[:5]):
                raise ValueError(f"not MSRP: {self.buf[:60]!r}")
            return None
        tid = m.group(1).decode()
        end = re.compile(rb"(?:^|\r\n)-------" + re.escape(tid.encode()) + rb"([$#+])\r\n")
        e = end.search(self.buf, m.end() - 2)
        if e is None:
            return None
        block = self.buf[m.end() : e.start()]
        head, sep, body = block.partition(b"\r\n\r\n")
        headers: dict[str, str] = {}
        for line in head.decode().split("\r\n"):
            if ":" in line:
                name, _, value = line.partition(":")
                headers[name.strip()] = value.strip()
        what = m.group(2).decode()
        self.buf = self.buf[e.end() :]
        return Frame(
            tid,
            None if what.isdigit() else what,
            int(what) if what.isdigit() else None,
            headers,
            body if sep else b"",
            e.group(1).decode(),
        )


def cpim_headers(body: bytes) -> tuple[dict[str, list[str]], str, bytes]:
    """A ``message/cpim`` body: its message headers (name -> values), the content type, the content."""
    head, _, rest = body.partition(b"\r\n\r\n")
    mime, _, content = rest.partition(b"\r\n\r\n")
    headers: dict[str, list[str]] = {}
    for line in head.decode().split("\r\n"):
        name, _, value = line.partition(": ")
        headers.setdefault(name, []).append(value)
    ctype = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in mime.decode().split("\r\n")
            if ln.lower().startswith("content-type:")
        ),
        "",
    )
    return headers, ctype, content
