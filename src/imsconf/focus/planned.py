"""Planned (booked) conferences at the focus: dial-in, window, capacity and the PIN lobby.

An INVITE to a booked conference URI is routed here by the focus core (:mod:`.core`, the hook in
``_initial_invite``).  Bookings are read from a :class:`BookingSource`: on the server an in-memory index
that the runtime refreshes from the booking store (:mod:`imsconf.app.booking_index`), so a dial-in never
waits for the database.  The booking decides:

* outside its window → ``403 Conference Not Started`` / ``403 Conference Ended``; cancelled or unknown →
  ``404``; inside: the conference is instantiated on the first call (the booking's URI, capacity, the chair as
  owner, moderators from the roster, the keying fields recorded for the key manager) and later callers join
  it (on a cluster node once the URI is claimed for it in the directory, :mod:`.claims`: else 302 to the
  node that holds it); a full conference (participants and callers still in the lobby) → ``486 Conference
  Full``;
* without a PIN the caller joins at once; with a PIN the caller is answered (200) but held in the *lobby*: its
  mixer leg is neither mixed nor fed the conference, it hears the "enter PIN" prompt, and it is not in the
  roster (so it cannot subscribe to the conference state or REFER until admitted).  The PIN comes by DTMF
  (RFC 4733: digits, ``#`` ends, ``*`` starts again; per-attempt timeout), or from a ``;pin=`` Request-URI
  parameter when the booking allows it.  Right → the caller joins the conference (welcome prompt); three
  wrong attempts → goodbye prompt, then BYE.

Sans-I/O like the focus: media events (DTMF) and PIN check results only record work and post it to the
focus's inbox; everything that sends SIP happens at the focus's timer.  The PIN hash is scrypt (~40 ms): the
runtime's checker (:class:`imsconf.app.pins.ExecutorPinChecker`) runs it off the event loop;
:class:`InlinePinChecker` (tests, tools) checks synchronously.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Protocol

from imsconf.booking.model import Booking, InviteeRole, WindowState, pin_from_uri
from imsconf.conference.errors import ConferenceError
from imsconf.conference.events import ConferenceEvent
from imsconf.conference.model import Conference, ConferencePolicy
from imsconf.conference.participant import ConferenceState, ParticipantStatus
from imsconf.conference.registry import ConferenceRegistry
from imsconf.keys.policy import DownlinkMode, RekeyPolicy
from imsconf.media.control import MediaControl
from imsconf.media.events import DtmfReceived, MediaEngineError, MediaEvent
from imsconf.sdp.direction import Direction
from imsconf.sip.endpoint import IncomingRequest, SipEndpoint
from imsconf.sip.errors import SipParseError
from imsconf.sip.identity import TrustedPeers
from imsconf.sip.uri import SipUri
from imsconf.sip.util import make_response, new_tag

from .claims import BookedClaims, Claimer
from .legs import Inbox, Leg, LegTable, Work
from .locks import LOCKED_REASON, LOCKED_STATUS, ConferenceLocks
from .ports import FeatureBase, FocusPort

__all__ = [
    "BookedConference",
    "BookingSource",
    "DialIn",
    "InlinePinChecker",
    "LobbyMedia",
    "MixerLobby",
    "PinChecker",
    "PlannedConferences",
    "PlannedConfig",
    "PlannedOptions",
    "Prompt",
    "Refreshed",
    "booked_policy",
]

log = logging.getLogger("imsconf.focus")

LOOKUP_RETRY_AFTER = 5  # seconds: the Retry-After of a 503 for a booking source that failed outright

MAX_PIN_DIGITS = 12


class Prompt:
    """Names of the prompts the mixer plays (shipped or generated audio; tones when it has none)."""

    ENTER_PIN = "enter-pin"
    WRONG_PIN = "wrong-pin"
    WELCOME = "welcome"
    GOODBYE = "goodbye"
    FULL = "goodbye"  # no prompt of its own
    ONE_MINUTE_LEFT = "one-minute-left"  # the booked window closes in a minute (.windows)


class BookingSource(Protocol):
    """What the focus needs to know of the bookings (the runtime's in-memory index; a
    :class:`imsconf.booking.store.BookingStore` answers it too, synchronously)."""

    def window_status(self, uri: str, now: datetime) -> tuple[Booking | None, WindowState]: ...


@dataclass(frozen=True, slots=True)
class Refreshed:
    """The outcome of re-reading the bookings: current, or the store could not be read (the last bookings
    stay; a dial-in they cannot admit is answered 503 with ``Retry-After: retry_after``)."""

    retry_after: int | None = None  # None: the bookings are current

    @property
    def available(self) -> bool:
        return self.retry_after is None

    @staticmethod
    def current() -> Refreshed:
        return Refreshed()

    @staticmethod
    def unavailable(retry_after: int) -> Refreshed:
        return Refreshed(max(1, retry_after))


class PinChecker(Protocol):
    """Checks a PIN against a booking and calls ``done(ok)`` (at once, or later on the event loop)."""

    def check(self, booking: Booking, pin: str, done: Callable[[bool], None]) -> None: ...


class InlinePinChecker:
    """Synchronous check: fine for tests and tools; on the server it blocks the loop for one scrypt."""

    def check(self, booking: Booking, pin: str, done: Callable[[bool], None]) -> None:
        done(booking.verify_pin(pin))


class LobbyMedia(Protocol):
    """The mixer side of the lobby: isolate a leg, give it back to the mix, play a prompt to it."""

    def enter_lobby(self, leg_id: str) -> None: ...

    def leave_lobby(self, leg_id: str, direction: Direction) -> None: ...

    def play_prompt(self, leg_id: str, prompt: str) -> None: ...


class MixerLobby:
    """:class:`LobbyMedia` over a :class:`MediaControl`: the mixer's ``set_lobby`` (a lobby leg is received
    — DTMF is detected — but neither mixed nor fed the conference) and ``play_prompt``."""

    def __init__(self, media: MediaControl) -> None:
        self.media = media

    def enter_lobby(self, leg_id: str) -> None:
        self.media.set_lobby(leg_id, True)

    def leave_lobby(self, leg_id: str, direction: Direction) -> None:
        self.media.set_lobby(leg_id, False)

    def play_prompt(self, leg_id: str, prompt: str) -> None:
        try:
            self.media.play_prompt(leg_id, prompt, prompt == Prompt.ENTER_PIN)  # only the PIN request repeats
        except (MediaEngineError, KeyError, ValueError, OSError) as exc:  # a missing prompt: the call goes on
            log.warning("event=prompt_failed leg=%s prompt=%s reason=%r", leg_id, prompt, str(exc))


@dataclass(slots=True)
class PlannedConfig:
    pin_timeout: float = 10.0  # per attempt, restarted by each key: no (complete) entry by then is a failure
    max_pin_attempts: int = 3
    bye_delay: float = 2.0  # lets the goodbye prompt play before the BYE


@dataclass(slots=True)
class PlannedOptions:
    """What the focus needs for booked conferences: the bookings and how PINs are checked and prompted."""

    bookings: BookingSource
    wall: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    pins: PinChecker | None = None  # default: InlinePinChecker
    lobby_media: LobbyMedia | None = None  # default: MixerLobby over the focus's media control
    config: PlannedConfig | None = None
    # re-read the bookings and call back on the loop with the outcome (the runtime's index); None: always
    # current
    refresh: Callable[[Callable[[Refreshed], None]], None] | None = None
    # claims a booked URI in the cluster's directory before the first caller opens it (.claims); None: a
    # single node, every claim won at once
    claims: Claimer | None = None
    # the cluster front's addresses: its takeover marker is believed from these only (.claims)
    front: TrustedPeers = field(default_factory=TrustedPeers)


class PlannedFocusConfig(Protocol):
    @property
    def domain(self) -> str: ...

    @property
    def policy(self) -> ConferencePolicy: ...


@dataclass(frozen=True, slots=True)
class BookedConference:
    """A live conference that a booking instantiated, with the booking's keying fields for the key manager."""

    booking: Booking
    conf_id: str
    downlink: DownlinkMode
    rekey: RekeyPolicy


@dataclass(frozen=True, slots=True)
class DialIn:
    """What the focus does with one dial-in: join ``conf`` now, or (``lobby_pid`` set) hold it for a PIN."""

    conf: Conference
    booking: Booking
    lobby_pid: str | None = None
    uri_pin: str | None = None


@dataclass(slots=True)
class _LobbyLeg:
    leg_id: str
    conf_id: str
    booking: Booking
    user: str
    display: str | None
    identity_authenticated: bool
    privacy: bool
    keys: list[str] = field(default_factory=list)  # DTMF keys not yet handled
    digits: str = ""
    failures: int = 0
    deadline: float | None = None
    restart: bool = True  # (re)start the attempt timer at the next timer call
    checking: bool = False
    result: bool | None = None
    pending_pin: str | None = None  # a PIN to check at the next timer call (from the Request-URI)
    bye_at: float | None = None
    bye_reason: str = "wrong PIN"


def booked_policy(booking: Booking, base: ConferencePolicy) -> tuple[str | None, ConferencePolicy]:
    """The owner (the first chair) and the policy of a conference instantiated from *booking*.

    The conference lives for its window: it is not closed when the chair leaves (only when empty), and it
    holds at most ``capacity`` participants (486 beyond); its legs negotiate the booking's audio codecs
    when it names any.
    """
    owner: str | None = None
    moderators: set[str] = set()
    for inv in booking.invitees:
        aor = _aor(inv.uri)
        if aor is None:
            continue
        if inv.role is InviteeRole.CHAIR and owner is None:
            owner = aor
        elif inv.role in (InviteeRole.CHAIR, InviteeRole.MODERATOR):
            moderators.add(aor)
    policy = replace(
        base,
        max_participants=booking.capacity,
        full_status=486,
        close_when_owner_leaves=False,
        close_when_empty=True,
        moderators=base.moderators | frozenset(moderators),
        audio_codecs=booking.audio_codecs or base.audio_codecs,
    )
    return owner, policy


def _aor(uri: str) -> str | None:
    if not uri.lower().startswith(("sip:", "sips:")):
        return None  # tel: invitees cannot be matched to a From
    try:
        return SipUri.parse(uri).aor
    except SipParseError:
        return None


class PlannedConferences(FeatureBase):
    """The booked-conference part of the focus."""

    def __init__(
        self,
        table: LegTable,
        port: FocusPort,
        focus_config: PlannedFocusConfig,
        registry: ConferenceRegistry,
        media: MediaControl,
        inbox: Inbox,
        options: PlannedOptions,
        *,
        locks: ConferenceLocks | None = None,
    ) -> None:
        """*locks*: the conferences an operator locked (a caller still in the lobby is not admitted)."""
        self.table = table
        self.locks = locks
        self.port = port
        self.focus_config = focus_config
        self.registry = registry
        self.inbox = inbox
        self.store = options.bookings
        self.wall = options.wall
        self.pins: PinChecker = options.pins if options.pins is not None else InlinePinChecker()
        self.lobby_media: LobbyMedia = (
            options.lobby_media if options.lobby_media is not None else MixerLobby(media)
        )
        self.config = options.config or PlannedConfig()
        self.refresh = options.refresh
        self.unavailable: int | None = None  # the last re-read failed: the Retry-After of the 503 to answer
        self.claims = BookedClaims(options.claims, inbox, options.front)
        self.booked: dict[str, BookedConference] = {}  # by conf_id
        self.lobby: dict[str, _LobbyLeg] = {}  # by leg_id
        self._lobby_ids = 0

    # ------------------------------------------------------------------ queries

    def owns(self, conf: Conference) -> bool:
        return conf.conf_id in self.booked

    def in_lobby(self, leg_id: str) -> bool:
        return leg_id in self.lobby

    def keying(self, conf_id: str) -> tuple[DownlinkMode, RekeyPolicy] | None:
        b = self.booked.get(conf_id)
        return None if b is None else (b.downlink, b.rekey)

    def _lobby_count(self, conf_id: str) -> int:
        return sum(1 for e in self.lobby.values() if e.conf_id == conf_id)

    # ------------------------------------------------------------------ dial-in

    def _lookup(self, ruri: SipUri, now: datetime) -> tuple[Booking | None, WindowState]:
        booking, state = self.store.window_status(str(ruri), now)
        domain = self.focus_config.domain
        if state is WindowState.UNKNOWN and ruri.user and ruri.host.lower() != domain.lower():
            # addressed to this server by its IP address or another name: the booking names the domain
            booking, state = self.store.window_status(f"sip:{ruri.user}@{domain}", now)
        return booking, state

    def dial_in(
        self,
        ep: SipEndpoint,
        inc: IncomingRequest,
        now: float,
        conf: Conference | None = None,
        *,
        retry: Work | None = None,
        refreshed: bool = False,
    ) -> DialIn | None:
        """Route an initial INVITE to a booked URI (or to a live booked conference ``conf``).

        Returns what to do, or None after answering it (403/404/486) -- or, with *retry* and a booking
        source that can be refreshed (unless *refreshed*: this is the retry), before answering a refusal:
        the bookings are re-read (a booking made moments ago by another process) and *retry* runs at the
        focus's next timer -- or while the booked URI is claimed for this node (.claims), *retry* running
        once the claim is won.  When that re-read found the store unreachable, a dial-in the last bookings
        would refuse is answered 503 with Retry-After (the refusal may be wrong); one they admit goes on
        from memory.
        """
        req = inc.request
        ruri = req.request_uri
        wall = self.wall()
        booked = self.booked.get(conf.conf_id) if conf is not None else None
        if booked is not None:
            booking: Booking | None = booked.booking
            state = booked.booking.state_at(wall)
        else:
            try:
                booking, state = self._lookup(ruri, wall)
            except OSError:  # the store failed: say so rather than 404 a booked conference
                log.exception("event=booking_lookup_failed ruri=%s", ruri)
                self._unavailable_reply(ep, inc, self.unavailable or LOOKUP_RETRY_AFTER, now)
                return None
        if booked is None and state is not WindowState.OPEN and self.refresh is not None:
            if retry is not None and not refreshed:
                deferred = retry

                def on_refreshed(outcome: Refreshed) -> None:
                    self.unavailable = outcome.retry_after
                    self.inbox.post(deferred)

                self.refresh(on_refreshed)
                return None
            if self.unavailable is not None:
                log.info("event=dial_in_refused ruri=%s reason=store_unavailable", ruri)
                self._unavailable_reply(ep, inc, self.unavailable, now)
                return None
        if booking is None or state in (WindowState.UNKNOWN, WindowState.CANCELLED):
            self._reply(ep, inc, 404, "Conference Not Found", now)
            return None
        if state is WindowState.EARLY:
            log.info("event=dial_in_refused booking=%s reason=early", booking.id)
            self._reply(ep, inc, 403, "Conference Not Started", now)
            return None
        if state is WindowState.ENDED:
            log.info("event=dial_in_refused booking=%s reason=ended", booking.id)
            self._reply(ep, inc, 403, "Conference Ended", now)
            return None
        live = conf if conf is not None else self.registry.by_uri(booking.uri)
        if live is not None and live.conf_id not in self.booked:
            live = None  # cannot happen (booked URIs are not ad hoc ones); never join a foreign conference
        if live is None or live.state is not ConferenceState.ACTIVE:
            if live is not None:  # closing: the next instance comes once it is gone
                self._reply(ep, inc, 480, "Conference Closing", now)
                return None
            if not self.claims.admit(ep, inc, booking.uri, now, retry):
                return None  # waits for the claim, or was sent to the node that holds the URI
            try:
                live = self.instantiate(booking, now)
            except ConferenceError as exc:
                self._reply(ep, inc, exc.status, exc.reason, now)
                return None
        if len(live) + self._lobby_count(live.conf_id) >= booking.capacity:
            log.info("event=dial_in_refused booking=%s reason=full", booking.id)
            self._reply(ep, inc, 486, "Conference Full", now)
            return None
        if not booking.has_pin:
            return DialIn(live, booking)
        self._lobby_ids += 1
        uri_pin = pin_from_uri(ruri) if booking.allow_pin_in_uri else None
        return DialIn(live, booking, lobby_pid=f"l{self._lobby_ids}", uri_pin=uri_pin)

    def live_conference(self, booking: Booking) -> Conference | None:
        """The conference instantiated from *booking* (this window of it), while it lives."""
        live = self.registry.by_uri(booking.uri)
        if live is None:
            return None
        booked = self.booked.get(live.conf_id)
        return live if booked is not None and booked.booking.id == booking.id else None

    def instantiate(self, booking: Booking, now: float) -> Conference:
        """Create the booked conference (its URI, the policy of :func:`booked_policy`, the keying fields
        recorded); the first dial-in or the window's dial-out does it.  Raises ``ConferenceError``."""
        owner, policy = booked_policy(booking, self.focus_config.policy)
        live = self.registry.create(now, owner=owner, policy=policy, uri=booking.uri)
        self.booked[live.conf_id] = BookedConference(booking, live.conf_id, booking.downlink, booking.rekey)
        log.info(
            "event=conference_created conf_uri=%s booking=%s owner=%s capacity=%d downlink=%s rekey=%s"
            " pin=%s codecs=%s",
            live.uri,
            booking.id,
            owner,
            booking.capacity,
            booking.downlink,
            booking.rekey,
            booking.has_pin,
            ",".join(booking.audio_codecs) or "default",
        )
        return live

    def answered(self, ep: SipEndpoint, leg: Leg, dial_in: DialIn, inc: IncomingRequest, now: float) -> None:
        """The focus has answered a lobby caller (200 sent): isolate it and ask for the PIN."""
        if dial_in.lobby_pid is None:
            return
        req = inc.request
        privacy = "id" in [p.strip().lower() for p in ",".join(req.headers.get_all("Privacy")).split(";")]
        entry = _LobbyLeg(
            leg.leg_id,
            leg.conf_id,
            dial_in.booking,
            leg.user,
            req.from_.display_unquoted,
            inc.identity is not None,
            privacy,
        )
        self.lobby[leg.leg_id] = entry
        self.lobby_media.enter_lobby(leg.leg_id)
        log.info("event=lobby_entered leg=%s booking=%s uri_pin=%s", leg.leg_id, dial_in.booking.id,
                 dial_in.uri_pin is not None)  # fmt: skip
        if dial_in.uri_pin is not None:
            entry.pending_pin = dial_in.uri_pin
            self._mark_due()
        else:
            self.lobby_media.play_prompt(leg.leg_id, Prompt.ENTER_PIN)
            entry.deadline = now + self.config.pin_timeout
            entry.restart = False

    def forget(self, leg: Leg, now: float) -> None:
        """The leg is being released: a caller still in the lobby leaves it."""
        if self.lobby.pop(leg.leg_id, None) is not None:
            log.info("event=lobby_left leg=%s", leg.leg_id)

    def after_media_update(self, leg: Leg) -> None:
        """A re-INVITE/UPDATE renegotiated the leg's media: a lobby leg stays isolated."""
        if leg.leg_id in self.lobby:
            self.lobby_media.enter_lobby(leg.leg_id)

    # ------------------------------------------------------------------ DTMF and checks

    def on_media_event(self, ev: MediaEvent) -> None:
        """A key pressed by a caller in the PIN lobby."""
        if not isinstance(ev, DtmfReceived):
            return
        entry = self.lobby.get(ev.leg_id)
        if entry is None or not ev.event.end:
            return
        entry.keys.append(ev.event.digit)
        self._mark_due()

    def _mark_due(self) -> None:
        self.inbox.post(self.handle_timer)

    def _submit(self, entry: _LobbyLeg, pin: str) -> None:
        entry.checking = True
        entry.digits = ""
        entry.deadline = None

        def done(ok: bool) -> None:
            entry.result = ok
            entry.checking = False
            self._mark_due()

        self.pins.check(entry.booking, pin, done)

    # ------------------------------------------------------------------ timers

    def next_deadline(self) -> float | None:
        best: float | None = None
        for entry in self.lobby.values():
            if entry.leg_id not in self.table.legs:
                return 0.0  # the caller hung up: clean up
            for d in (entry.deadline, entry.bye_at):
                if d is not None and (best is None or d < best):
                    best = d
        for conf_id in self.booked:
            if self._sweepable(conf_id):
                return 0.0
        return best

    def _sweepable(self, conf_id: str) -> bool:
        conf = self.registry.get(conf_id)
        if conf is None:
            return True
        return conf.state is ConferenceState.ACTIVE and len(conf) == 0 and self._lobby_count(conf_id) == 0

    def handle_timer(self, ep: SipEndpoint, now: float) -> None:
        for entry in list(self.lobby.values()):
            leg = self.table.get(entry.leg_id)
            if leg is None or leg.closing:
                del self.lobby[entry.leg_id]
                log.info("event=lobby_left leg=%s", entry.leg_id)
                continue
            self._step(ep, entry, leg, now)
        for conf_id in [c for c in self.booked if self._sweepable(c)]:
            conf = self.registry.get(conf_id)
            del self.booked[conf_id]
            if conf is not None:  # instantiated, but nobody got in: release it
                self.port.apply(ep, conf, conf.close("empty"), now)
        self.claims.keep(b.booking.uri for b in self.booked.values())

    def _step(self, ep: SipEndpoint, entry: _LobbyLeg, leg: Leg, now: float) -> None:
        if entry.bye_at is not None:
            if now >= entry.bye_at:
                del self.lobby[entry.leg_id]
                log.info("event=lobby_bye leg=%s reason=%r", entry.leg_id, entry.bye_reason)
                self.port.end(ep, leg, entry.bye_reason, now, send_bye=True)
            return
        if entry.pending_pin is not None and not entry.checking:
            pin, entry.pending_pin = entry.pending_pin, None
            self._submit(entry, pin)
        while entry.keys and not entry.checking and entry.result is None:
            key = entry.keys.pop(0)
            entry.restart = True
            if key == "#":
                if entry.digits:
                    self._submit(entry, entry.digits)
            elif key == "*":
                entry.digits = ""
            elif key.isdigit():
                entry.digits += key
                if len(entry.digits) >= MAX_PIN_DIGITS:
                    self._submit(entry, entry.digits)
        if entry.result is not None:
            ok, entry.result = entry.result, None
            entry.keys.clear()
            if ok:
                self._admit(ep, entry, leg, now)
                return
            self._failed(entry, now)
            return
        if entry.checking:
            return
        if entry.restart:
            entry.restart = False
            entry.deadline = now + self.config.pin_timeout
        elif entry.deadline is not None and now >= entry.deadline:
            if entry.digits:
                self._submit(entry, entry.digits)
                if entry.result is not None:  # a synchronous checker answered already
                    self._step(ep, entry, leg, now)
            else:
                log.info("event=pin_timeout leg=%s", entry.leg_id)
                self._failed(entry, now)

    def _failed(self, entry: _LobbyLeg, now: float) -> None:
        entry.failures += 1
        entry.digits = ""
        log.info(
            "event=pin_wrong leg=%s booking=%s attempt=%d", entry.leg_id, entry.booking.id, entry.failures
        )
        if entry.failures >= self.config.max_pin_attempts:
            self.lobby_media.play_prompt(entry.leg_id, Prompt.GOODBYE)
            entry.deadline = None
            entry.bye_at = now + self.config.bye_delay
            entry.bye_reason = "wrong PIN"
            return
        self.lobby_media.play_prompt(entry.leg_id, Prompt.WRONG_PIN)
        entry.deadline = now + self.config.pin_timeout
        entry.restart = False

    def _admit(self, ep: SipEndpoint, entry: _LobbyLeg, leg: Leg, now: float) -> None:
        conf = self.registry.get(entry.conf_id)
        try:
            if conf is None:
                raise ConferenceError("conference is gone", 404)
            if self.locks is not None and self.locks.locked(conf.conf_id):
                raise ConferenceError(LOCKED_REASON, LOCKED_STATUS)
            events: list[ConferenceEvent] = conf.join(
                entry.user,
                now,
                display=entry.display,
                participant_id=leg.pid,
                identity_authenticated=entry.identity_authenticated,
                privacy=entry.privacy,
            )
        except ConferenceError as exc:
            log.info(
                "event=lobby_admit_refused leg=%s status=%d reason=%r", leg.leg_id, exc.status, exc.reason
            )
            self.lobby_media.play_prompt(entry.leg_id, Prompt.FULL if exc.status == 486 else Prompt.GOODBYE)
            entry.deadline = None
            entry.bye_at = now + self.config.bye_delay
            entry.bye_reason = exc.reason
            return
        del self.lobby[entry.leg_id]
        direction = (
            Direction(leg.media.decision.local_direction.value)
            if leg.media.decision is not None
            else Direction.SENDRECV
        )
        self.lobby_media.leave_lobby(leg.leg_id, direction)
        if leg.retrans is None:  # the ACK came while in the lobby: the status on_ack would have set
            want = ParticipantStatus.ON_HOLD if leg.media.on_hold else ParticipantStatus.CONNECTED
            events += conf.set_status(leg.pid, want)
        events += conf.set_media(leg.pid, self.port.media_info(leg))
        log.info("event=pin_accepted leg=%s booking=%s conf=%s", leg.leg_id, entry.booking.id, conf.uri)
        self.port.apply(ep, conf, events, now)
        self.lobby_media.play_prompt(leg.leg_id, Prompt.WELCOME)

    # ------------------------------------------------------------------ helpers

    @staticmethod
    def _reply(ep: SipEndpoint, inc: IncomingRequest, status: int, reason: str, now: float) -> None:
        ep.respond(inc.key, make_response(inc.request, status, reason, to_tag=new_tag()), now)

    @staticmethod
    def _unavailable_reply(ep: SipEndpoint, inc: IncomingRequest, retry_after: int, now: float) -> None:
        """RFC 3261 §21.5.4: the bookings cannot be read now; the caller may try again later."""
        resp = make_response(inc.request, 503, "Booking Service Unavailable", to_tag=new_tag())
        resp.headers.add("Retry-After", str(retry_after))
        ep.respond(inc.key, resp, now)
