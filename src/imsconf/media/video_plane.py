"""The video plane of the mixer: the :class:`~imsconf.media.video.VideoSwitch`, its UDP sockets, and the
video calls of :class:`~imsconf.media.control.MediaControl` (mixed into ``LocalMediaControl``).

Video is low-rate next to the 20 ms audio tick and is forwarded as it arrives, so the adapter is simple:
one non-blocking socket per port, read with ``loop.add_reader`` until ``BlockingIOError``, each datagram
handed to the switch and its outputs sent at once with ``sendto``.  Ports come from the same range as the
audio legs (every bind is a plain bind, so the two allocators never take the same port) and are handed
out from the top of the range down; a separate mixer hands the focus pre-bound pairs and binds the one
chosen (:meth:`UdpVideoTransport.open_ports_at`).

Control calls (the focus drives them; keys come from the key authority)::

    ports = media.allocate_video(conf_id, leg_id, rtcp_mux=True)   # -> the m=video port of our answer
    media.configure_video(leg_id, remote_rtp=(ip, port), remote_rtcp=None, payload_type=96,
                          codec_name="H264", clock_rate=90000, direction=Direction.SENDRECV,
                          pli=True, tx_keys=our_video_key, rx_keys=their_video_key)
    media.set_video_source(conf_id, leg_id)                         # the presentation floor holder
    media.set_video_source(conf_id, None)                           # nobody: no video goes out
    media.release_video(leg_id)
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import time
from typing import TYPE_CHECKING

from imsconf.sdp.direction import Direction

from .events import Addr, Datagram, MediaEngineError
from .srtp import SrtpKeys
from .video import VideoLegConfig, VideoLegStats, VideoSwitch

if TYPE_CHECKING:
    from .control import LegPorts

__all__ = ["LocalVideoControl", "UdpVideoTransport", "VideoPlane"]

log = logging.getLogger("imsconf.media.video")
_RECV_SIZE = 4096
_DRAIN_MAX = 128


class UdpVideoTransport:
    """The sockets of the video legs."""

    def __init__(self, switch: VideoSwitch, host: str, port_min: int = 40000, port_max: int = 49999) -> None:
        self.switch = switch
        self.host = host
        self._min = port_min + (port_min % 2)
        self._max = port_max
        self._next = self._max - 1 - ((self._max - 1) % 2)  # even, from the top down
        self._socks: dict[int, socket.socket] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self.send_errors = 0
        self.recv_errors = 0

    def _bind(self, port: int) -> socket.socket | None:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.bind((self.host, port))
        except OSError as exc:
            sock.close()
            if exc.errno == errno.EADDRINUSE:
                return None
            raise
        sock.setblocking(False)
        return sock

    def open_ports(self, rtcp_mux: bool) -> tuple[int, int]:
        for _ in range(self._min, self._max, 2):
            port = self._next
            self._next -= 2
            if self._next < self._min:
                self._next = self._max - 1 - ((self._max - 1) % 2)
            if port in self._socks or port + 1 in self._socks:
                continue
            rtp = self._bind(port)
            if rtp is None:
                continue
            if rtcp_mux:
                self._add(port, rtp)
                return port, port
            rtcp = self._bind(port + 1)
            if rtcp is None:
                rtp.close()
                continue
            self._add(port, rtp)
            self._add(port + 1, rtcp)
            return port, port + 1
        raise OSError(errno.EADDRINUSE, "media port range exhausted (video)")

    def open_ports_at(self, rtp_port: int, rtcp_port: int, rtcp_mux: bool) -> tuple[int, int]:
        """Bind exactly these ports (a pair the mixer offered and has just let go)."""
        rtp = self._bind(rtp_port)
        if rtp is None:
            raise MediaEngineError(f"video port {rtp_port} is taken")
        if rtcp_mux:
            self._add(rtp_port, rtp)
            return rtp_port, rtp_port
        rtcp = self._bind(rtcp_port)
        if rtcp is None:
            rtp.close()
            raise MediaEngineError(f"video port {rtcp_port} is taken")
        self._add(rtp_port, rtp)
        self._add(rtcp_port, rtcp)
        return rtp_port, rtcp_port

    def close_ports(self, rtp_port: int, rtcp_port: int) -> None:
        for port in {rtp_port, rtcp_port}:
            sock = self._socks.pop(port, None)
            if sock is None:
                continue
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(sock.fileno())
            sock.close()

    def _add(self, port: int, sock: socket.socket) -> None:
        self._socks[port] = sock
        loop = self._loop
        if loop is None:
            try:
                loop = self._loop = asyncio.get_running_loop()
            except RuntimeError:
                return  # attached by the first open inside the loop
            for p, s in self._socks.items():
                loop.add_reader(s.fileno(), self._on_readable, s, p)
            return
        loop.add_reader(sock.fileno(), self._on_readable, sock, port)

    def _on_readable(self, sock: socket.socket, port: int) -> None:
        assert self._loop is not None
        now = self._loop.time()
        for _ in range(_DRAIN_MAX):
            try:
                data, addr = sock.recvfrom(_RECV_SIZE)
            except BlockingIOError:
                return
            except OSError:
                self.recv_errors += 1
                return
            try:
                out = self.switch.receive(port, data, (str(addr[0]), int(addr[1])), now)
            except Exception:  # one bad packet must not stop the reader
                log.exception("event=video_receive_error port=%d", port)
                continue
            self.send(out)

    def send(self, datagrams: list[Datagram]) -> None:
        for port, data, dest in datagrams:
            sock = self._socks.get(port)
            if sock is None:
                continue
            try:
                sock.sendto(data, dest)
            except OSError:
                self.send_errors += 1

    def now(self) -> float:
        return self._loop.time() if self._loop is not None else time.monotonic()

    def close(self) -> None:
        for port in list(self._socks):
            self.close_ports(port, port)


class VideoPlane:
    """A switch and its sockets."""

    def __init__(
        self, host: str, port_min: int = 40000, port_max: int = 49999, *, allow_plain_rtp: bool = False
    ) -> None:
        self.switch = VideoSwitch(allow_plain_rtp=allow_plain_rtp)
        self.transport = UdpVideoTransport(self.switch, host, port_min, port_max)


class LocalVideoControl:
    """The video calls of ``LocalMediaControl`` (a mixin: it only needs ``self.video``)."""

    video: VideoPlane | None = None

    def _video(self) -> VideoPlane:
        if self.video is None:
            raise MediaEngineError("this mixer has no video plane")
        return self.video

    def allocate_video(
        self, conference_id: str, leg_id: str, rtcp_mux: bool, *, ports: tuple[int, int] | None = None
    ) -> LegPorts:
        from .control import LegPorts

        plane = self._video()
        if leg_id in plane.switch.legs():
            raise MediaEngineError(f"video leg {leg_id!r} exists")
        if ports is None:
            rtp, rtcp = plane.transport.open_ports(rtcp_mux)
        else:
            rtp, rtcp = plane.transport.open_ports_at(ports[0], ports[1], rtcp_mux)
        plane.switch.add_leg(leg_id, conference_id, rtp, rtcp, rtcp_mux)
        return LegPorts(plane.transport.host, rtp, rtcp)

    def configure_video(
        self,
        leg_id: str,
        *,
        remote_rtp: Addr,
        remote_rtcp: Addr | None,
        payload_type: int,
        codec_name: str,
        clock_rate: int = 90000,
        direction: Direction = Direction.SENDRECV,
        pli: bool = False,
        tx_keys: SrtpKeys | None,
        rx_keys: SrtpKeys | None,
    ) -> None:
        cfg = VideoLegConfig(remote_rtp, remote_rtcp, payload_type, codec_name, clock_rate, direction, pli)
        self._video().switch.configure_leg(leg_id, cfg, tx_keys, rx_keys)

    def release_video(self, leg_id: str) -> None:
        plane = self._video()
        if leg_id not in plane.switch.legs():
            return
        rtp, rtcp = plane.switch.leg_ports(leg_id)
        plane.switch.remove_leg(leg_id)
        plane.transport.close_ports(rtp, rtcp)

    def set_video_source(self, conference_id: str, leg_id: str | None) -> None:
        plane = self._video()
        plane.transport.send(plane.switch.set_source(conference_id, leg_id, plane.transport.now()))

    def release_video_conference(self, conference_id: str) -> None:
        if self.video is None:
            return
        for leg_id in [
            lid for lid in self.video.switch.legs() if self.video.switch.leg_conference(lid) == conference_id
        ]:
            self.release_video(leg_id)
        self.video.switch.drop_conference(conference_id)

    def video_stats(self, leg_id: str) -> VideoLegStats:
        """Mixer-side statistics (not carried over the control channel)."""
        return self._video().switch.stats(leg_id)
