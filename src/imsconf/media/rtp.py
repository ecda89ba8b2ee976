"""RTP and RTCP wire formats (RFC 3550), rtcp-mux demultiplexing (RFC 5761).

Sans-I/O: ``parse(data)`` classmethods and ``__bytes__``. Every malformed input raises :class:`RtpError`
(or its subclass :class:`RtcpError`); any other exception escaping a parser is a bug.

The hot path of the mixer does not build :class:`RtpPacket` objects: it uses :func:`parse_rtp_fast` and
:func:`pack_rtp_header`, which read and write the fixed header with one ``struct`` call each.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Self

RTP_VERSION = 2
RTP_HEADER_LEN = 12
RTCP_HEADER_LEN = 4

# RFC 3550 §12.1 RTCP packet types
RTCP_SR = 200
RTCP_RR = 201
RTCP_SDES = 202
RTCP_BYE = 203
RTCP_APP = 204

SDES_CNAME = 1

# Seconds between 1900-01-01 (NTP era 0) and 1970-01-01 (Unix epoch).
NTP_EPOCH_OFFSET = 2_208_988_800

_HDR = struct.Struct("!BBHII")
_U32 = struct.Struct("!I")
_RTCP_HDR = struct.Struct("!BBH")
_SR_INFO = struct.Struct("!IIIIII")  # ssrc, ntp_hi, ntp_lo, rtp_ts, packets, octets
_REPORT_BLOCK = struct.Struct("!IIIIII")


class RtpError(ValueError):
    """Malformed RTP (or RTCP) input."""


class RtcpError(RtpError):
    """Malformed RTCP input."""


# --------------------------------------------------------------------------- sequence / timestamp arithmetic


def seq_diff(a: int, b: int) -> int:
    """Signed distance ``a - b`` between two 16-bit sequence numbers, in [-32768, 32767]."""
    return ((a - b + 0x8000) & 0xFFFF) - 0x8000


def seq_newer(a: int, b: int) -> bool:
    """True when sequence number ``a`` comes after ``b`` (modulo 2**16)."""
    return seq_diff(a, b) > 0


def ts_diff(a: int, b: int) -> int:
    """Signed distance ``a - b`` between two 32-bit RTP timestamps."""
    return ((a - b + 0x8000_0000) & 0xFFFF_FFFF) - 0x8000_0000


class SequenceUnwrapper:
    """Extends 16-bit sequence numbers to a monotonic integer space (RFC 3550 A.1, simplified).

    The first number seen maps to itself; later numbers map to the extended value closest to the
    highest extended number seen so far.
    """

    __slots__ = ("_highest",)

    def __init__(self) -> None:
        self._highest: int | None = None

    def reset(self) -> None:
        self._highest = None

    def unwrap(self, seq: int) -> int:
        if self._highest is None:
            self._highest = seq
            return seq
        ext = self._highest + seq_diff(seq, self._highest & 0xFFFF)
        if ext > self._highest:
            self._highest = ext
        return ext

    @property
    def highest(self) -> int | None:
        return self._highest


# --------------------------------------------------------------------------- RTP


@dataclass(slots=True)
class RtpPacket:
    """One RTP packet (RFC 3550 §5.1)."""

    payload_type: int
    sequence_number: int
    timestamp: int
    ssrc: int
    payload: bytes = b""
    marker: bool = False
    csrcs: tuple[int, ...] = ()
    extension_profile: int | None = None
    extension: bytes = b""
    padding: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.payload_type <= 127:
            raise RtpError(f"payload type {self.payload_type} out of range")
        if not 0 <= self.sequence_number <= 0xFFFF:
            raise RtpError("sequence number out of range")
        if not 0 <= self.timestamp <= 0xFFFF_FFFF or not 0 <= self.ssrc <= 0xFFFF_FFFF:
            raise RtpError("timestamp or SSRC out of range")
        if len(self.csrcs) > 15:
            raise RtpError("more than 15 CSRCs")
        if len(self.extension) % 4:
            raise RtpError("header extension length is not a multiple of 4")
        if not 0 <= self.padding <= 255:
            raise RtpError("padding out of range")

    @classmethod
    def parse(cls, data: bytes) -> Self:
        if len(data) < RTP_HEADER_LEN:
            raise RtpError(f"RTP packet too short ({len(data)} bytes)")
        b0, b1, seq, ts, ssrc = _HDR.unpack_from(data)
        if b0 >> 6 != RTP_VERSION:
            raise RtpError(f"RTP version {b0 >> 6}")
        cc = b0 & 0x0F
        pos = RTP_HEADER_LEN + 4 * cc
        if len(data) < pos:
            raise RtpError("truncated CSRC list")
        csrcs = struct.unpack_from(f"!{cc}I", data, RTP_HEADER_LEN) if cc else ()
        profile: int | None = None
        ext = b""
        if b0 & 0x10:
            if len(data) < pos + 4:
                raise RtpError("truncated header extension")
            profile, words = struct.unpack_from("!HH", data, pos)
            pos += 4
            if len(data) < pos + 4 * words:
                raise RtpError("truncated header extension")
            ext = bytes(data[pos : pos + 4 * words])
            pos += 4 * words
        end = len(data)
        padding = 0
        if b0 & 0x20:
            padding = data[-1]
            if padding == 0 or end - padding < pos:
                raise RtpError("bad padding length")
            end -= padding
        return cls(
            payload_type=b1 & 0x7F,
            sequence_number=seq,
            timestamp=ts,
            ssrc=ssrc,
            payload=bytes(data[pos:end]),
            marker=bool(b1 & 0x80),
            csrcs=tuple(csrcs),
            extension_profile=profile,
            extension=ext,
            padding=padding,
        )

    def __bytes__(self) -> bytes:
        b0 = (RTP_VERSION << 6) | len(self.csrcs)
        if self.padding:
            b0 |= 0x20
        if self.extension_profile is not None:
            b0 |= 0x10
        out = bytearray(
            _HDR.pack(
                b0,
                (0x80 if self.marker else 0) | self.payload_type,
                self.sequence_number,
                self.timestamp,
                self.ssrc,
            )
        )
        for csrc in self.csrcs:
            out += _U32.pack(csrc)
        if self.extension_profile is not None:
            out += struct.pack("!HH", self.extension_profile, len(self.extension) // 4)
            out += self.extension
        out += self.payload
        if self.padding:
            out += bytes(self.padding - 1) + bytes([self.padding])
        return bytes(out)


def parse_rtp_fast(data: bytes) -> tuple[int, bool, int, int, int, bytes]:
    """Parse the fields the mixer needs: ``(payload_type, marker, seq, timestamp, ssrc, payload)``.

    Handles CSRCs, header extensions and padding like :meth:`RtpPacket.parse`, without building an
    object. Raises :class:`RtpError` on malformed input.
    """
    if len(data) < RTP_HEADER_LEN:
        raise RtpError(f"RTP packet too short ({len(data)} bytes)")
    b0, b1, seq, ts, ssrc = _HDR.unpack_from(data)
    if b0 & 0xC0 != 0x80:
        raise RtpError(f"RTP version {b0 >> 6}")
    if b0 & 0x3F == 0:  # fast path: no padding, extension or CSRC
        return b1 & 0x7F, b1 >= 0x80, seq, ts, ssrc, data[RTP_HEADER_LEN:]
    pkt = RtpPacket.parse(data)
    return pkt.payload_type, pkt.marker, seq, ts, ssrc, pkt.payload


def pack_rtp_header(payload_type: int, seq: int, timestamp: int, ssrc: int, marker: bool = False) -> bytes:
    """The 12-byte fixed RTP header, with no CSRC, extension or padding."""
    return _HDR.pack(0x80, (0x80 if marker else 0) | payload_type, seq, timestamp, ssrc)


def is_rtcp(data: bytes) -> bool:
    """RFC 5761 §4 demultiplexing: a packet whose second octet is 192-223 (PT 64-95 with the marker bit)
    is RTCP; anything else on a muxed port is RTP."""
    return len(data) >= 2 and 192 <= data[1] <= 223


# --------------------------------------------------------------------------- RTCP


def ntp_from_unix(unix_time: float) -> int:
    """64-bit NTP timestamp for a wall-clock time given as Unix seconds."""
    secs = int(unix_time)
    frac = int((unix_time - secs) * (1 << 32)) & 0xFFFF_FFFF
    return ((secs + NTP_EPOCH_OFFSET) & 0xFFFF_FFFF) << 32 | frac


def ntp_middle32(ntp: int) -> int:
    """The middle 32 bits of an NTP timestamp, as carried in LSR (RFC 3550 §6.4.1)."""
    return (ntp >> 16) & 0xFFFF_FFFF


@dataclass(frozen=True, slots=True)
class ReportBlock:
    """RFC 3550 §6.4.1 reception report block."""

    ssrc: int
    fraction_lost: int  # 0..255, fixed point /256
    cumulative_lost: int  # signed 24-bit
    highest_seq: int  # extended highest sequence number received
    jitter: int  # timestamp units
    lsr: int = 0
    dlsr: int = 0  # units of 1/65536 s

    def __post_init__(self) -> None:
        if not 0 <= self.fraction_lost <= 255:
            raise RtcpError("fraction lost out of range")
        if not -(1 << 23) <= self.cumulative_lost < (1 << 23):
            raise RtcpError("cumulative lost out of range")

    @classmethod
    def parse(cls, data: bytes, pos: int) -> ReportBlock:
        ssrc, lost_word, highest, jitter, lsr, dlsr = _REPORT_BLOCK.unpack_from(data, pos)
        cum = lost_word & 0xFFFFFF
        if cum & 0x800000:
            cum -= 1 << 24
        return cls(ssrc, lost_word >> 24, cum, highest, jitter, lsr, dlsr)

    def __bytes__(self) -> bytes:
        lost_word = (self.fraction_lost << 24) | (self.cumulative_lost & 0xFFFFFF)
        return _REPORT_BLOCK.pack(
            self.ssrc,
            lost_word,
            self.highest_seq & 0xFFFF_FFFF,
            self.jitter & 0xFFFF_FFFF,
            self.lsr & 0xFFFF_FFFF,
            self.dlsr & 0xFFFF_FFFF,
        )


def _rtcp_header(count: int, pt: int, body_len: int) -> bytes:
    if body_len % 4:
        raise RtcpError("RTCP body length is not a multiple of 4")
    return _RTCP_HDR.pack(0x80 | count, pt, body_len // 4)


@dataclass(frozen=True, slots=True)
class SenderReport:
    ssrc: int
    ntp_timestamp: int
    rtp_timestamp: int
    packet_count: int
    octet_count: int
    reports: tuple[ReportBlock, ...] = ()

    def __bytes__(self) -> bytes:
        if len(self.reports) > 31:
            raise RtcpError("more than 31 report blocks")
        body = _SR_INFO.pack(
            self.ssrc,
            self.ntp_timestamp >> 32,
            self.ntp_timestamp & 0xFFFF_FFFF,
            self.rtp_timestamp & 0xFFFF_FFFF,
            self.packet_count & 0xFFFF_FFFF,
            self.octet_count & 0xFFFF_FFFF,
        ) + b"".join(bytes(r) for r in self.reports)
        return _rtcp_header(len(self.reports), RTCP_SR, len(body)) + body


@dataclass(frozen=True, slots=True)
class ReceiverReport:
    ssrc: int
    reports: tuple[ReportBlock, ...] = ()

    def __bytes__(self) -> bytes:
        if len(self.reports) > 31:
            raise RtcpError("more than 31 report blocks")
        body = _U32.pack(self.ssrc) + b"".join(bytes(r) for r in self.reports)
        return _rtcp_header(len(self.reports), RTCP_RR, len(body)) + body


@dataclass(frozen=True, slots=True)
class SourceDescription:
    """SDES with one CNAME item per chunk (the only item this server sends)."""

    chunks: tuple[tuple[int, bytes], ...] = field(default_factory=tuple)  # (ssrc, cname)

    def __bytes__(self) -> bytes:
        body = bytearray()
        for ssrc, cname in self.chunks:
            if len(cname) > 255:
                raise RtcpError("CNAME longer than 255 octets")
            chunk = _U32.pack(ssrc) + bytes([SDES_CNAME, len(cname)]) + cname + b"\x00"
            chunk += bytes(-len(chunk) % 4)
            body += chunk
        return _rtcp_header(len(self.chunks), RTCP_SDES, len(body)) + bytes(body)


@dataclass(frozen=True, slots=True)
class Bye:
    ssrcs: tuple[int, ...]

    def __bytes__(self) -> bytes:
        body = b"".join(_U32.pack(s) for s in self.ssrcs)
        return _rtcp_header(len(self.ssrcs), RTCP_BYE, len(body)) + body


@dataclass(frozen=True, slots=True)
class UnknownRtcp:
    """An RTCP packet type this module does not interpret, kept verbatim."""

    packet_type: int
    count: int
    body: bytes

    def __bytes__(self) -> bytes:
        return _rtcp_header(self.count, self.packet_type, len(self.body)) + self.body


RtcpPacket = SenderReport | ReceiverReport | SourceDescription | Bye | UnknownRtcp


def _parse_sdes(count: int, body: bytes) -> SourceDescription:
    chunks: list[tuple[int, bytes]] = []
    pos = 0
    for _ in range(count):
        if pos + 4 > len(body):
            raise RtcpError("truncated SDES chunk")
        (ssrc,) = _U32.unpack_from(body, pos)
        pos += 4
        cname = b""
        while True:
            if pos >= len(body):
                raise RtcpError("unterminated SDES chunk")
            item = body[pos]
            if item == 0:
                pos += 1
                pos += -pos % 4
                break
            if pos + 2 > len(body) or pos + 2 + body[pos + 1] > len(body):
                raise RtcpError("truncated SDES item")
            length = body[pos + 1]
            if item == SDES_CNAME:
                cname = bytes(body[pos + 2 : pos + 2 + length])
            pos += 2 + length
        chunks.append((ssrc, cname))
    return SourceDescription(tuple(chunks))


def parse_rtcp(data: bytes) -> list[RtcpPacket]:
    """Parse a compound RTCP packet (RFC 3550 §6.1) into its parts."""
    if len(data) < RTCP_HEADER_LEN:
        raise RtcpError("RTCP packet too short")
    out: list[RtcpPacket] = []
    pos = 0
    while pos < len(data):
        if len(data) - pos < RTCP_HEADER_LEN:
            raise RtcpError("trailing bytes after RTCP packet")
        b0, pt, words = _RTCP_HDR.unpack_from(data, pos)
        if b0 >> 6 != RTP_VERSION:
            raise RtcpError(f"RTCP version {b0 >> 6}")
        length = 4 * (words + 1)
        if pos + length > len(data):
            raise RtcpError("truncated RTCP packet")
        end = pos + length
        if b0 & 0x20:  # padding: only allowed in the last packet of a compound
            pad = data[end - 1]
            if pad == 0 or end != len(data) or pad > length - RTCP_HEADER_LEN:
                raise RtcpError("bad RTCP padding")
            end -= pad
        body = bytes(data[pos + RTCP_HEADER_LEN : end])
        count = b0 & 0x1F
        if pt == RTCP_SR:
            if len(body) < 24 + 24 * count:
                raise RtcpError("truncated sender report")
            ssrc, ntp_hi, ntp_lo, rtp_ts, packets, octets = _SR_INFO.unpack_from(body)
            blocks = tuple(ReportBlock.parse(body, 24 + 24 * i) for i in range(count))
            out.append(SenderReport(ssrc, (ntp_hi << 32) | ntp_lo, rtp_ts, packets, octets, blocks))
        elif pt == RTCP_RR:
            if len(body) < 4 + 24 * count:
                raise RtcpError("truncated receiver report")
            (ssrc,) = _U32.unpack_from(body)
            blocks = tuple(ReportBlock.parse(body, 4 + 24 * i) for i in range(count))
            out.append(ReceiverReport(ssrc, blocks))
        elif pt == RTCP_SDES:
            out.append(_parse_sdes(count, body))
        elif pt == RTCP_BYE:
            if len(body) < 4 * count:
                raise RtcpError("truncated BYE")
            out.append(Bye(tuple(_U32.unpack_from(body, 4 * i)[0] for i in range(count))))
        else:
            if not 192 <= pt <= 223:
                raise RtcpError(f"RTCP packet type {pt} outside 192-223")
            out.append(UnknownRtcp(pt, count, body))
        pos += length
    return out


def serialize_rtcp(packets: list[RtcpPacket]) -> bytes:
    """Serialise a compound RTCP packet."""
    return b"".join(bytes(p) for p in packets)


class ReceptionStats:
    """Receiver-side statistics of one inbound RTP stream (RFC 3550 §6.4.1, A.1, A.3, A.8).

    ``arrival`` is the arrival time in RTP timestamp units (``int(now * clock_rate)``).
    """

    __slots__ = ("_base", "_exp_prior", "_jitter", "_max", "_recv_prior", "_transit", "received")

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """A new stream (new SSRC): start over."""
        self._base: int | None = None
        self._max = 0
        self.received = 0
        self._exp_prior = 0
        self._recv_prior = 0
        self._jitter = 0.0
        self._transit: int | None = None

    def update(self, seq: int, timestamp: int, arrival: int) -> None:
        mx = self._max
        if self._base is None:
            self._base = self._max = seq
        else:
            d = ((seq - mx + 0x8000) & 0xFFFF) - 0x8000  # seq_diff(seq, mx & 0xFFFF)
            if d > 0:
                self._max = mx + d
        self.received += 1
        transit = arrival - timestamp
        prev = self._transit
        if prev is not None:
            d = ((transit - prev + 0x8000_0000) & 0xFFFF_FFFF) - 0x8000_0000
            self._jitter += ((d if d >= 0 else -d) - self._jitter) * 0.0625
        self._transit = transit

    @property
    def jitter(self) -> int:
        """Interarrival jitter in timestamp units."""
        return int(self._jitter)

    @property
    def expected(self) -> int:
        return 0 if self._base is None else self._max - self._base + 1

    def report_block(self, ssrc: int, lsr: int = 0, dlsr: int = 0) -> ReportBlock | None:
        """The report block for this stream, and start a new reporting interval. None before any packet."""
        if self._base is None:
            return None
        block, self._exp_prior, self._recv_prior = report_block(
            ssrc,
            self.expected,
            self.received,
            self._exp_prior,
            self._recv_prior,
            self._max,
            self.jitter,
            lsr,
            dlsr,
        )
        return block


def report_block(
    ssrc: int,
    expected: int,
    received: int,
    exp_prior: int,
    recv_prior: int,
    max_seq: int,
    jitter: int,
    lsr: int,
    dlsr: int,
) -> tuple[ReportBlock, int, int]:
    """RFC 3550 §6.4.1 / A.3: the report block for the interval since (exp_prior, recv_prior), and the
    new (exp_prior, recv_prior)."""
    lost = max(min(expected - received, (1 << 23) - 1), -(1 << 23))
    exp_int = expected - exp_prior
    lost_int = exp_int - (received - recv_prior)
    fraction = 0 if exp_int <= 0 or lost_int <= 0 else min((lost_int << 8) // exp_int, 255)
    return ReportBlock(ssrc, fraction, lost, max_seq & 0xFFFF_FFFF, jitter, lsr, dlsr), expected, received
