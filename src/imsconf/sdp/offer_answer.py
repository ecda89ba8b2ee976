"""Offer/answer (RFC 3264) for the audio leg of a conference focus.

The focus mixes one audio stream per participant.  ``decide_answer(offer, policy)`` reads a remote offer and
returns an ``AudioDecision`` (which m-line, codec, DTMF payload type, where to send RTP/RTCP, direction,
SRTP key of the remote) or raises ``OfferAnswerError`` with the SIP status to answer (488, or 400 for an
inconsistent description).  ``build_answer`` turns a decision into our SDP; ``build_offer`` and
``parse_answer`` are the other side, when the focus sends the INVITE (dial-out, re-INVITE with a new key).

Security rules: plain RTP is refused unless the policy allows it; SDES keys are accepted only
when the signalling is protected (TLS) unless the policy says otherwise; an ``a=crypto`` line is used only
with a suite we implement and no session parameter we do not understand (RFC 4568 §6.3: such a line is
skipped, and ``UNENCRYPTED_SRTP`` and the like are never honoured).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Final

from .codecs import SUPPORTED, CodecChoice, choose_audio_codec, offer_attributes, rtpmaps
from .direction import Direction
from .errors import OfferAnswerError, SdesError
from .payload import TELEPHONE_EVENT, Codec
from .sdes import SUITES, CryptoAttribute
from .session import Attribute, Connection, MediaDescription, Origin, SessionDescription, Timing

__all__ = [
    "KNOWN_CODECS",
    "AnswerPolicy",
    "AudioDecision",
    "Codec",
    "Direction",
    "Endpoint",
    "SrtpParams",
    "build_answer",
    "build_offer",
    "decide_answer",
    "is_hold",
    "parse_answer",
]


# Codecs the focus can mix (imsconf.sdp.codecs): upper-case name -> (static payload type or None, RTP
# clock rate).  G.722 keeps an RTP clock of 8000 for historical reasons (RFC 3551 §4.5.2).
KNOWN_CODECS: Final[dict[str, tuple[int | None, int]]] = {
    name.upper(): (pt, rate) for name, (rate, _, pt) in SUPPORTED.items()
}
_DIRECTIONS = frozenset(d.value for d in Direction)
DEFAULT_SUITES: Final = ("AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32", "AEAD_AES_128_GCM")
# RFC 4568 session parameters we can honour: only the window-size hint, which changes nothing on the wire.
_HARMLESS_SESSION_PARAMS = re.compile(r"^WSH=[0-9]+$")
_PLAIN_PROFILES = frozenset({"RTP/AVP", "RTP/AVPF"})
_SDES_PROFILES = frozenset({"RTP/SAVP", "RTP/SAVPF"})
_RTCP_RE = re.compile(r"^([0-9]{1,5})(?: (\S+) (\S+) (\S+))?$")


@dataclass(frozen=True, slots=True)
class AnswerPolicy:
    """What the focus accepts on an audio leg.

    ``secure_signalling`` is a fact about the request being answered (did it arrive over TLS?); the other
    fields are service policy.  Plain RTP is accepted only when ``allow_plain_rtp`` and not
    ``require_srtp``.  ``codecs`` is our preference order, and it decides (HD voice first: RFC 3264 §6.1
    lets the answerer choose among the offered formats, :func:`imsconf.sdp.codecs.choose_audio_codec`);
    among ``srtp_suites`` the offerer's order decides.
    """

    allow_plain_rtp: bool = False
    require_srtp: bool = True
    secure_signalling: bool = True
    allow_sdes_over_insecure: bool = False
    codecs: tuple[str, ...] = ("PCMU", "PCMA")
    dtmf: bool = True
    rtcp_mux: bool = True
    srtp_suites: tuple[str, ...] = DEFAULT_SUITES

    def __post_init__(self) -> None:
        if not self.codecs:
            raise ValueError("a policy needs at least one codec")
        for c in self.codecs:
            if c.upper() not in KNOWN_CODECS:
                raise ValueError(f"codec {c} is not one the focus can mix")
        for s in self.srtp_suites:
            if s not in SUITES:
                raise ValueError(f"unknown SRTP suite {s}")

    @property
    def plain_rtp_allowed(self) -> bool:
        return self.allow_plain_rtp and not self.require_srtp

    @property
    def sdes_allowed(self) -> bool:
        return self.secure_signalling or self.allow_sdes_over_insecure


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A transport address as written in SDP (the host may be a name; resolving is the adapter's job)."""

    host: str
    port: int

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port out of range: {self.port}")


@dataclass(frozen=True, slots=True)
class SrtpParams:
    """The SDES choice for a stream: the tag and suite agreed, and the remote side's key (its send key)."""

    tag: int
    suite: str
    remote: CryptoAttribute

    def __post_init__(self) -> None:
        if self.remote.tag != self.tag or self.remote.suite != self.suite:
            raise ValueError("remote crypto attribute does not match tag/suite")


@dataclass(frozen=True, slots=True)
class AudioDecision:
    """The negotiated audio stream of one leg.

    ``remote_direction`` is the remote's effective direction (an unspecified ``c=`` address removes its
    receive side); ``local_direction`` is ours, to write in the answer.  ``on_hold`` is true when the
    remote put the stream on hold (sendonly/inactive, or ``c=0.0.0.0``).  ``rejected`` lists the indexes
    of the other m-lines, answered with port 0.
    """

    mline_index: int
    proto: str
    codec: Codec
    remote_rtp: Endpoint
    remote_rtcp: Endpoint
    remote_direction: Direction
    local_direction: Direction
    telephone_event: int | None = None  # at the codec's RTP clock
    telephone_event_fmtp: str | None = None
    rtcp_mux: bool = False
    on_hold: bool = False
    ptime: int | None = None
    srtp: SrtpParams | None = None
    rejected: tuple[int, ...] = field(default=())
    # the codec's a=fmtp parameters as the peer gave them (name, value), sorted: the mixer leg's codec
    # takes them; and the a=fmtp value of our answer for the codec (None: no line)
    codec_params: tuple[tuple[str, str], ...] = ()
    codec_fmtp: str | None = None

    @property
    def secure(self) -> bool:
        return self.srtp is not None


def is_hold(sd: SessionDescription) -> bool:
    """True when the first active audio stream of ``sd`` is on hold (sendonly/inactive or c=0.0.0.0)."""
    for m in sd.media:
        if m.media == "audio" and m.port != 0:
            conn = m.connections[0] if m.connections else sd.connection
            return _direction(sd, m) in (Direction.SENDONLY, Direction.INACTIVE) or (
                conn is not None and conn.is_unspecified
            )
    return False


# --------------------------------------------------------------------------------------------------
# answering


def decide_answer(offer: SessionDescription, policy: AnswerPolicy) -> AudioDecision:
    """Choose the audio stream of ``offer`` to accept; every other m-line is rejected.

    Raises ``OfferAnswerError`` (status 488, or 400 for an inconsistent offer) when no audio stream is
    acceptable; the reason names what was wrong with the first audio stream.
    """
    accepted: AudioDecision | None = None
    first_error: OfferAnswerError | None = None
    rejected: list[int] = []
    for index, m in enumerate(offer.media):
        if accepted is None and m.media == "audio":
            try:
                accepted = _answer_audio(offer, index, m, policy)
                continue
            except OfferAnswerError as exc:
                first_error = first_error or exc
        rejected.append(index)
    if accepted is None:
        raise first_error or OfferAnswerError("the offer has no audio stream")
    return replace(accepted, rejected=tuple(rejected)) if rejected else accepted  # rejected defaults to ()


def _answer_audio(
    sd: SessionDescription, index: int, m: MediaDescription, policy: AnswerPolicy
) -> AudioDecision:
    if m.port == 0:
        raise OfferAnswerError("the audio stream is disabled (port 0)")
    proto = m.proto.upper()
    if proto not in _PLAIN_PROFILES | _SDES_PROFILES:
        if "TLS" in proto:
            raise OfferAnswerError(f"{m.proto}: DTLS-SRTP is not supported, offer SDES (RTP/SAVP)")
        raise OfferAnswerError(f"unsupported transport protocol {m.proto}")
    srtp = _choose_crypto(m, policy, secure_profile=proto in _SDES_PROFILES)
    if srtp is None and not policy.plain_rtp_allowed:
        raise OfferAnswerError("plain RTP refused: SRTP (RTP/SAVP with a=crypto) is required")
    choice = choose_audio_codec(m, policy.codecs)
    te, te_fmtp = (choice.telephone_event, choice.telephone_event_fmtp) if policy.dtmf else (None, None)
    rtp, rtcp, mux, unspecified = _transport(sd, m, mux_allowed=policy.rtcp_mux)
    offered = _direction(sd, m)
    remote = Direction.of(offered.sends, offered.receives and not unspecified)
    return AudioDecision(
        mline_index=index,
        proto=m.proto,
        codec=choice.codec,
        remote_rtp=rtp,
        remote_rtcp=rtcp,
        remote_direction=remote,
        local_direction=remote.reverse(),
        telephone_event=te,
        telephone_event_fmtp=te_fmtp,
        rtcp_mux=mux,
        on_hold=not remote.receives or offered in (Direction.SENDONLY, Direction.INACTIVE),
        ptime=_ptime(m),
        srtp=srtp,
        codec_params=choice.params,
        codec_fmtp=choice.fmtp(),
    )


def _choose_crypto(m: MediaDescription, policy: AnswerPolicy, *, secure_profile: bool) -> SrtpParams | None:
    lines = m.get_attributes("crypto")
    if not lines:
        if secure_profile:
            raise OfferAnswerError(f"{m.proto} offered without a=crypto: only SDES keying is supported")
        return None
    if not policy.sdes_allowed:
        if secure_profile or not policy.plain_rtp_allowed:
            raise OfferAnswerError("SDES keys refused over insecure signalling: use SIP over TLS (sips:)")
        return None  # best-effort SRTP over plain signalling: fall back to the plain RTP the policy allows
    offered: list[str] = []
    for value in lines:
        try:
            crypto = CryptoAttribute.parse(value)
        except SdesError as exc:
            offered.append(f"<{exc.reason}>")
            continue
        offered.append(crypto.suite)
        if crypto.suite not in policy.srtp_suites:
            continue
        if not all(_HARMLESS_SESSION_PARAMS.match(p) for p in crypto.session_params):
            continue
        return SrtpParams(crypto.tag, crypto.suite, crypto)
    if secure_profile or not policy.plain_rtp_allowed:
        raise OfferAnswerError(
            f"no acceptable a=crypto line (offered: {', '.join(offered)}; "
            f"supported: {', '.join(policy.srtp_suites)})"
        )
    return None


def _fmtp(m: MediaDescription, pt: int) -> str | None:
    """The ``a=fmtp`` parameters of payload type *pt* of ``m`` (None: no line)."""
    for value in m.get_attributes("fmtp"):
        head, _, rest = value.partition(" ")
        if head == str(pt):
            return rest.strip()
    return None


def _transport(
    sd: SessionDescription, m: MediaDescription, *, mux_allowed: bool
) -> tuple[Endpoint, Endpoint, bool, bool]:
    """(RTP endpoint, RTCP endpoint, rtcp-mux, connection address unspecified)."""
    conn = m.connections[0] if m.connections else sd.connection
    if conn is None:
        raise OfferAnswerError("no c= line for the audio stream (RFC 8866 §5.7)", 400)
    _check_unicast(conn)
    rtp = Endpoint(conn.address, m.port)
    if mux_allowed and m.has_attribute("rtcp-mux"):
        return rtp, rtp, True, conn.is_unspecified
    rtcp_value = m.get_attribute("rtcp")
    if rtcp_value is None:
        if m.port == 65535:
            raise OfferAnswerError("RTP port 65535 leaves no room for RTCP", 400)
        return rtp, Endpoint(conn.address, m.port + 1), False, conn.is_unspecified
    r = _RTCP_RE.match(rtcp_value.strip())
    if r is None or int(r.group(1)) > 65535:
        raise OfferAnswerError(f"malformed a=rtcp attribute (RFC 3605): {rtcp_value!r}", 400)
    host = r.group(4) if r.group(4) is not None else conn.address
    return rtp, Endpoint(host, int(r.group(1))), False, conn.is_unspecified


def _check_unicast(conn: Connection) -> None:
    if conn.nettype != "IN" or conn.addrtype not in ("IP4", "IP6"):
        raise OfferAnswerError(f"unsupported network type {conn.nettype} {conn.addrtype}")
    if conn.ttl is not None or conn.count is not None:
        raise OfferAnswerError("multicast media is not supported")
    facts = _ADDRESS_FACTS.get(conn.address)
    if facts is None:
        facts = _address_facts(conn.address)
    if facts is _HOST_NAME:
        return  # a host name: resolved by the transport adapter
    version, multicast = facts
    if multicast:
        raise OfferAnswerError("multicast media is not supported")
    if (version == 6) != (conn.addrtype == "IP6"):
        raise OfferAnswerError(f"address {conn.address} does not match {conn.addrtype}", 400)


_HOST_NAME: tuple[int, bool] = (0, False)
# address text -> (IP version, multicast), or _HOST_NAME: facts of the text alone (ipaddress is slow)
_ADDRESS_FACTS: dict[str, tuple[int, bool]] = {}


def _address_facts(text: str) -> tuple[int, bool]:
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        facts = _HOST_NAME
    else:
        facts = (addr.version, addr.is_multicast)
    if len(_ADDRESS_FACTS) >= 4096:
        _ADDRESS_FACTS.clear()  # bounded: peers choose the text
    _ADDRESS_FACTS[text] = facts
    return facts


def _direction(sd: SessionDescription, m: MediaDescription) -> Direction:
    for attrs in (m.attributes, sd.attributes):
        for a in attrs:
            if a.value is None and a.name.lower() in _DIRECTIONS:
                return Direction(a.name.lower())
    return Direction.SENDRECV


def _ptime(m: MediaDescription) -> int | None:
    value = m.get_attribute("ptime")
    if value is not None and value.strip().isdigit() and 0 < int(value) <= 1000:
        return int(value)
    return None


def _origin(local_host: str, session_id: int, version: int, username: str) -> Origin:
    return Origin(username, session_id, version, local_host, "IN", _addrtype(local_host))


def _addrtype(host: str) -> str:
    return "IP6" if ":" in host else "IP4"


def build_answer(
    offer: SessionDescription,
    decision: AudioDecision,
    local_host: str,
    local_rtp_port: int,
    local_rtcp_port: int | None,
    our_crypto: CryptoAttribute | None,
    session_id: int,
    version: int,
    *,
    username: str = "-",
    session_name: str = "imsconf",
) -> SessionDescription:
    """Our answer to ``offer``: one m-line per offered m-line, in order (RFC 3264 §6).

    ``our_crypto`` (our send key, from the key authority) is required exactly when the decision is SRTP,
    with the decision's tag and suite.  ``local_rtcp_port`` is written as ``a=rtcp`` (RFC 3605) unless
    rtcp-mux was agreed.  A wrong call raises ``ValueError`` (a local bug, not a remote error).
    """
    if (decision.srtp is None) != (our_crypto is None):
        raise ValueError("our_crypto must be given exactly when the decision uses SRTP")
    if (
        decision.srtp is not None
        and our_crypto is not None
        and (our_crypto.tag, our_crypto.suite) != (decision.srtp.tag, decision.srtp.suite)
    ):
        raise ValueError("our_crypto must use the tag and suite of the accepted offer line")
    if not 0 < local_rtp_port <= 65535:
        raise ValueError("local RTP port out of range")
    media: list[MediaDescription] = []
    for index, m in enumerate(offer.media):
        if index != decision.mline_index:
            media.append(MediaDescription(m.media, 0, m.proto, m.formats or ("0",)))
            continue
        media.append(_audio_section(decision, local_rtcp_port, our_crypto, local_rtp_port))
    return SessionDescription(
        origin=_origin(local_host, session_id, version, username),
        name=session_name,
        connection=Connection(local_host, "IN", _addrtype(local_host)),
        timings=(Timing(0, 0),),
        media=tuple(media),
    )


def _audio_section(
    d: AudioDecision, local_rtcp_port: int | None, crypto: CryptoAttribute | None, port: int
) -> MediaDescription:
    formats = [str(d.codec.payload_type)]
    attrs = [Attribute("rtpmap", d.codec.rtpmap())]
    if d.codec_fmtp:
        attrs.append(Attribute("fmtp", f"{d.codec.payload_type} {d.codec_fmtp}"))
    if d.telephone_event is not None:
        formats.append(str(d.telephone_event))
        attrs.append(Attribute("rtpmap", f"{d.telephone_event} {TELEPHONE_EVENT}/{d.codec.clock_rate}"))
        if d.telephone_event_fmtp:
            attrs.append(Attribute("fmtp", f"{d.telephone_event} {d.telephone_event_fmtp}"))
    if d.ptime is not None:
        attrs.append(Attribute("ptime", str(d.ptime)))
    if d.rtcp_mux:
        attrs.append(Attribute("rtcp-mux"))
    elif local_rtcp_port is not None:
        attrs.append(Attribute("rtcp", str(local_rtcp_port)))
    if crypto is not None:
        attrs.append(crypto.to_attribute())
    attrs.append(Attribute(d.local_direction.value))
    return MediaDescription("audio", port, d.proto, tuple(formats), attributes=tuple(attrs))


# --------------------------------------------------------------------------------------------------
# offering


def build_offer(
    local_host: str,
    local_rtp_port: int,
    session_id: int,
    version: int,
    *,
    local_rtcp_port: int | None = None,
    codecs: Sequence[str] = ("PCMU", "PCMA"),
    telephone_event: int | None = 101,
    crypto: Sequence[CryptoAttribute] = (),
    feedback: bool = False,
    direction: Direction = Direction.SENDRECV,
    rtcp_mux: bool = False,
    ptime: int | None = 20,
    username: str = "-",
    session_name: str = "imsconf",
) -> SessionDescription:
    """Our offer for one audio stream (dial-out, or a re-INVITE that carries a new key or holds).

    With ``crypto`` the profile is RTP/SAVP (RTP/SAVPF with ``feedback``) and each attribute becomes one
    ``a=crypto`` line, in order; without, RTP/AVP.  ``codecs`` in our preference order
    (:func:`imsconf.sdp.codecs.offer_attributes`, with their ``a=fmtp``); codecs without a static payload
    type get 96, 97, ...  A telephone-event is offered at each RTP clock of the codecs: ``telephone_event``
    at the first, the next free dynamic payload types at the others.
    """
    if not codecs:
        raise ValueError("an offer needs at least one codec")
    tags = [c.tag for c in crypto]
    if len(set(tags)) != len(tags):
        raise ValueError("crypto tags must be distinct")
    for name in codecs:
        if name.upper() not in KNOWN_CODECS:
            raise ValueError(f"unknown codec {name}")
    fmts, codec_attrs = offer_attributes(codecs, telephone_event=False)
    if telephone_event is not None and str(telephone_event) in fmts:
        raise ValueError(f"payload type {telephone_event} is taken by a codec")
    formats = list(fmts)
    attrs = list(codec_attrs)
    if telephone_event is not None:
        clocks = list(dict.fromkeys(KNOWN_CODECS[n.upper()][1] for n in codecs))
        free = iter(pt for pt in range(96, 128) if str(pt) not in fmts and pt != telephone_event)
        for i, clock in enumerate(clocks):
            pt = telephone_event if i == 0 else next(free)
            formats.append(str(pt))
            attrs.append(Attribute("rtpmap", f"{pt} {TELEPHONE_EVENT}/{clock}"))
            attrs.append(Attribute("fmtp", f"{pt} 0-15"))
    if ptime is not None:
        attrs.append(Attribute("ptime", str(ptime)))
    if rtcp_mux:
        attrs.append(Attribute("rtcp-mux"))
    if local_rtcp_port is not None:
        attrs.append(Attribute("rtcp", str(local_rtcp_port)))
    attrs.extend(c.to_attribute() for c in crypto)
    attrs.append(Attribute(direction.value))
    proto = ("RTP/SAVPF" if feedback else "RTP/SAVP") if crypto else ("RTP/AVPF" if feedback else "RTP/AVP")
    audio = MediaDescription("audio", local_rtp_port, proto, tuple(formats), attributes=tuple(attrs))
    return SessionDescription(
        origin=_origin(local_host, session_id, version, username),
        name=session_name,
        connection=Connection(local_host, "IN", _addrtype(local_host)),
        timings=(Timing(0, 0),),
        media=(audio,),
    )


def parse_answer(offer: SessionDescription, answer: SessionDescription) -> AudioDecision:
    """Read the remote's answer to our ``offer`` (built by ``build_offer``).

    The result's ``srtp.remote`` is the remote's key for the tag it picked (our key for that tag is the one
    we offered).  Raises ``OfferAnswerError``: 400 when the answer does not match the offer's shape, 488
    when it rejects or changes the audio stream in a way we cannot use.
    """
    if len(answer.media) != len(offer.media):
        raise OfferAnswerError(
            f"the answer has {len(answer.media)} media sections, the offer had {len(offer.media)}", 400
        )
    index = next((i for i, m in enumerate(offer.media) if m.media == "audio" and m.port != 0), None)
    if index is None:
        raise ValueError("our offer has no active audio stream")
    ours, theirs = offer.media[index], answer.media[index]
    if theirs.media != "audio":
        raise OfferAnswerError(f"m-line {index} of the answer is {theirs.media}, not audio", 400)
    if theirs.port == 0:
        raise OfferAnswerError("the remote rejected the audio stream")
    if theirs.proto.upper() != ours.proto.upper():
        raise OfferAnswerError(f"the answer changed the transport from {ours.proto} to {theirs.proto}")
    srtp = _answer_crypto(ours, theirs)
    choice = _answered_codec(ours, theirs)
    offered_te = any(n.lower() == TELEPHONE_EVENT for n, _, _ in rtpmaps(ours).values())
    te, te_fmtp = choice.telephone_event, choice.telephone_event_fmtp
    rtp, rtcp, mux, unspecified = _transport(answer, theirs, mux_allowed=ours.has_attribute("rtcp-mux"))
    answered = _direction(answer, theirs)
    remote = Direction.of(answered.sends, answered.receives and not unspecified)
    return AudioDecision(
        mline_index=index,
        proto=ours.proto,
        codec=choice.codec,
        remote_rtp=rtp,
        remote_rtcp=rtcp,
        remote_direction=remote,
        local_direction=remote.reverse().intersect(_direction(offer, ours)),
        telephone_event=te if offered_te else None,
        telephone_event_fmtp=te_fmtp if offered_te else None,
        rtcp_mux=mux,
        on_hold=not remote.receives or answered in (Direction.SENDONLY, Direction.INACTIVE),
        ptime=_ptime(theirs),
        srtp=srtp,
        rejected=tuple(i for i in range(len(offer.media)) if i != index),
        codec_params=choice.params,
        codec_fmtp=choice.fmtp(),
    )


def _answered_codec(ours: MediaDescription, theirs: MediaDescription) -> CodecChoice:
    """The codec of the answer: its first format that we offered and can honour (the answerer sends what
    it lists first).  A payload type the answer does not map keeps our offer's ``a=rtpmap``."""
    offered = rtpmaps(ours)
    own = rtpmaps(theirs)
    names: list[str] = []
    for fmt in theirs.formats:
        if fmt.isdigit() and int(fmt) in offered:
            name = own.get(int(fmt), offered[int(fmt)])[0]
            if name.upper() in KNOWN_CODECS and name not in names:
                names.append(name)
    if not names:
        raise OfferAnswerError(
            f"no acceptable codec in the answer (formats: {' '.join(theirs.formats) or 'none'})"
        )
    missing = tuple(
        Attribute("rtpmap", Codec(n, pt, r, c).rtpmap()) for pt, (n, r, c) in offered.items() if pt not in own
    )
    return choose_audio_codec(replace(theirs, attributes=theirs.attributes + missing), names)


def _answer_crypto(ours: MediaDescription, theirs: MediaDescription) -> SrtpParams | None:
    offered: dict[int, str] = {}
    for value in ours.get_attributes("crypto"):
        c = CryptoAttribute.parse(value)
        offered[c.tag] = c.suite
    lines = theirs.get_attributes("crypto")
    if not offered:
        if lines:
            raise OfferAnswerError("the answer carries a=crypto but we offered none")
        return None
    if len(lines) != 1:
        raise OfferAnswerError(f"the answer must carry exactly one a=crypto line, it has {len(lines)}")
    try:
        crypto = CryptoAttribute.parse(lines[0])
    except SdesError as exc:
        raise OfferAnswerError(f"bad a=crypto in the answer: {exc.reason}") from None
    if offered.get(crypto.tag) != crypto.suite:
        raise OfferAnswerError(f"the answer's a=crypto tag {crypto.tag} / {crypto.suite} was not offered")
    if crypto.session_params and not all(_HARMLESS_SESSION_PARAMS.match(p) for p in crypto.session_params):
        raise OfferAnswerError("the answer's a=crypto carries session parameters we do not support")
    return SrtpParams(crypto.tag, crypto.suite, crypto)
