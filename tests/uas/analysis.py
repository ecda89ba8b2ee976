"""Analysis helpers for what a test UA received: tone level, gaps, offline SRTP decryption, DTMF."""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence

import numpy as np
import pylibsrtp

from .rtp import parse_dtmf_payload, parse_rtp, srtp_session
from .sdp import SUITES, Crypto


def tone_present(samples: np.ndarray, freq: float, rate: int = 8000) -> float:
    """Level of the sinusoid at ``freq`` in dBFS (0 dBFS = full-scale sine); -120 for no signal.

    Windowed single-bin DFT (Goertzel-equivalent), robust when ``freq`` is not on an FFT bin.
    """
    x = np.asarray(samples, dtype=np.float64)
    if x.size == 0:
        return -120.0
    w = np.hanning(x.size) if x.size > 8 else np.ones(x.size)
    n = np.arange(x.size)
    z = np.sum(x * w * np.exp(-2j * np.pi * freq * n / rate))
    amp = 2 * abs(z) / max(np.sum(w), 1e-9)
    return float(20 * np.log10(max(amp / 32768.0, 1e-6)))


def tone_windows(samples: np.ndarray, freq: float, rate: int = 8000, window_ms: int = 20) -> np.ndarray:
    """:func:`tone_present` over consecutive windows."""
    step = rate * window_ms // 1000
    count = len(samples) // step
    return np.array([tone_present(samples[i * step : (i + 1) * step], freq, rate) for i in range(count)])


def arrival_gap_ms(times: Sequence[float], since: float | None = None, until: float | None = None) -> float:
    """Longest interval between consecutive arrivals (seconds in, ms out); includes the edges
    ``since``/``until`` when given, so a stream that stopped shows its silence."""
    ts = sorted(t for t in times if (since is None or t >= since) and (until is None or t <= until))
    if since is not None:
        ts.insert(0, since)
    if until is not None:
        ts.append(until)
    if len(ts) < 2:
        return float("inf")
    return float(np.max(np.diff(ts)) * 1000)


def tone_gap_ms(
    samples: np.ndarray, freq: float, rate: int = 8000, window_ms: int = 10, threshold_db: float | None = None
) -> float:
    """Longest run (ms) without the tone; ``threshold_db`` defaults to 20 dB under the median level.

    Use on a time-aligned signal such as :meth:`MediaStream.timeline` (lost packets are zeros there).
    """
    levels = tone_windows(samples, freq, rate, window_ms)
    if levels.size == 0:
        return float("inf")
    thr = float(np.median(levels)) - 20 if threshold_db is None else threshold_db
    longest = run = 0
    for absent in levels < thr:
        run = run + 1 if absent else 0
        longest = max(longest, run)
    return float(longest * window_ms)


def gaps(
    data: Sequence[float] | np.ndarray,
    freq: float | None = None,
    *,
    rate: int = 8000,
    since: float | None = None,
    until: float | None = None,
) -> float:
    """Longest gap in ms: of arrival times (a list of seconds, e.g. ``MediaStream.arrival_times()``),
    or, with ``freq``, of the tone in time-aligned samples (e.g. ``MediaStream.timeline()``)."""
    if freq is not None:
        return tone_gap_ms(np.asarray(data), freq, rate)
    return arrival_gap_ms([float(t) for t in data], since, until)


def _packets(packets: Iterable[bytes | tuple[float, bytes]]) -> list[bytes]:
    return [p[1] if isinstance(p, tuple) else p for p in packets]


def try_decrypt(
    packets: Iterable[bytes | tuple[float, bytes]],
    key_salt_b64: str | bytes | Crypto,
    suite: str = "AES_CM_128_HMAC_SHA1_80",
) -> int:
    """How many captured SRTP packets authenticate and decrypt under the given master key||salt."""
    if isinstance(key_salt_b64, Crypto):
        crypto = key_salt_b64
    else:
        raw = key_salt_b64 if isinstance(key_salt_b64, bytes) else base64.b64decode(key_salt_b64)
        _, klen, slen = SUITES[suite]
        if len(raw) != klen + slen:
            raise ValueError(f"{suite} needs {klen + slen} bytes of key||salt, got {len(raw)}")
        crypto = Crypto(1, suite, raw)
    sess = srtp_session(crypto, outbound=False)
    ok = 0
    for p in _packets(packets):
        try:
            sess.unprotect(p)
        except pylibsrtp.Error:
            continue
        ok += 1
    return ok


def decode_dtmf(packets: Iterable[bytes], dtmf_pt: int = 101) -> str:
    """Digits in plain RTP packets carrying RFC 4733 events (one per event timestamp)."""
    seen: dict[tuple[int, int], str] = {}
    for data in packets:
        pkt = parse_rtp(data)
        if pkt is None or pkt.pt != dtmf_pt:
            continue
        ev = parse_dtmf_payload(pkt.payload)
        if ev is not None:
            seen.setdefault((pkt.ssrc, pkt.ts), ev[0])
    return "".join(seen.values())
