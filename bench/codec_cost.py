"""Codec cost: µs per 20 ms frame to encode and to decode, for every codec (median of repeats).

Speech-like input (a gliding three-harmonic voice, -16 dBFS); each repeat runs 50 frames through a fresh
encoder and decoder pair.  Run: ``python bench/codec_cost.py``.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import numpy as np

from imsconf.media.codecs.amr import Amr, AmrSettings
from imsconf.media.codecs.base import Codec, Pcm
from imsconf.media.codecs.g711 import G711
from imsconf.media.codecs.g722 import G722
from imsconf.media.codecs.opus import Opus, OpusSettings

FRAMES = 50
REPEATS = 15

CODECS: list[tuple[str, Callable[[], Codec]]] = [
    ("AMR-WB 23.85", lambda: Amr(AmrSettings(wide=True))),
    ("AMR-WB 12.65", lambda: Amr(AmrSettings(wide=True, mode_set=(2,)))),
    ("AMR 12.2", lambda: Amr(AmrSettings(wide=False))),
    ("opus 16k 24 kbit/s FEC", Opus),
    (
        "opus 48k 32 kbit/s",
        lambda: Opus(OpusSettings(sample_rate=48000, max_playback_rate=48000, bitrate=32000)),
    ),
    ("G722", G722),
    ("PCMU", lambda: G711("PCMU")),
]


def voice(rate: int, samples: int) -> Pcm:
    t = np.arange(samples) / rate
    phase = 2 * np.pi * np.cumsum(180 + 60 * np.sin(2 * np.pi * 1.7 * t)) / rate
    return (3000 * (np.sin(phase) + 0.5 * np.sin(3 * phase) + 0.3 * np.sin(5 * phase))).astype(np.int16)


def measure(make: Callable[[], Codec]) -> tuple[float, float]:
    enc_runs, dec_runs = [], []
    for _ in range(REPEATS):
        enc, dec = make(), make()
        n = enc.frame_samples
        frames = [f.copy() for f in voice(enc.sample_rate, n * FRAMES).reshape(FRAMES, n)]
        t0 = time.perf_counter()
        payloads = [enc.encode(f) for f in frames]
        t1 = time.perf_counter()
        for p in payloads:
            dec.decode(p or None)
        t2 = time.perf_counter()
        enc_runs.append((t1 - t0) / FRAMES * 1e6)
        dec_runs.append((t2 - t1) / FRAMES * 1e6)
    return statistics.median(enc_runs), statistics.median(dec_runs)


def main() -> None:
    print(f"µs per 20 ms frame, median of {REPEATS} runs of {FRAMES} frames")
    print(f"{'codec':<26}{'encode':>10}{'decode':>10}")
    for label, make in CODECS:
        e, d = measure(make)
        print(f"{label:<26}{e:>10.1f}{d:>10.1f}")


if __name__ == "__main__":
    main()
