"""The conference focus (RFC 4579, TS 24.147): the SIP application behind the factory and conference URIs.

Sans-I/O: it is driven by :class:`imsconf.sip.endpoint.SipEndpoint` callbacks with ``now``, talks to the
mixer only through :class:`imsconf.media.control.MediaControl`, and keeps its own deadlines (2xx
retransmission, session timers, dial-out ringing, subscription expiry) for the endpoint's single timer.

The core owns the leg table (:mod:`.legs`: legs, indexes, deadlines, the focus's Contact, the inbox of
deferred work), answers INVITE/ACK/BYE/CANCEL and re-INVITE/UPDATE itself, ends legs (:meth:`Focus.end`, the
one way a leg ends) and hands everything else to its feature parts, which a factory of the runtime builds
in the core's constructor (:class:`.parts.FocusParts`) and which reach it only through
:class:`.ports.FocusPort`; every part gets the same hooks (:class:`.ports.Feature`). The parts:
SUBSCRIBE/REFER (:mod:`.conference_control`, with :mod:`.refer` and the event packages in
:mod:`.subscriptions`), dial-out (:mod:`.dialout`, URI lists in
:mod:`.urilist`), booked conferences and the PIN lobby (:mod:`.planned`), BFCP floors
(:mod:`.floor_feature`), video switching (:mod:`.presentation`) and group keying (:mod:`.keying`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from imsconf.conference.errors import ConferenceError
from imsconf.conference.eventinfo import AuthMethod, EndpointDetails, JoiningMethod
from imsconf.conference.events import (
    ConferenceClosed,
    ConferenceEvent,
    DisconnectRequired,
    MediaReleaseRequired,
    ParticipantJoined,
    ParticipantLeft,
)
from imsconf.conference.model import Conference
from imsconf.conference.participant import MediaInfo, ParticipantStatus
from imsconf.conference.registry import ConferenceRegistry
from imsconf.media.control import MediaControl
from imsconf.media.events import DtmfReceived, MediaEvent
from imsconf.sdp.direction import Direction
from imsconf.sdp.precondition import answer_preconditions, offers_preconditions
from imsconf.sip.dialog import AnswerRetransmitter, Dialog, DialogReject
from imsconf.sip.endpoint import IncomingRequest, SipEndpoint
from imsconf.sip.errors import LocalProtocolError, SipParseError
from imsconf.sip.events import TransactionKey
from imsconf.sip.headers import Headers
from imsconf.sip.message import Request, Response
from imsconf.sip.peer import Peer
from imsconf.sip.reliable import wants_100rel
from imsconf.sip.timers import TimerConfig
from imsconf.sip.uri import NameAddr
from imsconf.sip.util import header_safe_text, make_response, new_tag

from .config import FocusConfig
from .early import EarlyLegs, reliable_183
from .legs import Inbox, Leg, LegTable, focus_contact
from .locks import LOCKED_REASON, LOCKED_STATUS
from .media_session import MediaSession, NegotiationError
from .messaging import allowed_methods
from .parts import PartsFactory
from .planned import DialIn
from .ports import ByeWatcher
from .refer import referred_by_uri
from .routing import dialog_destination
from .session_timer import session_interval
from .urilist import UriListError, split_invite_body

__all__ = ["DrainStart", "Focus", "Leg", "conf_direction"]

log = logging.getLogger("imsconf.focus")

# seconds a 2xx waits for its ACK while the endpoint's admission counts the server as overloaded, instead
# of 64*T1 (32 s): a caller that sent no ACK within 4 s under overload is taken as gone (the UAS may give
# up, RFC 3261 §13.3.1.4), its media leg released and a BYE sent (docs/decisions/0006)
OVERLOAD_ACK_WAIT = 4.0


@dataclass(frozen=True, slots=True)
class DrainStart:
    """What :meth:`Focus.shutdown` set out to end: calls (legs) and subscription usages."""

    calls: int
    subscriptions: int


class Focus:
    """Implements :class:`imsconf.sip.endpoint.Application`."""

    def __init__(
        self,
        config: FocusConfig,
        media: MediaControl,
        registry: ConferenceRegistry,
        parts: PartsFactory,
        *,
        wake: Callable[[], None] | None = None,
    ) -> None:
        """*parts* builds the feature parts (once, here); *wake*: the runtime's flush, called when work
        arrives without a SIP event (it makes the focus's timer due)."""
        self.config = config
        self.media = media
        self.registry = registry
        self.table = LegTable()
        self.legs = self.table.legs
        self.dialogs = self.table.dialogs
        self.details = self.table.details
        self.inbox = Inbox(wake)
        self.timers = TimerConfig()
        self.dtmf_log: list[tuple[str, str]] = []
        self._bye_watch: dict[str, ByeWatcher] = {}
        # set by shutdown(): the Retry-After of the 503 that new calls get, and the legs whose BYE is
        # still unanswered
        self._draining: int | None = None
        self._byes_pending: set[str] = set()
        # INVITEs answered by a reliable 183 whose 200 waits (RFC 3262, RFC 3312)
        self.early = EarlyLegs(self.table, self, self.timers, self._renegotiate)
        self.parts = parts(self, self.table, self.inbox)
        self.features = self.parts.features
        self.control = self.parts.control
        self.notifier = self.control.notifier
        self.dialer = self.parts.dialer
        self.planned = self.parts.planned
        self.floor = self.parts.floor
        self.presentation = self.parts.presentation
        self.keying = self.parts.keying
        self.operator = self.parts.operator
        self.chat = self.parts.chat
        media.set_event_sink(self.on_media_event)

    def floor_changed(self, conf_id: str) -> None:
        self.presentation.floor_changed(conf_id)

    def message_count(self, conf_id: str) -> int:
        return self.parts.message_count(conf_id)

    def in_chat(self, leg: Leg) -> bool:
        return self.parts.in_chat(leg)

    # ---- Application protocol ------------------------------------------------------------------------
    def on_request(self, ep: SipEndpoint, inc: IncomingRequest, now: float) -> None:
        req = inc.request
        if req.method == "MESSAGE":  # in a dialog or not: the pager-mode relay (.messaging)
            self.parts.messaging.receive(ep, inc, now)
        elif req.to.tag:
            self._in_dialog(ep, inc, now)
        elif self._draining is not None:
            self._refuse_while_draining(ep, inc, now)
        elif req.method == "INVITE":
            self._initial_invite(ep, inc, now)
        elif req.method == "SUBSCRIBE":
            self.control.subscribe(ep, inc, now, None, None)
        elif req.method == "REFER":
            self.control.refer(ep, inc, now, None, None)
        else:
            ep.respond(
                inc.key, make_response(req, 481 if req.method == "BYE" else 405, to_tag=new_tag()), now
            )

    def on_ack(self, ep: SipEndpoint, ack: Request, peer: Peer, now: float) -> None:
        leg = self.table.of_dialog(self.dialogs.match_request(ack))
        if leg is None or leg.retrans is None:
            return
        if leg.answer_2xx is not None and ack.cseq.number != leg.answer_2xx.cseq.number:
            return  # a late ACK for an earlier INVITE of this dialog does not acknowledge the newer 2xx
        leg.retrans.ack_received()
        leg.retrans = None
        conf = self.registry.get(leg.conf_id)
        if conf is not None and leg.pid in conf and not leg.closing:
            want = ParticipantStatus.ON_HOLD if leg.media.on_hold else ParticipantStatus.CONNECTED
            if conf.participant(leg.pid).status is not want:
                self.apply(ep, conf, conf.set_status(leg.pid, want), now)
        self.leg_established(ep, leg, now)

    def leg_established(self, ep: SipEndpoint, leg: Leg, now: float) -> None:
        for feature in self.features:
            feature.on_ack(ep, leg, now)

    def on_cancel(self, ep: SipEndpoint, invite_key: TransactionKey, now: float) -> None:
        leg = self.table.by_invite.get(invite_key)
        tx = ep.layer.server(invite_key)
        if tx is not None and not tx.has_final_response:
            ep.respond(invite_key, make_response(tx.request, 487, to_tag=new_tag()), now)
        if leg is not None and (leg.dialog is None or self.early.forget(leg.leg_id) is not None):
            self.end(ep, leg, "cancelled", now, send_bye=False)

    def on_stray_response(self, ep: SipEndpoint, resp: Response, peer: Peer, now: float) -> None:
        """A 2xx retransmission to a dial-out INVITE whose transaction is over: ACK it again."""
        if resp.cseq.method != "INVITE" or not 200 <= resp.status < 300:
            return
        if self.keying.stray_2xx(ep, resp):
            return
        leg = self.table.of_dialog(self.dialogs.match_response(resp))
        if leg is not None and leg.ack is not None and leg.dialog is not None:
            ep.send_stateless(leg.ack, dialog_destination(leg.dialog, leg.peer))

    def on_server_timeout(self, ep: SipEndpoint, key: TransactionKey, now: float) -> None:
        return None

    def next_deadline(self) -> float | None:
        # asked after every message and timer: a plain loop, no tuple or generator per call
        best = self.inbox.next_deadline()
        d = self.table.next_deadline()
        if d is not None and (best is None or d < best):
            best = d
        d = self.early.next_deadline()
        if d is not None and (best is None or d < best):
            best = d
        for f in self.features:
            d = f.next_deadline()
            if d is not None and (best is None or d < best):
                best = d
        return best

    def schedule(self, leg: Leg) -> None:
        """Index *leg*'s new or earlier deadline (:meth:`LegTable.schedule`)."""
        self.table.schedule(leg)

    def handle_timer(self, ep: SipEndpoint, now: float) -> None:
        self.early.handle_timer(ep, now)
        if ep.config.admission.overloaded(now):
            self.table.shorten_ack_waits(OVERLOAD_ACK_WAIT)
        for leg in self.table.due(now):  # the legs whose deadline came, not every leg
            if leg.retrans is not None and leg.invite_key is not None and leg.answer_2xx is not None:
                if leg.retrans.handle_timer(now):
                    try:
                        ep.respond(leg.invite_key, leg.answer_2xx, now)
                    except LocalProtocolError:
                        # the server transaction is gone: nothing more to resend, but the ACK deadline
                        # still holds, so a call whose ACK never comes does not keep its media leg
                        pass
                elif leg.retrans.next_deadline() is None:  # no ACK within 64*T1 (RFC 3261 §13.3.1.4)
                    early = leg.retrans.wait is not None
                    log.info("event=no_ack leg=%s wait=%s", leg.leg_id, "overload" if early else "64*T1")
                    if early:
                        ep.count("no_ack_overload")
                    leg.retrans = None
                    self.end(ep, leg, "no ACK", now, send_bye=True)
                    continue
            if leg.session_deadline is not None and now >= leg.session_deadline:
                log.info("event=session_expired leg=%s", leg.leg_id)
                leg.session_deadline = None
                self.end(ep, leg, "session expired", now, send_bye=True)
            if leg.ring_deadline is not None and now >= leg.ring_deadline and not leg.closing:
                self.dialer.timeout(ep, leg, now)
            self.schedule(leg)  # its next deadline, if any (an ended leg has none)
        self.inbox.run(ep, now)
        for feature in self.features:
            feature.handle_timer(ep, now)

    # ---- initial INVITE: create or join ----------------------------------------------------------------
    def _initial_invite(
        self, ep: SipEndpoint, inc: IncomingRequest, now: float, *, refreshed: bool = False
    ) -> None:
        req = inc.request
        try:
            ruri = req.request_uri
        except SipParseError:
            ep.respond(inc.key, make_response(req, 400, "Bad Request-URI", to_tag=new_tag()), now)
            return
        user = ruri.user_unescaped or ""
        conf: Conference | None = None
        dial_in: DialIn | None = None
        creating = user == self.config.factory_user
        if not creating:
            if user.startswith("conf-"):
                conf = self.registry.get(user[5:])
            if self.planned is not None and (conf is None or self.planned.owns(conf)):
                # booked: window, capacity, PIN lobby; may first wait for fresh bookings or the URI's claim
                def retry(e: SipEndpoint, t: float) -> None:
                    self._retry_invite(e, inc, t)

                dial_in = self.planned.dial_in(ep, inc, now, conf, retry=retry, refreshed=refreshed)
                if dial_in is None:
                    return
                conf = dial_in.conf
            if conf is None:
                ep.respond(inc.key, make_response(req, 404, "Conference Not Found", to_tag=new_tag()), now)
                return
            if self.operator.locked(conf.conf_id):  # an operator locked it: no new joins
                log.info("event=join_refused conf=%s reason=locked src=%s", conf.uri, inc.peer)
                resp = make_response(req, LOCKED_STATUS, LOCKED_REASON, to_tag=new_tag())
                ep.respond(inc.key, resp, now)
                return
        if not req.body:
            ep.respond(inc.key, make_response(req, 488, "Offer Required", to_tag=new_tag()), now)
            return
        try:
            offer, uri_list = split_invite_body(
                req.headers.get("Content-Type") or "application/sdp",
                req.body,
                max_entries=self.config.max_uri_list,
            )
        except UriListError as exc:
            log.info("event=uri_list_refused src=%s status=%d reason=%r", inc.peer, exc.status, exc.reason)
            text = header_safe_text(exc.reason)
            ep.respond(inc.key, make_response(req, exc.status, text, to_tag=new_tag()), now)
            return
        se = session_interval(req, self.config.session_expires)
        if isinstance(se, Response):
            ep.respond(inc.key, se, now)
            return
        # QoS preconditions (RFC 3312): answered in a reliable 183, so they need 100rel (RFC 3312 §11)
        required = "precondition" in req.headers.tokens("Require")
        qos = required or ("precondition" in req.headers.tokens("Supported") and offers_preconditions(offer))
        if qos and not wants_100rel(req):
            if required:
                hdrs = Headers.of([("Require", "100rel")])
                ep.respond(
                    inc.key,
                    make_response(req, 421, "Extension Required", to_tag=new_tag(), headers=hdrs),
                    now,
                )
                return
            qos = False  # only supported: the call goes on without preconditions
        # the authenticated identity (a trusted peer's P-Asserted-Identity, or the digest user's From) is
        # the participant's; without one the From stands, unauthenticated
        identity = inc.identity
        aor = identity or req.from_.uri.aor
        identity_ok = identity is not None
        privacy = "id" in [p.strip().lower() for p in ",".join(req.headers.get_all("Privacy")).split(";")]
        created = False
        try:
            if conf is None:
                conf = self.registry.create(now, owner=aor, policy=self.config.policy)
                created = True
            events = (
                []
                if dial_in is not None and dial_in.lobby_pid
                else conf.join(
                    aor,
                    now,
                    display=req.from_.display_unquoted,
                    identity_authenticated=identity_ok,
                    privacy=privacy,
                )
            )
        except ConferenceError as exc:
            ep.respond(inc.key, make_response(req, exc.status, exc.reason[:80], to_tag=new_tag()), now)
            return
        if dial_in is not None and dial_in.lobby_pid:
            pid = dial_in.lobby_pid  # a PIN lobby caller joins the roster once admitted (.planned)
        else:
            pid = next(e for e in events if isinstance(e, ParticipantJoined)).participant.participant_id
        referrer = req.headers.get("Referred-By")  # a user REFERred here by someone (RFC 3892)
        self.details[f"{conf.conf_id}.{pid}"] = EndpointDetails(
            contact=_contact_uri(req),
            joining_method=JoiningMethod.DIALED_IN,
            referred_by=referred_by_uri(referrer),
            auth_method=_auth_method(inc),
        )
        leg = Leg(
            f"{conf.conf_id}.{pid}",
            conf.conf_id,
            aor,
            inc.peer,
            MediaSession(f"{conf.conf_id}.{pid}", conf.conf_id, codecs=self.config.codecs_for(conf.policy)),
            allow=allowed_methods(req),
        )
        leg.media.sdp_hook = self.presentation.sdp_hook(
            conf,
            leg.leg_id,
            self.config.answer_policy(inc.secure),
            self.floor.sdp_hook(
                conf, leg.leg_id, aor, display=req.from_.display_unquoted, peer_host=inc.peer.host
            ),
        )
        if self.chat is not None:  # the MSRP stream last (focus/chat.py)
            hook = leg.media.sdp_hook
            leg.media.sdp_hook = self.chat.sdp_hook(
                conf, leg.leg_id, pid, peer_host=inc.peer.host, inner=hook
            )
        leg.invite_key = inc.key
        self.table.by_invite[inc.key] = leg
        try:
            answer = leg.media.negotiate(
                offer,
                self.config.answer_policy(inc.secure),
                self.media,
                host=self.config.media_host,
                initial=True,
            )
            if leg.media.chat_only and dial_in is not None and dial_in.lobby_pid:
                raise NegotiationError(488, "the PIN lobby needs an audio stream")
        except NegotiationError as exc:
            log.info("event=offer_refused src=%s status=%d reason=%r", inc.peer, exc.status, exc.reason)
            if self.chat is not None:
                self.chat.forget(leg.leg_id)
            self.table.by_invite.pop(inc.key, None)
            leave = conf.leave(pid, "offer refused") if pid in conf else []
            self.apply(ep, conf, events + leave, now)
            if created:
                self.registry.remove(conf.conf_id)
            ep.respond(inc.key, _refusal(req, exc, to_tag=new_tag()), now)
            return
        self.legs[leg.leg_id] = leg
        sips, node = ruri.scheme == "sips", self.config.node_id
        contact = focus_contact(ep, conf.uri, inc.peer.transport, sips=sips, node=node)
        reliable = wants_100rel(req)  # the answer goes in a reliable 183, the 200 after its PRACK
        resources_pending = False  # the caller's mandatory preconditions: the 200 waits for its UPDATE
        if qos:
            with_qos = answer_preconditions(offer, answer)
            answer, resources_pending = with_qos.body, not with_qos.met
        hdrs = Headers()
        hdrs.add("Contact", contact)
        hdrs.add("Allow", ", ".join(ep.config.caps.allow))
        hdrs.add("Supported", ", ".join(ep.config.caps.supported))
        if se is not None:
            leg.session_interval = se
            hdrs.add("Session-Expires", f"{se};refresher=uac")
            hdrs.add("Require", "timer")  # RFC 4028 §9: refresher=uac (se is None unless the UAC supports it)
            leg.session_deadline = now + se
        if not reliable:
            hdrs.add("Content-Type", "application/sdp")
        resp = make_response(req, 200, "OK", to_tag=new_tag(), headers=hdrs, body=b"" if reliable else answer)
        leg.answer_2xx = resp
        provisional = reliable_183(req, resp, contact, answer, precondition=qos) if reliable else None
        try:
            dialog = Dialog.from_uas(req, provisional or resp, local_contact=contact, secure=inc.secure)
        except DialogReject as exc:
            leg.media.release(self.media)
            self.legs.pop(leg.leg_id, None)
            self.table.by_invite.pop(inc.key, None)
            self.apply(ep, conf, events + (conf.leave(pid, "bad request") if pid in conf else []), now)
            ep.respond(inc.key, make_response(req, exc.status, exc.reason, to_tag=new_tag()), now)
            return
        self.table.add_dialog(leg, dialog)
        if provisional is None:
            leg.retrans = AnswerRetransmitter(now, reliable=inc.peer.reliable, config=self.timers)
            if ep.config.admission.overloaded(now):
                leg.retrans.shorten(OVERLOAD_ACK_WAIT)
        else:
            self.early.start(leg, inc.key, provisional, resp, now, resources_pending=resources_pending)
        self.schedule(leg)
        if pid in conf:
            events += conf.set_media(pid, self.media_info(leg))
        if created:
            log.info(
                "event=conference_created conf_uri=%s contact=%s owner=%s",
                conf.uri,
                contact,
                aor,
            )
        method = _auth_method(inc)
        log.info(
            "event=participant_joined conf=%s leg=%s user=%s srtp=%s transport=%s identity=%s",
            conf.uri,
            leg.leg_id,
            aor,
            leg.media.secure,
            inc.peer.transport,
            method.value if method is not None else "none",
        )
        ep.respond(inc.key, provisional or resp, now)
        self.apply(ep, conf, events, now)
        if dial_in is not None and self.planned is not None:
            self.planned.answered(ep, leg, dial_in, inc, now)
        if uri_list:
            self.dialer.invite_list(ep, conf, aor, uri_list, inc.peer.transport, now)

    def _retry_invite(self, ep: SipEndpoint, inc: IncomingRequest, now: float) -> None:
        """The dial-in again, once the bookings were re-read or the URI claimed (unless it was cancelled)."""
        tx = ep.layer.server(inc.key)
        if tx is not None and not tx.has_final_response:
            if self._draining is not None:  # the service began to stop meanwhile
                self._refuse_while_draining(ep, inc, now)
                return
            self._initial_invite(ep, inc, now, refreshed=True)

    # ---- in-dialog requests ------------------------------------------------------------------------------
    def _in_dialog(self, ep: SipEndpoint, inc: IncomingRequest, now: float) -> None:
        req = inc.request
        dialog = self.dialogs.match_request(req)
        leg = self.table.of_dialog(dialog)
        if dialog is None or (leg is None and not self.notifier.usages_in(dialog.id)):
            unsubscribe = req.method == "SUBSCRIBE" and (req.headers.get("Expires") or "").strip() == "0"
            if unsubscribe and self.notifier.recently_ended(req, now):
                # an unsubscribe that crossed our terminated NOTIFY: there is nothing left to end (a refresh
                # of the ended subscription still gets 481)
                hdrs = Headers.of([("Expires", "0")])
                ep.respond(inc.key, make_response(req, 200, "OK", headers=hdrs), now)
                return
            ep.respond(inc.key, make_response(req, 481, "Call/Transaction Does Not Exist"), now)
            return
        try:
            dialog.receive_request(req)
        except DialogReject as exc:
            ep.respond(inc.key, make_response(req, exc.status, exc.reason), now)
            return
        if req.method == "SUBSCRIBE":
            self.control.subscribe(ep, inc, now, dialog, leg)
        elif req.method == "REFER":
            self.control.refer(ep, inc, now, dialog, leg)
        elif leg is None:  # a dialog of subscriptions only (RFC 6665 §4.5.2)
            status = 481 if req.method in ("BYE", "INVITE", "UPDATE") else 405
            ep.respond(inc.key, make_response(req, status), now)
        elif req.method == "BYE":
            ep.respond(inc.key, make_response(req, 200, "OK"), now)
            self.end(ep, leg, "left", now, send_bye=False)
        elif req.method == "PRACK":
            self.early.prack(ep, inc, leg, now)
        elif req.method == "UPDATE" and leg.leg_id in self.early:
            self.early.update(ep, inc, leg, now)
        elif req.method == "INVITE" and leg.leg_id in self.early:
            ep.respond(inc.key, make_response(req, 491, "Request Pending"), now)  # no re-INVITE while early
        elif req.method in ("INVITE", "UPDATE"):
            self._refresh(ep, inc, leg, now)
        elif req.method == "INFO":
            ep.respond(inc.key, make_response(req, 200, "OK"), now)
        else:
            ep.respond(inc.key, make_response(req, 405, "Method Not Allowed"), now)

    def _renegotiate(self, ep: SipEndpoint, inc: IncomingRequest, leg: Leg, now: float) -> bytes | None:
        """The answer to a new offer of an existing leg (re-INVITE, UPDATE); None after refusing it."""
        req = inc.request
        policy = self.config.answer_policy(inc.secure)
        try:
            body = leg.media.negotiate(
                req.body, policy, self.media, host=self.config.media_host, initial=False
            )
        except NegotiationError as exc:
            ep.respond(inc.key, _refusal(req, exc), now)
            return None
        if self.planned is not None:
            self.planned.after_media_update(leg)  # a lobby leg stays out of the mix
        self.operator.after_media_update(leg)  # muted / deaf stay so
        self.keying.after_media_update(ep, leg, now)  # a wideband codec now: no group downlink
        return body

    def _refresh(self, ep: SipEndpoint, inc: IncomingRequest, leg: Leg, now: float) -> None:
        """re-INVITE or UPDATE: hold/resume, codec change, new key, session refresh."""
        req = inc.request
        ours = bool(req.body) and self.keying.busy(leg.leg_id)  # our key re-INVITE is in flight
        if (req.method == "INVITE" and leg.retrans is not None) or ours:
            ep.respond(inc.key, make_response(req, 491, "Request Pending"), now)
            return
        se: int | None = None
        if leg.session_interval is not None:
            timer = session_interval(
                req, self.config.session_expires
            )  # before the offer: a 422 must leave the session unchanged
            if isinstance(timer, Response):
                ep.respond(inc.key, timer, now)
                return
            se = timer
        # an offerless re-INVITE gets our last SDP as the offer; a 2xx to an offerless UPDATE has no body
        # (RFC 3311 §5.2)
        body = leg.media.answer if req.method == "INVITE" else b""
        if req.body:
            answer = self._renegotiate(ep, inc, leg, now)
            if answer is None:
                return
            body = answer
            if offers_preconditions(req.body):  # status lines are answered in every later offer too
                body = answer_preconditions(req.body, body).body
        hdrs = Headers()
        assert leg.dialog is not None
        if leg.dialog.local_contact:
            hdrs.add("Contact", leg.dialog.local_contact)
        if leg.session_interval is not None:
            leg.session_interval = se or leg.session_interval
            hdrs.add("Session-Expires", f"{leg.session_interval};refresher=uac")
            if "timer" in req.headers.tokens("Supported"):
                hdrs.add("Require", "timer")  # RFC 4028 §9: MUST with refresher=uac
            leg.session_deadline = now + leg.session_interval
        if body:
            hdrs.add("Content-Type", "application/sdp")
        resp = make_response(req, 200, "OK", headers=hdrs, body=body)
        if req.method == "INVITE":
            self.table.set_invite(leg, inc.key)
            leg.answer_2xx = resp
            leg.retrans = AnswerRetransmitter(now, reliable=inc.peer.reliable, config=self.timers)
        self.schedule(leg)
        ep.respond(inc.key, resp, now)
        conf = self.registry.get(leg.conf_id)
        if conf is not None and leg.leg_id.split(".", 1)[1] in conf:
            pid = leg.leg_id.split(".", 1)[1]
            events: list[ConferenceEvent] = []
            want = ParticipantStatus.ON_HOLD if leg.media.on_hold else ParticipantStatus.CONNECTED
            if conf.participant(pid).status is not want:
                events += conf.set_status(pid, want)
            info = self.media_info(leg)
            if conf.participant(pid).media != info:
                events += conf.set_media(pid, info)
            self.apply(ep, conf, events, now)

    # ---- leaving -----------------------------------------------------------------------------------------
    def end(self, ep: SipEndpoint, leg: Leg, reason: str, now: float, *, send_bye: bool) -> None:
        """The one way a leg ends: BYE (or CANCEL while a dial-out rings) when *send_bye*, the participant
        leaves the roster with *reason*, and the leg is released."""
        if leg.closing:
            return
        leg.closing = True
        if send_bye:
            self.send_bye(ep, leg, now)
        conf = self.registry.get(leg.conf_id)
        if conf is not None and leg.pid in conf:
            self.apply(ep, conf, conf.leave(leg.pid, reason), now)
        self._release(leg, now)

    def _release(self, leg: Leg, now: float) -> None:
        self.early.forget(leg.leg_id)
        for feature in self.features:
            feature.forget(leg, now)
        leg.media.release(self.media)
        dialog = leg.dialog
        self.table.remove(leg)
        if dialog is not None:
            self.notifier.dialog_gone(dialog.id)
        watcher = self._bye_watch.pop(leg.leg_id, None)
        if watcher is not None:  # a removal nobody could BYE (no dialog): it is done all the same
            watcher(200, "OK", now)

    def send_bye(self, ep: SipEndpoint, leg: Leg, now: float) -> None:
        """End the leg's session: BYE in its dialog, or CANCEL while a dial-out still rings."""
        watcher = self._bye_watch.pop(leg.leg_id, None)
        if leg.dialog is None and leg.dialed_out and leg.invite_request is not None:
            self.dialer.cancel(ep, leg, now)
            if watcher is not None:
                watcher(200, "OK", now)
            return
        early = leg.leg_id in self.early
        if early:  # an early dialog: the INVITE is refused instead (no BYE in one)
            self.early.refuse(ep, leg.leg_id, 480, "Temporarily Unavailable", now)
        if early or leg.dialog is None or leg.dialog.terminated:
            if watcher is not None:
                watcher(200, "OK", now)
            return
        bye = leg.dialog.create_request("BYE")
        dest = dialog_destination(leg.dialog, leg.peer)
        log.info("event=bye_sent leg=%s dst=%s", leg.leg_id, dest)

        def done(resp: Response, t: float) -> None:
            if watcher is not None and resp.status >= 200:
                watcher(resp.status, resp.reason, t)

        ep.send_request(bye, dest, now, on_response=done)

    def watch_bye(self, leg_id: str, callback: ByeWatcher) -> None:
        """Call ``callback(status, reason, now)`` with the final answer to the BYE the leg gets next."""
        self._bye_watch[leg_id] = callback

    def media_info(self, leg: Leg) -> MediaInfo:
        return MediaInfo(
            srtp=leg.media.secure,
            direction=self.operator.mix_direction(leg.leg_id, conf_direction(leg.media)),
            codec=leg.media.decision.codec.name if leg.media.decision else None,
            message=self.chat is not None and self.chat.negotiated(leg.leg_id),
            audio=not leg.media.chat_only,
        )

    # ---- conference events -----------------------------------------------------------------------------
    def apply(self, ep: SipEndpoint, conf: Conference, events: list[ConferenceEvent], now: float) -> None:
        queue = list(events)
        while queue:
            ev = queue.pop(0)
            for feature in self.features:
                feature.on_event(ep, conf, ev, now)
            if isinstance(ev, DisconnectRequired):
                leg = self.legs.get(f"{ev.conf_id}.{ev.participant_id}")
                if leg is not None and not leg.closing:  # BYE and release now, leave with this batch
                    leg.closing = True
                    self.send_bye(ep, leg, now)
                    self._release(leg, now)
                if ev.participant_id in conf:
                    queue.extend(conf.leave(ev.participant_id, ev.reason))
            elif isinstance(ev, ParticipantLeft):
                log.info(
                    "event=participant_left conf=%s pid=%s reason=%s",
                    conf.uri,
                    ev.participant.participant_id,
                    ev.reason,
                )
                # the notifier has rendered this leave (bodies are built at once); later documents show
                # only current participants, so the leaver's endpoint details can go
                self.table.forget_details(conf.conf_id, ev.participant.participant_id)
            elif isinstance(ev, MediaReleaseRequired):
                self.media.release_conference(conf.conf_id)
                log.info("event=media_released conf=%s", conf.uri)
            elif isinstance(ev, ConferenceClosed):
                self.registry.apply([ev])
                self.table.forget_details(conf.conf_id)
                log.info("event=conference_closed conf=%s", conf.uri)

    # ---- shutdown -----------------------------------------------------------------------------------------
    def shutdown(self, ep: SipEndpoint, now: float, *, retry_after: int = 30) -> DrainStart:
        """The service stops: from now on new calls and subscriptions get 503 with *retry_after*; every
        subscription ends with a ``terminated`` NOTIFY (:meth:`Notifier.shutdown`), then every conference
        closes, so each participant gets a BYE (a ringing dial-out a CANCEL) and leaves the roster with
        reason ``shutdown``. :attr:`drained` tells when the BYEs and the final NOTIFYs are answered."""
        first = self._draining is None
        self._draining = retry_after
        if not first:
            return DrainStart(len(self.legs), len(self.notifier.usages))
        calls = len(self.legs)
        for leg_id in list(self.legs):
            self._await_bye(leg_id)
        subscriptions = self.notifier.shutdown(ep, now)
        for conf in list(self.registry):
            self.apply(ep, conf, conf.close("shutdown"), now)
        for leg in list(self.legs.values()):  # legs outside any roster (a PIN lobby, a conference gone)
            self.end(ep, leg, "shutdown", now, send_bye=True)
        return DrainStart(calls, subscriptions)

    @property
    def draining(self) -> bool:
        return self._draining is not None

    @property
    def drained(self) -> bool:
        """After :meth:`shutdown`: every BYE has its final answer and every subscription has ended."""
        return self._draining is not None and not self._byes_pending and not self.notifier.usages

    def _await_bye(self, leg_id: str) -> None:
        """Count the leg's BYE as outstanding until its final answer (a watcher already set still runs)."""
        prior = self._bye_watch.get(leg_id)
        self._byes_pending.add(leg_id)

        def answered(status: int, reason: str, t: float) -> None:
            self._byes_pending.discard(leg_id)
            if prior is not None:
                prior(status, reason, t)

        self._bye_watch[leg_id] = answered

    def _refuse_while_draining(self, ep: SipEndpoint, inc: IncomingRequest, now: float) -> None:
        """RFC 3261 §21.5.4: 503 with Retry-After for what would start a call or a subscription."""
        req = inc.request
        resp = make_response(req, 503, "Service Unavailable (shutting down)", to_tag=new_tag())
        resp.headers.add("Retry-After", str(self._draining))
        log.info("event=refused_draining method=%s src=%s", req.method, inc.peer)
        ep.respond(inc.key, resp, now)

    # ---- media events -------------------------------------------------------------------------------------
    def on_media_event(self, ev: MediaEvent) -> None:
        for feature in self.features:
            feature.on_media_event(ev)
        if isinstance(ev, DtmfReceived):
            self.dtmf_log.append((ev.leg_id, ev.event.digit))
            log.info("event=dtmf leg=%s digit=%s", ev.leg_id, ev.event.digit)


def _warning_text(reason: str) -> str:
    return header_safe_text(reason, 120, replacement="", quoted=True)


def _refusal(req: Request, exc: NegotiationError, *, to_tag: str | None = None) -> Response:
    """The answer to an offer we cannot take: 400 for a broken SDP, else 488; the reason phrase names why
    (printable ASCII only: the text may come from the peer's SDP) and a Warning repeats it."""
    text = header_safe_text(exc.reason)
    base = {400: "Bad Request", 503: "Service Unavailable"}.get(exc.status, "Not Acceptable Here")
    resp = make_response(req, exc.status, f"{base} ({text})", to_tag=to_tag)
    if exc.status == 503:
        resp.headers.add("Retry-After", "5")  # out of media resources for now (RFC 3261 §21.5.4)
    code = 399 if exc.status == 400 else 304  # RFC 3261 §20.43: 399 miscellaneous, 304 media not available
    resp.headers.add("Warning", f'{code} imsconf "{_warning_text(exc.reason)}"')
    return resp


def _auth_method(inc: IncomingRequest) -> AuthMethod | None:
    """How the participant's identity was authenticated, for the event package."""
    if inc.asserted_identity is not None:
        return AuthMethod.ASSERTED
    return AuthMethod.DIGEST if inc.identity is not None else None


def _contact_uri(req: Request) -> str | None:
    value = req.headers.get("Contact")
    if not value or value.strip() == "*":
        return None
    try:
        return str(NameAddr.parse(value).uri)
    except SipParseError:
        return None


def conf_direction(ms: MediaSession) -> Direction:
    if ms.decision is None:
        return Direction.SENDRECV
    return ms.decision.remote_direction
