"""RTP/RTCP wire helpers (RFC 3550), G.711 (own tables), RFC 4733 events, SRTP key rings on pylibsrtp."""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass

import numpy as np
import pylibsrtp

from .sdp import SUITES, Crypto

RTP_HDR = struct.Struct("!BBHII")
DTMF_DIGITS = "0123456789*#ABCD"


# ------------------------------------------------------------------------------------------------ G.711
def _build_ulaw_tables() -> tuple[np.ndarray, np.ndarray]:
    dec = np.zeros(256, dtype=np.int16)
    for b in range(256):
        u = ~b & 0xFF
        exp, mant = (u >> 4) & 7, u & 0x0F
        x = (((mant << 3) + 0x84) << exp) - 0x84
        dec[b] = -x if u & 0x80 else x
    lin = np.arange(-32768, 32768, dtype=np.int32)
    sign = np.where(lin < 0, 0x80, 0)
    mag = np.minimum(np.abs(lin), 32635) + 0x84
    exps = np.floor(np.log2(mag)).astype(np.int32) - 7
    mants = (mag >> (exps + 3)) & 0x0F
    enc = (~(sign | (exps << 4) | mants)) & 0xFF
    return dec, enc.astype(np.uint8)


ULAW_DECODE, _ULAW_ENCODE = _build_ulaw_tables()


def _build_alaw_decode() -> np.ndarray:
    dec = np.zeros(256, dtype=np.int16)
    for b in range(256):
        a = b ^ 0x55
        exp, mant = (a >> 4) & 7, a & 0x0F
        x = (mant << 4) + 8 if exp == 0 else ((mant << 4) + 0x108) << (exp - 1)
        dec[b] = x if a & 0x80 else -x
    return dec


ALAW_DECODE = _build_alaw_decode()


def ulaw_encode(samples: np.ndarray) -> bytes:
    idx = samples.astype(np.int32) + 32768
    return bytes(_ULAW_ENCODE[idx])


def ulaw_decode(data: bytes) -> np.ndarray:
    return ULAW_DECODE[np.frombuffer(data, dtype=np.uint8)]


def alaw_decode(data: bytes) -> np.ndarray:
    return ALAW_DECODE[np.frombuffer(data, dtype=np.uint8)]


# ------------------------------------------------------------------------------------------------ RTP
@dataclass
class RtpPacket:
    pt: int
    marker: bool
    seq: int
    ts: int
    ssrc: int
    payload: bytes


def build_rtp(pt: int, seq: int, ts: int, ssrc: int, payload: bytes, marker: bool = False) -> bytes:
    return RTP_HDR.pack(0x80, (0x80 if marker else 0) | pt, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc) + payload


def parse_rtp(data: bytes) -> RtpPacket | None:
    if len(data) < 12 or data[0] >> 6 != 2:
        return None
    b0, b1, seq, ts, ssrc = RTP_HDR.unpack_from(data)
    pos = 12 + 4 * (b0 & 0x0F)
    if b0 & 0x10:  # header extension
        if len(data) < pos + 4:
            return None
        pos += 4 + 4 * struct.unpack_from("!H", data, pos + 2)[0]
    end = len(data)
    if b0 & 0x20 and end > pos:
        end -= data[-1]
    if pos > end:
        return None
    return RtpPacket(b1 & 0x7F, bool(b1 & 0x80), seq, ts, ssrc, data[pos:end])


def is_rtcp(data: bytes) -> bool:
    return len(data) >= 8 and 192 <= data[1] <= 223


def build_dtmf_payload(digit: str, end: bool, volume: int, duration: int) -> bytes:
    return struct.pack(
        "!BBH",
        DTMF_DIGITS.index(digit.upper()),
        (0x80 if end else 0) | (volume & 0x3F),
        min(duration, 0xFFFF),
    )


def parse_dtmf_payload(payload: bytes) -> tuple[str, bool, int, int] | None:
    """-> (digit, end, volume, duration) or None."""
    if len(payload) < 4:
        return None
    event, flags, duration = struct.unpack_from("!BBH", payload)
    if event >= len(DTMF_DIGITS):
        return None
    return DTMF_DIGITS[event], bool(flags & 0x80), flags & 0x3F, duration


def ntp_now() -> int:
    t = time.time() + 2208988800
    return (int(t) << 32) | int((t % 1) * (1 << 32))


@dataclass
class RecvStats:
    """RFC 3550 A.1/A.3/A.8 receive statistics for one source."""

    base_seq: int
    max_seq: int
    cycles: int = 0
    received: int = 0
    expected_prior: int = 0
    received_prior: int = 0
    jitter: float = 0.0
    transit: float | None = None

    def update(self, seq: int, ts: int, arrival: float) -> None:
        delta = (seq - self.max_seq) & 0xFFFF
        if 0 < delta < 3000:
            if seq < self.max_seq:
                self.cycles += 1 << 16
            self.max_seq = seq
        self.received += 1
        transit = arrival * 8000 - ts
        if self.transit is not None:
            d = abs(transit - self.transit)
            self.jitter += (d - self.jitter) / 16
        self.transit = transit

    def report_block(self, ssrc: int, lsr: int, dlsr: int) -> bytes:
        ext_max = self.cycles + self.max_seq
        expected = ext_max - self.base_seq + 1
        lost = max(-(1 << 23), min((1 << 23) - 1, expected - self.received))
        exp_int = expected - self.expected_prior
        rec_int = self.received - self.received_prior
        self.expected_prior, self.received_prior = expected, self.received
        lost_int = exp_int - rec_int
        fraction = 0 if exp_int == 0 or lost_int <= 0 else min(255, (lost_int << 8) // exp_int)
        return struct.pack(
            "!IIIIII",
            ssrc,
            (fraction << 24) | (lost & 0xFFFFFF),
            ext_max & 0xFFFFFFFF,
            int(self.jitter) & 0xFFFFFFFF,
            lsr,
            dlsr,
        )


def build_rtcp_report(
    ssrc: int, blocks: list[bytes], cname: str, sender: tuple[int, int, int] | None = None
) -> bytes:
    """Compound SR-or-RR + SDES(CNAME). ``sender`` = (rtp_ts, packet count, octet count) makes it an SR."""
    blocks = blocks[:31]
    if sender is not None:
        ntp = ntp_now()
        body = struct.pack(
            "!IIIIII",
            ssrc,
            ntp >> 32,
            ntp & 0xFFFFFFFF,
            sender[0] & 0xFFFFFFFF,
            sender[1] & 0xFFFFFFFF,
            sender[2] & 0xFFFFFFFF,
        ) + b"".join(blocks)
        pt = 200
    else:
        body = struct.pack("!I", ssrc) + b"".join(blocks)
        pt = 201
    first = struct.pack("!BBH", 0x80 | len(blocks), pt, len(body) // 4) + body
    c = cname.encode()[:255]
    chunk = struct.pack("!IBB", ssrc, 1, len(c)) + c + b"\x00"
    chunk += b"\x00" * (-len(chunk) % 4)
    return first + struct.pack("!BBH", 0x81, 202, len(chunk) // 4) + chunk


def parse_rtcp_sr(data: bytes) -> list[tuple[int, int]]:
    """(sender SSRC, NTP middle 32 bits) of every SR in a compound packet."""
    out: list[tuple[int, int]] = []
    pos = 0
    while pos + 4 <= len(data):
        _, pt, words = struct.unpack_from("!BBH", data, pos)
        if pt == 200 and pos + 20 <= len(data):
            ssrc, hi, lo = struct.unpack_from("!III", data, pos + 4)
            out.append((ssrc, ((hi & 0xFFFF) << 16) | (lo >> 16)))
        pos += 4 * (words + 1)
    return out


# ------------------------------------------------------------------------------------------------ SRTP
def srtp_session(crypto: Crypto, outbound: bool) -> pylibsrtp.Session:
    profile = SUITES[crypto.suite][0]
    ssrc_type = pylibsrtp.Policy.SSRC_ANY_OUTBOUND if outbound else pylibsrtp.Policy.SSRC_ANY_INBOUND
    policy = pylibsrtp.Policy(key=crypto.key_salt, ssrc_type=ssrc_type, srtp_profile=profile)
    policy.allow_repeat_tx = True
    return pylibsrtp.Session(policy=policy)


@dataclass
class KeySwitch:
    """The moment a pending receive key first authenticated a packet."""

    at: float
    crypto: Crypto
    ssrc: int
    offered_at: float


class RxKeyRing:
    """Receive keys: the current one, the previous ones (stragglers, at most ``keep``), and pending ones.

    A key offered by re-INVITE/UPDATE is *pending* until the first packet under it authenticates; then it
    becomes current (recorded in ``switches``) and the old one is kept for late packets. A key offered
    again after it was replaced (e.g. a focus moving a listener back to its own key) is pending again.
    """

    def __init__(self, crypto: Crypto | None, keep: int = 2) -> None:
        self.active: list[tuple[Crypto, pylibsrtp.Session]] = []
        self.pending: list[tuple[Crypto, pylibsrtp.Session, float]] = []
        self.switches: list[KeySwitch] = []
        self.keep = keep
        if crypto is not None:
            self.active.append((crypto, srtp_session(crypto, outbound=False)))

    @property
    def current(self) -> Crypto | None:
        return self.active[0][0] if self.active else None

    def known(self, crypto: Crypto) -> bool:
        """Whether this key is current or already pending (so offering it again changes nothing)."""
        return (self.current is not None and self.current.key_salt == crypto.key_salt) or any(
            p[0].key_salt == crypto.key_salt for p in self.pending
        )

    def offer(self, crypto: Crypto) -> bool:
        """A key from the peer's SDP; True if it is not the current key and is now pending."""
        if self.known(crypto):
            return False
        if not self.active:  # first key: nothing to keep
            self.active.append((crypto, srtp_session(crypto, outbound=False)))
            return True
        old = next((a for a in self.active if a[0].key_salt == crypto.key_salt), None)
        sess = old[1] if old is not None else srtp_session(crypto, outbound=False)
        self.pending.insert(0, (crypto, sess, time.monotonic()))  # newest first
        return True

    def unprotect(self, data: bytes, rtcp: bool, now: float | None = None) -> bytes | None:
        candidates: list[tuple[Crypto, pylibsrtp.Session, float | None]] = [
            *((c, s, None) for c, s in self.active[:1]),
            *self.pending,
            *((c, s, None) for c, s in self.active[1:]),
        ]
        for crypto, sess, offered in candidates:
            try:
                plain = sess.unprotect_rtcp(data) if rtcp else sess.unprotect(data)
            except pylibsrtp.Error:
                continue
            if offered is not None:  # a pending key authenticated its first packet: switch
                idx = next(i for i, p in enumerate(self.pending) if p[0] is crypto)
                self.pending = self.pending[:idx]  # keys offered after this one stay pending
                rest = [a for a in self.active if a[0].key_salt != crypto.key_salt]
                self.active = [(crypto, sess), *rest][: self.keep]
                ssrc = struct.unpack_from("!I", data, 4 if rtcp else 8)[0]
                self.switches.append(KeySwitch(now or time.monotonic(), crypto, ssrc, offered))
            return plain
        return None
