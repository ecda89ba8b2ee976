"""Admission of new requests under load (imsconf.sip.overload) and how the endpoint applies it."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imsconf.sip.auth import DigestAuthenticator
from imsconf.sip.endpoint import AuthThrottle, EndpointConfig, NullApplication, SipEndpoint
from imsconf.sip.message import Response, parse_message
from imsconf.sip.overload import Admission, OverloadConfig, Verdict
from imsconf.sip.peer import Peer

FLOODER = Peer("udp", "192.0.2.66", 5060)
PHONE = Peer("udp", "192.0.2.7", 5062)


def _invite(n: int, peer: Peer, *, branch: str | None = None, to_tag: str = "") -> bytes:
    to = "<sip:conf@example.net>" + (f";tag={to_tag}" if to_tag else "")
    return (
        "INVITE sip:conference-factory@example.net SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {peer.host}:{peer.port};branch={branch or f'z9hG4bK-ov{n}'};rport\r\n"
        f"From: <sip:u{n}@example.net>;tag=f{n}\r\n"
        f"To: {to}\r\n"
        f"Call-ID: ov-{n}@{peer.host}\r\n"
        "CSeq: 1 INVITE\r\n"
        f"Contact: <sip:u{n}@{peer.host}:{peer.port}>\r\n"
        "Max-Forwards: 70\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def _answers(ep: SipEndpoint) -> list[tuple[Response, Peer]]:
    out: list[tuple[Response, Peer]] = []
    for data, peer in ep.take_outbox():
        msg = parse_message(data)
        if isinstance(msg, Response):
            out.append((msg, peer))
    return out


def test_call_budget_then_busy_then_refilled() -> None:
    adm = Admission(OverloadConfig(invite_rate=10, invite_burst=3, source_rate=0))
    got = [adm.new_request("h", "INVITE", 0.0) for _ in range(5)]
    assert got == [Verdict.ADMIT] * 3 + [Verdict.BUSY] * 2
    assert adm.new_request("h", "OPTIONS", 0.0) is Verdict.ADMIT  # only INVITEs take call tokens
    assert adm.new_request("h", "INVITE", 0.1) is Verdict.ADMIT  # 0.1 s at 10/s: one token back
    assert adm.new_request("h", "INVITE", 0.1) is Verdict.BUSY
    assert adm.counters["busy_503"] == 3


def test_source_over_its_rate_is_held_to_it_and_others_are_not() -> None:
    adm = Admission(OverloadConfig(invite_rate=0, source_rate=5, source_burst=5))
    assert [adm.new_request("a", "INVITE", 0.0) for _ in range(6)] == [Verdict.ADMIT] * 5 + [
        Verdict.SOURCE_BUSY
    ]
    assert adm.new_request("b", "INVITE", 0.0) is Verdict.ADMIT  # other sources are not affected
    assert adm.new_request("a", "OPTIONS", 0.2) is Verdict.ADMIT  # 0.2 s at 5/s: one token back
    assert adm.counters["source_busy_503"] == 1
    assert adm.log_due("a", 0.0) and not adm.log_due("a", 5.0) and adm.log_due("a", 10.0)


def test_exempt_sources_have_no_source_limit() -> None:
    adm = Admission(
        OverloadConfig(invite_rate=0, source_rate=1, source_burst=1), exempt=lambda h: h == "proxy"
    )
    assert all(adm.new_request("proxy", "INVITE", 0.0) is Verdict.ADMIT for _ in range(100))


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="invite_rate"):
        OverloadConfig(invite_rate=-1)
    with pytest.raises(ValueError, match="retry_after"):
        OverloadConfig(retry_after=0)


@given(st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.floats(0, 0.5)), max_size=200))
def test_never_more_calls_than_burst_plus_rate_times_time(events: list[tuple[str, float]]) -> None:
    cfg = OverloadConfig(invite_rate=20, invite_burst=5, source_rate=0)
    adm = Admission(cfg)
    now, admitted = 0.0, 0
    for host, step in events:
        now += step
        admitted += adm.new_request(host, "INVITE", now) is Verdict.ADMIT
    assert admitted <= cfg.invite_burst + cfg.invite_rate * now + 1e-6


def _endpoint(**kw: object) -> SipEndpoint:
    cfg = EndpointConfig(local={"udp": ("198.18.0.1", 5060)}, **kw)  # type: ignore[arg-type]
    return SipEndpoint(cfg, NullApplication())


def test_over_budget_invite_gets_a_stateless_503_with_retry_after_and_rport() -> None:
    ep = _endpoint(admission=Admission(OverloadConfig(invite_rate=1, invite_burst=1, source_rate=0)))
    ep.receive_datagram(_invite(1, PHONE), PHONE, 1.0)
    first = _answers(ep)
    assert [r.status for r, _ in first] == [404]  # admitted: the application answered
    ep.receive_datagram(_invite(2, PHONE), PHONE, 1.0)
    ((busy, dest),) = _answers(ep)
    assert busy.status == 503 and busy.headers.get("Retry-After") == "5"
    assert (dest.host, dest.port) == (PHONE.host, PHONE.port)
    assert "rport=5062" in (busy.headers.get("Via") or "")
    assert ep.counters.get("tx_busy_503") == 1
    # no transaction was made for the 503: only the admitted call's 404 is retransmitted later
    ep.handle_timer(1.6)
    assert {r.status for r, _ in _answers(ep)} <= {404}


def test_retransmission_of_an_admitted_invite_is_not_refused() -> None:
    ep = _endpoint(admission=Admission(OverloadConfig(invite_rate=1, invite_burst=1, source_rate=0)))
    data = _invite(1, PHONE)
    ep.receive_datagram(data, PHONE, 1.0)
    assert [r.status for r, _ in _answers(ep)] == [404]
    ep.receive_datagram(data, PHONE, 1.0)  # the same transaction again: its last answer, not a 503
    assert [r.status for r, _ in _answers(ep)] == [404]


def test_a_flooding_source_gets_503s_and_a_phone_is_still_served() -> None:
    cfg = OverloadConfig(invite_rate=0, source_rate=10, source_burst=10)
    ep = _endpoint(admission=Admission(cfg))
    for n in range(200):
        ep.receive_datagram(_invite(n, FLOODER), FLOODER, 1.0)
    flood = _answers(ep)
    assert sorted({r.status for r, _ in flood}) == [404, 503]
    assert sum(r.status == 503 for r, _ in flood) == 190
    assert all(r.headers.get("Retry-After") == "5" for r, _ in flood if r.status == 503)
    ep.receive_datagram(_invite(999, PHONE), PHONE, 1.0)
    assert [r.status for r, _ in _answers(ep)] == [404]


def test_a_source_blocked_for_auth_failures_gets_one_stateless_403() -> None:
    def no_user(user: str, realm: str, algorithm: str) -> None:
        return None

    auth = DigestAuthenticator("example.net", no_user, b"k" * 32)
    throttle = AuthThrottle(max_failures=1, block=60.0)
    throttle.failure(FLOODER.host, 0.0)
    assert throttle.blocked(FLOODER.host, 1.0)
    cfg = EndpointConfig(local={"udp": ("198.18.0.1", 5060)}, throttle=throttle)
    ep = SipEndpoint(cfg, NullApplication(), auth)
    for n in range(5):
        ep.receive_datagram(_invite(n, FLOODER), FLOODER, 1.0)
    answers = _answers(ep)
    assert [r.status for r, _ in answers] == [403]
    ep.handle_timer(30.0)  # no transaction: the 403 is never retransmitted
    assert _answers(ep) == []
