"""Booked URIs claimed in the cluster's directory before the first caller opens them (focus/claims.py):
won, lost (302 to the holder), the directory down (503 Retry-After), INVITEs waiting on one claim, the
release when the conference ends."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from helpers import DOMAIN, FOCUS_HOST, UA, Harness, Sent, responses, sdp_offer

from imsconf.booking.model import Booking, Invitee, InviteeRole
from imsconf.booking.store import BookingStore
from imsconf.focus.claims import ClaimFailed, ClaimLost, ClaimRequest, ClaimResult, ClaimWon, redirect_uri
from imsconf.focus.config import FocusConfig
from imsconf.focus.planned import PlannedConferences, PlannedOptions
from imsconf.keys.policy import DownlinkMode
from imsconf.sip.identity import TrustedPeers
from imsconf.sip.message import Response

T0 = datetime(2030, 6, 1, 9, 0, tzinfo=UTC)
URI = f"sip:weekly@{DOMAIN}"


class FakeClaimer:
    """Records the claims; the test answers them (``resolve``) as the runtime would, later."""

    def __init__(self, at_once: ClaimResult | None = None) -> None:
        self.at_once = at_once
        self.requests: list[ClaimRequest] = []
        self.waiting: list[Callable[[ClaimResult], None]] = []
        self.released: list[str] = []

    def claim(self, request: ClaimRequest, done: Callable[[ClaimResult], None]) -> None:
        self.requests.append(request)
        if self.at_once is not None:
            done(self.at_once)
        else:
            self.waiting.append(done)

    def release(self, uri: str) -> None:
        self.released.append(uri)

    def resolve(self, result: ClaimResult) -> None:
        done, self.waiting = self.waiting, []
        for d in done:
            d(result)


class World:
    def __init__(self, tmp: Path, claimer: FakeClaimer | None, node_id: str = "") -> None:
        self.store = BookingStore(tmp / "bookings.db")
        self.claimer = claimer
        self.h = Harness(
            FocusConfig(domain=DOMAIN, media_host="198.18.0.1", node_id=node_id),
            planned=PlannedOptions(self.store, wall=lambda: T0 + timedelta(minutes=5), claims=claimer),
        )
        planned = self.h.focus.planned
        assert planned is not None
        self.planned: PlannedConferences = planned
        self.booking = self.store.create(
            Booking(
                id="b00000001",
                uri=URI,
                start=T0,
                end=T0 + timedelta(hours=1),
                created_at=T0 - timedelta(days=1),
                capacity=5,
                downlink=DownlinkMode.PER_PARTICIPANT,
                invitees=(Invitee("sip:alice@example.net", InviteeRole.CHAIR),),
            )
        )

    def invite(self, ua: UA) -> list[Sent]:
        return self.h.send(ua, ua.invite(f"sip:weekly@{FOCUS_HOST}", sdp_offer()))

    def finals(self, sent: list[Sent]) -> list[Response]:
        return [m for m, _ in responses(sent) if isinstance(m, Response) and m.status >= 200]

    def ack(self, ua: UA, sent: list[Sent]) -> None:
        (ok,) = [r for r in self.finals(sent) if r.status == 200 and r.call_id == ua.call_id]
        ua.learn(ok)
        assert self.h.send(ua, ua.ack()) == []

    def live(self) -> int:
        return sum(1 for c in self.h.focus.registry if c.uri == URI)


def test_single_node_opens_at_once_without_a_claimer(tmp_path: Path) -> None:
    w = World(tmp_path, None)
    sent = w.invite(w.h.ua("alice"))
    assert [r.status for r in w.finals(sent)] == [200]
    assert [r.status for r, _ in responses(sent)] == [200]  # answered at once: no 100 Trying
    assert w.live() == 1


def test_claim_won_opens_the_conference_and_later_callers_join(tmp_path: Path) -> None:
    claimer = FakeClaimer()
    w = World(tmp_path, claimer)
    alice, bob = w.h.ua("alice"), w.h.ua("bob")
    sent = w.invite(alice)
    assert [r.status for r, _ in responses(sent)] == [100]  # held while the directory is asked
    assert claimer.requests == [ClaimRequest(w.booking.uri)] and w.live() == 0
    claimer.resolve(ClaimWon())
    sent = w.h.advance(0)
    assert [r.status for r in w.finals(sent)] == [200]
    assert w.live() == 1
    w.ack(alice, sent)
    # a later caller joins the live conference: no second claim
    assert [r.status for r in w.finals(w.invite(bob))] == [200]
    assert len(claimer.requests) == 1


def test_two_invites_wait_on_one_claim(tmp_path: Path) -> None:
    claimer = FakeClaimer()
    w = World(tmp_path, claimer)
    alice, bob = w.h.ua("alice"), w.h.ua("bob")
    assert [r.status for r, _ in responses(w.invite(alice))] == [100]
    assert [r.status for r, _ in responses(w.invite(bob))] == [100]
    assert len(claimer.requests) == 1  # bob waits on alice's claim
    claimer.resolve(ClaimWon())
    sent = w.h.advance(0)
    finals = w.finals(sent)
    assert [r.status for r in finals] == [200, 200]
    assert w.live() == 1
    (conf,) = [c for c in w.h.focus.registry if c.uri == URI]
    assert len(conf) == 2  # both in one conference


def test_claim_lost_redirects_every_waiting_invite_to_the_holder(tmp_path: Path) -> None:
    claimer = FakeClaimer()
    w = World(tmp_path, claimer)
    alice, bob = w.h.ua("alice"), w.h.ua("bob")
    w.invite(alice)
    w.invite(bob)
    claimer.resolve(ClaimLost("b"))
    finals = w.finals(w.h.advance(0))
    assert [r.status for r in finals] == [302, 302]
    for r in finals:
        assert r.reason == "Moved Temporarily"
        assert r.headers.get("Contact") == f"<sip:weekly@{DOMAIN};node=b>"
    assert w.live() == 0 and claimer.released == []
    # nothing is kept of a lost claim: the next caller asks again (the holder may have died since)
    w.invite(w.h.ua("carol"))
    assert len(claimer.requests) == 2


def test_takeover_marker_is_passed_on_from_a_trusted_peer_only(tmp_path: Path) -> None:
    """The front re-dispatched a caller because the holder is down (X-Imsconf-Takeover): from the front's
    address (front_peers) the claim names that node to be taken over; from anyone else it is ignored."""
    claimer = FakeClaimer()
    w = World(tmp_path, claimer)
    front, phone = w.h.ua("front"), w.h.ua("mallory")
    w.planned.claims.front = TrustedPeers.parse([front.peer.host])
    marker = (("X-Imsconf-Takeover", "a"),)
    w.h.send(phone, phone.invite(f"sip:weekly@{FOCUS_HOST}", sdp_offer(), marker))
    assert claimer.requests == [ClaimRequest(w.booking.uri)]
    claimer.resolve(ClaimLost("a"))
    assert [r.status for r in w.finals(w.h.advance(0))] == [302]
    w.h.send(front, front.invite(f"sip:weekly@{FOCUS_HOST}", sdp_offer(), marker))
    assert claimer.requests[1] == ClaimRequest(w.booking.uri, takeover_from="a")
    claimer.resolve(ClaimWon())
    assert [r.status for r in w.finals(w.h.advance(0))] == [200]
    assert w.live() == 1


def test_directory_down_is_503_with_retry_after(tmp_path: Path) -> None:
    claimer = FakeClaimer()
    w = World(tmp_path, claimer)
    w.invite(w.h.ua("alice"))
    claimer.resolve(ClaimFailed(retry_after=7))
    (final,) = w.finals(w.h.advance(0))
    assert final.status == 503 and final.headers.get("Retry-After") == "7"
    assert w.live() == 0


def test_synchronous_answers_need_no_wait(tmp_path: Path) -> None:
    lost = World(tmp_path / "lost", FakeClaimer(ClaimLost("c")))
    (final,) = lost.finals(lost.invite(lost.h.ua("alice")))
    assert final.status == 302 and final.headers.get("Contact") == f"<sip:weekly@{DOMAIN};node=c>"
    won = World(tmp_path / "won", FakeClaimer(ClaimWon()))
    assert [r.status for r, _ in responses(won.invite(won.h.ua("alice")))] == [200]


def test_cancel_while_waiting_then_won_releases_the_unused_uri(tmp_path: Path) -> None:
    claimer = FakeClaimer()
    w = World(tmp_path, claimer)
    alice = w.h.ua("alice")
    w.invite(alice)
    sent = w.h.send(alice, alice.cancel())
    assert sorted(r.status for r, _ in responses(sent)) == [200, 487]
    claimer.resolve(ClaimWon())
    w.h.advance(0)
    assert w.live() == 0
    assert claimer.released == [w.booking.uri]  # won for nobody: given back


def test_the_uri_is_released_when_the_conference_ends(tmp_path: Path) -> None:
    claimer = FakeClaimer(ClaimWon())
    w = World(tmp_path, claimer)
    alice = w.h.ua("alice")
    sent = w.invite(alice)
    assert [r.status for r in w.finals(sent)] == [200]
    w.ack(alice, sent)
    w.h.advance(1)
    assert claimer.released == []  # live: kept
    w.h.send(alice, alice.bye())
    w.h.advance(1)
    assert w.live() == 0
    assert claimer.released == [w.booking.uri]


def test_redirect_uri() -> None:
    assert redirect_uri("sip:weekly@example.com;transport=tls", "a") == "sip:weekly@example.com;node=a"
    assert redirect_uri("sips:w@[2001:db8::1]:5061", "b2") == "sips:w@[2001:db8::1]:5061;node=b2"


def test_a_cluster_node_names_itself_in_the_contact_of_a_booked_conference(tmp_path: Path) -> None:
    """The front routes a booked conference's in-dialog requests by ``;node=`` (an ad hoc conference's
    user part is its hint already)."""
    w = World(tmp_path, FakeClaimer(ClaimWon()), node_id="a")
    alice = w.h.ua("alice")
    (ok,) = w.finals(w.invite(alice))
    assert (
        ok.status == 200
        and ok.headers.get("Contact") == f"<sip:weekly@{DOMAIN}:5061;transport=tls;node=a>;isfocus"
    )
    _, adhoc = w.h.create(w.h.ua("bob"))
    assert adhoc.startswith("sip:conf-a-") and "node=" not in adhoc
