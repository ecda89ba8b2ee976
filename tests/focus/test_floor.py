"""The focus side of BFCP (imsconf.focus.floor_feature), sans-I/O: SDP answers, binding, chair, media."""

from __future__ import annotations

from collections.abc import Collection
from typing import cast

import pytest
from helpers import Harness, RecordingMedia, conf_id_of, sdp_offer

from imsconf.app.focus_wiring import FocusOptions
from imsconf.floor import (
    BfcpFramer,
    ErrorCode,
    FloorId,
    FloorRequestInformation,
    FloorRequestStatus,
    Message,
    Primitive,
    RequestState,
    RequestStatus,
)
from imsconf.floor.attributes import FloorRequestId
from imsconf.floor.constants import ErrorCodeValue
from imsconf.floor.sdp import BfcpMedia
from imsconf.floor.server import Policy
from imsconf.focus.floor_feature import AUDIO_FLOOR, FocusFloor, certificate_fingerprint
from imsconf.media.control import MediaControl
from imsconf.sdp.session import SessionDescription

SERVER_FP = ("sha-256", certificate_fingerprint(b"server certificate"))


class FloorMedia(RecordingMedia):
    def __init__(self) -> None:
        super().__init__()
        self.floor_control: dict[str, bool] = {}
        self.floor_holders: dict[str, list[str]] = {}

    def set_floor_control(self, conference_id: str, enabled: bool) -> None:
        self.floor_control[conference_id] = enabled

    def set_floor_holders(self, conference_id: str, leg_ids: Collection[str]) -> None:
        self.floor_holders[conference_id] = sorted(leg_ids)


def bfcp_offer(proto: str = "TCP/TLS/BFCP", cert: bytes = b"client", setup: str = "active") -> bytes:
    lines = [
        f"m=application 9 {proto} *",
        f"a=setup:{setup}",
        "a=connection:new",
        "a=floorctrl:c-only",
    ]
    if "TLS" in proto:
        lines.append(f"a=fingerprint:sha-256 {certificate_fingerprint(cert)}")
    return sdp_offer() + ("\r\n".join(lines) + "\r\n").encode()


class Rig:
    def __init__(self, policy: Policy = Policy.CHAIR) -> None:
        self.media = FloorMedia()
        self.h = Harness(control=cast(MediaControl, self.media), options=FocusOptions(floor_policy=policy))
        self.floor: FocusFloor = self.h.focus.floor
        self.floor.set_listener("TCP/TLS/BFCP", "198.18.0.1", 5070, fingerprint=SERVER_FP)
        self.floor.set_listener("TCP/BFCP", "198.18.0.2", 5071)
        self.framers: dict[int, BfcpFramer] = {}
        self.conn = 0
        self.closed: list[int] = []

    def join(self, user: str, uri: str | None, body: bytes) -> tuple[BfcpMedia | None, str, str]:
        ua = self.h.ua(user)
        if uri is None:
            resp, uri = self.h.create(ua, body)
        else:
            resp = self.h.join(ua, uri, body)
        answer = SessionDescription.parse(resp.body)
        apps = [m for m in answer.media if m.media == "application"]
        bm = BfcpMedia.from_media(apps[0]) if apps and apps[0].port else None
        return bm, uri, ua.peer.host

    def connect(self, *, tls: bool, cert: bytes | None = None, host: str = "198.51.100.10") -> int:
        self.conn += 1
        self.floor.connection_made(self.conn, self.h.now)
        self.floor.peer_info(self.conn, tls=tls, peer_cert=cert, peer_host=host)
        self.framers[self.conn] = BfcpFramer()
        return self.conn

    def send(self, conn: int, msg: Message) -> list[Message]:
        self.floor.receive(conn, bytes(msg), self.h.now)
        return self.take()[conn]

    def take(self) -> dict[int, list[Message]]:
        out: dict[int, list[Message]] = {c: [] for c in self.framers}
        for conn, data in self.floor.outputs():
            out[conn] += self.framers[conn].feed(data)
        self.closed += self.floor.connections_to_close()
        return out


def test_answer_accepts_tls_bfcp_with_ids_floors_and_fingerprint() -> None:
    rig = Rig()
    bm, uri, _ = rig.join("alice", None, bfcp_offer())
    assert bm is not None
    assert (bm.port, bm.proto, bm.setup, bm.connection) == (5070, "TCP/TLS/BFCP", "passive", "new")
    assert [f.value for f in bm.floorctrl] == ["s-only"]
    assert bm.fingerprints == (SERVER_FP,)
    assert [(f.floor_id, f.streams) for f in bm.floors] == [(1, ("1",)), (2, ())]
    cf = rig.floor.conferences[conf_id_of(uri)]
    assert bm.conference_id == cf.bfcp_id and bm.user_id in cf.users
    assert rig.media.floor_control == {conf_id_of(uri): True}
    # the audio section carries the label the floor points at; the BFCP host is on the m-line
    answer = SessionDescription.parse(rig.h.focus.legs[next(iter(rig.h.focus.legs))].media.answer)
    assert answer.media[0].get_attribute("label") == "1"
    assert answer.media[1].connections == ()  # the listener is on the session's c= host


def test_tcp_offer_and_unusable_offers() -> None:
    rig = Rig()
    bm, uri, _ = rig.join("alice", None, bfcp_offer("TCP/BFCP"))
    assert bm is not None and bm.proto == "TCP/BFCP" and bm.port == 5071 and not bm.fingerprints
    leg = next(iter(rig.h.focus.legs.values()))
    assert SessionDescription.parse(leg.media.answer).media[1].connections[0].address == "198.18.0.2"
    # TLS without a fingerprint, or an offerer that wants to be passive: port 0, the call still works
    body = sdp_offer() + b"m=application 9 TCP/TLS/BFCP *\r\na=floorctrl:c-only\r\na=setup:active\r\n"
    assert rig.join("bob", uri, body)[0] is None
    assert rig.join("carol", uri, bfcp_offer(setup="passive"))[0] is None
    # no listener for TCP: rejected
    rig2 = Rig()
    rig2.floor._listeners.pop("TCP/BFCP")
    assert rig2.join("alice", None, bfcp_offer("TCP/BFCP"))[0] is None


def hello(bm: BfcpMedia, tid: int = 1) -> Message:
    assert bm.conference_id is not None and bm.user_id is not None
    return Message(Primitive.HELLO, bm.conference_id, tid, bm.user_id)


def error_code(msgs: list[Message]) -> int:
    assert [m.primitive for m in msgs] == [Primitive.ERROR], msgs
    code = msgs[0].get(ErrorCode)
    assert code is not None
    return code.code


def test_binding_checks_ids_certificate_and_host() -> None:
    rig = Rig()
    a, uri, _ = rig.join("alice", None, bfcp_offer(cert=b"alice cert"))
    b, _, bob_host = rig.join("bob", uri, bfcp_offer("TCP/BFCP"))
    assert a is not None and b is not None and a.conference_id is not None
    # unknown conference / unknown user
    c = rig.connect(tls=True, cert=b"alice cert")
    wrong_conf = Message(Primitive.HELLO, (a.conference_id + 1) & 0xFFFFFFFF, 1, a.user_id or 0)
    assert error_code(rig.send(c, wrong_conf)) == ErrorCodeValue.CONFERENCE_DOES_NOT_EXIST
    assert c in rig.closed
    c = rig.connect(tls=True, cert=b"alice cert")
    stranger = Message(Primitive.HELLO, a.conference_id, 1, (a.user_id or 0) ^ 0x8000 or 1)
    assert error_code(rig.send(c, stranger)) == ErrorCodeValue.USER_DOES_NOT_EXIST
    # TLS user: plain TCP, no certificate, another certificate are all refused
    c = rig.connect(tls=False)
    assert error_code(rig.send(c, hello(a))) == ErrorCodeValue.USE_TLS
    c = rig.connect(tls=True, cert=None)
    assert error_code(rig.send(c, hello(a))) == ErrorCodeValue.UNAUTHORIZED_OPERATION
    c = rig.connect(tls=True, cert=b"mallory cert")
    assert error_code(rig.send(c, hello(a))) == ErrorCodeValue.UNAUTHORIZED_OPERATION
    # bob (TCP) must come from his SIP host
    c = rig.connect(tls=False, host="203.0.113.9")
    assert error_code(rig.send(c, hello(b))) == ErrorCodeValue.UNAUTHORIZED_OPERATION
    # the right ones bind; the header arriving in pieces is fine
    c = rig.connect(tls=True, cert=b"alice cert")
    data = bytes(hello(a))
    rig.floor.receive(c, data[:5], rig.h.now)
    assert rig.take()[c] == []
    rig.floor.receive(c, data[5:], rig.h.now)
    assert [m.primitive for m in rig.take()[c]] == [Primitive.HELLO_ACK]
    c2 = rig.connect(tls=False, host=bob_host)
    assert [m.primitive for m in rig.send(c2, hello(b))] == [Primitive.HELLO_ACK]
    # bound to bob: speaking as alice on bob's connection is refused by the floor server
    as_alice = Message(Primitive.FLOOR_REQUEST, a.conference_id, 2, a.user_id or 0, (FloorId(1),))
    assert error_code(rig.send(c2, as_alice)) == ErrorCodeValue.UNAUTHORIZED_OPERATION


def test_unbound_connection_times_out() -> None:
    rig = Rig()
    c = rig.connect(tls=True)
    deadline = rig.floor.next_deadline()
    assert deadline is not None
    rig.floor.handle_timer(deadline)
    assert rig.floor.connections_to_close() == [c]
    assert rig.floor.next_deadline() is None


def request(bm: BfcpMedia, tid: int) -> Message:
    assert bm.conference_id is not None and bm.user_id is not None
    return Message(Primitive.FLOOR_REQUEST, bm.conference_id, tid, bm.user_id, (FloorId(AUDIO_FLOOR),))


def chair_action(chair: BfcpMedia, frid: int, state: RequestState, tid: int) -> Message:
    assert chair.conference_id is not None and chair.user_id is not None
    fri = FloorRequestInformation(frid, (FloorRequestStatus(AUDIO_FLOOR, RequestStatus(state)),))
    return Message(Primitive.CHAIR_ACTION, chair.conference_id, tid, chair.user_id, (fri,))


def frid_of(msgs: list[Message]) -> int:
    fri = msgs[0].get(FloorRequestInformation)
    assert msgs[0].primitive == Primitive.FLOOR_REQUEST_STATUS and fri is not None
    return fri.floor_request_id


def test_chair_grants_and_revokes_and_media_follows() -> None:
    rig = Rig()
    chair, uri, host = rig.join("alice", None, bfcp_offer(cert=b"alice"))
    b, _, bhost = rig.join("bob", uri, bfcp_offer("TCP/BFCP"))
    c, _, chost = rig.join("carol", uri, bfcp_offer("TCP/BFCP"))
    assert chair is not None and b is not None and c is not None
    conf_id = conf_id_of(uri)
    legs = {u.user_id: u.leg_id for u in rig.floor.conferences[conf_id].users.values()}
    cc = rig.connect(tls=True, cert=b"alice", host=host)
    cb = rig.connect(tls=False, host=bhost)
    ccar = rig.connect(tls=False, host=chost)
    for conn, bm in ((cc, chair), (cb, b), (ccar, c)):
        rig.send(conn, hello(bm))
    # chair-controlled: both requests stay pending
    frid_b = frid_of(rig.send(cb, request(b, 2)))
    frid_c = frid_of(rig.send(ccar, request(c, 2)))
    assert rig.floor.holders(conf_id) == [] and rig.media.floor_holders[conf_id] == []
    # only the chair may grant
    assert error_code(rig.send(cb, chair_action(b, frid_b, RequestState.GRANTED, 3))) == 5
    acks = rig.send(cc, chair_action(chair, frid_b, RequestState.GRANTED, 3))
    assert [m.primitive for m in acks] == [Primitive.CHAIR_ACTION_ACK]
    assert rig.media.floor_holders[conf_id] == [legs[b.user_id or -1]]
    # revoke bob, grant carol: the floor moves
    rig.send(cc, chair_action(chair, frid_b, RequestState.REVOKED, 4))
    assert rig.media.floor_holders[conf_id] == []
    rig.send(cc, chair_action(chair, frid_c, RequestState.GRANTED, 5))
    assert rig.media.floor_holders[conf_id] == [legs[c.user_id or -1]]
    kinds = [type(ev).__name__ for _, ev in rig.floor.history]
    assert kinds == ["FloorGranted", "FloorRevoked", "FloorGranted"]
    # carol hangs up: her floor is released, the mixer told
    carol_leg = legs[c.user_id or -1]
    ua_leg = rig.h.focus.legs[carol_leg]
    rig.h.focus.end(rig.h.ep, ua_leg, "left", rig.h.now, send_bye=False)
    assert rig.media.floor_holders[conf_id] == []
    rig.take()
    assert ccar in rig.closed


def test_auto_policy_grants_first_come_and_release_promotes() -> None:
    rig = Rig(Policy.AUTO)
    a, uri, host = rig.join("alice", None, bfcp_offer("TCP/BFCP"))
    b, _, bhost = rig.join("bob", uri, bfcp_offer("TCP/BFCP"))
    assert a is not None and b is not None
    conf_id = conf_id_of(uri)
    ca = rig.connect(tls=False, host=host)
    cb = rig.connect(tls=False, host=bhost)
    frid_a = frid_of(rig.send(ca, request(a, 1)))
    rig.send(cb, request(b, 1))
    legs = {u.user_id: u.leg_id for u in rig.floor.conferences[conf_id].users.values()}
    assert rig.floor.holders(conf_id) == [legs[a.user_id or -1]]
    assert a.conference_id is not None and a.user_id is not None
    release = Message(Primitive.FLOOR_RELEASE, a.conference_id, 2, a.user_id, (FloorRequestId(frid_a),))
    rig.send(ca, release)
    assert rig.media.floor_holders[conf_id] == [legs[b.user_id or -1]]


def test_conference_close_drops_floors_and_connections() -> None:
    rig = Rig()
    a, _, host = rig.join("alice", None, bfcp_offer("TCP/BFCP"))
    assert a is not None
    ca = rig.connect(tls=False, host=host)
    rig.send(ca, hello(a))
    leg = next(iter(rig.h.focus.legs.values()))
    rig.h.focus.end(rig.h.ep, leg, "left", rig.h.now, send_bye=False)  # the owner leaves: closed
    assert rig.floor.conferences == {}
    rig.take()
    assert ca in rig.closed
    c = rig.connect(tls=False, host=host)
    assert error_code(rig.send(c, hello(a))) == ErrorCodeValue.CONFERENCE_DOES_NOT_EXIST


@pytest.mark.parametrize("override", [Policy.AUTO, Policy.CHAIR])
def test_per_conference_policy(override: Policy) -> None:
    rig = Rig(Policy.CHAIR if override is Policy.AUTO else Policy.AUTO)
    ua = rig.h.ua("alice")
    _, uri = rig.h.create(ua, sdp_offer())  # no BFCP yet: the booking-like override comes first
    conf_id = conf_id_of(uri)
    rig.floor.configure(conf_id, policy=override, floor_controlled_audio=False)
    rig.h.send(ua, ua.reinvite(bfcp_offer("TCP/BFCP")))
    cf = rig.floor.conferences[conf_id]
    assert cf.policy is override and not cf.floor_controlled_audio
    assert conf_id not in rig.media.floor_control
