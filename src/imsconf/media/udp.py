"""The asyncio adapter of the media engine: sockets and the 20 ms clock, nothing else.

* Each leg gets its own non-blocking UDP socket(s) from a port range (RTP on an even port, RTCP on the
  next one unless rtcp-mux). Reads use ``loop.add_reader`` and drain until ``BlockingIOError``: stock
  ``DatagramProtocol`` costs 5x more per packet on CPython 3.11 (measured). On Linux the sockets
  sit in one private epoll set whose fd is the only one given to ``add_reader``: one loop callback then
  serves every socket that is ready, instead of one callback (and one asyncio Handle) per packet.
* The tick runs on absolute deadlines ``t0 + n * 20 ms`` of ``loop.time()``. A tick that starts more
  than ``late_after`` behind its deadline counts as late; when a whole deadline has passed, the clock
  skips ahead to the next future deadline (no burst of catch-up ticks) and counts the skipped ones.
  Each tick's work (two ``perf_counter`` calls) and its late and skipped ticks also go to the engine's
  figures (:meth:`MediaEngine.record_tick`, read as :class:`~imsconf.media.events.MixerStats`).
* Outputs go out with ``sendto``; a full socket buffer drops the packet and counts it.

Connected sockets (``connected=True``, the default on Linux). Each RTP port has two sockets bound with
``SO_REUSEPORT``: the *main* socket, which is ``connect()``-ed to the leg's remote RTP address as soon as the
engine knows it (and again whenever it changes: re-INVITE, latching), and an unconnected *wildcard* socket.
The kernel delivers a datagram from the remote address to the connected socket (the best match) and anything
else to the wildcard one. So the main socket needs no source check and no address per packet: its datagrams go
to the engine marked as connected (no source address, see :meth:`MediaEngine.receive_batch`), and the mix is
sent with ``send`` on it (:meth:`MediaEngine.tick_send`, the adapter being its
:class:`~imsconf.media.egress.PacketSink` for the rest), which skips the per-packet route lookup. Packets on
the wildcard socket (strangers, a latching source) and on a socket that is not connected yet take the full
path with ``recvfrom``, their datagrams handed to :meth:`MediaEngine.receive_batch` with their source, which
counts ``wrong_source`` or latches exactly as before. Measured: connected ``recv``/``send`` cost 3.8 µs per
packet pair against 5.4 µs. ``SO_REUSEPORT`` only lets sockets of the same effective user share a port; each
RTP port is first probed with a plain bind, so the allocator never takes a port another process holds.

Batched reads (``rx_interval``, default 2 ms). When packets arrive spread out, a readiness callback per
datagram costs an event-loop iteration and two epoll syscalls each. After a readiness callback the
adapter therefore stops watching for readiness and drains the sockets on a timer every ``rx_interval``
while packets keep coming, and goes back to readiness when a drain finds nothing. Arrival times (jitter
buffer, RTCP jitter) are then taken per drain, at most ``rx_interval`` late. ``rx_interval=0`` reads on
readiness only.

C path (docs/decisions/0004). With the ``_fastpath`` extension, a connected main socket is also *mapped*
(:meth:`MediaEngine.map_fast_fd`) once it is fast: a drain round is then one call into C
(:meth:`MediaEngine.receive_batch` with the epoll set) that reads every mapped ready socket; only the others
come back as descriptors for the Python reads above, whose datagrams go in through the same call. The tick's
sends on those sockets happen in C as well.

Every decision about packets is the engine's.
"""

from __future__ import annotations

import asyncio
import errno
import select
import socket
import sys
import time
from array import array
from collections.abc import Callable

from .control import LocalMediaControl
from .engine import MediaEngine
from .events import Datagram
from .ingress import Received
from .legs import TICK
from .video_plane import VideoPlane

__all__ = ["TickStats", "UdpMediaTransport", "local_media"]

_RECV_SIZE = 2048
_DRAIN_MAX = 256  # packets per readiness callback, so one flooded socket cannot starve the tick
_DRAIN_BUDGET = 0.004  # seconds: a drain yields to the loop (and the tick) after this long


class TickStats:
    """Counters and the recent tick timings (for metrics and the capacity benchmark)."""

    __slots__ = (
        "durations",
        "keep",
        "lags",
        "late",
        "recv_errors",
        "send_dropped",
        "send_errors",
        "skipped",
        "ticks",
    )

    def __init__(self, keep: int = 3000) -> None:
        self.ticks = 0
        self.late = 0
        self.skipped = 0
        self.send_dropped = 0
        self.send_errors = 0
        self.recv_errors = 0
        self.keep = keep
        # seconds of work per tick (most recent `keep`), seconds between deadline and tick start: plain
        # doubles, not float objects (a list of the last minute's floats, made during a load, would keep
        # the allocator's arenas that load filled for a minute after it; docs/decisions/0012)
        self.durations: array[float] = array("d")
        self.lags: array[float] = array("d")

    def reset_window(self) -> None:
        del self.durations[:]  # array.array has no clear() before Python 3.13
        del self.lags[:]
        self.late = self.skipped = 0


class UdpMediaTransport:
    """Owns the media sockets of one engine and runs its tick. Implements ``PortAllocator`` and the
    engine's egress port (:class:`~imsconf.media.egress.PacketSink`)."""

    def __init__(
        self,
        engine: MediaEngine,
        host: str = "127.0.0.1",
        port_min: int = 40000,
        port_max: int = 49999,
        *,
        after_tick: Callable[[], None] | None = None,
        late_after: float = 0.010,
        connected: bool = True,
        rx_interval: float = 0.002,
    ) -> None:
        if port_min % 2:
            port_min += 1
        if port_max - port_min < 2:
            raise ValueError("empty port range")
        self.engine = engine
        self._host = host
        self._port_min = port_min
        self._port_max = port_max
        self._next_port = port_min
        self._socks: dict[int, socket.socket] = {}  # port -> the socket that sends (RTP: the main one)
        self._epoll = select.epoll() if sys.platform == "linux" else None
        # fd -> (socket, port, fast): fast = a main socket connected to the leg's remote RTP address
        self._by_fd: dict[int, tuple[socket.socket, int, bool]] = {}
        self._connected = connected and self._epoll is not None
        self._wild: dict[int, socket.socket] = {}  # RTP port -> its unconnected companion
        self._settle: set[int] = set()  # RTP ports just (re)connected: drain the old queue first
        self.rx_interval = rx_interval
        self._reading = False
        self._rx_timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._t0 = 0.0
        self._n = 0
        self.after_tick = after_tick
        self.late_after = late_after
        self.stats = TickStats()
        if self._connected:
            engine.remote_listener = self._remote_changed

    @property
    def host(self) -> str:
        return self._host

    def now(self) -> float:
        """The loop's monotonic time (0.0 before :meth:`start`)."""
        return self._loop.time() if self._loop is not None else 0.0

    # ------------------------------------------------------------------------------ ports

    def _bind(self, port: int, reuse: bool = False) -> socket.socket | None:
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            if reuse:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((self._host, port))
        except OSError as exc:
            sock.close()
            if exc.errno == errno.EADDRINUSE:
                return None
            raise
        sock.setblocking(False)
        return sock

    def open_ports(self, rtcp_mux: bool) -> tuple[int, int]:
        """Bind an even RTP port (and RTCP on the next port unless rtcp-mux) and start reading."""
        span = self._port_max - self._port_min
        for _ in range(0, span, 2):
            port = self._next_port
            self._next_port += 2
            if self._next_port + 1 > self._port_max:
                self._next_port = self._port_min
            if port in self._socks or port + 1 in self._socks:
                continue
            rtp = self._bind(port)
            if rtp is None:
                continue
            wild = None
            if self._connected:
                # The plain bind above proved the port free; now the SO_REUSEPORT pair takes it.
                rtp.close()
                rtp = self._bind(port, reuse=True)
                wild = self._bind(port, reuse=True) if rtp is not None else None
                if rtp is None or wild is None:
                    if rtp is not None:
                        rtp.close()
                    continue
            if rtcp_mux:
                self._add(port, rtp, wild)
                return port, port
            rtcp = self._bind(port + 1)
            if rtcp is None:
                rtp.close()
                if wild is not None:
                    wild.close()
                continue
            self._add(port, rtp, wild)
            self._add(port + 1, rtcp)
            return port, port + 1
        raise OSError(errno.EADDRINUSE, "media port range exhausted")

    def _add(self, port: int, sock: socket.socket, wild: socket.socket | None = None) -> None:
        self._socks[port] = sock
        if self._epoll is not None:
            self._by_fd[sock.fileno()] = (sock, port, False)
            self._epoll.register(sock.fileno(), select.EPOLLIN)
            if wild is not None:
                self._wild[port] = wild
                self._by_fd[wild.fileno()] = (wild, port, False)
                self._epoll.register(wild.fileno(), select.EPOLLIN)
        elif self._loop is not None:
            self._loop.add_reader(sock.fileno(), self._on_readable, sock, port)

    def close_ports(self, rtp_port: int, rtcp_port: int) -> None:
        self.engine.set_send(rtp_port, None)
        self._settle.discard(rtp_port)
        socks = [self._socks.pop(port, None) for port in {rtp_port, rtcp_port}]
        socks.append(self._wild.pop(rtp_port, None))
        for sock in socks:
            if sock is not None:
                self.engine.unmap_fast_fd(sock.fileno())  # before the number can be reused
                if self._epoll is not None:
                    self._epoll.unregister(sock.fileno())
                    del self._by_fd[sock.fileno()]
                elif self._loop is not None:
                    self._loop.remove_reader(sock.fileno())
                sock.close()

    def _remote_changed(self, rtp_port: int, remote: tuple[str, int] | None) -> None:
        """The engine's remote RTP address of a leg changed: (re)connect its main socket."""
        sock = self._socks.get(rtp_port)
        if sock is None or rtp_port not in self._wild or remote is None:
            return
        fd = sock.fileno()
        try:
            sock.connect(remote)
        except OSError:
            # Unusable address: back to the full path (and sendto) for this leg.
            self._by_fd[fd] = (sock, rtp_port, False)
            self.engine.unmap_fast_fd(fd)
            self.engine.set_send(rtp_port, None)
            return
        # Datagrams queued before the connect may come from anywhere: the full path reads them first
        # (see _settle_ports), then the socket turns fast.
        self._by_fd[fd] = (sock, rtp_port, False)
        self.engine.unmap_fast_fd(fd)
        self._settle.add(rtp_port)
        self.engine.set_send(rtp_port, sock.send, fd)

    def _settle_ports(self, now: float) -> None:
        receive_batch = self.engine.receive_batch
        for port in list(self._settle):
            sock = self._socks.get(port)
            self._settle.discard(port)
            if sock is None:
                continue
            batch: list[Received] = []
            for _ in range(_DRAIN_MAX):
                try:
                    data, addr = sock.recvfrom(_RECV_SIZE)
                except BlockingIOError:
                    break
                except OSError:
                    self.stats.recv_errors += 1
                    break
                batch.append((port, data, addr))
            receive_batch(now, batch)
            self._by_fd[sock.fileno()] = (sock, port, True)
            self.engine.map_fast_fd(sock.fileno(), port)

    # ------------------------------------------------------------------------------ I/O

    def _on_readable(self, sock: socket.socket, port: int) -> None:
        assert self._loop is not None
        now = self._loop.time()
        recv = sock.recvfrom
        batch: list[Received] = []
        for _ in range(_DRAIN_MAX):
            try:
                data, addr = recv(_RECV_SIZE)
            except BlockingIOError:
                break
            except OSError:  # e.g. an ICMP error reported on the socket
                self.stats.recv_errors += 1
                break
            batch.append((port, data, addr))
        self.engine.receive_batch(now, batch)

    def _on_epoll(self) -> None:
        """Readiness of the epoll set: drain it, then (with ``rx_interval``) switch to timed drains."""
        assert self._loop is not None
        got = self._drain()
        if self.rx_interval > 0 and got and self._reading:
            assert self._epoll is not None
            self._loop.remove_reader(self._epoll.fileno())
            self._reading = False
            self._rx_timer = self._loop.call_later(self.rx_interval, self._on_rx_timer)

    def _on_rx_timer(self) -> None:
        loop = self._loop
        if loop is None or self._epoll is None:
            return
        if self._drain():
            self._rx_timer = loop.call_later(self.rx_interval, self._on_rx_timer)
        else:  # quiet: back to readiness
            self._rx_timer = None
            loop.add_reader(self._epoll.fileno(), self._on_epoll)
            self._reading = True

    def _drain(self) -> int:
        """Read the epoll set: one datagram per ready socket per round, rounds until none is ready.
        Returns the number of datagrams read.

        With one socket per leg there is usually one datagram waiting, so reading each socket until
        EAGAIN would double the syscalls and raise an exception per packet; the level-triggered epoll
        set reports a socket again while it still holds data.
        """
        assert self._epoll is not None and self._loop is not None
        now = self._loop.time()
        if self._settle:
            self._settle_ports(now)
        by_fd = self._by_fd
        poll = self._epoll.poll
        receive_batch = self.engine.receive_batch
        c_path = self.engine.c_path
        got = 0
        clock = time.perf_counter
        until = clock() + _DRAIN_BUDGET
        epfd = self._epoll.fileno()
        for _ in range(_DRAIN_MAX):
            if c_path:
                # The C path reads every mapped socket; only the others come back as descriptors.
                n, errs, fds = receive_batch(now, (), epfd)
                got += n
                self.stats.recv_errors += errs
                if not n and not fds:
                    break
                ready = [(fd, 0) for fd in fds]
            else:
                ready = poll(0)
                if not ready:
                    break
            if clock() > until:
                break
            batch: list[Received] = []
            append = batch.append
            for fd, _events in ready:
                entry = by_fd.get(fd)
                if entry is None:
                    continue
                sock, port, fast = entry
                try:
                    if fast:
                        append((port, sock.recv(_RECV_SIZE), None))
                    else:
                        data, addr = sock.recvfrom(_RECV_SIZE)
                        append((port, data, addr))
                except BlockingIOError:
                    continue
                except OSError:  # e.g. an ICMP error reported on the socket
                    self.stats.recv_errors += 1
                    continue
            if batch:
                got += receive_batch(now, batch)[0]
        return got

    def start(self) -> None:
        """Attach the sockets to the running loop and start ticking."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        if self._epoll is not None:
            loop.add_reader(self._epoll.fileno(), self._on_epoll)
            self._reading = True
        else:
            for port, sock in self._socks.items():
                loop.add_reader(sock.fileno(), self._on_readable, sock, port)
        self._t0 = loop.time()
        self._n = 1
        self._timer = loop.call_at(self._t0 + TICK, self._on_tick)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._rx_timer is not None:
            self._rx_timer.cancel()
            self._rx_timer = None
        if self._loop is not None:
            if self._epoll is not None:
                if self._reading:
                    self._loop.remove_reader(self._epoll.fileno())
                self._reading = False
            else:
                for sock in self._socks.values():
                    self._loop.remove_reader(sock.fileno())
        self._loop = None

    def close(self) -> None:
        self.stop()
        for sock in [*self._socks.values(), *self._wild.values()]:
            sock.close()
        self._socks.clear()
        self._wild.clear()
        self._by_fd.clear()
        if self._epoll is not None:
            self._epoll.close()
            self._epoll = None

    def send_datagrams(self, datagrams: list[Datagram]) -> tuple[int, int]:
        """The engine's :class:`~imsconf.media.egress.PacketSink`: ``sendto`` from each datagram's local
        port; returns (dropped, refused)."""
        socks = self._socks
        dropped = refused = 0
        for port, data, addr in datagrams:
            sock = socks.get(port)
            if sock is None:
                continue
            try:
                sock.sendto(data, addr)
            except BlockingIOError:
                dropped += 1
            except OSError:
                refused += 1
        return dropped, refused

    def _on_tick(self) -> None:
        loop = self._loop
        if loop is None:
            return
        started = loop.time()
        t_work = time.perf_counter()
        deadline = self._t0 + self._n * TICK
        st = self.stats
        lag = started - deadline
        late = 0
        if lag > self.late_after:
            st.late += 1
            late = 1
        st.ticks += 1
        if self._settle:
            self._settle_ports(started)
        dropped, errors = self.engine.tick_send(started, self)
        st.send_dropped += dropped
        st.send_errors += errors
        if self.after_tick is not None:
            self.after_tick()
        durations = st.durations
        work = time.perf_counter() - t_work
        durations.append(work)
        st.lags.append(lag)
        if len(durations) > st.keep:
            del durations[: len(durations) - st.keep]
            del st.lags[: len(st.lags) - st.keep]
        # Next deadline; skip ahead (without catch-up bursts) if we are already past it.
        self._n += 1
        now = loop.time()
        nxt = self._t0 + self._n * TICK
        if nxt <= now:
            n_now = int((now - self._t0) / TICK) + 1
            st.skipped += n_now - self._n
            late += n_now - self._n
            self._n = n_now
            nxt = self._t0 + self._n * TICK
        self.engine.record_tick(work, late)  # the engine's figures (MixerStats), late and skipped ticks
        self._timer = loop.call_at(nxt, self._on_tick)


def local_media(
    engine: MediaEngine | None = None,
    host: str = "127.0.0.1",
    port_min: int = 40000,
    port_max: int = 49999,
) -> tuple[LocalMediaControl, UdpMediaTransport]:
    """The in-process media plane: an engine, its UDP adapter, and the control the focus drives.

    Call ``transport.start()`` inside the running loop; DTMF and RTCP events reach the sink given to
    ``control.set_event_sink`` after each tick.
    """
    engine = engine or MediaEngine()
    transport = UdpMediaTransport(engine, host, port_min, port_max)
    control = LocalMediaControl(engine, transport, now=transport.now)
    control.video = VideoPlane(host, port_min, port_max, allow_plain_rtp=engine.allow_plain_rtp)
    transport.after_tick = control.deliver_events
    return control, transport
