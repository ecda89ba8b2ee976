"""BFCP codec: attributes, messages, COMMON-HEADER, errors and TCP framing (RFC 8855 §5)."""

from __future__ import annotations

import pytest
from bfcp_samples import ATTRIBUTES, MESSAGES, any_attribute, messages, sample_message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imsconf.floor.attributes import (
    ErrorCode,
    ErrorInfo,
    FloorId,
    FloorRequestInformation,
    FloorRequestStatus,
    StatusInfo,
    UnknownAttribute,
    UserDisplayName,
    decode_attributes,
    encode_attribute,
)
from imsconf.floor.codec import BfcpFramer, CommonHeader, Message, error_for, error_response
from imsconf.floor.constants import ErrorCodeValue, Primitive
from imsconf.floor.errors import BfcpDecodeError

E = ErrorCodeValue


# --- table-driven round trips -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(ATTRIBUTES))
def test_attribute_round_trip(name: str) -> None:
    attr = ATTRIBUTES[name]
    wire = encode_attribute(attr)
    assert len(wire) % 4 == 0
    assert wire[1] <= len(wire) < wire[1] + 4  # Length excludes padding, padding < 4
    assert wire[wire[1] :] == bytes(len(wire) - wire[1])  # zero padding
    assert decode_attributes(wire) == [attr]


@pytest.mark.parametrize("primitive", list(Primitive), ids=lambda p: p.name)
def test_message_round_trip(primitive: Primitive) -> None:
    msg = sample_message(primitive)
    wire = bytes(msg)
    assert wire[1] == primitive
    assert len(wire) == 12 + 4 * int.from_bytes(wire[2:4], "big")
    assert Message.parse(wire) == msg
    assert bytes(Message.parse(wire)) == wire


def test_every_primitive_and_attribute_is_covered() -> None:
    assert set(MESSAGES) == set(Primitive)
    covered = {type(a).__name__ for a in ATTRIBUTES.values()}
    assert len(covered) == 19  # 18 RFC 8855 attributes + extensions


@pytest.mark.parametrize(
    ("attr", "wire"),
    [
        (FloorId(5), "04040005"),
        (FloorId(5, mandatory=True), "05040005"),
        (ATTRIBUTES["PRIORITY"], "08048000"),  # Prio=4 in the top 3 bits
        (ATTRIBUTES["REQUEST-STATUS"], "0a040700"),
        (ATTRIBUTES["ERROR-CODE-4"], "0c050450c8000000"),  # code 4, types 40 and 100 shifted left
        (UserDisplayName("Bob"), "1805426f62000000"),  # length 5, 3 octets of padding
        (ErrorInfo(""), "0e020000"),
    ],
)
def test_attribute_golden_bytes(attr: object, wire: str) -> None:
    assert encode_attribute(attr).hex() == wire  # type: ignore[arg-type]


def test_golden_hello() -> None:
    msg = Message(Primitive.HELLO, 0x01020304, 0x0506, 0x0708)
    assert bytes(msg).hex() == "200b00000102030405060708"


def test_grouped_length_counts_padded_children() -> None:
    frs = FloorRequestStatus(1, None, StatusInfo("x"))
    wire = encode_attribute(frs)
    assert wire[1] == 4 + 4  # header + floor id, then STATUS-INFO (3 octets) padded to 4
    assert len(wire) == 8


def test_common_header_with_fragment_fields() -> None:
    hdr = CommonHeader(2, 4, 3, 9, 8, 7, True, 12, 3)
    wire = bytes(hdr)
    assert len(wire) == 16 and wire[0] == 0b0101_1000
    assert CommonHeader.parse(wire) == hdr
    assert CommonHeader.parse(wire).message_size == 16 + 12


def test_reserved_header_bits_are_ignored() -> None:
    wire = bytearray(bytes(sample_message(Primitive.HELLO)))
    wire[0] |= 0b111
    assert Message.parse(bytes(wire)) == sample_message(Primitive.HELLO)


def test_version_2_message_over_udp_rules() -> None:
    msg = Message(Primitive.HELLO, 1, 2, 3, version=2, responder=True)
    assert Message.parse(bytes(msg), reliable=False) == msg


# --- errors carry the code to answer with ------------------------------------------------------------------


def _parse_error(wire: bytes, reliable: bool = True) -> BfcpDecodeError:
    with pytest.raises(BfcpDecodeError) as info:
        Message.parse(wire, reliable=reliable)
    return info.value


def _patch(wire: bytes, offset: int, value: bytes) -> bytes:
    return wire[:offset] + value + wire[offset + len(value) :]


HELLO = bytes(sample_message(Primitive.HELLO, tid=77))
FLOOR_REQUEST = bytes(Message(Primitive.FLOOR_REQUEST, 1, 77, 5, (FloorId(1),)))


@pytest.mark.parametrize(
    ("name", "wire", "code"),
    [
        ("short", HELLO[:11], E.INCORRECT_MESSAGE_LENGTH),
        ("version 2 over TCP", _patch(HELLO, 0, b"\x40"), E.UNSUPPORTED_VERSION),
        ("version 3", _patch(HELLO, 0, b"\x60"), E.UNSUPPORTED_VERSION),
        ("F bit over TCP", _patch(HELLO, 0, b"\x28") + b"\0\0\0\0", E.UNABLE_TO_PARSE_MESSAGE),
        ("unknown primitive", _patch(HELLO, 1, b"\x63"), E.UNKNOWN_PRIMITIVE),
        ("primitive 0", _patch(HELLO, 1, b"\x00"), E.UNKNOWN_PRIMITIVE),
        ("payload too long", _patch(HELLO, 2, b"\x00\x01"), E.INCORRECT_MESSAGE_LENGTH),
        ("trailing octets", HELLO + b"\0\0\0\0", E.INCORRECT_MESSAGE_LENGTH),
        ("missing FLOOR-ID", _patch(HELLO, 1, b"\x01"), E.UNABLE_TO_PARSE_MESSAGE),
        ("attribute overruns", _patch(FLOOR_REQUEST, 13, b"\x08"), E.INCORRECT_MESSAGE_LENGTH),
        ("attribute length 1", _patch(FLOOR_REQUEST, 13, b"\x01"), E.UNABLE_TO_PARSE_MESSAGE),
        ("FLOOR-ID of 3 octets", _patch(FLOOR_REQUEST, 13, b"\x03"), E.UNABLE_TO_PARSE_MESSAGE),
        ("attribute not allowed", _patch(FLOOR_REQUEST, 1, b"\x02"), E.UNABLE_TO_PARSE_MESSAGE),
        ("unknown mandatory", _patch(FLOOR_REQUEST, 12, b"\xc9"), E.UNKNOWN_MANDATORY_ATTRIBUTE),
    ],
)
def test_invalid_messages(name: str, wire: bytes, code: ErrorCodeValue) -> None:
    assert _parse_error(wire).code == code


def test_missing_mandatory_attribute() -> None:
    wire = bytes(Message(Primitive.HELLO, 1, 77, 5))
    err = _parse_error(_patch(wire, 1, bytes([Primitive.FLOOR_RELEASE])))
    assert err.code == E.UNABLE_TO_PARSE_MESSAGE and "FLOOR_REQUEST_ID" in err.reason


def test_unknown_mandatory_attributes_are_all_listed_and_echoed() -> None:
    body = bytes([101 << 1 | 1, 2, 0, 0]) + bytes([102 << 1 | 1, 3, 9, 0])
    wire = bytes(Message(Primitive.HELLO, 1, 77, 5)) + body
    wire = _patch(wire, 2, (len(body) // 4).to_bytes(2, "big"))
    err = _parse_error(wire)
    assert err.code == E.UNKNOWN_MANDATORY_ATTRIBUTE
    assert err.unknown_attributes == (101, 102)
    reply = error_response(err)
    assert (reply.conference_id, reply.transaction_id, reply.user_id) == (1, 77, 5)
    code = reply.get(ErrorCode)
    assert code is not None and code.unknown_attributes == (101, 102)
    assert Message.parse(bytes(reply)) == reply


def test_unknown_optional_attribute_is_kept() -> None:
    msg = Message(Primitive.HELLO, 1, 2, 3, (UnknownAttribute(120, b"abcde"),))
    assert Message.parse(bytes(msg)).attributes == (UnknownAttribute(120, b"abcde"),)


def test_bad_utf8_and_bad_values() -> None:
    base = bytes(Message(Primitive.ERROR, 1, 2, 3, (ErrorCode(E.GENERIC_ERROR), ErrorInfo("ab"))))
    assert _parse_error(base[:-4] + bytes([7 << 1, 4, 0xFF, 0xFE])).code == E.UNABLE_TO_PARSE_MESSAGE
    status = bytes(
        Message(Primitive.FLOOR_REQUEST_STATUS, 1, 2, 3, (ATTRIBUTES["FLOOR-REQUEST-INFORMATION"],))
    )
    # FRI(4) then OVERALL-REQUEST-STATUS(4) then its REQUEST-STATUS value: set an unassigned status 9
    assert _parse_error(_patch(status, 12 + 4 + 4 + 2, b"\x09")).code == E.UNABLE_TO_PARSE_MESSAGE


def test_grouped_attribute_grammar() -> None:
    fri_without_status = bytes([15 << 1, 4, 0, 1])
    wire = bytes(Message(Primitive.HELLO, 1, 2, 3)) + fri_without_status
    wire = _patch(_patch(wire, 1, b"\x09"), 2, b"\x00\x01")  # ChairAction, payload 1 word
    assert _parse_error(wire).code == E.UNABLE_TO_PARSE_MESSAGE


def test_error_response_without_header_uses_defaults() -> None:
    err = BfcpDecodeError(E.INCORRECT_MESSAGE_LENGTH, "x" * 400)
    reply = error_response(err, conference_id=9, user_id=4)
    assert (reply.conference_id, reply.transaction_id, reply.user_id) == (9, 0, 4)
    info = reply.get(ErrorInfo)
    assert info is not None and len(info.text) == 253


def test_error_for_echoes_the_request() -> None:
    req = sample_message(Primitive.FLOOR_QUERY, tid=99)
    reply = error_for(req, E.INVALID_FLOOR_ID, "no floor 9")
    assert reply.primitive == Primitive.ERROR and reply.transaction_id == 99
    code = reply.get(ErrorCode)
    assert code is not None and code.code == E.INVALID_FLOOR_ID


@pytest.mark.parametrize(
    "build",
    [
        lambda: Message(Primitive.FLOOR_REQUEST, 1, 2, 3),  # needs a FLOOR-ID
        lambda: Message(Primitive.HELLO, 1, 2, 3, (FloorId(1),)),
        lambda: Message(Primitive.HELLO, 1, 2, 3, version=3),
        lambda: Message(Primitive.HELLO, 1 << 32, 2, 3),
        lambda: FloorId(70000),
        lambda: UserDisplayName("x" * 254),
        lambda: FloorRequestInformation(1, ()),
        lambda: UnknownAttribute(2, b""),
        lambda: FloorRequestInformation(1, tuple(FloorRequestStatus(i) for i in range(70))),
    ],
)
def test_local_mistakes_raise_value_error(build: object) -> None:
    with pytest.raises(ValueError):
        build()  # type: ignore[operator]


# --- framing ---------------------------------------------------------------------------------------------


def test_framer_byte_by_byte() -> None:
    msgs = [sample_message(p, tid=i + 1) for i, p in enumerate(Primitive)]
    stream = b"".join(bytes(m) for m in msgs)
    framer = BfcpFramer()
    out = []
    for i in range(len(stream)):
        out += framer.feed(stream[i : i + 1])
    assert out == msgs and framer.buffered == 0


def test_framer_pipelined() -> None:
    msgs = [sample_message(Primitive.FLOOR_STATUS, tid=i) for i in range(5)]
    stream = b"".join(bytes(m) for m in msgs)
    framer = BfcpFramer()
    assert framer.feed(stream + stream[:7]) == msgs
    assert framer.buffered == 7
    assert framer.feed(stream[7:20]) == []


def test_framer_skips_a_bad_message_and_defers_its_error() -> None:
    good = bytes(sample_message(Primitive.HELLO))
    bad = _patch(good, 1, b"\x63")  # unknown primitive, well framed
    framer = BfcpFramer()
    assert framer.feed(good + bad + good) == [sample_message(Primitive.HELLO)]
    assert framer.has_pending_error
    with pytest.raises(BfcpDecodeError) as info:
        framer.feed(b"")
    assert info.value.code == E.UNKNOWN_PRIMITIVE and not info.value.fatal
    assert framer.feed(b"") == [sample_message(Primitive.HELLO)]


def test_framer_size_cap_is_fatal() -> None:
    framer = BfcpFramer(max_message_size=1024)
    header = bytes(CommonHeader(1, 11, 1000, 1, 2, 3))
    with pytest.raises(BfcpDecodeError) as info:
        framer.feed(header)
    assert info.value.fatal and info.value.code == E.INCORRECT_MESSAGE_LENGTH
    assert info.value.transaction_id == 2
    assert framer.broken
    with pytest.raises(BfcpDecodeError):
        framer.feed(bytes(sample_message(Primitive.HELLO)))


@pytest.mark.parametrize("first", [0x28, 0x40, 0x00])
def test_framer_untrustworthy_header_is_fatal(first: int) -> None:
    framer = BfcpFramer()
    with pytest.raises(BfcpDecodeError) as info:
        framer.feed(bytes([first]) + bytes(sample_message(Primitive.HELLO))[1:])
    assert info.value.fatal


# --- property tests ---------------------------------------------------------------------------------------


@given(st.sampled_from(sorted(any_attribute)).flatmap(lambda t: any_attribute[t]))
def test_generated_attributes_round_trip(attr: object) -> None:
    assert decode_attributes(encode_attribute(attr)) == [attr]  # type: ignore[arg-type]


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(messages())
def test_generated_messages_round_trip(msg: Message) -> None:
    wire = bytes(msg)
    assert Message.parse(wire) == msg
    assert BfcpFramer().feed(wire) == [msg]


@settings(max_examples=500)
@given(st.binary(max_size=300))
def test_random_bytes_only_raise_decode_errors(data: bytes) -> None:
    for reliable in (True, False):
        try:
            Message.parse(data, reliable=reliable)
        except BfcpDecodeError:
            pass


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(messages(), st.data())
def test_mutated_messages_only_raise_decode_errors(msg: Message, data: st.DataObject) -> None:
    wire = bytearray(bytes(msg))
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(wire) - 1))
        wire[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(wire)))
    for candidate in (bytes(wire), bytes(wire[:cut])):
        try:
            parsed = Message.parse(candidate)
        except BfcpDecodeError as err:
            error_response(err)  # the answer can always be built
        else:
            assert Message.parse(bytes(parsed)) == parsed


@settings(max_examples=200)
@given(st.lists(st.binary(max_size=40), max_size=10))
def test_framer_on_random_chunks_only_raises_decode_errors(chunks: list[bytes]) -> None:
    framer = BfcpFramer(max_message_size=512)
    for chunk in chunks:
        try:
            framer.feed(chunk)
        except BfcpDecodeError:
            if framer.broken:
                break
