"""IMS mode at the focus: P-Asserted-Identity from trusted peers only (RFC 3325), the outbound proxy as the
first (loose) route of every request the focus originates out of dialog."""

from __future__ import annotations

import logging

import pytest
from control_helpers import (
    Phone,
    answer,
    answer_sdp,
    invite_for,
    multipart,
    notifies,
    ok_all,
    q,
    resource_list,
    subscribe,
)
from helpers import DOMAIN, FACTORY, UA, Harness, answer_to, requests, sdp_offer
from lxml import etree

from imsconf.focus.config import FocusConfig
from imsconf.sip.auth import DigestAuthenticator, compute_ha1
from imsconf.sip.endpoint import IncomingRequest, SipEndpoint
from imsconf.sip.identity import TrustedPeers
from imsconf.sip.peer import Peer

from control_helpers import MULTIPART  # isort: skip

SCSCF = "198.51.100.200"
EXT = "{urn:imsconf:params:xml:ns:conference-info-ext}"
ASSERTED = "<sip:+15551234@ims.example.net>"


def ims_harness(config: FocusConfig | None = None, *, digest: bool = False) -> Harness:
    h = Harness(config)
    h.ep.config.trusted = TrustedPeers.parse([f"{SCSCF}/32", "2001:db8::/32"])
    if digest:
        h.ep.auth = DigestAuthenticator(
            DOMAIN, lambda user, realm, alg: compute_ha1(user, realm, "pw", alg), b"k" * 32
        )
    return h


def from_scscf(h: Harness, user: str) -> UA:
    """A UA whose requests come through the S-CSCF (a trusted peer)."""
    ua = h.ua(user)
    return UA(user, Peer("tls", SCSCF, ua.peer.port, ua.peer.conn))


def roster(h: Harness, uri: str) -> etree._Element:
    """The full conference-info document a subscriber gets now."""
    sub = h.ua("alice")
    resp, sent = subscribe(h, sub, uri)
    assert resp.status == 200, (resp.status, resp.reason)
    (n,) = notifies(sent, "conference")
    ok_all(h, sub, sent)
    return etree.fromstring(n.body)


def users(doc: etree._Element) -> dict[str, etree._Element]:
    return {str(u.get("entity")): u for u in doc.iter(q("user"))}


def test_trusted_peers_parse_and_match() -> None:
    t = TrustedPeers.parse(["10.0.0.0/8", "192.0.2.7", "2001:db8::/32"])
    assert t.trusts(Peer("udp", "10.1.2.3", 5060))
    assert t.trusts(Peer("udp", "192.0.2.7", 5060)) and not t.trusts(Peer("udp", "192.0.2.8", 5060))
    assert t.trusts(Peer("tls", "2001:db8::1", 5061))
    assert t.trusts(Peer("udp", "::ffff:10.0.0.1", 5060))  # a v4-mapped source on a dual-stack socket
    assert not t.trusts(Peer("udp", "not-an-address", 5060))
    assert not TrustedPeers().trusts(Peer("udp", "10.1.2.3", 5060))
    with pytest.raises(ValueError, match=r"trusted_peers: 'scscf\.example\.net'"):
        TrustedPeers.parse(["scscf.example.net"])


def test_untrusted_pai_is_stripped_and_never_authenticated(caplog: pytest.LogCaptureFixture) -> None:
    h = ims_harness()
    owner = h.ua("alice")
    _, uri = h.create(owner)
    mallory = h.ua("mallory")  # straight from the access network, not through the S-CSCF
    caplog.set_level(logging.DEBUG)
    seen: list[str | None] = []
    on_request = h.focus.on_request

    def spy(ep: SipEndpoint, inc: IncomingRequest, now: float) -> None:
        seen.append(inc.request.headers.get("P-Asserted-Identity"))
        on_request(ep, inc, now)

    h.focus.on_request = spy  # type: ignore[method-assign]
    h.join(mallory, uri, extra=(("P-Asserted-Identity", ASSERTED),))
    assert seen == [None]  # removed before the focus saw the request
    assert h.ep.counters["rx_untrusted_asserted_identity"] == 1
    doc = roster(h, uri)
    found = users(doc)
    assert "sip:+15551234@ims.example.net" not in found
    ident = found[mallory.aor].find(f"{EXT}identity")
    assert ident is not None and ident.get("authenticated") == "false" and ident.get("method") is None
    assert b"+15551234" not in etree.tostring(doc)
    log = caplog.text
    assert "+15551234" not in log
    assert "event=asserted_identity_ignored" in log
    assert f"user={mallory.aor} srtp=True transport=tls identity=none" in log


def test_trusted_pai_is_the_participants_identity(caplog: pytest.LogCaptureFixture) -> None:
    h = ims_harness(digest=True)
    owner = from_scscf(h, "alice")
    caplog.set_level(logging.INFO)
    # digest is not demanded from the S-CSCF: it authenticated the user
    resp = h.call(owner, FACTORY, extra=(("P-Asserted-Identity", f'"Alice" {ASSERTED}, <tel:+15551234>'),))
    assert resp.status == 200, (resp.status, resp.reason)
    assert h.send(owner, owner.ack()) == []
    assert owner.remote_target is not None
    conf = h.conference(owner.remote_target)
    (p,) = conf.participants
    assert p.user == "sip:+15551234@ims.example.net" and p.identity_authenticated
    assert conf.owner == "sip:+15551234@ims.example.net"
    assert "identity=asserted" in caplog.text
    # the document marks the identity authenticated, by assertion (a subscriber through the S-CSCF too)
    sub = from_scscf(h, "alice")
    sent = h.send(sub, sub.subscribe(owner.remote_target, more=(("P-Asserted-Identity", ASSERTED),)))
    (n,) = notifies(sent, "conference")
    doc = etree.fromstring(n.body)
    ident = users(doc)["sip:+15551234@ims.example.net"].find(f"{EXT}identity")
    assert ident is not None and ident.get("authenticated") == "true" and ident.get("method") == "asserted"


def test_untrusted_peer_is_still_challenged_and_its_pai_ignored() -> None:
    h = ims_harness(digest=True)
    mallory = h.ua("mallory")
    resp = h.call(mallory, FACTORY, extra=(("P-Asserted-Identity", ASSERTED),))
    assert resp.status == 401


def test_trusted_peer_without_pai_is_unauthenticated() -> None:
    h = ims_harness()
    ua = from_scscf(h, "bob")
    h.join(ua, FACTORY)
    (p,) = next(iter(h.focus.registry)).participants
    assert p.user == ua.aor and not p.identity_authenticated


def test_privacy_id_is_honoured_for_an_asserted_identity() -> None:
    h = ims_harness()
    owner = h.ua("alice")
    _, uri = h.create(owner)
    hidden = from_scscf(h, "carol")
    h.join(hidden, uri, extra=(("P-Asserted-Identity", "<sip:carol@ims.example.net>"), ("Privacy", "id")))
    p = h.conference(uri).participants_of("sip:carol@ims.example.net")[0]
    assert p.identity_authenticated and p.privacy


# ---------------------------------------------------------------------------------------------- routing


def _dial_out(h: Harness, who: Phone) -> list[tuple[object, Peer]]:
    alice = h.ua("alice")
    body = multipart(sdp_offer(), resource_list(who.uri()))
    sent = h.send(alice, alice.invite(FACTORY, body, extra=(("Require", "recipient-list-invite"),),
                                      content_type=MULTIPART))  # fmt: skip
    resp = h.final(sent)
    assert resp.status == 200
    alice.learn(resp)
    h.send(alice, alice.ack())
    return list(sent)


def test_dial_out_invite_goes_through_the_outbound_proxy() -> None:
    cfg = FocusConfig(domain=DOMAIN, media_host="198.18.0.1", outbound_proxy="sip:scscf.ims.example.net:5070")
    h = ims_harness(cfg)
    bob = Phone("bob", Peer("tls", "198.51.100.60", 5090))
    sent = _dial_out(h, bob)
    ((invite, dest),) = requests(sent, "INVITE")  # type: ignore[arg-type]
    assert invite.uri == bob.uri()  # the Request-URI stays the target: loose routing
    assert invite.headers.get_all("Route") == ["<sip:scscf.ims.example.net:5070;lr>"]
    assert (dest.host, dest.port, dest.transport) == ("scscf.ims.example.net", 5070, "tls")
    # in the dialog: the route set of the 2xx (none recorded here), not the proxy
    out = answer(h, bob, invite_for(sent, bob))  # type: ignore[arg-type]
    ((ack, _),) = requests(out, "ACK")
    assert ack.headers.get("Route") is None


def test_dial_out_cancel_follows_the_invite_through_the_proxy() -> None:
    cfg = FocusConfig(
        domain=DOMAIN,
        media_host="198.18.0.1",
        dial_timeout=30,
        allow_sdes_over_insecure=True,  # the hop to the proxy is TCP
        outbound_proxy="<sip:10.9.9.9;transport=tcp;lr>",
    )
    h = ims_harness(cfg)
    bob = Phone("bob", Peer("tls", "198.51.100.61", 5090))
    sent = _dial_out(h, bob)
    ((invite, dest),) = requests(sent, "INVITE")  # type: ignore[arg-type]
    assert invite.headers.get_all("Route") == ["<sip:10.9.9.9;transport=tcp;lr>"]
    assert (dest.host, dest.transport) == ("10.9.9.9", "tcp")
    ((cancel, cdest),) = requests(h.advance(31), "CANCEL")
    assert cancel.headers.get_all("Route") == ["<sip:10.9.9.9;transport=tcp;lr>"]
    assert (cdest.host, cdest.transport) == ("10.9.9.9", "tcp")


def test_without_outbound_proxy_dial_out_goes_to_the_target() -> None:
    h = ims_harness()
    bob = Phone("bob", Peer("tls", "198.51.100.62", 5090))
    ((invite, dest),) = requests(_dial_out(h, bob), "INVITE")  # type: ignore[arg-type]
    assert invite.headers.get("Route") is None and dest.host == "198.51.100.62"


def test_in_dialog_requests_follow_the_route_set_not_the_proxy() -> None:
    cfg = FocusConfig(domain=DOMAIN, media_host="198.18.0.1", outbound_proxy="sip:scscf.ims.example.net;lr")
    h = ims_harness(cfg)
    bob = Phone("bob", Peer("tls", "198.51.100.63", 5090))
    sent = _dial_out(h, bob)
    invite = invite_for(sent, bob)  # type: ignore[arg-type]
    body = answer_sdp(invite.body)
    data = answer_to(invite, 200, "OK", to_tag=bob.to_tag, contact=bob.contact(), body=body)
    rr = (
        b"Record-Route: <sip:scscf-b.ims.example.net;lr>\r\n"
        b"Record-Route: <sip:scscf-a.ims.example.net;lr>\r\n"
    )
    head, sep, rest = data.partition(b"\r\n")
    h.ep.receive_datagram(head + sep + rr + rest, Peer("tls", "scscf.ims.example.net", 5061, 900), h.now)
    ((ack, _),) = requests(h.take(), "ACK")
    # the UAC's route set is the Record-Route in reverse, and the remote target is the Request-URI
    assert ack.headers.get_all("Route") == [
        "<sip:scscf-a.ims.example.net;lr>",
        "<sip:scscf-b.ims.example.net;lr>",
    ]
    assert ack.uri == bob.uri()
