"""What mixing at 48 kHz would cost against 16 kHz (not a test): one conference, µs of CPU per tick.

The 16 kHz mix (:mod:`imsconf.media.wideband`) decodes every leg, mixes (the engine's
:class:`~imsconf.media.mixer.Mixer`: the loudest speakers, the common and N-1 mixes) and encodes once per
distinct mix. This script runs those same stages on their own, for one conference of ``--n`` Opus legs
(``--talkers`` of them talking, the others sending encoded silence, all fullband Opus from the phones), at
a mix rate of 16 and of 48 kHz: libopus decodes to the mix rate and encodes from it (no resampler for
Opus legs; the 48 kHz encoders get ``--bitrate48``, fullband speech wanting more than 24 kbit/s). For a
conference with G.711 legs it adds the resampling such a mix needs: each 8 kHz leg's frame up to the mix
rate and the common mix down once to 8 kHz, by a Kaiser-windowed polyphase FIR of the same 48 taps per
phase as :mod:`imsconf.media.resample` (2:1 at 16 kHz, 6:1 at 48 kHz), numpy on the rows of a tick.

Each figure is the median over ``--repeat`` runs of the median tick (``time.process_time``).

    .venv/bin/python bench/fullband_cost.py --n 50
"""

# ruff: noqa: E501  (benchmark output lines)
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import numpy.typing as npt

from imsconf.media.codecs.opus import Opus, OpusSettings
from imsconf.media.mixer import Mixer

F32 = npt.NDArray[np.float32]
PHASE_TAPS = 48  # taps per polyphase branch, as resample.py's 2:1 filter


def lowpass(ratio: int, rate_out: int) -> F32:
    taps = PHASE_TAPS * ratio
    n = np.arange(taps) - (taps - 1) / 2
    fc = 3900.0 / rate_out
    h = 2 * fc * np.sinc(2 * fc * n) * np.kaiser(taps, 9.0)
    return (h / h.sum()).astype(np.float32)


class Up:
    """8 kHz rows up by ``ratio`` (polyphase: one (PHASE_TAPS, ratio) matrix product per tick)."""

    def __init__(self, ratio: int) -> None:
        h = lowpass(ratio, 8000 * ratio) * ratio
        self.ratio = ratio
        self.bank = np.stack([h[p::ratio][::-1] for p in range(ratio)], axis=1).copy()  # (taps, ratio)

    def __call__(self, x: F32, hist: F32) -> F32:
        r, n = x.shape
        full = np.concatenate((hist, x), axis=1)
        hist[:] = full[:, n:]
        win = np.lib.stride_tricks.sliding_window_view(full, PHASE_TAPS, axis=1)  # (r, n, taps)
        out: F32 = (win @ self.bank).reshape(r, n * self.ratio)
        return out


class Down:
    """Rows at ``ratio`` times 8 kHz down to 8 kHz (filter, keep every ``ratio``-th sample)."""

    def __init__(self, ratio: int) -> None:
        self.ratio = ratio
        self.h = lowpass(ratio, 8000 * ratio)[::-1].copy()

    def __call__(self, x: F32, hist: F32) -> F32:
        full = np.concatenate((hist, x), axis=1)
        hist[:] = full[:, -(len(self.h) - 1) :]
        win = np.lib.stride_tricks.sliding_window_view(full, len(self.h), axis=1)[:, 1 :: self.ratio]
        out: F32 = win @ self.h
        return out


def phone_streams(n: int, talkers: int, frames: int) -> list[list[bytes]]:
    """Fullband Opus from the phones (48 kHz inside, 32 kbit/s): tones for the talkers, silence else."""
    out: list[list[bytes]] = []
    silence: list[bytes] | None = None
    for i in range(n):
        if i >= talkers and silence is not None:
            out.append(silence)
            continue
        enc = Opus(OpusSettings(sample_rate=48000, max_playback_rate=48000, bitrate=32000))
        t = np.arange(960 * frames) / 48000
        amp = 0 if i >= talkers else 2000 + 1500 * i
        pcm = np.round(amp * np.sin(2 * np.pi * (300 + 170 * i) * t)).astype(np.int16)
        s = [enc.encode(pcm[960 * k : 960 * (k + 1)]) for k in range(frames)]
        if i >= talkers:
            silence = s
        out.append(s)
    return out


def run(rate: int, n: int, talkers: int, narrow: int, bitrate: int, ticks: int) -> tuple[float, float]:
    """Median CPU seconds of a tick: (Opus legs only, the resampling for ``narrow`` G.711 legs)."""
    frames = 50
    streams = phone_streams(n, talkers, frames)
    settings = OpusSettings(sample_rate=rate, max_playback_rate=rate, bitrate=bitrate)
    decoders = [Opus(settings) for _ in range(n)]
    encoders = [Opus(settings) for _ in range(talkers + 1)]
    mixer = Mixer()
    conf = np.zeros(n, dtype=np.intp)
    ratio = rate // 8000
    up, down = Up(ratio), Down(ratio)
    up_hist = np.zeros((narrow, PHASE_TAPS - 1), np.float32)
    down_hist = np.zeros((1, len(down.h) - 1), np.float32)
    g711 = (3000 * np.sin(np.arange(160 * narrow) * 0.37)).astype(np.float32).reshape(narrow, 160)
    prev = np.zeros(n, dtype=np.bool_)
    spent: list[float] = []
    resample: list[float] = []
    for k in range(ticks):
        t0 = time.process_time()
        pcm = np.stack([d.decode(s[k % frames])[0] for d, s in zip(decoders, streams, strict=True)])
        res = mixer.mix(pcm.astype(np.int32), conf, 1, prev)
        prev[:] = False
        prev[res.speakers] = True
        for enc, row in zip(encoders, [*res.speaker_mix, res.common[0]], strict=False):
            enc.encode(np.ascontiguousarray(row))
        t1 = time.process_time()
        if narrow:
            up(g711, up_hist)
            down(res.common[:1].astype(np.float32), down_hist)
        t2 = time.process_time()
        if k >= 10:
            spent.append(t1 - t0)
            resample.append(t2 - t1)
    return statistics.median(spent), statistics.median(resample)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=50)
    ap.add_argument("--talkers", type=int, default=3)
    ap.add_argument("--narrow", type=int, default=10, help="G.711 legs whose resampling is added")
    ap.add_argument("--bitrate48", type=int, default=32000)
    ap.add_argument("--ticks", type=int, default=110)
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    res: dict[int, list[tuple[float, float]]] = {16000: [], 48000: []}
    for _ in range(a.repeat):
        res[16000].append(run(16000, a.n, a.talkers, a.narrow, 24000, a.ticks))
        res[48000].append(run(48000, a.n, a.talkers, a.narrow, a.bitrate48, a.ticks))
    print(
        f"# one conference of N={a.n} fullband Opus phones, {a.talkers} talking; {a.talkers + 1} encodes per tick; "
        f"median of {a.repeat} runs x {a.ticks - 10} ticks, us of CPU per tick"
    )
    med = {}
    for rate, runs in res.items():
        codec = statistics.median(r[0] for r in runs)
        rs = statistics.median(r[1] for r in runs)
        med[rate] = (codec, rs)
        br = 24000 if rate == 16000 else a.bitrate48
        print(
            f"{rate // 1000:2d} kHz mix ({br // 1000} kbit/s out): decode+mix+encode {codec * 1e6:8.0f} us "
            f"({codec / a.n * 1e6:5.1f} us/leg; runs {[round(r[0] * 1e6) for r in runs]}); "
            f"resampling for {a.narrow} G.711 legs {rs * 1e6:6.0f} us"
        )
    c16, r16 = med[16000]
    c48, r48 = med[48000]
    print(
        f"48 kHz / 16 kHz: Opus stages {c48 / c16:.2f}x, resampling {r48 / max(r16, 1e-9):.2f}x, total {(c48 + r48) / (c16 + r16):.2f}x"
    )


if __name__ == "__main__":
    main()
