"""Test helpers: a pylibsrtp phone peer, tones and a Goertzel detector."""

from __future__ import annotations

import os

import numpy as np

from imsconf.media.engine import MediaEngine
from imsconf.media.events import Addr
from imsconf.media.g711 import ulaw_decode, ulaw_encode
from imsconf.media.rtp import pack_rtp_header, parse_rtp_fast
from imsconf.media.srtp import SUITES, SrtpKeys, SrtpReceiver, SrtpSender

RATE = 8000


def deliver(engine: MediaEngine, port: int, data: bytes, src: Addr, now: float) -> None:
    """One datagram into the engine's one receive entry point."""
    engine.receive_batch(now, [(port, data, src)])


def make_keys(suite: str = "AES_CM_128_HMAC_SHA1_80") -> SrtpKeys:
    info = SUITES[suite]
    return SrtpKeys(suite, os.urandom(info.key_len), os.urandom(info.salt_len))


def tone(freq: float, n: int, start: int = 0, amp: float = 8000.0) -> np.ndarray:
    t = (np.arange(n) + start) / RATE
    return np.round(amp * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def goertzel(samples: np.ndarray, freq: float) -> float:
    """Normalised amplitude of `freq` in `samples` (about the tone's amplitude for a pure tone)."""
    x = samples.astype(np.float64)
    n = len(x)
    k = np.exp(-2j * np.pi * freq * np.arange(n) / RATE)
    return float(2 * abs(np.dot(x, k)) / n)


class Peer:
    """A phone: sends a tone as SRTP PCMU, decrypts what it receives."""

    def __init__(
        self, freq: float | None, send_keys: SrtpKeys | None, recv_keys: SrtpKeys | None, pt: int = 0
    ):
        self.freq = freq
        self.pt = pt
        self.tx = SrtpSender(send_keys) if send_keys else None
        self.rx = SrtpReceiver(recv_keys) if recv_keys else None
        self.seq = int.from_bytes(os.urandom(2), "big")
        self.ts = int.from_bytes(os.urandom(4), "big")
        self.ssrc = int.from_bytes(os.urandom(4), "big") | 1
        self.n = 0
        self.received: list[np.ndarray] = []
        self.received_ssrcs: set[int] = set()

    def next_packet(self) -> bytes:
        assert self.freq is not None
        payload = ulaw_encode(tone(self.freq, 160, start=self.n * 160))
        rtp = pack_rtp_header(self.pt, self.seq, self.ts, self.ssrc) + payload
        self.seq = (self.seq + 1) & 0xFFFF
        self.ts = (self.ts + 160) & 0xFFFFFFFF
        self.n += 1
        return self.tx.protect(rtp) if self.tx else rtp

    def raw_packet(self, pt: int, payload: bytes, marker: bool = False, ts: int | None = None) -> bytes:
        rtp = pack_rtp_header(pt, self.seq, self.ts if ts is None else ts, self.ssrc, marker) + payload
        self.seq = (self.seq + 1) & 0xFFFF
        return self.tx.protect(rtp) if self.tx else rtp

    def deliver(self, data: bytes) -> None:
        plain = self.rx.unprotect(data) if self.rx else data
        _pt, _m, _seq, _ts, ssrc, payload = parse_rtp_fast(plain)
        self.received_ssrcs.add(ssrc)
        self.received.append(ulaw_decode(payload))

    def heard(self, last: int = 20) -> np.ndarray:
        return np.concatenate(self.received[-last:])
