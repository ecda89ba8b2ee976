"""The engine's leg table: per-leg records (counters, transmit state in the slot row, jitter buffer,
reception state, group place, prompt), the per-conference settings and group epochs, and
:class:`LegTable`, the state every part of the engine shares."""

from __future__ import annotations

import heapq
import itertools
import random
import struct
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from imsconf.keys.policy import DownlinkMode
from imsconf.sdp.direction import Direction

from .codec_port import Codec
from .dtmf import DtmfReceiver
from .events import (
    Addr,
    MediaEngineError,
    MediaEvent,
)
from .fastpath import (
    MARKER,
    MIXES,
    PT,
    RING,
    SENT,
    SEQ,
    SSRC,
    TS0,
    SlotJitter,
    SlotReceptionStats,
    SlotTable,
    fastpath_enabled,
)
from .figures import LegTotals, TickRecord
from .g711 import G711Codec, codec_by_name
from .jitter import JitterBuffer
from .mixer import FRAME_SAMPLES, Mixer
from .prompts import Prompt
from .rtp import (
    ReceptionStats,
    ReportBlock,
)
from .srtp import (
    NullReceiver,
    NullSender,
    SrtpReceiver,
    SrtpSender,
    srtp_ffi,
)

ENCODE_TABLES = (codec_by_name("PCMU").encode_table, codec_by_name("PCMA").encode_table)
SILENCE_FRAMES = (bytes([codec_by_name("PCMU").silence]) * 160, bytes([codec_by_name("PCMA").silence]) * 160)
CN_PT = 13  # RFC 3389 comfort noise: accepted and ignored
TICK = 0.020
BUFFER_SIZE = 2048  # receive and transmit buffers; longer datagrams are truncated by the socket read
MAX_SRTP_IN = 1500  # longest datagram SrtpReceiver.unprotect accepts (pylibsrtp's buffer)
HDR = struct.Struct("!BBHII")
TS_MASK = 0xFFFF_FFFF

SendFunc = Callable[[Any], object]  # socket.send of a connected socket
RemoteListener = Callable[[int, "Addr | None"], None]


# ----------------------------------------------------------------------------------------- legs


class Counters:
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


class GroupStream:
    """One more common stream of an epoch in the 16 kHz mix: the listeners of one codec group (payload
    type, codec, clock, format parameters) that is not the epoch's own codec. Its own SSRC (new to the
    conference, never reused), sequence and timestamp; protected by the epoch's SRTP context."""

    __slots__ = ("encrypted", "last_tick", "listeners", "pt", "sent", "seq", "ssrc", "ts0", "ts_step")

    def __init__(self, ssrc: int, pt: int, ts_step: int, seq: int, ts0: int) -> None:
        self.ssrc = ssrc
        self.pt = pt
        self.ts_step = ts_step
        self.seq = seq
        self.ts0 = ts0
        self.last_tick = -2
        self.listeners: list[Leg] = []  # this tick's receivers (the 16 kHz mix's send)
        self.encrypted = 0
        self.sent = 0


class Epoch:
    """One group key epoch of a conference: the common listener stream (its own SSRC, sequence and
    timestamp) and the SRTP context of the epoch key, which also protects the listeners' private streams
    and, in the 16 kHz mix, the common stream of each other codec group (:class:`GroupStream`)."""

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
        "streams",
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
        self.listeners: list[Leg] = []  # effective listeners that receive (rebuilt)
        self.sends: list[SendFunc | None] = []  # their send functions, aligned (rebuilt)
        self.all_direct = False
        self.encrypted = 0
        self.sent = 0
        self.private_encrypted = 0
        self.private_sent = 0
        # The 16 kHz mix's other codec groups: (payload type, codec key) -> stream (made when needed).
        self.streams: dict[tuple[int, tuple[object, ...]], GroupStream] = {}

    def has_ssrc(self, ssrc: int) -> bool:
        """One of the epoch's common streams (its own, or a codec group's) is sent on ``ssrc``."""
        return ssrc == self.ssrc or any(gs.ssrc == ssrc for gs in self.streams.values())


class Assign:
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
        "stream",
    )

    def __init__(self, ep: Epoch, pssrc: int, pseq: int, pts0: int, keep_own: bool, tick: int) -> None:
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
        self.stream: GroupStream | None = (
            None  # in the 16 kHz mix: its codec group's stream (None: the epoch's)
        )


class ConfSettings:
    """Per-conference settings that outlive legs: downlink mode, group epochs, floor control."""

    __slots__ = ("epochs", "floor", "holders", "mode", "used_epochs", "used_ssrcs")

    def __init__(self) -> None:
        self.mode = DownlinkMode.PER_PARTICIPANT
        self.epochs: dict[int, Epoch] = {}
        self.used_epochs: set[int] = set()
        self.used_ssrcs: set[int] = set()  # every group SSRC (common or private) ever used here
        self.floor = False
        self.holders: frozenset[str] = frozenset()


class PromptPlay:
    __slots__ = ("loop", "pos", "prompt")

    def __init__(self, prompt: Prompt, loop: bool) -> None:
        self.prompt = prompt
        self.loop = loop
        self.pos = 0


class RtcpTiming:
    """A leg's RTCP schedule and the last sender report it got (for the LSR/DLSR of our reports)."""

    __slots__ = ("last_sr_at", "last_sr_mid", "next_at")

    def __init__(self) -> None:
        self.next_at = 0.0
        self.last_sr_mid = 0
        self.last_sr_at = 0.0


class GroupTicks:
    """How long a leg has received a group epoch's streams (one packet per tick: common or private)."""

    __slots__ = ("before", "live_from")

    def __init__(self) -> None:
        self.live_from = -1  # engine tick after which it receives an epoch's streams (-1: it does not)
        self.before = 0  # ticks on epoch streams before that

    def total(self, tick: int) -> int:
        return self.before + (tick - self.live_from if self.live_from >= 0 else 0)


class Leg:
    __slots__ = (
        "_codec_pt",
        "c",
        "chosen_tick",
        "clock",
        "codec",
        "codec_id",
        "conf_idx",
        "conference_id",
        "corrupt",
        "deaf",
        "direction",
        "dtmf",
        "dtmf_pt",
        "enc_key",
        "fast",
        "group",
        "group_ticks",
        "jitter",
        "latch",
        "latched",
        "leg_id",
        "lobby",
        "mix_payload",
        "mix_pos",
        "mixes_in",
        "muted",
        "prompt",
        "rekey_pending",
        "remote_rtcp",
        "remote_rtp",
        "remote_ssrc",
        "rr",
        "rstats",
        "rtcp",
        "rtcp_mux",
        "rtcp_port",
        "rtp_port",
        "rx",
        "send",
        "sends",
        "sent_before",
        "slot",
        "speaker",
        "speaking",
        "t",
        "ts_step",
        "tx",
        "wb",
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
        self.c = Counters()
        self.remote_rtp: Addr | None = None
        self.remote_rtcp: Addr | None = None
        self.codec: G711Codec = codec_by_name("PCMU")
        self.codec_id = 0
        self.codec_pt = -1
        self.dtmf_pt = -1
        # A non-G.711 codec (imsconf.media.codec_port): the leg's own decoder and encoder; its conference
        # then mixes at 16 kHz (imsconf.media.wideband). None for G.711 (``codec``).
        self.wb: Codec | None = None
        self.clock = 8000  # the RTP clock of the negotiated codec (and of its telephone-events)
        self.ts_step = FRAME_SAMPLES  # RTP timestamp units per 20 ms tick
        self.enc_key: tuple[object, ...] = ("PCMU", 8000, ())  # listeners with the same key share a frame
        self.corrupt = 0  # frames the codec could not decode (concealed)
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
        self.fast = False  # a connected socket's datagrams may take the fast path (see refresh_fast)
        self.conf_idx = 0
        self.speaker = False
        self.mix_payload: bytes | None = None
        self.mix_pos = -1  # index among the engine's mixing legs (valid after a rebuild)
        self.send: SendFunc | None = None  # direct send (connected socket), set by the adapter
        self.sent_before = 0  # packets sent under earlier transmit keys
        self.rtcp = RtcpTiming()
        self.group: Assign | None = None
        self.group_ticks = GroupTicks()
        self.lobby = False
        self.prompt: PromptPlay | None = None
        self.muted = False  # mixed into nobody's audio (set_leg_mix)
        self.deaf = False  # receives silence (set_leg_mix)
        self.rr: ReportBlock | None = None  # the last report block about our stream to it
        self.chosen_tick = -2  # the last tick it was among the chosen speakers
        self.speaking = False  # as last reported (SpeakingChanged)

    # The transmit state lives in the leg's slot row (read and advanced by the C path as well).
    @property
    def codec_pt(self) -> int:
        """The payload type it sends and accepts (-1: none negotiated yet); the C send path reads the
        row's copy."""
        return self._codec_pt

    @codec_pt.setter
    def codec_pt(self, value: int) -> None:
        self._codec_pt = value
        self.t.tab[self.slot, PT] = max(value, 0)

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
        """The RTP timestamp at engine tick 0: ts = ts0 + ts_step * ticks (160 for G.711)."""
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


class LegTable:
    """The shared state of one mixer's engine: every leg (by id and by local port), the conferences' settings,
    the SSRCs in use, the per-packet slot table, the lists rebuilt from them, the event queue, and the one
    receive and transmit buffer. :class:`~imsconf.media.engine.MediaEngine` owns one and hands it to each
    part of the engine (ingress, egress, mixdown, group downlink, lobby) in its constructor."""

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
        self.jitter_delay = jitter_delay
        self.jitter_capacity = jitter_capacity
        self.allow_plain_rtp = allow_plain_rtp
        self.rtcp_interval = rtcp_interval
        self.cname = cname.encode()
        self.wallclock = wallclock
        self.rng = rng or random.SystemRandom()
        self.leg_map: dict[str, Leg] = {}
        # Per-leg packet state, shared with the C per-packet path (imsconf.media.fastpath).
        self.slots = SlotTable()
        # The C path keeps each leg's jitter buffer in a ring of RING entries: at most RING/2 frames.
        self.c_path = fastpath_enabled() and 2 * round(jitter_capacity / TICK) <= RING
        self.jitter_frames = round(jitter_capacity / TICK)
        self.mix_slots = np.zeros(0, dtype=np.int64)  # slots of the mixing legs (rebuilt)
        self.pop_out = np.zeros((0, FRAME_SAMPLES), dtype=np.uint8)  # C play-out: frames, gains, rows
        self.pop_gain = np.zeros(0, dtype=np.float64)
        self.pop_index = np.zeros(0, dtype=np.int64)
        self.c_legs: list[Leg] = []  # sending legs whose RTP the C path sends (rebuilt)
        self.c_slots = np.zeros(0, dtype=np.int64)
        self.py_sending: list[Leg] = []  # the other sending legs
        self.port_map: dict[int, tuple[Leg, bool]] = {}  # local port -> (leg, is the RTCP port)
        self.ssrcs_in_use: set[int] = set()
        self.order: list[Leg] = []
        self.mixing: list[Leg] = []  # configured legs whose input is mixed, in _order
        self.sending: list[Leg] = []  # configured legs that receive the mix, in _order
        self.mix_conf = np.zeros(0, dtype=np.intp)  # conference index of each mixing leg
        self.rtcp_due: list[tuple[float, int, Leg]] = []  # heap of (rtcp.next_at, tie, leg)
        self.rtcp_tie = itertools.count()
        self.n_conf = 0
        self.mixed_codecs = False
        self.codecs_used: list[int] = []
        self.dirty = True
        self.speakers: list[Leg] = []
        self.dtmf_active: set[Leg] = set()
        self.pending_events: list[MediaEvent] = []
        self.unknown_port = 0
        self.ticks = 0
        self.protect_failed = 0
        # One receive and one transmit buffer for the whole engine (it is single-threaded).
        self.lenp: Any = srtp_ffi.new("int *")
        self.rxc: Any = srtp_ffi.new("unsigned char[]", BUFFER_SIZE)
        self.rxb: Any = srtp_ffi.buffer(self.rxc)
        self.txc: Any = srtp_ffi.new("unsigned char[]", BUFFER_SIZE)
        self.txb: Any = srtp_ffi.buffer(self.txc)
        self.txview = memoryview(self.txb)
        self.remote_listener: RemoteListener | None = None
        # Group downlink keying, floor control, lobby (imsconf.media.group_downlink, imsconf.media.lobby).
        self.conf_map: dict[str, ConfSettings] = {}
        self.group_live: list[Epoch] = []  # epochs with at least one effective listener (rebuilt)
        self.prompting: list[Leg] = []  # legs in the lobby or with a prompt playing (rebuilt)
        self.burned_ssrcs: set[int] = set()  # group SSRCs ever used: never handed out again
        self.confirm_max_loss = confirm_max_loss  # RR fraction lost (/256) up to which a stream is confirmed
        self.failing_min_loss = failing_min_loss  # and from which it is failing
        self.tick_protects = 0  # srtp_protect calls for RTP in the last tick
        self.tick_sent = 0  # RTP datagrams produced in the last tick
        self.protects_total = 0
        self.talking: set[Leg] = set()  # legs reported speaking (SpeakingChanged)
        self.tick_record = TickRecord()  # fed by the UDP adapter (MixerStats)
        self.released = LegTotals()  # the final counters of released legs (MixerStats)
        # Conferences with a wideband leg mix at 16 kHz (imsconf.media.wideband), apart from these lists.
        self.wide_order: list[Leg] = []  # their legs, by conference (rebuilt)
        self.wide_shared_encode = True  # one encode per listener group (False: per leg, for comparison)

    def get_leg(self, leg_id: str) -> Leg:
        try:
            return self.leg_map[leg_id]
        except KeyError:
            raise MediaEngineError(f"no leg {leg_id!r}") from None

    def conf_settings(self, conference_id: str) -> ConfSettings:
        st = self.conf_map.get(conference_id)
        if st is None:
            st = self.conf_map[conference_id] = ConfSettings()
        return st

    def compact(self) -> bool:
        """Give back the slot rows and the play-out buffers a load grew: they keep their peak size
        otherwise (~5 kB per leg the load had at once, docs/decisions/0012-memory-after-load.md). Live
        legs keep their slots. Returns whether anything shrank."""
        shrank = self.slots.compact()
        if len(self.pop_gain) > max(64, 2 * len(self.mixing)):
            self.pop_out = np.zeros((0, self.pop_out.shape[1]), dtype=np.uint8)
            self.pop_gain = np.zeros(0, dtype=np.float64)
            self.pop_index = np.zeros(0, dtype=np.int64)
            shrank = True
        if shrank:
            self.dirty = True  # the tick's per-leg arrays are made again, at the sizes the live legs need
        return shrank

    def check_new_ssrc(self, st: ConfSettings, ssrc: int) -> None:
        if not 0 <= ssrc < 1 << 32:
            raise MediaEngineError(f"SSRC {ssrc} out of range")
        if ssrc in st.used_ssrcs or ssrc in self.ssrcs_in_use or ssrc in self.burned_ssrcs:
            raise MediaEngineError(f"SSRC {ssrc:#010x} is or was in use: an SSRC is never reused")

    def refresh_mixing(self, conference_id: str) -> None:
        for leg in self.leg_map.values():
            if leg.conference_id == conference_id:
                self.update_mixing(leg)

    @staticmethod
    def group_effective(leg: Leg, a: Assign) -> bool:
        """The leg receives the epoch's streams: not in the lobby, the epoch live, and a G.711 leg on the
        epoch's codec (a codec leg's conference mixes at 16 kHz, where each codec group has a stream)."""
        ep = a.ep
        return (
            not leg.lobby
            and ep.tx is not None
            and (leg.wb is not None or (leg.codec_id == ep.codec_id and leg.codec_pt == ep.codec_pt))
        )

    def new_ssrc(self) -> int:
        while True:
            ssrc = self.rng.randrange(1, 1 << 32)
            if ssrc not in self.ssrcs_in_use and ssrc not in self.burned_ssrcs:
                self.ssrcs_in_use.add(ssrc)
                return ssrc

    def rtcp_delay(self) -> float:
        return self.rtcp_interval * (0.5 + self.rng.random())  # RFC 3550 §6.3.1 randomisation

    def refresh_fast(self, leg: Leg) -> None:
        """A leg's packets may skip the full receive path when it is configured, no inbound rekey is
        pending (that needs the two-key trial) and it is not waiting to latch. The C path's view of
        the leg (receive context, payload type, remote SSRC) is written here, and only here."""
        rx = leg.rx
        latching = leg.latch and not leg.latched
        leg.fast = rx is not None and leg.wb is None and not leg.rekey_pending and not latching
        if self.leg_map.get(leg.leg_id) is leg:
            if rx is None or not leg.fast:
                self.slots.set_rx(leg.slot, False, None, None, leg.codec_pt, leg.remote_ssrc)
            else:
                self.slots.set_rx(leg.slot, True, rx.handle, rx.owner, leg.codec_pt, leg.remote_ssrc)

    def notify_remote(self, leg: Leg) -> None:
        if self.remote_listener is not None:
            self.remote_listener(leg.rtp_port, leg.remote_rtp)

    def schedule_rtcp(self, leg: Leg, at: float) -> None:
        leg.rtcp.next_at = at
        heapq.heappush(self.rtcp_due, (at, next(self.rtcp_tie), leg))

    def update_mixing(self, leg: Leg) -> None:
        """Whether the leg's audio goes into the mix: sendrecv, not in the lobby, not muted, and holding
        the floor when the conference is floor controlled."""
        st = self.conf_map.get(leg.conference_id)
        mixes = (
            leg.direction.mixes_input
            and not leg.lobby
            and not leg.muted
            and (st is None or not st.floor or leg.leg_id in st.holders)
        )
        if mixes != leg.mixes_in:
            leg.mixes_in = mixes
            leg.t.tab[leg.slot, MIXES] = 1 if mixes else 0
            leg.jitter.reset()
            self.dirty = True
