"""Test user agents for imsconf: a small, real SIP phone (UDP/TCP/TLS, SDES-SRTP with rekeying, DTMF,
hold, REFER with Replaces, SUBSCRIBE/NOTIFY, digest) written independently of the server's code."""

from .analysis import arrival_gap_ms, decode_dtmf, gaps, tone_gap_ms, tone_present, tone_windows, try_decrypt
from .call import Call, Dialog, OfferRecord, Subscription
from .media import AudioFrame, DtmfEvent, MediaStats, MediaStream
from .rtp import KeySwitch
from .sdp import AudioSdp, Crypto, build_sdp, parse_sdp
from .sipmsg import NameAddr, SipMessage, SipUri, parse_message
from .ua import UserAgent

__all__ = [
    "AudioFrame",
    "AudioSdp",
    "Call",
    "Crypto",
    "Dialog",
    "DtmfEvent",
    "KeySwitch",
    "MediaStats",
    "MediaStream",
    "NameAddr",
    "OfferRecord",
    "SipMessage",
    "SipUri",
    "Subscription",
    "UserAgent",
    "arrival_gap_ms",
    "build_sdp",
    "decode_dtmf",
    "gaps",
    "parse_message",
    "parse_sdp",
    "tone_gap_ms",
    "tone_present",
    "tone_windows",
    "try_decrypt",
]
