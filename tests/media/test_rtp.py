from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imsconf.media.rtp import (
    Bye,
    ReceiverReport,
    ReceptionStats,
    ReportBlock,
    RtcpError,
    RtpError,
    RtpPacket,
    SenderReport,
    SequenceUnwrapper,
    SourceDescription,
    UnknownRtcp,
    is_rtcp,
    ntp_from_unix,
    ntp_middle32,
    pack_rtp_header,
    parse_rtcp,
    parse_rtp_fast,
    seq_diff,
    serialize_rtcp,
    ts_diff,
)

# A PCMU packet as a phone sends it (header + 4 payload bytes for brevity).
CAPTURED = bytes.fromhex("80001234000003e8deadbeef") + b"\xff\xfe\x7f\x00"


def test_parse_captured_packet() -> None:
    pkt = RtpPacket.parse(CAPTURED)
    assert (pkt.payload_type, pkt.sequence_number, pkt.timestamp, pkt.ssrc) == (0, 0x1234, 1000, 0xDEADBEEF)
    assert pkt.payload == b"\xff\xfe\x7f\x00" and not pkt.marker
    assert bytes(pkt) == CAPTURED


def test_round_trip_with_csrc_extension_padding_marker() -> None:
    pkt = RtpPacket(
        payload_type=101,
        sequence_number=65535,
        timestamp=0xFFFFFFFF,
        ssrc=1,
        payload=b"abc",
        marker=True,
        csrcs=(1, 2, 3),
        extension_profile=0xBEDE,
        extension=b"\x10\xff\x00\x00",
        padding=5,
    )
    data = bytes(pkt)
    assert RtpPacket.parse(data) == pkt
    assert parse_rtp_fast(data) == (101, True, 65535, 0xFFFFFFFF, 1, b"abc")


def test_fast_header() -> None:
    hdr = pack_rtp_header(8, 7, 160, 99, marker=True)
    assert parse_rtp_fast(hdr + b"x") == (8, True, 7, 160, 99, b"x")


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x80\x00",
        bytes.fromhex("40001234000003e8deadbeef"),  # version 1
        bytes.fromhex("81001234000003e8deadbeef"),  # CSRC count 1, no CSRC
        bytes.fromhex("90001234000003e8deadbeef0000"),  # truncated extension header
        bytes.fromhex("90001234000003e8deadbeefbede0002aaaa"),  # truncated extension body
        bytes.fromhex("a0001234000003e8deadbeef00"),  # padding 0
        bytes.fromhex("a0001234000003e8deadbeef0009"),  # padding longer than the payload
    ],
)
def test_invalid_rtp(data: bytes) -> None:
    with pytest.raises(RtpError):
        RtpPacket.parse(data)
    with pytest.raises(RtpError):
        parse_rtp_fast(data)


@given(st.binary(max_size=200))
def test_random_bytes_raise_only_rtp_error(data: bytes) -> None:
    for parse in (RtpPacket.parse, parse_rtp_fast, parse_rtcp):
        try:
            parse(data)
        except RtpError:
            pass


@given(
    st.integers(0, 127),
    st.integers(0, 0xFFFF),
    st.integers(0, 0xFFFFFFFF),
    st.integers(0, 0xFFFFFFFF),
    st.binary(max_size=64),
    st.booleans(),
    st.lists(st.integers(0, 0xFFFFFFFF), max_size=15),
)
def test_rtp_round_trip_property(
    pt: int, seq: int, ts: int, ssrc: int, payload: bytes, m: bool, cs: list[int]
) -> None:
    pkt = RtpPacket(pt, seq, ts, ssrc, payload, m, tuple(cs))
    assert RtpPacket.parse(bytes(pkt)) == pkt


def test_rtcp_mux_demux_rule() -> None:
    assert is_rtcp(bytes([0x80, 200]))  # SR
    assert is_rtcp(bytes([0x80, 201]))  # RR
    assert is_rtcp(bytes([0x80, 192])) and is_rtcp(bytes([0x80, 223]))
    assert not is_rtcp(bytes([0x80, 0]))  # PCMU
    assert not is_rtcp(bytes([0x80, 0x80 | 0]))  # PCMU with marker
    assert not is_rtcp(bytes([0x80, 101]))  # telephone-event
    assert not is_rtcp(bytes([0x80, 224])) and not is_rtcp(b"\x80")


def test_sequence_arithmetic() -> None:
    assert seq_diff(1, 65535) == 2
    assert seq_diff(65535, 1) == -2
    assert ts_diff(5, 0xFFFFFFFF) == 6
    u = SequenceUnwrapper()
    assert [u.unwrap(s) for s in (65534, 65535, 0, 65533, 1)] == [65534, 65535, 65536, 65533, 65537]


def test_rtcp_compound_round_trip() -> None:
    block = ReportBlock(0x1234, 25, -3, 70000, 42, 0xAABBCCDD, 65536)
    ntp = ntp_from_unix(1_700_000_000.25)
    packets = [
        SenderReport(1, ntp, 160, 10, 1600, (block,)),
        ReceiverReport(2, (block, block)),
        SourceDescription(((1, b"mixer@example"), (2, b"x"))),
        Bye((1, 2)),
        UnknownRtcp(206, 1, b"\x00\x00\x00\x01\x00\x00\x00\x02"),
    ]
    data = serialize_rtcp(packets)  # type: ignore[arg-type]
    assert parse_rtcp(data) == packets
    assert ntp >> 32 == 1_700_000_000 + 2_208_988_800
    assert ntp_middle32(ntp) == ((ntp >> 16) & 0xFFFFFFFF)


@pytest.mark.parametrize(
    "data",
    [
        b"\x80\xc8\x00",
        b"\x80\xc8\x00\x06" + bytes(20),  # SR length beyond data
        b"\x40\xc9\x00\x01" + bytes(4),  # version 1
        b"\x81\xc9\x00\x01" + bytes(4),  # RR claims one block, has none
        b"\x81\xca\x00\x02" + b"\x00\x00\x00\x01\x01\x05ab",  # SDES item overruns
        b"\x80\x05\x00\x00",  # packet type 5
        b"\x80\xc9\x00\x01\x00\x00\x00\x01\x00",  # trailing byte
    ],
)
def test_invalid_rtcp(data: bytes) -> None:
    with pytest.raises(RtcpError):
        parse_rtcp(data)


def test_reception_stats_loss_and_jitter() -> None:
    rs = ReceptionStats()
    assert rs.report_block(1) is None
    for i, seq in enumerate([10, 11, 13, 14]):  # 12 lost
        rs.update(seq, seq * 160, (seq * 160) + (0 if i % 2 else 40))
    blk = rs.report_block(7, lsr=5, dlsr=6)
    assert blk is not None
    assert blk.ssrc == 7 and blk.cumulative_lost == 1 and blk.highest_seq == 14
    assert blk.fraction_lost == 256 // 5
    assert blk.jitter > 0
