"""The focus as UAC: it INVITEs users into a conference (URI lists, RFC 5366; REFER, RFC 4579 §5.5).

The user enters the roster at once as ``joining`` with ``joining-method`` dialed-out (shown as
``dialing-out`` in the event package), so that subscribers see the attempt; the INVITE carries our offer
(mixer ports allocated, SDES key from the key authority when the signalling allows SDES) and, for a REFER,
the ``Referred-By`` of the referrer.  On a 2xx the answer configures the mixer leg and the ACK goes out; a
failure (final non-2xx, a bad answer, no answer within ``dial_timeout``) removes the user again with a
disconnection reason that the event package reports (``busy`` or ``failed``).  A target registered at this
server's registrar (the *locator*) is called at its best binding (:func:`.routing.dial_route`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

from imsconf.conference.errors import ConferenceError, PolicyError
from imsconf.conference.eventinfo import EndpointDetails, JoiningMethod
from imsconf.conference.events import ConferenceEvent, ParticipantJoined
from imsconf.conference.model import Conference, ConferencePolicy
from imsconf.conference.participant import ParticipantStatus
from imsconf.conference.registry import ConferenceRegistry
from imsconf.media.control import MediaControl
from imsconf.media.events import MediaEngineError
from imsconf.sip.dialog import Dialog, DialogReject
from imsconf.sip.endpoint import SipEndpoint
from imsconf.sip.errors import LocalProtocolError, SipParseError
from imsconf.sip.headers import Headers
from imsconf.sip.message import Request, Response
from imsconf.sip.uri import SipUri
from imsconf.sip.util import make_cancel, new_call_id, new_tag

from .legs import Leg, LegTable, focus_contact
from .locks import LOCKED_REASON, LOCKED_STATUS, ConferenceLocks
from .media_session import MediaSession, NegotiationError
from .messaging import allowed_methods
from .ports import FeatureBase, FocusPort
from .routing import DialRoute, Locator, dial_route, dialog_destination, out_of_dialog_route
from .threeparty import add_replaces
from .urilist import UriListEntry


class DialOutConfig(Protocol):
    allow_plain_rtp: bool
    allow_sdes_over_insecure: bool
    media_host: str
    dial_timeout: float
    outbound_proxy: str | None
    audio_codecs: tuple[str, ...]
    node_id: str  # in a cluster: the focus's Contact of a booked conference names the node

    def codecs_for(self, policy: ConferencePolicy) -> tuple[str, ...]: ...


log = logging.getLogger("imsconf.focus")

# progress(status, reason, now): 1xx while ringing, then exactly one final status
Progress = Callable[[int, str, float], None]


class Dialer(FeatureBase):
    """Dial-out legs of the focus (in its leg table)."""

    def __init__(
        self,
        table: LegTable,
        port: FocusPort,
        config: DialOutConfig,
        registry: ConferenceRegistry,
        media: MediaControl,
        locator: Locator | None = None,
        locks: ConferenceLocks | None = None,
    ) -> None:
        self.table = table
        self.locks = locks
        self.port = port
        self.config = config
        self.registry = registry
        self.media = media
        self._progress: dict[str, Progress] = {}
        self.locator = locator
        self._routes: dict[str, DialRoute] = {}  # legs going to a registered binding, until their INVITE

    def prepare(
        self,
        ep: SipEndpoint,
        conf: Conference,
        target: SipUri,
        now: float,
        *,
        transport: str,
        display: str | None = None,
        referred_by: str | None = None,
        referred_by_uri: str | None = None,
        replaces: str | None = None,
        operator: bool = False,
    ) -> tuple[Leg, list[ConferenceEvent]]:
        """Put the user in the roster (``joining``) and make its leg; nothing is sent yet.

        Raises ``PolicyError`` (403/480/486/503 from the model; 403 while an operator has locked the
        conference, unless the *operator* dials; 488 when the offer could only be plain RTP and the policy
        requires SRTP).
        """
        if not operator and self.locks is not None and self.locks.locked(conf.conf_id):
            raise PolicyError(LOCKED_REASON, LOCKED_STATUS)
        cfg = self.config
        if cfg.outbound_proxy is not None:  # IMS: every out-of-dialog request goes through the S-CSCF
            via = out_of_dialog_route(target, transport, cfg.outbound_proxy)
            route = DialRoute(str(target), (via.route,) if via.route else (), via.destination)
        else:
            route = dial_route(target, transport, self.locator, now)
        dest = route.dest
        srtp = dest.transport == "tls" or cfg.allow_sdes_over_insecure
        if not srtp and not cfg.allow_plain_rtp:
            raise PolicyError("SRTP keys cannot be offered over unprotected signalling", 488)
        events = conf.join(target.aor, now, display=display)
        joined = next(e for e in events if isinstance(e, ParticipantJoined))
        pid = joined.participant.participant_id
        leg_id = f"{conf.conf_id}.{pid}"
        media = MediaSession(leg_id, conf.conf_id, codecs=self.config.codecs_for(conf.policy))
        leg = Leg(leg_id, conf.conf_id, target.aor, dest, media)
        leg.dialed_out = True
        leg.dial_target = target
        leg.referred_by = referred_by
        leg.replaces = replaces
        self.table.details[leg_id] = EndpointDetails(
            contact=str(target),
            joining_method=JoiningMethod.DIALED_OUT,
            referred_by=referred_by_uri,
        )
        self.table.add(leg)
        if route.routes or route.request_uri != str(target):
            self._routes[leg_id] = route
        return leg, events

    def invite_list(
        self,
        ep: SipEndpoint,
        conf: Conference,
        by: str,
        entries: tuple[UriListEntry, ...],
        transport: str,
        now: float,
    ) -> None:
        """RFC 5366: the INVITE carried a URI list; invite each listed user (not the requester itself)."""
        try:
            conf.authorize_invite(by)
        except ConferenceError as exc:
            log.info("event=uri_list_ignored conf=%s by=%s reason=%r", conf.uri, by, exc.reason)
            return
        for entry in entries:
            target = SipUri.parse(entry.uri)
            if target.aor == by:
                continue
            try:
                leg, events = self.prepare(ep, conf, target, now, transport=transport, display=entry.display)
            except ConferenceError as exc:
                log.info("event=dial_out_refused conf=%s target=%s status=%d", conf.uri, target, exc.status)
                continue
            self.port.apply(ep, conf, events, now)
            self.start(ep, leg, now)

    def forget(self, leg: Leg, now: float) -> None:
        self._routes.pop(leg.leg_id, None)

    def start(self, ep: SipEndpoint, leg: Leg, now: float, progress: Progress | None = None) -> None:
        """Send the INVITE of a prepared leg."""
        conf = self.registry.get(leg.conf_id)
        assert leg.dial_target is not None
        route = self._routes.pop(leg.leg_id, None)
        if conf is None or leg.closing:
            return
        if progress is not None:
            self._progress[leg.leg_id] = progress
        sips = leg.dial_target.scheme == "sips"
        contact = focus_contact(ep, conf.uri, leg.peer.transport, sips=sips, node=self.config.node_id)
        leg.local_contact = contact
        host = ep.local_address(leg.peer.transport)[0]
        try:
            body = leg.media.offer(
                self.media,
                host=self.config.media_host,
                srtp=leg.peer.transport == "tls" or self.config.allow_sdes_over_insecure,
                codecs=self.config.audio_codecs,
            )
        except (MediaEngineError, OSError, ValueError) as exc:  # no media port: report and drop
            log.warning("event=dial_out_failed leg=%s reason=%r", leg.leg_id, str(exc))
            self._fail(ep, leg, 503, "Service Unavailable", now)
            return
        h = Headers()
        h.add("Max-Forwards", "70")
        # the outbound proxy (IMS: the S-CSCF) as a loose route, or a registered binding's Path
        for hop in route.routes if route is not None else ():
            h.add("Route", hop)
        h.add("From", f"<{conf.uri}>;tag={new_tag()}")
        h.add("To", f"<{leg.dial_target}>")
        h.add("Call-ID", new_call_id(host))
        h.add("CSeq", "1 INVITE")
        h.add("Contact", contact)
        h.add("Allow", ", ".join(ep.config.caps.allow))
        if ep.config.caps.supported:
            h.add("Supported", ", ".join(ep.config.caps.supported))
        if leg.referred_by is not None:
            h.add("Referred-By", leg.referred_by)
        if leg.replaces is not None:
            add_replaces(h, leg.replaces)  # 3PTY: the invitee drops its dialog with the referrer
        h.add("Content-Type", "application/sdp")
        ruri = route.request_uri if route is not None else str(leg.dial_target)
        invite = Request("INVITE", ruri, h, body)
        leg.invite_request = invite
        leg.ring_deadline = now + self.config.dial_timeout
        self.table.schedule(leg)
        log.info(
            "event=dial_out conf=%s leg=%s target=%s dst=%s", conf.uri, leg.leg_id, leg.dial_target, leg.peer
        )
        ep.send_request(invite, leg.peer, now, on_response=lambda r, t: self._on_response(ep, leg, r, t))

    # ------------------------------------------------------------------ responses

    def _on_response(self, ep: SipEndpoint, leg: Leg, resp: Response, now: float) -> None:
        if resp.status < 200:
            if resp.status in (180, 183) and not leg.closing:
                self._report(leg, resp.status, resp.reason, now, final=False)
            return
        if 200 <= resp.status < 300:
            if leg.dialog is not None and leg.ack is not None:  # a retransmitted 2xx: ACK again
                ep.send_stateless(leg.ack, dialog_destination(leg.dialog, leg.peer))
                return
            self._answered(ep, leg, resp, now)
            return
        if leg.closing or leg.leg_id not in self.table.legs:
            return
        reason = "busy" if resp.status in (486, 600) else "failed"
        log.info("event=dial_out_refused leg=%s status=%d", leg.leg_id, resp.status)
        self._fail(ep, leg, resp.status, resp.reason, now, reason=f"{reason} ({resp.status} {resp.reason})")

    def _answered(self, ep: SipEndpoint, leg: Leg, resp: Response, now: float) -> None:
        assert leg.invite_request is not None
        leg.ring_deadline = None
        try:
            dialog = Dialog.from_uac(leg.invite_request, resp, local_contact=leg.local_contact)
        except (SipParseError, LocalProtocolError, DialogReject) as exc:
            log.info("event=dial_out_bad_answer leg=%s reason=%r", leg.leg_id, str(exc))
            self._fail(ep, leg, 502, "Bad Gateway", now)
            return
        leg.dialog = dialog
        leg.allow = allowed_methods(resp)
        leg.ack = dialog.create_ack(leg.invite_request.cseq.number)
        ep.send_stateless(leg.ack, dialog_destination(dialog, leg.peer))
        if leg.closing or leg.leg_id not in self.table.legs:  # given up meanwhile: end the late call
            self.port.send_bye(ep, leg, now)
            dialog.terminate()
            return
        self.table.add_dialog(leg, dialog)
        try:
            leg.media.accept_answer(resp.body, self.media)
        except NegotiationError as exc:
            log.info("event=dial_out_bad_answer leg=%s reason=%r", leg.leg_id, exc.reason)
            self.port.send_bye(ep, leg, now)
            self._fail(ep, leg, 488, "Not Acceptable Here", now, reason=f"failed (media: {exc.reason[:60]})")
            return
        conf = self.registry.get(leg.conf_id)
        if conf is None or leg.pid not in conf:
            self.port.end(ep, leg, "gone", now, send_bye=True)
            return
        want = ParticipantStatus.ON_HOLD if leg.media.on_hold else ParticipantStatus.CONNECTED
        events = conf.set_status(leg.pid, want)
        events += conf.set_media(leg.pid, self.port.media_info(leg))
        log.info(
            "event=participant_joined conf=%s leg=%s user=%s srtp=%s transport=%s dialed_out=true",
            conf.uri,
            leg.leg_id,
            leg.user,
            leg.media.secure,
            leg.peer.transport,
        )
        self._report(leg, resp.status, resp.reason, now, final=True)
        self.port.apply(ep, conf, events, now)
        self.port.leg_established(ep, leg, now)

    # ------------------------------------------------------------------ giving up

    def cancel(self, ep: SipEndpoint, leg: Leg, now: float) -> None:
        """Stop a dial-out that has no answer yet (CANCEL); the roster is the caller's business."""
        leg.ring_deadline = None
        if leg.invite_request is not None and leg.dialog is None:
            self._send_cancel(ep, leg, now)
        self._report(leg, 487, "Request Terminated", now, final=True)

    def timeout(self, ep: SipEndpoint, leg: Leg, now: float) -> None:
        log.info("event=dial_out_timeout leg=%s", leg.leg_id)
        if leg.invite_request is not None and leg.dialog is None:
            self._send_cancel(ep, leg, now)
        self._fail(ep, leg, 408, "Request Timeout", now, reason="failed (no answer)")

    @staticmethod
    def _send_cancel(ep: SipEndpoint, leg: Leg, now: float) -> None:
        # its own non-INVITE transaction (retransmitted over UDP), with the INVITE's Via (RFC 3261 §9.1)
        assert leg.invite_request is not None
        ep.send_request(make_cancel(leg.invite_request), leg.peer, now, keep_via=True)

    def _fail(
        self, ep: SipEndpoint, leg: Leg, status: int, text: str, now: float, *, reason: str | None = None
    ) -> None:
        leg.ring_deadline = None
        self._report(leg, status, text, now, final=True)
        self.port.end(ep, leg, reason or f"failed ({status} {text})", now, send_bye=False)

    def _report(self, leg: Leg, status: int, reason: str, now: float, *, final: bool) -> None:
        cb = self._progress.pop(leg.leg_id, None) if final else self._progress.get(leg.leg_id)
        if cb is not None:
            cb(status, reason, now)
