"""Three-party conference (TS 24.605 3PTY): REFER with Replaces in Refer-To (RFC 3891, RFC 4579 §5.5)."""

from __future__ import annotations

import pytest
from control_helpers import Phone, answer, invite_for, notifies, ok_all
from helpers import Harness, answer_direction, requests, responses, sdp_offer

from imsconf.conference.participant import ParticipantStatus
from imsconf.focus.threeparty import Replaces, ThreePartyError, replaces_from_uri_headers
from imsconf.sip.peer import Peer


def phone(user: str, n: int) -> Phone:
    return Phone(user, Peer("tls", f"198.51.100.{n}", 5090))


def refer_to(p: Phone, call_id: str, to_tag: str, from_tag: str) -> str:
    esc = call_id.replace("@", "%40")
    return f"<{p.uri()}?Replaces={esc}%3Bto-tag%3D{to_tag}%3Bfrom-tag%3D{from_tag}>"


def test_replaces_value_round_trip() -> None:
    r = Replaces.parse("98asjd8@test.com ; to-tag=12345;from-tag=54321;early-only")
    assert (r.call_id, r.to_tag, r.from_tag, r.early_only) == ("98asjd8@test.com", "12345", "54321", True)
    assert str(r) == "98asjd8@test.com;to-tag=12345;from-tag=54321;early-only"
    assert (
        str(replaces_from_uri_headers("Replaces=a%40b%3Bfrom-tag%3Dx%3Bto-tag%3Dy"))
        == "a@b;to-tag=y;from-tag=x"
    )


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ("Replaces=abc%3Bto-tag%3D1", 400),  # from-tag missing
        ("Replaces=abc%3Bto-tag%3D1%3Bfrom-tag%3D2%0D%0AX-Evil%3A%201", 400),  # header injection
        ("Replaces=a%2Cb%3Bto-tag%3D1%3Bfrom-tag%3D2", 400),  # a comma in the Call-ID
        ("Replaces=abc%3Bto-tag%3D1%3Bto-tag%3D3%3Bfrom-tag%3D2", 400),
        ("Replaces=abc%3Bto-tag%3D1%3Bfrom-tag%3D2&Subject=hi", 403),
        ("Subject=hi", 403),
        (
            "Replaces=abc%3Bto-tag%3D1%3Bfrom-tag%3D2&Replaces=abc%3Bto-tag%3D1%3Bfrom-tag%3D2",
            400,
        ),
    ],
)
def test_bad_embedded_headers(headers: str, status: int) -> None:
    with pytest.raises(ThreePartyError) as exc:
        replaces_from_uri_headers(headers)
    assert exc.value.status == status


def test_three_party_merge() -> None:
    h = Harness()
    a = h.ua("alice")
    _, uri = h.create(a)
    conf = h.conference(uri)
    bob, carol = phone("bob", 50), phone("carol", 51)
    # A's one-to-one dialogs: with B (Call-ID ab@pbx, B's tag b-1, A's tag a-1) and with C
    for p, call_id, their_tag, my_tag in ((bob, "ab@pbx", "b-1", "a-1"), (carol, "ac@pbx", "c-1", "a-2")):
        sent = h.send(a, a.refer(refer_to(p, call_id, their_tag, my_tag)))
        assert [r.status for r, _ in responses(sent)] == [202]
        inv = invite_for(sent, p)
        assert inv.uri == p.uri()  # the embedded header is not in the Request-URI
        assert inv.headers.get("Replaces") == f"{call_id};to-tag={their_tag};from-tag={my_tag}"
        assert "replaces" in inv.headers.tokens("Require")
        assert (inv.headers.get("Referred-By") or "").startswith("<sip:alice@example.net>")
        ok_all(h, a, sent)
        out = answer(h, p, inv)
        assert len(requests(out, "ACK")) == 1
        finals = [n.body for n in notifies(out, "refer")]
        assert finals and finals[-1].startswith(b"SIP/2.0 200")
        ok_all(h, a, out)
    users = {pp.user: pp.status for pp in conf.participants}
    assert users == {
        "sip:alice@example.net": ParticipantStatus.CONNECTED,
        "sip:bob@198.51.100.50": ParticipantStatus.CONNECTED,
        "sip:carol@198.51.100.51": ParticipantStatus.CONNECTED,
    }
    # no Replaces detail leaks into what subscribers see
    assert all("Replaces" not in (d.contact or "") for d in h.focus.details.values())
    # A toggles to a one-to-one session: holds the conference leg, then returns
    resp = h.final(h.send(a, a.reinvite(sdp_offer(direction="sendonly"))))
    assert resp.status == 200 and answer_direction(resp.body) == "recvonly"
    h.send(a, a.ack())
    assert conf.participants_of("sip:alice@example.net")[0].status is ParticipantStatus.ON_HOLD
    resp = h.final(h.send(a, a.reinvite(sdp_offer(direction="sendrecv"))))
    assert resp.status == 200 and answer_direction(resp.body) == "sendrecv"
    h.send(a, a.ack())
    assert conf.participants_of("sip:alice@example.net")[0].status is ParticipantStatus.CONNECTED


def test_invitee_without_the_replaced_dialog() -> None:
    """B has no such dialog (RFC 3891 §3: 481): the REFER fails, B never enters the roster."""
    h = Harness()
    a = h.ua("alice")
    _, uri = h.create(a)
    bob = phone("bob", 50)
    sent = h.send(a, a.refer(refer_to(bob, "gone@pbx", "b-9", "a-9")))
    ok_all(h, a, sent)
    out = answer(h, bob, invite_for(sent, bob), 481, "Call/Transaction Does Not Exist")
    assert notifies(out, "refer")[-1].body.startswith(b"SIP/2.0 481")
    assert [p.user for p in h.conference(uri).participants] == ["sip:alice@example.net"]


def test_malformed_replaces_refused_before_anything_is_sent() -> None:
    h = Harness()
    a = h.ua("alice")
    h.create(a)
    bob = phone("bob", 50)
    sent = h.send(a, a.refer(f"<{bob.uri()}?Replaces=abc%3Bto-tag%3D1%0D%0AX%3A1%3Bfrom-tag%3D2>"))
    assert [r.status for r, _ in responses(sent)] == [400]
    assert requests(sent, "INVITE") == []
