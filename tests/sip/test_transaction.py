"""Transaction state machines (RFC 3261 §17, RFC 6026) and the transaction layer, on a fake clock."""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imsconf.sip.dialog import AnswerRetransmitter, Dialog
from imsconf.sip.errors import LocalProtocolError
from imsconf.sip.events import (
    AckReceived,
    Address,
    CancelReceived,
    MessageDiscarded,
    RequestReceived,
    ResponseReceived,
    StrayResponse,
    TransactionEvent,
    TransactionKey,
    TransactionTerminated,
    TransactionTimeout,
    Transmit,
    TransportFailure,
)
from imsconf.sip.headers import Headers
from imsconf.sip.message import Request, Response, parse_message
from imsconf.sip.timers import TimerConfig, TimerName, TimerSet
from imsconf.sip.transaction import (
    TABLES,
    InviteClientTransaction,
    InviteServerTransaction,
    NonInviteClientTransaction,
    NonInviteServerTransaction,
    State,
    TransactionLayer,
    render_tables,
)
from imsconf.sip.transaction_client import TU_STIMULI
from imsconf.sip.util import make_cancel, make_response, new_branch, new_tag, new_via

CLIENT: Address = ("192.0.2.10", 5060)
SERVER: Address = ("192.0.2.20", 5060)
CFG = TimerConfig()


def request(
    method: str = "INVITE",
    *,
    branch: str | None = None,
    transport: str = "UDP",
    cseq: int = 1,
    via: str | None = None,
    from_tag: str = "ctag",
    call_id: str = "call-1@client",
) -> Request:
    h = Headers()
    h.add("Via", via or new_via(transport, CLIENT[0], CLIENT[1], branch=branch or new_branch()))
    h.add("Max-Forwards", "70")
    h.add("From", f"<sip:alice@client.example>;tag={from_tag}")
    h.add("To", "<sip:conf@server.example>")
    h.add("Call-ID", call_id)
    h.add("CSeq", f"{cseq} {method}")
    h.add("Contact", "<sip:alice@192.0.2.10:5060>")
    return Request(method, "sip:conf@server.example", h)


def answer(req: Request, status: int, tag: str | None = "stag") -> Response:
    resp = make_response(req, status, to_tag=None if status == 100 else tag)
    if 200 <= status < 300:
        resp.headers.add("Contact", "<sip:conf@192.0.2.20:5060>")
    return resp


def state(tx: object) -> State:
    """The state, read through a call so that mypy does not narrow it across transitions."""
    value = getattr(tx, "state")  # noqa: B009
    assert isinstance(value, State)
    return value


def drain(outbox: deque[TransactionEvent]) -> list[TransactionEvent]:
    out = list(outbox)
    outbox.clear()
    return out


def sent(events: Iterable[TransactionEvent]) -> list[Transmit]:
    return [e for e in events if isinstance(e, Transmit)]


def statuses(events: Iterable[TransactionEvent]) -> list[int]:
    return [t.message.status for t in sent(events) if isinstance(t.message, Response)]


def to_tu(events: Iterable[TransactionEvent]) -> list[TransactionEvent]:
    return [e for e in events if not isinstance(e, Transmit)]


def run_until(tx: InviteClientTransaction | NonInviteClientTransaction | InviteServerTransaction
              | NonInviteServerTransaction, end: float) -> list[float]:  # fmt: skip
    """Fire timers in deadline order up to *end*; returns the times at which something was retransmitted."""
    times: list[float] = []
    while (d := tx.next_deadline()) is not None and d <= end:
        before = len([e for e in tx.outbox if isinstance(e, Transmit)])
        tx.handle_timer(d)
        if len([e for e in tx.outbox if isinstance(e, Transmit)]) > before:
            times.append(d)
    return times


# ---- timers -------------------------------------------------------------------------------------------


def test_timer_config_values() -> None:
    assert CFG.initial(TimerName.A, False) == 0.5
    assert CFG.initial(TimerName.B, False) == 32.0
    assert CFG.initial(TimerName.D, False) == 32.0 and CFG.initial(TimerName.D, True) == 0.0
    assert CFG.initial(TimerName.I, False) == 5.0 and CFG.initial(TimerName.I, True) == 0.0
    assert CFG.initial(TimerName.J, False) == 32.0 and CFG.initial(TimerName.J, True) == 0.0
    assert CFG.initial(TimerName.K, False) == 5.0 and CFG.initial(TimerName.K, True) == 0.0
    assert CFG.initial(TimerName.L, False) == CFG.initial(TimerName.M, True) == 32.0
    assert CFG.cap(TimerName.A) == float("inf") and CFG.cap(TimerName.E) == 4.0
    custom = TimerConfig(t1=0.1, t2=1.0, t4=2.0)
    assert custom.initial(TimerName.F, False) == pytest.approx(6.4)
    assert custom.initial(TimerName.K, False) == 2.0


@pytest.mark.parametrize("kwargs", [{"t1": 0}, {"t2": -1}, {"t1": 5.0, "t2": 4.0}, {"t4": float("nan")}])
def test_timer_config_rejects_bad_values(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        TimerConfig(**kwargs)


def test_timer_set_orders_due_timers() -> None:
    ts = TimerSet()
    ts.start(TimerName.B, 0.0, 32.0)
    ts.start(TimerName.A, 0.0, 0.5)
    assert ts.next_deadline() == 0.5 and ts.running(TimerName.A)
    assert ts.pop_due(0.4) is None
    assert ts.pop_due(40.0) is TimerName.A
    assert ts.pop_due(40.0) is TimerName.B
    assert ts.next_deadline() is None


# ---- INVITE client --------------------------------------------------------------------------------------


def invite_client(transport: str = "UDP") -> InviteClientTransaction:
    tx = InviteClientTransaction(request(transport=transport), transport, SERVER)
    tx.start(0.0)
    return tx


def test_invite_client_timer_a_doubles_until_timer_b() -> None:
    tx = invite_client()
    first = drain(tx.outbox)
    assert [type(e) for e in first] == [Transmit] and not sent(first)[0].retransmission
    assert sent(first)[0].destination == SERVER and sent(first)[0].key == tx.key
    assert tx.timer_deadline(TimerName.A) == 0.5 and tx.timer_deadline(TimerName.B) == 32.0
    times = run_until(tx, 100.0)
    assert times == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5]  # A: T1, 2T1, 4T1 ... not capped by T2
    events = drain(tx.outbox)
    assert all(t.retransmission for t in sent(events))
    assert to_tu(events) == [TransactionTimeout(tx.key, TimerName.B), TransactionTerminated(tx.key)]
    assert state(tx) is State.TERMINATED and tx.next_deadline() is None


def test_invite_client_reliable_has_no_retransmission() -> None:
    tx = invite_client("TCP")
    assert tx.timer_deadline(TimerName.A) is None
    assert run_until(tx, 100.0) == []
    assert [t.retransmission for t in sent(drain(tx.outbox))] == [False]  # the initial send only
    assert state(tx) is State.TERMINATED


def test_invite_client_reliable_sends_exactly_once() -> None:
    tx = invite_client("TLS")
    run_until(tx, 100.0)
    events = list(tx.outbox)
    assert len(sent(events)) == 1
    assert to_tu(events)[0] == TransactionTimeout(tx.key, TimerName.B)


def test_invite_client_proceeding_then_failure_sends_ack() -> None:
    tx = invite_client()
    drain(tx.outbox)
    ringing = answer(tx.request, 180)
    assert tx.receive(ringing, 0.2)
    assert state(tx) is State.PROCEEDING and tx.next_deadline() is None  # A and B stopped
    assert drain(tx.outbox) == [ResponseReceived(tx.key, ringing)]
    busy = answer(tx.request, 486)
    tx.receive(busy, 5.0)
    assert state(tx) is State.COMPLETED
    events = drain(tx.outbox)
    [ack] = sent(events)
    assert ack.message.method == "ACK" and ack.destination == SERVER  # type: ignore[union-attr]
    assert isinstance(ack.message, Request) and ack.message.to.tag == "stag"
    assert ack.message.top_via.branch == tx.request.top_via.branch
    assert to_tu(events) == [ResponseReceived(tx.key, busy)]
    assert tx.ack is ack.message
    # a retransmitted 486 is absorbed and ACKed again
    tx.receive(busy, 6.0)
    events = drain(tx.outbox)
    assert [t.retransmission for t in sent(events)] == [True] and to_tu(events) == []
    assert sent(events)[0].message is tx.ack
    # Timer D
    assert tx.timer_deadline(TimerName.D) == 5.0 + 32.0
    tx.handle_timer(36.9)
    assert state(tx) is State.COMPLETED
    tx.handle_timer(37.0)
    assert state(tx) is State.TERMINATED
    assert drain(tx.outbox) == [TransactionTerminated(tx.key)]


def test_invite_client_failure_from_calling_over_tcp_terminates_at_once() -> None:
    tx = invite_client("TCP")
    drain(tx.outbox)
    busy = answer(tx.request, 603)
    tx.receive(busy, 1.0)
    events = drain(tx.outbox)
    assert [type(e) for e in events] == [Transmit, ResponseReceived, TransactionTerminated]
    assert state(tx) is State.TERMINATED  # Timer D = 0 on a reliable transport


def test_invite_client_accepted_passes_every_2xx() -> None:
    tx = invite_client()
    drain(tx.outbox)
    ok = answer(tx.request, 200)
    tx.receive(ok, 0.1)
    assert state(tx) is State.ACCEPTED
    assert drain(tx.outbox) == [ResponseReceived(tx.key, ok)]  # no ACK from the transaction for 2xx
    assert tx.timer_deadline(TimerName.M) == pytest.approx(32.1) and tx.timer_deadline(TimerName.A) is None
    # RFC 6026: retransmitted 2xx (and 2xx of other forks) go to the TU; others are absorbed
    fork = answer(tx.request, 200, tag="fork2")
    tx.receive(ok, 1.0)
    tx.receive(fork, 1.1)
    tx.receive(answer(tx.request, 180), 1.2)
    tx.receive(answer(tx.request, 500), 1.3)
    assert drain(tx.outbox) == [ResponseReceived(tx.key, ok), ResponseReceived(tx.key, fork)]
    tx.handle_timer(32.1)
    assert state(tx) is State.TERMINATED
    assert drain(tx.outbox) == [TransactionTerminated(tx.key)]


def test_invite_client_2xx_after_1xx() -> None:
    tx = invite_client()
    tx.receive(answer(tx.request, 183), 0.1)
    tx.receive(answer(tx.request, 200), 0.2)
    assert state(tx) is State.ACCEPTED


def test_invite_client_completed_absorbs_provisional_and_2xx() -> None:
    tx = invite_client()
    tx.receive(answer(tx.request, 404), 0.1)
    drain(tx.outbox)
    tx.receive(answer(tx.request, 180), 0.2)
    tx.receive(answer(tx.request, 200), 0.3)
    assert drain(tx.outbox) == [] and state(tx) is State.COMPLETED


@pytest.mark.parametrize("state_setup", ["calling", "proceeding", "completed"])
def test_invite_client_transport_error(state_setup: str) -> None:
    tx = invite_client()
    if state_setup == "proceeding":
        tx.receive(answer(tx.request, 180), 0.1)
    elif state_setup == "completed":
        tx.receive(answer(tx.request, 480), 0.1)
    drain(tx.outbox)
    tx.transport_error(0.2)
    assert drain(tx.outbox) == [TransportFailure(tx.key), TransactionTerminated(tx.key)]
    assert state(tx) is State.TERMINATED


def test_invite_client_illegal_tu_call_changes_nothing() -> None:
    tx = invite_client()
    deadline = tx.next_deadline()
    with pytest.raises(LocalProtocolError):
        tx.start(0.1)
    assert state(tx) is State.CALLING and tx.next_deadline() == deadline and len(tx.outbox) == 1


def test_client_ignores_response_of_other_method_and_after_termination() -> None:
    tx = invite_client()
    drain(tx.outbox)
    other = answer(tx.request, 200)
    other.headers.set("CSeq", "1 CANCEL")
    assert not tx.receive(other, 0.1)
    tx.transport_error(0.2)
    drain(tx.outbox)
    assert not tx.receive(answer(tx.request, 200), 0.3)
    assert drain(tx.outbox) == []


def test_client_transaction_constructor_checks() -> None:
    with pytest.raises(LocalProtocolError):
        InviteClientTransaction(request("OPTIONS"), "UDP", SERVER)
    with pytest.raises(LocalProtocolError):
        NonInviteClientTransaction(request("INVITE"), "UDP", SERVER)
    with pytest.raises(LocalProtocolError):
        NonInviteClientTransaction(request("ACK"), "UDP", SERVER)
    with pytest.raises(LocalProtocolError):  # RFC 2543 branch: we always send the cookie
        InviteClientTransaction(request(via="SIP/2.0/UDP 192.0.2.10;branch=1234"), "UDP", SERVER)
    bad = request("OPTIONS")
    bad.headers.set("CSeq", "1 INFO")
    with pytest.raises(LocalProtocolError):
        NonInviteClientTransaction(bad, "UDP", SERVER)
    with pytest.raises(LocalProtocolError):
        InviteClientTransaction(request(), "udp", SERVER)
    with pytest.raises(LocalProtocolError):
        InviteClientTransaction(request(), "UDP", ("h", 0))


# ---- non-INVITE client -----------------------------------------------------------------------------------


def test_non_invite_client_timer_e_capped_at_t2_until_f() -> None:
    tx = NonInviteClientTransaction(request("OPTIONS"), "UDP", SERVER)
    tx.start(0.0)
    times = run_until(tx, 100.0)
    assert times == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    events = drain(tx.outbox)
    assert len(sent(events)) == 11
    assert to_tu(events) == [TransactionTimeout(tx.key, TimerName.F), TransactionTerminated(tx.key)]


def test_non_invite_client_proceeding_retransmits_every_t2() -> None:
    tx = NonInviteClientTransaction(request("REFER"), "UDP", SERVER)
    tx.start(0.0)
    tx.handle_timer(0.5)  # E -> 1.5
    trying = answer(tx.request, 100)
    tx.receive(trying, 0.7)
    assert state(tx) is State.PROCEEDING
    assert tx.timer_deadline(TimerName.E) == 1.5  # keeps running
    tx.handle_timer(1.5)
    assert tx.timer_deadline(TimerName.E) == 5.5  # reset to T2
    tx.handle_timer(5.5)
    assert tx.timer_deadline(TimerName.E) == 9.5
    events = drain(tx.outbox)
    assert len(sent(events)) == 4 and to_tu(events) == [ResponseReceived(tx.key, trying)]
    ok = answer(tx.request, 202)
    tx.receive(ok, 9.0)
    assert state(tx) is State.COMPLETED and tx.timer_deadline(TimerName.E) is None
    assert tx.timer_deadline(TimerName.K) == 14.0  # T4
    tx.receive(ok, 9.5)  # absorbed
    tx.receive(answer(tx.request, 180), 9.6)
    assert drain(tx.outbox) == [ResponseReceived(tx.key, ok)]
    tx.handle_timer(14.0)
    assert drain(tx.outbox) == [TransactionTerminated(tx.key)]


def test_non_invite_client_timeout_in_proceeding() -> None:
    tx = NonInviteClientTransaction(request("SUBSCRIBE"), "UDP", SERVER)
    tx.start(10.0)
    tx.receive(answer(tx.request, 100), 10.1)
    run_until(tx, 100.0)
    assert to_tu(drain(tx.outbox))[-2:] == [
        TransactionTimeout(tx.key, TimerName.F),
        TransactionTerminated(tx.key),
    ]


@pytest.mark.parametrize("status", [200, 404])
def test_non_invite_client_reliable_final_terminates_at_once(status: int) -> None:
    tx = NonInviteClientTransaction(request("BYE", transport="TCP"), "TCP", SERVER)
    tx.start(0.0)
    assert tx.timer_deadline(TimerName.E) is None and tx.timer_deadline(TimerName.F) == 32.0
    final = answer(tx.request, status)
    tx.receive(final, 0.3)
    assert drain(tx.outbox)[1:] == [ResponseReceived(tx.key, final), TransactionTerminated(tx.key)]


@pytest.mark.parametrize("provisional", [False, True])
def test_non_invite_client_transport_error(provisional: bool) -> None:
    tx = NonInviteClientTransaction(request("MESSAGE"), "UDP", SERVER)
    tx.start(0.0)
    if provisional:
        tx.receive(answer(tx.request, 100), 0.1)
    drain(tx.outbox)
    tx.transport_error(0.2)
    assert drain(tx.outbox) == [TransportFailure(tx.key), TransactionTerminated(tx.key)]


# ---- INVITE server --------------------------------------------------------------------------------------


def invite_server(transport: str = "UDP", source: Address = CLIENT) -> InviteServerTransaction:
    return InviteServerTransaction(request(transport=transport), transport, source)


def test_invite_server_provisional_resent_on_retransmitted_invite() -> None:
    tx = invite_server()
    assert state(tx) is State.PROCEEDING
    assert tx.receive(tx.request, 0.1)  # nothing sent yet: nothing to resend
    assert drain(tx.outbox) == []
    ringing = answer(tx.request, 180)
    tx.send_response(ringing, 0.2)
    tx.receive(tx.request, 0.3)
    events = drain(tx.outbox)
    assert [(t.message, t.retransmission) for t in sent(events)] == [(ringing, False), (ringing, True)]
    assert all(t.destination == CLIENT for t in sent(events))


def test_invite_server_failure_timer_g_then_h() -> None:
    tx = invite_server()
    busy = answer(tx.request, 486)
    tx.send_response(busy, 0.0)
    assert state(tx) is State.COMPLETED
    assert tx.timer_deadline(TimerName.G) == 0.5 and tx.timer_deadline(TimerName.H) == 32.0
    times = run_until(tx, 100.0)
    assert times == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]  # G doubles, capped at T2
    events = drain(tx.outbox)
    assert all(t.message is busy for t in sent(events))
    assert to_tu(events) == [TransactionTimeout(tx.key, TimerName.H), TransactionTerminated(tx.key)]


def test_invite_server_ack_confirms_and_timer_i() -> None:
    tx = invite_server()
    busy = answer(tx.request, 486)
    tx.send_response(busy, 0.0)
    tx.receive(tx.request, 0.2)  # retransmitted INVITE: final resent
    ack = request("ACK", via=tx.request.headers.get_all("Via")[0])
    tx.receive(ack, 0.6)
    assert state(tx) is State.CONFIRMED
    assert tx.timer_deadline(TimerName.G) is None and tx.timer_deadline(TimerName.H) is None
    assert tx.timer_deadline(TimerName.I) == pytest.approx(5.6)
    tx.receive(ack, 0.7)
    tx.receive(tx.request, 0.8)
    events = drain(tx.outbox)
    assert [t.retransmission for t in sent(events)] == [False, True] and to_tu(events) == []
    tx.handle_timer(5.6)
    assert drain(tx.outbox) == [TransactionTerminated(tx.key)]


def test_invite_server_reliable_ack_terminates_at_once() -> None:
    tx = invite_server("TCP", source=("198.51.100.1", 40123))
    tx.send_response(answer(tx.request, 488), 0.0)
    assert tx.timer_deadline(TimerName.G) is None and tx.timer_deadline(TimerName.H) == 32.0
    assert sent(tx.outbox)[0].destination == ("198.51.100.1", 40123)  # the connection's peer
    tx.receive(request("ACK", transport="TCP", via=tx.request.headers.get_all("Via")[0]), 0.1)
    assert state(tx) is State.TERMINATED


def test_invite_server_accepted_rfc6026() -> None:
    tx = invite_server()
    ok = answer(tx.request, 200)
    tx.send_response(ok, 0.0)
    assert state(tx) is State.ACCEPTED and tx.timer_deadline(TimerName.L) == 32.0
    drain(tx.outbox)
    tx.receive(tx.request, 0.3)  # a retransmitted INVITE is absorbed, not answered
    assert drain(tx.outbox) == []
    tx.send_response(ok, 0.5)  # the TU retransmits its 2xx through the transaction
    assert sent(drain(tx.outbox))[0].message is ok
    ack = request("ACK", via=tx.request.headers.get_all("Via")[0])
    tx.receive(ack, 0.6)
    assert drain(tx.outbox) == [AckReceived(ack, CLIENT, "UDP", tx.key)]
    with pytest.raises(LocalProtocolError):
        tx.send_response(answer(tx.request, 500), 0.7)
    with pytest.raises(LocalProtocolError):
        tx.send_response(answer(tx.request, 180), 0.7)
    assert state(tx) is State.ACCEPTED and drain(tx.outbox) == []
    tx.handle_timer(32.0)
    assert state(tx) is State.TERMINATED


def test_invite_server_rejects_second_final_and_foreign_response() -> None:
    tx = invite_server()
    tx.send_response(answer(tx.request, 404), 0.0)
    with pytest.raises(LocalProtocolError):
        tx.send_response(answer(tx.request, 200), 0.1)
    with pytest.raises(LocalProtocolError):
        tx.send_response(answer(tx.request, 180), 0.1)
    other = answer(request(cseq=7), 180)
    with pytest.raises(LocalProtocolError):
        invite_server().send_response(other, 0.0)
    foreign_via = answer(request(), 180)
    fresh = invite_server()
    with pytest.raises(LocalProtocolError):
        fresh.send_response(foreign_via, 0.0)  # another branch
    assert state(fresh) is State.PROCEEDING and not fresh.outbox


@pytest.mark.parametrize("final", [None, 486])
def test_invite_server_transport_error(final: int | None) -> None:
    tx = invite_server()
    if final:
        tx.send_response(answer(tx.request, final), 0.0)
    drain(tx.outbox)
    tx.transport_error(0.1)
    assert drain(tx.outbox) == [TransportFailure(tx.key), TransactionTerminated(tx.key)]


def test_invite_server_udp_destination_uses_received_and_rport() -> None:
    via = "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKnat;rport=40111;received=203.0.113.5"
    tx = InviteServerTransaction(request(via=via), "UDP", ("203.0.113.5", 40111))
    assert tx.destination == ("203.0.113.5", 40111)


def test_server_transaction_constructor_checks() -> None:
    with pytest.raises(LocalProtocolError):
        InviteServerTransaction(request("BYE"), "UDP", CLIENT)
    with pytest.raises(LocalProtocolError):
        NonInviteServerTransaction(request("INVITE"), "UDP", CLIENT)
    with pytest.raises(LocalProtocolError):
        NonInviteServerTransaction(request("ACK"), "UDP", CLIENT)


# ---- non-INVITE server ----------------------------------------------------------------------------------


def test_non_invite_server_full_path() -> None:
    tx = NonInviteServerTransaction(request("SUBSCRIBE"), "UDP", CLIENT)
    assert state(tx) is State.TRYING
    tx.receive(tx.request, 0.1)  # Trying: absorbed silently
    assert drain(tx.outbox) == []
    trying = answer(tx.request, 100)
    tx.send_response(trying, 0.2)
    assert state(tx) is State.PROCEEDING
    tx.receive(tx.request, 0.3)
    ok = answer(tx.request, 200)
    tx.send_response(ok, 0.4)
    assert state(tx) is State.COMPLETED and tx.timer_deadline(TimerName.J) == pytest.approx(32.4)
    tx.receive(tx.request, 0.5)
    events = drain(tx.outbox)
    assert [(t.message.status, t.retransmission) for t in sent(events)] == [  # type: ignore[union-attr]
        (100, False),
        (100, True),
        (200, False),
        (200, True),
    ]
    with pytest.raises(LocalProtocolError):
        tx.send_response(answer(tx.request, 500), 0.6)
    with pytest.raises(LocalProtocolError):
        tx.send_response(answer(tx.request, 100), 0.6)
    tx.handle_timer(32.4)
    assert drain(tx.outbox) == [TransactionTerminated(tx.key)]


def test_non_invite_server_final_from_trying_over_tls_terminates_at_once() -> None:
    tx = NonInviteServerTransaction(request("BYE", transport="TLS"), "TLS", CLIENT)
    tx.send_response(answer(tx.request, 200), 0.0)
    assert state(tx) is State.TERMINATED


def test_non_invite_server_transport_error() -> None:
    tx = NonInviteServerTransaction(request("OPTIONS"), "UDP", CLIENT)
    tx.send_response(answer(tx.request, 100), 0.0)
    tx.transport_error(0.1)
    assert state(tx) is State.TERMINATED and TransportFailure(tx.key) in tx.outbox


def test_timer_and_network_stimuli_without_row_are_ignored() -> None:
    tx = NonInviteServerTransaction(request("OPTIONS"), "UDP", CLIENT)
    tx.transport_error(0.0)  # nothing sent yet: no row in Trying
    assert state(tx) is State.TRYING and not tx.outbox


def test_every_table_row_targets_a_state_of_its_machine() -> None:
    for table in TABLES.values():
        for state, row in table.items():
            for stimulus, tr in row.items():
                assert tr.target in table, (state, stimulus)
        assert table[State.TERMINATED] == {}
    # the only TU stimuli are the start and the responses
    assert {s.value for s in TU_STIMULI} == {"start", "TU 1xx", "TU 2xx", "TU 300-699", "TU abandon"}


def test_render_tables() -> None:
    text = render_tables()
    assert "Calling     --Timer A-----------> Calling     resend request, start A(double)" in text
    assert "Accepted    --recv ACK----------> Accepted    ACK to TU" in text
    assert "Completed   --Timer J-----------> Terminated  -" in text
    assert text.count("(final)") == 4


# ---- the layer --------------------------------------------------------------------------------------


def tu_events(layer: TransactionLayer) -> list[TransactionEvent]:
    return to_tu(layer.events())


def test_layer_new_invite_auto_trying_and_retransmission() -> None:
    layer = TransactionLayer()
    inv = request()
    layer.receive(inv, CLIENT, "UDP", 0.0)
    events = layer.events()
    assert isinstance(events[0], RequestReceived) and events[0].source == CLIENT
    key = events[0].key
    assert key == TransactionKey(inv.top_via.branch or "", "INVITE", "192.0.2.10:5060")
    [trying] = sent(events)
    assert trying.message.status == 100 and trying.destination == CLIENT  # type: ignore[union-attr]
    layer.receive(inv, CLIENT, "UDP", 0.3)
    again = layer.events()
    assert [(t.message.status, t.retransmission) for t in sent(again)] == [(100, True)]  # type: ignore[union-attr]
    assert to_tu(again) == []
    assert len(layer) == 1 and layer.server(key) is not None


def test_layer_stamps_received_and_rport() -> None:
    layer = TransactionLayer(auto_trying=False)
    inv = request(via="SIP/2.0/UDP 10.0.0.1:5060;rport;branch=z9hG4bKnat1")
    layer.receive(inv, ("203.0.113.9", 31000), "UDP", 0.0)
    [ev] = layer.events()
    assert isinstance(ev, RequestReceived)
    assert ev.request.top_via.params == {"rport": "31000", "branch": "z9hG4bKnat1", "received": "203.0.113.9"}
    layer.send_response(ev.key, answer(ev.request, 480), 0.1)
    [out] = layer.events()
    assert isinstance(out, Transmit) and out.destination == ("203.0.113.9", 31000)
    assert (
        isinstance(out.message, Response) and "received=203.0.113.9" in out.message.headers.get_all("Via")[0]
    )


def test_layer_cancel_matches_invite() -> None:
    layer = TransactionLayer()
    inv = request()
    layer.receive(inv, CLIENT, "UDP", 0.0)
    [req_ev] = tu_events(layer)
    assert isinstance(req_ev, RequestReceived)
    cancel = make_cancel(inv)
    layer.receive(cancel, CLIENT, "UDP", 1.0)
    [cancel_ev] = tu_events(layer)
    assert isinstance(cancel_ev, CancelReceived) and cancel_ev.invite_key == req_ev.key
    assert cancel_ev.key.method == "CANCEL" and cancel_ev.key.branch == req_ev.key.branch
    layer.send_response(cancel_ev.key, answer(cancel_ev.request, 200), 1.0)
    server = layer.server(req_ev.key)
    assert isinstance(server, InviteServerTransaction)
    assert not getattr(server, "has_final_response")  # noqa: B009 - read after each call, not narrowed
    layer.send_response(req_ev.key, answer(req_ev.request, 487), 1.0)
    assert getattr(server, "has_final_response")  # noqa: B009
    assert statuses(layer.events()) == [200, 487]
    # the ACK for the 487 carries the INVITE's branch and lands in the INVITE transaction
    ack = request("ACK", via=inv.headers.get_all("Via")[0])
    layer.receive(ack, CLIENT, "UDP", 1.1)
    assert state(server) is State.CONFIRMED and layer.events() == []
    # a retransmitted CANCEL gets the 200 again
    layer.receive(cancel, CLIENT, "UDP", 1.2)
    assert statuses(layer.events()) == [200]


def test_layer_cancel_without_invite() -> None:
    layer = TransactionLayer()
    layer.receive(make_cancel(request()), CLIENT, "UDP", 0.0)
    [ev] = tu_events(layer)
    assert isinstance(ev, CancelReceived) and ev.invite_key is None


def test_layer_ack_for_2xx() -> None:
    layer = TransactionLayer(auto_trying=False)
    inv = request()
    layer.receive(inv, CLIENT, "UDP", 0.0)
    [ev] = layer.events()
    assert isinstance(ev, RequestReceived)
    layer.send_response(ev.key, answer(ev.request, 200), 0.1)
    layer.events()
    fresh_ack = request("ACK")  # the ACK for a 2xx has its own branch
    layer.receive(fresh_ack, CLIENT, "UDP", 0.2)
    [ack_ev] = layer.events()
    assert isinstance(ack_ev, AckReceived) and ack_ev.key is None
    same_branch_ack = request("ACK", via=inv.headers.get_all("Via")[0])
    layer.receive(same_branch_ack, CLIENT, "UDP", 0.3)
    [ack_ev] = layer.events()
    assert isinstance(ack_ev, AckReceived) and ack_ev.key == ev.key


def test_layer_sent_by_distinguishes_transactions() -> None:
    layer = TransactionLayer(auto_trying=False)
    branch = "z9hG4bKsame"
    layer.receive(request("OPTIONS", branch=branch), CLIENT, "UDP", 0.0)
    other = request("OPTIONS", via=f"SIP/2.0/UDP 192.0.2.99:5060;branch={branch}")
    layer.receive(other, ("192.0.2.99", 5060), "UDP", 0.0)
    assert len([e for e in layer.events() if isinstance(e, RequestReceived)]) == 2
    assert len(layer) == 2


def test_layer_rfc2543_matching() -> None:
    layer = TransactionLayer()
    via = "SIP/2.0/UDP 192.0.2.10:5060;branch=oldstyle1"
    inv = request(via=via)
    layer.receive(inv, CLIENT, "UDP", 0.0)
    [ev] = tu_events(layer)
    assert isinstance(ev, RequestReceived) and ev.key.branch.startswith("rfc2543|")
    layer.receive(inv, CLIENT, "UDP", 0.1)
    assert tu_events(layer) == []  # retransmission absorbed
    layer.send_response(ev.key, answer(inv, 404), 0.2)
    layer.events()
    ack = request("ACK", via=via)
    ack.headers.set("To", "<sip:conf@server.example>;tag=stag")
    layer.receive(ack, CLIENT, "UDP", 0.3)
    server = layer.server(ev.key)
    assert server is not None and state(server) is State.CONFIRMED
    # no branch at all also works
    layer.receive(request("OPTIONS", via="SIP/2.0/UDP 192.0.2.10:5060"), CLIENT, "UDP", 0.4)
    [ev2] = tu_events(layer)
    assert isinstance(ev2, RequestReceived)


def test_layer_client_matching_and_strays() -> None:
    layer = TransactionLayer()
    inv = request()
    tx = layer.send_request(inv, "UDP", SERVER, 0.0)
    assert sent(layer.events())[0].message is inv
    cancel = make_cancel(inv)
    ctx = layer.send_request(cancel, "UDP", SERVER, 0.1)
    layer.events()
    assert ctx.key != tx.key and ctx.key.branch == tx.key.branch
    ok_cancel = answer(cancel, 200)
    layer.receive(ok_cancel, SERVER, "UDP", 0.2)
    assert tu_events(layer) == [ResponseReceived(ctx.key, ok_cancel)]
    terminated = answer(inv, 487)
    layer.receive(terminated, SERVER, "UDP", 0.3)
    events = layer.events()
    assert to_tu(events) == [ResponseReceived(tx.key, terminated)]
    assert sent(events)[0].message.method == "ACK"  # type: ignore[union-attr]
    stray = answer(request(), 200)
    layer.receive(stray, SERVER, "UDP", 0.4)
    assert tu_events(layer) == [StrayResponse(stray, SERVER, "UDP")]
    two_vias = answer(inv, 200)
    two_vias.headers.add("Via", "SIP/2.0/UDP proxy;branch=z9hG4bKp")
    layer.receive(two_vias, SERVER, "UDP", 0.5)
    [discarded] = tu_events(layer)
    assert isinstance(discarded, MessageDiscarded)
    with pytest.raises(LocalProtocolError):
        layer.send_request(inv, "UDP", SERVER, 0.6)  # same branch twice


def test_layer_malformed_request_answered_statelessly() -> None:
    layer = TransactionLayer()
    bad = request("OPTIONS")
    bad.headers.set("CSeq", "1 INFO")
    layer.receive(bad, CLIENT, "UDP", 0.0)
    events = layer.events()
    assert isinstance(events[0], MessageDiscarded)
    [reply] = sent(events)
    assert reply.key is None and reply.message.status == 400  # type: ignore[union-attr]
    assert len(layer) == 0
    no_call_id = request("OPTIONS")
    no_call_id.headers.remove("Call-ID")
    layer.receive(no_call_id, CLIENT, "UDP", 0.0)
    assert [type(e) for e in layer.events()] == [MessageDiscarded]  # cannot be answered
    bad_ack = request("ACK")
    bad_ack.headers.set("CSeq", "1 INVITE")
    layer.receive(bad_ack, CLIENT, "UDP", 0.0)
    assert [type(e) for e in layer.events()] == [MessageDiscarded]


def test_layer_malformed_response_discarded() -> None:
    layer = TransactionLayer()
    resp = answer(request(), 200)
    resp.headers.remove("CSeq")
    layer.receive(resp, SERVER, "UDP", 0.0)
    assert [type(e) for e in layer.events()] == [MessageDiscarded]


def test_layer_deadlines_and_cleanup() -> None:
    layer = TransactionLayer(TimerConfig(t1=0.1, t2=0.4, t4=0.5))
    assert layer.next_deadline() is None
    tx = layer.send_request(request("OPTIONS"), "UDP", SERVER, 0.0)
    layer.receive(request("MESSAGE"), CLIENT, "UDP", 0.05)
    assert layer.next_deadline() == pytest.approx(0.1)
    layer.handle_timer(0.1)
    assert layer.next_deadline() == pytest.approx(0.3)
    received = next(e for e in layer.events() if isinstance(e, RequestReceived))
    server_key = received.key
    layer.send_response(server_key, answer(received.request, 200), 0.2)
    assert len(layer) == 2
    layer.handle_timer(100.0)
    events = layer.events()
    assert TransactionTimeout(tx.key, TimerName.F) in events
    assert TransactionTerminated(server_key) in events and len(layer) == 0
    assert layer.next_deadline() is None and layer.next_event() is None


def test_layer_transport_error_and_unknown_keys() -> None:
    layer = TransactionLayer()
    tx = layer.send_request(request("OPTIONS", transport="TCP"), "TCP", SERVER, 0.0)
    layer.events()
    layer.transport_error(tx.key, 0.1)
    assert layer.events() == [TransportFailure(tx.key), TransactionTerminated(tx.key)]
    assert len(layer) == 0 and layer.client(tx.key) is None
    layer.transport_error(tx.key, 0.2)  # unknown: ignored
    with pytest.raises(LocalProtocolError):
        layer.send_response(tx.key, answer(request(), 200), 0.0)
    with pytest.raises(LocalProtocolError):
        layer.receive(request(), CLIENT, "udp", 0.0)


def test_layer_send_stateless() -> None:
    layer = TransactionLayer()
    ack = request("ACK")
    layer.send_stateless(ack, "UDP", SERVER)
    assert layer.next_event() == Transmit(ack, "UDP", SERVER)


# ---- a client layer and a server layer over a lossy network -----------------------------------------------


@dataclass
class Network:
    """Datagrams in flight between two layers, with a fixed latency and a drop policy."""

    drop: Callable[[int, Request | Response], bool]
    latency: float = 0.05
    in_flight: list[tuple[float, int, str, bytes]] = field(default_factory=list)
    count: int = 0
    dropped: int = 0

    def send(self, now: float, to: str, message: Request | Response) -> None:
        self.count += 1
        if self.drop(self.count, message):
            self.dropped += 1
            return
        self.in_flight.append((now + self.latency, self.count, to, bytes(message)))

    def next_delivery(self) -> float | None:
        return min(self.in_flight)[0] if self.in_flight else None

    def pop_due(self, now: float) -> list[tuple[str, bytes]]:
        due = sorted(d for d in self.in_flight if d[0] <= now)
        self.in_flight = [d for d in self.in_flight if d[0] > now]
        return [(to, data) for _, _, to, data in due]


@dataclass
class Pair:
    """Client UA + server UA cores just smart enough to finish a call, driven by one fake clock."""

    net: Network
    server_status: int = 486
    client: TransactionLayer = field(default_factory=TransactionLayer)
    server: TransactionLayer = field(default_factory=TransactionLayer)
    now: float = 0.0
    client_got: list[Response] = field(default_factory=list)
    server_got: list[Request] = field(default_factory=list)
    acks_at_server: int = 0
    timeouts: list[TransactionEvent] = field(default_factory=list)
    answer_timer: AnswerRetransmitter | None = None
    answer_key: TransactionKey | None = None
    answer_msg: Response | None = None
    invite: Request | None = None

    def pump(self) -> None:
        for layer, side in ((self.client, "client"), (self.server, "server")):
            while (ev := layer.next_event()) is not None:
                self.on_event(side, ev)

    def on_event(self, side: str, ev: TransactionEvent) -> None:
        if isinstance(ev, Transmit):
            self.net.send(self.now, "server" if side == "client" else "client", ev.message)
        elif isinstance(ev, RequestReceived):
            self.server_got.append(ev.request)
            status = self.server_status if ev.request.method == "INVITE" else 200
            resp = answer(ev.request, status, tag=new_tag())
            self.server.send_response(ev.key, resp, self.now)
            if ev.request.method == "INVITE" and status < 300:
                self.answer_timer = AnswerRetransmitter(self.now)
                self.answer_key, self.answer_msg = ev.key, resp
        elif isinstance(ev, ResponseReceived | StrayResponse):
            self.client_got.append(ev.response)
            if ev.response.cseq.method == "INVITE" and 200 <= ev.response.status < 300 and self.invite:
                dialog = Dialog.from_uac(self.invite, ev.response)
                ack = dialog.create_ack(self.invite.cseq.number, via=new_via("UDP", *CLIENT))
                self.client.send_stateless(ack, "UDP", SERVER)
        elif isinstance(ev, AckReceived):
            self.acks_at_server += 1
            if self.answer_timer is not None:
                self.answer_timer.ack_received()
        elif isinstance(ev, TransactionTimeout):
            self.timeouts.append(ev)

    def run(self, first: Request, limit: float = 200.0) -> None:
        if first.method == "INVITE":
            self.invite = first
        self.client.send_request(first, "UDP", SERVER, self.now)
        self.pump()
        while True:
            candidates = [
                d
                for d in (
                    self.client.next_deadline(),
                    self.server.next_deadline(),
                    self.net.next_delivery(),
                    self.answer_timer.next_deadline() if self.answer_timer else None,
                )
                if d is not None
            ]
            if not candidates:
                return
            self.now = min(candidates)
            assert self.now <= limit, "did not settle"
            for to, data in self.net.pop_due(self.now):
                layer = self.server if to == "server" else self.client
                source = CLIENT if to == "server" else SERVER
                layer.receive(parse_message(data), source, "UDP", self.now)
            self.client.handle_timer(self.now)
            self.server.handle_timer(self.now)
            if self.answer_timer and self.answer_timer.handle_timer(self.now):
                assert self.answer_key and self.answer_msg
                if self.server.server(self.answer_key) is not None:
                    self.server.send_response(self.answer_key, self.answer_msg, self.now)
            self.pump()


def drop_first_copies(copies: int) -> Callable[[int, Request | Response], bool]:
    seen: dict[str, int] = {}

    def drop(_: int, msg: Request | Response) -> bool:
        kind = msg.method if isinstance(msg, Request) else str(msg.status)
        seen[kind] = seen.get(kind, 0) + 1
        return seen[kind] <= copies

    return drop


@pytest.mark.parametrize("copies", [0, 1, 2, 3])
def test_pair_invite_rejected_over_lossy_udp(copies: int) -> None:
    pair = Pair(Network(drop_first_copies(copies)), server_status=486)
    pair.run(request())
    finals = [r for r in pair.client_got if r.status >= 200]
    assert [r.status for r in finals] == [486]  # exactly once, whatever was lost
    assert len(pair.server_got) == 1 and pair.timeouts == []
    assert len(pair.client) == len(pair.server) == 0
    assert (pair.net.dropped > 0) == (copies > 0)


@pytest.mark.parametrize("copies", [0, 1, 2])
def test_pair_invite_accepted_over_lossy_udp(copies: int) -> None:
    pair = Pair(Network(drop_first_copies(copies)), server_status=200)
    pair.run(request())
    assert {r.status for r in pair.client_got if r.status >= 200} == {200}
    assert pair.acks_at_server >= 1 and pair.timeouts == []
    assert pair.answer_timer is not None and pair.answer_timer.state.value == "acked"
    assert len(pair.client) == len(pair.server) == 0


@pytest.mark.parametrize("seed", range(12))
def test_pair_random_loss(seed: int) -> None:
    rng = random.Random(seed)
    pair = Pair(Network(lambda _n, _m: rng.random() < 0.3), server_status=603)
    pair.run(request())
    assert [r.status for r in pair.client_got if r.status >= 200] == [603]
    options = Pair(Network(lambda _n, _m: rng.random() < 0.3))
    options.run(request("OPTIONS"))
    assert [r.status for r in options.client_got] == [200] and options.server_got[0].method == "OPTIONS"
    assert len(options.client) == len(options.server) == 0


def test_pair_total_loss_times_out() -> None:
    pair = Pair(Network(lambda _n, _m: True))
    pair.run(request())
    assert [type(t) for t in pair.timeouts] == [TransactionTimeout]
    assert pair.net.count == 7  # INVITE + 6 retransmissions before Timer B


def test_layer_abandon_invite_in_proceeding() -> None:
    layer = TransactionLayer()
    tx = layer.send_request(request(), "UDP", SERVER, 0.0)
    with pytest.raises(LocalProtocolError):
        layer.abandon(tx.key, 0.1)  # Calling: Timer B still guards it
    layer.receive(answer(tx.request, 180), SERVER, "UDP", 0.2)
    layer.events()
    layer.abandon(tx.key, 40.0)
    assert layer.events() == [TransactionTerminated(tx.key)] and len(layer) == 0
    with pytest.raises(LocalProtocolError):
        layer.abandon(tx.key, 41.0)
    other = layer.send_request(request("OPTIONS"), "UDP", SERVER, 0.0)
    with pytest.raises(LocalProtocolError):
        layer.abandon(other.key, 0.1)


def test_small_api_edges() -> None:
    with pytest.raises(LocalProtocolError):
        TransactionKey("", "INVITE")
    tx = invite_client()
    assert "INVITE" in repr(tx) and "Calling" in repr(tx)
    with pytest.raises(LocalProtocolError):
        InviteServerTransaction(request("ACK"), "UDP", CLIENT)
    with pytest.raises(LocalProtocolError):
        NonInviteServerTransaction(request("ACK"), "UDP", CLIENT)


# ---- property: random stimuli never corrupt a machine ------------------------------------------------

OPS = st.lists(
    st.one_of(
        st.tuples(st.just("request"), st.just(0)),
        st.tuples(st.just("ack"), st.just(0)),
        st.tuples(st.just("respond"), st.sampled_from([100, 180, 200, 202, 404, 486, 603])),
        st.tuples(st.just("timer"), st.integers(0, 40)),
        st.tuples(st.just("error"), st.just(0)),
    ),
    max_size=25,
)


@given(ops=OPS, invite_method=st.booleans(), transport=st.sampled_from(["UDP", "TCP"]))
@settings(max_examples=300, deadline=None)
def test_server_machines_survive_any_sequence(
    ops: list[tuple[str, int]], invite_method: bool, transport: str
) -> None:
    req = request("INVITE" if invite_method else "OPTIONS", transport=transport)
    tx: InviteServerTransaction | NonInviteServerTransaction
    if invite_method:
        tx = InviteServerTransaction(req, transport, CLIENT)
    else:
        tx = NonInviteServerTransaction(req, transport, CLIENT)
    ack = request("ACK", via=req.headers.get_all("Via")[0])
    now = 0.0
    finals = 0
    for op, arg in ops:
        before = (state(tx), len(tx.outbox), tx.next_deadline())
        if op == "request":
            tx.receive(req, now)
        elif op == "ack":
            tx.receive(ack, now)
        elif op == "respond":
            try:
                tx.send_response(answer(req, arg), now)
            except LocalProtocolError:
                assert (state(tx), len(tx.outbox), tx.next_deadline()) == before
                continue
            if arg >= 200:
                finals += 1
        elif op == "timer":
            now += arg
            tx.handle_timer(now)
        else:
            tx.transport_error(now)
        if state(tx) is State.TERMINATED:
            assert tx.next_deadline() is None
            assert sum(isinstance(e, TransactionTerminated) for e in tx.outbox) == 1
    # at most one final response, except the 2xx retransmissions the TU may push in Accepted
    final_statuses = {s for s in statuses(tx.outbox) if s >= 200}
    assert len(final_statuses) <= 1 or (all(200 <= s < 300 for s in final_statuses) and finals >= 1)


@given(
    responses=st.lists(
        st.tuples(st.sampled_from([100, 180, 200, 404, 500]), st.integers(0, 10)), max_size=15
    ),
    invite_method=st.booleans(),
    transport=st.sampled_from(["UDP", "TLS"]),
)
@settings(max_examples=300, deadline=None)
def test_client_machines_survive_any_sequence(
    responses: list[tuple[int, int]], invite_method: bool, transport: str
) -> None:
    req = request("INVITE" if invite_method else "OPTIONS", transport=transport)
    tx: InviteClientTransaction | NonInviteClientTransaction
    if invite_method:
        tx = InviteClientTransaction(req, transport, SERVER)
    else:
        tx = NonInviteClientTransaction(req, transport, SERVER)
    tx.start(0.0)
    now = 0.0
    for status, dt in responses:
        now += dt
        tx.handle_timer(now)
        tx.receive(answer(req, status), now)
    tx.handle_timer(now + 1000)
    if state(tx) is State.PROCEEDING and invite_method:
        assert tx.next_deadline() is None  # no timeout in Proceeding: the TU CANCELs, then abandons
        tx.abandon(now + 1000)
    assert state(tx) is State.TERMINATED and tx.next_deadline() is None
    passed = [e.response.status for e in tx.outbox if isinstance(e, ResponseReceived)]
    non2xx_finals = [s for s in passed if s >= 300]
    ok_finals = [s for s in passed if 200 <= s < 300]
    assert len(non2xx_finals) <= 1
    assert not (non2xx_finals and ok_finals)
    if not invite_method:
        assert len(ok_finals) <= 1  # only INVITE passes 2xx retransmissions up (RFC 6026)
    acks = [t for t in sent(tx.outbox) if isinstance(t.message, Request) and t.message.method == "ACK"]
    assert bool(acks) == (invite_method and bool(non2xx_finals))
    if transport == "TLS":
        assert not any(t.retransmission for t in sent(tx.outbox) if isinstance(t.message, Request)
                       and t.message.method != "ACK")  # fmt: skip


def test_layer_lets_an_answered_request_go_and_still_answers_its_retransmissions() -> None:
    """A UDP server transaction lingers 32 s after its final response: the layer keeps the response for
    retransmissions, not the parsed request (docs/decisions/0012-memory-after-load.md)."""
    layer = TransactionLayer(auto_trying=False)
    bye = request("BYE")
    layer.receive(bye, CLIENT, "UDP", 0.0)
    [ev] = tu_events(layer)
    assert isinstance(ev, RequestReceived)
    server = layer.server(ev.key)
    assert server is not None and server.request is ev.request  # until it is answered
    layer.send_response(ev.key, answer(ev.request, 200), 0.1)
    assert statuses(layer.events()) == [200]
    with pytest.raises(LocalProtocolError):
        server.request  # noqa: B018 - released
    assert server.has_final_response and server.method == "BYE"
    layer.receive(bye, CLIENT, "UDP", 0.5)  # a retransmitted BYE gets the same 200 again
    again = sent(layer.events())
    assert [(t.message.status, t.retransmission) for t in again] == [(200, True)]  # type: ignore[union-attr]
    with pytest.raises(LocalProtocolError):
        layer.send_response(ev.key, answer(bye, 500), 0.6)  # a second final response is still refused
