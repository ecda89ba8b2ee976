"""imsconf.media: the MRFP (RTP/RTCP, SRTP via pylibsrtp, G.711, jitter buffer, mixer, DTMF) and the
MRFC interface the focus drives (:mod:`imsconf.media.control`)."""

from .control import EventSink, LegPorts, LocalMediaControl, MediaControl, PortAllocator
from .dtmf import DtmfEvent
from .engine import (
    KEEP,
    DtmfReceived,
    GroupEpochStats,
    GroupStreamConfirmed,
    GroupStreamFailing,
    InboundKeyConfirmed,
    Keep,
    LegConfig,
    LegStats,
    MediaEngine,
    MediaEngineError,
    MediaEvent,
    MixerStats,
    PromptFinished,
    RtcpReport,
    SourceLatched,
    SpeakingChanged,
)
from .prompts import PROMPTS, register_prompt, spoken_prompt
from .srtp import SUITES, SrtpError, SrtpKeys
from .udp import UdpMediaTransport

__all__ = [
    "KEEP",
    "PROMPTS",
    "SUITES",
    "DtmfEvent",
    "DtmfReceived",
    "EventSink",
    "GroupEpochStats",
    "GroupStreamConfirmed",
    "GroupStreamFailing",
    "InboundKeyConfirmed",
    "Keep",
    "LegConfig",
    "LegPorts",
    "LegStats",
    "LocalMediaControl",
    "MediaControl",
    "MediaEngine",
    "MediaEngineError",
    "MediaEvent",
    "MixerStats",
    "PortAllocator",
    "PromptFinished",
    "RtcpReport",
    "SourceLatched",
    "SpeakingChanged",
    "SrtpError",
    "SrtpKeys",
    "UdpMediaTransport",
    "register_prompt",
    "spoken_prompt",
]
