"""BFCP messages: COMMON-HEADER, whole messages and TCP/TLS stream framing (RFC 8855 §5, §6.2).

Sans-I/O: ``Message.parse(data)`` and ``bytes(message)`` for one message, ``BfcpFramer`` to cut a byte
stream into messages.  Received bytes only ever raise ``BfcpDecodeError``, whose ``code`` is the ERROR-CODE to
answer with; ``error_response(err)`` builds that Error message.  Constructing a message that breaks the
RFC 8855 §5.3 grammar raises ``ValueError`` (a local mistake, not a peer's).

COMMON-HEADER (§5.1)::

    | Ver |R|F| Res |  Primitive    |        Payload Length         |
    |                         Conference ID                         |
    |         Transaction ID        |            User ID            |
    | Fragment Offset (if F is set) | Fragment Length (if F is set) |

Payload Length counts 4-octet units after the COMMON-HEADER.  Over TCP/TLS the version is 1 and the F bit
must be clear (fragmentation is a UDP feature); the R bit only means something over UDP and is kept as read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

from .attributes import (
    Attribute,
    DecodeContext,
    ErrorCode,
    ErrorInfo,
    UnknownAttribute,
    attribute_type,
    decode_attributes,
    encode_attribute,
)
from .buffer import Buffer
from .constants import (
    COMMON_HEADER_SIZE,
    FRAGMENT_HEADER_SIZE,
    VERSION_RELIABLE,
    VERSION_UNRELIABLE,
    AttributeType,
    ErrorCodeValue,
    Primitive,
)
from .errors import BfcpDecodeError
from .primitives import PRIMITIVE_RULES

__all__ = [
    "DEFAULT_MAX_MESSAGE_SIZE",
    "MAX_MESSAGE_SIZE",
    "BfcpFramer",
    "CommonHeader",
    "Message",
    "error_for",
    "error_response",
]

MAX_MESSAGE_SIZE = FRAGMENT_HEADER_SIZE + 4 * 0xFFFF
"""The largest message the 16-bit Payload Length can describe."""
DEFAULT_MAX_MESSAGE_SIZE = 65536
"""Framer cap on one message (and so on buffered, incomplete input)."""

_A = TypeVar("_A")


def _header_error(
    header: CommonHeader, code: ErrorCodeValue, reason: str, *, fatal: bool = False
) -> BfcpDecodeError:
    return BfcpDecodeError(
        code,
        reason,
        conference_id=header.conference_id,
        transaction_id=header.transaction_id,
        user_id=header.user_id,
        primitive=header.primitive,
        fatal=fatal,
    )


@dataclass(frozen=True, slots=True)
class CommonHeader:
    """The COMMON-HEADER; ``primitive`` is a plain int because it may be one this codec does not know."""

    version: int
    primitive: int
    payload_length: int
    conference_id: int
    transaction_id: int
    user_id: int
    responder: bool = False
    fragment_offset: int | None = None
    fragment_length: int | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.version <= 7:
            raise ValueError("version is 3 bits")
        for name, bits in (
            ("primitive", 8),
            ("payload_length", 16),
            ("conference_id", 32),
            ("transaction_id", 16),
            ("user_id", 16),
        ):
            value = getattr(self, name)
            if not 0 <= value < 1 << bits:
                raise ValueError(f"{name} must fit in {bits} bits")
        if (self.fragment_offset is None) != (self.fragment_length is None):
            raise ValueError("fragment offset and length come together")
        for frag in (self.fragment_offset, self.fragment_length):
            if frag is not None and not 0 <= frag <= 0xFFFF:
                raise ValueError("fragment fields are 16 bits")

    @property
    def fragmented(self) -> bool:
        return self.fragment_offset is not None

    @property
    def size(self) -> int:
        """Octets of this header on the wire."""
        return FRAGMENT_HEADER_SIZE if self.fragmented else COMMON_HEADER_SIZE

    @property
    def message_size(self) -> int:
        """Octets of the whole message (or fragment) this header starts."""
        return self.size + 4 * self.payload_length

    def __bytes__(self) -> bytes:
        buf = Buffer()
        buf.push_uint8((self.version << 5) | (int(self.responder) << 4) | (int(self.fragmented) << 3))
        buf.push_uint8(self.primitive)
        buf.push_uint16(self.payload_length)
        buf.push_uint32(self.conference_id)
        buf.push_uint16(self.transaction_id)
        buf.push_uint16(self.user_id)
        if self.fragment_offset is not None and self.fragment_length is not None:
            buf.push_uint16(self.fragment_offset)
            buf.push_uint16(self.fragment_length)
        return buf.data()

    @classmethod
    def parse(cls, data: bytes) -> CommonHeader:
        """Read a header from the start of ``data`` (the 3 reserved bits are ignored, RFC 8855 §5.1)."""
        if len(data) < COMMON_HEADER_SIZE or (data[0] & 0x08 and len(data) < FRAGMENT_HEADER_SIZE):
            raise BfcpDecodeError(ErrorCodeValue.INCORRECT_MESSAGE_LENGTH, "truncated COMMON-HEADER")
        buf = Buffer(data[:FRAGMENT_HEADER_SIZE])
        first = buf.pull_uint8()
        primitive = buf.pull_uint8()
        payload_length = buf.pull_uint16()
        conference_id = buf.pull_uint32()
        transaction_id = buf.pull_uint16()
        user_id = buf.pull_uint16()
        offset: int | None = None
        length: int | None = None
        if first & 0x08:
            offset = buf.pull_uint16()
            length = buf.pull_uint16()
        return cls(
            first >> 5,
            primitive,
            payload_length,
            conference_id,
            transaction_id,
            user_id,
            bool(first & 0x10),
            offset,
            length,
        )


def _check_grammar(primitive: Primitive, attributes: tuple[Attribute, ...]) -> str | None:
    """``None`` if ``attributes`` match the §5.3 grammar of ``primitive``, else what is wrong."""
    rules = PRIMITIVE_RULES[primitive]
    counts: dict[int, int] = {}
    for a in attributes:
        if isinstance(a, UnknownAttribute):
            continue
        if a.TYPE not in rules:
            return f"{a.TYPE.name} is not allowed in {primitive.name}"
        counts[a.TYPE] = counts.get(a.TYPE, 0) + 1
    for t, (low, high) in rules.items():
        n = counts.get(t, 0)
        if n < low or (high is not None and n > high):
            return f"{primitive.name} carries {n} {AttributeType(t).name} attribute(s)"
    return None


@dataclass(frozen=True, slots=True)
class Message:
    """One BFCP message: the COMMON-HEADER fields and its top-level attributes, in wire order."""

    primitive: Primitive
    conference_id: int
    transaction_id: int
    user_id: int
    attributes: tuple[Attribute, ...] = ()
    version: int = VERSION_RELIABLE
    responder: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.primitive, Primitive):
            raise ValueError(f"unknown primitive {self.primitive!r}")
        if self.version not in (VERSION_RELIABLE, VERSION_UNRELIABLE):
            raise ValueError("BFCP versions are 1 (TCP/TLS) and 2 (UDP/DTLS)")
        if not 0 <= self.conference_id <= 0xFFFFFFFF:
            raise ValueError("conference id is 32 bits")
        if not (0 <= self.transaction_id <= 0xFFFF and 0 <= self.user_id <= 0xFFFF):
            raise ValueError("transaction and user ids are 16 bits")
        problem = _check_grammar(self.primitive, self.attributes)
        if problem is not None:
            raise ValueError(problem)
        # each attribute is at most 256 octets padded, so only very long lists need measuring
        if len(self.attributes) * 256 > 4 * 0xFFFF and len(self._payload()) > 4 * 0xFFFF:
            raise ValueError("message too long for the 16-bit payload length")

    def _payload(self) -> bytes:
        return b"".join(encode_attribute(a) for a in self.attributes)

    def get(self, cls: type[_A]) -> _A | None:
        """The first top-level attribute of class ``cls``, or None."""
        for a in self.attributes:
            if isinstance(a, cls):
                return a
        return None

    def get_all(self, cls: type[_A]) -> list[_A]:
        """Every top-level attribute of class ``cls``, in order."""
        return [a for a in self.attributes if isinstance(a, cls)]

    def __bytes__(self) -> bytes:
        payload = self._payload()
        header = CommonHeader(
            self.version,
            self.primitive,
            len(payload) // 4,
            self.conference_id,
            self.transaction_id,
            self.user_id,
            self.responder,
        )
        return bytes(header) + payload

    @classmethod
    def parse(cls, data: bytes, *, reliable: bool = True) -> Message:
        """Parse exactly one whole message.

        ``reliable`` selects TCP/TLS rules (version 1, no fragmentation) or UDP rules (version 2; fragments
        are recognised and refused, reassembly is not implemented here).
        """
        header = CommonHeader.parse(data)
        expected = VERSION_RELIABLE if reliable else VERSION_UNRELIABLE
        if header.version != expected:
            raise _header_error(
                header,
                ErrorCodeValue.UNSUPPORTED_VERSION,
                f"version {header.version} where {expected} is required",
            )
        if header.fragmented:
            why = "fragmented message over a reliable transport" if reliable else "fragments not supported"
            raise _header_error(header, ErrorCodeValue.UNABLE_TO_PARSE_MESSAGE, why)
        if len(data) != header.message_size:
            raise _header_error(
                header,
                ErrorCodeValue.INCORRECT_MESSAGE_LENGTH,
                f"payload length says {header.message_size} octets, got {len(data)}",
            )
        if header.primitive not in Primitive._value2member_map_:
            raise _header_error(
                header, ErrorCodeValue.UNKNOWN_PRIMITIVE, f"unknown primitive {header.primitive}"
            )
        primitive = Primitive(header.primitive)
        ctx = DecodeContext()
        try:
            attributes = tuple(decode_attributes(data[header.size :], ctx))
        except BfcpDecodeError as exc:
            raise exc.with_header(
                header.conference_id, header.transaction_id, header.user_id, header.primitive
            ) from None
        if ctx.unknown_mandatory:
            raise BfcpDecodeError(
                ErrorCodeValue.UNKNOWN_MANDATORY_ATTRIBUTE,
                "unknown mandatory attribute(s) " + ", ".join(map(str, ctx.unknown_mandatory)),
                unknown_attributes=tuple(ctx.unknown_mandatory),
                conference_id=header.conference_id,
                transaction_id=header.transaction_id,
                user_id=header.user_id,
                primitive=header.primitive,
            )
        problem = _check_grammar(primitive, attributes)
        if problem is not None:
            raise _header_error(header, ErrorCodeValue.UNABLE_TO_PARSE_MESSAGE, problem)
        return cls(
            primitive,
            header.conference_id,
            header.transaction_id,
            header.user_id,
            attributes,
            header.version,
            header.responder,
        )

    def describe(self) -> str:
        """A one-line summary for logs (attribute types only, never text contents)."""
        types = ",".join(str(attribute_type(a)) for a in self.attributes)
        return (
            f"{self.primitive.name} conf={self.conference_id} tid={self.transaction_id} "
            f"uid={self.user_id} attrs=[{types}]"
        )


def _truncate_utf8(text: str, limit: int) -> str:
    return text.encode("utf-8")[:limit].decode("utf-8", "ignore")


def error_for(request: Message, code: ErrorCodeValue, info: str | None = None) -> Message:
    """The Error answering ``request``: same conference, transaction and user ids (RFC 8855 §13.8)."""
    attrs: list[Attribute] = [ErrorCode(code)]
    if info:
        attrs.append(ErrorInfo(_truncate_utf8(info, 253)))
    return Message(
        Primitive.ERROR,
        request.conference_id,
        request.transaction_id,
        request.user_id,
        tuple(attrs),
        request.version,
    )


def error_response(
    err: BfcpDecodeError, *, conference_id: int = 0, transaction_id: int = 0, user_id: int = 0
) -> Message:
    """The Error message answering bytes that raised ``err``.

    Header fields come from ``err`` when the COMMON-HEADER was readable, else from the keyword defaults.
    An Unknown Mandatory Attribute error lists the offending types in its Error Specific Details.
    """
    if err.code == ErrorCodeValue.UNKNOWN_MANDATORY_ATTRIBUTE:
        code = ErrorCode.unknown_mandatory(err.unknown_attributes[:253])
    else:
        code = ErrorCode(err.code)
    return Message(
        Primitive.ERROR,
        conference_id if err.conference_id is None else err.conference_id,
        transaction_id if err.transaction_id is None else err.transaction_id,
        user_id if err.user_id is None else err.user_id,
        (code, ErrorInfo(_truncate_utf8(err.reason, 253))),
    )


class BfcpFramer:
    """Cuts a TCP/TLS octet stream into BFCP messages (RFC 8855 §6.2: messages come back to back).

    ``receive(data)`` buffers, ``next_message()`` returns the next whole message or ``None`` when more
    octets are needed.  A malformed message raises ``BfcpDecodeError`` once and is skipped, so the stream
    goes on; a header that cannot be trusted (wrong version, F bit, a message larger than
    ``max_message_size``) raises with ``fatal=True`` and the framer stays broken: close the connection
    after sending the Error.  ``feed(data)`` is the list-returning shortcut.
    """

    def __init__(self, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> None:
        if max_message_size < COMMON_HEADER_SIZE:
            raise ValueError("max_message_size smaller than a header")
        self.max_message_size = max_message_size
        self._buffer = bytearray()
        self._broken: BfcpDecodeError | None = None
        self._deferred: BfcpDecodeError | None = None

    @property
    def broken(self) -> bool:
        return self._broken is not None

    @property
    def buffered(self) -> int:
        """Octets received but not yet returned as a message."""
        return len(self._buffer)

    def receive(self, data: bytes) -> None:
        if self._broken is None:
            self._buffer += data

    def _fatal(self, err: BfcpDecodeError) -> BfcpDecodeError:
        self._broken = err
        self._buffer.clear()
        return err

    def next_message(self) -> Message | None:
        if self._broken is not None:
            raise self._broken
        if len(self._buffer) < COMMON_HEADER_SIZE:
            return None
        header = CommonHeader.parse(bytes(self._buffer[:COMMON_HEADER_SIZE]) + b"\0\0\0\0")
        if header.version != VERSION_RELIABLE:
            raise self._fatal(
                BfcpDecodeError(
                    ErrorCodeValue.UNSUPPORTED_VERSION,
                    f"version {header.version} over a reliable transport (must be 1)",
                    fatal=True,
                )
            )
        if header.fragmented:
            raise self._fatal(
                _header_error(
                    header,
                    ErrorCodeValue.UNABLE_TO_PARSE_MESSAGE,
                    "F bit set over a reliable transport",
                    fatal=True,
                )
            )
        size = header.message_size
        if size > self.max_message_size:
            raise self._fatal(
                _header_error(
                    header,
                    ErrorCodeValue.INCORRECT_MESSAGE_LENGTH,
                    f"message of {size} octets exceeds the {self.max_message_size}-octet cap",
                    fatal=True,
                )
            )
        if len(self._buffer) < size:
            return None
        frame = bytes(self._buffer[:size])
        del self._buffer[:size]
        return Message.parse(frame, reliable=True)

    def feed(self, data: bytes) -> list[Message]:
        """Buffer ``data`` and return every whole message now available.

        If a bad message follows good ones, the good ones are returned and the error is raised by the next
        call (``feed(b"")`` to collect it); so no message is lost and no error is swallowed.
        """
        if self._deferred is not None:
            err, self._deferred = self._deferred, None
            self.receive(data)
            raise err
        self.receive(data)
        out: list[Message] = []
        while True:
            try:
                msg = self.next_message()
            except BfcpDecodeError as exc:
                if not out:
                    raise
                self._deferred = exc
                return out
            if msg is None:
                return out
            out.append(msg)

    @property
    def has_pending_error(self) -> bool:
        return self._deferred is not None
