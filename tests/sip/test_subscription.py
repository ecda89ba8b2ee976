from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imsconf.sip.errors import LocalProtocolError, SipParseError
from imsconf.sip.subscription import (
    TRANSITIONS,
    EventHeader,
    ExpiresPolicy,
    Reason,
    ResyncRequired,
    SendNotify,
    Subscription,
    SubscriptionEnded,
    SubscriptionError,
    SubState,
    Trigger,
    parse_expires,
)

CONF = EventHeader("conference")


class Clock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def sent(actions: Sequence[object]) -> SendNotify:
    (a,) = actions
    assert isinstance(a, SendNotify)
    return a


def active(now: float, expires: int | None = None, **kw: object) -> Subscription:
    sub = Subscription(CONF, expires, now, **kw)  # type: ignore[arg-type]
    first = sent(sub.notify(b"<full/>", now, full=True))
    assert first.body == b"<full/>" and not first.final
    assert sub.notify_response(200, now) == []
    return sub


# ---------------------------------------------------------------------------------------- headers


@pytest.mark.parametrize(
    ("text", "package", "ev_id", "params"),
    [
        ("conference", "conference", None, ()),
        ("conference;id=42", "conference", "42", ()),
        (
            '  presence.winfo ; id = abc ; foo ; bar="x;y"',
            "presence.winfo",
            "abc",
            (("foo", None), ("bar", '"x;y"')),
        ),
        ("refer;ID=7", "refer", "7", ()),
    ],
)
def test_event_header_parse(
    text: str, package: str, ev_id: str | None, params: tuple[tuple[str, str | None], ...]
) -> None:
    ev = EventHeader.parse(text)
    assert (ev.package, ev.id, ev.params) == (package, ev_id, params)
    assert EventHeader.parse(str(ev)) == ev


@pytest.mark.parametrize(
    "text", ["", "conf erence", "a..b", ".x", "conference;id", "conference;id=1;id=2", 'x;a="b', "x;=1"]
)
def test_event_header_invalid(text: str) -> None:
    with pytest.raises(SipParseError):
        EventHeader.parse(text)


def test_event_header_matching() -> None:
    assert EventHeader.parse("Conference;id=1;x=2").matches(EventHeader("conference", "1"))
    assert not EventHeader("conference", "1").matches(EventHeader("conference"))
    with pytest.raises(ValueError):
        EventHeader("conference", "not a token")
    with pytest.raises(ValueError):
        EventHeader("conference", params=(("id", "1"),))


TOKEN_NODOT = st.text("abcdefghijklmnopqrstuvwxyzABC0123456789-!%*_+`'~", min_size=1, max_size=8)
TOKEN = st.text("abcxyz0123456789-.!%*_+`'~", min_size=1, max_size=8)


@given(
    package=st.lists(TOKEN_NODOT, min_size=1, max_size=3).map(".".join),
    ev_id=st.one_of(st.none(), TOKEN),
    params=st.lists(
        st.tuples(TOKEN.filter(lambda t: t.lower() != "id"), st.one_of(st.none(), TOKEN)), max_size=3
    ),
)
def test_event_header_roundtrip(
    package: str, ev_id: str | None, params: list[tuple[str, str | None]]
) -> None:
    ev = EventHeader(package, ev_id, tuple(params))
    assert EventHeader.parse(str(ev)) == ev


@given(st.text(max_size=30))
def test_event_header_parse_never_crashes(text: str) -> None:
    try:
        EventHeader.parse(text)
    except SipParseError:
        pass


def test_parse_expires() -> None:
    assert parse_expires(" 3600 ") == 3600
    assert parse_expires("0") == 0
    assert parse_expires("99999999999999999999") == 2**32 - 1
    for bad in ("", "-1", "1.5", "ten"):
        with pytest.raises(SipParseError):
            parse_expires(bad)


@given(st.integers(0, 2**40))
def test_parse_expires_numbers(n: int) -> None:
    assert parse_expires(str(n)) == min(n, 2**32 - 1)


# ---------------------------------------------------------------------------------------- expiry policy


def test_policy_defaults_and_bounds() -> None:
    pol = ExpiresPolicy.for_package("conference")
    assert pol.grant(None) == 3600  # RFC 4575 §3.3
    assert pol.grant(0) == 0
    assert pol.grant(100_000) == 7200
    with pytest.raises(SubscriptionError) as exc:
        pol.grant(10)
    assert exc.value.status == 423 and exc.value.headers == (("Min-Expires", "60"),)
    with pytest.raises(ValueError):
        ExpiresPolicy(default=10, minimum=60)


# ---------------------------------------------------------------------------------------- state machine


def test_state_table_is_closed() -> None:
    assert all(state is not SubState.TERMINATED for state, _ in TRANSITIONS)
    assert (SubState.ACTIVE, Trigger.AUTHORIZE) not in TRANSITIONS


def test_active_subscription_and_header_values() -> None:
    clock = Clock()
    sub = Subscription(CONF, 600, clock())
    assert sub.granted_expires == 600 and sub.state is SubState.ACTIVE
    n = sent(sub.notify(b"<full/>", clock(), full=True))
    assert n.subscription_state == "active;expires=600"
    clock.t += 100.4
    sub.notify_response(200, clock())
    n = sent(sub.notify(b"<p1/>", clock()))
    assert n.subscription_state == "active;expires=500"  # rounded up


def test_notifies_are_serialised_and_queued() -> None:
    clock = Clock()
    sub = active(clock())
    assert sent(sub.notify(b"1", clock())).body == b"1"
    assert sub.notify(b"2", clock()) == []
    assert sub.notify(b"3", clock()) == []
    assert sub.outstanding and sub.queued == 2
    assert sent(sub.notify_response(200, clock())).body == b"2"
    assert sent(sub.notify_response(202, clock())).body == b"3"
    assert sub.notify_response(200, clock()) == []
    with pytest.raises(LocalProtocolError):
        sub.notify_response(200, clock())


def test_full_state_supersedes_queue() -> None:
    clock = Clock()
    sub = active(clock())
    sub.notify(b"1", clock())
    sub.notify(b"2", clock())
    sub.notify(b"full", clock(), full=True)
    assert sub.queued == 1
    assert sent(sub.notify_response(200, clock())).body == b"full"


def test_queue_overflow_asks_for_resync() -> None:
    clock = Clock()
    sub = active(clock(), max_queue=2)
    sub.notify(b"1", clock())
    sub.notify(b"2", clock())
    sub.notify(b"3", clock())
    sub.notify(b"4", clock())  # overflow: queue dropped
    assert sub.queued == 0
    assert sub.notify(b"5", clock()) == []  # covered by the full state to come
    assert sub.notify_response(200, clock()) == [ResyncRequired()]
    assert sent(sub.notify(b"full", clock(), full=True)).body == b"full"


def test_refresh_and_expiry_with_fake_clock() -> None:
    clock = Clock()
    sub = active(clock(), 600)
    assert sub.next_deadline() == 1600.0
    clock.t = 1500.0
    assert sub.handle_timer(clock()) == []
    assert sub.refresh(900, clock()) == 900
    assert sub.next_deadline() == 2400.0
    assert sent(sub.notify(b"full", clock(), full=True)).subscription_state == "active;expires=900"
    sub.notify_response(200, clock())
    with pytest.raises(SubscriptionError) as exc:
        sub.refresh(5, clock())
    assert exc.value.status == 423 and sub.next_deadline() == 2400.0  # nothing changed
    clock.t = 2400.0
    final = sent(sub.handle_timer(clock()))
    assert final.final and final.subscription_state == "terminated;reason=timeout"
    assert sub.state is SubState.TERMINATED and sub.next_deadline() is None
    assert sub.notify(b"late", clock()) == []
    assert sub.notify_response(200, clock()) == [SubscriptionEnded(Reason.TIMEOUT)]
    assert sub.ended
    with pytest.raises(SubscriptionError) as exc:
        sub.refresh(600, clock())
    assert exc.value.status == 481


def test_unsubscribe_sends_one_final_notify_with_state() -> None:
    clock = Clock()
    sub = active(clock())
    assert sub.refresh(0, clock()) == 0
    assert sub.state is SubState.TERMINATED and sub.reason is Reason.TIMEOUT
    final = sent(sub.notify(b"full", clock(), full=True))
    assert final.final and final.body == b"full"
    assert final.subscription_state == "terminated;reason=timeout"
    assert sub.notify(b"more", clock()) == []
    assert sub.notify_response(200, clock()) == [SubscriptionEnded(Reason.TIMEOUT)]


def test_fetch_with_expires_zero() -> None:
    clock = Clock()
    sub = Subscription(CONF, 0, clock())
    assert sub.granted_expires == 0 and sub.state is SubState.TERMINATED
    final = sent(sub.notify(b"full", clock(), full=True))
    assert final.final and final.subscription_state == "terminated;reason=timeout"
    assert sub.notify_response(200, clock()) == [SubscriptionEnded(Reason.TIMEOUT)]


def test_terminate_noresource_after_outstanding_notify() -> None:
    clock = Clock()
    sub = active(clock())
    sub.notify(b"1", clock())
    sub.notify(b"2", clock())  # queued; dropped by the termination
    assert sub.terminate(Reason.NORESOURCE, clock(), body=b"closed") == []
    final = sent(sub.notify_response(200, clock()))
    assert final.body == b"closed" and final.subscription_state == "terminated;reason=noresource"
    assert sub.terminate(Reason.DEACTIVATED, clock()) == []  # already terminated
    assert sub.notify_response(500, clock()) == [SubscriptionEnded(Reason.NORESOURCE)]


def test_deactivated_with_retry_after() -> None:
    clock = Clock()
    sub = active(clock())
    final = sent(sub.terminate(Reason.DEACTIVATED, clock(), retry_after=30))
    assert final.subscription_state == "terminated;reason=deactivated;retry-after=30"


@pytest.mark.parametrize("status", [481, 408, 500, 403, 603])
def test_failed_notify_terminates(status: int) -> None:
    clock = Clock()
    sub = active(clock())
    sub.notify(b"1", clock())
    sub.notify(b"2", clock())
    assert sub.notify_response(status, clock()) == [SubscriptionEnded(None)]
    assert sub.state is SubState.TERMINATED and sub.ended and sub.queued == 0
    assert sub.notify(b"3", clock()) == []
    assert sub.handle_timer(clock.t + 10_000) == []


def test_pending_then_authorized() -> None:
    clock = Clock()
    sub = Subscription(CONF, None, clock(), authorized=False)
    n = sent(sub.notify(b"secret state", clock(), full=True))
    assert n.body is None and n.subscription_state == "pending;expires=3600"
    sub.notify_response(200, clock())
    sub.authorize(clock())
    assert sub.state is SubState.ACTIVE
    with pytest.raises(LocalProtocolError):
        sub.authorize(clock())
    assert sent(sub.notify(b"full", clock(), full=True)).subscription_state == "active;expires=3600"


def test_pending_rejected() -> None:
    clock = Clock()
    sub = Subscription(CONF, None, clock(), authorized=False)
    final = sent(sub.terminate(Reason.REJECTED, clock()))
    assert final.subscription_state == "terminated;reason=rejected" and final.body is None
    assert sub.notify_response(200, clock()) == [SubscriptionEnded(Reason.REJECTED)]


def test_pending_expires() -> None:
    clock = Clock()
    sub = Subscription(CONF, 60, clock(), authorized=False)
    final = sent(sub.handle_timer(clock() + 60))
    assert final.subscription_state == "terminated;reason=timeout"


def test_bad_inputs() -> None:
    clock = Clock()
    with pytest.raises(SubscriptionError):
        Subscription(CONF, 1, clock())
    with pytest.raises(ValueError):
        Subscription(CONF, None, clock(), max_queue=0)
    sub = active(clock())
    sub.notify(b"x", clock())
    with pytest.raises(LocalProtocolError):
        sub.notify_response(180, clock())


ACTIONS = st.lists(
    st.one_of(
        st.tuples(st.just("notify"), st.booleans()),
        st.tuples(st.just("respond"), st.sampled_from([200, 481, 408, 500])),
        st.tuples(st.just("tick"), st.integers(0, 400)),
        st.tuples(st.just("refresh"), st.sampled_from([0, 60, 300])),
        st.tuples(st.just("terminate"), st.sampled_from(list(Reason))),
    ),
    max_size=40,
)


@given(ACTIONS)
def test_subscription_invariants(actions: list[tuple[str, object]]) -> None:
    """At most one NOTIFY outstanding; once terminated at most one more NOTIFY, marked final; one end."""
    clock = Clock()
    sub = Subscription(CONF, 300, clock(), max_queue=3)
    outstanding = 0
    finals = ends = 0

    def take(out: Sequence[object]) -> None:
        nonlocal outstanding, finals, ends
        for a in out:
            if isinstance(a, SendNotify):
                outstanding += 1
                assert outstanding == 1
                finals += a.final
                assert a.final == a.subscription_state.startswith("terminated")
            elif isinstance(a, SubscriptionEnded):
                ends += 1

    for kind, arg in actions:
        if kind == "notify":
            take(sub.notify(b"body", clock(), full=bool(arg)))
        elif kind == "respond" and sub.outstanding:
            outstanding -= 1
            take(sub.notify_response(int(arg), clock()))  # type: ignore[call-overload]
        elif kind == "tick":
            clock.t += int(arg)  # type: ignore[call-overload]
            take(sub.handle_timer(clock()))
        elif kind == "refresh":
            try:
                sub.refresh(int(arg), clock())  # type: ignore[call-overload]
            except SubscriptionError as exc:
                assert exc.status == 481 and sub.state is SubState.TERMINATED
        elif kind == "terminate":
            take(sub.terminate(arg, clock()))  # type: ignore[arg-type]
    assert finals <= 1 and ends <= 1
    assert not sub.ended or sub.state is SubState.TERMINATED
