"""The conference media engine (MRFP core), sans-I/O.

Driven by the UDP adapter (:mod:`imsconf.media.udp`) or by tests in memory:

* :meth:`MediaEngine.receive` with each datagram, the local port it arrived on, its source address, and
  ``now`` (monotonic seconds);
* :meth:`MediaEngine.tick` every 20 ms, which returns the datagrams to send as
  ``(local_port, data, remote_addr)``;
* :meth:`MediaEngine.events` to drain DTMF, RTCP and latching events.

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

Hot path. Besides the sans-I/O :meth:`MediaEngine.receive` / :meth:`MediaEngine.tick`, the UDP adapter
uses a zero-copy path with the same behaviour: it reads a datagram straight into the engine's receive
buffer (:attr:`MediaEngine.rx_buffer`) from a socket *connected* to the leg's remote RTP address (the
kernel has then checked the source) and calls :meth:`MediaEngine.receive_buffer`; and it registers a
send function per leg (:meth:`MediaEngine.set_send`) so that :meth:`MediaEngine.tick_send` protects each
outgoing packet in one preallocated buffer and sends it without building a datagram list. libsrtp is
called through pylibsrtp's cffi binding directly (``srtp_protect``/``srtp_unprotect`` on the session
handle), without a per-packet copy or ``bytes`` object. Anything unusual (RTCP, DTMF, a new SSRC, a
pending rekey, latching, CSRCs or extensions) falls back to :meth:`MediaEngine.receive`.

C path (docs/decisions/0004). With the ``_fastpath`` extension (:attr:`MediaEngine.c_path`) the same
fast path runs in C: each leg owns a slot of :class:`~imsconf.media.fastpath.SlotTable` that holds its
transmit state, its jitter buffer and its reception statistics; :meth:`MediaEngine.drain_fast` receives,
the tick plays out and sends through it. Same counters, events and fallbacks as the Python fast path.

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
silence, on its own stream.
"""

from __future__ import annotations

import heapq
import itertools
import random
import struct
import time
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import numpy.typing as npt

from imsconf.keys.policy import DownlinkMode
from imsconf.sdp.direction import Direction

from .dtmf import DtmfError, DtmfReceiver
from .events import (
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
    PromptFinished,
    RtcpReport,
    SourceLatched,
)
from .fastpath import (
    FD,
    MARKER,
    MIXES,
    RECEIVED,
    RING,
    SENT,
    SEQ,
    SILENCE,
    SSRC,
    TS0,
    SlotJitter,
    SlotReceptionStats,
    SlotTable,
    fastpath_enabled,
)
from .g711 import G711Codec, codec_by_name
from .jitter import JitterBuffer
from .mixer import CODEC_IDS, FRAME_SAMPLES, Mixer, decode_codes, encode_rows
from .prompts import Prompt, get_prompt
from .rtp import ReceiverReport as RtcpReceiverReport
from .rtp import (
    ReceptionStats,
    ReportBlock,
    RtcpPacket,
    RtpError,
    SenderReport,
    SourceDescription,
    ntp_from_unix,
    ntp_middle32,
    parse_rtcp,
    parse_rtp_fast,
    serialize_rtcp,
)
from .srtp import (
    NullReceiver,
    NullSender,
    SrtpError,
    SrtpKeys,
    SrtpReceiver,
    SrtpSender,
    error_kind,
    make_receiver,
    make_sender,
    srtp_ffi,
    srtp_lib,
)

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
    "PromptFinished",
    "RtcpReport",
    "SourceLatched",
]


_ENCODE_TABLES = (codec_by_name("PCMU").encode_table, codec_by_name("PCMA").encode_table)
_SILENCE = (bytes([codec_by_name("PCMU").silence]) * 160, bytes([codec_by_name("PCMA").silence]) * 160)
CN_PT = 13  # RFC 3389 comfort noise: accepted and ignored
TICK = 0.020
BUFFER_SIZE = 2048  # receive and transmit buffers; longer datagrams are truncated by the socket read
_MAX_SRTP_IN = 1500  # longest datagram SrtpReceiver.unprotect accepts (pylibsrtp's buffer)
_HDR = struct.Struct("!BBHII")
_TS_MASK = 0xFFFF_FFFF

SendFunc = Callable[[Any], object]  # socket.send of a connected socket
RemoteListener = Callable[[int, "Addr | None"], None]


# ----------------------------------------------------------------------------------------- legs


class _Counters:
    __slots__ = (
        "decrypt_failed",
        "dtmf_events",
        "malformed",
        "received",
        "replayed",
        "rtcp_received",
        "rtcp_sent",
        "srtp_other",
        "unconfigured",
        "unknown_pt",
        "wrong_source",
    )

    def __init__(self) -> None:
        self.received = 0
        self.decrypt_failed = 0
        self.replayed = 0
        self.srtp_other = 0
        self.wrong_source = 0
        self.unconfigured = 0
        self.malformed = 0
        self.unknown_pt = 0
        self.rtcp_received = 0
        self.rtcp_sent = 0
        self.dtmf_events = 0

    def srtp_refused(self, kind: str) -> None:
        """Count a packet libsrtp refused (``kind`` as in :class:`SrtpError`)."""
        if kind == "auth":
            self.decrypt_failed += 1
        elif kind == "replay":
            self.replayed += 1
        else:
            self.srtp_other += 1


class _Epoch:
    """One group key epoch of a conference: the common listener stream (its own SSRC, sequence and
    timestamp) and the SRTP context of the epoch key, which also protects the listeners' private streams."""

    __slots__ = (
        "all_direct",
        "codec_id",
        "codec_pt",
        "conference_id",
        "encrypted",
        "epoch",
        "handle",
        "last_tick",
        "listeners",
        "private_encrypted",
        "private_sent",
        "sends",
        "sent",
        "seq",
        "ssrc",
        "ts0",
        "tx",
    )

    def __init__(
        self, conference_id: str, epoch: int, ssrc: int, tx: SrtpSender, codec_id: int, codec_pt: int
    ) -> None:
        self.conference_id = conference_id
        self.epoch = epoch
        self.ssrc = ssrc
        self.tx: SrtpSender | None = tx
        self.handle: Any = tx.handle
        self.codec_id = codec_id
        self.codec_pt = codec_pt
        self.seq = 0
        self.ts0 = 0
        self.last_tick = -2  # engine tick of the last common packet (a gap sets the marker bit)
        self.listeners: list[_Leg] = []  # effective listeners that receive (rebuilt)
        self.sends: list[SendFunc | None] = []  # their send functions, aligned (rebuilt)
        self.all_direct = False
        self.encrypted = 0
        self.sent = 0
        self.private_encrypted = 0
        self.private_sent = 0


class _Assign:
    """A leg's place on a group epoch: the epoch and the leg's private stream under the epoch key (its
    N-1 mix while it speaks, or a prompt), on its own SSRC with its own sequence and timestamp."""

    __slots__ = (
        "absent",
        "confirmed",
        "ep",
        "failing",
        "keep_own",
        "live",
        "plast",
        "private_ticks",
        "pseq",
        "pssrc",
        "pts0",
        "rr_tick",
        "start_tick",
    )

    def __init__(self, ep: _Epoch, pssrc: int, pseq: int, pts0: int, keep_own: bool, tick: int) -> None:
        self.ep = ep
        self.pssrc = pssrc
        self.pseq = pseq
        self.pts0 = pts0
        self.plast = -2
        self.keep_own = keep_own
        self.live = False  # among the epoch's listeners at the last rebuild
        self.confirmed = False
        self.failing = False
        self.absent = 0  # consecutive receiver reports naming the own stream but no stream of the epoch
        self.private_ticks = 0  # ticks on the private stream since the leg's last receiver report
        self.rr_tick = tick
        self.start_tick = tick


class _Conf:
    """Per-conference settings that outlive legs: downlink mode, group epochs, floor control."""

    __slots__ = ("epochs", "floor", "holders", "mode", "used_epochs", "used_ssrcs")

    def __init__(self) -> None:
        self.mode = DownlinkMode.PER_PARTICIPANT
        self.epochs: dict[int, _Epoch] = {}
        self.used_epochs: set[int] = set()
        self.used_ssrcs: set[int] = set()  # every group SSRC (common or private) ever used here
        self.floor = False
        self.holders: frozenset[str] = frozenset()


class _PromptPlay:
    __slots__ = ("loop", "pos", "prompt")

    def __init__(self, prompt: Prompt, loop: bool) -> None:
        self.prompt = prompt
        self.loop = loop
        self.pos = 0


class _Leg:
    __slots__ = (
        "c",
        "codec",
        "codec_id",
        "codec_pt",
        "conf_idx",
        "conference_id",
        "direction",
        "dtmf",
        "dtmf_pt",
        "fast",
        "gacc",
        "glive_from",
        "group",
        "jitter",
        "last_sr_at",
        "last_sr_mid",
        "latch",
        "latched",
        "leg_id",
        "lobby",
        "mix_payload",
        "mix_pos",
        "mixes_in",
        "next_rtcp",
        "octets_sent",
        "prompt",
        "rekey_pending",
        "remote_rtcp",
        "remote_rtp",
        "remote_ssrc",
        "rstats",
        "rtcp_mux",
        "rtcp_port",
        "rtp_port",
        "rx",
        "send",
        "sends",
        "sent_before",
        "slot",
        "speaker",
        "t",
        "tx",
    )

    def __init__(
        self, leg_id: str, conference_id: str, rtp_port: int, rtcp_port: int, rtcp_mux: bool, table: SlotTable
    ) -> None:
        self.t = table  # the per-packet state (SSRC, sequence, timestamp base, marker, count) is its row
        self.slot = table.alloc(self)
        self.leg_id = leg_id
        self.conference_id = conference_id
        self.rtp_port = rtp_port
        self.rtcp_port = rtcp_port
        self.rtcp_mux = rtcp_mux
        self.c = _Counters()
        self.remote_rtp: Addr | None = None
        self.remote_rtcp: Addr | None = None
        self.codec: G711Codec = codec_by_name("PCMU")
        self.codec_id = 0
        self.codec_pt = -1
        self.dtmf_pt = -1
        self.tx: SrtpSender | NullSender | None = None
        self.rx: SrtpReceiver | NullReceiver | None = None
        self.direction = Direction.INACTIVE
        self.mixes_in = False
        self.sends = False
        self.latch = False
        self.latched = False
        self.marker = True
        self.jitter: JitterBuffer | SlotJitter = JitterBuffer()
        self.dtmf = DtmfReceiver()
        self.rstats: ReceptionStats | SlotReceptionStats = ReceptionStats()
        self.remote_ssrc: int | None = None
        self.rekey_pending = False
        self.fast = False  # receive_buffer may take its fast path (see MediaEngine._refresh_fast)
        self.conf_idx = 0
        self.speaker = False
        self.mix_payload: bytes | None = None
        self.mix_pos = -1  # index among the engine's mixing legs (valid after a rebuild)
        self.send: SendFunc | None = None  # direct send (connected socket), set by the adapter
        self.sent_before = 0  # packets sent under earlier transmit keys
        self.next_rtcp = 0.0
        self.last_sr_mid = 0
        self.last_sr_at = 0.0
        self.group: _Assign | None = None
        self.glive_from = -1  # engine tick after which it receives an epoch's streams (-1: it does not)
        self.gacc = 0  # ticks on epoch streams before that (one packet per tick: common or private)
        self.lobby = False
        self.prompt: _PromptPlay | None = None

    # The transmit state lives in the leg's slot row (read and advanced by the C path as well).
    @property
    def ssrc(self) -> int:
        return int(self.t.tab[self.slot, SSRC])

    @ssrc.setter
    def ssrc(self, value: int) -> None:
        self.t.tab[self.slot, SSRC] = value

    @property
    def seq(self) -> int:
        return int(self.t.tab[self.slot, SEQ])

    @seq.setter
    def seq(self, value: int) -> None:
        self.t.tab[self.slot, SEQ] = value

    @property
    def ts0(self) -> int:
        """The RTP timestamp at engine tick 0: ts = ts0 + 160 * ticks."""
        return int(self.t.tab[self.slot, TS0])

    @ts0.setter
    def ts0(self, value: int) -> None:
        self.t.tab[self.slot, TS0] = value

    @property
    def marker(self) -> bool:
        return bool(self.t.tab[self.slot, MARKER])

    @marker.setter
    def marker(self, value: bool) -> None:
        self.t.tab[self.slot, MARKER] = 1 if value else 0

    @property
    def packets_sent(self) -> int:
        """Packets sent since the current transmit key (RTCP SR); octets = 160 per packet."""
        return int(self.t.tab[self.slot, SENT])

    @packets_sent.setter
    def packets_sent(self, value: int) -> None:
        self.t.tab[self.slot, SENT] = value


class MediaEngine:
    """All legs and conferences of one mixer. Single-threaded; every method takes ``now`` where time
    matters. ``wallclock`` is used only for RTCP NTP timestamps."""

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
    ) -> None:
        self.mixer = Mixer(k=k)
        self._jitter_delay = jitter_delay
        self._jitter_capacity = jitter_capacity
        self.allow_plain_rtp = allow_plain_rtp
        self._rtcp_interval = rtcp_interval
        self._cname = cname.encode()
        self._wallclock = wallclock
        self._rng = rng or random.SystemRandom()
        self._legs: dict[str, _Leg] = {}
        # Per-leg packet state, shared with the C per-packet path (imsconf.media.fastpath).
        self.slots = SlotTable()
        # The C path keeps each leg's jitter buffer in a ring of RING entries: at most RING/2 frames.
        self.c_path = fastpath_enabled() and 2 * round(jitter_capacity / TICK) <= RING
        self._jitter_frames = round(jitter_capacity / TICK)
        self._mix_slots = np.zeros(0, dtype=np.int64)  # slots of the mixing legs (rebuilt)
        self._pop_out = np.zeros((0, FRAME_SAMPLES), dtype=np.uint8)  # C play-out: frames, gains, rows
        self._pop_gain = np.zeros(0, dtype=np.float64)
        self._pop_index = np.zeros(0, dtype=np.int64)
        self._c_legs: list[_Leg] = []  # sending legs whose RTP the C path sends (rebuilt)
        self._c_slots = np.zeros(0, dtype=np.int64)
        self._py_sending: list[_Leg] = []  # the other sending legs
        self._ports: dict[int, tuple[_Leg, bool]] = {}  # local port -> (leg, is the RTCP port)
        self._ssrcs: set[int] = set()
        self._order: list[_Leg] = []
        self._mixing: list[_Leg] = []  # configured legs whose input is mixed, in _order
        self._sending: list[_Leg] = []  # configured legs that receive the mix, in _order
        self._mix_conf = np.zeros(0, dtype=np.intp)  # conference index of each mixing leg
        self._rtcp_due: list[tuple[float, int, _Leg]] = []  # heap of (next_rtcp, tie, leg)
        self._rtcp_tie = itertools.count()
        self._n_conf = 0
        self._mixed_codecs = False
        self._codecs_used: list[int] = []
        self._dirty = True
        self._speakers: list[_Leg] = []
        self._dtmf_active: set[_Leg] = set()
        self._events: list[MediaEvent] = []
        self.unknown_port = 0
        self.ticks = 0
        self.protect_failed = 0
        # One receive and one transmit buffer for the whole engine (it is single-threaded).
        self._lenp: Any = srtp_ffi.new("int *")
        self._rxc: Any = srtp_ffi.new("unsigned char[]", BUFFER_SIZE)
        self._rxb: Any = srtp_ffi.buffer(self._rxc)
        self._txc: Any = srtp_ffi.new("unsigned char[]", BUFFER_SIZE)
        self._txb: Any = srtp_ffi.buffer(self._txc)
        self._txview = memoryview(self._txb)
        self.remote_listener: RemoteListener | None = None
        # Group downlink keying, floor control, lobby (see the "Group downlink" section below).
        self._confs: dict[str, _Conf] = {}
        self._group_live: list[_Epoch] = []  # epochs with at least one effective listener (rebuilt)
        self._prompting: list[_Leg] = []  # legs in the lobby or with a prompt playing (rebuilt)
        self._burned: set[int] = set()  # group SSRCs ever used: never handed out again
        self.confirm_max_loss = confirm_max_loss  # RR fraction lost (/256) up to which a stream is confirmed
        self.failing_min_loss = failing_min_loss  # and from which it is failing
        self.tick_protects = 0  # srtp_protect calls for RTP in the last tick
        self.tick_sent = 0  # RTP datagrams produced in the last tick
        self.protects_total = 0

    @property
    def rx_buffer(self) -> Any:
        """The writable buffer the adapter reads a datagram into before :meth:`receive_buffer`."""
        return self._rxb

    # ------------------------------------------------------------------------------ control plane

    def add_leg(self, leg_id: str, conference_id: str, rtp_port: int, rtcp_port: int, rtcp_mux: bool) -> None:
        """Register a leg on its local ports. It stays silent until :meth:`configure_leg`."""
        if leg_id in self._legs:
            raise MediaEngineError(f"leg {leg_id!r} exists")
        ports = {rtp_port} if rtcp_mux else {rtp_port, rtcp_port}
        if rtcp_mux and rtcp_port != rtp_port:
            raise MediaEngineError("with rtcp-mux the RTCP port is the RTP port")
        if any(p in self._ports for p in ports) or len(ports) != (1 if rtcp_mux else 2):
            raise MediaEngineError("local port already in use")
        leg = _Leg(leg_id, conference_id, rtp_port, rtcp_port, rtcp_mux, self.slots)
        if self.c_path:  # jitter buffer and reception statistics in the slot, kept by C on the fast path
            leg.jitter = SlotJitter(self.slots, leg.slot, self._jitter_delay, self._jitter_capacity)
            leg.rstats = SlotReceptionStats(self.slots, leg.slot)
        else:
            leg.jitter = JitterBuffer(delay=self._jitter_delay, capacity=self._jitter_capacity)
        leg.ssrc = self._new_ssrc()
        leg.seq = self._rng.randrange(1 << 16)
        leg.ts0 = (self._rng.randrange(1 << 32) - FRAME_SAMPLES * self.ticks) & _TS_MASK
        self._legs[leg_id] = leg
        self._ports[rtp_port] = (leg, False)
        if not rtcp_mux:
            self._ports[rtcp_port] = (leg, True)
        self._dirty = True

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
        leg = self._leg(leg_id)
        if (tx_keys is None or rx_keys is None) and not self.allow_plain_rtp:
            raise MediaEngineError("plain RTP is disabled: SRTP keys are required both ways")
        self._apply_config(leg, config)
        leg.tx = make_sender(tx_keys)
        self.slots.set_tx(leg.slot, leg.tx.handle, leg.tx.owner)
        leg.rx = make_receiver(rx_keys)
        self._schedule_rtcp(leg, now + self._rtcp_delay())
        self._dirty = True
        self._refresh_fast(leg)

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
        leg = self._leg(leg_id)
        if leg.rx is None:
            raise MediaEngineError(f"leg {leg_id!r} is not configured")
        if config is not None:
            self._apply_config(leg, config)
        if direction is not None:
            self._set_direction(leg, direction)
        if not isinstance(tx_keys, Keep):
            if tx_keys is None and not self.allow_plain_rtp:
                raise MediaEngineError("plain RTP is disabled")
            leg.tx = make_sender(tx_keys)
            self.slots.set_tx(leg.slot, leg.tx.handle, leg.tx.owner)
            self._ssrcs.discard(leg.ssrc)
            leg.ssrc = self._new_ssrc()
            leg.seq = self._rng.randrange(1 << 16)
            leg.marker = True
            leg.sent_before += leg.packets_sent
            leg.packets_sent = 0
        if rx_keys is None:
            if not self.allow_plain_rtp:
                raise MediaEngineError("plain RTP is disabled")
            leg.rx = NullReceiver()
        elif isinstance(rx_keys, SrtpKeys):
            if isinstance(leg.rx, SrtpReceiver):
                leg.rx.rekey(rx_keys)
                leg.rekey_pending = True
            else:
                leg.rx = SrtpReceiver(rx_keys)
        self._refresh_fast(leg)

    def remove_leg(self, leg_id: str) -> None:
        leg = self._legs.pop(leg_id, None)
        if leg is None:
            raise MediaEngineError(f"no leg {leg_id!r}")
        self._ports.pop(leg.rtp_port, None)
        if not leg.rtcp_mux:
            self._ports.pop(leg.rtcp_port, None)
        self._ssrcs.discard(leg.ssrc)
        if leg.group is not None:
            self._ssrcs.discard(leg.group.pssrc)
            leg.group = None
        leg.prompt = None
        self._dtmf_active.discard(leg)
        if leg in self._speakers:
            self._speakers.remove(leg)
        leg.send = None
        leg.fast = False
        leg.t = self.slots.release(leg.slot)
        leg.slot = 0
        leg.jitter = JitterBuffer()  # nothing left that points into the released slot
        leg.rstats = ReceptionStats()
        self._dirty = True
        if self.remote_listener is not None:
            self.remote_listener(leg.rtp_port, None)

    def remove_conference(self, conference_id: str) -> list[str]:
        """Remove every leg of a conference and its settings (group epochs, floor); returns the leg ids."""
        ids = [lid for lid, leg in self._legs.items() if leg.conference_id == conference_id]
        for lid in ids:
            self.remove_leg(lid)
        self.drop_conference(conference_id)
        return ids

    def legs(self) -> Iterable[str]:
        return self._legs.keys()

    def leg_conference(self, leg_id: str) -> str:
        return self._leg(leg_id).conference_id

    def leg_ports(self, leg_id: str) -> tuple[int, int]:
        leg = self._leg(leg_id)
        return leg.rtp_port, leg.rtcp_port

    def leg_stats(self, leg_id: str) -> LegStats:
        leg = self._leg(leg_id)
        c, js = leg.c, leg.jitter.stats
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
            group_sent=leg.gacc + (self.ticks - leg.glive_from if leg.glive_from >= 0 else 0),
            lobby=leg.lobby,
            prompt=None if leg.prompt is None else leg.prompt.prompt.name,
        )

    @property
    def has_events(self) -> bool:
        return bool(self._events)

    def events(self) -> list[MediaEvent]:
        """Drain the events queued since the last call."""
        out, self._events = self._events, []
        return out

    # ------------------------------------------------------------------------------ group downlink

    def set_downlink_mode(self, conference_id: str, mode: DownlinkMode) -> None:
        """``per-participant`` (the default: every leg its own stream under its own key) or ``group``
        (listeners may be put on a common stream per epoch). Going back to ``per-participant`` retires
        every epoch of the conference (its listeners return to their own streams)."""
        try:
            mode = DownlinkMode(mode)
        except ValueError:
            raise MediaEngineError(f"unknown downlink mode {mode!r}") from None
        st = self._conf(conference_id)
        if mode is DownlinkMode.PER_PARTICIPANT:
            for epoch in list(st.epochs):
                self.retire_group_epoch(conference_id, epoch)
        st.mode = mode

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
        """Create the common listener stream of ``epoch``: SRTP under ``keys`` (the engine keeps only the
        libsrtp context: the caller may wipe ``keys``), SSRC ``ssrc``, random sequence and timestamp
        origins, ``codec_name``/``codec_pt`` for every packet (listeners must have negotiated the same).
        Nobody receives it until :meth:`set_listener_stream`. An epoch number or an SSRC that this
        conference has used before is refused (one (key, SSRC) pair, one packet sequence)."""
        st = self._conf(conference_id)
        if st.mode is not DownlinkMode.GROUP:
            raise MediaEngineError(f"conference {conference_id!r} is not in group downlink mode")
        if epoch in st.used_epochs:
            raise MediaEngineError(f"epoch {epoch} of {conference_id!r} exists or existed")
        self._check_new_ssrc(st, ssrc)
        if keys.wiped:
            raise MediaEngineError("the epoch keys were wiped")
        codec = codec_by_name(codec_name)
        LegConfig(("0.0.0.0", 9), None, codec_pt, codec_name)  # validates the payload type
        ep = _Epoch(conference_id, epoch, ssrc, SrtpSender(keys), CODEC_IDS[codec.name], codec_pt)
        ep.seq = self._rng.randrange(1 << 16)
        ep.ts0 = (self._rng.randrange(1 << 32) - FRAME_SAMPLES * self.ticks) & _TS_MASK
        st.epochs[epoch] = ep
        st.used_epochs.add(epoch)
        st.used_ssrcs.add(ssrc)
        self._ssrcs.add(ssrc)
        self._burned.add(ssrc)

    def retire_group_epoch(self, conference_id: str, epoch: int) -> None:
        """Stop the epoch's streams and drop its SRTP context (libsrtp zeroes its key schedule when the
        context is deallocated, which happens here: the engine holds the only reference). Legs still
        on it fall back to their own per-participant streams."""
        st = self._confs.get(conference_id)
        ep = None if st is None else st.epochs.pop(epoch, None)
        if ep is None:
            raise MediaEngineError(f"no live epoch {epoch} in {conference_id!r}")
        for leg in self._legs.values():
            if leg.group is not None and leg.group.ep is ep:
                self._ssrcs.discard(leg.group.pssrc)
                leg.group = None
        self._ssrcs.discard(ep.ssrc)
        ep.listeners = []
        ep.handle = None
        ep.tx = None
        self._dirty = True

    def set_listener_stream(
        self,
        leg_id: str,
        epoch: int | None,
        *,
        speaker_ssrc: int | None = None,
        keep_own: bool = False,
    ) -> None:
        """Choose what a leg hears its conference on, from the next tick:

        * ``None``: its own per-participant stream (own transmit key, own SSRC), as in per-participant
          mode;
        * an epoch: the epoch's common stream, the same packet as every other listener on it, while it
          is not a speaker; while it is one (or hears a prompt) its private stream: its N-1 mix under the
          *epoch key* on ``speaker_ssrc`` (chosen by the engine when ``None``; it must be new to the
          conference). Calling again with the same epoch keeps the private stream and changes
          ``keep_own`` only.

        ``keep_own=True`` (probation) also keeps its own stream going, so a phone that did not take the
        epoch key is never deaf; evidence arrives as :class:`GroupStreamConfirmed` /
        :class:`GroupStreamFailing`. A leg in the lobby, or whose codec/payload type differs from the
        epoch's, stays on its own stream while that lasts."""
        leg = self._leg(leg_id)
        old = leg.group
        if epoch is None:
            if old is not None:
                self._ssrcs.discard(old.pssrc)
                leg.group = None
                self._dirty = True
            return
        st = self._confs.get(leg.conference_id)
        ep = None if st is None else st.epochs.get(epoch)
        if st is None or ep is None:
            raise MediaEngineError(f"no live epoch {epoch} in {leg.conference_id!r}")
        if leg.rx is not None and (leg.codec_id != ep.codec_id or leg.codec_pt != ep.codec_pt):
            raise MediaEngineError(f"leg {leg_id!r} does not use the codec of epoch {epoch}'s stream")
        if old is not None and old.ep is ep and speaker_ssrc in (None, old.pssrc):
            old.keep_own = keep_own
            self._dirty = True
            return
        if speaker_ssrc is None:
            speaker_ssrc = self._new_ssrc()
            self._ssrcs.discard(speaker_ssrc)
        self._check_new_ssrc(st, speaker_ssrc)
        if old is not None:
            self._ssrcs.discard(old.pssrc)
        pts0 = (self._rng.randrange(1 << 32) - FRAME_SAMPLES * self.ticks) & _TS_MASK
        leg.group = _Assign(ep, speaker_ssrc, self._rng.randrange(1 << 16), pts0, keep_own, self.ticks)
        st.used_ssrcs.add(speaker_ssrc)
        self._ssrcs.add(speaker_ssrc)
        self._burned.add(speaker_ssrc)
        self._dirty = True

    def group_epochs(self, conference_id: str) -> list[int]:
        st = self._confs.get(conference_id)
        return [] if st is None else sorted(st.epochs)

    def group_epoch_stats(self, conference_id: str, epoch: int) -> GroupEpochStats:
        st = self._confs.get(conference_id)
        ep = None if st is None else st.epochs.get(epoch)
        if ep is None:
            raise MediaEngineError(f"no live epoch {epoch} in {conference_id!r}")
        return GroupEpochStats(
            conference_id,
            epoch,
            ep.ssrc,
            sum(1 for leg in self._legs.values() if leg.group is not None and leg.group.ep is ep),
            ep.encrypted,
            ep.sent,
            ep.private_encrypted,
            ep.private_sent,
        )

    def downlink_mode(self, conference_id: str) -> DownlinkMode:
        st = self._confs.get(conference_id)
        return DownlinkMode.PER_PARTICIPANT if st is None else st.mode

    # ------------------------------------------------------------------------------ floor, lobby

    def set_floor_control(self, conference_id: str, enabled: bool) -> None:
        """Floor-controlled audio: when enabled only the floor holders' audio is mixed (everyone still
        hears the mix; a holder that speaks hears the others, not itself)."""
        st = self._conf(conference_id)
        st.floor = bool(enabled)
        self._refresh_mixing(conference_id)

    def set_floor_holders(self, conference_id: str, leg_ids: Iterable[str]) -> None:
        """The legs holding the audio floor (ids of legs not present yet count when they arrive)."""
        st = self._conf(conference_id)
        st.holders = frozenset(leg_ids)
        self._refresh_mixing(conference_id)

    def set_lobby(self, leg_id: str, in_lobby: bool) -> None:
        """A leg in the lobby is not mixed and does not hear the conference: it hears its prompt (see
        :meth:`play_prompt`) or silence, on its own stream. DTMF from it still arrives as events."""
        leg = self._leg(leg_id)
        in_lobby = bool(in_lobby)
        if in_lobby == leg.lobby:
            return
        leg.lobby = in_lobby
        if not in_lobby and leg.prompt is None:
            leg.mix_payload = None
        self._update_mixing(leg)
        self._dirty = True

    def play_prompt(self, leg_id: str, name: str | None, loop: bool = True) -> None:
        """Play the named prompt (:mod:`imsconf.media.prompts`) to the leg from its start, replacing any
        prompt playing; ``loop`` repeats it until changed, otherwise :class:`PromptFinished` follows its
        end. Outside the lobby the prompt replaces the conference for that leg while it plays. ``None``
        stops the prompt (silence in the lobby; the conference outside)."""
        leg = self._leg(leg_id)
        if name is None:
            if leg.prompt is not None:
                leg.prompt = None
                if not leg.lobby:
                    leg.mix_payload = None
                self._dirty = True
            return
        try:
            prompt = get_prompt(name)
        except KeyError as exc:
            raise MediaEngineError(str(exc.args[0])) from None
        leg.prompt = _PromptPlay(prompt, bool(loop))
        self._dirty = True

    def drop_conference(self, conference_id: str) -> None:
        """Forget a conference's settings and retire its epochs (after its legs are gone)."""
        st = self._confs.get(conference_id)
        if st is None:
            return
        for epoch in list(st.epochs):
            self.retire_group_epoch(conference_id, epoch)
        del self._confs[conference_id]

    # ------------------------------------------------------------------------------ internals

    def _leg(self, leg_id: str) -> _Leg:
        try:
            return self._legs[leg_id]
        except KeyError:
            raise MediaEngineError(f"no leg {leg_id!r}") from None

    def _conf(self, conference_id: str) -> _Conf:
        st = self._confs.get(conference_id)
        if st is None:
            st = self._confs[conference_id] = _Conf()
        return st

    def _check_new_ssrc(self, st: _Conf, ssrc: int) -> None:
        if not 0 <= ssrc < 1 << 32:
            raise MediaEngineError(f"SSRC {ssrc} out of range")
        if ssrc in st.used_ssrcs or ssrc in self._ssrcs or ssrc in self._burned:
            raise MediaEngineError(f"SSRC {ssrc:#010x} is or was in use: an SSRC is never reused")

    def _refresh_mixing(self, conference_id: str) -> None:
        for leg in self._legs.values():
            if leg.conference_id == conference_id:
                self._update_mixing(leg)

    @staticmethod
    def _group_effective(leg: _Leg, a: _Assign) -> bool:
        ep = a.ep
        return (
            not leg.lobby
            and ep.tx is not None
            and leg.codec_id == ep.codec_id
            and leg.codec_pt == ep.codec_pt
        )

    def _new_ssrc(self) -> int:
        while True:
            ssrc = self._rng.randrange(1, 1 << 32)
            if ssrc not in self._ssrcs and ssrc not in self._burned:
                self._ssrcs.add(ssrc)
                return ssrc

    def _rtcp_delay(self) -> float:
        return self._rtcp_interval * (0.5 + self._rng.random())  # RFC 3550 §6.3.1 randomisation

    def set_send(self, rtp_port: int, send: SendFunc | None, fd: int = -1) -> None:
        """Let :meth:`tick_send` hand the leg's RTP packets to ``send`` (the ``send`` of a socket
        connected to the leg's remote RTP address), or stop doing so (``None``). ``fd`` is that
        socket's descriptor: with it, the C path sends the leg's RTP itself."""
        entry = self._ports.get(rtp_port)
        if entry is not None and not entry[1]:
            entry[0].send = send
            self.slots.set_fd(entry[0].slot, fd if send is not None else -1)
            self._dirty = True  # the epochs' fan-out lists hold the send functions

    def map_fast_fd(self, fd: int, rtp_port: int) -> bool:
        """The adapter's socket ``fd`` is connected to the remote RTP address of the leg on
        ``rtp_port``: let :meth:`drain_fast` read it. False when there is no C path (or no such leg)."""
        entry = self._ports.get(rtp_port)
        if not self.c_path or entry is None or entry[1]:
            return False
        self.slots.map_fd(fd, entry[0].slot)
        return True

    def unmap_fast_fd(self, fd: int) -> None:
        self.slots.unmap_fd(fd)

    def remote_rtp(self, rtp_port: int) -> Addr | None:
        """The address the leg on ``rtp_port`` currently sends to and accepts RTP from."""
        entry = self._ports.get(rtp_port)
        return None if entry is None else entry[0].remote_rtp

    def _refresh_fast(self, leg: _Leg) -> None:
        """A leg's packets may skip :meth:`receive` when it is configured, no inbound rekey is
        pending (that needs the two-key trial) and it is not waiting to latch. The C path's view of
        the leg (receive context, payload type, remote SSRC) is written here, and only here."""
        rx = leg.rx
        leg.fast = rx is not None and not leg.rekey_pending and not (leg.latch and not leg.latched)
        if self._legs.get(leg.leg_id) is leg:
            if rx is None or not leg.fast:
                self.slots.set_rx(leg.slot, False, None, None, leg.codec_pt, leg.remote_ssrc)
            else:
                self.slots.set_rx(leg.slot, True, rx.handle, rx.owner, leg.codec_pt, leg.remote_ssrc)

    def _notify_remote(self, leg: _Leg) -> None:
        if self.remote_listener is not None:
            self.remote_listener(leg.rtp_port, leg.remote_rtp)

    def _schedule_rtcp(self, leg: _Leg, at: float) -> None:
        leg.next_rtcp = at
        heapq.heappush(self._rtcp_due, (at, next(self._rtcp_tie), leg))

    def _apply_config(self, leg: _Leg, cfg: LegConfig) -> None:
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
        codec = codec_by_name(cfg.codec_name)
        if codec is not leg.codec or cfg.codec_pt != leg.codec_pt:
            leg.jitter.reset()
        leg.codec = codec
        leg.t.tab[leg.slot, SILENCE] = codec.silence
        leg.codec_id = CODEC_IDS[codec.name]
        leg.codec_pt = cfg.codec_pt
        leg.dtmf_pt = -1 if cfg.dtmf_pt is None else cfg.dtmf_pt
        leg.latch = cfg.latch
        self._set_direction(leg, cfg.direction)
        self._dirty = True
        self._refresh_fast(leg)
        if moved:
            self._notify_remote(leg)

    def _set_direction(self, leg: _Leg, direction: Direction) -> None:
        if direction is not leg.direction:
            leg.direction = direction
            leg.sends = direction.sends
            leg.marker = True
            leg.jitter.reset()
            self._dirty = True
            self._update_mixing(leg)

    def _update_mixing(self, leg: _Leg) -> None:
        """Whether the leg's audio goes into the mix: sendrecv, not in the lobby, and holding the floor
        when the conference is floor controlled."""
        st = self._confs.get(leg.conference_id)
        mixes = (
            leg.direction.mixes_input
            and not leg.lobby
            and (st is None or not st.floor or leg.leg_id in st.holders)
        )
        if mixes != leg.mixes_in:
            leg.mixes_in = mixes
            leg.t.tab[leg.slot, MIXES] = 1 if mixes else 0
            leg.jitter.reset()
            self._dirty = True

    def _rebuild(self) -> None:
        order = sorted(
            (leg for leg in self._legs.values() if leg.rx is not None),
            key=lambda leg: leg.conference_id,
        )
        conf_ids: dict[str, int] = {}
        for leg in order:
            leg.conf_idx = conf_ids.setdefault(leg.conference_id, len(conf_ids))
            leg.mix_pos = -1
        self._order = order
        self._mixing = [leg for leg in order if leg.mixes_in]
        sending: list[_Leg] = []
        live: list[_Epoch] = []
        for st in self._confs.values():
            for ep in st.epochs.values():
                ep.listeners = []
        t = self.ticks
        for leg in order:
            a = leg.group
            if a is not None:
                a.live = leg.sends and self._group_effective(leg, a)
                if a.live:
                    if leg.glive_from < 0:
                        leg.glive_from = t
                    if not a.ep.listeners:
                        live.append(a.ep)
                    a.ep.listeners.append(leg)
                    if not a.keep_own:
                        continue
            if leg.glive_from >= 0 and (a is None or not a.live):
                leg.gacc += t - leg.glive_from
                leg.glive_from = -1
            if leg.sends:
                sending.append(leg)
        for ep in live:
            ep.sends = [leg.send for leg in ep.listeners]
            ep.all_direct = all(send is not None for send in ep.sends)
        self._sending = sending
        if self.c_path:
            fds = self.slots.tab[:, FD]
            self._c_legs = [leg for leg in sending if leg.send is not None and fds[leg.slot] >= 0]
            self._py_sending = [leg for leg in sending if leg.send is None or fds[leg.slot] < 0]
        else:
            self._c_legs, self._py_sending = [], sending
        self._c_slots = np.array([leg.slot for leg in self._c_legs], dtype=np.int64)
        self._group_live = live
        self._prompting = [leg for leg in order if leg.lobby or leg.prompt is not None]
        for i, leg in enumerate(self._mixing):
            leg.mix_pos = i
        self._mix_slots = np.array([leg.slot for leg in self._mixing], dtype=np.int64)
        if len(self._pop_gain) < len(self._mixing):
            size = max(64, 2 * len(self._mixing))
            self._pop_out = np.zeros((size, FRAME_SAMPLES), dtype=np.uint8)
            self._pop_gain = np.zeros(size, dtype=np.float64)
            self._pop_index = np.zeros(size, dtype=np.int64)
        self._mix_conf = np.array([leg.conf_idx for leg in self._mixing], dtype=np.intp)
        self._n_conf = len(conf_ids)
        self._codecs_used = sorted({leg.codec_id for leg in order})
        self._mixed_codecs = len(self._codecs_used) > 1
        self._dirty = False

    # ------------------------------------------------------------------------------ receive

    def receive(self, local_port: int, data: bytes, src: Addr, now: float) -> None:
        """One datagram that arrived on ``local_port`` from ``src``."""
        entry = self._ports.get(local_port)
        if entry is None:
            self.unknown_port += 1
            return
        leg, on_rtcp_port = entry
        c = leg.c
        rx = leg.rx
        if rx is None:
            c.unconfigured += 1
            return
        rtcp = on_rtcp_port or (leg.rtcp_mux and len(data) > 1 and 192 <= data[1] <= 223)
        expected = leg.remote_rtcp if rtcp else leg.remote_rtp
        latching = False
        if src != expected and (src[0], src[1]) != expected:
            if not leg.latch or leg.latched:
                c.wrong_source += 1
                return
            latching = True
        try:
            plain = rx.unprotect_rtcp(data) if rtcp else rx.unprotect(data)
        except SrtpError as exc:
            c.srtp_refused(exc.kind)
            return
        if leg.rekey_pending and isinstance(rx, SrtpReceiver) and not rx.rekey_pending:
            leg.rekey_pending = False
            self._refresh_fast(leg)
            self._events.append(InboundKeyConfirmed(leg.leg_id))
        if leg.latch and not leg.latched:
            leg.latched = True
            self._refresh_fast(leg)
            if latching:
                addr: Addr = (src[0], src[1])
                if rtcp:
                    leg.remote_rtcp = addr
                else:
                    leg.remote_rtp = addr
                    if leg.rtcp_mux:
                        leg.remote_rtcp = addr
                if not rtcp:
                    self._notify_remote(leg)
                self._events.append(SourceLatched(leg.leg_id, rtcp, addr))
        if rtcp:
            self._receive_rtcp(leg, plain, now)
            return
        self._receive_rtp(leg, plain, now)

    def receive_buffer(self, local_port: int, n: int, now: float) -> None:
        """:meth:`receive` for the ``n`` bytes at the start of :attr:`rx_buffer`, read from the leg's
        RTP socket while it was connected to the leg's remote RTP address: the kernel delivered only
        datagrams from that address, so the source needs no check. Same counters, events and effects
        as :meth:`receive`."""
        entry = self._ports.get(local_port)
        if entry is None:
            self.unknown_port += 1
            return
        leg, on_rtcp_port = entry
        rxc = self._rxc
        if not leg.fast or on_rtcp_port or n < 12 or n > _MAX_SRTP_IN or 192 <= rxc[1] <= 223:
            src = leg.remote_rtcp if on_rtcp_port else leg.remote_rtp
            self.receive(local_port, self._rxb[0:n], src or ("", 0), now)
            return
        handle = leg.rx.handle  # type: ignore[union-attr]
        if handle is not None:
            lenp = self._lenp
            lenp[0] = n
            rc = srtp_lib.srtp_unprotect(handle, rxc, lenp)
            if rc:
                leg.c.srtp_refused(error_kind(rc))
                return
            n = lenp[0]
        b0, b1, seq, ts, ssrc = _HDR.unpack_from(self._rxb)
        if b0 != 0x80 or n < 12 or (b1 & 0x7F) != leg.codec_pt or ssrc != leg.remote_ssrc:
            self._receive_rtp(leg, self._rxb[0:n], now)
            return
        leg.c.received += 1
        leg.rstats.update(seq, ts, int(now * 8000))
        if leg.mixes_in:
            leg.jitter.push(seq, self._rxb[12:n], now)

    def drain_fast(self, epfd: int, now: float) -> tuple[int, int, list[int]]:
        """One round of the C receive path over the adapter's epoll set ``epfd``: every ready socket
        mapped by :meth:`map_fast_fd` is read, unprotected, checked, counted and buffered in C; anything
        else takes the same full path as :meth:`receive_buffer`. Returns (datagrams read, receive
        errors, the ready descriptors that are not mapped)."""
        fast, other, fds = self.slots.drain(epfd, now, self._jitter_frames, self._jitter_delay)
        tag = self.slots.tag
        errors = 0
        for kind, slot, value, data in other:
            leg = tag[slot]
            if kind == 1:  # decrypted, not the plain case
                self._receive_rtp(leg, data, now)
            elif kind == 2:  # the full path, from the leg's remote RTP address (the socket is connected)
                self.receive(leg.rtp_port, data, leg.remote_rtp or ("", 0), now)
            elif kind == 3:
                leg.c.srtp_refused(error_kind(value))
            else:
                errors += 1
        return fast + len(other), errors, fds

    def _receive_rtp(self, leg: _Leg, plain: bytes, now: float) -> None:
        c = leg.c
        try:
            pt, _marker, seq, ts, ssrc, payload = parse_rtp_fast(plain)
        except RtpError:
            c.malformed += 1
            return
        if ssrc != leg.remote_ssrc:
            if leg.remote_ssrc is not None:  # a new source (e.g. a new key epoch): new sequence space
                leg.jitter.reset()
                leg.rstats.reset()
            leg.remote_ssrc = ssrc
            self._refresh_fast(leg)
        c.received += 1
        if pt == leg.codec_pt:
            leg.rstats.update(seq, ts, int(now * 8000))
            if leg.mixes_in:
                leg.jitter.push(seq, payload, now)
        elif pt == leg.dtmf_pt:
            try:
                dtmf = leg.dtmf.feed(payload, ts, now)
            except DtmfError:
                c.malformed += 1
                return
            for ev in dtmf:
                c.dtmf_events += 1
                self._events.append(DtmfReceived(leg.leg_id, leg.conference_id, ev))
            if leg.dtmf.active:
                self._dtmf_active.add(leg)
            else:
                self._dtmf_active.discard(leg)
        elif pt != CN_PT:
            c.unknown_pt += 1

    def _receive_rtcp(self, leg: _Leg, plain: bytes, now: float) -> None:
        try:
            packets = parse_rtcp(plain)
        except RtpError:
            leg.c.malformed += 1
            return
        leg.c.rtcp_received += 1
        a = leg.group
        own_seen = group_seen = False
        for p in packets:
            if isinstance(p, SenderReport):
                leg.last_sr_mid = ntp_middle32(p.ntp_timestamp)
                leg.last_sr_at = now
            if isinstance(p, SenderReport | RtcpReceiverReport):
                for block in p.reports:
                    if block.ssrc == leg.ssrc:
                        own_seen = True
                        self._events.append(RtcpReport(leg.leg_id, block))
                    elif a is not None and (block.ssrc == a.ep.ssrc or block.ssrc == a.pssrc):
                        group_seen = True
                        self._group_evidence(leg, a, block)
        if a is not None and (own_seen or group_seen):
            self._absent_evidence(leg, a, own_seen, group_seen)
            a.private_ticks = 0
            a.rr_tick = self.ticks

    def _group_evidence(self, leg: _Leg, a: _Assign, block: ReportBlock) -> None:
        """A receiver report block about one of the leg's epoch streams."""
        if block.fraction_lost <= self.confirm_max_loss:
            if not a.confirmed:
                a.confirmed = True
                self._events.append(GroupStreamConfirmed(leg.leg_id, a.ep.epoch))
            return
        if block.ssrc != a.ep.ssrc or a.confirmed or a.failing or block.fraction_lost < self.failing_min_loss:
            return
        # The loss figure counts the common packets it did not get because it was speaking (they went
        # on its private stream): trust it only when the leg was on the common stream most of the time.
        interval = max(1, self.ticks - a.rr_tick)
        if a.private_ticks * 2 < interval:
            a.failing = True
            self._events.append(GroupStreamFailing(leg.leg_id, a.ep.epoch, block.fraction_lost / 256))

    def _absent_evidence(self, leg: _Leg, a: _Assign, own_seen: bool, group_seen: bool) -> None:
        """On probation (both streams sent): reports that keep naming the own stream and never the
        epoch's mean the phone did not take the epoch key."""
        if group_seen or not a.keep_own:
            a.absent = 0
            return
        if self.ticks - a.start_tick < 50 or a.confirmed or a.failing:
            return  # give the phone one second of the epoch's stream before judging
        a.absent += 1
        if a.absent >= 2:
            a.failing = True
            self._events.append(GroupStreamFailing(leg.leg_id, a.ep.epoch, 1.0, "absent"))

    # ------------------------------------------------------------------------------ tick

    def tick(self, now: float) -> list[Datagram]:
        """Play out one 20 ms frame per input, mix, and return the datagrams to send."""
        return self._tick(now, None)

    def tick_send(self, now: float) -> tuple[list[Datagram], int, int]:
        """:meth:`tick`, but a leg with a send function (:meth:`set_send`) gets its RTP packet through
        it. Returns the other datagrams (RTCP, legs without one) and the numbers of packets that the
        send functions dropped (``BlockingIOError``) and refused (other ``OSError``)."""
        errors = [0, 0]
        return self._tick(now, errors), errors[0], errors[1]

    def _tick(self, now: float, direct: list[int] | None) -> list[Datagram]:
        if self._dirty:
            self._rebuild()
        self.ticks += 1
        mixing = self._mixing
        in_legs: list[_Leg]
        if self.c_path:
            # Every mixed leg's jitter buffer plays out in C, straight into the mixer's input rows.
            m = self.slots.pop_all(self._mix_slots, now, self._pop_out, self._pop_gain, self._pop_index)
            codes = self._pop_out[:m]
            in_legs = [mixing[i] for i in self._pop_index[:m].tolist()]
            gains = self._pop_gain[:m]
            rows = np.flatnonzero(gains != 1.0)
            concealed = (rows, gains[rows]) if len(rows) else None
        else:
            payloads: list[bytes] = []
            in_legs = []
            fading: list[tuple[int, float]] = []
            for leg in mixing:
                jb = leg.jitter
                p = jb.pop_payload(now)
                if p is not None:
                    if len(p) != FRAME_SAMPLES:
                        p = (p + bytes([leg.codec.silence]) * FRAME_SAMPLES)[:FRAME_SAMPLES]
                    gain = jb.conceal_gain
                    if gain is not None:
                        fading.append((len(payloads), gain))
                    payloads.append(p)
                    in_legs.append(leg)
            codes = np.frombuffer(b"".join(payloads), dtype=np.uint8).reshape(-1, FRAME_SAMPLES)
            concealed = None
            if fading:
                concealed = (
                    np.fromiter((r for r, _ in fading), dtype=np.intp, count=len(fading)),
                    np.fromiter((g for _, g in fading), dtype=np.float64, count=len(fading)),
                )
        # Last tick's speakers (hysteresis), then forget their N-1 mixes.
        n_in = len(in_legs)
        if n_in == len(mixing):
            prev = np.zeros(n_in, dtype=np.bool_)
            if self._speakers:
                prev[[leg.mix_pos for leg in self._speakers if leg.mix_pos >= 0]] = True
        else:
            prev = np.fromiter((leg.speaker for leg in in_legs), dtype=np.bool_, count=n_in)
        for leg in self._speakers:
            leg.speaker = False
            leg.mix_payload = None
        self._speakers = []
        common = self._mix(codes, in_legs, concealed, prev)
        if self._prompting:
            self._play_prompts()
        out: list[Datagram] = []
        append = out.append
        pack_into = _HDR.pack_into
        txb = self._txb
        txc = self._txc
        view = self._txview
        lenp = self._lenp
        protect = srtp_lib.srtp_protect
        ts_now = FRAME_SAMPLES * (self.ticks - 1)
        end = 12 + FRAME_SAMPLES
        dropped = errors = protects = 0
        sending = self._sending
        if direct is not None and self._c_legs:
            # The C path: header, protect and send for every leg with a connected socket.
            payloads = [leg.mix_payload or common[leg.codec_id][leg.conf_idx] for leg in self._c_legs]
            dropped, errors, failed, protects = self.slots.send(self._c_slots, payloads, ts_now)
            self.protect_failed += failed
            sending = self._py_sending
        for leg in sending:
            payload = leg.mix_payload or common[leg.codec_id][leg.conf_idx]
            seq = leg.seq
            pt = leg.codec_pt
            if leg.marker:
                pt |= 0x80
                leg.marker = False
            pack_into(txb, 0, 0x80, pt, seq, (leg.ts0 + ts_now) & _TS_MASK, leg.ssrc)
            txb[12:end] = payload
            leg.seq = (seq + 1) & 0xFFFF
            handle = leg.tx.handle  # type: ignore[union-attr]
            n = end
            if handle is not None:
                lenp[0] = end
                protects += 1
                if protect(handle, txc, lenp):
                    self.protect_failed += 1
                    continue
                n = lenp[0]
            leg.packets_sent += 1
            send = leg.send
            if send is None or direct is None:
                assert leg.remote_rtp is not None
                append((leg.rtp_port, txb[0:n], leg.remote_rtp))
                continue
            try:
                send(view[:n])
            except BlockingIOError:
                dropped += 1
            except OSError:
                errors += 1
        sent = len(self._sending)
        if self._group_live:
            for ep in self._group_live:
                n_prot, n_sent, d, e = self._send_group(ep, common, ts_now, direct is not None, append)
                protects += n_prot
                sent += n_sent
                dropped += d
                errors += e
        self.tick_protects = protects
        self.tick_sent = sent
        self.protects_total += protects
        if direct is not None:
            direct[0] += dropped
            direct[1] += errors
        due = self._rtcp_due
        while due and due[0][0] <= now:
            at, _, leg = heapq.heappop(due)
            if at == leg.next_rtcp and leg.rx is not None and self._legs.get(leg.leg_id) is leg:
                self._send_rtcp(leg, now, append)
        if self._dtmf_active:
            for leg in list(self._dtmf_active):
                for ev in leg.dtmf.poll(now):
                    leg.c.dtmf_events += 1
                    self._events.append(DtmfReceived(leg.leg_id, leg.conference_id, ev))
                if not leg.dtmf.active:
                    self._dtmf_active.discard(leg)
        return out

    def _mix(
        self,
        codes: npt.NDArray[np.uint8],
        in_legs: list[_Leg],
        concealed: tuple[npt.NDArray[np.intp], npt.NDArray[np.float64]] | None,
        prev: npt.NDArray[np.bool_],
    ) -> list[list[bytes]]:
        """Mix the (M, 160) G.711 input rows (concealed rows: (row indices, gains)); mark speakers with
        their N-1 payload; return the common payload per [codec][conference]."""
        codec_ids = None
        if self._mixed_codecs and len(in_legs):
            codec_ids = np.fromiter((leg.codec_id for leg in in_legs), dtype=np.intp, count=len(in_legs))
        frames = decode_codes(codes, codec_ids)
        if concealed is not None:
            rows, gains = concealed
            frames[rows] = (frames[rows] * gains.astype(np.float32)[:, None]).astype(np.int32)
        n = len(in_legs)
        if n == len(self._mixing):
            conf_index = self._mix_conf
        else:
            conf_index = np.fromiter((leg.conf_idx for leg in in_legs), dtype=np.intp, count=n)
        res = self.mixer.mix(frames, conf_index, max(self._n_conf, 1), prev)
        common: list[list[bytes]] = [[], []]
        tables = _ENCODE_TABLES
        for cid in self._codecs_used:
            common[cid] = encode_rows(res.common, tables[cid])
        speakers = [in_legs[i] for i in res.speakers.tolist()]
        if speakers:
            if self._mixed_codecs:
                for leg, row in zip(speakers, res.speaker_mix, strict=True):
                    leg.mix_payload = encode_rows(row[None, :], tables[leg.codec_id])[0]
            else:
                encoded = encode_rows(res.speaker_mix, tables[speakers[0].codec_id])
                for leg, enc in zip(speakers, encoded, strict=True):
                    leg.mix_payload = enc
            for leg in speakers:
                leg.speaker = True
        self._speakers = speakers
        return common

    def _send_group(
        self,
        ep: _Epoch,
        common: list[list[bytes]],
        ts_now: int,
        direct: bool,
        append: Callable[[Datagram], None],
    ) -> tuple[int, int, int, int]:
        """Send one epoch's streams for this tick: the common packet, protected once and the same bytes
        to every listener that neither speaks nor hears a prompt, and a private packet (N-1 mix or
        prompt) under the epoch key to each of the others. Returns (protect calls, datagrams, dropped,
        refused)."""
        txb = self._txb
        txc = self._txc
        lenp = self._lenp
        handle = ep.handle
        end = 12 + FRAME_SAMPLES
        tick = self.ticks
        listeners = ep.listeners
        # The listeners that get a private packet this tick: speakers and prompt legs (few).
        private: list[_Leg] = []
        for group in (self._speakers, self._prompting):
            for leg in group:
                a = leg.group
                if a is not None and a.live and a.ep is ep and leg.mix_payload is not None:
                    private.append(leg)
        protects = sent = dropped = errors = 0
        if len(private) < len(listeners):
            pt = ep.codec_pt
            if ep.last_tick != tick - 1:
                pt |= 0x80  # first packet of the stream, or after ticks nobody needed it
            ep.last_tick = tick
            _HDR.pack_into(txb, 0, 0x80, pt, ep.seq, (ep.ts0 + ts_now) & _TS_MASK, ep.ssrc)
            txb[12:end] = common[ep.codec_id][listeners[0].conf_idx]
            ep.seq = (ep.seq + 1) & 0xFFFF
            lenp[0] = end
            protects = 1
            if srtp_lib.srtp_protect(handle, txc, lenp):
                self.protect_failed += 1
            else:
                ep.encrypted += 1
                data = txb[0 : lenp[0]]
                if direct and ep.all_direct and not private:
                    # The hot case: the same bytes to every listener, nothing else per leg.
                    for send in ep.sends:
                        try:
                            send(data)  # type: ignore[misc]
                        except BlockingIOError:
                            dropped += 1
                        except OSError:
                            errors += 1
                    sent = len(listeners)
                else:
                    for leg in listeners:
                        if leg.mix_payload is not None:
                            continue
                        sent += 1
                        send = leg.send
                        if send is None or not direct:
                            append((leg.rtp_port, data, leg.remote_rtp))  # type: ignore[arg-type]
                            continue
                        try:
                            send(data)
                        except BlockingIOError:
                            dropped += 1
                        except OSError:
                            errors += 1
                ep.sent += sent
        for leg in private:
            a = leg.group
            assert a is not None
            pt = ep.codec_pt
            if a.plast != tick - 1:
                pt |= 0x80  # a talkspurt (or prompt) starts on the private stream
            a.plast = tick
            a.private_ticks += 1
            _HDR.pack_into(txb, 0, 0x80, pt, a.pseq, (a.pts0 + ts_now) & _TS_MASK, a.pssrc)
            txb[12:end] = leg.mix_payload
            a.pseq = (a.pseq + 1) & 0xFFFF
            lenp[0] = end
            protects += 1
            if srtp_lib.srtp_protect(handle, txc, lenp):
                self.protect_failed += 1
                continue
            n = lenp[0]
            ep.private_encrypted += 1
            ep.private_sent += 1
            sent += 1
            send = leg.send
            if send is None or not direct:
                append((leg.rtp_port, txb[0:n], leg.remote_rtp))  # type: ignore[arg-type]
                continue
            try:
                send(self._txview[:n])
            except BlockingIOError:
                dropped += 1
            except OSError:
                errors += 1
        return protects, sent, dropped, errors

    def _play_prompts(self) -> None:
        """Give each lobby/prompt leg this tick's frame (its ``mix_payload``, which wins over the mix)."""
        for leg in self._prompting:
            play = leg.prompt
            if play is not None:
                frames = play.prompt.frames[leg.codec_id]
                if play.pos >= len(frames):
                    if play.loop:
                        play.pos = 0
                    else:
                        leg.prompt = None
                        self._dirty = True
                        self._events.append(PromptFinished(leg.leg_id, play.prompt.name))
                        play = None
                if play is not None:
                    leg.mix_payload = frames[play.pos]
                    play.pos += 1
                    continue
            if leg.lobby:
                leg.mix_payload = _SILENCE[leg.codec_id]
            elif not leg.speaker:
                leg.mix_payload = None  # the prompt ended: back to the conference

    def _send_rtcp(self, leg: _Leg, now: float, append: Callable[[Datagram], None]) -> None:
        self._schedule_rtcp(leg, now + self._rtcp_delay())
        block = None
        if leg.remote_ssrc is not None:
            lsr = leg.last_sr_mid
            dlsr = int((now - leg.last_sr_at) * 65536) if lsr else 0
            block = leg.rstats.report_block(leg.remote_ssrc, lsr, dlsr)
        blocks = (block,) if block is not None else ()
        first: RtcpPacket
        a = leg.group
        if a is not None and not a.keep_own and a.ep.tx is not None and self._group_effective(leg, a):
            # The phone holds only the epoch key for our direction: report from its private SSRC.
            data = serialize_rtcp(
                [RtcpReceiverReport(a.pssrc, blocks), SourceDescription(((a.pssrc, self._cname),))]
            )
            try:
                protected = a.ep.tx.protect_rtcp(data)
            except SrtpError:
                return
            assert leg.remote_rtcp is not None
            append((leg.rtcp_port, protected, leg.remote_rtcp))
            leg.c.rtcp_sent += 1
            return
        if leg.sends and leg.packets_sent:
            first = SenderReport(
                leg.ssrc,
                ntp_from_unix(self._wallclock()),
                (leg.ts0 + FRAME_SAMPLES * self.ticks) & _TS_MASK,
                leg.packets_sent,
                leg.packets_sent * FRAME_SAMPLES,
                blocks,
            )
        else:
            first = RtcpReceiverReport(leg.ssrc, blocks)
        data = serialize_rtcp([first, SourceDescription(((leg.ssrc, self._cname),))])
        tx = leg.tx
        assert tx is not None and leg.remote_rtcp is not None
        try:
            protected = tx.protect_rtcp(data)
        except SrtpError:
            return
        append((leg.rtcp_port, protected, leg.remote_rtcp))
        leg.c.rtcp_sent += 1
