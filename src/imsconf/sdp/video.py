"""Offer/answer (RFC 3264) for the presentation video stream of a conference leg.  Pure.

The focus does not decode video: it switches the presentation floor holder's RTP to the others
(:mod:`imsconf.media.video`).  So one conference uses one video codec (the first one a participant
negotiated), and every participant's answer carries exactly that codec, under the participant's own payload
type (the switch rewrites it per receiver).  ``decide_video`` picks the first acceptable ``m=video`` line of
an offer, with the same transport and SDES rules as the audio line (:mod:`imsconf.sdp.offer_answer`: plain
RTP only when the policy allows it, ``a=crypto`` only over protected signalling); ``video_section`` writes
our answer for it.  A video line that cannot be accepted stays rejected (port 0): the audio call goes on.

The answer echoes the offered ``a=fmtp`` of the chosen payload type (H.264 profile and packetization mode
must match what the holder sends) and ``a=rtcp-fb`` PLI/FIR lines the offer had (the switch asks a new
holder for a key frame with a PLI when the receiver side negotiated it).
"""

from __future__ import annotations

from dataclasses import dataclass

from .codecs import rtpmaps
from .errors import OfferAnswerError
from .offer_answer import (
    AnswerPolicy,
    Direction,
    Endpoint,
    SrtpParams,
    _choose_crypto,
    _direction,
    _fmtp,
    _transport,
)
from .sdes import CryptoAttribute
from .session import Attribute, MediaDescription, SessionDescription

__all__ = ["VIDEO_CODECS", "VideoCodec", "VideoDecision", "decide_video", "video_section"]

# codecs the switch can forward (it never looks inside the payload): name -> RTP clock rate
VIDEO_CODECS: dict[str, int] = {"H264": 90000, "VP8": 90000, "VP9": 90000, "AV1": 90000, "H265": 90000}
_PLAIN = frozenset({"RTP/AVP", "RTP/AVPF"})
_SDES = frozenset({"RTP/SAVP", "RTP/SAVPF"})
_FEEDBACK = ("pli", "fir")  # rtcp-fb types we may send (RFC 4585 / RFC 5104)


@dataclass(frozen=True, slots=True)
class VideoCodec:
    name: str  # upper case
    payload_type: int
    clock_rate: int
    fmtp: str | None = None


@dataclass(frozen=True, slots=True)
class VideoDecision:
    """The negotiated video stream of one leg; ``local_direction`` is what our answer writes."""

    mline_index: int
    proto: str
    codec: VideoCodec
    remote_rtp: Endpoint
    remote_rtcp: Endpoint
    rtcp_mux: bool
    remote_direction: Direction
    local_direction: Direction
    srtp: SrtpParams | None
    feedback: tuple[str, ...] = ()  # a=rtcp-fb values echoed for our payload type ("nack pli", "ccm fir")

    @property
    def pli(self) -> bool:
        """The remote accepts a PLI (so the switch may ask it for a key frame)."""
        return any(f.split()[-1] == "pli" for f in self.feedback)


def video_index(offer: SessionDescription) -> int | None:
    """Index of the first offered video line with a port."""
    return next((i for i, m in enumerate(offer.media) if m.media == "video" and m.port != 0), None)


def decide_video(
    offer: SessionDescription, policy: AnswerPolicy, *, codec: str | None = None
) -> VideoDecision | None:
    """The first active ``m=video`` of ``offer`` we take, None when there is none.

    ``codec`` is the conference's video codec when it has one already; otherwise the first offered
    payload type among :data:`VIDEO_CODECS` wins.  Raises ``OfferAnswerError`` with the reason the video
    line cannot be accepted (the caller leaves it rejected).
    """
    index = video_index(offer)
    if index is None:
        return None
    m = offer.media[index]
    proto = m.proto.upper()
    if proto not in _PLAIN | _SDES:
        raise OfferAnswerError(f"unsupported video transport {m.proto}")
    srtp = _choose_crypto(m, policy, secure_profile=proto in _SDES)
    if srtp is None and not policy.plain_rtp_allowed:
        raise OfferAnswerError("plain RTP video refused: SRTP is required")
    chosen = _choose_video_codec(m, codec)
    rtp, rtcp, mux, unspecified = _transport(offer, m, mux_allowed=policy.rtcp_mux)
    offered = _direction(offer, m)
    remote = Direction.of(offered.sends, offered.receives and not unspecified)
    feedback = tuple(
        value.split(None, 1)[1].strip()
        for value in m.get_attributes("rtcp-fb")
        if value.split(None, 1)[0] in (str(chosen.payload_type), "*")
        and len(value.split(None, 1)) == 2
        and value.split()[-1].lower() in _FEEDBACK
    )
    return VideoDecision(
        index, m.proto, chosen, rtp, rtcp, mux, remote, remote.reverse(), srtp, tuple(dict.fromkeys(feedback))
    )


def _choose_video_codec(m: MediaDescription, wanted: str | None) -> VideoCodec:
    maps = rtpmaps(m)
    for fmt in m.formats:
        if not fmt.isdigit() or int(fmt) > 127 or int(fmt) not in maps:
            continue
        pt = int(fmt)
        name, rate, _channels = maps[pt]
        name = name.upper()
        if VIDEO_CODECS.get(name) != rate or (wanted is not None and name != wanted):
            continue
        return VideoCodec(name, pt, rate, _fmtp(m, pt))
    supported = wanted or ", ".join(VIDEO_CODECS)
    offered = " ".join(m.formats)
    raise OfferAnswerError(f"no acceptable video codec (offered: {offered}; supported: {supported})")


def video_section(
    d: VideoDecision, port: int, rtcp_port: int | None, crypto: CryptoAttribute | None
) -> MediaDescription:
    """Our answer's ``m=video`` for decision ``d`` (``crypto``: our send key, exactly when SRTP)."""
    if (d.srtp is None) != (crypto is None):
        raise ValueError("our crypto must be given exactly when the video uses SRTP")
    pt = d.codec.payload_type
    attrs = [Attribute("rtpmap", f"{pt} {d.codec.name}/{d.codec.clock_rate}")]
    if d.codec.fmtp:
        attrs.append(Attribute("fmtp", f"{pt} {d.codec.fmtp}"))
    attrs += [Attribute("rtcp-fb", f"{pt} {f}") for f in d.feedback]
    if d.rtcp_mux:
        attrs.append(Attribute("rtcp-mux"))
    elif rtcp_port is not None:
        attrs.append(Attribute("rtcp", str(rtcp_port)))
    if crypto is not None:
        attrs.append(crypto.to_attribute())
    attrs.append(Attribute("content", "slides"))  # RFC 4796: the presentation stream
    attrs.append(Attribute(d.local_direction.value))
    return MediaDescription("video", port, d.proto, (str(pt),), attributes=tuple(attrs))
