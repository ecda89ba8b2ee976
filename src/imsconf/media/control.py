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
    # a wideband codec: its RTP clock and the a=fmtp parameters the peer gave (sorted (name, value) pairs)
    media.configure_leg(leg_id, ..., codec_pt=96, codec_name="AMR-WB", codec_clock=16000,
                        codec_params=(("mode-set", "0,1,2"), ("octet-align", "1")), ...)
    media.update_leg(leg_id, direction=Direction.RECVONLY)   # they put us on hold (offered sendonly)
    media.update_leg(leg_id, rx_keys=new_offer_key)          # re-INVITE with a new a=crypto
    media.release_leg(leg_id)

``tx_keys`` is the key the mixer sends with (the one in *our* ``a=crypto``), ``rx_keys`` the key the
participant sends with (theirs). ``None`` for both means plain RTP, which the engine refuses unless it
was built with ``allow_plain_rtp=True``.

Group downlink keying (driven by the key manager in :mod:`imsconf.keys`, which decides; the mixer
executes)::

    media.set_downlink_mode(conf_id, DownlinkMode.GROUP)
    media.add_group_epoch(conf_id, epoch, group_key, ssrc)         # Rekey: a new common stream
    media.set_listener_stream(leg_id, epoch, speaker_ssrc=s, keep_own=True)   # SwitchListener
    media.set_listener_stream(leg_id, epoch, speaker_ssrc=s, keep_own=False)  # SettleListener
    media.set_listener_stream(leg_id, None)                        # DemoteListener: own key again
    media.retire_group_epoch(conf_id, old_epoch)                   # RetireEpoch

and answers with :class:`GroupStreamConfirmed` / :class:`GroupStreamFailing` events (from the listeners'
SRTCP receiver reports) through the event sink. Floor-controlled audio: ``set_floor_control`` and
``set_floor_holders``. Lobby (PIN collection): ``set_lobby(leg, True)`` + ``play_prompt(leg, "enter-pin")``;
DTMF keeps arriving as :class:`DtmfReceived`; ``set_lobby(leg, False)`` joins the conference.
Operator control:
``set_leg_mix(leg, muted=..., deaf=...)`` (mute: mixed into nobody's audio; deaf: hears silence, prompts
still play); :class:`SpeakingChanged` events report who speaks. Metrics: ``mixer_stats()``
(:class:`MixerStats`), and ``leg_stats`` per leg.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

from imsconf.keys.policy import DownlinkMode
from imsconf.sdp.direction import Direction

from .engine import (
    KEEP,
    Addr,
    Keep,
    LegConfig,
    LegStats,
    MediaEngine,
    MediaEngineError,
    MediaEvent,
)
from .events import GroupEpochStats, MixerStats
from .srtp import SrtpKeys
from .video_plane import LocalVideoControl

__all__ = [
    "EventSink",
    "LegPorts",
    "LocalMediaControl",
    "MediaControl",
    "NullMediaControl",
    "NullPortAllocator",
    "PortAllocator",
]

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


class NullPortAllocator:
    """A complete :class:`PortAllocator` without sockets: consecutive even RTP ports from ``first`` (the
    next odd one for RTCP unless rtcp-mux); closing does nothing. Test fakes subclass it."""

    def __init__(self, host: str = "127.0.0.1", first: int = 40000) -> None:
        self.host = host
        self.next = first

    def open_ports(self, rtcp_mux: bool) -> tuple[int, int]:
        p = self.next
        self.next += 2
        return (p, p) if rtcp_mux else (p, p + 1)

    def close_ports(self, rtp_port: int, rtcp_port: int) -> None:
        return None


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
        codec_clock: int = 8000,
        codec_params: tuple[tuple[str, str], ...] = (),
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
        codec_clock: int | None = None,
        codec_params: tuple[tuple[str, str], ...] | None = None,
    ) -> None: ...

    def release_leg(self, leg_id: str) -> None: ...

    def release_conference(self, conference_id: str) -> None: ...

    def leg_stats(self, leg_id: str) -> LegStats: ...

    def set_event_sink(self, sink: EventSink | None) -> None: ...

    # group downlink keying
    def set_downlink_mode(self, conference_id: str, mode: DownlinkMode) -> None: ...

    def add_group_epoch(
        self,
        conference_id: str,
        epoch: int,
        keys: SrtpKeys,
        ssrc: int,
        *,
        codec_name: str = "PCMU",
        codec_pt: int = 0,
    ) -> None: ...

    def retire_group_epoch(self, conference_id: str, epoch: int) -> None: ...

    def set_listener_stream(
        self, leg_id: str, epoch: int | None, *, speaker_ssrc: int | None = None, keep_own: bool = False
    ) -> None: ...

    # floor-controlled audio
    def set_floor_control(self, conference_id: str, enabled: bool) -> None: ...

    def set_floor_holders(self, conference_id: str, leg_ids: frozenset[str]) -> None: ...

    # lobby and prompts
    def set_lobby(self, leg_id: str, in_lobby: bool) -> None: ...

    def play_prompt(self, leg_id: str, name: str | None, loop: bool = True) -> None: ...

    # operator control and figures
    def set_leg_mix(self, leg_id: str, *, muted: bool, deaf: bool) -> None:
        """Mute (the leg's audio goes into nobody's mix, it never speaks; DTMF, RTCP, SRTP and counters
        go on) and deaf (it receives silence in its codec, one packet per tick, prompts still play).
        Idempotent; kept across configure/update of the leg; an unknown leg is a MediaEngineError."""
        ...

    def mixer_stats(self) -> MixerStats:
        """The mixer's process-wide figures (a separate mixer's: the last ones it sent, within a second)."""
        ...

    # presentation video switching (imsconf.media.video_plane)
    def allocate_video(self, conference_id: str, leg_id: str, rtcp_mux: bool) -> LegPorts: ...

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
    ) -> None: ...

    def release_video(self, leg_id: str) -> None: ...

    def set_video_source(self, conference_id: str, leg_id: str | None) -> None: ...


class NullMediaControl:
    """A complete :class:`MediaControl` that carries no media: every call is accepted and does nothing.

    Test doubles subclass it and override what they observe, so that every seam method exists on every
    implementation and production code never has to ask whether one does. :meth:`allocate_leg` and
    :meth:`allocate_video` hand out distinct ports from a documentation range (RFC 5737 TEST-NET-2).
    """

    host = "198.51.100.1"

    def __init__(self) -> None:
        self._next_port = 30000

    def _ports(self, rtcp_mux: bool) -> LegPorts:
        port = self._next_port
        self._next_port += 2
        return LegPorts(self.host, port, port if rtcp_mux else port + 1)

    def allocate_leg(self, conference_id: str, leg_id: str, rtcp_mux: bool) -> LegPorts:
        return self._ports(rtcp_mux)

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
        codec_clock: int = 8000,
        codec_params: tuple[tuple[str, str], ...] = (),
    ) -> None:
        return None

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
        codec_clock: int | None = None,
        codec_params: tuple[tuple[str, str], ...] | None = None,
    ) -> None:
        return None

    def release_leg(self, leg_id: str) -> None:
        return None

    def release_conference(self, conference_id: str) -> None:
        return None

    def leg_stats(self, leg_id: str) -> LegStats:
        return LegStats(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, remote_ssrc=None)

    def set_event_sink(self, sink: EventSink | None) -> None:
        return None

    def set_downlink_mode(self, conference_id: str, mode: DownlinkMode) -> None:
        return None

    def add_group_epoch(
        self,
        conference_id: str,
        epoch: int,
        keys: SrtpKeys,
        ssrc: int,
        *,
        codec_name: str = "PCMU",
        codec_pt: int = 0,
    ) -> None:
        return None

    def retire_group_epoch(self, conference_id: str, epoch: int) -> None:
        return None

    def set_listener_stream(
        self, leg_id: str, epoch: int | None, *, speaker_ssrc: int | None = None, keep_own: bool = False
    ) -> None:
        return None

    def set_floor_control(self, conference_id: str, enabled: bool) -> None:
        return None

    def set_floor_holders(self, conference_id: str, leg_ids: frozenset[str]) -> None:
        return None

    def set_lobby(self, leg_id: str, in_lobby: bool) -> None:
        return None

    def play_prompt(self, leg_id: str, name: str | None, loop: bool = True) -> None:
        return None

    def set_leg_mix(self, leg_id: str, *, muted: bool, deaf: bool) -> None:
        return None

    def mixer_stats(self) -> MixerStats:
        return MixerStats()

    def allocate_video(self, conference_id: str, leg_id: str, rtcp_mux: bool) -> LegPorts:
        return self._ports(rtcp_mux)

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
        return None

    def release_video(self, leg_id: str) -> None:
        return None

    def set_video_source(self, conference_id: str, leg_id: str | None) -> None:
        return None


class LocalMediaControl(LocalVideoControl):
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
        codec_clock: int = 8000,
        codec_params: tuple[tuple[str, str], ...] = (),
    ) -> None:
        cfg = LegConfig(
            remote_rtp,
            remote_rtcp,
            codec_pt,
            codec_name,
            dtmf_pt,
            direction,
            latch,
            codec_clock=codec_clock,
            codec_params=tuple(codec_params),
        )
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
        codec_clock: int | None = None,
        codec_params: tuple[tuple[str, str], ...] | None = None,
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
        if codec_clock is not None:
            changes["codec_clock"] = codec_clock
        if codec_params is not None:
            changes["codec_params"] = tuple(codec_params)
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
        self.engine.drop_conference(conference_id)
        self.release_video_conference(conference_id)

    def leg_stats(self, leg_id: str) -> LegStats:
        return self.engine.leg_stats(leg_id)

    def set_event_sink(self, sink: EventSink | None) -> None:
        self._sink = sink

    def set_downlink_mode(self, conference_id: str, mode: DownlinkMode) -> None:
        self.engine.set_downlink_mode(conference_id, mode)

    def add_group_epoch(
        self,
        conference_id: str,
        epoch: int,
        keys: SrtpKeys,
        ssrc: int,
        *,
        codec_name: str = "PCMU",
        codec_pt: int = 0,
    ) -> None:
        self.engine.add_group_epoch(
            conference_id, epoch, keys, ssrc, codec_name=codec_name, codec_pt=codec_pt
        )

    def retire_group_epoch(self, conference_id: str, epoch: int) -> None:
        self.engine.retire_group_epoch(conference_id, epoch)

    def set_listener_stream(
        self, leg_id: str, epoch: int | None, *, speaker_ssrc: int | None = None, keep_own: bool = False
    ) -> None:
        self.engine.set_listener_stream(leg_id, epoch, speaker_ssrc=speaker_ssrc, keep_own=keep_own)

    def set_floor_control(self, conference_id: str, enabled: bool) -> None:
        self.engine.set_floor_control(conference_id, enabled)

    def set_floor_holders(self, conference_id: str, leg_ids: frozenset[str]) -> None:
        self.engine.set_floor_holders(conference_id, leg_ids)

    def set_lobby(self, leg_id: str, in_lobby: bool) -> None:
        self.engine.set_lobby(leg_id, in_lobby)

    def play_prompt(self, leg_id: str, name: str | None, loop: bool = True) -> None:
        self.engine.play_prompt(leg_id, name, loop)

    def set_leg_mix(self, leg_id: str, *, muted: bool, deaf: bool) -> None:
        self.engine.set_leg_mix(leg_id, muted=muted, deaf=deaf)

    def mixer_stats(self) -> MixerStats:
        return self.engine.mixer_stats()

    def group_epoch_stats(self, conference_id: str, epoch: int) -> GroupEpochStats:
        """Mixer-side statistics (not part of :class:`MediaControl`: they stay in the mixer process)."""
        return self.engine.group_epoch_stats(conference_id, epoch)

    def deliver_events(self) -> None:
        """Hand the engine's queued events to the sink (the adapter calls this after each tick)."""
        if not self.engine.has_events:
            return
        events = self.engine.events()
        sink = self._sink
        if sink is not None:
            for ev in events:
                sink(ev)
