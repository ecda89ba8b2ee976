"""Booked conferences at the focus : window, capacity, roles, PIN lobby by DTMF or URI."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from control_helpers import notifies, ok_all, subscribe, users_of
from helpers import DOMAIN, FOCUS_HOST, UA, Harness, Sent, requests, responses, sdp_offer

from imsconf.booking.model import Booking, Invitee, InviteeRole, hash_pin
from imsconf.booking.store import BookingStore
from imsconf.conference.model import Conference
from imsconf.conference.participant import ParticipantStatus, Role
from imsconf.focus.planned import PlannedConferences, PlannedConfig, PlannedOptions, Prompt
from imsconf.keys.policy import DownlinkMode
from imsconf.media.dtmf import DtmfEvent
from imsconf.media.events import DtmfReceived
from imsconf.sdp.direction import Direction

T0 = datetime(2030, 6, 1, 9, 0, tzinfo=UTC)
PIN = "4711"
PIN_HASH = hash_pin(PIN)  # scrypt once for the module


class FakeLobby:
    """Records what the focus asks of the mixer's lobby."""

    def __init__(self) -> None:
        self.inside: set[str] = set()
        self.calls: list[tuple[str, str, str]] = []

    def enter_lobby(self, leg_id: str) -> None:
        self.inside.add(leg_id)
        self.calls.append(("enter", leg_id, ""))

    def leave_lobby(self, leg_id: str, direction: Direction) -> None:
        self.inside.discard(leg_id)
        self.calls.append(("leave", leg_id, direction.value))

    def play_prompt(self, leg_id: str, prompt: str) -> None:
        self.calls.append(("prompt", leg_id, prompt))

    def prompts(self, leg_id: str) -> list[str]:
        return [p for kind, lid, p in self.calls if kind == "prompt" and lid == leg_id]


class World:
    def __init__(self, tmp: Path, *, fake_lobby: bool = True, **booking: object) -> None:
        self.store = BookingStore(tmp / "bookings.db")
        self.wall = T0 + timedelta(minutes=5)
        self.lobby = FakeLobby()
        self.h = Harness(
            planned=PlannedOptions(
                self.store,
                wall=lambda: self.wall,
                lobby_media=self.lobby if fake_lobby else None,
                config=PlannedConfig(pin_timeout=10.0, bye_delay=1.0),
            )
        )
        planned = self.h.focus.planned
        assert planned is not None
        self.planned: PlannedConferences = planned
        self.booking = self.book(**booking)  # type: ignore[arg-type]

    def book(self, uri: str = f"sip:weekly@{DOMAIN}", **kw: object) -> Booking:
        fields: dict[str, object] = {
            "start": T0,
            "end": T0 + timedelta(hours=1),
            "created_at": T0 - timedelta(days=1),
            "capacity": 5,
            # the recording media is a mixer with group keying: per-participant keys keep these tests about
            # dial-in (test_keying covers a booking's group downlink)
            "downlink": DownlinkMode.PER_PARTICIPANT,
            "invitees": (
                Invitee("sip:alice@example.net", InviteeRole.CHAIR),
                Invitee("sip:mod@example.net", InviteeRole.MODERATOR),
                Invitee("sip:bob@example.net", InviteeRole.PARTICIPANT),
            ),
        }
        fields.update(kw)
        b = Booking(id=f"b{len(self.store.list(include_cancelled=True)):08d}", uri=uri, **fields)  # type: ignore[arg-type]
        return self.store.create(b)

    def conf(self) -> Conference:
        conf = self.h.focus.registry.by_uri(self.booking.uri)
        assert conf is not None
        return conf

    def dial(self, ua: UA, ruri: str | None = None) -> int:
        resp = self.h.call(ua, ruri or f"sip:weekly@{FOCUS_HOST}")
        if resp.status == 200:
            assert self.h.send(ua, ua.ack()) == []
        return resp.status

    def key(self, leg_id: str, digits: str) -> list[Sent]:
        conf_id = leg_id.split(".")[0]
        for d in digits:
            self.h.focus.on_media_event(DtmfReceived(leg_id, conf_id, DtmfEvent(d, 100, 10, end=False)))
            self.h.focus.on_media_event(DtmfReceived(leg_id, conf_id, DtmfEvent(d, 100, 10, end=True)))
        return self.h.advance(0)

    def leg_of(self, ua: UA) -> str:
        (leg,) = [
            leg for leg in self.h.focus.legs.values() if leg.dialog and leg.dialog.call_id == ua.call_id
        ]
        return leg.leg_id


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    return tmp_path


# ---------------------------------------------------------------------------------------------- dial-in


def test_first_call_instantiates_booked_conference_later_callers_join(tmp: Path) -> None:
    w = World(tmp)
    alice, bob, carol = w.h.ua("alice"), w.h.ua("bob"), w.h.ua("carol")
    assert w.dial(bob) == 200  # bob before the chair: the conference is created all the same
    conf = w.conf()
    assert conf.uri == w.booking.uri and conf.owner == "sip:alice@example.net"
    assert conf.policy.max_participants == 5 and "sip:mod@example.net" in conf.policy.moderators
    assert w.planned.keying(conf.conf_id) == (w.booking.downlink, w.booking.rekey)
    assert w.dial(alice, f"sip:weekly@{DOMAIN}") == 200
    assert w.dial(carol) == 200
    assert len(w.h.focus.registry) == 1
    roles = {p.user: p.role for p in conf.participants}
    assert roles["sip:alice@example.net"] is Role.OWNER and roles["sip:carol@example.net"] is Role.PARTICIPANT
    assert all(p.status is ParticipantStatus.CONNECTED for p in conf.participants)
    # the chair leaving does not end a booked conference
    w.h.send(alice, alice.bye())
    assert len(conf) == 2 and w.h.focus.registry.get(conf.conf_id) is conf


def test_booked_roster_in_event_package(tmp: Path) -> None:
    w = World(tmp)
    alice, bob = w.h.ua("alice"), w.h.ua("bob")
    w.dial(alice)
    w.dial(bob)
    sent = w.h.send(alice, alice.subscribe())
    assert [r.status for r, _ in responses(sent)] == [200]
    (full,) = notifies(sent, "conference")
    assert sorted(users_of(full.body)) == ["sip:alice@example.net", "sip:bob@example.net"]
    ok_all(w.h, alice, sent)


@pytest.mark.parametrize(
    ("delta", "status", "reason"),
    [
        (timedelta(minutes=-1), 403, "Conference Not Started"),
        (timedelta(hours=1), 403, "Conference Ended"),
        (timedelta(hours=3), 403, "Conference Ended"),
    ],
)
def test_outside_the_window_is_refused(tmp: Path, delta: timedelta, status: int, reason: str) -> None:
    w = World(tmp)
    w.wall = T0 + delta
    resp = w.h.call(w.h.ua("bob"), f"sip:weekly@{FOCUS_HOST}")
    assert (resp.status, resp.reason) == (status, reason)
    assert len(w.h.focus.registry) == 0


def test_window_end_refuses_new_callers_but_keeps_the_conference(tmp: Path) -> None:
    w = World(tmp)
    bob = w.h.ua("bob")
    assert w.dial(bob) == 200
    w.wall = T0 + timedelta(hours=1, seconds=1)
    resp = w.h.call(w.h.ua("carol"), f"sip:weekly@{FOCUS_HOST}")
    assert (resp.status, resp.reason) == (403, "Conference Ended")
    # nor through the conference's own contact URI
    assert bob.remote_target is not None
    resp = w.h.call(w.h.ua("dave"), bob.remote_target)
    assert (resp.status, resp.reason) == (403, "Conference Ended")
    assert len(w.conf()) == 1


def test_cancelled_and_unknown_are_404(tmp: Path) -> None:
    w = World(tmp)
    w.store.cancel(w.booking.id)
    for ruri in (f"sip:weekly@{FOCUS_HOST}", f"sip:nobody@{FOCUS_HOST}", "sip:conf-nothing@x"):
        resp = w.h.call(w.h.ua("bob"), ruri)
        assert (resp.status, resp.reason) == (404, "Conference Not Found"), ruri


def test_capacity_full_is_486(tmp: Path) -> None:
    w = World(tmp, capacity=3, invitees=())
    for name in ("a", "b", "c"):
        assert w.dial(w.h.ua(name)) == 200
    resp = w.h.call(w.h.ua("d"), f"sip:weekly@{FOCUS_HOST}")
    assert resp.status == 486


def test_empty_booked_conference_is_released_and_instantiated_again(tmp: Path) -> None:
    w = World(tmp)
    bob = w.h.ua("bob")
    w.dial(bob)
    first = w.conf().conf_id
    w.h.send(bob, bob.bye())
    w.h.advance(0)
    assert len(w.h.focus.registry) == 0 and not w.planned.booked
    w.dial(w.h.ua("carol"))
    assert w.conf().conf_id != first


def test_refused_offer_releases_the_new_conference(tmp: Path) -> None:
    w = World(tmp)
    resp = w.h.call(w.h.ua("bob"), f"sip:weekly@{FOCUS_HOST}", body=sdp_offer(srtp=False))
    assert resp.status == 488
    w.h.advance(0)
    assert len(w.h.focus.registry) == 0 and not w.planned.booked


# ---------------------------------------------------------------------------------------------- PIN lobby


def test_pin_by_dtmf_admits_after_the_lobby(tmp: Path) -> None:
    w = World(tmp, pin_hash=PIN_HASH)
    bob = w.h.ua("bob")
    assert w.dial(bob) == 200
    conf = w.conf()
    leg = w.leg_of(bob)
    assert len(conf) == 0 and w.planned.in_lobby(leg)  # answered, but not in the roster
    assert leg in w.lobby.inside and w.lobby.prompts(leg) == [Prompt.ENTER_PIN]
    # the lobby caller cannot read the roster nor invite anyone
    sent = w.h.send(bob, bob.subscribe())
    assert [r.status for r, _ in responses(sent)] == [403]
    sent = w.h.send(bob, bob.refer("<sip:eve@198.51.100.99>"))
    assert [r.status for r, _ in responses(sent)] == [403]
    w.key(leg, "9*")  # a false start, cleared
    w.key(leg, PIN + "#")
    assert not w.planned.in_lobby(leg) and leg not in w.lobby.inside
    assert ("leave", leg, "sendrecv") in w.lobby.calls
    assert w.lobby.prompts(leg)[-1] == Prompt.WELCOME
    (p,) = conf.participants
    assert p.user == "sip:bob@example.net" and p.status is ParticipantStatus.CONNECTED
    assert p.media is not None and p.media.srtp
    assert f"{conf.conf_id}.{p.participant_id}" == leg


def test_three_wrong_pins_end_the_call(tmp: Path) -> None:
    w = World(tmp, pin_hash=PIN_HASH)
    bob = w.h.ua("bob")
    w.dial(bob)
    leg = w.leg_of(bob)
    assert requests(w.key(leg, "1111#"), "BYE") == []
    assert requests(w.key(leg, "2222#"), "BYE") == []
    assert requests(w.key(leg, "3333#"), "BYE") == []  # the goodbye prompt plays first
    assert w.lobby.prompts(leg) == [Prompt.ENTER_PIN, Prompt.WRONG_PIN, Prompt.WRONG_PIN, Prompt.GOODBYE]
    out = w.h.advance(1.5)
    ((bye, _),) = requests(out, "BYE")
    assert bye.call_id == bob.call_id
    assert leg not in w.h.focus.legs and not w.planned.lobby
    assert len(w.h.focus.registry) == 0  # nobody got in: the instance is gone


def test_pin_timeouts_count_as_failures(tmp: Path) -> None:
    w = World(tmp, pin_hash=PIN_HASH)
    bob = w.h.ua("bob")
    w.dial(bob)
    leg = w.leg_of(bob)
    w.key(leg, "47")  # digits without '#': checked when the attempt times out
    out = w.h.advance(10.5)
    assert w.lobby.prompts(leg)[-1] == Prompt.WRONG_PIN and requests(out, "BYE") == []
    out = w.h.advance(10.5) + w.h.advance(10.5) + w.h.advance(1.5)
    assert len(requests(out, "BYE")) == 1


def test_pin_in_request_uri_when_allowed(tmp: Path) -> None:
    w = World(tmp, pin_hash=PIN_HASH, allow_pin_in_uri=True)
    bob, carol = w.h.ua("bob"), w.h.ua("carol")
    assert w.dial(bob, f"sip:weekly@{FOCUS_HOST};pin={PIN}") == 200
    w.h.advance(0)
    assert [p.user for p in w.conf().participants] == ["sip:bob@example.net"]
    assert w.lobby.prompts(w.leg_of(bob)) == [Prompt.WELCOME]
    # a wrong URI PIN leaves the caller in the lobby, asked again
    w.dial(carol, f"sip:weekly@{FOCUS_HOST};pin=0000")
    w.h.advance(0)
    assert w.planned.in_lobby(w.leg_of(carol)) and len(w.conf()) == 1


def test_pin_in_request_uri_ignored_unless_allowed(tmp: Path) -> None:
    w = World(tmp, pin_hash=PIN_HASH)
    bob = w.h.ua("bob")
    w.dial(bob, f"sip:weekly@{FOCUS_HOST};pin={PIN}")
    w.h.advance(0)
    assert w.planned.in_lobby(w.leg_of(bob)) and len(w.conf()) == 0


def test_contact_uri_does_not_bypass_the_pin(tmp: Path) -> None:
    w = World(tmp, pin_hash=PIN_HASH)
    bob, eve = w.h.ua("bob"), w.h.ua("eve")
    w.dial(bob)
    assert bob.remote_target is not None  # the conference's contact, learnt before any PIN
    assert w.dial(eve, bob.remote_target) == 200
    assert w.planned.in_lobby(w.leg_of(eve)) and len(w.conf()) == 0


def test_lobby_counts_against_capacity(tmp: Path) -> None:
    w = World(tmp, pin_hash=PIN_HASH, capacity=2, invitees=())
    w.dial(w.h.ua("a"))
    w.dial(w.h.ua("b"))
    assert w.h.call(w.h.ua("c"), f"sip:weekly@{FOCUS_HOST}").status == 486


def test_lobby_caller_hanging_up_releases_everything(tmp: Path) -> None:
    w = World(tmp, pin_hash=PIN_HASH)
    bob = w.h.ua("bob")
    w.dial(bob)
    w.h.send(bob, bob.bye())
    w.h.advance(0)
    assert not w.planned.lobby and len(w.h.focus.registry) == 0 and not w.h.media.legs


def test_mixer_lobby_survives_reinvite(tmp: Path) -> None:
    """Without a fake lobby: the focus's MixerLobby over the recording media (its set_lobby)."""
    w = World(tmp, fake_lobby=False, pin_hash=PIN_HASH)
    bob = w.h.ua("bob")
    w.dial(bob)
    leg = w.leg_of(bob)
    assert leg in w.h.media.lobby
    resp = w.h.final(w.h.send(bob, bob.reinvite(sdp_offer())))
    assert resp.status == 200
    w.h.send(bob, bob.ack())
    assert leg in w.h.media.lobby  # still out of the mix
    w.key(leg, PIN + "#")
    assert leg not in w.h.media.lobby
    assert w.h.media.legs[leg].direction is Direction.SENDRECV
    assert [p.status for p in w.conf().participants] == [ParticipantStatus.CONNECTED]


def test_executor_pin_checker_answers_on_the_loop_off_it() -> None:
    import asyncio

    from imsconf.app.pins import ExecutorPinChecker

    booking = Booking(
        id="thread0001",
        uri=f"sip:weekly@{DOMAIN}",
        start=T0,
        end=T0 + timedelta(hours=1),
        created_at=T0,
        pin_hash=PIN_HASH,
    )

    async def run() -> list[bool]:
        got: list[bool] = []
        answered = asyncio.Event()

        def done(ok: bool) -> None:
            got.append(ok)
            answered.set()

        checker = ExecutorPinChecker(asyncio.get_running_loop())
        checker.check(booking, PIN, done)
        checker.check(booking, "0000", done)
        assert got == []  # not on the loop
        await asyncio.wait_for(answered.wait(), 5)
        while len(got) < 2:
            await asyncio.sleep(0.01)
        return got

    assert sorted(asyncio.run(run())) == [False, True]


def test_inbox_wakes_the_driver_for_work_without_a_sip_event() -> None:
    from imsconf.focus.legs import Inbox

    woke: list[bool] = []
    ran: list[float] = []
    inbox = Inbox(lambda: woke.append(True))
    assert inbox.next_deadline() is None
    inbox.post(lambda ep, now: ran.append(now))
    assert woke == [True] and inbox.next_deadline() == 0.0
    h = Harness()
    inbox.run(h.ep, 5.0)
    assert ran == [5.0] and inbox.next_deadline() is None


def test_out_of_dialog_subscribe_to_the_booked_uri_reaches_the_live_conference(tmp: Path) -> None:
    """A booked conference keeps its chosen URI: an out-of-dialog SUBSCRIBE to it (at the domain or at our
    address) finds the running conference, like one to its conf-<id> Contact."""
    w = World(tmp)
    alice = w.h.ua("alice")
    w.dial(alice)
    for target in (f"sip:weekly@{FOCUS_HOST}", f"sip:weekly@{DOMAIN}"):
        watcher = w.h.ua("alice")  # the same user from another device: a participant may subscribe
        resp, sent = subscribe(w.h, watcher, target)
        assert resp.status == 200, (target, resp.status, resp.reason)
        (full,) = notifies(sent, "conference")
        assert users_of(full.body) == ["sip:alice@example.net"]
        ok_all(w.h, watcher, sent)
