"""The notifier side of the focus: the conference event package (RFC 4575) and REFER progress (RFC 3515).

A :class:`Usage` is one subscription usage of a dialog (RFC 6665 §4.5.2): ``Event: conference`` from a
SUBSCRIBE, or the implicit ``Event: refer`` subscription of a REFER.  It lives in its own dialog, or
shares a participant's INVITE dialog.  The RFC 6665 state machine (one NOTIFY outstanding, queued bodies,
expiry, final NOTIFY) is :class:`imsconf.sip.subscription.Subscription`; this module turns its actions
into in-dialog NOTIFY requests and feeds it.

A :class:`ConferenceFeed` follows the roster events of one conference (created on its first subscriber),
renders every change once per audience class (``ConferenceInfoBuilder.audience_class``) and hands the same
bytes to every subscriber of that class.  Full documents (first NOTIFY, refresh, resync, final NOTIFY) are
cached per (version, class) as well.

Decisions:

* A subscription that shares an INVITE dialog ends with that dialog (the participant's BYE): no NOTIFY can
  be sent in a terminated dialog, so it is dropped without one.
* When a participant leaves and is no longer allowed to subscribe (policy ``subscribers``), its
  subscriptions end with ``terminated;reason=rejected`` and a full-state body.
* When the conference ends every subscription ends with ``terminated;reason=noresource`` and the final
  full state (``active`` false), so a subscriber that missed queued partial bodies still converges.
* When the service shuts down every subscription ends with ``terminated;reason=noresource`` too (RFC 6665
  §4.1.3: the resource is gone and a new subscription would not find it; conferences live in memory and do
  not survive the process), before the participants get their BYEs, so that a subscription sharing an
  INVITE dialog still gets its NOTIFY. ``deactivated`` would ask the subscriber to subscribe again at once,
  which only makes sense when another notifier takes the resource over. A REFER's implicit subscription
  ends with a ``503 Service Unavailable`` fragment.
"""

from __future__ import annotations

import itertools
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from imsconf.conference.errors import ConferenceError
from imsconf.conference.eventinfo import (
    CONTENT_TYPE,
    ConferenceInfoBuilder,
    EndpointDetails,
    EventInfoError,
    RosterChange,
    RosterState,
    Viewer,
)
from imsconf.conference.events import (
    ConferenceClosed,
    ConferenceEvent,
    ParticipantLeft,
    RosterEvent,
)
from imsconf.conference.model import Conference
from imsconf.conference.participant import ConferenceState, Role
from imsconf.sip.dialog import Dialog, DialogId, DialogRegistry
from imsconf.sip.endpoint import SipEndpoint
from imsconf.sip.errors import SipParseError
from imsconf.sip.message import Request, Response
from imsconf.sip.peer import Peer
from imsconf.sip.subscription import (
    Action,
    EventHeader,
    Reason,
    ResyncRequired,
    SendNotify,
    Subscription,
    SubscriptionEnded,
    SubscriptionError,
    parse_expires,
)
from imsconf.sip.util import header_safe_text

from .routing import dialog_destination

__all__ = [
    "SIPFRAG",
    "ConferenceFeed",
    "Notifier",
    "Usage",
    "parse_subscribe",
    "sipfrag",
    "viewer_for",
]

log = logging.getLogger("imsconf.focus")

SIPFRAG: Final = "message/sipfrag;version=2.0"
SUPPORTED_EVENTS: Final = ("conference", "refer")


def sipfrag(status: int, reason: str) -> bytes:
    """The ``message/sipfrag`` body of a REFER progress NOTIFY (RFC 3515 §2.4.5): a status line."""
    text = header_safe_text(reason, replacement="") or "Unknown"
    return f"SIP/2.0 {status} {text}\r\n".encode()


def parse_subscribe(req: Request) -> tuple[EventHeader, int | None]:
    """Event and Expires of a SUBSCRIBE; ``SubscriptionError`` 489 for another package, 400 when malformed."""
    value = req.headers.get("Event")
    if value is None:
        raise SubscriptionError("Bad Event", 489, (("Allow-Events", "conference"),))
    try:
        event = EventHeader.parse(value)
        expires_text = req.headers.get("Expires")
        expires = parse_expires(expires_text) if expires_text is not None else None
    except SipParseError as exc:
        raise SubscriptionError(f"Bad Request ({exc.reason[:60]})", 400) from None
    if event.package.lower() != "conference":
        raise SubscriptionError("Bad Event", 489, (("Allow-Events", "conference"),))
    accept = [a.split(";")[0].strip().lower() for a in ",".join(req.headers.get_all("Accept")).split(",")]
    accept = [a for a in accept if a]
    if accept and CONTENT_TYPE not in accept and "application/*" not in accept and "*/*" not in accept:
        raise SubscriptionError("Not Acceptable", 406)
    return event, expires


def viewer_for(conf: Conference, user: str) -> Viewer:
    """Owner, moderators and operators see every identity; anyone else sees private users anonymised."""
    if user in conf.policy.operators or conf.role_of(user) in (Role.OWNER, Role.MODERATOR):
        return Viewer.privileged()
    return Viewer.participant(user)


_usage_ids = itertools.count(1)

ENDED_GRACE: Final = 32.0
"""Seconds (64·T1) an unsubscribe in the dialog of a subscription that just ended still gets a 200: it may
cross the focus's terminated NOTIFY."""


@dataclass(slots=True, eq=False)
class Usage:
    """One subscription usage of a dialog."""

    conf_id: str
    user: str
    event: EventHeader
    content_type: str
    dialog: Dialog
    peer: Peer  # where the SUBSCRIBE/REFER came from: NOTIFYs go over that connection (or its target)
    sub: Subscription
    shared: bool  # lives in a participant's INVITE dialog
    viewer: Viewer | None = None  # for Event: conference
    usage_id: int = field(default_factory=lambda: next(_usage_ids))
    notifies_sent: int = 0

    @property
    def is_conference(self) -> bool:
        return self.event.package.lower() == "conference"


class ConferenceFeed:
    """The conference-info state one conference has shown its subscribers, and its bodies."""

    def __init__(self, conf: Conference, builder: ConferenceInfoBuilder) -> None:
        self.conf_id = conf.conf_id
        self.builder = builder
        self.state = RosterState.from_conference(conf)
        self._full_cache: dict[tuple[int, Viewer], bytes] = {}

    def follow(self, conf: Conference, event: RosterEvent) -> RosterChange | bool | None:
        """Take one roster event: the change to render, None when already included, True to resync."""
        if event.version <= self.state.version:
            return None
        try:
            change = self.state.apply(event)
        except EventInfoError:
            self.state = RosterState.from_conference(conf)
            self._full_cache.clear()
            return True
        self.state = change.after
        return change

    def klass(self, viewer: Viewer, change: RosterChange | None = None) -> Viewer:
        parts = (
            self.state.participants
            if change is None
            else change.before.participants + change.after.participants
        )
        return self.builder.audience_class(viewer, parts)

    def full(self, viewer: Viewer) -> bytes:
        klass = self.klass(viewer)
        key = (self.state.version, klass)
        body = self._full_cache.get(key)
        if body is None:
            if len(self._full_cache) > 64:
                self._full_cache.clear()
            body = self._full_cache[key] = self.builder.full_document(self.state, klass)
        return body


class Notifier:
    """Subscription usages of the focus's dialogs, and the NOTIFYs they cause."""

    def __init__(
        self,
        dialogs: DialogRegistry,
        *,
        details: Callable[[str, str], EndpointDetails],
        focus_uri: Callable[[Conference], str],
        dialog_shared: Callable[[DialogId], bool],
        anonymity_key: bytes | None = None,
        wall_clock_offset: float = 0.0,
    ) -> None:
        self.dialogs = dialogs
        self.usages: dict[int, Usage] = {}
        self.feeds: dict[str, ConferenceFeed] = {}
        self._by_dialog: dict[DialogId, list[Usage]] = {}
        self._details = details
        self._focus_uri = focus_uri
        self._dialog_shared = dialog_shared
        self._anonymity_key = anonymity_key or secrets.token_bytes(32)
        self.wall_clock_offset = wall_clock_offset
        self.counters: dict[str, int] = {"bodies_built": 0, "notify_sent": 0}
        # dialogs of subscriptions that ended lately, until when an unsubscribe in them is still answered
        self._ended: dict[DialogId, float] = {}

    # ------------------------------------------------------------------ look-ups

    def usages_in(self, dialog_id: DialogId) -> list[Usage]:
        return list(self._by_dialog.get(dialog_id, ()))

    def find(self, dialog_id: DialogId, event: EventHeader) -> Usage | None:
        return next((u for u in self._by_dialog.get(dialog_id, ()) if u.event.matches(event)), None)

    def recently_ended(self, req: Request, now: float) -> bool:
        """*req* is in the dialog of a subscription that ended within :data:`ENDED_GRACE` seconds."""
        if not req.to.tag:
            return False
        until = self._ended.get(DialogId(req.call_id, req.to.tag, req.from_.tag or ""))
        return until is not None and now < until

    def of_conference(self, conf_id: str) -> list[Usage]:
        return [u for u in self.usages.values() if u.conf_id == conf_id and u.is_conference]

    def next_deadline(self) -> float | None:
        best: float | None = None
        for u in self.usages.values():
            d = u.sub.next_deadline()
            if d is not None and (best is None or d < best):
                best = d
        return best

    def handle_timer(self, ep: SipEndpoint, now: float) -> None:
        for u in list(self.usages.values()):
            d = u.sub.next_deadline()
            if d is not None and d <= now:
                log.info("event=subscription_expired conf=%s user=%s event=%s", u.conf_id, u.user, u.event)
                self._run(ep, u, u.sub.handle_timer(now), now)

    # ------------------------------------------------------------------ usages

    def feed(self, conf: Conference) -> ConferenceFeed:
        feed = self.feeds.get(conf.conf_id)
        if feed is None:
            conf_id = conf.conf_id
            builder = ConferenceInfoBuilder(
                conference_uri=conf.uri,
                focus_uri=self._focus_uri(conf),
                anonymity_key=self._anonymity_key,
                maximum_user_count=conf.policy.max_participants,
                details=lambda pid: self._details(conf_id, pid),
                wall_clock_offset=self.wall_clock_offset,
            )
            feed = self.feeds[conf_id] = ConferenceFeed(conf, builder)
        return feed

    def add(self, usage: Usage) -> None:
        self.usages[usage.usage_id] = usage
        self._by_dialog.setdefault(usage.dialog.id, []).append(usage)
        if not usage.shared and usage.dialog.id not in self.dialogs:
            self.dialogs.add(usage.dialog)

    def start_conference(self, ep: SipEndpoint, usage: Usage, conf: Conference, now: float) -> None:
        """The first NOTIFY (or the one after a refresh): the full state (RFC 4575 §4.6)."""
        assert usage.viewer is not None
        body = self.feed(conf).full(usage.viewer)
        self._run(ep, usage, usage.sub.notify(body, now, full=True), now)

    def refer_progress(self, ep: SipEndpoint, usage: Usage, status: int, reason: str, now: float) -> None:
        """Report the INVITE (or BYE) a REFER caused; a final status ends the implicit subscription."""
        body = sipfrag(status, reason)
        if status < 200:
            self._run(ep, usage, usage.sub.notify(body, now), now)
        else:
            self._run(ep, usage, usage.sub.terminate(Reason.NORESOURCE, now, body=body), now)

    def dialog_gone(self, dialog_id: DialogId) -> None:
        """The INVITE dialog the usages shared is over: they end without a NOTIFY."""
        for u in self._by_dialog.pop(dialog_id, []):
            self.usages.pop(u.usage_id, None)
            log.info("event=subscription_dropped conf=%s user=%s event=%s", u.conf_id, u.user, u.event)

    # ------------------------------------------------------------------ conference changes

    def on_event(self, ep: SipEndpoint, conf: Conference, event: ConferenceEvent, now: float) -> None:
        """Follow one event of ``conf``; NOTIFY its subscribers (nothing is built when there are none)."""
        if not isinstance(event, RosterEvent):
            return
        feed = self.feeds.get(conf.conf_id)
        if feed is None:
            return
        usages = self.of_conference(conf.conf_id)
        result = feed.follow(conf, event)
        if result is None:
            return
        if isinstance(event, ConferenceClosed):
            for u in usages:
                assert u.viewer is not None
                body = feed.full(u.viewer)
                self._run(ep, u, u.sub.terminate(Reason.NORESOURCE, now, body=body), now)
            self.feeds.pop(conf.conf_id, None)
            return
        leaving: list[Usage] = []
        if isinstance(event, ParticipantLeft) and conf.state is ConferenceState.ACTIVE:
            user = event.participant.user
            if not conf.participants_of(user):
                leaving = [u for u in usages if u.user == user]  # its own view ends with it
        bodies: dict[Viewer, bytes] = {}
        for u in usages:
            assert u.viewer is not None
            if u in leaving:
                continue
            if result is True:
                body, full = feed.full(u.viewer), True
            else:
                assert isinstance(result, RosterChange)
                klass = feed.klass(u.viewer, result)
                body_or_none = bodies.get(klass)
                if body_or_none is None:
                    body_or_none = bodies[klass] = feed.builder.partial_document(result, klass)
                    self.counters["bodies_built"] += 1
                body, full = body_or_none, False
            self._run(ep, u, u.sub.notify(body, now, full=full), now)
        if isinstance(event, ParticipantLeft):
            if leaving:
                self._end_leaver(ep, conf, feed, event, leaving, now)
            else:
                self._revoke(ep, conf, event.participant.user, now)

    def _end_leaver(
        self,
        ep: SipEndpoint,
        conf: Conference,
        feed: ConferenceFeed,
        event: ParticipantLeft,
        usages: list[Usage],
        now: float,
    ) -> None:
        """RFC 6665 §4.2.2: the participant's own subscriptions end with it, by a ``terminated`` NOTIFY that
        carries the document of its leave: ``rejected`` when it was removed or may not watch any more,
        ``noresource`` when it left and could subscribe again."""
        reason = Reason.NORESOURCE
        try:
            conf.authorize_subscribe(event.participant.user)
        except ConferenceError:
            reason = Reason.REJECTED
        if event.removed_by is not None:
            reason = Reason.REJECTED
        for u in usages:
            assert u.viewer is not None
            log.info("event=subscription_ended conf=%s user=%s reason=%s", u.conf_id, u.user, reason.value)
            self._run(ep, u, u.sub.terminate(reason, now, body=feed.full(u.viewer)), now)

    def _revoke(self, ep: SipEndpoint, conf: Conference, user: str, now: float) -> None:
        feed = self.feeds.get(conf.conf_id)
        if conf.state is not ConferenceState.ACTIVE:
            return  # closing: every subscription ends with noresource instead
        for u in self.of_conference(conf.conf_id):
            if u.user != user or feed is None:
                continue
            try:
                conf.authorize_subscribe(user)
            except ConferenceError:
                assert u.viewer is not None
                log.info("event=subscription_revoked conf=%s user=%s", conf.uri, user)
                body = feed.full(u.viewer)
                self._run(ep, u, u.sub.terminate(Reason.REJECTED, now, body=body), now)

    def shutdown(self, ep: SipEndpoint, now: float) -> int:
        """The focus stops: every subscription ends with ``terminated;reason=noresource`` (a conference
        subscription with the current full state); returns how many there were."""
        usages = list(self.usages.values())
        for u in usages:
            body: bytes | None = sipfrag(503, "Service Unavailable")
            if u.is_conference:
                feed = self.feeds.get(u.conf_id)
                body = feed.full(u.viewer) if feed is not None and u.viewer is not None else None
            log.info("event=subscription_ended conf=%s user=%s reason=noresource", u.conf_id, u.user)
            self._run(ep, u, u.sub.terminate(Reason.NORESOURCE, now, body=body), now)
        return len(usages)

    def end_all(self, ep: SipEndpoint, conf_id: str, now: float) -> None:
        """The conference is gone without a ConferenceClosed seen here: end its subscriptions."""
        for u in self.of_conference(conf_id):
            self._run(ep, u, u.sub.terminate(Reason.NORESOURCE, now), now)
        self.feeds.pop(conf_id, None)

    # ------------------------------------------------------------------ NOTIFY

    def _run(self, ep: SipEndpoint, usage: Usage, actions: list[Action], now: float) -> None:
        for action in actions:
            if isinstance(action, SendNotify):
                self._send(ep, usage, action, now)
            elif isinstance(action, ResyncRequired):
                feed = self.feeds.get(usage.conf_id)
                if feed is not None and usage.viewer is not None:
                    self._run(ep, usage, usage.sub.notify(feed.full(usage.viewer), now, full=True), now)
            elif isinstance(action, SubscriptionEnded):
                self._forget(usage, now)

    def _send(self, ep: SipEndpoint, usage: Usage, action: SendNotify, now: float) -> None:
        if usage.dialog.terminated:
            self._run(ep, usage, usage.sub.notify_response(481, now), now)
            return
        headers = [("Event", str(usage.event)), ("Subscription-State", action.subscription_state)]
        if action.body:
            headers.append(("Content-Type", usage.content_type))
        req = usage.dialog.create_request("NOTIFY", headers=headers, body=action.body or b"")
        dest = dialog_destination(usage.dialog, usage.peer)
        usage.notifies_sent += 1
        self.counters["notify_sent"] += 1

        def done(resp: Response, t: float) -> None:
            if resp.status < 200 or usage.usage_id not in self.usages or not usage.sub.outstanding:
                return
            if resp.status >= 300:
                log.info(
                    "event=notify_failed conf=%s user=%s status=%d", usage.conf_id, usage.user, resp.status
                )
            self._run(ep, usage, usage.sub.notify_response(resp.status, t), t)

        ep.send_request(req, dest, now, on_response=done)

    def _forget(self, usage: Usage, now: float) -> None:
        self.usages.pop(usage.usage_id, None)
        dialog_id = usage.dialog.id
        self._ended = {d: t for d, t in self._ended.items() if t > now}
        self._ended[dialog_id] = now + ENDED_GRACE
        rest = [u for u in self._by_dialog.get(dialog_id, []) if u is not usage]
        if rest:
            self._by_dialog[dialog_id] = rest
            return
        self._by_dialog.pop(dialog_id, None)
        if not usage.shared and not self._dialog_shared(dialog_id):
            self.dialogs.remove(dialog_id)
            usage.dialog.terminate()
