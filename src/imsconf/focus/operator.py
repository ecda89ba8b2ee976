"""The operator part of the focus: live conference control (mute, deaf, kick, lock, end, invite), the
operator's views and events, and the usage records of legs and conferences.

It holds per conference whether it is locked (:mod:`.locks`, shared with the join paths) and per leg the
mix flags (muted, deaf), whether the participant speaks (the mixer's ``SpeakingChanged``) and its last
RTCP receiver report. A muted or deaf leg shows in the event package as a media status without its send or
receive side (:meth:`mix_direction`, used by the core's ``media_info``); a kicked participant leaves with
reason ``booted`` (``disconnection-method="booted"``). The flags are given to the mixer again whenever its
leg is configured anew (a re-INVITE, a move to a new mixer: :meth:`after_media_update`).

The commands are called by the runtime's ``FocusAdmin`` (``imsconf.app.admin``) with the endpoint and
``now``; watchers get :class:`.admin.OperatorEvent` values; the :class:`imsconf.usage.records.UsageSink`
gets one record per participant leg that ends and one per conference that ends, and must return at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from imsconf.conference.errors import ConferenceError
from imsconf.conference.events import (
    ConferenceClosed,
    ConferenceClosing,
    ConferenceEvent,
    FloorChanged,
    ParticipantJoined,
    ParticipantLeft,
)
from imsconf.conference.model import Conference
from imsconf.conference.participant import ConferenceState
from imsconf.conference.registry import ConferenceRegistry
from imsconf.media.control import MediaControl
from imsconf.media.events import (
    DtmfReceived,
    LegStats,
    MediaEngineError,
    MediaEvent,
    RtcpReport,
    SpeakingChanged,
)
from imsconf.sdp.direction import Direction
from imsconf.sip.endpoint import SipEndpoint
from imsconf.sip.errors import SipParseError
from imsconf.sip.uri import SipUri
from imsconf.usage.records import ConferenceUsage, LegUsage, NullUsageSink, UsageSink

from .admin import (
    AdminError,
    ConferenceView,
    InvalidTarget,
    OperatorEvent,
    OperatorEventKind,
    ParticipantView,
    UnknownConference,
    UnknownParticipant,
)
from .dialout import Dialer
from .keying import FocusKeying
from .legs import Inbox, Leg, LegTable
from .locks import ConferenceLocks
from .operator_views import (
    LegFacts,
    MixState,
    conference_view,
    leg_facts,
    participant_view,
    rtcp_view,
    utc,
)
from .ports import FeatureBase, FocusPort

__all__ = ["ConferenceOperator", "LobbyQuery", "OperatorConfig", "OperatorSink"]

log = logging.getLogger("imsconf.focus")

OperatorSink = Callable[[OperatorEvent], None]

END_REASON = "operator"  # the close reason of a conference the operator ended
KICK_REASON = "booted"
RELAY_EVENT_INTERVAL = 1.0  # seconds: at most one message-relayed event per conference in this time


class LobbyQuery(Protocol):
    """The PIN lobby (:class:`~.planned.PlannedConferences`): its callers' keys are PIN digits."""

    def in_lobby(self, leg_id: str) -> bool: ...

    def owns(self, conf: Conference) -> bool: ...


class OperatorConfig(Protocol):
    @property
    def dtmf_mute_toggle(self) -> str: ...


@dataclass(slots=True)
class _ConfState:
    joined: int = 0  # participants that joined over the conference's life
    closing: str | None = None  # the reason of its ConferenceClosing
    epoch: int | None = None  # the last key epoch told to watchers
    planned: bool = False
    relayed_at: float | None = None  # when the last message-relayed event went out
    relay_due: float | None = None  # when the next one goes (messages relayed since, throttled)


@dataclass(frozen=True, slots=True)
class _Ending:
    """A leg's facts taken before its media is released, until the participant's leave names the reason."""

    facts: LegFacts
    stats: LegStats | None
    mix: MixState = field(default_factory=MixState)


class ConferenceOperator(FeatureBase):
    """The operator part (see the module docstring)."""

    def __init__(
        self,
        table: LegTable,
        port: FocusPort,
        config: OperatorConfig,
        registry: ConferenceRegistry,
        media: MediaControl,
        inbox: Inbox,
        dialer: Dialer,
        keying: FocusKeying,
        locks: ConferenceLocks,
        *,
        lobby: LobbyQuery | None = None,
        usage: UsageSink | None = None,
        wall_clock_offset: float = 0.0,
    ) -> None:
        self.table = table
        self.port = port
        self.config = config
        self.registry = registry
        self.media = media
        self.inbox = inbox
        self.dialer = dialer
        self.keying = keying
        self.locks = locks
        self.lobby = lobby
        self.usage: UsageSink = usage if usage is not None else NullUsageSink()
        self.offset = wall_clock_offset
        self.mix: dict[str, MixState] = {}  # by leg id
        self._confs: dict[str, _ConfState] = {}
        self._ending: dict[str, _Ending] = {}  # by leg id
        self._watchers: list[OperatorSink] = []

    # ------------------------------------------------------------------ queries

    def locked(self, conf_id: str) -> bool:
        return self.locks.locked(conf_id)

    def mix_direction(self, leg_id: str, direction: Direction) -> Direction:
        """The participant's media direction as the conference sees it: a muted leg sends nothing into
        the mix, a deaf one receives nothing from it."""
        m = self.mix.get(leg_id)
        if m is None or not (m.muted or m.deaf):
            return direction
        return Direction.of(direction.sends and not m.muted, direction.receives and not m.deaf)

    def conferences(self) -> tuple[ConferenceView, ...]:
        return tuple(self._view(c) for c in self.registry if c.state is not ConferenceState.CLOSED)

    def conference(self, conf_id: str) -> ConferenceView:
        return self._view(self._conference(conf_id))

    def participant(self, conf_id: str, pid: str) -> ParticipantView:
        conf = self._conference(conf_id)
        if pid not in conf:
            raise UnknownParticipant(f"no participant {pid} in conference {conf_id}")
        return self._participant_view(conf, pid)

    # ------------------------------------------------------------------ watchers

    def watch(self, sink: OperatorSink) -> Callable[[], None]:
        self._watchers.append(sink)

        def stop() -> None:
            if sink in self._watchers:
                self._watchers.remove(sink)

        return stop

    def _emit(
        self,
        kind: OperatorEventKind,
        conf_id: str,
        pid: str | None = None,
        data: dict[str, object] | None = None,
    ) -> None:
        ev = OperatorEvent(kind, conf_id, pid, data or {})
        for sink in list(self._watchers):
            try:
                sink(ev)
            except Exception:  # one broken watcher must not stop the others nor the focus
                log.exception("event=operator_watcher_failed kind=%s", kind)

    # ------------------------------------------------------------------ commands

    def set_muted(self, ep: SipEndpoint, conf_id: str, pid: str, muted: bool, now: float) -> ParticipantView:
        conf, leg = self._leg(conf_id, pid)
        m = self.mix.setdefault(leg.leg_id, MixState())
        if m.muted != muted:
            m.muted = muted
            self._apply_mix(ep, conf, leg, now)
            self._emit("participant-muted", conf_id, pid, {"muted": muted})
        return self._participant_view(conf, pid)

    def set_deaf(self, ep: SipEndpoint, conf_id: str, pid: str, deaf: bool, now: float) -> ParticipantView:
        conf, leg = self._leg(conf_id, pid)
        m = self.mix.setdefault(leg.leg_id, MixState())
        if m.deaf != deaf:
            m.deaf = deaf
            self._apply_mix(ep, conf, leg, now)
            self._emit("participant-deaf", conf_id, pid, {"deaf": deaf})
        return self._participant_view(conf, pid)

    def kick(self, ep: SipEndpoint, conf_id: str, pid: str, now: float) -> None:
        _, leg = self._leg(conf_id, pid)
        log.info("event=operator_kick conf=%s leg=%s", conf_id, leg.leg_id)
        self.port.end(ep, leg, KICK_REASON, now, send_bye=True)

    def set_locked(self, conf_id: str, locked: bool) -> ConferenceView:
        conf = self._conference(conf_id)
        if self.locks.set(conf_id, locked):
            log.info("event=operator_lock conf=%s locked=%s", conf.uri, locked)
            self._emit("conference-locked", conf_id, None, {"locked": locked})
        return self._view(conf)

    def end(self, ep: SipEndpoint, conf_id: str, now: float) -> None:
        """Close the conference: BYE to every participant, ``terminated`` NOTIFY to every subscriber."""
        conf = self._conference(conf_id)
        log.info("event=operator_end conf=%s", conf.uri)
        self.port.apply(ep, conf, conf.close(END_REASON), now)
        for leg in [lg for lg in self.table.legs.values() if lg.conf_id == conf_id]:
            self.port.end(ep, leg, "conference ended", now, send_bye=True)  # PIN lobby callers

    def invite(self, ep: SipEndpoint, conf_id: str, uri: str, now: float) -> None:
        conf = self._conference(conf_id)
        target = _target(uri)
        transport = target.params.get("transport") or ("tls" if target.scheme == "sips" else "udp")
        try:
            leg, events = self.dialer.prepare(
                ep, conf, target, now, transport=transport.lower(), operator=True
            )
        except ConferenceError as exc:
            raise AdminError(f"cannot invite {target}: {exc.reason}") from exc
        log.info("event=operator_invite conf=%s target=%s", conf.uri, target)
        self.port.apply(ep, conf, events, now)
        self.dialer.start(ep, leg, now)

    # ------------------------------------------------------------------ hooks

    def on_event(self, ep: SipEndpoint, conf: Conference, ev: ConferenceEvent, now: float) -> None:
        state = self._confs.get(conf.conf_id)
        if state is None:
            planned = self.lobby is not None and self.lobby.owns(conf)
            state = self._confs[conf.conf_id] = _ConfState(planned=planned)
            self._emit("conference-created", conf.conf_id)
        if isinstance(ev, ParticipantJoined):
            state.joined += 1
            self._emit("participant-joined", conf.conf_id, ev.participant.participant_id)
        elif isinstance(ev, ParticipantLeft):
            self._left(conf, state, ev, now)
        elif isinstance(ev, FloorChanged):
            holders = sorted({h for f in ev.floors for h in f.holders})
            self._emit("floor-changed", conf.conf_id, None, {"holders": holders})
        elif isinstance(ev, ConferenceClosing):
            state.closing = ev.reason
        elif isinstance(ev, ConferenceClosed):
            self._closed(conf, state, ev, now)

    def on_ack(self, ep: SipEndpoint, leg: Leg, now: float) -> None:
        self._check_epoch(leg.conf_id)

    def on_media_event(self, ev: MediaEvent) -> None:
        if isinstance(ev, RtcpReport):
            leg = self.table.get(ev.leg_id)
            if leg is not None:
                decision = leg.media.decision
                rate = decision.codec.clock_rate if decision is not None else 8000
                self.mix.setdefault(ev.leg_id, MixState()).rtcp = rtcp_view(ev.block, rate)
        elif isinstance(ev, SpeakingChanged):
            m = self.mix.setdefault(ev.leg_id, MixState()) if ev.leg_id in self.table.legs else None
            if m is not None and m.speaking != ev.speaking:
                m.speaking = ev.speaking
                pid = ev.leg_id.split(".", 1)[1]
                self._emit("participant-speaking", ev.conference_id, pid, {"speaking": ev.speaking})
        elif isinstance(ev, DtmfReceived) and ev.event.end:
            self._dtmf(ev.leg_id, ev.event.digit)

    def message_relayed(self, conf_id: str, now: float) -> None:
        """A message was relayed in the conference (pager mode or MSRP): tell watchers its count, at most
        once per :data:`RELAY_EVENT_INTERVAL`; the last message of a burst is told when it has passed."""
        state = self._confs.get(conf_id)
        if state is None or state.relay_due is not None:
            return
        if state.relayed_at is None or now - state.relayed_at >= RELAY_EVENT_INTERVAL:
            self._relay_event(conf_id, state, now)
            return
        state.relay_due = state.relayed_at + RELAY_EVENT_INTERVAL
        # the MSRP adapter does not re-arm the focus's timer: the inbox's wake does
        self.inbox.post(_nothing)

    def after_media_update(self, leg: Leg) -> None:
        """The leg's mixer leg was configured anew (re-INVITE, new mixer): give it its mix flags again."""
        m = self.mix.get(leg.leg_id)
        if m is not None and (m.muted or m.deaf):
            self._set_leg_mix(leg, m)

    def forget(self, leg: Leg, now: float) -> None:
        m = self.mix.pop(leg.leg_id, None)
        conf = self.registry.get(leg.conf_id)
        if conf is not None and leg.pid in conf:  # the leave comes after the release: keep the facts
            stats = self._stats(leg)
            facts = leg_facts(leg, self.keying.scope(leg.leg_id), stats)
            self._ending[leg.leg_id] = _Ending(facts, stats, m or MixState())

    def next_deadline(self) -> float | None:
        return min((s.relay_due for s in self._confs.values() if s.relay_due is not None), default=None)

    def handle_timer(self, ep: SipEndpoint, now: float) -> None:
        for conf_id in [c for c in self._confs if self.registry.get(c) is None]:
            del self._confs[conf_id]  # refused before it began (no ConferenceClosed)
            self.locks.forget(conf_id)
        for conf_id, state in self._confs.items():
            self._check_epoch(conf_id)
            if state.relay_due is not None and state.relay_due <= now:
                self._relay_event(conf_id, state, now)

    # ------------------------------------------------------------------ internals

    def _conference(self, conf_id: str) -> Conference:
        conf = self.registry.get(conf_id)
        if conf is None or conf.state is ConferenceState.CLOSED:
            raise UnknownConference(f"no conference {conf_id}")
        return conf

    def _leg(self, conf_id: str, pid: str) -> tuple[Conference, Leg]:
        conf = self._conference(conf_id)
        leg = self.table.get(f"{conf_id}.{pid}")
        if pid not in conf or leg is None or leg.closing:
            raise UnknownParticipant(f"no participant {pid} in conference {conf_id}")
        return conf, leg

    def _set_leg_mix(self, leg: Leg, m: MixState) -> None:
        if leg.media.chat_only:  # no mixer leg: the flags are kept for an audio stream offered later
            return
        try:
            self.media.set_leg_mix(leg.leg_id, muted=m.muted, deaf=m.deaf)
        except (MediaEngineError, KeyError, NotImplementedError) as exc:
            log.warning("event=leg_mix_failed leg=%s reason=%r", leg.leg_id, str(exc))

    def _apply_mix(self, ep: SipEndpoint, conf: Conference, leg: Leg, now: float) -> None:
        """Tell the mixer, and the event package (the media status without the muted/deaf side)."""
        self._set_leg_mix(leg, self.mix[leg.leg_id])
        if leg.pid in conf and leg.media.decision is not None:
            self.port.apply(ep, conf, conf.set_media(leg.pid, self.port.media_info(leg)), now)

    def _dtmf(self, leg_id: str, digit: str) -> None:
        toggle = self.config.dtmf_mute_toggle
        leg = self.table.get(leg_id)
        if not toggle or leg is None or (self.lobby is not None and self.lobby.in_lobby(leg_id)):
            return
        m = self.mix.setdefault(leg_id, MixState())
        m.dtmf = (m.dtmf + digit)[-len(toggle) :]
        if m.dtmf != toggle:
            return
        m.dtmf = ""
        conf_id, pid = leg.conf_id, leg.pid

        def toggle_mute(ep: SipEndpoint, now: float) -> None:
            current = self.mix.get(leg_id)
            if current is None or leg_id not in self.table.legs:
                return
            try:
                self.set_muted(ep, conf_id, pid, not current.muted, now)
            except AdminError:  # gone meanwhile
                return

        self.inbox.post(toggle_mute)

    def _stats(self, leg: Leg) -> LegStats | None:
        if leg.media.chat_only:  # no mixer leg, no media statistics
            return None
        try:
            return self.media.leg_stats(leg.leg_id)
        except (MediaEngineError, KeyError, NotImplementedError, OSError):
            return None

    def _facts(self, leg: Leg) -> LegFacts:
        return leg_facts(leg, self.keying.scope(leg.leg_id))

    def _floor(self, conf: Conference, pid: str) -> bool:
        return any(pid in f.holders for f in conf.floors)

    def _participant_view(self, conf: Conference, pid: str) -> ParticipantView:
        leg_id = f"{conf.conf_id}.{pid}"
        leg = self.table.get(leg_id)
        return participant_view(
            conf.participant(pid),
            self._facts(leg) if leg is not None else None,
            self.mix.get(leg_id) or MixState(),
            floor=self._floor(conf, pid),
            offset=self.offset,
            chat=leg is not None and self.port.in_chat(leg),
        )

    def _view(self, conf: Conference) -> ConferenceView:
        return conference_view(
            conf,
            tuple(self._participant_view(conf, p.participant_id) for p in conf.participants),
            locked=self.locks.locked(conf.conf_id),
            downlink=self.keying.policy_for(conf.conf_id)[0],
            key_epoch=self.keying.current_epoch(conf.conf_id),
            offset=self.offset,
            messages=self.port.message_count(conf.conf_id),
        )

    def _relay_event(self, conf_id: str, state: _ConfState, now: float) -> None:
        state.relayed_at, state.relay_due = now, None
        self._emit("message-relayed", conf_id, None, {"count": self.port.message_count(conf_id)})

    def _check_epoch(self, conf_id: str) -> None:
        state = self._confs.get(conf_id)
        epoch = self.keying.current_epoch(conf_id)
        if state is None or epoch == state.epoch:
            return
        state.epoch = epoch
        if epoch is not None:
            self._emit("key-epoch", conf_id, None, {"epoch": epoch})

    def _left(self, conf: Conference, state: _ConfState, ev: ParticipantLeft, now: float) -> None:
        p = ev.participant
        pid = p.participant_id
        leg_id = f"{conf.conf_id}.{pid}"
        ending = self._ending.pop(leg_id, None)
        if ending is None:
            leg = self.table.get(leg_id)
            if leg is None:  # no leg (an offer refused before the leg existed): nothing was used
                self._emit("participant-left", conf.conf_id, pid, {"reason": ev.reason})
                return
            stats = self._stats(leg)
            ending = _Ending(leg_facts(leg, self.keying.scope(leg_id), stats), stats)
        rtcp = (self.mix.get(leg_id) or ending.mix).rtcp
        self._emit("participant-left", conf.conf_id, pid, {"reason": ev.reason})
        self.usage.leg_ended(
            LegUsage(
                conference_id=conf.conf_id,
                conference_uri=conf.uri,
                participant_id=pid,
                identity="anonymous" if p.privacy else p.user,
                privacy=p.privacy,
                joined=utc(p.joined_at, self.offset),
                left=utc(now, self.offset),
                reason=_leg_reason(ev, state.closing),
                codec=ending.facts.codec,
                srtp_suite=ending.facts.srtp,
                key_mode=ending.facts.key,
                packets_sent=ending.facts.packets_sent,
                packets_received=ending.facts.packets_received,
                loss=rtcp.loss,
                jitter_ms=rtcp.jitter_ms,
            )
        )

    def _closed(self, conf: Conference, state: _ConfState, ev: ConferenceClosed, now: float) -> None:
        del self._confs[conf.conf_id]
        self.locks.forget(conf.conf_id)
        for leg_id in [k for k in self._ending if k.startswith(f"{conf.conf_id}.")]:
            del self._ending[leg_id]
        self._emit("conference-ended", conf.conf_id, None, {"reason": ev.reason})
        self.usage.conference_ended(
            ConferenceUsage(
                conference_id=conf.conf_id,
                conference_uri=conf.uri,
                owner=conf.owner,
                created=utc(conf.created_at, self.offset),
                ended=utc(now, self.offset),
                reason=_conference_reason(state.closing or ev.reason),
                participants=state.joined,
                planned=state.planned,
            )
        )


def _nothing(ep: SipEndpoint, now: float) -> None:
    """Inbox work that only wakes the runtime (its flush re-arms the focus timer for a new deadline)."""


def _target(uri: str) -> SipUri:
    text = uri.strip()
    if not text.lower().startswith(("sip:", "sips:")):
        raise InvalidTarget(f"not a SIP or SIPS URI: {text[:80]!r}")
    try:
        target = SipUri.parse(text)
    except (SipParseError, ValueError) as exc:
        raise InvalidTarget(f"not a usable SIP URI: {text[:80]!r}") from exc
    if not target.host:
        raise InvalidTarget(f"no host in {text[:80]!r}")
    return target


def _leg_reason(ev: ParticipantLeft, closing: str | None) -> str:
    """How a participant's leg ended, for its usage record."""
    reason = ev.reason
    if reason == "left":
        return "bye"
    if reason == KICK_REASON:
        return "booted"
    if ev.removed_by is not None:
        return "removed"
    if closing is not None and reason == closing:
        return "shutdown" if reason == "shutdown" else "conference-ended"
    if reason.startswith(("failed", "busy")):
        return "failed"
    return reason.replace(" ", "-")


def _conference_reason(reason: str) -> str:
    """Why a conference ended, for its usage record."""
    known = {
        "owner left": "owner-left",
        "last participant left": "last-left",
        END_REASON: "operator",
        "shutdown": "shutdown",
    }
    return known.get(reason, reason.replace(" ", "-"))
