"""Opus tick cost in process (not a test): µs of CPU per leg per 20 ms tick, receive and tick, by stage.

N Opus legs (16 kHz inside, 24 kbit/s, FEC; the engine's defaults) in the sans-I/O engine, in one
conference of N or in rooms of 5 (``--layout``), three talkers per conference (real Opus frames of
tones), every other leg sending encoded silence, as ``mixer_load.generator_main`` sends them. SRTP both
ways (AES_CM_128_HMAC_SHA1_80, per-leg keys) unless ``--plain``. Each tick: the packets of every leg
through ``receive_batch`` (unprotect, jitter buffer), then ``tick`` (decode, mix, encode, protect). The
figure is the median CPU time (``time.process_time``) of a tick over ``--ticks`` ticks, ``--repeat``
runs; ``--profile FILE`` writes a cProfile of one run.

    .venv/bin/python bench/opus_rooms.py --n 200 --layout fives
    .venv/bin/python bench/opus_rooms.py --n 200 --layout one --plain
"""

# ruff: noqa: E501  (benchmark output lines)
from __future__ import annotations

import argparse
import cProfile
import os
import socket
import statistics
import struct
import time

import numpy as np

from imsconf.media.codec_port import negotiated_codec
from imsconf.media.egress import CollectingSink
from imsconf.media.engine import LegConfig, MediaEngine
from imsconf.media.srtp import SrtpKeys, SrtpSender

HDR = struct.Struct("!BBHII")
SUITE = "AES_CM_128_HMAC_SHA1_80"
PT = 111
TALKERS = 3


def streams(n: int, per_conf: int, frames: int) -> list[list[bytes]]:
    """Each leg's Opus payloads: a tone for the first TALKERS of a conference, encoded silence otherwise."""
    cache: dict[int, list[bytes]] = {}
    out = []
    for i in range(n):
        key = -1 if i % per_conf >= TALKERS else i % 50
        if key not in cache:
            enc = negotiated_codec("opus", 48000, {})
            fs = enc.frame_samples
            t = np.arange(fs * frames) / enc.sample_rate
            amp = 0 if key < 0 else 300 + (key * 7919) % 6000
            pcm = np.round(amp * np.sin(2 * np.pi * (300 + max(key, 0) * 50) * t)).astype(np.int16)
            cache[key] = [enc.encode(pcm[fs * k : fs * (k + 1)]) for k in range(frames)]
        out.append(cache[key])
    return out


def run(
    n: int, layout: str, srtp: bool, ticks: int, prof: cProfile.Profile | None = None, sockets: bool = True
) -> tuple[float, float]:
    """Median CPU seconds of (receive, tick) per tick. ``sockets``: each leg sends on a UDP socket
    connected to one loopback socket nobody reads (the engine's ``tick_send``: its C send path), else
    the sans-I/O ``tick`` collects the datagrams."""
    per_conf = n if layout == "one" else 5
    eng = MediaEngine(allow_plain_rtp=not srtp)
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)
    sink.bind(("127.0.0.1", 0))
    socks = []
    senders: list[SrtpSender | None] = []
    for i in range(n):
        port = 30000 + 2 * i
        eng.add_leg(f"l{i}", f"c{i // per_conf}", port, port, True)
        cfg = LegConfig(("192.0.2.1", 6000 + 2 * i), None, PT, "opus", 101, codec_clock=48000)
        tx = rx = None
        if srtp:
            tx = SrtpKeys(SUITE, os.urandom(16), os.urandom(14))
            rx = SrtpKeys(SUITE, os.urandom(16), os.urandom(14))
        eng.configure_leg(f"l{i}", cfg, tx, rx)
        senders.append(SrtpSender(rx) if rx is not None else None)
        if sockets:
            so = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            so.setblocking(False)
            so.connect(sink.getsockname())
            socks.append(so)
            eng.set_send(port, so.send, so.fileno())
    frames = 50
    payloads = streams(n, per_conf, frames)
    now = 0.0
    rx_t: list[float] = []
    tick_t: list[float] = []
    for k in range(ticks):
        batch = []
        for i in range(n):
            pkt = HDR.pack(0x80, PT, k & 0xFFFF, 960 * k, 0x1000 + i) + payloads[i][k % frames]
            s = senders[i]
            if s is not None:
                pkt = s.protect(pkt)
            batch.append((30000 + 2 * i, pkt, ("192.0.2.1", 6000 + 2 * i)))
        if prof is not None and k >= 10:
            prof.enable()
        t0 = time.process_time()
        eng.receive_batch(now, batch)
        t1 = time.process_time()
        if sockets:
            eng.tick_send(now, CollectingSink())
        else:
            eng.tick(now)
        t2 = time.process_time()
        if prof is not None:
            prof.disable()
        if k >= 10:
            rx_t.append(t1 - t0)
            tick_t.append(t2 - t1)
        now += 0.020
    for so in socks:
        so.close()
    sink.close()
    return statistics.median(rx_t), statistics.median(tick_t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--layout", choices=("one", "fives"), default="fives")
    ap.add_argument("--plain", action="store_true", help="plain RTP instead of SRTP")
    ap.add_argument("--ticks", type=int, default=110)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument(
        "--sans-io", action="store_true", help="no sockets: the sans-I/O tick collects the packets"
    )
    ap.add_argument("--profile", default="", help="write a cProfile of one more run to this file")
    a = ap.parse_args()
    runs = [run(a.n, a.layout, not a.plain, a.ticks, sockets=not a.sans_io) for _ in range(a.repeat)]
    rx = statistics.median(r[0] for r in runs)
    tk = statistics.median(r[1] for r in runs)
    tot = [r[0] + r[1] for r in runs]
    print(
        f"# opus, {a.layout} N={a.n}, {'plain RTP' if a.plain else 'SRTP'}, {'sans-I/O' if a.sans_io else 'sockets'}, {TALKERS} talkers per conference, "
        f"median of {a.repeat} runs x {a.ticks - 10} ticks"
    )
    print(
        f"receive {rx / a.n * 1e6:6.1f} us/leg-tick, tick {tk / a.n * 1e6:6.1f} us/leg-tick, "
        f"total {statistics.median(tot) / a.n * 1e6:6.1f} us/leg-tick (runs {[round(x / a.n * 1e6, 1) for x in tot]}); "
        f"{statistics.median(tot) / 0.020:.0%} of a core -> ~{int(0.020 / (statistics.median(tot) / a.n))} legs per core"
    )
    if a.profile:
        prof = cProfile.Profile(time.process_time)
        run(a.n, a.layout, not a.plain, a.ticks, prof, sockets=not a.sans_io)
        prof.dump_stats(a.profile)


if __name__ == "__main__":
    main()
