"""imsconf.media: the MRFP (RTP/RTCP, SRTP via pylibsrtp, G.711, jitter buffer, mixer, DTMF) and the
MRFC interface the focus drives (:mod:`imsconf.media.control`)."""

from .control import EventSink, LegPorts, LocalMediaControl, MediaControl, PortAllocator
from .dtmf import DtmfEvent
from .engine import (
    KEEP,
    Direction,
    DtmfReceived,
    InboundKeyConfirmed,
    Keep,
    LegConfig,
    LegStats,
    MediaEngine,
    MediaEngineError,
    MediaEvent,
    RtcpReport,
    SourceLatched,
)
from .srtp import SUITES, SrtpError, SrtpKeys
from .udp import UdpMediaTransport

__all__ = [
    "KEEP",
    "SUITES",
    "Direction",
    "DtmfEvent",
    "DtmfReceived",
    "EventSink",
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
    "PortAllocator",
    "RtcpReport",
    "SourceLatched",
    "SrtpError",
    "SrtpKeys",
    "UdpMediaTransport",
]
