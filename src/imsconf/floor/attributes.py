"""BFCP attributes (RFC 8855 §5.2): one frozen dataclass per attribute, TLV encoding and decoding.

Wire format of every attribute (§5.2)::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |    Type     |M|    Length     |                               |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+                               |
    /                    Attribute Contents                         /

``Length`` counts the 2-octet header and the contents, never the padding that brings every attribute to a
4-octet boundary (zeros when sent, ignored when received).  Grouped attributes (§5.2.14-18) start with a
16-bit identifier followed by whole (padded) sub-attributes, so their own length is always a multiple of 4.

Every attribute keeps its M (mandatory) bit so ``decode(encode(a)) == a``.  An attribute type this codec does
not know is kept as ``UnknownAttribute`` when its M bit is clear and collected for an "Unknown Mandatory
Attribute" error (code 4) when it is set.  Construction checks values (``ValueError``); decoding raises only
``BfcpDecodeError``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Self, TypeAlias, TypeVar, cast

from .buffer import Buffer
from .constants import MAX_ATTRIBUTE_LENGTH, AttributeType, ErrorCodeValue, PriorityLevel, RequestState
from .errors import BfcpDecodeError

__all__ = [
    "Attribute",
    "BeneficiaryId",
    "BeneficiaryInformation",
    "DecodeContext",
    "ErrorCode",
    "ErrorInfo",
    "FloorId",
    "FloorRequestId",
    "FloorRequestInformation",
    "FloorRequestStatus",
    "KnownAttribute",
    "OverallRequestStatus",
    "ParticipantProvidedInfo",
    "Priority",
    "RequestStatus",
    "RequestedByInformation",
    "StatusInfo",
    "SupportedAttributes",
    "SupportedPrimitives",
    "UnknownAttribute",
    "UserDisplayName",
    "UserUri",
    "attribute_type",
    "decode_attributes",
    "encode_attribute",
]

MAX_VALUE_LENGTH = MAX_ATTRIBUTE_LENGTH - 2
_PARSE = ErrorCodeValue.UNABLE_TO_PARSE_MESSAGE
_T = TypeVar("_T")
_LENGTH = ErrorCodeValue.INCORRECT_MESSAGE_LENGTH


def _check(condition: bool, what: str) -> None:
    if not condition:
        raise ValueError(what)


def _check_u16(value: int, what: str) -> None:
    _check(isinstance(value, int) and 0 <= value <= 0xFFFF, f"{what} must be a 16-bit unsigned integer")


def _check_fits(attr: Attribute) -> None:
    _check(len(_encode_value(attr)) <= MAX_VALUE_LENGTH, f"{attr.__class__.__name__} longer than 255 octets")


class DecodeContext:
    """Collects what a decode pass learns beyond the attributes themselves."""

    __slots__ = ("unknown_mandatory",)

    def __init__(self) -> None:
        self.unknown_mandatory: list[int] = []


# --- simple attributes ---------------------------------------------------------------------------------


def _u16_value(value: bytes, what: str) -> int:
    if len(value) != 2:
        raise BfcpDecodeError(_PARSE, f"{what} must be 4 octets long, is {len(value) + 2}")
    return Buffer(value).pull_uint16()


@dataclass(frozen=True, slots=True)
class UnknownAttribute:
    """An attribute of a type this codec does not know (an extension, RFC 8855 §5.3 EXTENSION-ATTRIBUTE)."""

    type: int
    value: bytes = b""
    mandatory: bool = False

    def __post_init__(self) -> None:
        _check(0 <= self.type <= 127, "attribute type is 7 bits")
        _check(self.type not in _KNOWN_TYPES, f"type {self.type} is a known attribute: use its class")
        _check(len(self.value) <= MAX_VALUE_LENGTH, "attribute longer than 255 octets")

    def _encode_value(self) -> bytes:
        return self.value


@dataclass(frozen=True, slots=True)
class _U16Attribute:
    """An attribute whose value is one 16-bit id (BENEFICIARY-ID, FLOOR-ID, FLOOR-REQUEST-ID)."""

    TYPE: ClassVar[AttributeType]
    LABEL: ClassVar[str]
    value: int
    mandatory: bool = False

    def __post_init__(self) -> None:
        _check_u16(self.value, self.LABEL)

    def _encode_value(self) -> bytes:
        return self.value.to_bytes(2, "big")

    @classmethod
    def _decode(cls, value: bytes, mandatory: bool, ctx: DecodeContext) -> Self:
        return cls(_u16_value(value, cls.LABEL), mandatory)


@dataclass(frozen=True, slots=True)
class BeneficiaryId(_U16Attribute):
    """BENEFICIARY-ID (§5.2.1): the user a FloorRequest or UserQuery is about."""

    TYPE: ClassVar[AttributeType] = AttributeType.BENEFICIARY_ID
    LABEL: ClassVar[str] = "BENEFICIARY-ID"


@dataclass(frozen=True, slots=True)
class FloorId(_U16Attribute):
    """FLOOR-ID (§5.2.2)."""

    TYPE: ClassVar[AttributeType] = AttributeType.FLOOR_ID
    LABEL: ClassVar[str] = "FLOOR-ID"


@dataclass(frozen=True, slots=True)
class FloorRequestId(_U16Attribute):
    """FLOOR-REQUEST-ID (§5.2.3)."""

    TYPE: ClassVar[AttributeType] = AttributeType.FLOOR_REQUEST_ID
    LABEL: ClassVar[str] = "FLOOR-REQUEST-ID"


@dataclass(frozen=True, slots=True)
class Priority:
    """PRIORITY (§5.2.4): a 3-bit Prio and 13 reserved bits (sent as zero, ignored)."""

    TYPE: ClassVar[AttributeType] = AttributeType.PRIORITY
    level: PriorityLevel = PriorityLevel.NORMAL
    mandatory: bool = False

    def __post_init__(self) -> None:
        _check(self.level in PriorityLevel.__members__.values(), "PRIORITY level must be 0..4")

    def _encode_value(self) -> bytes:
        return (self.level << 13).to_bytes(2, "big")

    @classmethod
    def _decode(cls, value: bytes, mandatory: bool, ctx: DecodeContext) -> Priority:
        prio = _u16_value(value, "PRIORITY") >> 13
        if prio > PriorityLevel.HIGHEST:
            raise BfcpDecodeError(_PARSE, f"PRIORITY value {prio} is unassigned")
        return cls(PriorityLevel(prio), mandatory)


@dataclass(frozen=True, slots=True)
class RequestStatus:
    """REQUEST-STATUS (§5.2.5): a Request Status octet and a Queue Position octet (0 when not queued)."""

    TYPE: ClassVar[AttributeType] = AttributeType.REQUEST_STATUS
    state: RequestState
    queue_position: int = 0
    mandatory: bool = False

    def __post_init__(self) -> None:
        _check(self.state in RequestState.__members__.values(), "Request Status must be 1..7")
        _check(0 <= self.queue_position <= 255, "Queue Position is one octet")

    def _encode_value(self) -> bytes:
        return bytes((self.state, self.queue_position))

    @classmethod
    def _decode(cls, value: bytes, mandatory: bool, ctx: DecodeContext) -> RequestStatus:
        if len(value) != 2:
            raise BfcpDecodeError(_PARSE, f"REQUEST-STATUS must be 4 octets long, is {len(value) + 2}")
        if not 1 <= value[0] <= 7:
            raise BfcpDecodeError(_PARSE, f"Request Status value {value[0]} is unassigned")
        return cls(RequestState(value[0]), value[1], mandatory)


@dataclass(frozen=True, slots=True)
class ErrorCode:
    """ERROR-CODE (§5.2.6): the error code octet and Error Specific Details.

    For code 4 (Unknown Mandatory Attribute) the details list the unknown types, one per octet as
    ``Type (7 bits) | R``: build that with ``ErrorCode.unknown_mandatory(types)``.  Codes this table does
    not know are kept as plain integers.
    """

    TYPE: ClassVar[AttributeType] = AttributeType.ERROR_CODE
    code: int
    details: bytes = b""
    mandatory: bool = False

    def __post_init__(self) -> None:
        _check(0 <= self.code <= 255, "error code is one octet")
        _check(len(self.details) <= MAX_VALUE_LENGTH - 1, "ERROR-CODE details too long")

    @classmethod
    def unknown_mandatory(cls, types: Sequence[int], mandatory: bool = False) -> ErrorCode:
        return cls(
            ErrorCodeValue.UNKNOWN_MANDATORY_ATTRIBUTE, bytes((t & 0x7F) << 1 for t in types), mandatory
        )

    @property
    def unknown_attributes(self) -> tuple[int, ...]:
        """The attribute types listed by an Unknown Mandatory Attribute error."""
        if self.code != ErrorCodeValue.UNKNOWN_MANDATORY_ATTRIBUTE:
            return ()
        return tuple(b >> 1 for b in self.details)

    def _encode_value(self) -> bytes:
        return bytes((self.code,)) + self.details

    @classmethod
    def _decode(cls, value: bytes, mandatory: bool, ctx: DecodeContext) -> ErrorCode:
        if not value:
            raise BfcpDecodeError(_PARSE, "ERROR-CODE without an error code")
        code = value[0]
        known = code in ErrorCodeValue._value2member_map_
        return cls(ErrorCodeValue(code) if known else code, value[1:], mandatory)


def _check_text(text: str, what: str) -> None:
    _check(isinstance(text, str), f"{what} must be a str")
    _check(len(text.encode("utf-8", "surrogatepass")) <= MAX_VALUE_LENGTH, f"{what} longer than 253 octets")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{what} is not encodable as UTF-8") from None


def _text_value(value: bytes, what: str) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise BfcpDecodeError(_PARSE, f"{what} is not valid UTF-8") from None


@dataclass(frozen=True, slots=True)
class _TextAttribute:
    """An attribute whose value is UTF-8 text (ERROR-INFO, STATUS-INFO, USER-URI ...)."""

    TYPE: ClassVar[AttributeType]
    LABEL: ClassVar[str]
    text: str
    mandatory: bool = False

    def __post_init__(self) -> None:
        _check_text(self.text, self.LABEL)

    def _encode_value(self) -> bytes:
        return self.text.encode("utf-8")

    @classmethod
    def _decode(cls, value: bytes, mandatory: bool, ctx: DecodeContext) -> Self:
        return cls(_text_value(value, cls.LABEL), mandatory)


@dataclass(frozen=True, slots=True)
class ErrorInfo(_TextAttribute):
    """ERROR-INFO (§5.2.7): UTF-8 text describing an error."""

    TYPE: ClassVar[AttributeType] = AttributeType.ERROR_INFO
    LABEL: ClassVar[str] = "ERROR-INFO"


@dataclass(frozen=True, slots=True)
class ParticipantProvidedInfo(_TextAttribute):
    """PARTICIPANT-PROVIDED-INFO (§5.2.8): UTF-8 text a participant attaches to its request."""

    TYPE: ClassVar[AttributeType] = AttributeType.PARTICIPANT_PROVIDED_INFO
    LABEL: ClassVar[str] = "PARTICIPANT-PROVIDED-INFO"


@dataclass(frozen=True, slots=True)
class StatusInfo(_TextAttribute):
    """STATUS-INFO (§5.2.9): UTF-8 text about a request's status (e.g. the chair's reason)."""

    TYPE: ClassVar[AttributeType] = AttributeType.STATUS_INFO
    LABEL: ClassVar[str] = "STATUS-INFO"


@dataclass(frozen=True, slots=True)
class SupportedAttributes:
    """SUPPORTED-ATTRIBUTES (§5.2.10): one octet per type, ``Type (7 bits) | R`` (R sent 0, ignored)."""

    TYPE: ClassVar[AttributeType] = AttributeType.SUPPORTED_ATTRIBUTES
    types: tuple[int, ...]
    mandatory: bool = False

    def __post_init__(self) -> None:
        _check(all(0 <= t <= 127 for t in self.types), "attribute types are 7 bits")
        _check(len(self.types) <= MAX_VALUE_LENGTH, "SUPPORTED-ATTRIBUTES too long")

    def _encode_value(self) -> bytes:
        return bytes(t << 1 for t in self.types)

    @classmethod
    def _decode(cls, value: bytes, mandatory: bool, ctx: DecodeContext) -> SupportedAttributes:
        return cls(tuple(b >> 1 for b in value), mandatory)


@dataclass(frozen=True, slots=True)
class SupportedPrimitives:
    """SUPPORTED-PRIMITIVES (§5.2.11): one octet per primitive."""

    TYPE: ClassVar[AttributeType] = AttributeType.SUPPORTED_PRIMITIVES
    primitives: tuple[int, ...]
    mandatory: bool = False

    def __post_init__(self) -> None:
        _check(all(0 <= p <= 255 for p in self.primitives), "primitives are one octet")
        _check(len(self.primitives) <= MAX_VALUE_LENGTH, "SUPPORTED-PRIMITIVES too long")

    def _encode_value(self) -> bytes:
        return bytes(self.primitives)

    @classmethod
    def _decode(cls, value: bytes, mandatory: bool, ctx: DecodeContext) -> SupportedPrimitives:
        return cls(tuple(value), mandatory)


@dataclass(frozen=True, slots=True)
class UserDisplayName(_TextAttribute):
    """USER-DISPLAY-NAME (§5.2.12)."""

    TYPE: ClassVar[AttributeType] = AttributeType.USER_DISPLAY_NAME
    LABEL: ClassVar[str] = "USER-DISPLAY-NAME"


@dataclass(frozen=True, slots=True)
class UserUri(_TextAttribute):
    """USER-URI (§5.2.13)."""

    TYPE: ClassVar[AttributeType] = AttributeType.USER_URI
    LABEL: ClassVar[str] = "USER-URI"


# --- grouped attributes ----------------------------------------------------------------------------------


class _Children:
    """Sub-attributes of a grouped attribute sorted by type, checked against the group's ABNF."""

    def __init__(
        self, where: str, attrs: list[Attribute], rules: dict[AttributeType, tuple[int, int | None]]
    ) -> None:
        self.by_type: dict[int, list[Attribute]] = {}
        self.extensions: list[UnknownAttribute] = []
        for a in attrs:
            if isinstance(a, UnknownAttribute):
                self.extensions.append(a)
            elif a.TYPE not in rules:
                raise BfcpDecodeError(_PARSE, f"{a.TYPE.name} is not allowed inside {where}")
            else:
                self.by_type.setdefault(a.TYPE, []).append(a)
        for t, (low, high) in rules.items():
            n = len(self.by_type.get(t, ()))
            if n < low or (high is not None and n > high):
                raise BfcpDecodeError(_PARSE, f"{where} holds {n} {t.name} attribute(s)")

    def one(self, t: AttributeType) -> Attribute | None:
        found = self.by_type.get(t)
        return found[0] if found else None

    def all(self, t: AttributeType) -> list[Attribute]:
        return self.by_type.get(t, [])


def _grouped_value(value: bytes, what: str, ctx: DecodeContext) -> tuple[int, list[Attribute]]:
    if len(value) < 2:
        raise BfcpDecodeError(_PARSE, f"{what} too short for its identifier")
    return Buffer(value[:2]).pull_uint16(), decode_attributes(value[2:], ctx)


def _encode_children(*children: Attribute | None) -> bytes:
    return b"".join(encode_attribute(c) for c in children if c is not None)


def _opt(x: Attribute | None, cls: type[_T]) -> _T | None:
    assert x is None or isinstance(x, cls)
    return x


@dataclass(frozen=True, slots=True)
class BeneficiaryInformation:
    """BENEFICIARY-INFORMATION (§5.2.14): Beneficiary ID, [USER-DISPLAY-NAME], [USER-URI], extensions."""

    TYPE: ClassVar[AttributeType] = AttributeType.BENEFICIARY_INFORMATION
    beneficiary_id: int
    display_name: UserDisplayName | None = None
    uri: UserUri | None = None
    extensions: tuple[UnknownAttribute, ...] = ()
    mandatory: bool = False

    _RULES: ClassVar[dict[AttributeType, tuple[int, int | None]]] = {
        AttributeType.USER_DISPLAY_NAME: (0, 1),
        AttributeType.USER_URI: (0, 1),
    }

    def __post_init__(self) -> None:
        _check_u16(self.beneficiary_id, "Beneficiary ID")
        _check_fits(self)

    def _encode_value(self) -> bytes:
        return self.beneficiary_id.to_bytes(2, "big") + _encode_children(
            self.display_name, self.uri, *self.extensions
        )

    @classmethod
    def _decode(cls, value: bytes, mandatory: bool, ctx: DecodeContext) -> BeneficiaryInformation:
        ident, attrs = _grouped_value(value, "BENEFICIARY-INFORMATION", ctx)
        c = _Children("BENEFICIARY-INFORMATION", attrs, cls._RULES)
        return cls(
            ident,
            _opt(c.one(AttributeType.USER_DISPLAY_NAME), UserDisplayName),
            _opt(c.one(AttributeType.USER_URI), UserUri),
            tuple(c.extensions),
            mandatory,
        )


@dataclass(frozen=True, slots=True)
class RequestedByInformation:
    """REQUESTED-BY-INFORMATION (§5.2.16): Requested-by ID, [USER-DISPLAY-NAME], [USER-URI], extensions."""

    TYPE: ClassVar[AttributeType] = AttributeType.REQUESTED_BY_INFORMATION
    requested_by_id: int
    display_name: UserDisplayName | None = None
    uri: UserUri | None = None
    extensions: tuple[UnknownAttribute, ...] = ()
    mandatory: bool = False

    _RULES: ClassVar[dict[AttributeType, tuple[int, int | None]]] = BeneficiaryInformation._RULES

    def __post_init__(self) -> None:
        _check_u16(self.requested_by_id, "Requested-by ID")
        _check_fits(self)

    def _encode_value(self) -> bytes:
        return self.requested_by_id.to_bytes(2, "big") + _encode_children(
            self.display_name, self.uri, *self.extensions
        )

    @classmethod
    def _decode(cls, value: bytes, mandatory: bool, ctx: DecodeContext) -> RequestedByInformation:
        ident, attrs = _grouped_value(value, "REQUESTED-BY-INFORMATION", ctx)
        c = _Children("REQUESTED-BY-INFORMATION", attrs, cls._RULES)
        return cls(
            ident,
            _opt(c.one(AttributeType.USER_DISPLAY_NAME), UserDisplayName),
            _opt(c.one(AttributeType.USER_URI), UserUri),
            tuple(c.extensions),
            mandatory,
        )


_STATUS_RULES: dict[AttributeType, tuple[int, int | None]] = {
    AttributeType.REQUEST_STATUS: (0, 1),
    AttributeType.STATUS_INFO: (0, 1),
}


class _StatusGroup:
    """The shared shape of FLOOR-REQUEST-STATUS and OVERALL-REQUEST-STATUS: a 16-bit id, then
    [REQUEST-STATUS], [STATUS-INFO] and extensions. Subclasses declare the fields in that order."""

    __slots__ = ()
    LABEL: ClassVar[str]  # the attribute's name, in errors
    ID_LABEL: ClassVar[str]  # the id's name, in errors
    if TYPE_CHECKING:
        request_status: RequestStatus | None
        status_info: StatusInfo | None
        extensions: tuple[UnknownAttribute, ...]

        def __init__(
            self,
            ident: int,
            request_status: RequestStatus | None = None,
            status_info: StatusInfo | None = None,
            extensions: tuple[UnknownAttribute, ...] = (),
            mandatory: bool = False,
        ) -> None: ...

    def _ident(self) -> int:
        raise NotImplementedError

    def __post_init__(self) -> None:
        _check_u16(self._ident(), self.ID_LABEL)
        _check_fits(cast("Attribute", self))  # each subclass is one of the Attribute types

    def _encode_value(self) -> bytes:
        return self._ident().to_bytes(2, "big") + _encode_children(
            self.request_status, self.status_info, *self.extensions
        )

    @classmethod
    def _decode(cls, value: bytes, mandatory: bool, ctx: DecodeContext) -> Self:
        ident, attrs = _grouped_value(value, cls.LABEL, ctx)
        c = _Children(cls.LABEL, attrs, _STATUS_RULES)
        return cls(
            ident,
            _opt(c.one(AttributeType.REQUEST_STATUS), RequestStatus),
            _opt(c.one(AttributeType.STATUS_INFO), StatusInfo),
            tuple(c.extensions),
            mandatory,
        )


@dataclass(frozen=True, slots=True)
class FloorRequestStatus(_StatusGroup):
    """FLOOR-REQUEST-STATUS (§5.2.17): Floor ID, [REQUEST-STATUS], [STATUS-INFO], extensions."""

    TYPE: ClassVar[AttributeType] = AttributeType.FLOOR_REQUEST_STATUS
    LABEL: ClassVar[str] = "FLOOR-REQUEST-STATUS"
    ID_LABEL: ClassVar[str] = "Floor ID"
    floor_id: int
    request_status: RequestStatus | None = None
    status_info: StatusInfo | None = None
    extensions: tuple[UnknownAttribute, ...] = ()
    mandatory: bool = False

    def _ident(self) -> int:
        return self.floor_id


@dataclass(frozen=True, slots=True)
class OverallRequestStatus(_StatusGroup):
    """OVERALL-REQUEST-STATUS (§5.2.18): Floor Request ID, [REQUEST-STATUS], [STATUS-INFO], extensions."""

    TYPE: ClassVar[AttributeType] = AttributeType.OVERALL_REQUEST_STATUS
    LABEL: ClassVar[str] = "OVERALL-REQUEST-STATUS"
    ID_LABEL: ClassVar[str] = "Floor Request ID"
    floor_request_id: int
    request_status: RequestStatus | None = None
    status_info: StatusInfo | None = None
    extensions: tuple[UnknownAttribute, ...] = ()
    mandatory: bool = False

    def _ident(self) -> int:
        return self.floor_request_id


@dataclass(frozen=True, slots=True)
class FloorRequestInformation:
    """FLOOR-REQUEST-INFORMATION (§5.2.15).

    ``Floor Request ID, [OVERALL-REQUEST-STATUS], 1*FLOOR-REQUEST-STATUS, [BENEFICIARY-INFORMATION],
    [REQUESTED-BY-INFORMATION], [PRIORITY], [PARTICIPANT-PROVIDED-INFO], *EXTENSION-ATTRIBUTE``
    """

    TYPE: ClassVar[AttributeType] = AttributeType.FLOOR_REQUEST_INFORMATION
    floor_request_id: int
    floor_request_statuses: tuple[FloorRequestStatus, ...]
    overall_request_status: OverallRequestStatus | None = None
    beneficiary_information: BeneficiaryInformation | None = None
    requested_by_information: RequestedByInformation | None = None
    priority: Priority | None = None
    participant_provided_info: ParticipantProvidedInfo | None = None
    extensions: tuple[UnknownAttribute, ...] = ()
    mandatory: bool = False

    _RULES: ClassVar[dict[AttributeType, tuple[int, int | None]]] = {
        AttributeType.OVERALL_REQUEST_STATUS: (0, 1),
        AttributeType.FLOOR_REQUEST_STATUS: (1, None),
        AttributeType.BENEFICIARY_INFORMATION: (0, 1),
        AttributeType.REQUESTED_BY_INFORMATION: (0, 1),
        AttributeType.PRIORITY: (0, 1),
        AttributeType.PARTICIPANT_PROVIDED_INFO: (0, 1),
    }

    def __post_init__(self) -> None:
        _check_u16(self.floor_request_id, "Floor Request ID")
        _check(
            len(self.floor_request_statuses) >= 1, "FLOOR-REQUEST-INFORMATION needs a FLOOR-REQUEST-STATUS"
        )
        _check_fits(self)

    def _encode_value(self) -> bytes:
        return self.floor_request_id.to_bytes(2, "big") + _encode_children(
            self.overall_request_status,
            *self.floor_request_statuses,
            self.beneficiary_information,
            self.requested_by_information,
            self.priority,
            self.participant_provided_info,
            *self.extensions,
        )

    @classmethod
    def _decode(cls, value: bytes, mandatory: bool, ctx: DecodeContext) -> FloorRequestInformation:
        ident, attrs = _grouped_value(value, "FLOOR-REQUEST-INFORMATION", ctx)
        c = _Children("FLOOR-REQUEST-INFORMATION", attrs, cls._RULES)
        statuses = tuple(_opt(a, FloorRequestStatus) for a in c.all(AttributeType.FLOOR_REQUEST_STATUS))
        return cls(
            ident,
            tuple(s for s in statuses if s is not None),
            _opt(c.one(AttributeType.OVERALL_REQUEST_STATUS), OverallRequestStatus),
            _opt(c.one(AttributeType.BENEFICIARY_INFORMATION), BeneficiaryInformation),
            _opt(c.one(AttributeType.REQUESTED_BY_INFORMATION), RequestedByInformation),
            _opt(c.one(AttributeType.PRIORITY), Priority),
            _opt(c.one(AttributeType.PARTICIPANT_PROVIDED_INFO), ParticipantProvidedInfo),
            tuple(c.extensions),
            mandatory,
        )

    @property
    def floor_ids(self) -> tuple[int, ...]:
        return tuple(s.floor_id for s in self.floor_request_statuses)


KnownAttribute: TypeAlias = (
    BeneficiaryId
    | FloorId
    | FloorRequestId
    | Priority
    | RequestStatus
    | ErrorCode
    | ErrorInfo
    | ParticipantProvidedInfo
    | StatusInfo
    | SupportedAttributes
    | SupportedPrimitives
    | UserDisplayName
    | UserUri
    | BeneficiaryInformation
    | FloorRequestInformation
    | RequestedByInformation
    | FloorRequestStatus
    | OverallRequestStatus
)
Attribute: TypeAlias = KnownAttribute | UnknownAttribute

_DECODERS: dict[int, Callable[[bytes, bool, DecodeContext], KnownAttribute]] = {
    cls.TYPE: cls._decode
    for cls in (
        BeneficiaryId,
        FloorId,
        FloorRequestId,
        Priority,
        RequestStatus,
        ErrorCode,
        ErrorInfo,
        ParticipantProvidedInfo,
        StatusInfo,
        SupportedAttributes,
        SupportedPrimitives,
        UserDisplayName,
        UserUri,
        BeneficiaryInformation,
        FloorRequestInformation,
        RequestedByInformation,
        FloorRequestStatus,
        OverallRequestStatus,
    )
}
_KNOWN_TYPES = frozenset(_DECODERS)


def _encode_value(attr: Attribute) -> bytes:
    return attr._encode_value()


def attribute_type(attr: Attribute) -> int:
    return attr.type if isinstance(attr, UnknownAttribute) else int(attr.TYPE)


def encode_attribute(attr: Attribute) -> bytes:
    """The attribute's TLV, padded with zeros to a 4-octet boundary."""
    value = attr._encode_value()
    length = 2 + len(value)
    if length > MAX_ATTRIBUTE_LENGTH:
        raise ValueError(f"{attr.__class__.__name__} is {length} octets, the limit is 255")
    head = bytes(((attribute_type(attr) << 1) | int(attr.mandatory), length))
    return head + value + bytes(-length % 4)


def decode_attributes(data: bytes, ctx: DecodeContext | None = None) -> list[Attribute]:
    """Decode a run of padded attributes filling ``data`` exactly.

    Unknown attributes with the M bit set are recorded in ``ctx`` (the caller raises error 4 once the
    whole message has been read, listing them all); without ``ctx`` they raise at once.
    """
    own_ctx = ctx is None
    context = DecodeContext() if ctx is None else ctx
    out: list[Attribute] = []
    pos = 0
    while pos < len(data):
        if len(data) - pos < 2:
            raise BfcpDecodeError(_LENGTH, "truncated attribute header")
        first, length = data[pos], data[pos + 1]
        atype, mandatory = first >> 1, bool(first & 1)
        if length < 2:
            raise BfcpDecodeError(_PARSE, f"attribute type {atype} has length {length} (< 2)")
        padded = length + (-length % 4)
        if pos + padded > len(data):
            raise BfcpDecodeError(_LENGTH, f"attribute type {atype} overruns its message or group")
        value = bytes(data[pos + 2 : pos + length])
        decoder = _DECODERS.get(atype)
        if decoder is not None:
            out.append(decoder(value, mandatory, context))
        elif mandatory:
            context.unknown_mandatory.append(atype)
        else:
            out.append(UnknownAttribute(atype, value, False))
        pos += padded
    if own_ctx and context.unknown_mandatory:
        raise BfcpDecodeError(
            ErrorCodeValue.UNKNOWN_MANDATORY_ATTRIBUTE,
            "unknown mandatory attribute(s)",
            unknown_attributes=tuple(context.unknown_mandatory),
        )
    return out
