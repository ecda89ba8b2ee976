"""The conference media engine (MRFP core), sans-I/O.

Driven by the UDP adapter (:mod:`imsconf.media.udp`) or by tests in memory:

* :meth:`MediaEngine.receive_batch` with ``now`` (monotonic seconds) and the datagrams that arrived,
  each with the local port it arrived on and its source address;
* :meth:`MediaEngine.tick` every 20 ms, which returns the datagrams to send as
  ``(local_port, data, remote_addr)``;
* :meth:`MediaEngine.events` to drain DTMF, RTCP and latching events.

Parts. :class:`MediaEngine` is a front (leg registry and control plane, this module) that owns one
:class:`~imsconf.media.legs.LegTable` (:mod:`imsconf.media.legs`: the per-leg records, the conferences'
settings, the lists rebuilt from them) and the parts composed over it. Each part receives the table in
its constructor, and the other part it needs as a narrow ``typing.Protocol`` port; none inherits from
another or from the table:

* :class:`~imsconf.media.ingress.Ingress` (the one receive entry point and its paths; receiver-report
  evidence to the group downlink through :class:`~imsconf.media.ingress.GroupEvidence`);
* :class:`~imsconf.media.egress.Egress` (packetise, protect, send through the egress ports
  :class:`~imsconf.media.egress.PacketSink` and :class:`~imsconf.media.egress.RtpBatchSink`; RTCP; the
  epochs' streams through :class:`~imsconf.media.egress.GroupSend`);
* :class:`~imsconf.media.mixdown.Mixdown` (the tick: play-out, speaker choice, common and N-1 mixes;
  sends through :class:`~imsconf.media.mixdown.TickSend`, prompt frames through
  :class:`~imsconf.media.mixdown.PromptFrames`);
* :class:`~imsconf.media.group_downlink.GroupDownlink` (epochs, common and private streams,
  receiver-report evidence) and :class:`~imsconf.media.lobby.Lobby` (floor-controlled mixing, lobby,
  prompts).

The front's methods delegate to them. The per-packet and per-tick loops read the shared table through
locals bound once per call, so the extra attribute hop is paid per call, not per packet or leg.

Source addresses. A leg accepts RTP only from the address the remote SDP gave (``remote_rtp``; RTCP
from ``remote_rtcp``, or the RTP address with rtcp-mux) and counts anything else as ``wrong_source``.
With ``latch=True`` (off by default) the first packet that *authenticates* (SRTP) from another address
moves the leg to that address once; afterwards the leg is strict again. Addresses are compared as
``(numeric_ip, port)``, so the focus must hand numeric addresses.

Direction (:class:`Direction`) is the mixer's side of the SDP, i.e. what our answer says:

========== =================================== ======================== ===========================
direction   typical cause                        participant's audio       participant receives
========== =================================== ======================== ===========================
sendrecv    normal                               mixed                     the mix
sendonly    participant offered recvonly         dropped (not mixed)       the mix
recvonly    participant holds (offered sendonly) dropped (no music on hold)  nothing
inactive    hold / inactive                      dropped                   nothing
========== =================================== ======================== ===========================

RTCP keeps flowing in every direction (RFC 3264 §5.1).

Outbound streams: each leg has its own SSRC, sequence number and timestamp (random starts, timestamp
+160 per tick whether or not a packet goes out), protected with the leg's own transmit key. A new
transmit key starts a new SSRC, so one (key, SSRC) pair only ever carries one packet sequence.

Hot path. Besides the sans-I/O :meth:`MediaEngine.receive_batch` / :meth:`MediaEngine.tick`, the UDP
adapter uses a fast path with the same behaviour: a datagram read from a socket *connected* to the leg's
remote RTP address (the kernel has then checked the source) goes to :meth:`MediaEngine.receive_batch`
without a source and is unprotected in place in the engine's receive buffer; and the adapter registers
a send function per leg (:meth:`MediaEngine.set_send`) so that :meth:`MediaEngine.tick_send` protects
each outgoing packet in one preallocated buffer and sends it without building a datagram list (the rest
goes to the adapter as the egress port, :class:`~imsconf.media.egress.PacketSink`). libsrtp is
called through pylibsrtp's cffi binding directly (``srtp_protect``/``srtp_unprotect`` on the session
handle), without a per-packet copy or ``bytes`` object. Anything unusual (RTCP, DTMF, a new SSRC, a
pending rekey, latching, CSRCs or extensions) falls back to the full receive path.

C path (docs/decisions/0004). With the ``_fastpath`` extension (:attr:`MediaEngine.c_path`) the same fast path
runs in C: each leg owns a slot of :class:`~imsconf.media.fastpath.SlotTable` that holds its transmit state,
its jitter buffer and its reception statistics; :meth:`MediaEngine.receive_batch` with the adapter's epoll set
receives through it (one call per drain round), the tick plays out and sends through it
(:class:`~imsconf.media.egress.RtpBatchSink`, one call per tick). Same counters, events and fallbacks as the
Python fast path.

Group downlink. Per conference, :meth:`MediaEngine.set_downlink_mode` chooses
``per-participant`` (default) or ``group``. In group mode the key manager adds epochs
(:meth:`MediaEngine.add_group_epoch`: a key, a fresh SSRC) and puts legs on them
(:meth:`MediaEngine.set_listener_stream`). Each tick, an epoch's *common* packet (the conference mix of the
K speakers, the epoch's own SSRC, sequence and timestamp) is built and protected **once** and the same bytes
go to every listener on it. A listener that is a speaker this tick (or hears a prompt) gets instead a
*private* packet: its N-1 mix under the epoch key on its own private SSRC (the phone holds only the epoch
key for our direction once it moved to it). Speaker choice, mix and fan-out happen in the same tick, so
nobody hears itself and every listener gets exactly one packet per tick across speaker changes and epoch
switches. No (key, SSRC) pair ever carries two packet sequences: an epoch's SSRC and every private SSRC
are new to the conference and never handed out again. SRTCP receiver reports from a listener that name
its epoch's SSRCs become :class:`GroupStreamConfirmed` / :class:`GroupStreamFailing`.

Floor control: with :meth:`MediaEngine.set_floor_control` on, only the legs named by
:meth:`MediaEngine.set_floor_holders` are mixed. Lobby: a leg in :meth:`MediaEngine.set_lobby`
is not mixed and hears its prompt (:meth:`MediaEngine.play_prompt`, :mod:`imsconf.media.prompts`) or
silence, on its own stream. Operator control (:meth:`MediaEngine.set_leg_mix`): a muted leg is mixed
into nobody's audio, a deaf one hears silence (its prompts still play), both above the per-packet path,
so the C and Python paths behave alike.

Speaking: the tick's chosen speakers feed a hysteresis (chosen on two consecutive ticks: speaking; 300 ms
not chosen: not speaking) that reports changes only, as :class:`SpeakingChanged` events.

Figures: :meth:`MediaEngine.mixer_stats` (:class:`MixerStats`) sums the legs' counters with those of
released legs (:mod:`imsconf.media.figures`); the tick-work histogram is what the adapter measured and
handed to :meth:`MediaEngine.record_tick`.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable

from imsconf.keys.policy import DownlinkMode
from imsconf.sdp.direction import Direction

from .codec_port import Codec, CodecError, CodecFactory, negotiated_codec
from .dtmf import DtmfReceiver
from .egress import Egress, PacketSink
from .events import (
    G711_NAMES,
    KEEP,
    Addr,
    Datagram,
    DtmfReceived,
    GroupEpochStats,
    GroupStreamConfirmed,
    GroupStreamFailing,
    InboundKeyConfirmed,
    Keep,
    LegConfig,
    LegStats,
    MediaEngineError,
    MediaEvent,
    MixerStats,
    PromptFinished,
    RtcpReport,
    SourceLatched,
    SpeakingChanged,
)
from .fastpath import (
    RECEIVED,
    SENT,
    SILENCE,
    SlotJitter,
    SlotReceptionStats,
    SlotTable,
)
from .g711 import codec_by_name
from .group_downlink import GroupDownlink
from .ingress import Ingress, Received
from .jitter import JitterBuffer
from .legs import TS_MASK, ConfSettings, Leg, LegTable, RemoteListener, SendFunc
from .lobby import Lobby
from .mixdown import Mixdown
from .mixer import CODEC_IDS, FRAME_SAMPLES
from .rtp import (
    ReceptionStats,
)
from .srtp import (
    NullReceiver,
    SrtpKeys,
    SrtpReceiver,
    make_receiver,
    make_sender,
)
from .wideband import WidebandMix

__all__ = [
    "KEEP",
    "Addr",
    "Datagram",
    "DtmfReceived",
    "GroupEpochStats",
    "GroupStreamConfirmed",
    "GroupStreamFailing",
    "InboundKeyConfirmed",
    "Keep",
    "LegConfig",
    "LegStats",
    "MediaEngine",
    "MediaEngineError",
    "MediaEvent",
    "MixerStats",
    "PromptFinished",
    "RtcpReport",
    "SourceLatched",
    "SpeakingChanged",
]


class MediaEngine:
    """All legs and conferences of one mixer. Single-threaded; every method takes ``now`` where time
    matters. ``wallclock`` is used only for RTCP NTP timestamps. The front of the engine: it owns the
    shared :class:`~imsconf.media.legs.LegTable` and the parts composed over it, keeps the leg registry
    and its control plane here and delegates the rest to the parts."""

    def __init__(
        self,
        *,
        k: int = 3,
        jitter_delay: float = 0.060,
        jitter_capacity: float = 0.200,
        allow_plain_rtp: bool = False,
        rtcp_interval: float = 5.0,
        cname: str = "imsconf-mixer",
        wallclock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        confirm_max_loss: int = 26,
        failing_min_loss: int = 230,
        codecs: CodecFactory = negotiated_codec,
    ) -> None:
        self.codecs = codecs  # makes the Codec of a leg whose codec is not G.711
        self.table = table = LegTable(
            k=k,
            jitter_delay=jitter_delay,
            jitter_capacity=jitter_capacity,
            allow_plain_rtp=allow_plain_rtp,
            rtcp_interval=rtcp_interval,
            cname=cname,
            wallclock=wallclock,
            rng=rng,
            confirm_max_loss=confirm_max_loss,
            failing_min_loss=failing_min_loss,
        )
        self.group_part = GroupDownlink(table)
        self.lobby_part = Lobby(table)
        self.ingress = Ingress(table, self.group_part)
        self.egress = Egress(table, self.group_part)
        self.wideband = WidebandMix(table, self.egress, codecs, self.group_part)
        self.mixdown = Mixdown(table, self.egress, self.lobby_part, self.wideband)

    # ------------------------------------------------------------------------------ shared state, read

    @property
    def c_path(self) -> bool:
        """Whether the C per-packet path (:mod:`imsconf.media.fastpath`) runs."""
        return self.table.c_path

    @property
    def allow_plain_rtp(self) -> bool:
        return self.table.allow_plain_rtp

    @property
    def slots(self) -> SlotTable:
        return self.table.slots

    @property
    def leg_map(self) -> dict[str, Leg]:
        return self.table.leg_map

    @property
    def conf_map(self) -> dict[str, ConfSettings]:
        return self.table.conf_map

    @property
    def ticks(self) -> int:
        return self.table.ticks

    @property
    def unknown_port(self) -> int:
        """Datagrams that arrived on a local port no leg holds."""
        return self.table.unknown_port

    @property
    def tick_protects(self) -> int:
        """srtp_protect calls for RTP in the last tick."""
        return self.table.tick_protects

    @property
    def tick_sent(self) -> int:
        """RTP datagrams produced in the last tick."""
        return self.table.tick_sent

    @property
    def remote_listener(self) -> RemoteListener | None:
        """Called with (RTP port, remote RTP address or ``None``) when a leg's remote RTP address changes
        (latching, a new config, the leg's removal): the UDP adapter reconnects its socket."""
        return self.table.remote_listener

    @remote_listener.setter
    def remote_listener(self, listener: RemoteListener | None) -> None:
        self.table.remote_listener = listener

    # ------------------------------------------------------------------------------ receive, tick, send

    def receive_batch(
        self, now: float, datagrams: Iterable[Received] = (), epfd: int = -1
    ) -> tuple[int, int, list[int]]:
        """See :meth:`imsconf.media.ingress.Ingress.receive_batch`."""
        return self.ingress.receive_batch(now, datagrams, epfd)

    def map_fast_fd(self, fd: int, rtp_port: int) -> bool:
        """See :meth:`imsconf.media.ingress.Ingress.map_fast_fd`."""
        return self.ingress.map_fast_fd(fd, rtp_port)

    def unmap_fast_fd(self, fd: int) -> None:
        self.ingress.unmap_fast_fd(fd)

    def tick(self, now: float) -> list[Datagram]:
        """See :meth:`imsconf.media.mixdown.Mixdown.tick`."""
        return self.mixdown.run_tick(now, None)

    def tick_send(self, now: float, sink: PacketSink) -> tuple[int, int]:
        """See :meth:`imsconf.media.mixdown.Mixdown.tick_send`."""
        return self.mixdown.tick_send(now, sink)

    def set_send(self, rtp_port: int, send: SendFunc | None, fd: int = -1) -> None:
        """See :meth:`imsconf.media.egress.Egress.set_send`."""
        self.egress.set_send(rtp_port, send, fd)

    def remote_rtp(self, rtp_port: int) -> Addr | None:
        """See :meth:`imsconf.media.egress.Egress.remote_rtp`."""
        return self.egress.remote_rtp(rtp_port)

    # ------------------------------------------------------------------------------ legs

    def add_leg(self, leg_id: str, conference_id: str, rtp_port: int, rtcp_port: int, rtcp_mux: bool) -> None:
        """Register a leg on its local ports. It stays silent until :meth:`configure_leg`."""
        t = self.table
        if leg_id in t.leg_map:
            raise MediaEngineError(f"leg {leg_id!r} exists")
        ports = {rtp_port} if rtcp_mux else {rtp_port, rtcp_port}
        if rtcp_mux and rtcp_port != rtp_port:
            raise MediaEngineError("with rtcp-mux the RTCP port is the RTP port")
        if any(p in t.port_map for p in ports) or len(ports) != (1 if rtcp_mux else 2):
            raise MediaEngineError("local port already in use")
        leg = Leg(leg_id, conference_id, rtp_port, rtcp_port, rtcp_mux, t.slots)
        if t.c_path:  # jitter buffer and reception statistics in the slot, kept by C on the fast path
            leg.jitter = SlotJitter(t.slots, leg.slot, t.jitter_delay, t.jitter_capacity)
            leg.rstats = SlotReceptionStats(t.slots, leg.slot)
        else:
            leg.jitter = JitterBuffer(delay=t.jitter_delay, capacity=t.jitter_capacity)
        leg.ssrc = t.new_ssrc()
        leg.seq = t.rng.randrange(1 << 16)
        leg.ts0 = (t.rng.randrange(1 << 32) - FRAME_SAMPLES * t.ticks) & TS_MASK
        t.leg_map[leg_id] = leg
        t.port_map[rtp_port] = (leg, False)
        if not rtcp_mux:
            t.port_map[rtcp_port] = (leg, True)
        t.dirty = True

    def configure_leg(
        self,
        leg_id: str,
        config: LegConfig,
        tx_keys: SrtpKeys | None,
        rx_keys: SrtpKeys | None,
        now: float = 0.0,
    ) -> None:
        """Apply the negotiated session. The engine derives libsrtp sessions from the keys and keeps no
        reference to them: the caller may :meth:`SrtpKeys.wipe` them afterwards."""
        t = self.table
        leg = t.get_leg(leg_id)
        if (tx_keys is None or rx_keys is None) and not t.allow_plain_rtp:
            raise MediaEngineError("plain RTP is disabled: SRTP keys are required both ways")
        self.apply_config(leg, config)
        leg.tx = make_sender(tx_keys)
        t.slots.set_tx(leg.slot, leg.tx.handle, leg.tx.owner)
        leg.rx = make_receiver(rx_keys)
        t.schedule_rtcp(leg, now + t.rtcp_delay())
        t.dirty = True
        t.refresh_fast(leg)

    def update_leg(
        self,
        leg_id: str,
        *,
        config: LegConfig | None = None,
        direction: Direction | None = None,
        tx_keys: SrtpKeys | Keep | None = KEEP,
        rx_keys: SrtpKeys | Keep | None = KEEP,
    ) -> None:
        """Change a configured leg (re-INVITE/UPDATE): a new config, a new direction (hold/resume), a new
        transmit key (starts a new SSRC) or a new receive key (the old key keeps working until a packet
        authenticates under the new one). Omitted arguments stay as they are."""
        t = self.table
        leg = t.get_leg(leg_id)
        if leg.rx is None:
            raise MediaEngineError(f"leg {leg_id!r} is not configured")
        if config is not None:
            self.apply_config(leg, config)
        if direction is not None:
            self.set_direction(leg, direction)
        if not isinstance(tx_keys, Keep):
            if tx_keys is None and not t.allow_plain_rtp:
                raise MediaEngineError("plain RTP is disabled")
            leg.tx = make_sender(tx_keys)
            t.slots.set_tx(leg.slot, leg.tx.handle, leg.tx.owner)
            t.ssrcs_in_use.discard(leg.ssrc)
            leg.ssrc = t.new_ssrc()
            leg.seq = t.rng.randrange(1 << 16)
            leg.marker = True
            leg.sent_before += leg.packets_sent
            leg.packets_sent = 0
        if rx_keys is None:
            if not t.allow_plain_rtp:
                raise MediaEngineError("plain RTP is disabled")
            leg.rx = NullReceiver()
        elif isinstance(rx_keys, SrtpKeys):
            if isinstance(leg.rx, SrtpReceiver):
                leg.rx.rekey(rx_keys)
                leg.rekey_pending = True
            else:
                leg.rx = SrtpReceiver(rx_keys)
        t.refresh_fast(leg)

    def remove_leg(self, leg_id: str) -> None:
        t = self.table
        leg = t.leg_map.pop(leg_id, None)
        if leg is None:
            raise MediaEngineError(f"no leg {leg_id!r}")
        t.released.add(*self.leg_totals(leg))
        t.talking.discard(leg)
        t.port_map.pop(leg.rtp_port, None)
        if not leg.rtcp_mux:
            t.port_map.pop(leg.rtcp_port, None)
        t.ssrcs_in_use.discard(leg.ssrc)
        if leg.group is not None:
            t.ssrcs_in_use.discard(leg.group.pssrc)
            leg.group = None
        leg.prompt = None
        t.dtmf_active.discard(leg)
        if leg in t.speakers:
            t.speakers.remove(leg)
        leg.send = None
        leg.fast = False
        leg.t = t.slots.release(leg.slot)
        leg.slot = 0
        leg.jitter = JitterBuffer()  # nothing left that points into the released slot
        leg.rstats = ReceptionStats()
        t.dirty = True
        if t.remote_listener is not None:
            t.remote_listener(leg.rtp_port, None)

    def compact(self) -> bool:
        """After a load: give back the slot rows and play-out buffers it grew (see
        :meth:`~imsconf.media.legs.LegTable.compact`). Returns whether anything shrank."""
        return self.table.compact()

    def remove_conference(self, conference_id: str) -> list[str]:
        """Remove every leg of a conference and its settings (group epochs, floor); returns the leg ids."""
        ids = [lid for lid, leg in self.table.leg_map.items() if leg.conference_id == conference_id]
        for lid in ids:
            self.remove_leg(lid)
        self.drop_conference(conference_id)
        return ids

    # ------------------------------------------------------------------------------ group downlink

    def set_downlink_mode(self, conference_id: str, mode: DownlinkMode) -> None:
        """See :meth:`imsconf.media.group_downlink.GroupDownlink.set_downlink_mode`."""
        self.group_part.set_downlink_mode(conference_id, mode)

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
        """See :meth:`imsconf.media.group_downlink.GroupDownlink.add_group_epoch`."""
        self.group_part.add_group_epoch(
            conference_id, epoch, keys, ssrc, codec_name=codec_name, codec_pt=codec_pt
        )

    def retire_group_epoch(self, conference_id: str, epoch: int) -> None:
        """See :meth:`imsconf.media.group_downlink.GroupDownlink.retire_group_epoch`."""
        self.group_part.retire_group_epoch(conference_id, epoch)

    def set_listener_stream(
        self,
        leg_id: str,
        epoch: int | None,
        *,
        speaker_ssrc: int | None = None,
        keep_own: bool = False,
    ) -> None:
        """See :meth:`imsconf.media.group_downlink.GroupDownlink.set_listener_stream`."""
        self.group_part.set_listener_stream(leg_id, epoch, speaker_ssrc=speaker_ssrc, keep_own=keep_own)

    def group_epochs(self, conference_id: str) -> list[int]:
        return self.group_part.group_epochs(conference_id)

    def group_epoch_stats(self, conference_id: str, epoch: int) -> GroupEpochStats:
        return self.group_part.group_epoch_stats(conference_id, epoch)

    def downlink_mode(self, conference_id: str) -> DownlinkMode:
        return self.group_part.downlink_mode(conference_id)

    def drop_conference(self, conference_id: str) -> None:
        """See :meth:`imsconf.media.group_downlink.GroupDownlink.drop_conference`."""
        self.group_part.drop_conference(conference_id)

    # ------------------------------------------------------------------------------ floor, lobby, prompts

    def set_floor_control(self, conference_id: str, enabled: bool) -> None:
        """See :meth:`imsconf.media.lobby.Lobby.set_floor_control`."""
        self.lobby_part.set_floor_control(conference_id, enabled)

    def set_floor_holders(self, conference_id: str, leg_ids: Iterable[str]) -> None:
        """See :meth:`imsconf.media.lobby.Lobby.set_floor_holders`."""
        self.lobby_part.set_floor_holders(conference_id, leg_ids)

    def set_lobby(self, leg_id: str, in_lobby: bool) -> None:
        """See :meth:`imsconf.media.lobby.Lobby.set_lobby`."""
        self.lobby_part.set_lobby(leg_id, in_lobby)

    def play_prompt(self, leg_id: str, name: str | None, loop: bool = True) -> None:
        """See :meth:`imsconf.media.lobby.Lobby.play_prompt`."""
        self.lobby_part.play_prompt(leg_id, name, loop)

    def set_leg_mix(self, leg_id: str, *, muted: bool, deaf: bool) -> None:
        """See :meth:`imsconf.media.lobby.Lobby.set_leg_mix`."""
        self.lobby_part.set_leg_mix(leg_id, muted=muted, deaf=deaf)

    # ------------------------------------------------------------------------------ figures

    def record_tick(self, seconds: float, late: int = 0) -> None:
        """The adapter's measurement of one tick: ``seconds`` of work, ``late`` late or skipped ticks."""
        self.table.tick_record.add(seconds, late)

    def leg_totals(self, leg: Leg) -> tuple[int, int, int, int]:
        """(RTP received, RTP sent, SRTP authentication failures, replays) of one leg so far."""
        c = leg.c
        return (
            c.received + int(leg.t.tab[leg.slot, RECEIVED]),
            leg.sent_before + leg.packets_sent + leg.group_ticks.total(self.table.ticks),
            c.decrypt_failed,
            c.replayed,
        )

    def mixer_stats(self) -> MixerStats:
        """The process-wide figures (:class:`~imsconf.media.events.MixerStats`): one pass over the legs."""
        t = self.table
        rel, rec = t.released, t.tick_record
        received, sent, auth, replays = rel.received, rel.sent, rel.auth_failures, rel.replays
        confs: set[str] = set()
        slots: list[int] = []
        tick = t.ticks
        for leg in t.leg_map.values():
            c = leg.c
            received += c.received
            sent += leg.sent_before + leg.group_ticks.total(tick)
            auth += c.decrypt_failed
            replays += c.replayed
            confs.add(leg.conference_id)
            slots.append(leg.slot)
        if slots:  # the counts the C path keeps in the slot rows, in one read each
            tab = t.slots.tab
            received += int(tab[slots, RECEIVED].sum())
            sent += int(tab[slots, SENT].sum())
        return MixerStats(
            ticks=t.ticks,
            late_ticks=rec.late,
            tick_seconds_sum=rec.seconds_sum,
            tick_seconds_buckets=rec.cumulative(),
            legs=len(t.leg_map),
            conferences=len(confs),
            rtp_received=received,
            rtp_sent=sent,
            srtp_auth_failures=auth,
            srtp_replays=replays,
        )

    def legs(self) -> Iterable[str]:
        return self.table.leg_map.keys()

    def leg_conference(self, leg_id: str) -> str:
        return self.table.get_leg(leg_id).conference_id

    def leg_ports(self, leg_id: str) -> tuple[int, int]:
        leg = self.table.get_leg(leg_id)
        return leg.rtp_port, leg.rtcp_port

    def leg_stats(self, leg_id: str) -> LegStats:
        leg = self.table.get_leg(leg_id)
        c, js, rr = leg.c, leg.jitter.stats, leg.rr
        return LegStats(
            received=c.received + int(leg.t.tab[leg.slot, RECEIVED]),
            decrypt_failed=c.decrypt_failed,
            replayed=c.replayed,
            srtp_other=c.srtp_other,
            wrong_source=c.wrong_source,
            unconfigured=c.unconfigured,
            malformed=c.malformed,
            unknown_pt=c.unknown_pt,
            late=js.late,
            duplicate=js.duplicate,
            overflow=js.overflow,
            concealed=js.concealed,
            played=js.played,
            sent=leg.sent_before + leg.packets_sent,
            rtcp_received=c.rtcp_received,
            rtcp_sent=c.rtcp_sent,
            dtmf_events=c.dtmf_events,
            jitter=leg.rstats.jitter,
            ssrc=leg.ssrc,
            remote_ssrc=leg.remote_ssrc,
            group_epoch=None if leg.group is None else leg.group.ep.epoch,
            group_sent=leg.group_ticks.total(self.table.ticks),
            lobby=leg.lobby,
            prompt=None if leg.prompt is None else leg.prompt.prompt.name,
            rtcp_loss=None if rr is None else rr.fraction_lost / 256,
            rtcp_jitter_ms=None if rr is None else rr.jitter * 1000 / leg.clock,
            muted=leg.muted,
            deaf=leg.deaf,
            corrupt=leg.corrupt,
        )

    @property
    def has_events(self) -> bool:
        return bool(self.table.pending_events)

    def events(self) -> list[MediaEvent]:
        """Drain the events queued since the last call."""
        out, self.table.pending_events = self.table.pending_events, []
        return out

    def apply_config(self, leg: Leg, cfg: LegConfig) -> None:
        t = self.table
        if cfg.remote_rtp != leg.remote_rtp or cfg.latch != leg.latch:
            leg.latched = False
        moved = cfg.remote_rtp != leg.remote_rtp
        leg.remote_rtp = cfg.remote_rtp
        if cfg.remote_rtcp is not None:
            leg.remote_rtcp = cfg.remote_rtcp
        elif leg.rtcp_mux:
            leg.remote_rtcp = cfg.remote_rtp
        else:
            leg.remote_rtcp = (cfg.remote_rtp[0], cfg.remote_rtp[1] + 1)
        if leg.rtcp_mux and leg.remote_rtcp != leg.remote_rtp:
            raise MediaEngineError("rtcp-mux: the remote RTCP address must be the RTP address")
        self.apply_codec(leg, cfg)
        leg.dtmf_pt = -1 if cfg.dtmf_pt is None else cfg.dtmf_pt
        leg.latch = cfg.latch
        self.set_direction(leg, cfg.direction)
        t.dirty = True
        t.refresh_fast(leg)
        if moved:
            t.notify_remote(leg)

    def apply_codec(self, leg: Leg, cfg: LegConfig) -> None:
        """G.711 (the engine's tables and C path), or a :class:`Codec` from the engine's factory: a new
        codec, clock or format makes a new codec instance, a fresh jitter buffer (in Python: payloads of
        any length) and telephone-events at the codec's clock."""
        t = self.table
        params = tuple(sorted(cfg.codec_params))
        key: tuple[object, ...] = (cfg.codec_name.upper(), cfg.codec_clock, params)
        wb: Codec | None = None
        if cfg.codec_name not in G711_NAMES:
            if key == leg.enc_key and leg.wb is not None:
                wb = leg.wb
            else:
                try:
                    wb = self.codecs(cfg.codec_name, cfg.codec_clock, dict(params))
                except CodecError as exc:
                    raise MediaEngineError(str(exc)) from None
                if wb.sample_rate not in (8000, 16000) or wb.frame_samples * 50 != wb.sample_rate:
                    raise MediaEngineError(
                        f"{cfg.codec_name}: the mixer takes 20 ms frames at 8 or 16 kHz, not {wb.sample_rate}"
                    )
        codec = codec_by_name("PCMU" if wb is not None else cfg.codec_name)
        changed = key != leg.enc_key or cfg.codec_pt != leg.codec_pt or (wb is None) != (leg.wb is None)
        if (wb is None) != (leg.wb is None):
            # Codec frames are not 160 octets: their jitter buffer is the Python one.
            if wb is None and t.c_path:
                leg.jitter = SlotJitter(t.slots, leg.slot, t.jitter_delay, t.jitter_capacity)
            else:
                leg.jitter = JitterBuffer(delay=t.jitter_delay, capacity=t.jitter_capacity)
        if changed:
            leg.jitter.reset()
        if cfg.codec_clock != leg.clock:
            leg.dtmf = DtmfReceiver(clock_rate=cfg.codec_clock)
            t.dtmf_active.discard(leg)
        leg.wb = wb
        leg.enc_key = key
        leg.clock = cfg.codec_clock
        leg.ts_step = cfg.codec_clock // 50
        leg.codec = codec
        leg.t.tab[leg.slot, SILENCE] = codec.silence
        leg.codec_id = CODEC_IDS[codec.name]
        leg.codec_pt = cfg.codec_pt

    def set_direction(self, leg: Leg, direction: Direction) -> None:
        if direction is not leg.direction:
            leg.direction = direction
            leg.sends = direction.sends
            leg.marker = True
            leg.jitter.reset()
            self.table.dirty = True
            self.table.update_mixing(leg)
