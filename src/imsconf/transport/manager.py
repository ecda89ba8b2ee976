"""asyncio adapters for SIP over UDP, TCP and TLS (RFC 3261 §18, RFC 5626 §3.5.1 keep-alives).

Only sockets live here: bytes in go to the core's ``receive_*`` callbacks, bytes out come from
``send``.  No protocol decision is taken in this module.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Callable

from imsconf.sip.errors import SipParseError
from imsconf.sip.message import MAX_MESSAGE_SIZE, Request, Response, StreamFramer
from imsconf.sip.peer import Peer

log = logging.getLogger("imsconf.transport")

STREAM_IDLE_TIMEOUT = 600.0


class Receiver:
    """What the transport calls into (implemented by the SIP endpoint)."""

    def receive_datagram(self, data: bytes, peer: Peer) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def receive_message(self, msg: Request | Response, peer: Peer) -> None:  # pragma: no cover
        raise NotImplementedError

    def receive_stream_error(self, error: SipParseError, peer: Peer) -> None:  # pragma: no cover
        raise NotImplementedError

    def connect_failed(self, peer: Peer) -> None:  # pragma: no cover - optional
        return None


class _UdpEndpoint:
    """A non-blocking UDP socket drained on readiness (cheaper than DatagramProtocol on 3.11)."""

    def __init__(self, mgr: TransportManager, sock: socket.socket) -> None:
        self.mgr = mgr
        self.sock = sock
        self.local: tuple[str, int] = sock.getsockname()[:2]

    def on_readable(self) -> None:
        recv = self.sock.recvfrom
        for _ in range(256):  # bounded drain so one busy socket cannot starve the loop
            try:
                data, addr = recv(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # ICMP errors surface here on Linux
                log.debug("event=udp_error error=%s", exc.__class__.__name__)
                continue
            self.mgr.count("udp_rx")
            peer = Peer("udp", addr[0], addr[1], None, self.local)
            try:
                self.mgr.receiver.receive_datagram(data, peer)
            except Exception:  # a bug in the core must never kill the socket
                log.exception("event=core_error transport=udp")

    def send(self, data: bytes, host: str, port: int) -> None:
        try:
            self.sock.sendto(data, (host, port))
        except (BlockingIOError, InterruptedError):
            self.mgr.count("udp_tx_dropped")
        except OSError as exc:
            log.info("event=udp_send_failed dst=%s:%d error=%s", host, port, exc.__class__.__name__)


class _StreamConnection(asyncio.Protocol):
    def __init__(self, mgr: TransportManager, kind: str) -> None:
        self.mgr = mgr
        self.kind = kind
        self.conn_id = mgr.next_conn_id()
        self.framer = StreamFramer(MAX_MESSAGE_SIZE)
        self.transport: asyncio.Transport | None = None
        self.peer: Peer | None = None
        self.closed = asyncio.get_running_loop().create_future()
        self._idle: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports are not subclasses
        addr = transport.get_extra_info("peername")
        local = transport.get_extra_info("sockname")
        self.peer = Peer(self.kind, addr[0], addr[1], self.conn_id, (local[0], local[1]))
        self.mgr.register(self)
        self._touch()

    def _touch(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
        loop = asyncio.get_running_loop()
        self._idle = loop.call_later(self.mgr.idle_timeout, self.close)

    def data_received(self, data: bytes) -> None:
        assert self.peer is not None
        self._touch()
        framer = self.framer
        try:
            framer.receive(data)
            while (item := framer.next_item()) is not None:
                if item == StreamFramer.PING:
                    self.write(b"\r\n")  # RFC 5626 §3.5.1 pong
                elif isinstance(item, Request | Response):
                    try:
                        self.mgr.receiver.receive_message(item, self.peer)
                    except Exception:
                        log.exception("event=core_error transport=%s", self.kind)
        except SipParseError as exc:
            # messages framed before the garbage were delivered; the byte stream cannot be resynchronised
            self.mgr.count("stream_framing_error")
            with contextlib.suppress(Exception):
                self.mgr.receiver.receive_stream_error(exc, self.peer)
            self.close()

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._idle is not None:
            self._idle.cancel()
        self.mgr.unregister(self)
        if not self.closed.done():
            self.closed.set_result(None)


class TransportManager:
    """Owns every SIP socket.  Connections are reused in both directions (RFC 3261 §18, RFC 5923 spirit)."""

    def __init__(
        self,
        receiver: Receiver,
        *,
        server_ssl: ssl.SSLContext | None = None,
        client_ssl: ssl.SSLContext | None = None,
        idle_timeout: float = STREAM_IDLE_TIMEOUT,
    ) -> None:
        self.receiver = receiver
        self.server_ssl = server_ssl
        self.client_ssl = client_ssl
        self.idle_timeout = idle_timeout
        self._udp: list[_UdpEndpoint] = []
        self._servers: list[asyncio.Server] = []
        self._conns: dict[int, _StreamConnection] = {}
        self._by_addr: dict[tuple[str, str, int], _StreamConnection] = {}
        self._pending: dict[tuple[str, str, int], asyncio.Task[_StreamConnection | None]] = {}
        self._conn_seq = 0
        self.counters: dict[str, int] = {}
        self.listening: list[tuple[str, str, int]] = []
        self.on_send: Callable[[bytes, Peer], None] | None = None

    # -- bookkeeping --------------------------------------------------------------------------------
    def count(self, name: str, n: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n

    def next_conn_id(self) -> int:
        self._conn_seq += 1
        return self._conn_seq

    def register(self, conn: _StreamConnection) -> None:
        assert conn.peer is not None
        self._conns[conn.conn_id] = conn
        self._by_addr[(conn.kind, conn.peer.host, conn.peer.port)] = conn

    def unregister(self, conn: _StreamConnection) -> None:
        self._conns.pop(conn.conn_id, None)
        if conn.peer is not None:
            key = (conn.kind, conn.peer.host, conn.peer.port)
            if self._by_addr.get(key) is conn:
                del self._by_addr[key]

    # -- listening -----------------------------------------------------------------------------------
    async def listen(self, transport: str, host: str, port: int) -> tuple[str, int]:
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        if transport == "udp":
            sock = socket.socket(family, socket.SOCK_DGRAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            sock.bind((host, port))
            sock.setblocking(False)
            ep = _UdpEndpoint(self, sock)
            loop.add_reader(sock.fileno(), ep.on_readable)
            self._udp.append(ep)
            bound = ep.local
        elif transport in ("tcp", "tls"):
            ctx = None
            if transport == "tls":
                if self.server_ssl is None:
                    raise ValueError("TLS listener needs a server certificate")
                ctx = self.server_ssl
            kind = transport
            server = await loop.create_server(
                lambda: _StreamConnection(self, kind), host, port, ssl=ctx, reuse_address=True, backlog=512
            )
            self._servers.append(server)
            s = server.sockets[0].getsockname()
            bound = (s[0], s[1])
        else:
            raise ValueError(f"unknown transport {transport!r}")
        self.listening.append((transport, bound[0], bound[1]))
        return bound

    # -- sending -------------------------------------------------------------------------------------
    def send(self, data: bytes, dest: Peer) -> None:
        """Send to *dest*: on its connection when it names one, else reuse or open a connection."""
        if self.on_send is not None:
            self.on_send(data, dest)
        if dest.transport == "udp":
            ep = self._udp_for(dest)
            if ep is None:
                log.warning("event=no_udp_socket dst=%s:%d", dest.host, dest.port)
                return
            ep.send(data, dest.host, dest.port)
            return
        conn = self._conns.get(dest.conn) if dest.conn is not None else None
        if conn is None:
            conn = self._by_addr.get((dest.transport, dest.host, dest.port))
        if conn is not None:
            conn.write(data)
            return
        asyncio.get_running_loop().create_task(self._connect_and_send(data, dest))

    def _udp_for(self, dest: Peer) -> _UdpEndpoint | None:
        if not self._udp:
            return None
        if dest.local is not None:
            for ep in self._udp:
                if ep.local == dest.local:
                    return ep
        v6 = ":" in dest.host
        for ep in self._udp:
            if (":" in ep.local[0]) == v6:
                return ep
        return self._udp[0]

    async def _connect_and_send(self, data: bytes, dest: Peer) -> None:
        key = (dest.transport, dest.host, dest.port)
        task = self._pending.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._open(dest))
            self._pending[key] = task
            task.add_done_callback(lambda _t: self._pending.pop(key, None))
        conn = await task
        if conn is not None:
            conn.write(data)

    async def _open(self, dest: Peer) -> _StreamConnection | None:
        loop = asyncio.get_running_loop()
        ctx = self.client_ssl if dest.transport == "tls" else None
        if dest.transport == "tls" and ctx is None:
            log.warning("event=tls_connect_failed reason=no_client_context")
            return None
        kind = dest.transport
        try:
            _, proto = await asyncio.wait_for(
                loop.create_connection(
                    lambda: _StreamConnection(self, kind),
                    dest.host,
                    dest.port,
                    ssl=ctx,
                    server_hostname=dest.host if ctx is not None else None,
                ),
                timeout=5.0,
            )
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            log.info(
                "event=connect_failed transport=%s dst=%s:%d error=%s",
                dest.transport,
                dest.host,
                dest.port,
                exc.__class__.__name__,
            )
            self.count("connect_failed")
            try:
                self.receiver.connect_failed(dest)
            except Exception:
                log.exception("event=core_error transport=%s", dest.transport)
            return None
        return proto

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        for ep in self._udp:
            loop.remove_reader(ep.sock.fileno())
            ep.sock.close()
        self._udp.clear()
        for server in self._servers:
            server.close()
        for conn in list(self._conns.values()):
            conn.close()
            if conn.transport is not None:
                conn.transport.abort()
        for server in self._servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 1.0)
        self._servers.clear()
