"""Reliable provisional responses at the focus (RFC 3262): the answer in a reliable 183, PRACK, then 200."""

from __future__ import annotations

import pytest
from helpers import DOMAIN, FACTORY, UA, Harness, Sent, responses, sdp_offer

from imsconf.conference.participant import ParticipantStatus
from imsconf.focus.config import FocusConfig
from imsconf.sip.errors import SipParseError
from imsconf.sip.message import Response
from imsconf.sip.reliable import RAck, ReliableProvisional
from imsconf.sip.timers import TimerConfig
from imsconf.sip.util import make_response

RELIABLE = (("Supported", "100rel, timer"),)


def udp_harness() -> Harness:
    return Harness(FocusConfig(domain=DOMAIN, media_host="198.18.0.1", allow_sdes_over_insecure=True))


def invite_183(h: Harness, ua: UA, extra: tuple[tuple[str, str], ...] = RELIABLE) -> Response:
    sent = h.send(ua, ua.invite(FACTORY, sdp_offer(), extra))
    ((r183, _),) = responses(sent, 183)
    assert responses(sent, 200) == [] and responses(sent, 100) == []
    ua.to_tag = r183.to.tag
    contact = r183.headers.get("Contact") or ""
    ua.remote_target = contact[contact.index("<") + 1 : contact.index(">")]
    return r183


def prack(ua: UA, rseq: int | str, cseq: int | None = None) -> bytes:
    ua.cseq += 1
    n = ua.last_invite_cseq if cseq is None else cseq
    return ua.request_with("PRACK", ua.target(), (("RAck", f"{rseq} {n} INVITE"),))


def test_rack_parse() -> None:
    assert RAck.parse("776656 1 INVITE") == RAck(776656, 1, "INVITE")
    for bad in ("", "1 INVITE", "x 1 INVITE", "0 1 INVITE", "1 1 INVITE extra"):
        with pytest.raises(SipParseError):
            RAck.parse(bad)


def test_reliable_provisional_timers_double_from_t1_and_give_up_at_64_t1() -> None:
    from imsconf.sip.message import parse_message

    inv = parse_message(
        b"INVITE sip:x@h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@h>;tag=1\r\n"
        b"To: <sip:x@h>\r\nCall-ID: c\r\nCSeq: 7 INVITE\r\nContent-Length: 0\r\n\r\n"
    )
    r = make_response(inv, 183, to_tag="t")  # type: ignore[arg-type]
    r.headers.add("RSeq", "5")
    rel = ReliableProvisional(r, 0.0, TimerConfig(t1=0.5))
    sent = [t for t in (x * 0.25 for x in range(0, 140)) if rel.handle_timer(t)]
    assert sent == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5]  # every T1 doubling, no cap, until 64*T1 = 32 s
    assert rel.expired(32.0) and rel.next_deadline() == 32.0
    assert not rel.prack(RAck(5, 6, "INVITE")) and not rel.prack(RAck(4, 7, "INVITE"))
    assert rel.prack(RAck(5, 7, "INVITE")) and rel.next_deadline() is None and not rel.expired(40)
    assert not rel.prack(RAck(5, 7, "INVITE"))  # acknowledged already: a new PRACK matches nothing
    with pytest.raises(ValueError):
        ReliableProvisional(make_response(inv, 180, to_tag="t"), 0.0)  # type: ignore[arg-type]


def test_invite_with_100rel_gets_reliable_183_then_200_after_prack() -> None:
    h = Harness()
    ua = h.ua("alice")
    r183 = invite_183(h, ua)
    assert r183.headers.tokens("Require") == ["100rel"]
    rseq = int(r183.headers.get("RSeq") or "0")
    assert 1 <= rseq < 2**31
    assert r183.headers.get("Content-Type") == "application/sdp" and b"m=audio" in r183.body
    assert "100rel" in r183.headers.tokens("Supported") and "PRACK" in r183.headers.get_all("Allow")
    assert (r183.headers.get("Contact") or "").endswith(";isfocus")
    conf = next(iter(h.focus.registry))
    (p,) = conf.participants
    assert p.status is not ParticipantStatus.CONNECTED
    sent = h.send(ua, prack(ua, rseq))
    (ok_prack,) = [m for m, _ in responses(sent) if m.cseq.method == "PRACK"]
    assert ok_prack.status == 200
    (ok,) = [m for m, _ in responses(sent, 200) if m.cseq.method == "INVITE"]
    assert ok.to.tag == r183.to.tag and ok.body == b""  # the answer was in the 183
    assert ok.headers.get("Session-Expires") is not None  # session timer as on any 200
    ua.learn(ok)
    assert h.send(ua, ua.ack()) == []
    assert conf.participant(p.participant_id).status is ParticipantStatus.CONNECTED
    # and the call ends as any other
    sent = h.send(ua, ua.bye())
    assert [m.status for m, _ in responses(sent)] == [200]


def test_reliable_183_is_retransmitted_until_prack() -> None:
    h = udp_harness()
    ua = h.ua("alice", "udp")
    r183 = invite_183(h, ua)
    times: list[float] = []
    start = h.now
    for _ in range(3):
        out = h.advance(h.focus.early.next_deadline() - h.now)  # type: ignore[operator]
        assert [m.status for m, _ in responses(out)] == [183]
        assert responses(out)[0][0].headers.get("RSeq") == r183.headers.get("RSeq")
        times.append(round(h.now - start, 3))
    assert times == [0.5, 1.5, 3.5]  # T1, then doubling
    sent = h.send(ua, prack(ua, r183.headers.get("RSeq") or ""))
    assert sorted(m.status for m, _ in responses(sent)) == [200, 200]
    # from here the 2xx is retransmitted until the ACK (T1 doubling to T2), the 183 no more
    assert [m.status for m, _ in responses(h.advance(10))] == [200] * 4
    assert h.focus.early.next_deadline() is None


def test_no_prack_within_64_t1_ends_the_call_with_5xx() -> None:
    h = udp_harness()
    ua = h.ua("alice", "udp")
    r183 = invite_183(h, ua)
    out = h.advance(40)
    finals = [m for m, _ in responses(out) if m.status >= 200]
    # 500 in the early dialog (retransmitted by the INVITE server transaction until ACKed)
    assert {m.status for m in finals} == {500} and finals[0].to.tag == r183.to.tag
    assert [m.status for m, _ in responses(out) if m.status < 200] == [183] * 6  # at 0.5 .. 31.5 s
    assert len(h.focus.registry) == 0 and h.focus.legs == {}


def test_prack_for_unknown_rseq_or_cseq_gets_481() -> None:
    h = Harness()
    ua = h.ua("alice")
    r183 = invite_183(h, ua)
    rseq = int(r183.headers.get("RSeq") or "0")
    for bad in (prack(ua, rseq + 1), prack(ua, rseq, cseq=ua.last_invite_cseq + 5)):
        (resp,) = [m for m, _ in responses(h.send(ua, bad))]
        assert resp.status == 481
    assert h.focus.early.get(next(iter(h.focus.legs))) is not None  # still waiting for the right one
    sent = h.send(ua, prack(ua, rseq))
    assert sorted(m.status for m, _ in responses(sent)) == [200, 200]
    (again,) = [m for m, _ in responses(h.send(ua, prack(ua, rseq)))]  # acknowledged already
    assert again.status == 481


def test_cancel_while_early_gets_487_and_leaves() -> None:
    h = Harness()
    ua = h.ua("alice")
    invite_183(h, ua)
    sent = h.send(ua, ua.cancel())
    assert sorted(m.status for m, _ in responses(sent)) == [200, 487]
    assert h.focus.legs == {} and len(h.focus.registry) == 0


def test_early_leg_ended_by_the_focus_gets_a_final_refusal_not_bye() -> None:
    h = Harness()
    owner = h.ua("alice")
    _, uri = h.create(owner)
    ua = h.ua("bob")
    sent: list[Sent] = h.send(ua, ua.invite(uri, sdp_offer(), RELIABLE))
    assert [m.status for m, _ in responses(sent)] == [183]
    out = h.send(owner, owner.bye())  # the owner leaves: the conference closes
    statuses = sorted(m.status for m, _ in responses(out))
    assert statuses == [200, 480]
    assert [m for m, _ in out if not isinstance(m, Response) and m.method == "BYE"] == []


def test_without_100rel_the_200_comes_at_once() -> None:
    h = Harness()
    ua = h.ua("alice")
    resp = h.call(ua, FACTORY)
    assert resp.status == 200 and b"m=audio" in resp.body
    assert "100rel" in resp.headers.tokens("Supported") and resp.headers.get("RSeq") is None


def test_prack_with_a_new_offer_gets_the_answer_in_its_200() -> None:
    h = Harness()
    ua = h.ua("alice")
    r183 = invite_183(h, ua)
    ua.cseq += 1
    rack = (("RAck", f"{r183.headers.get('RSeq')} {ua.last_invite_cseq} INVITE"),)
    sent = h.send(
        ua, ua.request_with("PRACK", ua.target(), rack, body=sdp_offer(version=2, direction="sendonly"))
    )
    ok_prack, ok_invite = (m for m, _ in responses(sent, 200))
    assert ok_prack.cseq.method == "PRACK" and ok_prack.headers.get("Content-Type") == "application/sdp"
    assert b"a=recvonly" in ok_prack.body  # the answer to the new (sendonly) offer
    assert ok_invite.cseq.method == "INVITE" and ok_invite.body == b""
