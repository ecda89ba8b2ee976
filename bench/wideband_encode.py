"""Wideband encode cost (not a test): one encode per listener group against one encode per participant.

One conference of N legs on Opus (16 kHz inside, RTP clock 48000; ``--codec AMR-WB`` for AMR-WB), three
of them talking (real Opus frames of tones), in the sans-I/O engine with plain RTP (the SRTP cost is the
same in both modes and left out). Each mode runs ``--ticks`` ticks ``--repeat`` times, in turn; the
figure is the median CPU time of a tick (``time.process_time``), and the share the encodes take.
Also prints the cost of one Opus encode at 16 and at 48 kHz (the price of fullband mixing).

    .venv/bin/python bench/wideband_encode.py                # N=200, Opus
    .venv/bin/python bench/wideband_encode.py --n 200 --codec AMR-WB
"""

# ruff: noqa: E501  (benchmark output lines)
from __future__ import annotations

import argparse
import statistics
import struct
import time

import numpy as np

from imsconf.media.codec_port import negotiated_codec
from imsconf.media.codecs.opus import Opus, OpusSettings
from imsconf.media.engine import LegConfig, MediaEngine

HDR = struct.Struct("!BBHII")
CLOCKS = {"opus": 48000, "AMR-WB": 16000, "G722": 8000}


def tone(freq: float, n: int, start: int, rate: int = 16000) -> np.ndarray:
    return (6000 * np.sin(2 * np.pi * freq * (np.arange(n) + start) / rate)).astype(np.int16)


def run(n: int, codec: str, ticks: int, shared: bool) -> float:
    clock = CLOCKS[codec]
    eng = MediaEngine(allow_plain_rtp=True)
    eng.table.wide_shared_encode = shared
    for i in range(n):
        eng.add_leg(f"l{i}", "c", 30000 + 2 * i, 30000 + 2 * i, True)
        cfg = LegConfig(("192.0.2.1", 6000 + 2 * i), None, 96, codec, 101, codec_clock=clock)
        eng.configure_leg(f"l{i}", cfg, None, None)
    talkers = [negotiated_codec(codec, clock, {}) for _ in range(3)]
    step = clock // 50
    now = 0.0
    spent: list[float] = []
    for k in range(ticks):
        batch = []
        for j, enc in enumerate(talkers):
            payload = enc.encode(tone(300.0 + 400 * j, 320, 320 * k))
            batch.append(
                (
                    30000 + 2 * j,
                    HDR.pack(0x80, 96, k, step * k, 0x100 + j) + payload,
                    ("192.0.2.1", 6000 + 2 * j),
                )
            )
        eng.receive_batch(now, batch)
        t0 = time.process_time()
        eng.tick(now)
        spent.append(time.process_time() - t0)
        now += 0.020
    return statistics.median(spent[10:])


def encode_cost(rate: int, reps: int = 500) -> float:
    enc = Opus(OpusSettings(sample_rate=rate, max_playback_rate=rate))
    frames = [tone(440.0, rate // 50, i * rate // 50, rate) for i in range(reps)]
    t0 = time.process_time()
    for f in frames:
        enc.encode(f)
    return (time.process_time() - t0) / reps


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--codec", default="opus", choices=sorted(CLOCKS))
    ap.add_argument("--ticks", type=int, default=150)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    res: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(a.repeat):
        for shared in (True, False):
            res[shared].append(run(a.n, a.codec, a.ticks, shared))
    once, per = statistics.median(res[True]), statistics.median(res[False])
    print(
        f"# {a.codec}, one conference of N={a.n}, 3 talkers, plain RTP, median tick CPU of {a.repeat} runs x {a.ticks} ticks"
    )
    print(
        f"encode once per group : {once * 1e3:8.2f} ms per tick  ({once / a.n * 1e6:6.1f} us per leg)   runs {[round(x * 1e3, 2) for x in res[True]]}"
    )
    print(
        f"encode per participant: {per * 1e3:8.2f} ms per tick  ({per / a.n * 1e6:6.1f} us per leg)   runs {[round(x * 1e3, 2) for x in res[False]]}"
    )
    print(f"ratio {per / once:.1f}x; a 20 ms tick's budget used: {once / 0.020:.1%} vs {per / 0.020:.1%}")
    e16, e48 = encode_cost(16000), encode_cost(48000)
    print(
        f"one Opus encode (24 kbit/s): {e16 * 1e6:.1f} us at 16 kHz, {e48 * 1e6:.1f} us at 48 kHz ({e48 / e16:.1f}x)"
    )


if __name__ == "__main__":
    main()
