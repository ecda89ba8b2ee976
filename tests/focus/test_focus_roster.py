"""Joining, leaving, the owner closing the conference, and media release."""

from __future__ import annotations

from helpers import DOMAIN, FACTORY, Harness, answer_to, requests, responses, sdp_offer

from imsconf.conference.model import ConferencePolicy
from imsconf.conference.participant import ConferenceState, ParticipantStatus
from imsconf.focus.config import FocusConfig
from imsconf.sip.peer import Peer


def test_second_and_third_join() -> None:
    h = Harness()
    alice, bob, carol = h.ua("alice"), h.ua("bob"), h.ua("carol")
    _, uri = h.create(alice)
    r_bob = h.join(bob, uri)
    r_carol = h.join(carol, uri)
    conf = h.conference(uri)
    assert [p.user for p in conf.participants] == [alice.aor, bob.aor, carol.aor]
    assert all(p.status is ParticipantStatus.CONNECTED for p in conf.participants)
    # the joiners are told the same conference URI, with ;isfocus
    for r in (r_bob, r_carol):
        assert r.headers.get("Contact") == f"<{uri}>;isfocus"
    assert len(h.media.legs) == 3
    assert {leg.conf_id for leg in h.media.legs.values()} == {conf.conf_id}


def test_participant_bye_releases_its_leg() -> None:
    h = Harness()
    alice, bob, carol = h.ua("alice"), h.ua("bob"), h.ua("carol")
    _, uri = h.create(alice)
    h.join(bob, uri)
    h.join(carol, uri)
    conf = h.conference(uri)
    bob_pid = conf.participants[1].participant_id
    bob_leg = f"{conf.conf_id}.{bob_pid}"
    sent = h.send(bob, bob.bye())
    ((ok, dest),) = responses(sent)
    assert ok.status == 200 and ok.cseq.method == "BYE"
    assert dest.conn == bob.peer.conn
    assert bob_pid not in conf
    assert [p.user for p in conf.participants] == [alice.aor, carol.aor]
    assert bob_leg in h.media.released_legs
    assert bob_leg not in h.media.legs
    assert h.media.released_conferences == []
    assert conf.state is ConferenceState.ACTIVE
    # a second BYE in the same (now gone) dialog: 481
    ((again, _),) = responses(h.send(bob, bob.bye()))
    assert again.status == 481


def test_owner_bye_closes_conference_and_byes_everyone_over_their_connections() -> None:
    h = Harness()
    alice, bob, carol = h.ua("alice", "tls"), h.ua("bob", "tls"), h.ua("carol", "tcp")
    _, uri = h.create(alice)
    h.join(bob, uri)
    h.config.allow_sdes_over_insecure = True  # carol signals over plain TCP
    h.join(carol, uri)
    conf = h.conference(uri)
    sent = h.send(alice, alice.bye())
    assert [r.status for r, _ in responses(sent)] == [200]
    byes = requests(sent, "BYE")
    assert len(byes) == 2
    by_call = {req.call_id: (req, peer) for req, peer in byes}
    for ua in (bob, carol):
        req, peer = by_call[ua.call_id]
        # over the same stream connection the dialog came in on
        assert peer == ua.peer
        assert peer.conn == ua.peer.conn
        assert req.to.tag == ua.from_tag
        assert req.from_.tag == ua.to_tag
        assert req.uri == f"sip:{ua.user}@{ua.peer.host}:{ua.peer.port};transport={ua.transport}"
        assert req.top_via.transport == ua.transport.upper()
    assert conf.state is ConferenceState.CLOSED
    assert len(conf) == 0
    assert h.focus.registry.get(conf.conf_id) is None
    assert h.media.released_conferences == [conf.conf_id]
    assert h.media.legs == {}
    assert h.focus.legs == {}
    # the participants answer the BYEs: nothing more happens
    for req, _ in byes:
        ua = bob if req.call_id == bob.call_id else carol
        assert h.send(ua, answer_to(req)) == []
    # the conference URI is dead
    dave = h.ua("dave", "tls")
    assert h.call(dave, uri).status == 404


def test_owner_bye_reaches_udp_participants_at_their_contact() -> None:
    h = Harness(FocusConfig(domain=DOMAIN, allow_sdes_over_insecure=True, media_host="198.18.0.1"))
    alice = h.ua("alice", "tls")
    bob = h.ua("bob", "udp", contact_host="192.0.2.77", contact_port=5999)
    _, uri = h.create(alice)
    h.join(bob, uri)
    sent = h.send(alice, alice.bye())
    ((bye, dest),) = requests(sent, "BYE")
    assert bye.call_id == bob.call_id
    assert dest == Peer("udp", "192.0.2.77", 5999)
    assert bye.uri == "sip:bob@192.0.2.77:5999"
    # the BYE is retransmitted over UDP until answered (non-INVITE client transaction)
    again = requests(h.advance(0.6), "BYE")
    assert again and again[0][1] == dest
    h.ep.receive_datagram(answer_to(bye), Peer("udp", "192.0.2.77", 5999), h.now)
    h.take()
    assert requests(h.advance(10), "BYE") == []


def test_owner_bye_uses_contact_updated_by_reinvite() -> None:
    h = Harness(FocusConfig(domain=DOMAIN, allow_sdes_over_insecure=True, media_host="198.18.0.1"))
    alice = h.ua("alice", "tls")
    bob = h.ua("bob", "udp")
    _, uri = h.create(alice)
    h.join(bob, uri)
    bob.contact_host, bob.contact_port = "192.0.2.88", 6000
    sent = h.send(bob, bob.reinvite(sdp_offer()))
    assert h.final(sent).status == 200
    h.send(bob, bob.ack())
    ((_, dest),) = requests(h.send(alice, alice.bye()), "BYE")
    assert dest == Peer("udp", "192.0.2.88", 6000)


def test_last_participant_leaving_releases_media() -> None:
    policy = ConferencePolicy(close_when_owner_leaves=False)
    h = Harness(FocusConfig(domain=DOMAIN, policy=policy, media_host="198.18.0.1"))
    alice, bob = h.ua("alice"), h.ua("bob")
    _, uri = h.create(alice)
    h.join(bob, uri)
    conf = h.conference(uri)
    sent = h.send(alice, alice.bye())
    assert requests(sent, "BYE") == []  # the owner may leave without closing
    assert conf.state is ConferenceState.ACTIVE
    assert h.media.released_conferences == []
    h.send(bob, bob.bye())
    assert h.media.released_conferences == [conf.conf_id]
    assert h.media.legs == {}
    assert h.focus.registry.get(conf.conf_id) is None


def test_owner_alone_leaving_releases_media_once() -> None:
    h = Harness()
    alice = h.ua("alice")
    _, uri = h.create(alice)
    conf = h.conference(uri)
    h.send(alice, alice.bye())
    assert h.media.released_conferences == [conf.conf_id]
    assert h.media.legs == {}
    assert h.focus.registry.get(conf.conf_id) is None
    assert h.ep.next_deadline() is None or h.focus.next_deadline() is None


def test_closed_conference_with_many_participants_forgets_every_dialog() -> None:
    h = Harness()
    uas = [h.ua(f"u{i}") for i in range(6)]
    _, uri = h.create(uas[0])
    for ua in uas[1:]:
        h.join(ua, uri)
    sent = h.send(uas[0], uas[0].bye())
    assert len(requests(sent, "BYE")) == 5
    assert len(h.focus.dialogs) == 0
    assert h.focus.legs == {}
    assert h.focus.table.by_dialog == {}
    assert h.focus.table.by_invite == {}


def test_owner_session_expiry_closes_the_conference() -> None:
    h = Harness()
    alice, bob = h.ua("alice"), h.ua("bob")
    h.join(alice, FACTORY, extra=(("Supported", "timer"), ("Session-Expires", "120")))
    assert alice.remote_target is not None
    uri = alice.remote_target
    h.join(bob, uri)
    conf = h.conference(uri)
    sent = h.advance(121)
    assert {req.call_id for req, _ in requests(sent, "BYE")} == {alice.call_id, bob.call_id}
    assert h.focus.registry.get(conf.conf_id) is None
    assert h.media.released_conferences == [conf.conf_id]
    assert h.focus.legs == {}


def test_invite_without_contact_gets_400_and_leaves_nothing() -> None:
    h = Harness()
    alice = h.ua("alice")
    data = alice.invite(FACTORY, sdp_offer())
    data = b"\r\n".join(line for line in data.split(b"\r\n") if not line.startswith(b"Contact:"))
    r = h.final(h.send(alice, data))
    assert r.status == 400
    assert len(h.focus.registry) == 0
    assert h.media.legs == {}
    assert h.focus.legs == {}
    assert h.focus.table.by_invite == {}


def test_full_conference_refuses_with_486() -> None:
    policy = ConferencePolicy(max_participants=2)
    h = Harness(FocusConfig(domain=DOMAIN, policy=policy, media_host="198.18.0.1"))
    _, uri = h.create(h.ua("alice"))
    h.join(h.ua("bob"), uri)
    r = h.call(h.ua("carol"), uri)
    assert r.status == 486
    assert len(h.conference(uri)) == 2
    assert len(h.media.legs) == 2


def test_endpoint_details_of_leavers_are_dropped_while_the_conference_goes_on() -> None:
    """A long conference with churn must not keep per-leg details of everyone who ever joined."""
    h = Harness()
    owner = h.ua("owner")
    _, uri = h.create(owner)
    for i in range(20):
        ua = h.ua(f"guest{i}")
        h.join(ua, uri)
        h.send(ua, ua.bye())
    assert len(h.focus.details) == 1  # the owner only
