"""SUBSCRIBE (RFC 4575 / RFC 6665) and REFER (RFC 4579 §5.5, RFC 3515) at the focus.

Both arrive out of dialog (to the conference URI: a new dialog is made) or inside an existing dialog
(a participant's INVITE dialog, or a subscription dialog).  Who asks is the participant of the INVITE
dialog, else the From AoR — which must be the digest-authenticated user when the server authenticates.

* SUBSCRIBE ``Event: conference``: allowed per the conference's ``subscribers`` policy (participants and
  the owner by default; 403 otherwise), and only over TLS unless the configuration relaxes it.  200 with
  the granted Expires, then a full-state NOTIFY; a refresh gets a full-state NOTIFY again (resync);
  ``Expires: 0`` ends it with a final NOTIFY.
* REFER ``Refer-To: <user>``: the requester must be allowed to invite (policy ``invite_roles``); the user
  enters the roster as dialing-out and the focus INVITEs it; 202, then NOTIFY ``Event: refer`` with
  ``message/sipfrag`` bodies (``100 Trying``, ringing, the final status).  A full conference answers the
  REFER itself (486/503).
* REFER ``Refer-To: <user;method=BYE>``: owner/moderators only (403); 404 for a user not in the
  conference; 202, then the sipfrag of the focus's BYE.
"""

from __future__ import annotations

import logging
from typing import Protocol

from imsconf.conference.errors import ConferenceError
from imsconf.conference.eventinfo import CONTENT_TYPE
from imsconf.conference.events import ConferenceEvent
from imsconf.conference.model import Conference
from imsconf.conference.registry import ConferenceRegistry
from imsconf.sip.dialog import Dialog, DialogReject
from imsconf.sip.endpoint import IncomingRequest, SipEndpoint
from imsconf.sip.errors import SipParseError
from imsconf.sip.headers import Headers
from imsconf.sip.subscription import EventHeader, ExpiresPolicy, Subscription, SubscriptionError
from imsconf.sip.util import header_safe_text, make_response, new_tag

from .dialout import Dialer
from .legs import Leg, LegTable, focus_contact
from .ports import ByeWatcher, FeatureBase, FocusPort
from .refer import ReferAction, ReferError, parse_refer, referred_by, referred_by_uri
from .subscriptions import SIPFRAG, Notifier, Usage, parse_subscribe, viewer_for

log = logging.getLogger("imsconf.focus")


class ControlConfig(Protocol):
    @property
    def domain(self) -> str: ...

    @property
    def insecure_subscriptions_allowed(self) -> bool: ...

    @property
    def subscription_expires(self) -> ExpiresPolicy: ...

    @property
    def node_id(self) -> str: ...


class ControlPort(FocusPort, Protocol):
    def watch_bye(self, leg_id: str, callback: ByeWatcher) -> None: ...


class ConferenceControl(FeatureBase):
    """The SUBSCRIBE and REFER handlers of the focus."""

    def __init__(
        self,
        table: LegTable,
        port: ControlPort,
        config: ControlConfig,
        registry: ConferenceRegistry,
        notifier: Notifier,
        dialer: Dialer,
    ) -> None:
        self.table = table
        self.port = port
        self.config = config
        self.registry = registry
        self.notifier = notifier
        self.dialer = dialer

    # ------------------------------------------------------------------ feature hooks: the event packages

    def on_event(self, ep: SipEndpoint, conf: Conference, ev: ConferenceEvent, now: float) -> None:
        self.notifier.on_event(ep, conf, ev, now)

    def next_deadline(self) -> float | None:
        return self.notifier.next_deadline()

    def handle_timer(self, ep: SipEndpoint, now: float) -> None:
        self.notifier.handle_timer(ep, now)

    # ------------------------------------------------------------------ helpers

    def _reply(
        self,
        ep: SipEndpoint,
        inc: IncomingRequest,
        status: int,
        reason: str | None,
        now: float,
        headers: Headers | None = None,
    ) -> None:
        req = inc.request
        tag = None if req.to.tag else new_tag()
        reason = header_safe_text(reason) if reason else None
        ep.respond(inc.key, make_response(req, status, reason, to_tag=tag, headers=headers), now)

    def conference(self, inc: IncomingRequest) -> Conference | None:
        """The conference a request to the focus addresses (SUBSCRIBE, REFER, MESSAGE): ``conf-<id>`` as
        the Request-URI's user, or a conference URI; None for a broken Request-URI or no such conference."""
        try:
            ruri = inc.request.request_uri
        except SipParseError:
            return None
        user = ruri.user_unescaped or ""
        if user.startswith("conf-"):
            return self.registry.get(user[5:])
        # a booked conference keeps its chosen URI (sip:weekly@DOMAIN), reached at our address too
        registry = self.registry
        return registry.by_uri(str(ruri)) or (
            registry.by_uri(f"sip:{ruri.user}@{self.config.domain}") if ruri.user else None
        )

    @staticmethod
    def requester(ep: SipEndpoint, inc: IncomingRequest) -> str | None:
        """The AoR asking, out of dialog: its authenticated identity (a trusted peer's assertion, or the From
        when it is the digest user); the From itself only when the focus authenticates nobody."""
        identity = inc.identity
        if ep.auth is not None and identity is None:
            return None
        return identity or inc.request.from_.uri.aor

    def _contact(self, ep: SipEndpoint, inc: IncomingRequest, conf: Conference) -> str:
        sips = inc.request.uri[:5].lower() == "sips:"  # the request URI parsed before it got here
        return focus_contact(ep, conf.uri, inc.peer.transport, sips=sips, node=self.config.node_id)

    def _who(
        self, ep: SipEndpoint, inc: IncomingRequest, now: float, dialog: Dialog | None, leg: Leg | None
    ) -> tuple[Conference, str] | None:
        """The conference and the requesting user, or None after answering (404/403/481)."""
        if dialog is not None:
            if leg is not None:
                conf, user = self.registry.get(leg.conf_id), leg.user
            else:
                usages = self.notifier.usages_in(dialog.id)
                conf = self.registry.get(usages[0].conf_id) if usages else None
                user = usages[0].user if usages else ""
            if conf is None:
                self._reply(ep, inc, 481, "Conference Gone", now)
                return None
            return conf, user
        conf = self.conference(inc)
        if conf is None:
            self._reply(ep, inc, 404, "Conference Not Found", now)
            return None
        who = self.requester(ep, inc)
        if who is None:
            self._reply(ep, inc, 403, "Identity Not Authenticated", now)
            return None
        return conf, who

    # ------------------------------------------------------------------ SUBSCRIBE

    def subscribe(
        self, ep: SipEndpoint, inc: IncomingRequest, now: float, dialog: Dialog | None, leg: Leg | None
    ) -> None:
        req = inc.request
        try:
            event, expires = parse_subscribe(req)
        except SubscriptionError as exc:
            self._reply(ep, inc, exc.status, exc.reason, now, Headers.of(exc.headers))
            return
        if dialog is not None:
            usage = self.notifier.find(dialog.id, event)
            if usage is not None:
                self._refresh(ep, inc, usage, expires, now)
                return
        found = self._who(ep, inc, now, dialog, leg)
        if found is None:
            return
        conf, user = found
        try:
            conf.authorize_subscribe(user)
        except ConferenceError as exc:
            log.info("event=subscribe_refused conf=%s user=%s status=%d", conf.uri, user, exc.status)
            self._reply(ep, inc, exc.status, exc.reason, now)
            return
        if not inc.secure and not self.config.insecure_subscriptions_allowed:
            log.info("event=subscribe_refused conf=%s user=%s reason=not_tls", conf.uri, user)
            self._reply(ep, inc, 403, "Subscriptions Require TLS", now)
            return
        try:
            sub = Subscription(event, expires, now, self.config.subscription_expires)
        except SubscriptionError as exc:
            self._reply(ep, inc, exc.status, exc.reason, now, Headers.of(exc.headers))
            return
        h = Headers()
        h.add("Expires", str(sub.granted_expires))
        if dialog is None:
            h.add("Contact", self._contact(ep, inc, conf))
        resp = make_response(req, 200, "OK", to_tag=None if dialog is not None else new_tag(), headers=h)
        if dialog is None:
            try:
                dialog = Dialog.from_uas(req, resp, secure=inc.secure)
            except (DialogReject, SipParseError) as exc:
                self._reply(ep, inc, 400, str(exc), now)
                return
        peer = leg.peer if leg is not None else inc.peer
        usage = Usage(
            conf.conf_id,
            user,
            event,
            CONTENT_TYPE,
            dialog,
            peer,
            sub,
            shared=leg is not None,
            viewer=viewer_for(conf, user),
        )
        self.notifier.add(usage)
        log.info(
            "event=subscribed conf=%s user=%s expires=%d transport=%s",
            conf.uri,
            user,
            sub.granted_expires,
            inc.peer.transport,
        )
        ep.respond(inc.key, resp, now)
        self.notifier.start_conference(ep, usage, conf, now)

    def _refresh(
        self, ep: SipEndpoint, inc: IncomingRequest, usage: Usage, expires: int | None, now: float
    ) -> None:
        conf = self.registry.get(usage.conf_id)
        if conf is None:
            self._reply(ep, inc, 481, "Subscription Does Not Exist", now)
            return
        if expires != 0:
            try:
                conf.authorize_subscribe(usage.user)
            except ConferenceError as exc:
                self._reply(ep, inc, exc.status, exc.reason, now)
                return
        try:
            granted = usage.sub.refresh(expires, now)
        except SubscriptionError as exc:
            self._reply(ep, inc, exc.status, exc.reason, now, Headers.of(exc.headers))
            return
        usage.viewer = viewer_for(conf, usage.user)
        usage.peer = inc.peer if inc.peer.reliable else usage.peer
        ep.respond(
            inc.key,
            make_response(inc.request, 200, "OK", headers=Headers.of([("Expires", str(granted))])),
            now,
        )
        log.info("event=subscription_refreshed conf=%s user=%s expires=%d", conf.uri, usage.user, granted)
        self.notifier.start_conference(ep, usage, conf, now)  # full state again (resync)

    # ------------------------------------------------------------------ REFER

    def refer(
        self, ep: SipEndpoint, inc: IncomingRequest, now: float, dialog: Dialog | None, leg: Leg | None
    ) -> None:
        req = inc.request
        found = self._who(ep, inc, now, dialog, leg)
        if found is None:
            return
        conf, by = found
        if dialog is None and not req.headers.get("Contact"):
            self._reply(ep, inc, 400, "REFER Without Contact", now)
            return
        try:
            target = parse_refer(req)
        except ReferError as exc:
            self._reply(ep, inc, exc.status, exc.reason, now)
            return
        if target.action is ReferAction.BYE:
            pids = [p.participant_id for p in conf.participants_of(target.aor)]
            if not pids:
                self._reply(ep, inc, 404, "Not In This Conference", now)
                return
            try:
                events = []
                for pid in pids:
                    events += conf.remove(by, pid, "removed")
            except ConferenceError as exc:
                log.info("event=refer_refused conf=%s by=%s action=BYE status=%d", conf.uri, by, exc.status)
                self._reply(ep, inc, exc.status, exc.reason, now)
                return
            usage = self._accept(ep, inc, conf, by, dialog, leg, now)
            log.info("event=refer_accepted conf=%s by=%s action=BYE target=%s", conf.uri, by, target.aor)
            if usage is not None:
                u = usage
                self.port.watch_bye(
                    f"{conf.conf_id}.{pids[0]}",
                    lambda status, reason, t: self.notifier.refer_progress(ep, u, status, reason, t),
                )
            self.port.apply(ep, conf, events, now)
            return
        try:
            conf.authorize_invite(by)
            ref_by = referred_by(req, by)
            new_leg, events = self.dialer.prepare(
                ep,
                conf,
                target.uri,
                now,
                transport=inc.peer.transport,
                display=target.display,
                referred_by=ref_by,
                referred_by_uri=referred_by_uri(ref_by),
                replaces=target.replaces,
            )
        except ConferenceError as exc:
            log.info("event=refer_refused conf=%s by=%s action=INVITE status=%d", conf.uri, by, exc.status)
            self._reply(ep, inc, exc.status, exc.reason, now)
            return
        usage = self._accept(ep, inc, conf, by, dialog, leg, now)
        log.info("event=refer_accepted conf=%s by=%s action=INVITE target=%s", conf.uri, by, target.uri)
        self.port.apply(ep, conf, events, now)
        if usage is not None:
            u = usage
            self.dialer.start(
                ep,
                new_leg,
                now,
                lambda status, reason, t: self.notifier.refer_progress(ep, u, status, reason, t),
            )
        else:
            self.dialer.start(ep, new_leg, now)

    def _accept(
        self,
        ep: SipEndpoint,
        inc: IncomingRequest,
        conf: Conference,
        by: str,
        dialog: Dialog | None,
        leg: Leg | None,
        now: float,
    ) -> Usage | None:
        """202 Accepted and the implicit subscription (none with ``Refer-Sub: false``, RFC 4488)."""
        req = inc.request
        h = Headers()
        no_sub = (req.headers.get("Refer-Sub") or "").strip().lower() == "false"
        if no_sub:
            h.add("Refer-Sub", "false")
        if dialog is None:
            h.add("Contact", self._contact(ep, inc, conf))
        resp = make_response(
            req, 202, "Accepted", to_tag=None if dialog is not None else new_tag(), headers=h
        )
        if no_sub:
            ep.respond(inc.key, resp, now)
            return None
        if dialog is None:
            dialog = Dialog.from_uas(req, resp, secure=inc.secure)
            event = EventHeader("refer")
        else:
            event = EventHeader("refer", id=str(req.cseq.number))  # RFC 3515 §2.4.6
        sub = Subscription(event, None, now)
        peer = leg.peer if leg is not None else inc.peer
        usage = Usage(conf.conf_id, by, event, SIPFRAG, dialog, peer, sub, shared=leg is not None)
        self.notifier.add(usage)
        ep.respond(inc.key, resp, now)
        self.notifier.refer_progress(ep, usage, 100, "Trying", now)
        return usage
