"""One participant's media negotiation: SDP offer → decision → keys from the key authority → mixer leg.

The focus calls this for the initial INVITE and for every re-INVITE/UPDATE that carries an offer.  Keys are
made by :mod:`imsconf.keys` (never by the mixer) and handed to the MRFP through :class:`MediaControl`.

A *chat-only* session (an offer with a message stream and no active audio line, from a leg that has no
mixer leg yet) gets no mixer leg and no keys: every line of the answer is rejected and the SDP hook (the
chat, ``focus/chat.py``) answers the message stream; when the hook accepts nothing the offer gets the 488
an offer without audio always got. Such a leg has ``chat_only`` set, ``decision`` and ``ports`` None; a
later offer with audio gives it a mixer leg like a first offer would.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from imsconf.keys.authority import MasterKey, new_master_key
from imsconf.media.control import LegPorts, MediaControl
from imsconf.media.events import MediaEngineError
from imsconf.media.srtp import SrtpKeys
from imsconf.sdp.errors import OfferAnswerError, SdpParseError
from imsconf.sdp.offer_answer import (
    AnswerPolicy,
    AudioDecision,
    build_answer,
    build_offer,
    decide_answer,
    parse_answer,
)
from imsconf.sdp.sdes import CryptoAttribute
from imsconf.sdp.session import Connection, MediaDescription, Origin, SessionDescription, Timing

OFFER_SUITE = "AES_CM_128_HMAC_SHA1_80"
# our codec preference for offers and answers (FocusConfig.audio_codecs): HD voice first, then G.711
OFFER_CODECS: tuple[str, ...] = ("AMR-WB", "opus", "G722", "PCMU", "PCMA")


class NegotiationError(Exception):
    """The offer cannot be accepted; ``status`` is the SIP answer (488 or 400), ``reason`` names why."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(slots=True)
class MediaSession:
    """The media state of one leg, owned by the focus."""

    leg_id: str
    conf_id: str
    ports: LegPorts | None = None
    decision: AudioDecision | None = None
    tx_key: MasterKey | None = None
    # the downlink group key this listener was last given (imsconf.focus.keying): our answers carry it
    # instead of tx_key while it is set, so a re-INVITE of its own does not move it off the group key
    group_key: MasterKey | None = None
    rx_key_salt: bytes | None = None  # fingerprint of the remote key in use, to see a change
    crypto_tag: int | None = None
    session_id: int = field(default_factory=lambda: secrets.randbelow(2**31))
    version: int = 0
    answer: bytes = (
        b""  # our last SDP (answer, or offer for a dial-out): offered again on an offerless re-INVITE
    )
    _offer: SessionDescription | None = None  # our pending offer (dial-out), until the answer arrives
    # (offer, answer) -> answer, run last on every answer: the BFCP stream (imsconf.focus.floor_feature)
    sdp_hook: Callable[[SessionDescription, SessionDescription], SessionDescription] | None = None
    chat_only: bool = False  # the session has a message stream and no audio: no mixer leg, no keys
    # the conference's audio codec preference (FocusConfig.codecs_for), for our answers and our offer;
    # empty: the answer policy's codecs and the offer's argument
    codecs: tuple[str, ...] = ()

    def negotiate(
        self, body: bytes, policy: AnswerPolicy, media: MediaControl, *, host: str, initial: bool
    ) -> bytes:
        """Answer the offer in *body*; configure (or update) the mixer leg.  Raises NegotiationError."""
        try:
            offer = SessionDescription.parse(body)
        except SdpParseError as exc:
            raise NegotiationError(400, f"bad SDP: {exc.reason}") from None
        if self.codecs:
            policy = replace(policy, codecs=self.codecs)
        try:
            decision = decide_answer(offer, policy)
        except OfferAnswerError as exc:
            if (
                self.ports is None
                and self.decision is None
                and self.sdp_hook is not None
                and _chat_only(offer)
            ):
                return self._answer_chat_only(offer, host, exc)
            raise NegotiationError(exc.status, exc.reason) from None
        tx_keys: SrtpKeys | None = None
        rx_keys: SrtpKeys | None = None
        new_tx = False
        if decision.srtp is not None:
            suite = decision.srtp.suite
            if self.tx_key is None or self.tx_key.suite != suite:
                if self.tx_key is not None:
                    self.tx_key.wipe()
                self.tx_key = new_master_key(suite)
                new_tx = True
            tx_keys = SrtpKeys(suite, self.tx_key.key, self.tx_key.salt)
            remote = decision.srtp.remote
            rx_keys = SrtpKeys(suite, remote.master_key, remote.master_salt)
        elif self.tx_key is not None:
            self.tx_key.wipe()
            self.tx_key = None
            new_tx = True
        remote_rtp = (decision.remote_rtp.host, decision.remote_rtp.port)
        remote_rtcp = None if decision.rtcp_mux else (decision.remote_rtcp.host, decision.remote_rtcp.port)
        direction = decision.local_direction
        dtmf = decision.telephone_event
        if initial or self.ports is None:
            try:
                self.ports = media.allocate_leg(self.conf_id, self.leg_id, rtcp_mux=decision.rtcp_mux)
            except (OSError, MediaEngineError) as exc:  # no ports, or the separate mixer is unreachable
                raise NegotiationError(503, f"no media resources: {exc}") from None
            try:
                self.configure(media, decision, tx_keys, rx_keys)
            except BaseException:  # no half-configured leg is left behind, whatever went wrong
                media.release_leg(self.leg_id)
                self.ports = None
                raise
        else:
            rx_changed = rx_keys is not None and rx_keys.key_salt() != self.rx_key_salt
            media.update_leg(
                self.leg_id,
                remote_rtp=remote_rtp,
                remote_rtcp=remote_rtcp,
                codec_pt=decision.codec.payload_type,
                codec_name=decision.codec.name,
                codec_clock=decision.codec.clock_rate,
                codec_params=decision.codec_params,
                dtmf_pt=dtmf,
                direction=direction,
                **({"tx_keys": tx_keys} if new_tx else {}),
                **({"rx_keys": rx_keys} if rx_changed or (rx_keys is None and self.rx_key_salt) else {}),
            )
        self.rx_key_salt = rx_keys.key_salt() if rx_keys is not None else None
        self.decision = decision
        self.chat_only = False
        our_crypto = None
        if decision.srtp is not None and self.tx_key is not None:
            shown = self.group_key if self.group_key and self.group_key.suite == decision.srtp.suite else None
            our_crypto = CryptoAttribute.from_key(
                decision.srtp.tag, decision.srtp.suite, (shown or self.tx_key).key_salt
            )
        self.version += 1
        assert self.ports is not None
        answer = build_answer(
            offer,
            decision,
            host,
            self.ports.rtp_port,
            None if decision.rtcp_mux else self.ports.rtcp_port,
            our_crypto,
            self.session_id,
            self.version,
        )
        if self.sdp_hook is not None:
            answer = self.sdp_hook(offer, answer)
        self.answer = bytes(answer)
        return self.answer

    def _answer_chat_only(self, offer: SessionDescription, host: str, refusal: OfferAnswerError) -> bytes:
        """Every line rejected, then the SDP hook sees the offer's message lines only (the other parts
        find nothing to accept); nothing accepted is the *refusal*."""
        assert self.sdp_hook is not None
        only_messages = replace(
            offer, media=tuple(m if m.media == "message" else replace(m, port=0) for m in offer.media)
        )
        self.version += 1
        rejected = SessionDescription(
            origin=Origin("-", self.session_id, self.version, host, "IN", _addrtype(host)),
            name="imsconf",
            connection=Connection(host, "IN", _addrtype(host)),
            timings=(Timing(0, 0),),
            media=tuple(MediaDescription(m.media, 0, m.proto, m.formats or ("0",)) for m in offer.media),
        )
        answer = self.sdp_hook(only_messages, rejected)
        if not any(m.port != 0 for m in answer.media):
            self.version -= 1
            raise NegotiationError(refusal.status, refusal.reason)
        self.chat_only = True
        self.answer = bytes(answer)
        return self.answer

    def offer(
        self,
        media: MediaControl,
        *,
        host: str,
        srtp: bool,
        suite: str = OFFER_SUITE,
        codecs: Sequence[str] = OFFER_CODECS,
    ) -> bytes:
        """Our initial offer for a dial-out: a mixer leg is allocated now (separate RTCP port, no mux), the
        send key is made by the key authority when ``srtp`` (one ``a=crypto`` line, tag 1); ``codecs`` in
        our preference order, each with its ``a=fmtp`` and a telephone-event at each of their clocks."""
        if self.ports is not None:
            raise ValueError("the leg already has media")
        self.ports = media.allocate_leg(self.conf_id, self.leg_id, rtcp_mux=False)
        crypto: tuple[CryptoAttribute, ...] = ()
        if srtp:
            self.tx_key = new_master_key(suite)
            crypto = (CryptoAttribute.from_key(1, suite, self.tx_key.key_salt),)
        self.version += 1
        sd = build_offer(
            host,
            self.ports.rtp_port,
            self.session_id,
            self.version,
            local_rtcp_port=self.ports.rtcp_port,
            crypto=crypto,
            codecs=self.codecs or codecs,
        )
        self._offer = sd
        self.answer = bytes(sd)
        return self.answer

    def accept_answer(self, body: bytes, media: MediaControl) -> None:
        """The remote's answer to :meth:`offer`: configure the mixer leg.  Raises NegotiationError."""
        if self._offer is None or self.ports is None:
            raise NegotiationError(500, "no offer outstanding")
        try:
            answer = SessionDescription.parse(body)
        except SdpParseError as exc:
            raise NegotiationError(400, f"bad SDP: {exc.reason}") from None
        try:
            decision = parse_answer(self._offer, answer)
        except OfferAnswerError as exc:
            raise NegotiationError(exc.status, exc.reason) from None
        tx_keys: SrtpKeys | None = None
        rx_keys: SrtpKeys | None = None
        if decision.srtp is not None:
            if self.tx_key is None:  # pragma: no cover - parse_answer refuses crypto we did not offer
                raise NegotiationError(488, "SRTP answer to a plain offer")
            suite = decision.srtp.suite
            tx_keys = SrtpKeys(suite, self.tx_key.key, self.tx_key.salt)
            remote = decision.srtp.remote
            rx_keys = SrtpKeys(suite, remote.master_key, remote.master_salt)
        elif self.tx_key is not None:  # pragma: no cover - parse_answer needs a=crypto for SAVP
            raise NegotiationError(488, "plain answer to an SRTP offer")
        self.configure(media, decision, tx_keys, rx_keys)
        self.rx_key_salt = rx_keys.key_salt() if rx_keys is not None else None
        self.decision = decision
        # what we offer again (a new key, a move to another mixer) is the codec agreed, not the whole list:
        # an answer choosing another one would leave the mixer leg on the old codec
        self.answer = bytes(_only_agreed(self._offer, decision))
        self._offer = None

    def configure(
        self, media: MediaControl, decision: AudioDecision, tx_keys: SrtpKeys | None, rx_keys: SrtpKeys | None
    ) -> None:
        """Configure this leg's (allocated) mixer leg as *decision* negotiated it, with these keys: the one
        ``configure_leg`` call of the focus (a first answer, a dial-out's answer, a move to a new mixer by
        :mod:`imsconf.focus.recovery`)."""
        media.configure_leg(
            self.leg_id,
            remote_rtp=(decision.remote_rtp.host, decision.remote_rtp.port),
            remote_rtcp=None if decision.rtcp_mux else (decision.remote_rtcp.host, decision.remote_rtcp.port),
            codec_pt=decision.codec.payload_type,
            codec_name=decision.codec.name,
            codec_clock=decision.codec.clock_rate,
            codec_params=decision.codec_params,
            dtmf_pt=decision.telephone_event,
            tx_keys=tx_keys,
            rx_keys=rx_keys,
            direction=decision.local_direction,
        )

    @property
    def on_hold(self) -> bool:
        return self.decision is not None and self.decision.on_hold

    @property
    def secure(self) -> bool:
        return self.decision is not None and self.decision.srtp is not None

    @property
    def key_mode(self) -> str:
        """How the downlink to this leg is keyed: ``group`` (a group key), ``sdes`` (its own SDES key) or
        ``none`` (plain RTP, or nothing negotiated yet)."""
        if self.group_key is not None:
            return "group"
        return "sdes" if self.secure else "none"

    def release(self, media: MediaControl) -> None:
        if self.ports is not None:
            try:
                media.release_leg(self.leg_id)
            except (KeyError, MediaEngineError, OSError):  # already gone with its conference
                pass
            self.ports = None
        for key in (self.tx_key, self.group_key):
            if key is not None:
                key.wipe()
        self.tx_key = self.group_key = None
        self.rx_key_salt = None


def _only_agreed(offer: SessionDescription, decision: AudioDecision) -> SessionDescription:
    """*offer* with its audio stream cut down to the agreed codec and telephone-event (their ``a=rtpmap``
    and ``a=fmtp`` lines; the other attributes stay)."""
    keep = {str(decision.codec.payload_type)}
    if decision.telephone_event is not None:
        keep.add(str(decision.telephone_event))
    m = offer.media[decision.mline_index]
    attrs = tuple(
        a
        for a in m.attributes
        if a.name.lower() not in ("rtpmap", "fmtp") or (a.value or "").partition(" ")[0] in keep
    )
    cut = replace(m, formats=tuple(f for f in m.formats if f in keep), attributes=attrs)
    media = list(offer.media)
    media[decision.mline_index] = cut
    return replace(offer, media=tuple(media))


def _chat_only(offer: SessionDescription) -> bool:
    """The offer has a message stream and no active audio line."""
    active = [m.media for m in offer.media if m.port != 0]
    return "message" in active and "audio" not in active


def _addrtype(host: str) -> str:
    return "IP6" if ":" in host else "IP4"
