"""Session timers (RFC 4028), 2xx retransmission until ACK (RFC 3261 §13.3.1.4), CANCEL and retransmitted
INVITEs, all on the fake clock."""

from __future__ import annotations

import pytest
from helpers import DOMAIN, FACTORY, Harness, requests, responses, sdp_offer

from imsconf.focus.config import FocusConfig
from imsconf.sip.peer import Peer

TIMER = (("Supported", "timer"),)


def _udp_harness() -> Harness:
    return Harness(FocusConfig(domain=DOMAIN, allow_sdes_over_insecure=True, media_host="198.18.0.1"))


# ---- session timers ---------------------------------------------------------------------------------------


def test_session_expires_below_min_se_gets_422() -> None:
    h = Harness()
    r = h.call(h.ua("alice"), FACTORY, extra=(*TIMER, ("Session-Expires", "60")))
    assert r.status == 422
    assert r.headers.get("Min-SE") == "90"
    assert len(h.focus.registry) == 0
    assert h.media.legs == {}


def test_session_timer_negotiated() -> None:
    h = Harness()
    r = h.call(h.ua("alice"), FACTORY, extra=(*TIMER, ("Session-Expires", "120")))
    assert r.status == 200
    assert r.headers.get("Session-Expires") == "120;refresher=uac"
    assert "timer" in r.headers.tokens("Require")


def test_session_expires_above_our_maximum_is_lowered() -> None:
    h = Harness()
    r = h.call(h.ua("alice"), FACTORY, extra=(*TIMER, ("Session-Expires", "7200")))
    assert r.headers.get("Session-Expires") == "1800;refresher=uac"


def test_supported_timer_without_session_expires_gets_our_interval() -> None:
    h = Harness()
    r = h.call(h.ua("alice"), FACTORY, extra=TIMER)
    assert r.headers.get("Session-Expires") == "1800;refresher=uac"
    assert "timer" in r.headers.tokens("Require")


def test_no_timer_support_no_session_timer() -> None:
    h = Harness()
    r = h.call(h.ua("alice"), FACTORY)
    assert r.headers.get("Session-Expires") is None
    assert r.headers.get("Require") is None
    (leg,) = h.focus.legs.values()
    assert leg.session_deadline is None


def test_session_expires_without_supported_timer_does_not_make_the_uac_refresh() -> None:
    """RFC 4028 §9: without ``Supported: timer`` the UAC cannot be the refresher, and a ``Require: timer``
    must not be sent to it.  The focus does not refresh sessions itself, so it runs no timer then."""
    h = Harness()
    r = h.call(h.ua("alice"), FACTORY, extra=(("Session-Expires", "120"),))
    assert r.status == 200
    assert "timer" not in r.headers.tokens("Require")
    assert "refresher=uac" not in (r.headers.get("Session-Expires") or "")


def test_session_expiry_sends_bye_and_removes_participant() -> None:
    h = Harness()
    alice, bob = h.ua("alice"), h.ua("bob")
    _, uri = h.create(alice)
    h.join(bob, uri, extra=(*TIMER, ("Session-Expires", "120")))
    conf = h.conference(uri)
    assert len(conf) == 2
    assert requests(h.advance(100), "BYE") == []
    assert len(conf) == 2
    sent = h.advance(21)
    ((bye, dest),) = requests(sent, "BYE")
    assert bye.call_id == bob.call_id
    assert dest.conn == bob.peer.conn
    assert len(conf) == 1
    assert conf.participants[0].user == alice.aor
    assert len(h.media.legs) == 1
    assert len(h.focus.legs) == 1
    # a late BYE from bob: the dialog is gone
    assert [r.status for r, _ in responses(h.send(bob, bob.bye()))] == [481]


@pytest.mark.parametrize("method", ["INVITE", "UPDATE"])
def test_refresh_pushes_the_deadline(method: str) -> None:
    h = Harness()
    alice = h.ua("alice")
    h.join(alice, FACTORY, extra=(*TIMER, ("Session-Expires", "120")))
    for _ in range(3):
        assert requests(h.advance(60), "BYE") == []
        data = (
            alice.reinvite(extra=(*TIMER, ("Session-Expires", "120")))
            if method == "INVITE"
            else alice.update(extra=(*TIMER, ("Session-Expires", "120")))
        )
        r = h.final(h.send(alice, data))
        assert r.status == 200
        assert r.headers.get("Session-Expires") == "120;refresher=uac"
        assert "timer" in r.headers.tokens("Require")
        if method == "INVITE":
            h.send(alice, alice.ack())
    assert len(h.focus.legs) == 1
    assert requests(h.advance(100), "BYE") == []
    assert len(requests(h.advance(30), "BYE")) == 1
    assert h.focus.legs == {}


def test_refresh_with_too_small_interval_gets_422_and_changes_nothing() -> None:
    h = Harness()
    alice = h.ua("alice")
    h.join(alice, FACTORY, extra=(*TIMER, ("Session-Expires", "120")))
    (leg,) = h.media.legs.values()
    before = (leg.rx_key, leg.direction, list(h.media.calls))
    r = h.final(
        h.send(
            alice,
            alice.reinvite(
                sdp_offer(direction="sendonly", version=2), extra=(*TIMER, ("Session-Expires", "30"))
            ),
        )
    )
    assert r.status == 422
    assert r.headers.get("Min-SE") == "90"
    assert (leg.rx_key, leg.direction, list(h.media.calls)) == before


# ---- 2xx retransmission (UDP) -----------------------------------------------------------------------------


def _times_of_200(h: Harness, until: float) -> list[float]:
    times: list[float] = []
    start = h.now
    while h.now < start + until:
        d = h.ep.next_deadline()
        if d is None or d > start + until:
            break
        sent = h.advance(d - h.now)
        times += [h.now - start for _ in responses(sent, 200)]
    return times


def test_200_retransmitted_until_ack() -> None:
    h = _udp_harness()
    alice = h.ua("alice", "udp")
    r = h.call(alice, FACTORY)
    assert r.status == 200
    times = _times_of_200(h, 12.0)
    # T1, 2T1, 4T1, then capped at T2 = 4 s: at 0.5, 1.5, 3.5, 7.5, 11.5
    assert times == pytest.approx([0.5, 1.5, 3.5, 7.5, 11.5])
    assert h.send(alice, alice.ack()) == []
    assert responses(h.advance(40), 200) == []
    assert len(h.focus.legs) == 1
    assert requests(h.advance(40), "BYE") == []


def test_retransmitted_200_is_identical_and_goes_to_the_via_address() -> None:
    h = _udp_harness()
    alice = h.ua("alice", "udp")
    r = h.call(alice, FACTORY)
    ((again, dest),) = responses(h.advance(0.5), 200)
    assert bytes(again) == bytes(r)
    assert dest == Peer("udp", alice.peer.host, alice.peer.port)


def test_no_ack_means_bye_and_removal() -> None:
    h = _udp_harness()
    alice, bob = h.ua("alice", "udp"), h.ua("bob", "udp")
    _, uri = h.create(alice)
    r = h.call(bob, uri)
    assert r.status == 200
    conf = h.conference(uri)
    assert len(conf) == 2
    sent = h.advance(31.9)
    assert requests(sent, "BYE") == []
    assert len(conf) == 2
    sent = h.advance(0.2)  # 64*T1 = 32 s
    ((bye, dest),) = requests(sent, "BYE")
    assert bye.call_id == bob.call_id
    assert dest == Peer("udp", bob.peer.host, bob.peer.port)
    assert len(conf) == 1
    assert len(h.media.legs) == 1
    assert responses(h.advance(10), 200) == []


def test_no_ack_over_tls_also_ends_the_call() -> None:
    h = Harness()
    alice = h.ua("alice", "tls")
    r = h.call(alice, FACTORY)
    assert r.status == 200
    assert responses(h.advance(10), 200) == []  # reliable: nothing to retransmit
    sent = h.advance(23)
    assert len(requests(sent, "BYE")) == 1
    assert h.focus.legs == {}
    assert len(h.focus.registry) == 0


# ---- CANCEL and retransmitted INVITE -----------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["udp", "tls"])
def test_cancel_after_answer(transport: str) -> None:
    h = _udp_harness()
    alice = h.ua("alice", transport)
    r = h.call(alice, FACTORY)
    assert r.status == 200
    sent = h.send(alice, alice.cancel())
    assert [(m.status, m.cseq.method) for m, _ in responses(sent)] == [(200, "CANCEL")]
    assert h.send(alice, alice.ack()) == []
    assert len(h.focus.legs) == 1
    conf = next(iter(h.focus.registry))
    assert len(conf) == 1
    # the call goes on
    r2 = h.final(h.send(alice, alice.reinvite(sdp_offer(version=2))))
    assert r2.status == 200


def test_retransmitted_invite_makes_no_second_participant() -> None:
    h = _udp_harness()
    alice = h.ua("alice", "udp")
    r = h.call(alice, FACTORY)
    sent = h.send(alice, alice.last_invite)
    # absorbed by the INVITE server transaction (RFC 6026 Accepted) or answered with the very same 200
    assert all(bytes(m) == bytes(r) for m, _ in responses(sent, 200))
    assert [m for m, _ in responses(sent) if m.status >= 300] == []
    conf = next(iter(h.focus.registry))
    assert len(conf) == 1
    assert len(h.focus.registry) == 1
    assert len(h.media.legs) == 1
    ((again, _),) = responses(h.advance(0.5), 200)
    assert bytes(again) == bytes(r)


def test_retransmitted_join_makes_no_second_participant() -> None:
    h = Harness()
    alice, bob = h.ua("alice"), h.ua("bob")
    _, uri = h.create(alice)
    r = h.call(bob, uri)
    sent = h.send(bob, bob.last_invite)
    assert all(bytes(m) == bytes(r) for m, _ in responses(sent, 200))
    assert len(h.conference(uri)) == 2
    h.send(bob, bob.ack())
    assert len(h.conference(uri)) == 2


# ---- the timer pass: the legs whose deadline came, not every leg -------------------------------------------


def test_a_timer_hands_the_focus_only_the_legs_that_are_due() -> None:
    h = _udp_harness()
    alice = h.ua("alice", "udp")
    _, uri = h.create(alice)
    for n in range(20):  # established calls: no deadline of theirs is near
        h.join(h.ua(f"u{n}", "udp"), uri)
    late = h.ua("late", "udp")
    assert h.call(late, uri).status == 200  # not ACKed: its 2xx is resent at T1
    assert h.focus.table.due(h.now + 0.4) == []
    (due,) = h.focus.table.due(h.now + 0.5)
    assert due.leg_id in h.focus.legs and due.dialog is not None and due.dialog.id.call_id == late.call_id
    h.focus.table.schedule(due)  # as the timer pass does once it has handled the leg
    assert len(responses(h.advance(0.6), 200)) == 1  # the 2xx went out again at T1, once
    assert len(h.focus.legs) == 22


def test_an_overload_shortens_the_ack_wait_of_a_2xx_answered_before_it() -> None:
    from imsconf.sip.overload import Admission, OverloadConfig, Verdict

    h = _udp_harness()
    alice = h.ua("alice", "tls")  # reliable: no retransmission that would bring its leg up before 32 s
    assert h.call(alice, FACTORY).status == 200
    assert requests(h.advance(5.0), "BYE") == []
    h.ep.config.admission = Admission(OverloadConfig(source_rate=1, source_burst=1))
    verdicts = [h.ep.config.admission.new_request("192.0.2.9", "INVITE", h.now) for _ in range(2)]
    assert verdicts[-1] is Verdict.SOURCE_BUSY  # a refusal: the server counts as overloaded for 2 s
    bob = h.ua("bob", "udp")
    assert h.call(bob, FACTORY).status == 200  # its 2xx retransmission makes the focus's timer run
    sent = h.advance(1.0)
    (bye, _), *_ = requests(sent, "BYE")
    assert bye.call_id == alice.call_id  # given up: it waited more than 4 s already
    assert h.ep.counters.get("no_ack_overload") == 1
