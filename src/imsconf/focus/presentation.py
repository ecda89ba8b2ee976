"""The presentation side of floor control: video switching and floor state in the event package.

One :class:`FocusPresentation` per focus.  It owns three things:

* **Video negotiation.**  :meth:`FocusPresentation.sdp_hook` wraps a leg's answer post-processor (the BFCP
  one): when the offer has an ``m=video`` line (:mod:`imsconf.sdp.video`), the answer accepts it next to
  the audio with the conference's video codec, SDES keys from the key authority (our own key for our
  direction, one per leg) and a video leg in the mixer (``allocate_video`` / ``configure_video``).  A video
  line we cannot take stays rejected (port 0) and the audio call goes on; a re-offer without video
  releases the video leg.
* **Switching.**  The holder of the presentation floor (BFCP floor 2) is the conference's video source
  (``set_video_source``); nobody holds it, nobody is sent.  Re-evaluated on every floor change
  (``FocusFloor.on_change``), when a leg's video is (re)negotiated and when a participant leaves.
* **Floor state in the conference event package.**  A floor change is recorded in the model
  (``Conference.set_floors``, a ``FloorChanged`` roster event: version + 1), so subscribers get a partial
  NOTIFY.  ``FocusFloor.on_change`` may fire inside the focus's ``apply`` (a holder left) or from the BFCP
  adapter, where no SIP endpoint is at hand: the change is posted to the focus's inbox
  (:class:`~imsconf.focus.legs.Inbox`) and applied at its next timer.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

from imsconf.conference.errors import ConferenceError
from imsconf.conference.events import (
    ConferenceClosed,
    ConferenceEvent,
    FloorState,
    MediaReleaseRequired,
    ParticipantLeft,
)
from imsconf.conference.model import Conference
from imsconf.conference.registry import ConferenceRegistry
from imsconf.keys.authority import MasterKey, new_master_key
from imsconf.media.control import LegPorts, MediaControl
from imsconf.media.events import MediaEngineError
from imsconf.media.srtp import SrtpKeys
from imsconf.sdp.errors import OfferAnswerError
from imsconf.sdp.offer_answer import AnswerPolicy
from imsconf.sdp.sdes import CryptoAttribute
from imsconf.sdp.session import MediaDescription, SessionDescription
from imsconf.sdp.video import VideoDecision, decide_video, video_index, video_section
from imsconf.sip.endpoint import SipEndpoint

from .floor_feature import AUDIO_FLOOR, PRESENTATION_FLOOR, FocusFloor, SdpHook
from .legs import Inbox
from .ports import FeatureBase, FocusPort

# what the mixer raises when it has no video plane, no port, or no such leg/conference (any more)
_MEDIA_ERRORS = (MediaEngineError, KeyError, ValueError, OSError)

__all__ = ["FocusPresentation", "VideoLeg", "chain_hooks"]

log = logging.getLogger("imsconf.focus.video")

FLOOR_MEDIA = {AUDIO_FLOOR: "audio", PRESENTATION_FLOOR: "video"}


@dataclass(slots=True)
class VideoLeg:
    """One participant's negotiated video."""

    leg_id: str
    conf_id: str
    ports: LegPorts
    decision: VideoDecision
    tx_key: MasterKey | None = None
    lost: bool = False  # made on a separate mixer that was lost: ports stale, made again by remake()


def chain_hooks(first: SdpHook, then: SdpHook | None) -> SdpHook:
    def hook(offer: SessionDescription, answer: SessionDescription) -> SessionDescription:
        answer = first(offer, answer)
        return then(offer, answer) if then is not None else answer

    return hook


class FocusPresentation(FeatureBase):
    """See the module docstring."""

    def __init__(
        self,
        port: FocusPort,
        registry: ConferenceRegistry,
        media: MediaControl,
        floor: FocusFloor,
        inbox: Inbox,
    ) -> None:
        self.port = port
        self.registry = registry
        self.media = media
        self.floor = floor
        self.inbox = inbox
        self.legs: dict[str, VideoLeg] = {}
        self.codecs: dict[str, str] = {}  # conference -> its video codec (the first negotiated)
        self.sources: dict[str, str | None] = {}  # conference -> the leg whose video goes out
        self._pending: set[str] = set()  # conferences whose floors changed, for the event package

    # ---- SDP ---------------------------------------------------------------------------------------------
    def sdp_hook(self, conf: Conference, leg_id: str, policy: AnswerPolicy, inner: SdpHook | None) -> SdpHook:
        """``MediaSession.sdp_hook`` for one leg: the video line, then ``inner`` (BFCP)."""
        conf_id = conf.conf_id

        def video(offer: SessionDescription, answer: SessionDescription) -> SessionDescription:
            return self.answer(conf_id, leg_id, policy, offer, answer)

        return chain_hooks(video, inner)

    def answer(
        self,
        conf_id: str,
        leg_id: str,
        policy: AnswerPolicy,
        offer: SessionDescription,
        answer: SessionDescription,
    ) -> SessionDescription:
        index = video_index(offer)
        if index is None or index >= len(answer.media) or answer.media[index].port != 0:
            self.release(leg_id)  # no video (any more) in this offer
            return answer
        try:
            decision = decide_video(offer, policy, codec=self.codecs.get(conf_id))
            assert decision is not None
            section = self._negotiate(conf_id, leg_id, decision)
        except OfferAnswerError as exc:
            log.info("event=video_refused leg=%s reason=%r", leg_id, exc.reason)
            self.release(leg_id)
            return answer
        except _MEDIA_ERRORS as exc:  # the mixer has no video, or no port: audio only
            log.warning("event=video_unavailable leg=%s error=%r", leg_id, str(exc)[:120])
            self.release(leg_id)
            return answer
        media = list(answer.media)
        media[index] = section
        self.update_source(conf_id)
        return replace(answer, media=tuple(media))

    def _negotiate(self, conf_id: str, leg_id: str, d: VideoDecision) -> MediaDescription:
        media = self.media
        vl = self.legs.get(leg_id)
        if vl is not None and vl.lost:  # made on a lost mixer: made again here (its own re-INVITE came first)
            del self.legs[leg_id]
            vl = None
        if vl is not None and vl.decision.rtcp_mux != d.rtcp_mux:
            self.release(leg_id)
            vl = None
        fresh = vl is None
        if vl is None:
            ports = media.allocate_video(conf_id, leg_id, d.rtcp_mux)
            vl = VideoLeg(leg_id, conf_id, ports, d)
        try:
            crypto = self._configure(vl, d)
        except _MEDIA_ERRORS:
            if fresh:
                media.release_video(leg_id)
                if vl.tx_key is not None:
                    vl.tx_key.wipe()
            raise
        vl.decision = d
        self.legs[leg_id] = vl
        self.codecs.setdefault(conf_id, d.codec.name)
        log.info(
            "event=video_negotiated leg=%s codec=%s pt=%d srtp=%s direction=%s",
            leg_id,
            d.codec.name,
            d.codec.payload_type,
            d.srtp is not None,
            d.local_direction.value,
        )
        rtcp = None if d.rtcp_mux else vl.ports.rtcp_port
        return video_section(d, vl.ports.rtp_port, rtcp, crypto)

    def _configure(self, vl: VideoLeg, d: VideoDecision) -> CryptoAttribute | None:
        """Configure the mixer's video leg as *d* negotiated it (our send key made when there is none or
        the suite changed); the ``a=crypto`` of our side."""
        tx_keys: SrtpKeys | None = None
        rx_keys: SrtpKeys | None = None
        crypto: CryptoAttribute | None = None
        if d.srtp is not None:
            if vl.tx_key is None or vl.tx_key.suite != d.srtp.suite:
                if vl.tx_key is not None:
                    vl.tx_key.wipe()
                vl.tx_key = new_master_key(d.srtp.suite)
            tx_keys = SrtpKeys(d.srtp.suite, vl.tx_key.key, vl.tx_key.salt)
            remote = d.srtp.remote
            rx_keys = SrtpKeys(d.srtp.suite, remote.master_key, remote.master_salt)
            crypto = CryptoAttribute.from_key(d.srtp.tag, d.srtp.suite, vl.tx_key.key_salt)
        elif vl.tx_key is not None:
            vl.tx_key.wipe()
            vl.tx_key = None
        self.media.configure_video(
            vl.leg_id,
            remote_rtp=(d.remote_rtp.host, d.remote_rtp.port),
            remote_rtcp=None if d.rtcp_mux else (d.remote_rtcp.host, d.remote_rtcp.port),
            payload_type=d.codec.payload_type,
            codec_name=d.codec.name,
            clock_rate=d.codec.clock_rate,
            direction=d.local_direction,
            pli=d.pli,
            tx_keys=tx_keys,
            rx_keys=rx_keys,
        )
        return crypto

    # ---- the separate mixer lost and back (imsconf.focus.recovery) ------------------------------------
    def mixer_lost(
        self, legs: frozenset[str] | None = None, conferences: frozenset[str] | None = None
    ) -> None:
        """The separate mixer went, with every video leg made on it (or, for a member of a mixer pool, the
        video legs of *legs* and the switches of *conferences*): their send keys are wiped (a new mixer
        never gets an old key) and their ports are stale until :meth:`remake`; the switch is sent again to
        the new mixer as the legs come back."""
        for leg_id, vl in self.legs.items():
            if legs is not None and leg_id not in legs:
                continue
            if vl.tx_key is not None:
                vl.tx_key.wipe()
                vl.tx_key = None
            vl.lost = True
        if conferences is None:
            self.sources.clear()
        else:
            for conf_id in conferences:
                self.sources.pop(conf_id, None)

    def remake(self, leg_id: str) -> tuple[LegPorts, bool, CryptoAttribute | None] | None:
        """The leg's video made again on the new mixer: the same negotiation and remote key, a new send key.
        Returns its new ports, whether RTCP is muxed and our ``a=crypto``, for the move re-INVITE; ``None``
        when the leg has no video.  Raises :class:`MediaEngineError` (nothing of it is then left on the
        mixer; the leg stays to be made again)."""
        vl = self.legs.get(leg_id)
        if vl is None or not vl.lost:
            return None
        d = vl.decision
        try:
            ports = self.media.allocate_video(vl.conf_id, leg_id, d.rtcp_mux)
        except _MEDIA_ERRORS as exc:
            raise MediaEngineError(f"video: {exc}") from None
        try:
            crypto = self._configure(vl, d)
        except _MEDIA_ERRORS as exc:
            self.media.release_video(leg_id)
            if vl.tx_key is not None:
                vl.tx_key.wipe()
                vl.tx_key = None
            raise MediaEngineError(f"video: {exc}") from None
        vl.ports = ports
        vl.lost = False
        log.info("event=video_moved leg=%s conf=%s", leg_id, vl.conf_id)
        self.update_source(vl.conf_id)
        return ports, d.rtcp_mux, crypto

    def release(self, leg_id: str) -> None:
        vl = self.legs.pop(leg_id, None)
        if vl is None:
            return
        if vl.tx_key is not None:
            vl.tx_key.wipe()
        try:
            self.media.release_video(leg_id)
        except _MEDIA_ERRORS:  # gone with its conference already
            pass
        self.update_source(vl.conf_id)

    # ---- conference and floor events ------------------------------------------------------------------
    def on_event(self, ep: SipEndpoint, conf: Conference, ev: ConferenceEvent, now: float) -> None:
        """From the focus's ``apply``: a participant left; the conference's media went."""
        if isinstance(ev, ParticipantLeft):
            self.release(f"{conf.conf_id}.{ev.participant.participant_id}")
        elif isinstance(ev, MediaReleaseRequired | ConferenceClosed):
            for leg_id in [lid for lid, vl in self.legs.items() if vl.conf_id == conf.conf_id]:
                self.release(leg_id)
            self.codecs.pop(conf.conf_id, None)
            self.sources.pop(conf.conf_id, None)
            self._pending.discard(conf.conf_id)

    def floor_changed(self, conf_id: str) -> None:
        """``FocusFloor.on_change``: switch the video now; queue the event-package update."""
        self.update_source(conf_id)
        if not self._pending:
            self.inbox.post(self._publish_floors)
        self._pending.add(conf_id)

    def update_source(self, conf_id: str) -> None:
        holders = self.floor.holders(conf_id, PRESENTATION_FLOOR)
        source = next((h for h in holders if h in self.legs and not self.legs[h].lost), None)
        if self.sources.get(conf_id, None) == source:
            return
        self.sources[conf_id] = source
        try:
            self.media.set_video_source(conf_id, source)
        except _MEDIA_ERRORS as exc:  # no video plane: nothing to switch
            log.warning("event=video_source_failed conf=%s error=%r", conf_id, str(exc)[:120])
            return
        log.info("event=video_source conf=%s leg=%s", conf_id, source)

    def floors(self, conf_id: str) -> tuple[FloorState, ...]:
        """The floors of a conference as the event package shows them (participant ids)."""
        if conf_id not in self.floor.conferences:
            return ()
        return tuple(
            FloorState(
                floor_id,
                media,
                tuple(sorted({leg.split(".", 1)[1] for leg in self.floor.holders(conf_id, floor_id)})),
            )
            for floor_id, media in sorted(FLOOR_MEDIA.items())
        )

    def _publish_floors(self, ep: SipEndpoint, now: float) -> None:
        """Record the changed floors in the conference model (a roster event for subscribers)."""
        pending, self._pending = self._pending, set()
        for conf_id in sorted(pending):
            conf = self.registry.get(conf_id)
            floors = self.floors(conf_id)
            if conf is None or not floors:
                continue
            try:
                events = conf.set_floors(floors)
            except ConferenceError as exc:  # closed meanwhile
                log.info("event=floor_state_skipped conf=%s reason=%r", conf_id, str(exc)[:80])
                continue
            if events:
                self.port.apply(ep, conf, list(events), now)
