"""Conference control at the focus: URI lists (RFC 5366), REFER (RFC 4579 §5.5, RFC 3515), removal, policy."""

from __future__ import annotations

from control_helpers import (
    MULTIPART,
    Phone,
    answer,
    doc,
    invite_for,
    multipart,
    notifies,
    ok_all,
    q,
    resource_list,
    subscribe,
    valid_doc,
)
from helpers import FACTORY, UA, Harness, Sent, answer_to, requests, responses, sdp_offer

from imsconf.conference.model import ConferencePolicy
from imsconf.conference.participant import ParticipantStatus
from imsconf.focus.config import FocusConfig
from imsconf.sip.peer import Peer

from helpers import DOMAIN  # isort: skip


def phone(user: str, transport: str = "tls", n: int = 50) -> Phone:
    return Phone(user, Peer(transport, f"198.51.100.{n}", 5090))


def create_with_list(h: Harness, *phones: Phone) -> tuple[UA, str, list[Sent]]:
    alice = h.ua("alice")
    body = multipart(sdp_offer(), resource_list(*(p.uri() for p in phones)))
    sent = h.send(alice, alice.invite(FACTORY, body, extra=(("Require", "recipient-list-invite"),),
                                      content_type=MULTIPART))  # fmt: skip
    resp = h.final(sent)
    assert resp.status == 200, (resp.status, resp.reason)
    alice.learn(resp)
    assert h.send(alice, alice.ack()) == []
    assert alice.remote_target is not None
    return alice, alice.remote_target, sent


# ---------------------------------------------------------------------------------------------- URI lists


def test_uri_list_creation_invites_each_listed_user() -> None:
    h = Harness()
    bob, carol = phone("bob", n=50), phone("carol", n=51)
    _alice, uri, sent = create_with_list(h, bob, carol)
    conf = h.conference(uri)
    # the creator's 200 carries an SDP answer only
    ok = h.final(sent)
    assert ok.headers.get("Content-Type") == "application/sdp"
    for p in (bob, carol):
        inv = invite_for(sent, p)
        assert inv.from_.uri.aor == f"sip:conf-{conf.conf_id}@{DOMAIN}"
        contact = inv.headers.get("Contact") or ""
        assert contact.endswith(";isfocus") and contact.startswith(f"<sip:conf-{conf.conf_id}@")
        assert b"RTP/SAVP" in inv.body and b"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" in inv.body
    by_user = {p.user: p for p in conf.participants}
    assert by_user["sip:bob@198.51.100.50"].status is ParticipantStatus.JOINING
    # bob answers: ACK, connected, mixer leg configured with both keys
    out = answer(h, bob, invite_for(sent, bob))
    ((ack, dest),) = requests(out, "ACK")
    assert ack.to.tag == bob.to_tag and dest.host == bob.peer.host
    p_bob = conf.participants_of("sip:bob@198.51.100.50")[0]
    assert p_bob.status is ParticipantStatus.CONNECTED
    assert p_bob.media is not None and p_bob.media.srtp
    leg = h.media.legs[f"{conf.conf_id}.{p_bob.participant_id}"]
    assert leg.configured and leg.tx_key and leg.rx_key and leg.codec_name == "PCMU"
    # a retransmitted 2xx is ACKed again
    again = answer(h, bob, invite_for(sent, bob))
    assert len(requests(again, "ACK")) == 1
    # carol is busy: she leaves the roster again
    out = answer(h, carol, invite_for(sent, carol), 486, "Busy Here")
    assert not conf.participants_of("sip:carol@198.51.100.51")
    assert len(conf) == 2


def test_uri_list_failure_is_shown_in_the_event_package() -> None:
    h = Harness()
    bob = phone("bob")
    _alice, uri, sent = create_with_list(h, bob)
    owner_sub = h.ua("alice")
    resp, subsent = subscribe(h, owner_sub, uri)
    assert resp.status == 200
    (full,) = notifies(subsent, "conference")
    root = valid_doc(full.body)
    eps = {str(e.get("entity")): e for e in root.iter(q("endpoint"))}
    bob_ep = eps[bob.uri()]
    assert bob_ep.findtext(q("status")) == "dialing-out"
    assert bob_ep.findtext(q("joining-method")) == "dialed-out"
    ok_all(h, owner_sub, subsent)
    out = answer(h, bob, invite_for(sent, bob), 486, "Busy Here")
    (partial,) = notifies(out, "conference")
    root = valid_doc(partial.body)
    ep = next(root.iter(q("endpoint")))
    assert ep.get("state") == "deleted"
    assert ep.findtext(q("disconnection-method")) == "busy"
    assert "486" in (ep.findtext(f"{q('disconnection-info')}/{q('reason')}") or "")


def test_uri_list_on_insecure_signalling_without_sdes_is_not_dialled() -> None:
    h = Harness(FocusConfig(domain=DOMAIN, media_host="198.18.0.1", allow_plain_rtp=False))
    udp_phone = phone("bob", "udp")
    _alice, uri, sent = create_with_list(h, udp_phone)
    assert requests(sent, "INVITE") == []
    assert len(h.conference(uri)) == 1


def test_uri_list_to_an_existing_conference_from_a_participant() -> None:
    h = Harness()
    alice, bob = h.ua("alice"), h.ua("bob")
    _, uri = h.create(alice)
    dave = phone("dave")
    body = multipart(sdp_offer(), resource_list(dave.uri(), bob.aor))
    sent = h.send(bob, bob.invite(uri, body, content_type=MULTIPART))
    assert h.final(sent).status == 200
    assert [r.uri for r, _ in requests(sent, "INVITE")] == [dave.uri()]  # bob is not invited to himself


def test_bad_uri_list_is_refused_before_anything_happens() -> None:
    h = Harness()
    alice = h.ua("alice")
    body = multipart(sdp_offer(), b"<resource-lists")
    resp = h.final(h.send(alice, alice.invite(FACTORY, body, content_type=MULTIPART)))
    assert resp.status == 400
    assert len(h.focus.registry) == 0
    assert h.media.legs == {}


def test_dial_out_without_answer_is_cancelled() -> None:
    h = Harness(FocusConfig(domain=DOMAIN, media_host="198.18.0.1", dial_timeout=30))
    bob = phone("bob")
    _, uri, sent = create_with_list(h, bob)
    inv = invite_for(sent, bob)
    conf = h.conference(uri)
    out = h.advance(31)
    (cancel,) = [r for r, _ in requests(out, "CANCEL")]
    assert cancel.top_via.branch == inv.top_via.branch
    assert not conf.participants_of("sip:bob@198.51.100.50")
    assert all(leg.conf_id == conf.conf_id for leg in h.media.legs.values()) and len(h.media.legs) == 1


def test_owner_leaving_cancels_ringing_dial_outs() -> None:
    h = Harness()
    bob = phone("bob")
    alice, _uri, sent = create_with_list(h, bob)
    out = h.send(alice, alice.bye())
    assert len(requests(out, "CANCEL")) == 1
    assert len(h.focus.registry) == 0
    assert h.focus.legs == {}
    assert h.media.legs == {}
    # bob answers late: ACK then BYE
    late = answer(h, bob, invite_for(sent, bob))
    assert [r.method for r, _ in requests(late, "ACK") + requests(late, "BYE")] == ["ACK", "BYE"]


# ---------------------------------------------------------------------------------------------- REFER


def test_refer_in_dialog_invites_the_user_and_reports_progress() -> None:
    h = Harness()
    alice = h.ua("alice")
    _, uri = h.create(alice)
    conf = h.conference(uri)
    bob = phone("bob")
    sent = h.send(alice, alice.refer(f"<{bob.uri()}>", extra=(("Referred-By", f"<{alice.aor}>"),)))
    ((_r202, _),) = responses(sent, 202)
    (trying,) = notifies(sent, "refer")
    assert trying.headers.get("Event") == f"refer;id={alice.cseq}"
    assert trying.headers.get("Content-Type") == "message/sipfrag;version=2.0"
    assert trying.body == b"SIP/2.0 100 Trying\r\n"
    assert (trying.headers.get("Subscription-State") or "").startswith("active;expires=")
    inv = invite_for(sent, bob)
    assert inv.headers.get("Referred-By") == f"<{alice.aor}>"
    ok_all(h, alice, sent)
    # ringing is reported, then the 200
    ringing = answer(h, bob, inv, 180, "Ringing")
    (n180,) = notifies(ringing, "refer")
    assert n180.body == b"SIP/2.0 180 Ringing\r\n"
    ok_all(h, alice, ringing)
    out = answer(h, bob, inv)
    (final,) = notifies(out, "refer")
    assert final.body == b"SIP/2.0 200 OK\r\n"
    assert final.headers.get("Subscription-State") == "terminated;reason=noresource"
    assert ok_all(h, alice, out) == []
    assert h.focus.notifier.usages == {}
    assert conf.participants_of("sip:bob@198.51.100.50")[0].status is ParticipantStatus.CONNECTED
    # Referred-By is shown in joining-info
    sub = h.ua("alice")
    _, subsent = subscribe(h, sub, uri)
    root = valid_doc(notifies(subsent, "conference")[0].body)
    ep = next(e for e in root.iter(q("endpoint")) if e.get("entity") == bob.uri())
    assert ep.findtext(f"{q('joining-info')}/{q('by')}") == alice.aor


def test_refer_failure_is_the_final_sipfrag() -> None:
    h = Harness()
    alice = h.ua("alice")
    _, _uri = h.create(alice)
    bob = phone("bob")
    sent = h.send(alice, alice.refer(f"<{bob.uri()}>"))
    ok_all(h, alice, sent)
    out = answer(h, bob, invite_for(sent, bob), 603, "Decline")
    (final,) = notifies(out, "refer")
    assert final.body == b"SIP/2.0 603 Decline\r\n"
    assert final.headers.get("Subscription-State") == "terminated;reason=noresource"


def test_refer_out_of_dialog_makes_its_own_dialog() -> None:
    h = Harness()
    alice = h.ua("alice")
    _, uri = h.create(alice)
    other = h.ua("alice")  # the owner, from another device, outside the INVITE dialog
    bob = phone("bob")
    sent = h.send(other, other.refer(f"<{bob.uri()}>", uri=uri))
    ((r202, _),) = responses(sent, 202)
    assert r202.to.tag and (r202.headers.get("Contact") or "").startswith("<sip:conf-")
    (trying,) = notifies(sent, "refer")
    assert trying.headers.get("Event") == "refer"
    assert trying.to.tag == other.from_tag and trying.from_.tag == r202.to.tag
    assert invite_for(sent, bob).headers.get("Referred-By") == f"<{other.aor}>"


def test_refer_by_a_stranger_is_refused() -> None:
    h = Harness()
    alice, mallory = h.ua("alice"), h.ua("mallory")
    _, uri = h.create(alice)
    sent = h.send(mallory, mallory.refer("<sip:bob@example.net>", uri=uri))
    assert [r.status for r, _ in responses(sent)] == [403]
    assert requests(sent, "INVITE") == []


def test_refer_when_full_is_refused_with_the_policy_status() -> None:
    for status in (486, 503):
        cfg = FocusConfig(domain=DOMAIN, media_host="198.18.0.1",
                          policy=ConferencePolicy(max_participants=2, full_status=status))  # fmt: skip
        h = Harness(cfg)
        alice, bob, carol = h.ua("alice"), h.ua("bob"), h.ua("carol")
        _, uri = h.create(alice)
        h.join(bob, uri)
        assert h.call(carol, uri).status == status
        sent = h.send(alice, alice.refer("<sip:dave@198.51.100.9;transport=tls>"))
        assert [r.status for r, _ in responses(sent)] == [status]
        assert requests(sent, "INVITE") == []


def test_refer_bye_by_owner_removes_the_participant() -> None:
    h = Harness()
    alice, bob = h.ua("alice"), h.ua("bob")
    _, uri = h.create(alice)
    h.join(bob, uri)
    conf = h.conference(uri)
    sent = h.send(alice, alice.refer(f"<{bob.aor};method=BYE>"))
    assert [r.status for r, _ in responses(sent)] == [202]
    ((bye, dest),) = requests(sent, "BYE")
    assert bye.call_id == bob.call_id and dest == bob.peer
    (trying,) = notifies(sent, "refer")
    assert trying.body == b"SIP/2.0 100 Trying\r\n"
    assert not conf.participants_of(bob.aor)
    ok_all(h, alice, sent)
    out = h.send(bob, answer_to(bye))
    (final,) = notifies(out, "refer")
    assert final.body == b"SIP/2.0 200 OK\r\n"
    assert final.headers.get("Subscription-State") == "terminated;reason=noresource"


def test_refer_bye_by_a_participant_is_forbidden() -> None:
    h = Harness()
    alice, bob = h.ua("alice"), h.ua("bob")
    _, uri = h.create(alice)
    h.join(bob, uri)
    sent = h.send(bob, bob.refer(f"<{alice.aor};method=BYE>"))
    assert [r.status for r, _ in responses(sent)] == [403]
    assert requests(sent, "BYE") == []
    assert len(h.conference(uri)) == 2


def test_refer_bye_by_a_moderator_and_unknown_targets() -> None:
    cfg = FocusConfig(domain=DOMAIN, media_host="198.18.0.1",
                      policy=ConferencePolicy(moderators=frozenset({"sip:mod@example.net"})))  # fmt: skip
    h = Harness(cfg)
    alice, mod, bob = h.ua("alice"), h.ua("mod"), h.ua("bob")
    _, uri = h.create(alice)
    h.join(mod, uri)
    h.join(bob, uri)
    assert [
        r.status for r, _ in responses(h.send(mod, mod.refer("<sip:nobody@example.net;method=BYE>")))
    ] == [404]
    assert [r.status for r, _ in responses(h.send(mod, mod.refer(f"<{alice.aor};method=BYE>")))] == [403]
    assert [r.status for r, _ in responses(h.send(mod, mod.refer(f"<{bob.aor};method=BYE>")))] == [202]
    assert not h.conference(uri).participants_of(bob.aor)


def test_refer_with_other_methods_or_headers_is_refused() -> None:
    h = Harness()
    alice = h.ua("alice")
    _, _uri = h.create(alice)
    for refer_to, status in [
        ("<sip:bob@example.net;method=MESSAGE>", 403),
        ("<sip:bob@example.net?Subject=hi>", 403),  # only Replaces is taken (3PTY: test_threeparty.py)
        ("<sip:bob@example.net;method=BYE?Replaces=abc%3Bto-tag%3D1%3Bfrom-tag%3D2>", 403),
        ("<tel:+123>", 400),
        ("garbage<", 400),
    ]:
        sent = h.send(alice, alice.refer(refer_to))
        assert [r.status for r, _ in responses(sent)] == [status], refer_to


def test_refer_sub_false_sends_no_notify() -> None:
    h = Harness()
    alice = h.ua("alice")
    _, _uri = h.create(alice)
    bob = phone("bob")
    sent = h.send(alice, alice.refer(f"<{bob.uri()}>", extra=(("Refer-Sub", "false"),)))
    ((r202, _),) = responses(sent, 202)
    assert r202.headers.get("Refer-Sub") == "false"
    assert notifies(sent) == []
    assert len(requests(sent, "INVITE")) == 1


def test_user_referred_by_someone_joins_with_referred_by_shown() -> None:
    h = Harness()
    alice, bob = h.ua("alice"), h.ua("bob")
    _, uri = h.create(alice)
    h.join(bob, uri, extra=(("Referred-By", f"<{alice.aor}>"),))
    sub = h.ua("alice")
    _, subsent = subscribe(h, sub, uri)
    root = doc(notifies(subsent, "conference")[0].body)
    bob_user = next(u for u in root.iter(q("user")) if u.get("entity") == bob.aor)
    assert bob_user.findtext(f"{q('endpoint')}/{q('joining-info')}/{q('by')}") == alice.aor
