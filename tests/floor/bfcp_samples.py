"""Sample BFCP attributes and messages shared by the floor tests, plus hypothesis strategies."""

from __future__ import annotations

from hypothesis import strategies as st

from imsconf.floor.attributes import (
    Attribute,
    BeneficiaryId,
    BeneficiaryInformation,
    ErrorCode,
    ErrorInfo,
    FloorId,
    FloorRequestId,
    FloorRequestInformation,
    FloorRequestStatus,
    OverallRequestStatus,
    ParticipantProvidedInfo,
    Priority,
    RequestedByInformation,
    RequestStatus,
    StatusInfo,
    SupportedAttributes,
    SupportedPrimitives,
    UnknownAttribute,
    UserDisplayName,
    UserUri,
)
from imsconf.floor.codec import Message
from imsconf.floor.constants import AttributeType, ErrorCodeValue, Primitive, PriorityLevel, RequestState
from imsconf.floor.primitives import PRIMITIVE_RULES

FRI = FloorRequestInformation(
    7,
    (
        FloorRequestStatus(1, RequestStatus(RequestState.GRANTED)),
        FloorRequestStatus(2, RequestStatus(RequestState.PENDING, 3)),
    ),
    OverallRequestStatus(7, RequestStatus(RequestState.ACCEPTED, 1), StatusInfo("chair ok")),
    BeneficiaryInformation(5, UserDisplayName("Bob"), UserUri("sip:bob@example.com")),
    RequestedByInformation(9, UserDisplayName("Chair"), UserUri("sip:chair@example.com")),
    Priority(PriorityLevel.HIGH),
    ParticipantProvidedInfo("slides please"),
)

ATTRIBUTES: dict[str, Attribute] = {
    "BENEFICIARY-ID": BeneficiaryId(5),
    "FLOOR-ID": FloorId(2, mandatory=True),
    "FLOOR-REQUEST-ID": FloorRequestId(65535),
    "PRIORITY": Priority(PriorityLevel.HIGHEST),
    "REQUEST-STATUS": RequestStatus(RequestState.REVOKED, 0),
    "ERROR-CODE": ErrorCode(ErrorCodeValue.INVALID_FLOOR_ID),
    "ERROR-CODE-4": ErrorCode.unknown_mandatory([40, 100]),
    "ERROR-INFO": ErrorInfo("no such floor"),
    "PARTICIPANT-PROVIDED-INFO": ParticipantProvidedInfo("I want to speak ✋"),
    "STATUS-INFO": StatusInfo("wait"),
    "SUPPORTED-ATTRIBUTES": SupportedAttributes(tuple(AttributeType)),
    "SUPPORTED-PRIMITIVES": SupportedPrimitives(tuple(Primitive)),
    "USER-DISPLAY-NAME": UserDisplayName("Zoë"),
    "USER-URI": UserUri("sips:alice@example.com"),
    "BENEFICIARY-INFORMATION": BeneficiaryInformation(
        3, UserDisplayName("A"), None, (UnknownAttribute(60, b"x"),)
    ),
    "FLOOR-REQUEST-INFORMATION": FRI,
    "REQUESTED-BY-INFORMATION": RequestedByInformation(4, None, UserUri("sip:x@y")),
    "FLOOR-REQUEST-STATUS": FloorRequestStatus(1, RequestStatus(RequestState.DENIED), StatusInfo("no")),
    "OVERALL-REQUEST-STATUS": OverallRequestStatus(8, RequestStatus(RequestState.CANCELLED)),
    "EXTENSION": UnknownAttribute(100, b"\x01\x02\x03"),
}

SMALL_FRI = FloorRequestInformation(3, (FloorRequestStatus(1, RequestStatus(RequestState.PENDING, 1)),))

MESSAGES: dict[Primitive, tuple[Attribute, ...]] = {
    Primitive.FLOOR_REQUEST: (
        FloorId(1),
        FloorId(2),
        BeneficiaryId(5),
        ParticipantProvidedInfo("hi"),
        Priority(),
    ),
    Primitive.FLOOR_RELEASE: (FloorRequestId(3),),
    Primitive.FLOOR_REQUEST_QUERY: (FloorRequestId(3),),
    Primitive.FLOOR_REQUEST_STATUS: (FRI,),
    Primitive.USER_QUERY: (BeneficiaryId(5),),
    Primitive.USER_STATUS: (BeneficiaryInformation(5, UserDisplayName("Bob")), FRI, SMALL_FRI),
    Primitive.FLOOR_QUERY: (FloorId(1), FloorId(2)),
    Primitive.FLOOR_STATUS: (FloorId(1), FRI, SMALL_FRI),
    Primitive.CHAIR_ACTION: (SMALL_FRI,),
    Primitive.CHAIR_ACTION_ACK: (),
    Primitive.HELLO: (),
    Primitive.HELLO_ACK: (SupportedPrimitives((1, 2, 3)), SupportedAttributes((1, 2, 18))),
    Primitive.ERROR: (ErrorCode(ErrorCodeValue.UNKNOWN_PRIMITIVE), ErrorInfo("what?")),
    Primitive.FLOOR_REQUEST_STATUS_ACK: (),
    Primitive.FLOOR_STATUS_ACK: (),
    Primitive.GOODBYE: (),
    Primitive.GOODBYE_ACK: (UnknownAttribute(77, b"ext"),),
}


def sample_message(primitive: Primitive, tid: int = 1) -> Message:
    return Message(primitive, 1234, tid, 5, MESSAGES[primitive])


# --- hypothesis strategies ------------------------------------------------------------------------------

u16 = st.integers(0, 0xFFFF)
text = st.text(max_size=12)
m_bit = st.booleans()
unknown = st.builds(UnknownAttribute, st.integers(19, 127), st.binary(max_size=12), st.just(False))
extensions = st.lists(unknown, max_size=1).map(tuple)
request_status = st.builds(RequestStatus, st.sampled_from(RequestState), st.integers(0, 255), m_bit)
opt = st.none

simple: dict[AttributeType, st.SearchStrategy[Attribute]] = {
    AttributeType.BENEFICIARY_ID: st.builds(BeneficiaryId, u16, m_bit),
    AttributeType.FLOOR_ID: st.builds(FloorId, u16, m_bit),
    AttributeType.FLOOR_REQUEST_ID: st.builds(FloorRequestId, u16, m_bit),
    AttributeType.PRIORITY: st.builds(Priority, st.sampled_from(PriorityLevel), m_bit),
    AttributeType.REQUEST_STATUS: request_status,
    AttributeType.ERROR_CODE: st.builds(ErrorCode, st.integers(0, 255), st.binary(max_size=8), m_bit),
    AttributeType.ERROR_INFO: st.builds(ErrorInfo, text, m_bit),
    AttributeType.PARTICIPANT_PROVIDED_INFO: st.builds(ParticipantProvidedInfo, text, m_bit),
    AttributeType.STATUS_INFO: st.builds(StatusInfo, text, m_bit),
    AttributeType.SUPPORTED_ATTRIBUTES: st.builds(
        SupportedAttributes, st.lists(st.integers(0, 127), max_size=20).map(tuple), m_bit
    ),
    AttributeType.SUPPORTED_PRIMITIVES: st.builds(
        SupportedPrimitives, st.lists(st.integers(0, 255), max_size=20).map(tuple), m_bit
    ),
    AttributeType.USER_DISPLAY_NAME: st.builds(UserDisplayName, text, m_bit),
    AttributeType.USER_URI: st.builds(UserUri, text, m_bit),
}


def _maybe(t: AttributeType) -> st.SearchStrategy[Attribute | None]:
    return st.one_of(st.none(), simple[t])


user_info = st.tuples(
    u16, _maybe(AttributeType.USER_DISPLAY_NAME), _maybe(AttributeType.USER_URI), extensions, m_bit
)
beneficiary_information = user_info.map(lambda a: BeneficiaryInformation(*a))  # type: ignore[arg-type]
requested_by_information = user_info.map(lambda a: RequestedByInformation(*a))  # type: ignore[arg-type]
status_parts = st.tuples(
    u16, st.one_of(st.none(), request_status), _maybe(AttributeType.STATUS_INFO), extensions, m_bit
)
floor_request_status = status_parts.map(lambda a: FloorRequestStatus(*a))  # type: ignore[arg-type]
overall_request_status = status_parts.map(lambda a: OverallRequestStatus(*a))  # type: ignore[arg-type]


@st.composite
def floor_request_information(draw: st.DrawFn) -> FloorRequestInformation:
    frid = draw(u16)
    statuses = tuple(draw(st.lists(floor_request_status, min_size=1, max_size=3)))
    try:
        return FloorRequestInformation(
            frid,
            statuses,
            draw(st.one_of(st.none(), overall_request_status)),
            draw(st.one_of(st.none(), beneficiary_information)),
            draw(st.one_of(st.none(), requested_by_information)),
            draw(_maybe(AttributeType.PRIORITY)),  # type: ignore[arg-type]
            draw(_maybe(AttributeType.PARTICIPANT_PROVIDED_INFO)),  # type: ignore[arg-type]
            draw(extensions),
            draw(m_bit),
        )
    except ValueError:  # more than 255 octets: fall back to the smallest valid group
        return FloorRequestInformation(frid, statuses[:1])


any_attribute: dict[AttributeType, st.SearchStrategy[Attribute]] = {
    **simple,
    AttributeType.BENEFICIARY_INFORMATION: beneficiary_information,
    AttributeType.REQUESTED_BY_INFORMATION: requested_by_information,
    AttributeType.FLOOR_REQUEST_STATUS: floor_request_status,
    AttributeType.OVERALL_REQUEST_STATUS: overall_request_status,
    AttributeType.FLOOR_REQUEST_INFORMATION: floor_request_information(),
}


@st.composite
def messages(draw: st.DrawFn) -> Message:
    primitive = draw(st.sampled_from(Primitive))
    attrs: list[Attribute] = []
    for t, (low, high) in PRIMITIVE_RULES[primitive].items():
        n = draw(st.integers(low, low + 2 if high is None else high))
        attrs += [draw(any_attribute[t]) for _ in range(n)]
    attrs += draw(st.lists(unknown, max_size=2))
    attrs = draw(st.permutations(attrs))
    return Message(
        primitive,
        draw(st.integers(0, 0xFFFFFFFF)),
        draw(u16),
        draw(u16),
        tuple(attrs),
        1,
        draw(st.booleans()),
    )
