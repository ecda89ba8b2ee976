"""Dial-out to a user registered at this server: the focus's Locator seam (focus/routing.py) over the
registrar core, wired as app/focus_wiring.py does (FocusOptions.locator)."""

from __future__ import annotations

from control_helpers import MULTIPART, Phone, answer, invite_for, multipart, ok_all, resource_list
from helpers import FACTORY, Harness, requests, responses, sdp_offer

from imsconf.app.focus_wiring import FocusOptions
from imsconf.conference.participant import ParticipantStatus
from imsconf.focus.routing import dial_route, registered_route
from imsconf.registrar.core import Registrar, RegistrarConfig
from imsconf.sip.message import Request, parse_message
from imsconf.sip.peer import Peer
from imsconf.sip.uri import SipUri

REG_DOMAIN = "users.example.com"
BOB_AOR = f"sip:bob@{REG_DOMAIN}"
BOB_CONTACT = "sip:bob@198.51.100.60:40100;transport=tls"
BOB_FLOW = Peer("tls", "198.51.100.60", 40100, 33)


def _registrar(now: float, *, path: str | None = None, contact: str = BOB_CONTACT) -> Registrar:
    reg = Registrar(RegistrarConfig(domains=frozenset({REG_DOMAIN}), require_auth=False))
    lines = [
        f"REGISTER sip:{REG_DOMAIN} SIP/2.0",
        "Via: SIP/2.0/TLS 198.51.100.60:40100;branch=z9hG4bK-r1",
        f"From: <{BOB_AOR}>;tag=r1",
        f"To: <{BOB_AOR}>",
        "Call-ID: reg-bob",
        "CSeq: 1 REGISTER",
        f"Contact: <{contact}>",
        *([f"Path: {path}"] if path else []),
        "Content-Length: 0",
    ]
    msg = parse_message(("\r\n".join(lines) + "\r\n\r\n").encode())
    assert isinstance(msg, Request)
    assert reg.register(msg, BOB_FLOW, None, now).status == 200
    return reg


def _harness(reg: Registrar) -> Harness:
    return Harness(options=FocusOptions(locator=reg))


def test_refer_to_a_registered_aor_invites_its_binding_over_the_registration_connection() -> None:
    h = Harness()
    reg = _registrar(h.now)
    h = _harness(reg)
    alice = h.ua("alice")
    _, uri = h.create(alice)
    sent = h.send(alice, alice.refer(f"<{BOB_AOR}>"))
    ((inv, dest),) = requests(sent, "INVITE")
    assert inv.uri == BOB_CONTACT  # the Request-URI is the registered contact
    assert inv.to.uri.aor == BOB_AOR  # the To is still the AoR that was dialled
    assert inv.headers.get_all("Route") == []
    assert dest == Peer("tls", "198.51.100.60", 40100, 33)  # on the connection the REGISTER came over
    ok_all(h, alice, sent)
    bob = Phone("bob", Peer("tls", "198.51.100.60", 40100))
    answer(h, bob, inv)
    conf = h.conference(uri)
    assert conf.participants_of(BOB_AOR)[0].status is ParticipantStatus.CONNECTED


def test_the_binding_path_is_the_route_set_and_the_first_hop() -> None:
    h = Harness()
    reg = _registrar(h.now, path="<sip:edge.example.net:5070;transport=tls;lr>")
    h = _harness(reg)
    alice = h.ua("alice")
    h.create(alice)
    sent = h.send(alice, alice.refer(f"<{BOB_AOR}>"))
    ((inv, dest),) = requests(sent, "INVITE")
    assert inv.uri == BOB_CONTACT
    assert inv.headers.get_all("Route") == ["<sip:edge.example.net:5070;transport=tls;lr>"]
    assert (dest.transport, dest.host, dest.port) == ("tls", "edge.example.net", 5070)


def test_uri_list_invitations_reach_registered_users_too() -> None:
    h = Harness()
    h = _harness(_registrar(h.now))
    alice = h.ua("alice")
    body = multipart(sdp_offer(), resource_list(BOB_AOR))
    sent = h.send(alice, alice.invite(FACTORY, body, extra=(("Require", "recipient-list-invite"),),
                                      content_type=MULTIPART))  # fmt: skip
    assert responses(sent, 200)
    ((inv, dest),) = requests(sent, "INVITE")
    assert inv.uri == BOB_CONTACT and dest.host == "198.51.100.60"


def test_without_a_binding_the_target_host_is_used_as_before() -> None:
    h = Harness()
    h = _harness(_registrar(h.now))
    alice = h.ua("alice")
    h.create(alice)
    carol = Phone("carol", Peer("tls", "198.51.100.61", 5091))
    sent = h.send(alice, alice.refer(f"<sip:carol@{REG_DOMAIN}>"))
    ((inv, dest),) = requests(sent, "INVITE")
    assert inv.uri == f"sip:carol@{REG_DOMAIN}" and dest.host == REG_DOMAIN
    sent = h.send(alice, alice.refer(f"<{carol.uri()}>"))
    assert invite_for(sent, carol).uri == carol.uri()


def test_expired_bindings_are_not_used() -> None:
    h = Harness()
    reg = _registrar(h.now)
    h = _harness(reg)
    h.now += 3601
    route = dial_route(SipUri.parse(BOB_AOR), "tls", reg, h.now)
    assert route.request_uri == BOB_AOR and route.dest.host == REG_DOMAIN


def test_a_uri_with_a_port_is_a_host_to_go_to_not_an_aor() -> None:
    reg = _registrar(0.0)
    target = SipUri.parse(f"sip:bob@{REG_DOMAIN}:5060")
    route = dial_route(target, "udp", reg, 1.0)
    assert route.request_uri == str(target) and route.routes == ()


def test_registered_route_follows_the_contact_transport() -> None:
    reg = _registrar(0.0, contact="sip:bob@198.51.100.60:5062;transport=udp")
    (b,) = reg.lookup(BOB_AOR, 1.0)
    route = registered_route(b)
    assert route.dest == Peer("udp", "198.51.100.60", 5062)  # not the TLS registration connection


def test_the_registration_connection_is_reused_only_for_its_own_address_or_ob() -> None:
    reg = _registrar(0.0, contact="sip:bob@198.51.100.60:5090;transport=tls")
    (b,) = reg.lookup(BOB_AOR, 1.0)
    assert registered_route(b).dest == Peer("tls", "198.51.100.60", 5090)  # a connection of its own
    reg = _registrar(0.0, contact="sip:bob@198.51.100.60:5090;transport=tls;ob")
    (b,) = reg.lookup(BOB_AOR, 1.0)
    assert registered_route(b).dest == Peer("tls", "198.51.100.60", 5090, 33)
