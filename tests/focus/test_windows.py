"""Booking windows at the focus (focus/windows.py), on a fake clock: the dial-out to the roster at the
window's start, the one-minute-left prompt, the close at the end (or after the overrun)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from control_helpers import Phone, answer, drain_notifies, invite_for, ok_all, subscribe
from helpers import DOMAIN, FOCUS_HOST, Harness, RecordingMedia, Sent, requests

from imsconf.app.booking_index import BookingIndex
from imsconf.app.focus_wiring import FocusOptions
from imsconf.booking.model import Booking, Invitee, InviteeRole, hash_pin
from imsconf.conference.model import Conference
from imsconf.conference.participant import Role
from imsconf.focus.claims import Claimer, ClaimLost, ClaimRequest, ClaimResult, ClaimWon
from imsconf.focus.planned import PlannedOptions
from imsconf.focus.routing import Locator, Registered
from imsconf.focus.windows import CLOSE_REASON, WindowConfig, WindowOptions
from imsconf.keys.policy import DownlinkMode
from imsconf.sip.message import Request
from imsconf.sip.peer import Peer
from imsconf.sip.uri import SipUri

T0 = datetime(2030, 6, 1, 9, 0, tzinfo=UTC)  # the window's start
WINDOW = timedelta(minutes=10)
URI = f"sip:weekly@{DOMAIN}"

ALICE = Phone("alice", Peer("tls", "example.net", 5061))  # the chair
BOB = Phone("bob", Peer("tls", "example.net", 5062))
CAROL = Phone("carol", Peer("tls", "example.net", 5063))  # a moderator who refuses the call


class PromptMedia(RecordingMedia):
    """The recording mixer that also records the prompts played."""

    def __init__(self) -> None:
        super().__init__()
        self.prompts: list[tuple[str, str | None, bool]] = []

    def play_prompt(self, leg_id: str, name: str | None, loop: bool = True) -> None:
        self.prompts.append((leg_id, name, loop))


def booking(**kw: object) -> Booking:
    fields: dict[str, object] = {
        "id": "b00000001",
        "uri": URI,
        "start": T0,
        "end": T0 + WINDOW,
        "created_at": T0 - timedelta(days=1),
        "capacity": 5,
        "downlink": DownlinkMode.PER_PARTICIPANT,  # the recording media has no group keying
        "dial_out": True,
        "invitees": (
            Invitee(ALICE.uri(), InviteeRole.CHAIR),
            Invitee(BOB.uri(), InviteeRole.PARTICIPANT),
            Invitee(CAROL.uri(), InviteeRole.MODERATOR),
            Invitee("tel:+4930123456"),  # no gateway: not called
        ),
    }
    fields.update(kw)
    return Booking(**fields)  # type: ignore[arg-type]


class World:
    """A focus whose clock at ``now`` is the wall-clock instant ``T0 + at``."""

    def __init__(
        self,
        index: BookingIndex,
        at: timedelta,
        locator: Locator | None = None,
        claims: Claimer | None = None,
    ) -> None:
        self.index = index
        self.media = PromptMedia()
        holder: list[Harness] = []
        offset = (T0 + at).timestamp() - 1000.0  # the harness starts at now=1000
        self.offset = offset
        planned = PlannedOptions(
            index, wall=lambda: datetime.fromtimestamp(holder[0].now + offset, UTC), claims=claims
        )
        options = FocusOptions(
            planned=planned,
            windows=WindowOptions(index, WindowConfig(poll=2.0, horizon=60.0)),
            wall_clock_offset=offset,
            locator=locator,
        )
        self.h = Harness(control=self.media, options=options)
        holder.append(self.h)

    def until(self, at: timedelta) -> list[Sent]:
        """Run the focus's timers up to the wall-clock instant ``T0 + at``."""
        target = (T0 + at).timestamp() - self.offset
        return self.h.advance(target - self.h.now)

    def conf(self) -> Conference:
        conf = self.h.focus.registry.by_uri(URI)
        assert conf is not None
        return conf

    def leg_of(self, phone: Phone) -> str:
        (leg,) = [leg for leg in self.h.focus.legs.values() if leg.user == f"sip:{phone.user}@example.net"]
        return leg.leg_id


def invites(sent: list[Sent]) -> list[Request]:
    return [r for r, _ in requests(sent, "INVITE")]


def test_dial_out_at_the_start_prompt_a_minute_before_the_end_close_at_the_end(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "imsconf.focus")
    w = World(BookingIndex([booking()]), at=-timedelta(seconds=10))
    h = w.h
    assert invites(w.until(-timedelta(seconds=1))) == []  # nobody is called before the window
    assert h.focus.registry.by_uri(URI) is None
    sent = w.until(timedelta(0))
    assert sorted(r.uri for r in invites(sent)) == [ALICE.uri(), BOB.uri(), CAROL.uri()]
    inv_a, inv_b, inv_c = (invite_for(sent, p) for p in (ALICE, BOB, CAROL))
    assert inv_a.from_.uri.aor == URI and inv_a.to.uri.aor == "sip:alice@example.net"
    conf = w.conf()
    roles = {p.user: p.role for p in conf.participants}
    assert roles == {
        "sip:alice@example.net": Role.OWNER,
        "sip:bob@example.net": Role.PARTICIPANT,
        "sip:carol@example.net": Role.MODERATOR,
    }
    answer(h, ALICE, inv_a)
    answer(h, BOB, inv_b)
    answer(h, CAROL, inv_c, 486, "Busy Here")  # refused: logged, not called again
    assert len(conf) == 2
    watcher = h.ua("alice")  # the chair watches the conference state
    resp, sent = subscribe(h, watcher, URI, expires=3600)
    assert resp.status == 200
    ok_all(h, watcher, sent)

    later = w.until(WINDOW - timedelta(seconds=61))
    assert invites(later) == [] and w.media.prompts == []
    w.until(WINDOW - timedelta(seconds=60))
    legs = sorted([w.leg_of(ALICE), w.leg_of(BOB)])
    assert sorted(w.media.prompts) == [(leg, "one-minute-left", False) for leg in legs]
    assert conf.state.value == "active"
    before = w.until(WINDOW - timedelta(seconds=1))
    assert requests(before, "BYE") == [] and invites(before) == []
    closing = w.until(WINDOW)
    byes = requests(closing, "BYE")
    assert sorted(dest.port for _, dest in byes) == [5061, 5062]
    final = drain_notifies(h, watcher, closing)  # answered as they come: the last one ends it
    assert final and final[-1].headers.get("Subscription-State") == "terminated;reason=noresource"
    assert h.focus.registry.by_uri(URI) is None and h.focus.legs == {}
    log = caplog.text
    assert "event=booking_dial_out_unanswered booking=b00000001 target=" + CAROL.uri() in log
    assert "reason=not-sip" in log  # the tel: invitee
    left = [r.getMessage() for r in caplog.records if "event=participant_left" in r.getMessage()]
    assert [m for m in left if m.endswith(f"reason={CLOSE_REASON}")] and len(left) == 3  # carol refused
    # after the window: no dial-in, no new dial-out
    late = h.ua("bob")
    assert h.call(late, f"sip:weekly@{FOCUS_HOST}").status == 403
    assert invites(w.until(WINDOW + timedelta(minutes=5))) == []


def answer_all(w: World, sent: list[Sent], *phones: Phone) -> None:
    for phone in phones:
        answer(w.h, phone, invite_for(sent, phone))


def test_with_an_overrun_the_close_waits_and_dial_in_stays_refused_after_the_end() -> None:
    w = World(BookingIndex([booking(overrun=2)]), at=-timedelta(seconds=1))
    answer_all(w, w.until(timedelta(0)), ALICE, BOB, CAROL)
    conf = w.conf()
    assert len(conf) == 3
    sent = w.until(WINDOW + timedelta(seconds=30))
    assert requests(sent, "BYE") == [] and w.media.prompts == []
    assert w.h.call(w.h.ua("dave"), URI).status == 403  # dial-in ends with the window, as before
    w.until(WINDOW + timedelta(seconds=60))
    assert len(w.media.prompts) == 3 and {p[1] for p in w.media.prompts} == {"one-minute-left"}
    assert requests(w.until(WINDOW + timedelta(seconds=119)), "BYE") == []
    assert len(requests(w.until(WINDOW + timedelta(minutes=2)), "BYE")) == 3
    assert w.h.focus.registry.get(conf.conf_id) is None


def test_an_invitee_already_in_is_not_called_and_the_window_is_dialled_once() -> None:
    w = World(BookingIndex([booking()]), at=timedelta(0))
    chair = w.h.ua("alice")
    w.h.join(chair, URI)  # the chair dials in at the very start, before the focus's timer
    sent = w.until(timedelta(0))
    assert sorted(r.uri for r in invites(sent)) == [BOB.uri(), CAROL.uri()]
    answer(w.h, BOB, invite_for(sent, BOB))
    answer(w.h, CAROL, invite_for(sent, CAROL), 603, "Decline")
    conf = w.conf()
    w.h.send(chair, chair.bye())
    for leg in list(w.h.focus.legs.values()):  # bob hangs up too: the conference ends, empty
        assert leg.dialog is not None
        w.h.focus.end(w.h.ep, leg, "left", w.h.now, send_bye=False)
    assert w.h.focus.registry.get(conf.conf_id) is None
    assert invites(w.until(timedelta(minutes=5))) == []  # once per window: nobody is called again


def test_a_focus_started_mid_window_dials_the_roster_of_a_conference_not_live() -> None:
    index = BookingIndex([booking()])
    w = World(index, at=timedelta(minutes=4))  # a restart: this focus has no conference of the booking
    sent = w.until(timedelta(minutes=4))
    assert sorted(r.uri for r in invites(sent)) == [ALICE.uri(), BOB.uri(), CAROL.uri()]
    assert invites(w.until(timedelta(minutes=6))) == []


def test_a_booking_that_appears_in_the_index_later_is_dialled_at_its_start() -> None:
    index = BookingIndex()
    w = World(index, at=-timedelta(minutes=5))
    assert invites(w.until(-timedelta(minutes=1))) == []
    index.replace([booking()])  # the runtime re-read the store
    assert invites(w.until(-timedelta(seconds=1))) == []
    assert len(invites(w.until(timedelta(0)))) == 3


def test_without_dial_out_the_window_still_closes_and_a_late_joiner_hears_the_prompt() -> None:
    w = World(BookingIndex([booking(dial_out=False)]), at=timedelta(minutes=1))
    assert invites(w.until(timedelta(minutes=2))) == []
    bob = w.h.ua("bob")
    w.h.join(bob, URI)  # the first dial-in makes the conference
    w.until(WINDOW - timedelta(seconds=60))
    assert w.media.prompts == [(w.leg_of(BOB), "one-minute-left", False)]
    w.until(WINDOW - timedelta(seconds=30))
    carol = w.h.ua("carol")
    w.h.join(carol, URI)  # joins after the prompt: hears it on joining
    assert w.media.prompts[-1] == (w.leg_of(CAROL), "one-minute-left", False)
    assert len(requests(w.until(WINDOW), "BYE")) == 2


def test_a_caller_still_in_the_pin_lobby_gets_bye_at_the_close() -> None:
    w = World(BookingIndex([booking(dial_out=False, pin_hash=hash_pin("2468"))]), at=timedelta(minutes=9))
    w.h.focus.planned.config.pin_timeout = 3600.0  # type: ignore[union-attr]  # keep it waiting there
    caller = w.h.ua("bob")
    w.h.join(caller, URI)  # answered, held in the lobby for the PIN
    leg_id = w.leg_of(BOB)
    assert w.media.prompts == [(leg_id, "enter-pin", True)]
    assert requests(w.until(WINDOW - timedelta(seconds=1)), "BYE") == []
    assert leg_id in w.h.focus.legs and len(w.conf()) == 0  # not a participant: no prompt either
    assert w.media.prompts == [(leg_id, "enter-pin", True)]
    sent = w.until(WINDOW)
    assert [dest.port for _, dest in requests(sent, "BYE")] == [caller.peer.port]
    assert w.h.focus.legs == {} and w.h.focus.registry.by_uri(URI) is None


BOB_AOR = "sip:bob@users.example.com"
BOB_CONTACT = "sip:bob@198.51.100.60:40100;transport=tls"
BOB_FLOW = Peer("tls", "198.51.100.60", 40100, 33)


@dataclass(frozen=True, slots=True)
class Binding:
    uri: SipUri
    path: tuple[str, ...]
    flow: Peer


class OneRegistered:
    """The location service with one registered user (the registrar core implements the same seam)."""

    def lookup(self, aor: str, now: float) -> Sequence[Registered]:
        return [Binding(SipUri.parse(BOB_CONTACT), (), BOB_FLOW)] if aor == BOB_AOR else []


def test_a_registered_invitee_is_called_at_its_binding() -> None:
    invitees = (Invitee(BOB_AOR, InviteeRole.CHAIR),)
    w = World(BookingIndex([booking(invitees=invitees)]), timedelta(0), OneRegistered())
    ((inv, dest),) = requests(w.until(timedelta(0)), "INVITE")
    assert inv.uri == BOB_CONTACT and inv.to.uri.aor == BOB_AOR
    assert dest == BOB_FLOW  # on the connection the REGISTER came over
    assert w.conf().role_of(BOB_AOR) is Role.OWNER


class LaterClaims:
    """A claimer the test answers."""

    def __init__(self) -> None:
        self.asked: list[str] = []
        self.done: list[Callable[[ClaimResult], None]] = []

    def claim(self, request: ClaimRequest, done: Callable[[ClaimResult], None]) -> None:
        self.asked.append(request.uri)
        self.done.append(done)

    def release(self, uri: str) -> None:
        return None


def test_a_cluster_node_dials_out_only_once_it_holds_the_uri(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "imsconf.focus")
    claims = LaterClaims()
    w = World(BookingIndex([booking()]), at=-timedelta(seconds=10), claims=claims)
    assert invites(w.until(timedelta(0))) == []  # the start: the URI is claimed first
    assert claims.asked == [URI] and w.h.focus.registry.by_uri(URI) is None
    claims.done.pop()(ClaimWon())
    sent = w.until(timedelta(seconds=1))
    assert sorted(r.uri for r in invites(sent)) == [ALICE.uri(), BOB.uri(), CAROL.uri()]
    assert len(claims.asked) == 1


def test_a_cluster_node_that_lost_the_claim_does_not_dial_out(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "imsconf.focus")
    claims = LaterClaims()
    w = World(BookingIndex([booking()]), at=-timedelta(seconds=10), claims=claims)
    w.until(timedelta(0))
    claims.done.pop()(ClaimLost("b"))
    assert invites(w.until(timedelta(minutes=1))) == []
    assert w.h.focus.registry.by_uri(URI) is None
    assert "event=booking_dial_out_skipped booking=b00000001 reason=held holder=b" in caplog.text
