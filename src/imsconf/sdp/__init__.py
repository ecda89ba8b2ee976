"""imsconf.sdp: session descriptions (RFC 8866), SDES keys (RFC 4568), offer/answer (RFC 3264).

Sans-I/O: bytes in, frozen dataclasses out; every error carries the SIP status to answer with.
"""

from .errors import OfferAnswerError, SdesError, SdpError, SdpParseError, UnsupportedSuiteError
from .offer_answer import (
    AnswerPolicy,
    AudioDecision,
    Codec,
    Direction,
    Endpoint,
    SrtpParams,
    build_answer,
    build_offer,
    decide_answer,
    is_hold,
    parse_answer,
)
from .sdes import SUITES, CryptoAttribute, CryptoSuite, KeyParam
from .session import (
    Attribute,
    Bandwidth,
    Connection,
    MediaDescription,
    Origin,
    Repeat,
    SessionDescription,
    Timing,
    ZoneAdjustment,
)

__all__ = [
    "SUITES",
    "AnswerPolicy",
    "Attribute",
    "AudioDecision",
    "Bandwidth",
    "Codec",
    "Connection",
    "CryptoAttribute",
    "CryptoSuite",
    "Direction",
    "Endpoint",
    "KeyParam",
    "MediaDescription",
    "OfferAnswerError",
    "Origin",
    "Repeat",
    "SdesError",
    "SdpError",
    "SdpParseError",
    "SessionDescription",
    "SrtpParams",
    "Timing",
    "UnsupportedSuiteError",
    "ZoneAdjustment",
    "build_answer",
    "build_offer",
    "decide_answer",
    "is_hold",
    "parse_answer",
]
