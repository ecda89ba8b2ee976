"""Booking windows at the focus: the dial-out at a window's start, the one-minute prompt, the close.

A feature part beside the booked conferences (:mod:`.planned`), which it uses to instantiate a booking's
conference and to know which live conferences came from which booking:

* **start** — at the start of a booking with ``dial_out``, the booked conference is created if it is not
  live yet (the same URI and policy as the first dial-in would give it, :func:`.planned.booked_policy`)
  and every invitee is called through the dial-out path of REFER and URI lists (:class:`.dialout.Dialer`,
  to its registered binding when it has one); the booking's roster gives each its role (the chair is the
  owner, moderators are moderators).  On a cluster node only if it holds the booking's URI in the
  directory (:mod:`.claims`: the node that wins the claim dials, the others skip).  Once per booking window
  in this focus: an invitee who refuses or does not answer is logged and not called again.  A focus that
  starts while a window is open (a restart) calls, once, every invitee who has no participant in the
  booked conference — everyone when the conference is not live; nobody already in is called again.
  ``tel:`` invitees are skipped (no gateway).
* **one minute before the close** every participant whose media is up hears the ``one-minute-left``
  prompt (a participant who joins later hears it on joining);
* **the close** — at the window's end plus the booking's ``overrun``, the conference closes with the
  reason ``booking-window-ended``: BYE (CANCEL for a ringing dial-out) to every participant, a
  ``terminated`` NOTIFY to every subscriber, callers still in the PIN lobby get a BYE too.  Dial-in after
  the window's end is refused by :mod:`.planned` (also during an overrun).

Sans-I/O: wall-clock times are the focus's ``now`` plus its wall-clock offset; the bookings come from the
runtime's in-memory index (:class:`WindowSource`), which the part re-reads every ``poll`` seconds (the
index is refreshed from the store behind the focus's back) and whose windows starting within ``horizon``
it keeps as deadlines.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

from imsconf.booking.model import Booking
from imsconf.conference.errors import ConferenceError
from imsconf.conference.events import ConferenceEvent, ParticipantStatusChanged
from imsconf.conference.model import Conference
from imsconf.conference.participant import ConferenceState, ParticipantStatus
from imsconf.conference.registry import ConferenceRegistry
from imsconf.media.control import MediaControl
from imsconf.media.events import MediaEngineError
from imsconf.sip.endpoint import SipEndpoint
from imsconf.sip.errors import SipParseError
from imsconf.sip.uri import SipUri

from .claims import ClaimLost, ClaimResult, ClaimWon
from .dialout import Dialer, Progress
from .legs import Leg, LegTable
from .planned import PlannedConferences, Prompt
from .ports import FeatureBase, FocusPort

__all__ = ["CLOSE_REASON", "BookingWindows", "WindowConfig", "WindowOptions", "WindowSource"]

log = logging.getLogger("imsconf.focus")

_MEDIA_UP = (ParticipantStatus.CONNECTED, ParticipantStatus.ON_HOLD)

CLOSE_REASON = "booking-window-ended"
"""Why a booked conference closed at the end of its window (participants leave with it too)."""


class WindowSource(Protocol):
    """The bookings as the focus reads them (:class:`imsconf.app.booking_index.BookingIndex`)."""

    def open_or_starting(self, now: datetime, horizon: timedelta) -> Sequence[Booking]:
        """The bookings (not cancelled) whose window holds *now* or starts within *horizon*."""
        ...


@dataclass(frozen=True, slots=True)
class WindowConfig:
    warning: float = 60.0  # seconds before the close: the one-minute-left prompt
    horizon: float = 120.0  # window starts this far ahead are deadlines of the part
    poll: float = 2.0  # seconds between two readings of the bookings (the index changes on its own)
    dial_transport: str = "udp"  # for an invitee URI that names none (sips: is TLS; a binding its own)


@dataclass(frozen=True, slots=True)
class WindowOptions:
    """What the part needs beyond the booked conferences: the bookings and its settings."""

    bookings: WindowSource
    config: WindowConfig = field(default_factory=WindowConfig)


@dataclass(slots=True)
class _Live:
    """A live booked conference and its two deadlines (focus clock)."""

    warn_at: float
    close_at: float
    warned: bool = False


class BookingWindows(FeatureBase):
    """The booking-window part of the focus."""

    def __init__(
        self,
        table: LegTable,
        port: FocusPort,
        registry: ConferenceRegistry,
        planned: PlannedConferences,
        dialer: Dialer,
        media: MediaControl,
        options: WindowOptions,
        *,
        wall_clock_offset: float = 0.0,
    ) -> None:
        self.table = table
        self.port = port
        self.registry = registry
        self.planned = planned
        self.dialer = dialer
        self.media = media
        self.source = options.bookings
        self.config = options.config
        self.offset = wall_clock_offset
        self._next_poll = 0.0  # the first timer reads the bookings
        self._starts: dict[str, tuple[float, Booking]] = {}  # dial-out windows not handled yet, by id
        self._dialed: set[str] = set()  # booking ids whose dial-out is done (this window, this focus)
        self._live: dict[str, _Live] = {}  # by conf_id

    # ------------------------------------------------------------------ clocks

    def _wall(self, now: float) -> datetime:
        return datetime.fromtimestamp(now + self.offset, UTC)

    def _focus_time(self, at: datetime) -> float:
        return at.timestamp() - self.offset

    # ------------------------------------------------------------------ timers

    def next_deadline(self) -> float | None:
        best = self._next_poll
        for start, _ in self._starts.values():
            best = min(best, start)
        for conf_id, live in self._track().items():
            if self.registry.get(conf_id) is not None:  # a conference gone is forgotten at the next timer
                best = min(best, live.close_at if live.warned else live.warn_at)
        return best

    def _track(self) -> dict[str, _Live]:
        """The deadlines of every live booked conference (new ones added, gone ones kept until swept)."""
        for booked in self.planned.booked.values():
            if booked.conf_id not in self._live:
                close_at = self._focus_time(booked.booking.closes_at)
                self._live[booked.conf_id] = _Live(close_at - self.config.warning, close_at)
        return self._live

    def handle_timer(self, ep: SipEndpoint, now: float) -> None:
        if now >= self._next_poll:
            self._poll(now)
        for booking_id, (start, booking) in list(self._starts.items()):
            if now >= start:
                del self._starts[booking_id]
                self._dial_out(ep, booking, now)
        for conf_id, live in list(self._track().items()):
            conf = self.registry.get(conf_id)
            if conf is None or conf.state is ConferenceState.CLOSED:
                del self._live[conf_id]
                continue
            if now >= live.close_at:
                del self._live[conf_id]
                self._close(ep, conf, now)
            elif not live.warned and now >= live.warn_at:
                live.warned = True
                log.info("event=booking_window_warning conf=%s", conf.uri)
                for leg in self._legs_of(conf):
                    self._warn(leg)

    def _poll(self, now: float) -> None:
        self._next_poll = now + self.config.poll
        wall = self._wall(now)
        bookings = self.source.open_or_starting(wall, timedelta(seconds=self.config.horizon))
        current = {b.id for b in bookings}
        self._dialed &= current  # windows that ended are forgotten
        self._starts = {
            b.id: (self._focus_time(b.start), b) for b in bookings if b.dial_out and b.id not in self._dialed
        }

    # ------------------------------------------------------------------ the start

    def _dial_out(self, ep: SipEndpoint, booking: Booking, now: float) -> None:
        self._dialed.add(booking.id)
        if now >= self._focus_time(booking.end):
            return  # read too late (the window is over): nobody is called into an ended window
        conf = self.planned.live_conference(booking)
        if conf is not None and conf.state is not ConferenceState.ACTIVE:
            log.info("event=booking_dial_out_skipped booking=%s reason=closing", booking.id)
            return
        if conf is None:
            # a cluster node dials out only if it holds the URI (every node with the booking tries)
            result = self.planned.claims.acquire(booking.uri, lambda e, r, t: self._claimed(e, booking, r, t))
            if result is None:
                return
            if not isinstance(result, ClaimWon):
                self._claimed(ep, booking, result, now)
                return
            try:
                conf = self.planned.instantiate(booking, now)
            except ConferenceError as exc:
                log.warning("event=booking_dial_out_failed booking=%s reason=%r", booking.id, exc.reason)
                return
        self._call_invitees(ep, booking, conf, now)

    def _claimed(self, ep: SipEndpoint, booking: Booking, result: ClaimResult, now: float) -> None:
        """The claim of the booking's URI came back: won, the start goes on; else another node dials."""
        if isinstance(result, ClaimWon):
            self._dial_out(ep, booking, now)
            return
        holder = result.node_id if isinstance(result, ClaimLost) else "unknown"
        log.info("event=booking_dial_out_skipped booking=%s reason=held holder=%s", booking.id, holder)

    def _call_invitees(self, ep: SipEndpoint, booking: Booking, conf: Conference, now: float) -> None:
        present = {p.user for p in conf.participants}
        log.info("event=booking_dial_out booking=%s conf=%s invitees=%d", booking.id, conf.uri,
                 len(booking.invitees))  # fmt: skip
        for invitee in booking.invitees:
            try:
                target: SipUri | None = SipUri.parse(invitee.uri)
            except SipParseError:
                target = None
            if target is None or target.scheme not in ("sip", "sips") or not target.user:
                log.info("event=booking_dial_out_skipped booking=%s target=%s reason=not-sip", booking.id,
                         invitee.uri)  # fmt: skip
                continue
            if target.aor in present:
                continue  # already in (a dial-in before the timer, or a conference kept over a restart)
            try:
                leg, events = self.dialer.prepare(ep, conf, target, now, transport=self.config.dial_transport)
            except ConferenceError as exc:
                log.info("event=booking_dial_out_refused booking=%s target=%s status=%d reason=%r",
                         booking.id, target, exc.status, exc.reason)  # fmt: skip
                continue
            self.port.apply(ep, conf, events, now)
            self.dialer.start(ep, leg, now, self._progress(booking, str(target)))

    @staticmethod
    def _progress(booking: Booking, target: str) -> Progress:
        def report(status: int, reason: str, now: float) -> None:
            if status >= 300:  # refused, no answer, or failed: logged, not called again
                log.info("event=booking_dial_out_unanswered booking=%s target=%s status=%d reason=%r",
                         booking.id, target, status, reason)  # fmt: skip

        return report

    # ------------------------------------------------------------------ the prompt

    def on_event(self, ep: SipEndpoint, conf: Conference, ev: ConferenceEvent, now: float) -> None:
        """A participant who joins after the prompt (its media now up) hears it on joining."""
        if not isinstance(ev, ParticipantStatusChanged) or ev.previous is not ParticipantStatus.JOINING:
            return
        live = self._live.get(conf.conf_id)
        if live is None or not live.warned or ev.participant.status not in _MEDIA_UP:
            return
        leg = self.table.get(f"{conf.conf_id}.{ev.participant.participant_id}")
        if leg is not None and not leg.closing:
            self._warn(leg)

    def _legs_of(self, conf: Conference) -> list[Leg]:
        """The legs of the conference's participants whose media is up."""
        legs: list[Leg] = []
        for p in conf.participants:
            leg = self.table.get(f"{conf.conf_id}.{p.participant_id}")
            if leg is not None and not leg.closing and p.status in _MEDIA_UP:
                legs.append(leg)
        return legs

    def _warn(self, leg: Leg) -> None:
        try:
            self.media.play_prompt(leg.leg_id, Prompt.ONE_MINUTE_LEFT, False)
        except (MediaEngineError, KeyError, ValueError, OSError) as exc:  # the call goes on without it
            log.warning("event=prompt_failed leg=%s prompt=%s reason=%r", leg.leg_id, Prompt.ONE_MINUTE_LEFT,
                        str(exc))  # fmt: skip

    # ------------------------------------------------------------------ the close

    def _close(self, ep: SipEndpoint, conf: Conference, now: float) -> None:
        log.info("event=booking_window_ended conf=%s", conf.uri)
        lobby = [leg for leg in self.table.legs.values() if leg.conf_id == conf.conf_id]
        lobby = [leg for leg in lobby if leg.pid not in conf]
        self.port.apply(ep, conf, conf.close(CLOSE_REASON), now)
        for leg in lobby:  # callers still in the PIN lobby are outside the roster
            self.port.end(ep, leg, CLOSE_REASON, now, send_bye=True)
