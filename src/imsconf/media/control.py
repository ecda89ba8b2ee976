"""The MRFC side: the interface the focus drives to get media for its legs.

:class:`MediaControl` is the seam. :class:`LocalMediaControl` implements it in process, over a
:class:`~imsconf.media.engine.MediaEngine` and a :class:`PortAllocator` (the UDP adapter in production,
a fake in tests). Every argument is a plain value (strings, ints, tuples, :class:`SrtpKeys`, an enum) so
the same calls can later travel over the mutual-TLS control channel to a separate mixer process.

Typical use by the focus, per participant::

    ports = media.allocate_leg(conf_id, leg_id, rtcp_mux=offer_has_rtcp_mux)   # -> our SDP answer
    media.configure_leg(leg_id, remote_rtp=(ip, port), remote_rtcp=None, codec_pt=0, codec_name="PCMU",
                        dtmf_pt=101, tx_keys=our_answer_key, rx_keys=their_offer_key,
                        direction=Direction.SENDRECV)
    media.update_leg(leg_id, direction=Direction.RECVONLY)   # they put us on hold (offered sendonly)
    media.update_leg(leg_id, rx_keys=new_offer_key)          # re-INVITE with a new a=crypto
    media.release_leg(leg_id)

``tx_keys`` is the key the mixer sends with (the one in *our* ``a=crypto``), ``rx_keys`` the key the
participant sends with (theirs). ``None`` for both means plain RTP, which the engine refuses unless it
was built with ``allow_plain_rtp=True``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

from .engine import (
    KEEP,
    Addr,
    Direction,
    Keep,
    LegConfig,
    LegStats,
    MediaEngine,
    MediaEngineError,
    MediaEvent,
)
from .srtp import SrtpKeys

__all__ = ["EventSink", "LegPorts", "LocalMediaControl", "MediaControl", "PortAllocator"]

EventSink = Callable[[MediaEvent], None]


@dataclass(frozen=True, slots=True)
class LegPorts:
    """Where a leg receives: goes into the SDP answer (``c=``, ``m=`` port, ``a=rtcp``)."""

    host: str
    rtp_port: int
    rtcp_port: int  # equal to rtp_port with rtcp-mux


class PortAllocator(Protocol):
    """Owns the sockets (the UDP adapter)."""

    @property
    def host(self) -> str: ...

    def open_ports(self, rtcp_mux: bool) -> tuple[int, int]: ...

    def close_ports(self, rtp_port: int, rtcp_port: int) -> None: ...


class MediaControl(Protocol):
    """What the focus needs from the media plane."""

    def allocate_leg(self, conference_id: str, leg_id: str, rtcp_mux: bool) -> LegPorts: ...

    def configure_leg(
        self,
        leg_id: str,
        *,
        remote_rtp: Addr,
        remote_rtcp: Addr | None,
        codec_pt: int,
        codec_name: str,
        dtmf_pt: int | None,
        tx_keys: SrtpKeys | None,
        rx_keys: SrtpKeys | None,
        direction: Direction = Direction.SENDRECV,
        latch: bool = False,
    ) -> None: ...

    def update_leg(
        self,
        leg_id: str,
        *,
        remote_rtp: Addr | None = None,
        remote_rtcp: Addr | None = None,
        codec_pt: int | None = None,
        codec_name: str | None = None,
        dtmf_pt: int | Keep | None = KEEP,
        direction: Direction | None = None,
        tx_keys: SrtpKeys | Keep | None = KEEP,
        rx_keys: SrtpKeys | Keep | None = KEEP,
    ) -> None: ...

    def release_leg(self, leg_id: str) -> None: ...

    def release_conference(self, conference_id: str) -> None: ...

    def leg_stats(self, leg_id: str) -> LegStats: ...

    def set_event_sink(self, sink: EventSink | None) -> None: ...


class LocalMediaControl:
    """In-process :class:`MediaControl` over an engine and a port allocator."""

    def __init__(
        self, engine: MediaEngine, ports: PortAllocator, now: Callable[[], float] | None = None
    ) -> None:
        self.engine = engine
        self._ports = ports
        self._sink: EventSink | None = None
        self._now = now
        self._configs: dict[str, LegConfig] = {}

    def allocate_leg(self, conference_id: str, leg_id: str, rtcp_mux: bool) -> LegPorts:
        if leg_id in self.engine.legs():
            raise MediaEngineError(f"leg {leg_id!r} exists")
        rtp_port, rtcp_port = self._ports.open_ports(rtcp_mux)
        try:
            self.engine.add_leg(leg_id, conference_id, rtp_port, rtcp_port, rtcp_mux)
        except BaseException:
            self._ports.close_ports(rtp_port, rtcp_port)
            raise
        return LegPorts(self._ports.host, rtp_port, rtcp_port)

    def configure_leg(
        self,
        leg_id: str,
        *,
        remote_rtp: Addr,
        remote_rtcp: Addr | None,
        codec_pt: int,
        codec_name: str,
        dtmf_pt: int | None,
        tx_keys: SrtpKeys | None,
        rx_keys: SrtpKeys | None,
        direction: Direction = Direction.SENDRECV,
        latch: bool = False,
    ) -> None:
        cfg = LegConfig(remote_rtp, remote_rtcp, codec_pt, codec_name, dtmf_pt, direction, latch)
        now = self._now() if self._now is not None else 0.0
        self.engine.configure_leg(leg_id, cfg, tx_keys, rx_keys, now)
        self._configs[leg_id] = cfg

    def update_leg(
        self,
        leg_id: str,
        *,
        remote_rtp: Addr | None = None,
        remote_rtcp: Addr | None = None,
        codec_pt: int | None = None,
        codec_name: str | None = None,
        dtmf_pt: int | Keep | None = KEEP,
        direction: Direction | None = None,
        tx_keys: SrtpKeys | Keep | None = KEEP,
        rx_keys: SrtpKeys | Keep | None = KEEP,
    ) -> None:
        old = self._configs.get(leg_id)
        if old is None:
            raise MediaEngineError(f"leg {leg_id!r} is not configured")
        changes: dict[str, object] = {}
        if remote_rtp is not None:
            changes["remote_rtp"] = remote_rtp
            changes["remote_rtcp"] = remote_rtcp  # None: derived again from the new RTP address
        elif remote_rtcp is not None:
            changes["remote_rtcp"] = remote_rtcp
        if codec_pt is not None:
            changes["codec_pt"] = codec_pt
        if codec_name is not None:
            changes["codec_name"] = codec_name
        if not isinstance(dtmf_pt, Keep):
            changes["dtmf_pt"] = dtmf_pt
        if direction is not None:
            changes["direction"] = direction
        cfg = replace(old, **changes) if changes else None  # type: ignore[arg-type]
        self.engine.update_leg(leg_id, config=cfg, tx_keys=tx_keys, rx_keys=rx_keys)
        if cfg is not None:
            self._configs[leg_id] = cfg

    def release_leg(self, leg_id: str) -> None:
        rtp_port, rtcp_port = self.engine.leg_ports(leg_id)
        self.engine.remove_leg(leg_id)
        self._configs.pop(leg_id, None)
        self._ports.close_ports(rtp_port, rtcp_port)

    def release_conference(self, conference_id: str) -> None:
        for leg_id in [lid for lid in self.engine.legs() if self.engine.leg_conference(lid) == conference_id]:
            self.release_leg(leg_id)

    def leg_stats(self, leg_id: str) -> LegStats:
        return self.engine.leg_stats(leg_id)

    def set_event_sink(self, sink: EventSink | None) -> None:
        self._sink = sink

    def deliver_events(self) -> None:
        """Hand the engine's queued events to the sink (the adapter calls this after each tick)."""
        if not self.engine.has_events:
            return
        events = self.engine.events()
        sink = self._sink
        if sink is not None:
            for ev in events:
                sink(ev)
