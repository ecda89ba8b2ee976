"""The registrar on the SIP endpoint: digest challenge, Service-Route, and the dispatcher that gives
REGISTER to the registrar and everything else to the focus (app/dispatch.py)."""

from __future__ import annotations

import re

from reg_helpers import DOMAIN, register_bytes, registrar

from imsconf.app.dispatch import RegistrarService, SipDispatcher, service_route
from imsconf.app.server import build_capabilities
from imsconf.registrar.bindings import AorChanged
from imsconf.sip.auth import DigestAuthenticator, compute_ha1, compute_response
from imsconf.sip.endpoint import (
    CHALLENGED_METHODS,
    EndpointConfig,
    IncomingRequest,
    NullApplication,
    SipEndpoint,
)
from imsconf.sip.events import TransactionKey
from imsconf.sip.message import Request, Response, parse_message
from imsconf.sip.peer import Peer
from imsconf.sip.util import make_response

LOCAL = {"udp": ("192.0.2.1", 5060), "tcp": ("192.0.2.1", 5060), "tls": ("192.0.2.1", 5061)}
PASSWORD = "wonderland"


class RecordingApp(NullApplication):
    """The focus stand-in: answers 404 and remembers what it saw."""

    def __init__(self, deadline: float | None = None) -> None:
        self.seen: list[str] = []
        self.timeouts: list[TransactionKey] = []
        self.timers: list[float] = []
        self.deadline = deadline

    def on_request(self, ep: SipEndpoint, req: IncomingRequest, now: float) -> None:
        self.seen.append(req.request.method)
        ep.respond(req.key, make_response(req.request, 404, to_tag=ep.new_tag()), now)

    def on_server_timeout(self, ep: SipEndpoint, key: TransactionKey, now: float) -> None:
        self.timeouts.append(key)

    def next_deadline(self) -> float | None:
        return self.deadline

    def handle_timer(self, ep: SipEndpoint, now: float) -> None:
        self.timers.append(now)
        self.deadline = None


def _lookup(user: str, realm: str, algorithm: str) -> str | None:
    return compute_ha1(user, realm, PASSWORD, algorithm) if user in ("alice", "bob") else None


class Rig:
    def __init__(self, *, app_deadline: float | None = None) -> None:
        self.changes: list[AorChanged] = []
        self.registrar = registrar()
        self.app = RecordingApp(app_deadline)
        self.store_down: int | None = None
        self.service = RegistrarService(self.registrar, self.changes.extend, lambda: self.store_down)
        auth = DigestAuthenticator(DOMAIN, _lookup, b"0123456789abcdef0123456789abcdef")
        config = EndpointConfig(
            caps=build_capabilities(registrar=True),
            local=dict(LOCAL),
            challenged_methods=CHALLENGED_METHODS | {"REGISTER"},
        )
        self.ep = SipEndpoint(config, SipDispatcher(self.app, self.service), auth)
        self.now = 100.0

    def send(self, data: bytes, peer: Peer) -> list[Response]:
        self.ep.receive_datagram(data, peer, self.now)
        out = []
        for raw, _ in self.ep.take_outbox():
            msg = parse_message(raw)
            assert isinstance(msg, Response)
            out.append(msg)
        return out


PEER = Peer("udp", "198.51.100.7", 5070, None, ("192.0.2.1", 5060))


def _authorization(challenge: str, user: str, uri: str) -> str:
    params = dict(re.findall(r'(\w+)="?([^",]*)"?', challenge))
    ha1 = compute_ha1(user, params["realm"], PASSWORD, "SHA-256")
    resp = compute_response("SHA-256", ha1, "REGISTER", uri, params["nonce"], nc="00000001", cnonce="cn")
    return (
        f'Digest username="{user}", realm="{params["realm"]}", nonce="{params["nonce"]}", uri="{uri}", '
        f'response="{resp}", algorithm=SHA-256, cnonce="cn", nc=00000001, qop=auth, '
        f'opaque="{params["opaque"]}"'
    )


def _register_with_auth(rig: Rig, user: str = "alice", to_user: str | None = None, cseq: int = 1) -> Response:
    (challenge,) = rig.send(register_bytes(user, cseq=cseq, to=f"<sip:{to_user or user}@{DOMAIN}>"), PEER)
    assert challenge.status == 401
    www = next(v for v in challenge.headers.get_all("WWW-Authenticate") if "SHA-256" in v)
    auth = _authorization(www, user, f"sip:{DOMAIN}")
    data = register_bytes(
        user, cseq=cseq + 1, to=f"<sip:{to_user or user}@{DOMAIN}>", extra=(("Authorization", auth),)
    )
    (resp,) = rig.send(data, PEER)
    return resp


def test_register_is_challenged_then_bound_with_service_route() -> None:
    rig = Rig()
    resp = _register_with_auth(rig)
    assert resp.status == 200, resp.reason
    assert resp.headers.get_all("Service-Route") == ["<sip:192.0.2.1:5060;transport=udp;lr>"]
    assert resp.headers.get("Contact") == "<sip:alice@198.51.100.7:5070>;expires=3600"
    assert (resp.headers.get("Date") or "").endswith(" GMT")
    assert [c.aor for c in rig.changes] == [f"sip:alice@{DOMAIN}"]
    assert rig.app.seen == []


def test_while_the_bindings_store_is_down_a_register_is_503_with_retry_after() -> None:
    """The store cannot take writes: a REGISTER that would change bindings is refused before the registrar
    sees it (no binding only in memory); the store back, the next one binds."""
    rig = Rig()
    rig.store_down = 5
    resp = _register_with_auth(rig)
    assert resp.status == 503 and resp.headers.get("Retry-After") == "5"
    assert rig.registrar.lookup(f"sip:alice@{DOMAIN}", rig.now) == [] and rig.changes == []
    rig.store_down = None
    resp = _register_with_auth(rig, cseq=3)
    assert resp.status == 200 and [c.aor for c in rig.changes] == [f"sip:alice@{DOMAIN}"]


def test_the_authenticated_user_must_own_the_aor() -> None:
    rig = Rig()
    resp = _register_with_auth(rig, "bob", to_user="alice")
    assert resp.status == 403
    assert rig.registrar.lookup(f"sip:alice@{DOMAIN}", rig.now) == []


def test_other_requests_reach_the_application() -> None:
    rig = Rig()
    data = register_bytes().replace(b"REGISTER", b"PUBLISH")
    rig.ep.config.challenged_methods = frozenset({"REGISTER"})
    (resp,) = rig.send(data, PEER)
    assert resp.status == 405  # PUBLISH is not in Allow: the core answers it
    data = register_bytes().replace(b"REGISTER sip:", b"INFO sip:").replace(b"1 REGISTER", b"1 INFO")
    (resp,) = rig.send(data, PEER)
    assert resp.status == 404 and rig.app.seen == ["INFO"]


def test_options_advertises_register_only_when_the_registrar_is_on() -> None:
    assert "REGISTER" in build_capabilities(registrar=True).allow
    assert "path" in build_capabilities(registrar=True).supported
    assert "REGISTER" not in build_capabilities().allow
    assert "path" not in build_capabilities().supported


def test_timers_reach_the_part_that_is_due() -> None:
    rig = Rig(app_deadline=500.0)
    assert _register_with_auth(rig).status == 200
    dispatcher = rig.ep.app
    assert dispatcher.next_deadline() == 500.0
    rig.ep.handle_timer(500.0)
    assert rig.app.timers == [500.0]
    assert dispatcher.next_deadline() == rig.now + 3600
    rig.changes.clear()
    rig.ep.handle_timer(rig.now + 3600)
    assert rig.app.timers == [500.0]
    assert rig.changes == [AorChanged(f"sip:alice@{DOMAIN}", ())]
    assert dispatcher.next_deadline() is None


def test_server_timeouts_of_other_requests_reach_the_application() -> None:
    rig = Rig()
    dispatcher = rig.ep.app
    dispatcher.on_server_timeout(rig.ep, TransactionKey("z9hG4bK1", "INVITE", "h:1"), 1.0)
    dispatcher.on_server_timeout(rig.ep, TransactionKey("z9hG4bK2", "REGISTER", "h:1"), 1.0)
    assert [k.method for k in rig.app.timeouts] == ["INVITE"]


def _req(ruri: str = f"sip:{DOMAIN}") -> Request:
    msg = parse_message(register_bytes(ruri=ruri))
    assert isinstance(msg, Request)
    return msg


def test_service_route_names_the_transport_and_address_the_request_came_to() -> None:
    rig = Rig()
    assert service_route(rig.ep, _req(), Peer("tcp", "198.51.100.7", 40000, 3, ("192.0.2.9", 5070))) == (
        "<sip:192.0.2.9:5070;transport=tcp;lr>"
    )
    assert service_route(rig.ep, _req(), Peer("tls", "198.51.100.7", 40000, 3)) == (
        "<sips:192.0.2.1:5061;transport=tls;lr>"
    )
    assert service_route(rig.ep, _req(), Peer("udp", "2001:db8::7", 5070, None, ("2001:db8::1", 5060))) == (
        "<sip:[2001:db8::1]:5060;transport=udp;lr>"
    )


def test_service_route_behind_a_wildcard_listener_uses_the_request_uri_host() -> None:
    rig = Rig()
    rig.ep.config.local = {"udp": ("0.0.0.0", 5060)}
    peer = Peer("udp", "198.51.100.7", 5070, None, ("0.0.0.0", 5060))
    assert service_route(rig.ep, _req("sip:203.0.113.5"), peer) == "<sip:203.0.113.5:5060;transport=udp;lr>"


def test_an_unparseable_contact_is_400_naming_contact() -> None:
    rig = Rig()
    data = register_bytes(contacts=("<sip:alice@bad host>",))
    (resp,) = rig.send(data, PEER)
    assert resp.status == 400 and "Contact" in resp.reason
