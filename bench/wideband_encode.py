"""Wideband encode cost (not a test): one encode per listener group against one encode per participant.

One conference of N legs on Opus (16 kHz inside, RTP clock 48000; ``--codec AMR-WB`` for AMR-WB), three
of them talking (real Opus frames of tones), in the sans-I/O engine with plain RTP (the SRTP cost is the
same in both modes and left out). Each mode runs ``--ticks`` ticks ``--repeat`` times, in turn; the
figure is the median CPU time of a tick (``time.process_time``), and the share the encodes take.
Also prints the cost of one Opus encode at 16 and at 48 kHz (the price of fullband mixing).

    .venv/bin/python bench/wideband_encode.py                # N=200, Opus
    .venv/bin/python bench/wideband_encode.py --n 200 --codec AMR-WB

``--keys``: the SRTP downlink instead, with SRTP both ways: N listeners (``--mixed``: a third each on Opus,
G.722 and PCMU) and 3 Opus talkers, every listener on its own key (one protect each per tick) against
every listener on a group epoch (one protect per codec group and tick, the talkers' N-1 mixes on their
own streams); median tick CPU of each, in turn, in one process.

    .venv/bin/python bench/wideband_encode.py --keys --n 50 --mixed
"""

# ruff: noqa: E501  (benchmark output lines)
from __future__ import annotations

import argparse
import statistics
import struct
import time

import numpy as np

from imsconf.keys.policy import DownlinkMode
from imsconf.media.codec_port import negotiated_codec
from imsconf.media.codecs.opus import Opus, OpusSettings
from imsconf.media.engine import LegConfig, MediaEngine
from imsconf.media.srtp import SUITES, SrtpKeys, SrtpSender

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


def _keys() -> SrtpKeys:
    info = SUITES["AES_CM_128_HMAC_SHA1_80"]
    rng = np.random.default_rng()
    return SrtpKeys(
        "AES_CM_128_HMAC_SHA1_80",
        rng.bytes(info.key_len),
        rng.bytes(info.salt_len),
    )


def run_keys(n: int, ticks: int, group: bool, mixed: bool) -> tuple[float, int]:
    """Median tick CPU and protects per tick: 3 Opus talkers + N listeners, SRTP, own keys or group."""
    eng = MediaEngine()
    codecs = [("opus", 48000, 111), ("G722", 8000, 9), ("PCMU", 8000, 0)] if mixed else [("opus", 48000, 111)]
    senders = []
    for i in range(n + 3):
        name, clock, pt = ("opus", 48000, 111) if i < 3 else codecs[i % len(codecs)]
        rx = _keys()
        eng.add_leg(f"l{i}", "c", 30000 + 2 * i, 30000 + 2 * i, True)
        cfg = LegConfig(("192.0.2.1", 6000 + 2 * i), None, pt, name, 101, codec_clock=clock)
        eng.configure_leg(f"l{i}", cfg, _keys(), rx)
        if i < 3:
            senders.append(SrtpSender(rx))
    if group:
        eng.set_downlink_mode("c", DownlinkMode.GROUP)
        eng.add_group_epoch("c", 1, _keys(), 0x5EED_0001)
        for i in range(n + 3):
            eng.set_listener_stream(f"l{i}", 1)
    talkers = [negotiated_codec("opus", 48000, {}) for _ in range(3)]
    now = 0.0
    spent: list[float] = []
    for k in range(ticks):
        batch = []
        for j, (enc, tx) in enumerate(zip(talkers, senders, strict=True)):
            payload = enc.encode(tone(300.0 + 400 * j, 320, 320 * k))
            rtp = HDR.pack(0x80, 111, k, 960 * k, 0x100 + j) + payload
            batch.append((30000 + 2 * j, tx.protect(rtp), ("192.0.2.1", 6000 + 2 * j)))
        eng.receive_batch(now, batch)
        t0 = time.process_time()
        eng.tick(now)
        spent.append(time.process_time() - t0)
        now += 0.020
    return statistics.median(spent[10:]), eng.tick_protects


def main_keys(a: argparse.Namespace) -> None:
    res: dict[bool, list[float]] = {True: [], False: []}
    protects: dict[bool, int] = {}
    for _ in range(a.repeat):
        for group in (True, False):
            t, protects[group] = run_keys(a.n, a.ticks, group, a.mixed)
            res[group].append(t)
    grp, own = statistics.median(res[True]), statistics.median(res[False])
    what = "Opus/G.722/PCMU" if a.mixed else "Opus"
    print(
        f"# SRTP downlink, one conference: 3 Opus talkers + N={a.n} {what} listeners, median tick CPU of {a.repeat} runs x {a.ticks} ticks"
    )
    print(
        f"group streams: {grp * 1e3:8.2f} ms per tick, {protects[True]:4d} protects   runs {[round(x * 1e3, 2) for x in res[True]]}"
    )
    print(
        f"own keys     : {own * 1e3:8.2f} ms per tick, {protects[False]:4d} protects   runs {[round(x * 1e3, 2) for x in res[False]]}"
    )
    print(f"ratio own/group {own / grp:.2f}x")


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
    ap.add_argument("--keys", action="store_true", help="SRTP: group streams against own keys")
    ap.add_argument("--mixed", action="store_true", help="with --keys: Opus, G.722 and PCMU listeners")
    a = ap.parse_args()
    if a.keys:
        main_keys(a)
        return
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
