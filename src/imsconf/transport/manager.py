"""asyncio adapters for SIP over UDP, TCP and TLS (RFC 3261 §18, RFC 5626 §3.5.1 keep-alives).

Only sockets live here: bytes in go to the core's ``receive_*`` callbacks, bytes out come from
``send``.  No protocol decision is taken in this module.  Stream connections are capped per source and
in all, and closed when idle (:mod:`.limits`, :mod:`.reaper`; docs/decisions/0006-sip-connection-limits.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import struct
import time
from collections.abc import Callable

from imsconf.sip.peer import Peer

from .connect import Connector, SelfConnectError, checked, open_tcp_socket
from .limits import Admission, StreamLimits, source_key
from .reaper import IdleReaper
from .streams import Receiver, StreamConnection, StreamListener

__all__ = ["CONNECT_TIMEOUT", "Receiver", "TransportManager"]

log = logging.getLogger("imsconf.transport")

CONNECT_TIMEOUT = 5.0
UDP_DRAIN_MAX = 256  # datagrams per readiness callback
UDP_DRAIN_BUDGET = 0.002  # seconds: a callback yields to the loop after this long
_LINGER_RESET = struct.pack("ii", 1, 0)  # close with RST: a refused connection leaves no TIME_WAIT here


class _UdpEndpoint:
    """A non-blocking UDP socket drained on readiness (cheaper than DatagramProtocol on 3.11)."""

    def __init__(self, mgr: TransportManager, sock: socket.socket) -> None:
        self.mgr = mgr
        self.sock = sock
        self.local: tuple[str, int] = sock.getsockname()[:2]

    def on_readable(self) -> None:
        recv = self.sock.recvfrom
        clock = time.perf_counter
        until = clock() + UDP_DRAIN_BUDGET
        # bounded drain (count and time) so a flood on this socket cannot starve the loop: the socket stays
        # readable, and the loop runs its due timers (the media tick) before it calls this again
        for _ in range(UDP_DRAIN_MAX):
            if clock() > until:
                self.mgr.count("udp_drain_yield")
                return
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


class TransportManager:
    """Owns every SIP socket.  Connections are reused in both directions (RFC 3261 §18, RFC 5923 spirit).

    *connector* opens outbound TCP sockets (default: :func:`.connect.open_tcp_socket`); a socket that
    connected to itself is refused whichever connector made it.
    """

    def __init__(
        self,
        receiver: Receiver,
        *,
        server_ssl: ssl.SSLContext | None = None,
        client_ssl: ssl.SSLContext | None = None,
        limits: StreamLimits | None = None,
        connector: Connector | None = None,
    ) -> None:
        self.receiver = receiver
        self.server_ssl = server_ssl
        self.client_ssl = client_ssl
        self.limits = limits if limits is not None else StreamLimits()
        self.admission = Admission(self.limits.max_per_source, self.limits.total())
        self.reaper = IdleReaper(self.limits.idle_unused, self.limits.idle_used)
        self._connector: Connector = connector if connector is not None else open_tcp_socket
        self._loop = asyncio.get_running_loop()
        self._udp: list[_UdpEndpoint] = []
        self._listeners: list[StreamListener] = []
        self._conns: dict[int, StreamConnection] = {}
        self._by_addr: dict[tuple[str, str, int], StreamConnection] = {}
        self._pending: dict[tuple[str, str, int], asyncio.Task[StreamConnection | None]] = {}
        self._accepting: set[asyncio.Task[None]] = set()
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

    @property
    def open_streams(self) -> int:
        return len(self._conns)

    def stream_opened(self, conn: StreamConnection) -> None:
        assert conn.peer is not None
        self._conns[conn.conn_id] = conn
        self._by_addr[(conn.kind, conn.peer.host, conn.peer.port)] = conn
        # a connection we opened carries our request at once: it counts as used
        self.reaper.add(conn, self._loop.time(), used=conn.outbound)

    def stream_closed(self, conn: StreamConnection) -> None:
        self._conns.pop(conn.conn_id, None)
        if conn.peer is not None:
            key = (conn.kind, conn.peer.host, conn.peer.port)
            if self._by_addr.get(key) is conn:
                del self._by_addr[key]
        self.reaper.forget(conn)
        self._release(conn)

    def stream_activity(self, conn: StreamConnection, *, message: bool) -> None:
        if message:
            self.reaper.message(conn, self._loop.time())
        else:
            self.reaper.keepalive(conn, self._loop.time())

    def _release(self, conn: StreamConnection) -> None:
        if conn.admitted:
            conn.admitted = False
            self.admission.release(conn.source)

    # -- listening -----------------------------------------------------------------------------------
    async def listen(self, transport: str, host: str, port: int) -> tuple[str, int]:
        if transport == "udp":
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_DGRAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            sock.bind((host, port))
            sock.setblocking(False)
            ep = _UdpEndpoint(self, sock)
            self._loop.add_reader(sock.fileno(), ep.on_readable)
            self._udp.append(ep)
            bound = ep.local
        elif transport in ("tcp", "tls"):
            ctx = None
            if transport == "tls":
                if self.server_ssl is None:
                    raise ValueError("TLS listener needs a server certificate")
                ctx = self.server_ssl
            bound = await self._listen_stream(transport, host, port, ctx)
        else:
            raise ValueError(f"unknown transport {transport!r}")
        self.listening.append((transport, bound[0], bound[1]))
        return bound

    async def _listen_stream(
        self, kind: str, host: str, port: int, ctx: ssl.SSLContext | None
    ) -> tuple[str, int]:
        infos = await self._loop.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP, flags=socket.AI_PASSIVE
        )
        socks: list[socket.socket] = []
        try:
            for family, type_, proto, _name, addr in dict.fromkeys(infos):
                sock = socket.socket(family, type_, proto)
                socks.append(sock)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind(addr)
                sock.listen(512)
                sock.setblocking(False)
        except OSError:
            for sock in socks:
                sock.close()
            raise
        if not socks:
            raise OSError(f"no address to listen on for {host!r}")

        def on_accept(sock: socket.socket, addr: tuple[str, int]) -> None:
            self._accepted(sock, addr, kind, ctx)

        for sock in socks:
            self._listeners.append(StreamListener(sock, on_accept, self.count))
        s = socks[0].getsockname()
        return (s[0], s[1])

    def _accepted(
        self, sock: socket.socket, addr: tuple[str, int], kind: str, ctx: ssl.SSLContext | None
    ) -> None:
        key = source_key(addr[0])
        refused = self.admission.admit(key, self._loop.time())
        if refused is not None:
            self.count(f"stream_refused_{refused}")
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
            sock.close()
            return
        self.count("stream_accepted")
        sock.setblocking(False)
        proto = StreamConnection(self, kind, source=key)
        proto.admitted = True
        task = self._loop.create_task(self._adopt(sock, proto, ctx))
        self._accepting.add(task)
        task.add_done_callback(self._accepting.discard)

    async def _adopt(self, sock: socket.socket, proto: StreamConnection, ctx: ssl.SSLContext | None) -> None:
        try:
            # a TLS handshake gets no longer than an unused connection would live
            timeout = self.limits.idle_unused if ctx is not None else None
            await self._loop.connect_accepted_socket(
                lambda: proto, sock, ssl=ctx, ssl_handshake_timeout=timeout
            )
        except (OSError, ssl.SSLError, TimeoutError) as exc:
            self.count("tls_handshake_failed" if ctx is not None else "accept_failed")
            log.debug("event=stream_setup_failed transport=%s error=%s", proto.kind, exc.__class__.__name__)
        finally:
            if not proto.made:
                self._release(proto)
                sock.close()

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
        self._loop.create_task(self._connect_and_send(data, dest))

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
            task = self._loop.create_task(self._open(dest))
            self._pending[key] = task
            task.add_done_callback(lambda _t: self._pending.pop(key, None))
        conn = await task
        if conn is not None:
            conn.write(data)

    async def _open(self, dest: Peer) -> StreamConnection | None:
        ctx = self.client_ssl if dest.transport == "tls" else None
        if dest.transport == "tls" and ctx is None:
            log.warning("event=tls_connect_failed reason=no_client_context")
            return None
        if self.admission.admit(None, self._loop.time()) is not None:
            self.count("connect_refused_total")
            self._connect_failed(dest, "connection_limit")
            return None
        proto = StreamConnection(self, dest.transport, outbound=True)
        proto.admitted = True
        try:
            sock = checked(await asyncio.wait_for(self._connector(dest.host, dest.port), CONNECT_TIMEOUT))
            try:
                await asyncio.wait_for(
                    self._loop.create_connection(
                        lambda: proto,
                        sock=sock,
                        ssl=ctx,
                        server_hostname=dest.host if ctx is not None else None,
                    ),
                    timeout=CONNECT_TIMEOUT,
                )
            finally:
                if not proto.made:
                    sock.close()
        except SelfConnectError:
            self._release(proto)
            self.count("connect_self_refused")
            self._connect_failed(dest, "self_connected")
            return None
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            if not proto.made:
                self._release(proto)
            self._connect_failed(dest, exc.__class__.__name__)
            return None
        return proto

    def _connect_failed(self, dest: Peer, error: str) -> None:
        log.info(
            "event=connect_failed transport=%s dst=%s:%d error=%s",
            dest.transport,
            dest.host,
            dest.port,
            error,
        )
        self.count("connect_failed")
        try:
            self.receiver.connect_failed(dest)
        except Exception:
            log.exception("event=core_error transport=%s", dest.transport)

    async def close(self) -> None:
        for ep in self._udp:
            self._loop.remove_reader(ep.sock.fileno())
            ep.sock.close()
        self._udp.clear()
        for listener in self._listeners:
            listener.close()
        self._listeners.clear()
        for task in list(self._accepting):
            task.cancel()
        for conn in list(self._conns.values()):
            conn.close()
            if conn.transport is not None:
                conn.transport.abort()
        self.reaper.stop()
