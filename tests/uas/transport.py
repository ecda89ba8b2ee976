"""SIP over UDP/TCP/TLS on an asyncio loop that runs in its own thread (loopback test use)."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from .sipmsg import SipMessage, SipParseError, frame_stream, parse_message

log = logging.getLogger("uas.transport")
T = TypeVar("T")


class Flow:
    """Where a message came from and where the answer goes: a UDP address or a stream connection."""

    def __init__(self, kind: str, addr: tuple[str, int], stream: StreamProtocol | None = None) -> None:
        self.kind = kind
        self.addr = addr
        self.stream = stream

    @property
    def open(self) -> bool:
        return self.kind == "udp" or (self.stream is not None and not self.stream.closed)

    def __repr__(self) -> str:
        return f"Flow({self.kind}, {self.addr[0]}:{self.addr[1]})"


OnMessage = Callable[[SipMessage, Flow], None]


class StreamProtocol(asyncio.Protocol):
    def __init__(self, owner: SipTransport) -> None:
        self.owner = owner
        self.buf = b""
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.peer: tuple[str, int] = ("", 0)
        self.local: tuple[str, int] = ("", 0)
        self.flow: Flow | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.peer = (peer[0], peer[1])
        local = transport.get_extra_info("sockname")
        self.local = (local[0], local[1])
        self.flow = Flow(self.owner.kind, self.peer, self)
        self.owner.connections.setdefault(self.peer, self)

    def data_received(self, data: bytes) -> None:
        msgs, self.buf = frame_stream(self.buf + data)
        if len(self.buf) > 1 << 20:
            log.warning("dropping a stream with a runaway buffer from %s", self.peer)
            self.close()
            return
        assert self.flow is not None
        for raw in msgs:
            self.owner.deliver(raw, self.flow)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.owner.connections.get(self.peer) is self:
            del self.owner.connections[self.peer]

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, owner: SipTransport) -> None:
        self.owner = owner

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if data.strip():
            self.owner.deliver(data, Flow("udp", (addr[0], addr[1])))


class SipTransport:
    """One listening transport (``udp``, ``tcp`` or ``tls``) plus outbound connections.

    ``on_message`` runs on the loop thread. TLS without ``cert_file`` makes no listener: the peer then has
    to reuse our outbound connection for its requests.
    """

    def __init__(
        self,
        kind: str,
        host: str,
        port: int,
        on_message: OnMessage,
        *,
        ca_file: str | None = None,
        cert_file: str | None = None,
        key_file: str | None = None,
        tls_server_name: str | None = None,
    ) -> None:
        if kind not in ("udp", "tcp", "tls"):
            raise ValueError(f"unknown transport {kind!r}")
        self.kind, self.host, self.port = kind, host, port
        self.on_message = on_message
        self.ca_file, self.cert_file, self.key_file = ca_file, cert_file, key_file
        self.tls_server_name = tls_server_name
        self.connections: dict[tuple[str, int], StreamProtocol] = {}
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=f"uas-sip-{kind}", daemon=True)
        self._udp: asyncio.DatagramTransport | None = None
        self._server: asyncio.base_events.Server | None = None
        self.listening = False
        self.trace: list[tuple[str, bytes]] = []  # ("in"/"out", raw) for debugging
        self.keep_trace = True

    # ------------------------------------------------------------------------------------------ lifecycle
    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def start(self) -> None:
        self._thread.start()
        self.run(self._open(), timeout=10)

    async def _open(self) -> None:
        if self.kind == "udp":
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind((self.host, self.port))
            t, _ = await self.loop.create_datagram_endpoint(lambda: _Udp(self), sock=sock)
            self._udp = t
            self.port = sock.getsockname()[1]
            self.listening = True
            return
        ctx = self.server_context()
        if self.kind == "tls" and ctx is None:
            return
        self._server = await self.loop.create_server(
            lambda: StreamProtocol(self), self.host, self.port, ssl=ctx
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self.listening = True

    def close(self) -> None:
        if not self._thread.is_alive():
            return
        try:
            self.run(self._close(), timeout=5)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=5)
            if not self.loop.is_running():
                self.loop.close()

    async def _close(self) -> None:
        if self._udp is not None:
            self._udp.close()
        for c in list(self.connections.values()):
            c.close()
        if self._server is not None:
            self._server.close()
        for task in asyncio.all_tasks(self.loop):
            if task is not asyncio.current_task():
                task.cancel()
        await asyncio.sleep(0.01)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run a coroutine on the loop thread and wait for its result (from any other thread)."""
        fut = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return fut.result(timeout)

    def call_soon(self, fn: Callable[[], Any]) -> None:
        self.loop.call_soon_threadsafe(fn)

    # ------------------------------------------------------------------------------------------ TLS
    def server_context(self) -> ssl.SSLContext | None:
        if self.kind != "tls" or not self.cert_file:
            return None
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.cert_file, self.key_file)
        return ctx

    def client_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=self.ca_file)
        if self.ca_file is None:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if self.cert_file:
            ctx.load_cert_chain(self.cert_file, self.key_file)
        return ctx

    # ------------------------------------------------------------------------------------------ I/O
    def deliver(self, raw: bytes, flow: Flow) -> None:
        if self.keep_trace:
            self.trace.append(("in", raw))
        try:
            msg = parse_message(raw)
        except SipParseError as exc:
            log.warning("unparsable SIP from %s: %s", flow, exc)
            return
        try:
            self.on_message(msg, flow)
        except Exception:  # a handler bug must not kill the loop
            log.exception("error handling SIP message from %s", flow)

    async def prepare(self, dest: tuple[str, int]) -> None:
        """Without a listener (TLS and no certificate), connect first so that Via/Contact can name the
        outbound connection's local port: the peer must then reuse that connection."""
        if self.kind != "udp" and not self.listening:
            try:
                conn = await self.connect(dest)
            except OSError as exc:  # ssl.SSLError included; the send that follows reports it as 408
                log.info("connect to %s failed: %s", dest, exc)
                return
            if self.port == 0:
                self.port = conn.local[1]

    async def connect(self, dest: tuple[str, int]) -> StreamProtocol:
        existing = self.connections.get(dest)
        if existing is not None and not existing.closed:
            return existing
        kw: dict[str, Any] = {}
        if self.kind == "tls":
            kw = {"ssl": self.client_context(), "server_hostname": self.tls_server_name or dest[0]}
        _, proto = await self.loop.create_connection(lambda: StreamProtocol(self), dest[0], dest[1], **kw)
        assert isinstance(proto, StreamProtocol)
        self.connections[dest] = proto
        return proto

    async def send(
        self, data: bytes, dest: tuple[str, int] | None, flow: Flow | None = None, reply: bool = False
    ) -> Flow:
        """Send one message. A reply goes back on ``flow``; a request goes to ``dest`` (an open connection to
        it is reused, else the dialog's ``flow`` if still open, else a new connection)."""
        if self.keep_trace:
            self.trace.append(("out", data))
        if self.kind == "udp":
            assert self._udp is not None
            target = flow.addr if flow is not None and (reply or dest is None) else dest
            assert target is not None
            self._udp.sendto(data, target)
            return Flow("udp", target)
        conn: StreamProtocol | None = None
        if reply and flow is not None and flow.stream is not None and not flow.stream.closed:
            conn = flow.stream
        if conn is None and dest is not None:
            conn = self.connections.get(dest)
            if conn is not None and conn.closed:
                conn = None
        if conn is None and flow is not None and flow.stream is not None and not flow.stream.closed:
            conn = flow.stream
        if conn is None:
            if dest is None:
                raise ConnectionError("no destination and no open flow")
            conn = await self.connect(dest)
        conn.write(data)
        assert conn.flow is not None
        return conn.flow
