"""Preconditions at the focus (RFC 3312/4032, VoLTE): reliable 183 with status lines, PRACK, the phone's
UPDATE (RFC 3311) with its resources reserved, then the 200."""

from __future__ import annotations

from helpers import FACTORY, UA, Harness, responses, sdp_offer

from imsconf.conference.participant import ParticipantStatus
from imsconf.sip.message import Response

QOS_NONE = ("a=curr:qos local none", "a=curr:qos remote none",
            "a=des:qos mandatory local sendrecv", "a=des:qos none remote sendrecv")  # fmt: skip
QOS_READY = ("a=curr:qos local sendrecv", "a=curr:qos remote sendrecv",
             "a=des:qos mandatory local sendrecv", "a=des:qos mandatory remote sendrecv")  # fmt: skip
VOLTE = (("Require", "precondition"), ("Supported", "100rel, timer"))


def with_qos(body: bytes, lines: tuple[str, ...]) -> bytes:
    return body + "".join(f"{line}\r\n" for line in lines).encode()


def qos_of(resp: Response) -> list[str]:
    return [line for line in resp.body.decode().split("\r\n") if ":qos " in line]


def test_volte_precondition_call_completes_after_update() -> None:
    h = Harness()
    ua = h.ua("alice")
    sent = h.send(ua, ua.invite(FACTORY, with_qos(sdp_offer(), QOS_NONE), VOLTE))
    ((r183, _),) = responses(sent, 183)
    assert [m.status for m, _ in responses(sent)] == [183]  # no 420 any more, no 200 yet
    assert r183.headers.tokens("Require") == ["100rel", "precondition"]
    assert qos_of(r183) == [
        "a=curr:qos local sendrecv",
        "a=curr:qos remote none",
        "a=des:qos mandatory local sendrecv",
        "a=des:qos mandatory remote sendrecv",
        "a=conf:qos remote sendrecv",
    ]
    ua.to_tag = r183.to.tag
    contact = r183.headers.get("Contact") or ""
    ua.remote_target = contact[contact.index("<") + 1 : contact.index(">")]
    # PRACK: 200 to it, and the 200 to the INVITE still waits for the phone's resources
    ua.cseq += 1
    rack = f"{r183.headers.get('RSeq')} {ua.last_invite_cseq} INVITE"
    sent = h.send(ua, ua.request_with("PRACK", ua.target(), (("RAck", rack),)))
    assert [(m.status, m.cseq.method) for m, _ in responses(sent)] == [(200, "PRACK")]
    conf = next(iter(h.focus.registry))
    (p,) = conf.participants
    assert p.status is not ParticipantStatus.CONNECTED
    # nothing more happens while the phone reserves (the 183 is acknowledged: no retransmission)
    assert responses(h.advance(5)) == []
    # the phone's UPDATE: its resources reserved; both segments met, then the 200 to the INVITE
    sent = h.send(ua, ua.update(with_qos(sdp_offer(version=2), QOS_READY)))
    got = [(m.status, m.cseq.method) for m, _ in responses(sent)]
    assert got == [(200, "UPDATE"), (200, "INVITE")]
    ok_update = responses(sent)[0][0]
    assert qos_of(ok_update) == [
        "a=curr:qos local sendrecv",
        "a=curr:qos remote sendrecv",
        "a=des:qos mandatory local sendrecv",
        "a=des:qos mandatory remote sendrecv",
    ]
    ok = responses(sent)[1][0]
    assert ok.to.tag == r183.to.tag and ok.body == b""
    ua.learn(ok)
    assert h.send(ua, ua.ack()) == []
    assert conf.participant(p.participant_id).status is ParticipantStatus.CONNECTED
    # a later re-offer with status lines is answered with them too
    sent = h.send(ua, ua.update(with_qos(sdp_offer(version=3), QOS_READY)))
    assert qos_of(responses(sent, 200)[0][0])[:2] == [
        "a=curr:qos local sendrecv",
        "a=curr:qos remote sendrecv",
    ]


def test_update_before_resources_keeps_the_200_back() -> None:
    h = Harness()
    ua = h.ua("alice")
    sent = h.send(ua, ua.invite(FACTORY, with_qos(sdp_offer(), QOS_NONE), VOLTE))
    ((r183, _),) = responses(sent, 183)
    ua.to_tag = r183.to.tag
    contact = r183.headers.get("Contact") or ""
    ua.remote_target = contact[contact.index("<") + 1 : contact.index(">")]
    ua.cseq += 1
    h.send(ua, ua.request_with("PRACK", ua.target(), (("RAck", f"{r183.headers.get('RSeq')} 1 INVITE"),)))
    sent = h.send(ua, ua.update(with_qos(sdp_offer(version=2), QOS_NONE)))
    assert [(m.status, m.cseq.method) for m, _ in responses(sent)] == [(200, "UPDATE")]
    assert "a=conf:qos remote sendrecv" in qos_of(responses(sent)[0][0])


def test_precondition_without_100rel_gets_421() -> None:
    h = Harness()
    ua: UA = h.ua("alice")
    resp = h.call(ua, FACTORY, with_qos(sdp_offer(), QOS_NONE), (("Require", "precondition"),))
    assert resp.status == 421 and resp.headers.tokens("Require") == ["100rel"]
    assert len(h.focus.registry) == 0


def test_precondition_only_supported_without_100rel_goes_on_without() -> None:
    h = Harness()
    ua = h.ua("alice")
    resp = h.call(ua, FACTORY, with_qos(sdp_offer(), QOS_NONE), (("Supported", "precondition"),))
    assert resp.status == 200 and qos_of(resp) == []
