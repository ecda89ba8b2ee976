"""Floor control server driven in memory: clients and server talk through byte lists, with a fake clock."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from imsconf.floor.attributes import (
    Attribute,
    BeneficiaryId,
    BeneficiaryInformation,
    ErrorCode,
    FloorId,
    FloorRequestId,
    FloorRequestInformation,
    FloorRequestStatus,
    OverallRequestStatus,
    Priority,
    RequestStatus,
    StatusInfo,
    SupportedAttributes,
    SupportedPrimitives,
)
from imsconf.floor.codec import BfcpFramer, Message
from imsconf.floor.constants import AttributeType, ErrorCodeValue, Primitive, PriorityLevel, RequestState
from imsconf.floor.events import FloorGranted, FloorReleased, FloorRevoked
from imsconf.floor.server import FloorConfig, FloorControlServer, Policy

CONF = 4321
AUDIO, SLIDES = 1, 2
CHAIR = 100
S = RequestState
E = ErrorCodeValue


class Harness:
    """A server plus per-connection inboxes; each client is one connection bound to one user."""

    def __init__(self, floors: Iterable[FloorConfig] | None = None) -> None:
        if floors is None:
            floors = [
                FloorConfig(AUDIO, Policy.AUTO, max_holders=2),
                FloorConfig(SLIDES, Policy.CHAIR, chair_id=CHAIR),
            ]
        self.server = FloorControlServer(CONF, floors, bind_timeout=10.0)
        self.inbox: dict[int, list[Message]] = {}
        self.framers: dict[int, BfcpFramer] = {}
        self.closed: set[int] = set()
        self.now = 0.0
        self.tid = 0

    def connect(self, conn_id: int, user_id: int | None) -> int:
        self.server.connection_made(conn_id, self.now)
        if user_id is not None:
            self.server.bind(
                conn_id, user_id, display_name=f"user{user_id}", uri=f"sip:u{user_id}@example.com"
            )
        self.inbox[conn_id] = []
        self.framers[conn_id] = BfcpFramer()
        return conn_id

    def pump(self) -> None:
        for conn_id, data in self.server.outputs():
            self.inbox[conn_id] += self.framers[conn_id].feed(data)
        self.closed |= set(self.server.connections_to_close())

    def raw(self, conn_id: int, data: bytes) -> None:
        self.server.receive(conn_id, data, self.now)
        self.pump()

    def send(
        self,
        conn_id: int,
        primitive: Primitive,
        *attrs: Attribute,
        user_id: int | None = None,
        conf: int = CONF,
    ) -> Message:
        """Send a request and return its response; notifications stay in the inbox."""
        self.tid += 1
        uid = conn_id if user_id is None else user_id
        self.raw(conn_id, bytes(Message(primitive, conf, self.tid, uid, attrs)))
        responses = [m for m in self.inbox[conn_id] if m.transaction_id == self.tid]
        assert len(responses) == 1, responses
        self.inbox[conn_id].remove(responses[0])
        return responses[0]

    def take(self, conn_id: int) -> list[Message]:
        out, self.inbox[conn_id] = self.inbox[conn_id], []
        return out


def fri_of(msg: Message) -> FloorRequestInformation:
    fri = msg.get(FloorRequestInformation)
    assert fri is not None, msg
    return fri


def state_of(msg: Message, floor_id: int | None = None) -> RequestState:
    fri = fri_of(msg)
    if floor_id is None:
        assert (
            fri.overall_request_status is not None and fri.overall_request_status.request_status is not None
        )
        return fri.overall_request_status.request_status.state
    (frs,) = [s for s in fri.floor_request_statuses if s.floor_id == floor_id]
    assert frs.request_status is not None
    return frs.request_status.state


def error_code(msg: Message) -> int:
    assert msg.primitive == Primitive.ERROR, msg
    code = msg.get(ErrorCode)
    assert code is not None
    return code.code


def chair_action(
    frid: int, floor_id: int, state: RequestState, info: str | None = None
) -> FloorRequestInformation:
    return FloorRequestInformation(
        frid, (FloorRequestStatus(floor_id, RequestStatus(state), StatusInfo(info) if info else None),)
    )


@pytest.fixture
def h() -> Harness:
    harness = Harness()
    for user in (1, 2, 3, CHAIR):
        harness.connect(user, user)
    return harness


def test_hello(h: Harness) -> None:
    ack = h.send(1, Primitive.HELLO)
    assert ack.primitive == Primitive.HELLO_ACK
    assert (ack.conference_id, ack.user_id) == (CONF, 1)
    prims = ack.get(SupportedPrimitives)
    attrs = ack.get(SupportedAttributes)
    assert prims is not None and Primitive.FLOOR_REQUEST in prims.primitives
    assert attrs is not None and set(attrs.types) == set(AttributeType)


def test_auto_floor_grant_queue_release(h: Harness) -> None:
    for user in (1, 2):
        rsp = h.send(user, Primitive.FLOOR_REQUEST, FloorId(AUDIO))
        assert state_of(rsp) == S.GRANTED
    rsp = h.send(3, Primitive.FLOOR_REQUEST, FloorId(AUDIO))  # max_holders=2
    assert state_of(rsp) == S.PENDING
    fri3 = fri_of(rsp)
    assert fri3.floor_request_statuses[0].request_status == RequestStatus(S.PENDING, 1)
    assert h.server.holders(AUDIO) == {1, 2}
    assert h.server.events() == [FloorGranted(AUDIO, 1, 1), FloorGranted(AUDIO, 2, 2)]

    rsp = h.send(1, Primitive.FLOOR_RELEASE, FloorRequestId(1))
    assert rsp.primitive == Primitive.FLOOR_REQUEST_STATUS and state_of(rsp) == S.RELEASED
    (note,) = h.take(3)
    assert note.transaction_id == 0 and note.user_id == 3 and state_of(note) == S.GRANTED
    assert h.server.holders(AUDIO) == {2, 3}
    assert h.server.events() == [FloorReleased(AUDIO, 1, 1), FloorGranted(AUDIO, 3, fri3.floor_request_id)]
    assert (
        error_code(h.send(1, Primitive.FLOOR_RELEASE, FloorRequestId(1))) == E.FLOOR_REQUEST_ID_DOES_NOT_EXIST
    )


def test_cancel_a_pending_request(h: Harness) -> None:
    frid = fri_of(h.send(1, Primitive.FLOOR_REQUEST, FloorId(SLIDES))).floor_request_id
    assert state_of(h.send(1, Primitive.FLOOR_RELEASE, FloorRequestId(frid))) == S.CANCELLED
    assert h.server.events() == []


def test_priorities_order_the_queue() -> None:
    h = Harness([FloorConfig(AUDIO, Policy.AUTO)])
    for user in (1, 2, 3, 4):
        h.connect(user, user)
    h.send(1, Primitive.FLOOR_REQUEST, FloorId(AUDIO))
    h.send(2, Primitive.FLOOR_REQUEST, FloorId(AUDIO), Priority(PriorityLevel.LOW))
    h.send(3, Primitive.FLOOR_REQUEST, FloorId(AUDIO))
    rsp = h.send(4, Primitive.FLOOR_REQUEST, FloorId(AUDIO), Priority(PriorityLevel.HIGHEST))
    assert fri_of(rsp).floor_request_statuses[0].request_status == RequestStatus(S.PENDING, 1)
    # user 2 (LOW) is pushed back twice, each move is notified with transaction id 0
    moves = [fri_of(m).floor_request_statuses[0].request_status for m in h.take(2)]
    assert moves == [RequestStatus(S.PENDING, 2), RequestStatus(S.PENDING, 3)]
    h.server.events()
    h.send(1, Primitive.FLOOR_RELEASE, FloorRequestId(1))
    assert h.server.holders(AUDIO) == {4}
    h.send(4, Primitive.FLOOR_RELEASE, FloorRequestId(4))
    assert h.server.holders(AUDIO) == {3}


def test_chair_grant_and_revoke(h: Harness) -> None:
    rsp = h.send(1, Primitive.FLOOR_REQUEST, FloorId(SLIDES))
    assert state_of(rsp) == S.PENDING
    frid = fri_of(rsp).floor_request_id
    assert h.server.holders(SLIDES) == set()

    ack = h.send(CHAIR, Primitive.CHAIR_ACTION, chair_action(frid, SLIDES, S.ACCEPTED), user_id=CHAIR)
    assert ack.primitive == Primitive.CHAIR_ACTION_ACK
    assert [state_of(m) for m in h.take(1)] == [S.ACCEPTED]

    h.send(CHAIR, Primitive.CHAIR_ACTION, chair_action(frid, SLIDES, S.GRANTED, "go ahead"), user_id=CHAIR)
    (note,) = h.take(1)
    assert note.transaction_id == 0 and state_of(note, SLIDES) == S.GRANTED
    ors = fri_of(note).overall_request_status
    assert ors is not None and ors.status_info == StatusInfo("go ahead")
    assert h.server.holders(SLIDES) == {1}
    assert h.server.events() == [FloorGranted(SLIDES, 1, frid)]

    h.send(CHAIR, Primitive.CHAIR_ACTION, chair_action(frid, SLIDES, S.REVOKED), user_id=CHAIR)
    assert [state_of(m) for m in h.take(1)] == [S.REVOKED]
    assert h.server.holders(SLIDES) == set()
    assert h.server.events() == [FloorRevoked(SLIDES, 1, frid)]


def test_chair_deny(h: Harness) -> None:
    frid = fri_of(h.send(2, Primitive.FLOOR_REQUEST, FloorId(SLIDES))).floor_request_id
    h.send(CHAIR, Primitive.CHAIR_ACTION, chair_action(frid, SLIDES, S.DENIED), user_id=CHAIR)
    assert [state_of(m) for m in h.take(2)] == [S.DENIED]
    assert (
        error_code(h.send(2, Primitive.FLOOR_RELEASE, FloorRequestId(frid)))
        == E.FLOOR_REQUEST_ID_DOES_NOT_EXIST
    )


def test_chair_action_rules(h: Harness) -> None:
    frid = fri_of(h.send(1, Primitive.FLOOR_REQUEST, FloorId(SLIDES))).floor_request_id
    # not the chair: Unauthorized Operation, nothing changes
    rsp = h.send(2, Primitive.CHAIR_ACTION, chair_action(frid, SLIDES, S.GRANTED))
    assert error_code(rsp) == E.UNAUTHORIZED_OPERATION
    assert h.server.holders(SLIDES) == set()
    # the chair of another floor only
    assert error_code(
        h.send(CHAIR, Primitive.CHAIR_ACTION, chair_action(frid, AUDIO, S.GRANTED), user_id=CHAIR)
    ) == (E.UNAUTHORIZED_OPERATION)
    assert error_code(
        h.send(CHAIR, Primitive.CHAIR_ACTION, chair_action(999, SLIDES, S.GRANTED), user_id=CHAIR)
    ) == (E.FLOOR_REQUEST_ID_DOES_NOT_EXIST)
    assert error_code(
        h.send(CHAIR, Primitive.CHAIR_ACTION, chair_action(frid, 9, S.GRANTED), user_id=CHAIR)
    ) == (E.INVALID_FLOOR_ID)
    # Pending -> Revoked is not a transition
    assert error_code(
        h.send(CHAIR, Primitive.CHAIR_ACTION, chair_action(frid, SLIDES, S.REVOKED), user_id=CHAIR)
    ) == (E.GENERIC_ERROR)
    h.send(CHAIR, Primitive.CHAIR_ACTION, chair_action(frid, SLIDES, S.GRANTED), user_id=CHAIR)
    other = fri_of(h.send(2, Primitive.FLOOR_REQUEST, FloorId(SLIDES))).floor_request_id
    # max_holders=1: a second grant is refused
    rsp = h.send(CHAIR, Primitive.CHAIR_ACTION, chair_action(other, SLIDES, S.GRANTED), user_id=CHAIR)
    assert error_code(rsp) == E.GENERIC_ERROR
    assert h.server.holders(SLIDES) == {1}


def test_overall_status_applies_to_listed_floors(h: Harness) -> None:
    frid = fri_of(h.send(1, Primitive.FLOOR_REQUEST, FloorId(SLIDES))).floor_request_id
    fri = FloorRequestInformation(
        frid,
        (FloorRequestStatus(SLIDES),),
        OverallRequestStatus(frid, RequestStatus(S.GRANTED), StatusInfo("ok")),
    )
    assert h.send(CHAIR, Primitive.CHAIR_ACTION, fri, user_id=CHAIR).primitive == Primitive.CHAIR_ACTION_ACK
    assert h.server.holders(SLIDES) == {1}


def test_identity_rules(h: Harness) -> None:
    # a mismatching user id in the header
    assert (
        error_code(h.send(1, Primitive.FLOOR_REQUEST, FloorId(AUDIO), user_id=2)) == E.UNAUTHORIZED_OPERATION
    )
    # the wrong conference
    assert error_code(h.send(1, Primitive.HELLO, conf=9)) == E.CONFERENCE_DOES_NOT_EXIST
    # an unbound connection
    h.connect(50, None)
    assert error_code(h.send(50, Primitive.HELLO, user_id=1)) == E.UNAUTHORIZED_OPERATION
    # a beneficiary other than oneself, not being the chair
    rsp = h.send(1, Primitive.FLOOR_REQUEST, FloorId(AUDIO), BeneficiaryId(2))
    assert error_code(rsp) == E.UNAUTHORIZED_OPERATION
    assert h.server.holders(AUDIO) == set()


def test_chair_requests_for_someone_else(h: Harness) -> None:
    rsp = h.send(CHAIR, Primitive.FLOOR_REQUEST, FloorId(SLIDES), BeneficiaryId(3), user_id=CHAIR)
    fri = fri_of(rsp)
    assert fri.beneficiary_information is not None and fri.beneficiary_information.beneficiary_id == 3
    assert fri.requested_by_information is not None and fri.requested_by_information.requested_by_id == CHAIR
    assert [state_of(m) for m in h.take(3)] == [S.PENDING]  # the beneficiary hears about it too
    rsp = h.send(CHAIR, Primitive.FLOOR_REQUEST, FloorId(SLIDES), BeneficiaryId(77), user_id=CHAIR)
    assert error_code(rsp) == E.USER_DOES_NOT_EXIST


def test_request_errors(h: Harness) -> None:
    assert error_code(h.send(1, Primitive.FLOOR_REQUEST, FloorId(9))) == E.INVALID_FLOOR_ID
    h.send(1, Primitive.FLOOR_REQUEST, FloorId(SLIDES))
    assert error_code(h.send(1, Primitive.FLOOR_REQUEST, FloorId(SLIDES))) == E.MAX_FLOOR_REQUESTS_REACHED
    assert error_code(h.send(2, Primitive.FLOOR_RELEASE, FloorRequestId(1))) == E.UNAUTHORIZED_OPERATION
    assert error_code(h.send(1, Primitive.FLOOR_STATUS)) == E.UNKNOWN_PRIMITIVE


def test_floor_query_subscribes_to_floor_status(h: Harness) -> None:
    rsp = h.send(CHAIR, Primitive.FLOOR_QUERY, FloorId(SLIDES), FloorId(AUDIO), user_id=CHAIR)
    assert rsp.primitive == Primitive.FLOOR_STATUS and rsp.get(FloorId) == FloorId(SLIDES)
    (second,) = h.take(CHAIR)
    assert second.transaction_id == 0 and second.get(FloorId) == FloorId(AUDIO)

    frid = fri_of(h.send(1, Primitive.FLOOR_REQUEST, FloorId(SLIDES))).floor_request_id
    (note,) = h.take(CHAIR)
    assert note.primitive == Primitive.FLOOR_STATUS and note.transaction_id == 0 and note.user_id == CHAIR
    (fri,) = note.get_all(FloorRequestInformation)
    assert fri.floor_request_id == frid and state_of(note, SLIDES) == S.PENDING
    assert fri.beneficiary_information == BeneficiaryInformation(
        1,
        fri.beneficiary_information.display_name if fri.beneficiary_information else None,
        fri.beneficiary_information.uri if fri.beneficiary_information else None,
    )
    h.send(CHAIR, Primitive.CHAIR_ACTION, chair_action(frid, SLIDES, S.GRANTED), user_id=CHAIR)
    (note,) = h.take(CHAIR)
    assert state_of(note, SLIDES) == S.GRANTED

    h.send(2, Primitive.FLOOR_REQUEST, FloorId(AUDIO))
    assert [m.get(FloorId) for m in h.take(CHAIR)] == [FloorId(AUDIO)]

    assert h.send(CHAIR, Primitive.FLOOR_QUERY, user_id=CHAIR).attributes == ()  # unsubscribe all
    h.send(3, Primitive.FLOOR_REQUEST, FloorId(AUDIO))
    assert h.take(CHAIR) == []
    assert error_code(h.send(CHAIR, Primitive.FLOOR_QUERY, FloorId(12), user_id=CHAIR)) == E.INVALID_FLOOR_ID


def test_floor_request_query_and_user_query(h: Harness) -> None:
    frid = fri_of(h.send(1, Primitive.FLOOR_REQUEST, FloorId(AUDIO))).floor_request_id
    rsp = h.send(1, Primitive.FLOOR_REQUEST_QUERY, FloorRequestId(frid))
    assert rsp.primitive == Primitive.FLOOR_REQUEST_STATUS and state_of(rsp) == S.GRANTED
    assert (
        error_code(h.send(2, Primitive.FLOOR_REQUEST_QUERY, FloorRequestId(frid))) == E.UNAUTHORIZED_OPERATION
    )
    assert h.send(CHAIR, Primitive.FLOOR_REQUEST_QUERY, FloorRequestId(frid), user_id=CHAIR).primitive == (
        Primitive.FLOOR_REQUEST_STATUS
    )

    rsp = h.send(1, Primitive.USER_QUERY)
    assert rsp.primitive == Primitive.USER_STATUS
    assert [f.floor_request_id for f in rsp.get_all(FloorRequestInformation)] == [frid]
    assert error_code(h.send(2, Primitive.USER_QUERY, BeneficiaryId(1))) == E.UNAUTHORIZED_OPERATION
    rsp = h.send(CHAIR, Primitive.USER_QUERY, BeneficiaryId(1), user_id=CHAIR)
    info = rsp.get(BeneficiaryInformation)
    assert info is not None and info.display_name is not None and info.display_name.text == "user1"
    assert (
        error_code(h.send(CHAIR, Primitive.USER_QUERY, BeneficiaryId(88), user_id=CHAIR))
        == E.USER_DOES_NOT_EXIST
    )


def test_goodbye_releases_and_closes(h: Harness) -> None:
    h.send(1, Primitive.FLOOR_REQUEST, FloorId(AUDIO))
    h.server.events()
    assert h.send(1, Primitive.GOODBYE).primitive == Primitive.GOODBYE_ACK
    assert 1 in h.closed
    assert h.server.holders(AUDIO) == set()
    assert h.server.events() == [FloorReleased(AUDIO, 1, 1)]


def test_connection_lost_and_remove_user(h: Harness) -> None:
    h.send(1, Primitive.FLOOR_REQUEST, FloorId(AUDIO))
    h.send(2, Primitive.FLOOR_REQUEST, FloorId(AUDIO))
    h.server.connection_lost(1)
    assert h.server.holders(AUDIO) == {2}
    h.server.remove_user(2)
    h.pump()
    assert h.server.holders(AUDIO) == set() and 2 in h.closed


def test_rebinding_a_user_closes_the_old_connection(h: Harness) -> None:
    h.connect(11, 1)
    h.pump()
    assert 1 in h.closed
    assert h.send(11, Primitive.HELLO, user_id=1).primitive == Primitive.HELLO_ACK


def test_malformed_input_gets_an_error_answer(h: Harness) -> None:
    wire = bytearray(bytes(Message(Primitive.HELLO, CONF, 5, 1)))
    wire[1] = 99
    h.raw(1, bytes(wire))
    (err,) = h.take(1)
    assert error_code(err) == E.UNKNOWN_PRIMITIVE and err.transaction_id == 5
    assert 1 not in h.closed
    h.raw(1, b"\x40" + bytes(wire[1:]))  # version 2 over TCP: answer, then close
    (err,) = h.take(1)
    assert error_code(err) == E.UNSUPPORTED_VERSION and 1 in h.closed


def test_errors_from_clients_are_not_answered(h: Harness) -> None:
    h.raw(1, bytes(Message(Primitive.ERROR, CONF, 5, 1, (ErrorCode(E.GENERIC_ERROR),))))
    h.raw(1, bytes(Message(Primitive.FLOOR_STATUS_ACK, CONF, 6, 1)))
    assert h.take(1) == []


def test_pipelined_requests(h: Harness) -> None:
    data = b"".join(bytes(Message(Primitive.HELLO, CONF, t, 1)) for t in (100, 101, 102))
    h.raw(1, data[:30])
    h.raw(1, data[30:])
    assert [m.transaction_id for m in h.take(1)] == [100, 101, 102]


def test_unbound_connections_time_out() -> None:
    h = Harness()
    h.now = 5.0
    h.connect(7, None)
    assert h.server.next_deadline() == 15.0
    h.server.handle_timer(14.9)
    h.pump()
    assert 7 not in h.closed
    h.server.handle_timer(15.0)
    h.pump()
    assert 7 in h.closed and h.server.next_deadline() is None


def test_multi_floor_request_ends_as_a_whole(h: Harness) -> None:
    rsp = h.send(1, Primitive.FLOOR_REQUEST, FloorId(AUDIO), FloorId(SLIDES))
    assert (
        state_of(rsp, AUDIO) == S.GRANTED
        and state_of(rsp, SLIDES) == S.PENDING
        and state_of(rsp) == S.PENDING
    )
    frid = fri_of(rsp).floor_request_id
    h.send(CHAIR, Primitive.CHAIR_ACTION, chair_action(frid, SLIDES, S.DENIED), user_id=CHAIR)
    (note,) = h.take(1)
    assert state_of(note, SLIDES) == S.DENIED and state_of(note, AUDIO) == S.REVOKED
    assert h.server.holders(AUDIO) == set()
