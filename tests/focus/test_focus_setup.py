"""Conference creation at the factory, joining, and the answers to offers the focus must refuse."""

from __future__ import annotations

import base64
import math
import random

import pytest
from helpers import (
    DOMAIN,
    FACTORY,
    FOCUS_HOST,
    SUITE,
    Harness,
    RecordingMedia,
    answer_crypto,
    conf_id_of,
    new_key,
    sdp_offer,
)

from imsconf.conference.participant import ParticipantStatus
from imsconf.focus.config import FocusConfig
from imsconf.media.control import LegPorts, LocalMediaControl
from imsconf.media.engine import MediaEngine
from imsconf.sdp.direction import Direction
from imsconf.sdp.session import SessionDescription


def test_factory_invite_over_tls_creates_conference_with_isfocus_contact() -> None:
    h = Harness()
    alice = h.ua("alice", "tls")
    offer_key = new_key()
    resp = h.call(alice, FACTORY, sdp_offer(key=offer_key))
    assert resp.status == 200
    contact = resp.headers.get("Contact")
    assert contact is not None
    assert contact.endswith(";isfocus")
    uri = contact[1 : contact.index(">")]
    assert uri.startswith("sip:conf-")
    # the conference URI's user and host (the one URI of the conference), at the TLS listener's port
    assert uri.endswith(f"@{DOMAIN}:5061;transport=tls")
    conf = h.conference(uri)
    assert conf.owner == alice.aor
    assert conf.uri == f"sip:conf-{conf.conf_id}@{DOMAIN}"
    # the conference id carries at least 80 random bits: a URL-safe base64 token of >= 14 chars
    conf_id = conf_id_of(uri)
    assert len(conf_id) * math.log2(64) >= 80
    assert set(conf_id) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    # joining, not yet connected until the ACK
    (p,) = conf.participants
    assert p.status is ParticipantStatus.JOINING
    assert h.send(alice, alice.ack()) == []
    assert conf.participant(p.participant_id).status is ParticipantStatus.CONNECTED
    assert conf.participant(p.participant_id).media is not None
    assert conf.participant(p.participant_id).media.srtp  # type: ignore[union-attr]


def test_conference_ids_are_distinct() -> None:
    h = Harness()
    uris = {h.create(h.ua(f"u{i}"))[1] for i in range(20)}
    assert len({conf_id_of(u) for u in uris}) == 20


def test_srtp_answer_has_our_own_key_and_mixer_gets_both_keys() -> None:
    h = Harness()
    alice = h.ua("alice", "tls")
    offer_key = new_key()
    resp = h.call(alice, FACTORY, sdp_offer(key=offer_key, tag=7))
    assert resp.headers.get("Content-Type") == "application/sdp"
    sd = SessionDescription.parse(resp.body)
    (m,) = sd.media
    assert m.proto == "RTP/SAVP"
    assert m.formats[0] in ("0", "8")
    ours = answer_crypto(resp.body)
    assert ours.suite == SUITE
    assert ours.tag == 7  # the tag of the offer's line we accepted (RFC 4568 §7.1.2)
    assert len(ours.key_salt) == 30
    assert ours.key_salt != offer_key
    (leg,) = h.media.legs.values()
    assert leg.configured
    assert leg.tx_key == ours.key_salt  # the mixer sends with the key of our answer
    assert leg.rx_key == offer_key  # and receives with the key of the offer
    assert leg.remote_rtp == ("192.0.2.1", 4000)
    assert leg.codec_name == "PCMU" and leg.codec_pt == 0 and leg.dtmf_pt == 101
    assert leg.direction is Direction.SENDRECV
    assert m.port == leg.ports.rtp_port
    # the key in the answer is not the key of any other leg
    bob = h.ua("bob", "tls")
    resp2 = h.call(bob, alice.target(), sdp_offer(key=offer_key))
    assert answer_crypto(resp2.body).key_salt not in (ours.key_salt, offer_key)


def test_keys_reach_the_real_engine() -> None:
    class FakePorts:
        host = "198.18.0.1"

        def __init__(self) -> None:
            self.next = 42000
            self.open: set[int] = set()

        def open_ports(self, rtcp_mux: bool) -> tuple[int, int]:
            p = self.next
            self.next += 2
            self.open |= {p} if rtcp_mux else {p, p + 1}
            return (p, p) if rtcp_mux else (p, p + 1)

        def close_ports(self, rtp_port: int, rtcp_port: int) -> None:
            self.open -= {rtp_port, rtcp_port}

    ports = FakePorts()
    engine = MediaEngine(rng=random.Random(1))
    h = Harness(control=LocalMediaControl(engine, ports))
    alice = h.ua("alice")
    resp, uri = h.create(alice)
    conf = h.conference(uri)
    (leg_id,) = engine.legs()
    assert engine.leg_conference(leg_id) == conf.conf_id
    rtp, rtcp = engine.leg_ports(leg_id)
    assert SessionDescription.parse(resp.body).media[0].port == rtp
    assert ports.open == {rtp, rtcp}
    bob = h.ua("bob")
    h.join(bob, uri)
    assert len(list(engine.legs())) == 2
    h.send(bob, bob.bye())
    assert len(list(engine.legs())) == 1
    h.send(alice, alice.bye())
    assert list(engine.legs()) == []
    assert ports.open == set()
    assert h.focus.registry.get(conf.conf_id) is None


# ---- refusals -------------------------------------------------------------------------------------------


def test_plain_rtp_refused_with_488() -> None:
    h = Harness()
    alice = h.ua("alice", "tls")
    resp = h.call(alice, FACTORY, sdp_offer(srtp=False))
    assert resp.status == 488
    assert resp.to.tag
    assert len(h.focus.registry) == 0
    assert h.media.legs == {}
    assert h.focus.legs == {}


def test_plain_rtp_accepted_when_allowed() -> None:
    h = Harness(FocusConfig(domain=DOMAIN, allow_plain_rtp=True, media_host="198.18.0.1"))
    alice = h.ua("alice", "udp")
    resp = h.call(alice, FACTORY, sdp_offer(srtp=False))
    assert resp.status == 200
    sd = SessionDescription.parse(resp.body)
    assert sd.media[0].proto == "RTP/AVP"
    assert sd.media[0].get_attributes("crypto") == ()
    (leg,) = h.media.legs.values()
    assert leg.tx_key is None and leg.rx_key is None


def test_sdes_over_udp_refused_with_488() -> None:
    h = Harness()
    alice = h.ua("alice", "udp")
    resp = h.call(alice, FACTORY, sdp_offer())
    assert resp.status == 488
    assert "TLS" in resp.reason or "insecure" in resp.reason
    assert len(h.focus.registry) == 0


def test_sdes_over_tcp_refused_with_488() -> None:
    h = Harness()
    resp = h.call(h.ua("alice", "tcp"), FACTORY, sdp_offer())
    assert resp.status == 488


def test_sdes_over_udp_accepted_when_allowed() -> None:
    h = Harness(FocusConfig(domain=DOMAIN, allow_sdes_over_insecure=True, media_host="198.18.0.1"))
    alice = h.ua("alice", "udp")
    offer_key = new_key()
    resp = h.call(alice, FACTORY, sdp_offer(key=offer_key))
    assert resp.status == 200
    assert answer_crypto(resp.body).key_salt != offer_key
    (leg,) = h.media.legs.values()
    assert leg.rx_key == offer_key


def test_broken_sdp_gets_400_with_reason() -> None:
    h = Harness()
    alice = h.ua("alice", "tls")
    resp = h.call(alice, FACTORY, b"v=0\r\nthis is not sdp\r\n")
    assert resp.status == 400
    assert resp.reason.startswith("Bad Request")
    assert "SDP" in resp.reason
    assert len(h.focus.registry) == 0
    assert h.media.legs == {}


def test_broken_sdp_reason_is_a_safe_status_line() -> None:
    h = Harness()
    alice = h.ua("alice", "tls")
    resp = h.call(alice, FACTORY, b"v=0\r\no=- 1 1 IN IP4 \x01\x7f\xc3\xa9\r\ns=-\r\nt=0 0\r\n")
    assert resp.status == 400
    assert all(0x20 <= ord(c) < 0x7F for c in resp.reason)


def test_bad_crypto_key_length_refused() -> None:
    h = Harness()
    bad = sdp_offer().replace(b"inline:", b"inline:" + base64.b64encode(b"x" * 3)[:4], 1)
    resp = h.call(h.ua("alice"), FACTORY, bad)
    assert resp.status in (400, 488)
    assert len(h.focus.registry) == 0


def test_no_sdp_gets_488() -> None:
    h = Harness()
    alice = h.ua("alice", "tls")
    resp = h.final(h.send(alice, alice.invite(FACTORY)))
    assert resp.status == 488
    assert len(h.focus.registry) == 0


def test_unknown_conference_gets_404() -> None:
    h = Harness()
    alice = h.ua("alice", "tls")
    resp = h.call(alice, f"sip:conf-doesnotexist@{FOCUS_HOST}:5061;transport=tls")
    assert resp.status == 404
    resp = h.call(h.ua("bob"), f"sip:somebody@{DOMAIN}")
    assert resp.status == 404
    assert h.media.legs == {}


def test_refused_join_leaves_the_conference_alone() -> None:
    h = Harness()
    alice = h.ua("alice")
    _, uri = h.create(alice)
    conf = h.conference(uri)
    version = conf.version
    resp = h.call(h.ua("bob", "udp"), uri, sdp_offer())
    assert resp.status == 488
    assert len(conf) == 1
    assert conf.version >= version
    assert h.focus.registry.get(conf.conf_id) is conf
    assert len(h.media.legs) == 1


@pytest.mark.parametrize("transport", ["tls", "udp", "tcp"])
def test_contact_names_the_transport_the_invite_came_on(transport: str) -> None:
    h = Harness(FocusConfig(domain=DOMAIN, allow_sdes_over_insecure=True, media_host="198.18.0.1"))
    resp = h.call(h.ua("alice", transport), FACTORY)
    contact = resp.headers.get("Contact") or ""
    port = 5061 if transport == "tls" else 5060
    assert f"@{DOMAIN}:{port};transport={transport}>" in contact


class _NoPorts(RecordingMedia):
    def allocate_leg(self, conference_id: str, leg_id: str, rtcp_mux: bool) -> LegPorts:
        raise OSError(98, "media port range exhausted")


def test_no_media_ports_is_503_with_retry_after_and_leaves_nothing_behind() -> None:
    h = Harness(control=_NoPorts())
    ua = h.ua("alice")
    resp = h.call(ua, FACTORY)
    assert resp.status == 503 and resp.reason.startswith("Service Unavailable")
    assert resp.headers.get("Retry-After") == "5"
    assert len(h.focus.registry) == 0 and not h.focus.legs
