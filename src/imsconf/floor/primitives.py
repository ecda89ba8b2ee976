"""Which attributes each BFCP primitive carries (RFC 8855 §5.3), as a table.

Each entry maps an attribute type to ``(min, max)`` occurrences (``max`` ``None`` = unbounded).  A known
attribute type absent from a primitive's entry is not allowed at the top level of that message; unknown
attribute types (EXTENSION-ATTRIBUTE) are allowed anywhere.  The order the ABNF shows is the order the
codec writes; a received message is accepted in any order.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from .constants import AttributeType as A
from .constants import Primitive as P

__all__ = ["CLIENT_PRIMITIVES", "PRIMITIVE_RULES", "SERVER_PRIMITIVES", "Rule"]

Rule = Mapping[A, tuple[int, int | None]]

_ONE = (1, 1)
_OPT = (0, 1)
_ANY = (0, None)
_SOME = (1, None)

PRIMITIVE_RULES: Mapping[P, Rule] = MappingProxyType(
    {
        # FloorRequest = COMMON-HEADER 1*(FLOOR-ID) [BENEFICIARY-ID] [PARTICIPANT-PROVIDED-INFO] [PRIORITY]
        P.FLOOR_REQUEST: {
            A.FLOOR_ID: _SOME,
            A.BENEFICIARY_ID: _OPT,
            A.PARTICIPANT_PROVIDED_INFO: _OPT,
            A.PRIORITY: _OPT,
        },
        P.FLOOR_RELEASE: {A.FLOOR_REQUEST_ID: _ONE},
        P.FLOOR_REQUEST_QUERY: {A.FLOOR_REQUEST_ID: _ONE},
        P.FLOOR_REQUEST_STATUS: {A.FLOOR_REQUEST_INFORMATION: _ONE},
        P.USER_QUERY: {A.BENEFICIARY_ID: _OPT},
        P.USER_STATUS: {A.BENEFICIARY_INFORMATION: _OPT, A.FLOOR_REQUEST_INFORMATION: _ANY},
        P.FLOOR_QUERY: {A.FLOOR_ID: _ANY},
        # FloorStatus = COMMON-HEADER *1(FLOOR-ID) *(FLOOR-REQUEST-INFORMATION)
        P.FLOOR_STATUS: {A.FLOOR_ID: _OPT, A.FLOOR_REQUEST_INFORMATION: _ANY},
        P.CHAIR_ACTION: {A.FLOOR_REQUEST_INFORMATION: _ONE},
        P.CHAIR_ACTION_ACK: {},
        P.HELLO: {},
        P.HELLO_ACK: {A.SUPPORTED_PRIMITIVES: _ONE, A.SUPPORTED_ATTRIBUTES: _ONE},
        P.ERROR: {A.ERROR_CODE: _ONE, A.ERROR_INFO: _OPT},
        P.FLOOR_REQUEST_STATUS_ACK: {},
        P.FLOOR_STATUS_ACK: {},
        P.GOODBYE: {},
        P.GOODBYE_ACK: {},
    }
)

CLIENT_PRIMITIVES = frozenset(
    {
        P.FLOOR_REQUEST,
        P.FLOOR_RELEASE,
        P.FLOOR_REQUEST_QUERY,
        P.USER_QUERY,
        P.FLOOR_QUERY,
        P.CHAIR_ACTION,
        P.HELLO,
        P.FLOOR_REQUEST_STATUS_ACK,
        P.FLOOR_STATUS_ACK,
        P.GOODBYE,
        P.GOODBYE_ACK,
        P.ERROR,
    }
)
"""Primitives a floor participant or chair sends to the floor control server (RFC 8855 Table 1)."""

SERVER_PRIMITIVES = frozenset(
    {
        P.FLOOR_REQUEST_STATUS,
        P.USER_STATUS,
        P.FLOOR_STATUS,
        P.CHAIR_ACTION_ACK,
        P.HELLO,
        P.HELLO_ACK,
        P.ERROR,
        P.GOODBYE,
        P.GOODBYE_ACK,
    }
)
"""Primitives the floor control server sends."""
