"""Values that cross the media plane's boundary: leg configuration, direction, events, statistics.

Frozen, slotted dataclasses validated at construction. These are what the focus (through
:mod:`imsconf.media.control`) hands in and gets back, and what a remote control channel would carry.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from imsconf.sdp.direction import Direction

from .dtmf import DtmfEvent
from .g711 import codec_by_name
from .rtp import ReportBlock

__all__ = [
    "KEEP",
    "TICK_SECONDS_BOUNDS",
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
    "MediaEngineError",
    "MediaEvent",
    "MixerLost",
    "MixerReady",
    "MixerStats",
    "PromptFinished",
    "RtcpReport",
    "SourceLatched",
    "SpeakingChanged",
]

Addr = tuple[str, int]
Datagram = tuple[int, bytes, Addr]  # (local port, data, destination)


G711_NAMES = frozenset({"PCMU", "PCMA"})
# The other audio codecs a leg may name (a=rtpmap name, upper case) and their RTP clocks; the engine's
# codec factory makes the instance (imsconf.media.codec_port). G.722's RTP clock is 8000 (RFC 3551 §4.5.2).
CODEC_CLOCKS: dict[str, frozenset[int]] = {
    "L16": frozenset({16000}),
    "G722": frozenset({8000}),
    "AMR": frozenset({8000}),
    "AMR-WB": frozenset({16000}),
    "EVS": frozenset({16000}),
    "OPUS": frozenset({48000}),
}


class MediaEngineError(Exception):
    """A control-plane mistake (unknown leg, duplicate id, plain RTP where SRTP is required...)."""


@dataclass(frozen=True, slots=True)
class LegConfig:
    """What the SDP offer/answer settled for one leg."""

    remote_rtp: Addr
    remote_rtcp: Addr | None  # None: RTP port + 1, or the RTP address itself with rtcp-mux
    codec_pt: int
    codec_name: str  # "PCMU" or "PCMA" (the engine's own G.711), or a codec the engine's factory makes
    dtmf_pt: int | None = None  # telephone-event, at the codec's RTP clock
    direction: Direction = Direction.SENDRECV
    latch: bool = False
    codec_clock: int = 8000  # the codec's RTP clock (a=rtpmap), 8000 for G.711
    codec_params: tuple[tuple[str, str], ...] = ()  # its a=fmtp parameters (e.g. mode-set, maxaveragebitrate)

    def __post_init__(self) -> None:
        if self.codec_name in G711_NAMES:
            codec_by_name(self.codec_name)
            if self.codec_clock != 8000:
                raise ValueError(f"{self.codec_name} runs at an 8000 Hz clock")
        elif self.codec_clock not in CODEC_CLOCKS.get(self.codec_name.upper(), ()):
            raise ValueError(f"codec {self.codec_name!r}/{self.codec_clock} is not one the mixer takes")
        for pt in (self.codec_pt, self.dtmf_pt):
            if pt is not None and not (0 <= pt <= 127 and not 64 <= pt <= 95):
                raise ValueError(f"payload type {pt} is not usable (0-63, 96-127)")
        if self.dtmf_pt is not None and self.dtmf_pt == self.codec_pt:
            raise ValueError("telephone-event and audio share a payload type")


# ----------------------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class DtmfReceived:
    leg_id: str
    conference_id: str
    event: DtmfEvent


@dataclass(frozen=True, slots=True)
class RtcpReport:
    """A receiver's report about the stream we send it (e.g. to see whether it decrypts: loss stays
    at 100 % when it cannot)."""

    leg_id: str
    block: ReportBlock


@dataclass(frozen=True, slots=True)
class SourceLatched:
    leg_id: str
    rtcp: bool
    addr: Addr


@dataclass(frozen=True, slots=True)
class InboundKeyConfirmed:
    """The first packet under a new inbound key arrived; the old key is gone."""

    leg_id: str


@dataclass(frozen=True, slots=True)
class GroupStreamConfirmed:
    """The listener's SRTCP receiver report shows a stream of ``epoch`` (the common SSRC or its private
    speaker SSRC) received with low loss: it decrypts under the epoch key. Once per assignment."""

    leg_id: str
    epoch: int


@dataclass(frozen=True, slots=True)
class GroupStreamFailing:
    """Evidence that the listener does not decrypt ``epoch``'s stream. ``evidence`` is ``"loss"`` (its
    report gives the common SSRC a very high ``fraction_lost``, 0..1, while the mixer was sending it that
    stream) or ``"absent"`` (on probation with ``keep_own``: reports name its own stream but never the
    epoch's, ``fraction_lost`` is then 1.0). Once per assignment."""

    leg_id: str
    epoch: int
    fraction_lost: float
    evidence: str = "loss"


@dataclass(frozen=True, slots=True)
class PromptFinished:
    """A prompt started with ``loop=False`` has played to its end (or was replaced / stopped)."""

    leg_id: str
    name: str


@dataclass(frozen=True, slots=True)
class MixerLost:
    """The control channel to a separate mixer is gone (closed, or silent past the heartbeat timeout): every
    leg and conference the focus had on it is gone with it.  A pool of mixers (``imsconf.media.pool``) scopes
    the loss of one member: ``legs`` (audio and video leg ids) and ``conferences`` are what was on it; None
    (the one separate mixer) means every leg and conference."""

    reason: str
    legs: frozenset[str] | None = None
    conferences: frozenset[str] | None = None


@dataclass(frozen=True, slots=True)
class MixerReady:
    """A separate mixer is connected (again): ``generation`` counts the connections; legs made before it
    are not on this mixer and must be made again (``imsconf.focus.recovery``)."""

    generation: int


@dataclass(frozen=True, slots=True)
class SpeakingChanged:
    """A leg started or stopped speaking. It speaks once the mixer chose it among its conference's
    loudest inputs (``imsconf.media.mixer``: K loudest above a level floor) on two consecutive ticks
    (40 ms), and stops after 300 ms without being chosen (at once when it is muted). Only changes are
    reported, never one event per tick; a muted leg never speaks."""

    leg_id: str
    conference_id: str
    speaking: bool


MediaEvent = (
    DtmfReceived
    | RtcpReport
    | SourceLatched
    | InboundKeyConfirmed
    | GroupStreamConfirmed
    | GroupStreamFailing
    | PromptFinished
    | MixerLost
    | MixerReady
    | SpeakingChanged
)


@dataclass(frozen=True, slots=True)
class GroupEpochStats:
    """Counters of one group epoch's streams (mixer side; for metrics and the evaluation benchmark)."""

    conference_id: str
    epoch: int
    ssrc: int
    listeners: int  # legs assigned to the epoch (whether speaking or not)
    packets_encrypted: int  # common-stream packets protected (one per tick with a non-speaking listener)
    packets_sent: int  # common-stream datagrams handed out (the same bytes to every listener)
    private_encrypted: int  # speaker/prompt packets protected under the epoch key (private SSRCs)
    private_sent: int


TICK_SECONDS_BOUNDS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05)
"""Upper bounds (seconds) of the tick-work histogram in :class:`MixerStats` (+Inf follows them)."""


@dataclass(frozen=True, slots=True)
class MixerStats:
    """Process-wide figures of one mixer (for metrics). ``ticks`` counts the ticks that ran; ``late_ticks``
    the ticks that started more than the adapter's ``late_after`` (10 ms) behind their deadline plus the
    deadlines skipped because a whole tick period had passed (``imsconf.media.udp``). ``tick_seconds_*``
    is a histogram of each tick's work: ``tick_seconds_buckets`` holds cumulative counts for the bounds in
    :data:`TICK_SECONDS_BOUNDS` and then +Inf (so its last element equals the number of ticks measured).
    The RTP/SRTP counters are summed over every leg that ever existed (live legs, and the final counts
    of released ones): RTP packets accepted and sent, SRTP authentication and replay-check failures."""

    ticks: int = 0
    late_ticks: int = 0
    tick_seconds_sum: float = 0.0
    tick_seconds_buckets: tuple[int, ...] = (0,) * (len(TICK_SECONDS_BOUNDS) + 1)
    legs: int = 0
    conferences: int = 0
    rtp_received: int = 0
    rtp_sent: int = 0
    srtp_auth_failures: int = 0
    srtp_replays: int = 0

    def __post_init__(self) -> None:
        if len(self.tick_seconds_buckets) != len(TICK_SECONDS_BOUNDS) + 1:
            raise ValueError("one bucket per bound and one for +Inf")


@dataclass(frozen=True, slots=True)
class LegStats:
    received: int  # RTP packets accepted (authenticated, well formed, right source)
    decrypt_failed: int  # SRTP/SRTCP authentication failures
    replayed: int  # SRTP replay-check failures
    srtp_other: int  # other libsrtp refusals
    wrong_source: int
    unconfigured: int  # packets before configure_leg
    malformed: int
    unknown_pt: int
    late: int
    duplicate: int
    overflow: int
    concealed: int
    played: int
    sent: int
    rtcp_received: int
    rtcp_sent: int
    dtmf_events: int
    jitter: int  # interarrival jitter, timestamp units
    ssrc: int  # our current SSRC towards this leg
    remote_ssrc: int | None
    group_epoch: int | None = None  # the group epoch the leg listens on, if any
    group_sent: int = 0  # packets sent to it under group keys (common + private streams)
    lobby: bool = False
    prompt: str | None = None  # the prompt playing to it, if any
    # From the last receiver report block the participant sent about our stream to it (None before one):
    rtcp_loss: float | None = None  # fraction lost, 0..1
    rtcp_jitter_ms: float | None = None  # interarrival jitter in ms (at the codec clock)
    muted: bool = False  # its audio is mixed into nobody's (set_leg_mix)
    deaf: bool = False  # it receives silence (set_leg_mix)
    corrupt: int = 0  # frames its codec could not decode (concealed instead)


class Keep(enum.Enum):
    """Sentinel type for "leave this setting as it is" where None is a meaningful value."""

    KEEP = "keep"


KEEP = Keep.KEEP
