"""BFCP code tables (RFC 8855 §5.1, §5.2, §13 / IANA "BFCP Parameters")."""

from __future__ import annotations

from enum import IntEnum

__all__ = [
    "COMMON_HEADER_SIZE",
    "FRAGMENT_HEADER_SIZE",
    "MAX_ATTRIBUTE_LENGTH",
    "AttributeType",
    "ErrorCodeValue",
    "Primitive",
    "PriorityLevel",
    "RequestState",
]

COMMON_HEADER_SIZE = 12
"""Octets of the COMMON-HEADER without the fragmentation fields (always the case over TCP/TLS)."""
FRAGMENT_HEADER_SIZE = 16
"""Octets of the COMMON-HEADER when the F bit is set (unreliable transports only)."""
MAX_ATTRIBUTE_LENGTH = 255
"""The attribute Length field is 8 bits wide and counts the 2-octet attribute header (padding excluded)."""

VERSION_RELIABLE = 1
"""RFC 8855 §5.1: version 1 over TCP and TLS (the RFC 4582 wire format)."""
VERSION_UNRELIABLE = 2
"""RFC 8855 §5.1: version 2 over UDP and DTLS."""


class Primitive(IntEnum):
    """RFC 8855 §5.1 Table 1."""

    FLOOR_REQUEST = 1
    FLOOR_RELEASE = 2
    FLOOR_REQUEST_QUERY = 3
    FLOOR_REQUEST_STATUS = 4
    USER_QUERY = 5
    USER_STATUS = 6
    FLOOR_QUERY = 7
    FLOOR_STATUS = 8
    CHAIR_ACTION = 9
    CHAIR_ACTION_ACK = 10
    HELLO = 11
    HELLO_ACK = 12
    ERROR = 13
    FLOOR_REQUEST_STATUS_ACK = 14
    FLOOR_STATUS_ACK = 15
    GOODBYE = 16
    GOODBYE_ACK = 17


class AttributeType(IntEnum):
    """RFC 8855 §5.2 Table 2 (7-bit type field)."""

    BENEFICIARY_ID = 1
    FLOOR_ID = 2
    FLOOR_REQUEST_ID = 3
    PRIORITY = 4
    REQUEST_STATUS = 5
    ERROR_CODE = 6
    ERROR_INFO = 7
    PARTICIPANT_PROVIDED_INFO = 8
    STATUS_INFO = 9
    SUPPORTED_ATTRIBUTES = 10
    SUPPORTED_PRIMITIVES = 11
    USER_DISPLAY_NAME = 12
    USER_URI = 13
    BENEFICIARY_INFORMATION = 14
    FLOOR_REQUEST_INFORMATION = 15
    REQUESTED_BY_INFORMATION = 16
    FLOOR_REQUEST_STATUS = 17
    OVERALL_REQUEST_STATUS = 18


class PriorityLevel(IntEnum):
    """RFC 8855 §5.2.4: the 3-bit Prio field (values above 4 are unassigned)."""

    LOWEST = 0
    LOW = 1
    NORMAL = 2
    HIGH = 3
    HIGHEST = 4


class RequestState(IntEnum):
    """RFC 8855 §5.2.5: the Request Status octet of REQUEST-STATUS."""

    PENDING = 1
    ACCEPTED = 2
    GRANTED = 3
    DENIED = 4
    CANCELLED = 5
    RELEASED = 6
    REVOKED = 7

    @property
    def is_terminal(self) -> bool:
        return self >= RequestState.DENIED


class ErrorCodeValue(IntEnum):
    """RFC 8855 §5.2.6 Table 5: values of the ERROR-CODE attribute."""

    CONFERENCE_DOES_NOT_EXIST = 1
    USER_DOES_NOT_EXIST = 2
    UNKNOWN_PRIMITIVE = 3
    UNKNOWN_MANDATORY_ATTRIBUTE = 4
    UNAUTHORIZED_OPERATION = 5
    INVALID_FLOOR_ID = 6
    FLOOR_REQUEST_ID_DOES_NOT_EXIST = 7
    MAX_FLOOR_REQUESTS_REACHED = 8
    USE_TLS = 9
    UNABLE_TO_PARSE_MESSAGE = 10
    USE_DTLS = 11
    UNSUPPORTED_VERSION = 12
    INCORRECT_MESSAGE_LENGTH = 13
    GENERIC_ERROR = 14
