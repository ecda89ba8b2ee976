"""Focus.shutdown: the drain of a stopping service (BYE to every participant, terminated NOTIFY to every
subscriber, 503 with Retry-After for new calls), and when it is over."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

import pytest
from control_helpers import notifies, ok_all, subscribe
from helpers import DOMAIN, FACTORY, FOCUS_HOST, UA, Harness, answer_to, requests, responses, sdp_offer
from test_planned import T0

from imsconf.app.booking_index import BookingIndex
from imsconf.booking.model import Booking
from imsconf.focus.config import FocusConfig
from imsconf.focus.planned import PlannedOptions, Refreshed
from imsconf.keys.policy import DownlinkMode
from imsconf.sip.message import Request


def _conference_with_subscriber(h: Harness) -> tuple[tuple[UA, UA, UA], str]:
    """alice's conference, bob in it, and bob's watcher in a dialog of its own (carol)."""
    alice, bob, carol = h.ua("alice"), h.ua("bob"), h.ua("bob")
    _, uri = h.create(alice)
    h.join(bob, uri)
    resp, sent = subscribe(h, carol, uri)
    assert resp.status == 200
    ok_all(h, carol, sent)
    ok_all(h, carol, h.take())
    return (alice, bob, carol), uri


def test_shutdown_byes_every_participant_and_terminates_every_subscription(
    caplog: pytest.LogCaptureFixture,
) -> None:
    h = Harness()
    (alice, bob, carol), _ = _conference_with_subscriber(h)
    with caplog.at_level(logging.INFO, logger="imsconf.focus"):
        start = h.focus.shutdown(h.ep, h.now)
    sent = h.take()
    assert (start.calls, start.subscriptions) == (2, 1)
    byes = requests(sent, "BYE")
    assert sorted(p.host for _, p in byes) == sorted([alice.peer.host, bob.peer.host])
    (final,) = notifies(sent, "conference")
    assert final.headers.get("Subscription-State") == "terminated;reason=noresource"
    assert caplog.text.count("event=participant_left") == 2
    assert "reason=shutdown" in caplog.text
    assert h.focus.draining and not h.focus.drained
    # the answers end the drain: the final NOTIFY's 200, then each BYE's
    h.send(carol, answer_to(final))
    assert not h.focus.drained
    h.send(alice, answer_to(next(r for r, p in byes if p.host == alice.peer.host)))
    assert not h.focus.drained
    h.send(bob, answer_to(next(r for r, p in byes if p.host == bob.peer.host)))
    assert h.focus.drained
    assert h.focus.legs == {} and len(h.focus.registry) == 0


def test_new_calls_and_subscriptions_get_503_with_retry_after_while_draining() -> None:
    h = Harness()
    (_, _, _), uri = _conference_with_subscriber(h)
    h.focus.shutdown(h.ep, h.now, retry_after=12)
    h.take()
    dave = h.ua("dave")
    resp = h.final(h.send(dave, dave.invite(FACTORY, sdp_offer())))
    assert resp.status == 503 and resp.headers.get("Retry-After") == "12"
    erin = h.ua("erin")
    sub_resp, _ = subscribe(h, erin, uri)
    assert sub_resp.status == 503 and sub_resp.headers.get("Retry-After") == "12"


def test_shutdown_without_calls_is_drained_at_once() -> None:
    h = Harness()
    assert not h.focus.drained
    start = h.focus.shutdown(h.ep, h.now)
    assert (start.calls, start.subscriptions) == (0, 0)
    assert h.take() == [] and h.focus.drained


def test_unanswered_bye_ends_by_its_transaction_timeout() -> None:
    h = Harness(FocusConfig(domain=DOMAIN, media_host="198.18.0.1", allow_sdes_over_insecure=True))
    alice = h.ua("alice", transport="udp")
    h.create(alice)
    h.focus.shutdown(h.ep, h.now)
    assert requests(h.take(), "BYE") and not h.focus.drained
    h.advance(40.0)  # Timer F (64*T1) answers the BYE with a local 408
    assert h.focus.drained


def test_bye_crossing_the_participants_counts_once_answered() -> None:
    h = Harness()
    alice = h.ua("alice")
    h.create(alice)
    h.focus.shutdown(h.ep, h.now)
    ((bye, _),) = requests(h.take(), "BYE")
    sent = h.send(alice, alice.bye())  # crosses ours: the leg is gone already
    assert [r.status for r, _ in responses(sent)] == [481]
    assert not h.focus.drained
    h.send(alice, answer_to(bye, 481, "Call/Transaction Does Not Exist"))
    assert h.focus.drained


def test_a_dial_in_waiting_for_fresh_bookings_gets_503_when_the_drain_began_meanwhile() -> None:
    index = BookingIndex()
    pending: list[Callable[[Refreshed], None]] = []
    h = Harness(planned=PlannedOptions(index, wall=lambda: T0 + timedelta(minutes=5), refresh=pending.append))
    alice = h.ua("alice")
    h.send(alice, alice.invite(f"sip:weekly@{FOCUS_HOST}", sdp_offer()))
    assert len(pending) == 1  # not answered yet: the bookings are being re-read
    h.focus.shutdown(h.ep, h.now, retry_after=7)
    booking = Booking(
        id="b00000001",
        uri=f"sip:weekly@{DOMAIN}",
        start=T0,
        end=T0 + timedelta(hours=1),
        created_at=T0 - timedelta(days=1),
        capacity=5,
        downlink=DownlinkMode.PER_PARTICIPANT,
    )
    index.replace([booking])
    pending.pop()(Refreshed.current())
    resp = h.final(h.advance(0))
    assert resp.status == 503 and resp.headers.get("Retry-After") == "7"
    assert h.focus.legs == {} and len(h.focus.registry) == 0


def test_a_subscription_in_an_invite_dialog_gets_its_terminated_notify_before_the_bye() -> None:
    h = Harness()
    alice, bob = h.ua("alice"), h.ua("bob")
    _, uri = h.create(alice)
    h.join(bob, uri)
    sent = h.send(bob, bob.subscribe(expires=600))  # in bob's INVITE dialog
    ok_all(h, bob, sent)
    start = h.focus.shutdown(h.ep, h.now)
    assert start.subscriptions == 1
    to_bob = [
        (m.method, m.headers.get("Subscription-State"))
        for m, p in h.take()
        if isinstance(m, Request) and p == bob.peer
    ]
    assert to_bob == [("NOTIFY", "terminated;reason=noresource"), ("BYE", None)]
