"""In-process tick pipeline (no sockets): µs per leg-tick of receive + tick, for profiling.

.venv/bin/python bench/mixer_pipeline.py --n 1000 --layout one [--profile]
"""

# ruff: noqa: E501  (benchmark output lines)
from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import socket
import time

import numpy as np

from imsconf.media.engine import Direction, LegConfig, MediaEngine
from imsconf.media.events import Datagram
from imsconf.media.g711 import ulaw_encode
from imsconf.media.rtp import pack_rtp_header
from imsconf.media.srtp import SrtpKeys, SrtpSender

SUITE = os.environ.get("SRTP_SUITE", "AES_CM_128_HMAC_SHA1_80")


class _Discard:
    """The egress port for the benchmark: the RTCP and unconnected legs' datagrams are not sent."""

    def send_datagrams(self, datagrams: list[Datagram]) -> tuple[int, int]:
        return 0, 0


sink_port = _Discard()


def build(
    n: int, layout: str, frames: int, plain: bool
) -> tuple[MediaEngine, list[list[bytes]], socket.socket]:
    eng = MediaEngine(allow_plain_rtp=plain)
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)
    t = np.arange(160 * frames) / 8000
    pkts = []
    socks = []  # kept open: the engine sends on their descriptors
    for i in range(n):
        conf = "c0" if layout == "one" else f"c{i // 5}"
        eng.add_leg(f"l{i}", conf, 10000 + 2 * i, 10000 + 2 * i, True)
        salt = 12 if "GCM" in SUITE else 14
        k_rx = (os.urandom(16), os.urandom(salt))
        k_tx = (os.urandom(16), os.urandom(salt))
        cfg = LegConfig(("127.0.0.1", 20000 + i), None, 0, "PCMU", 101, Direction.SENDRECV, False)
        eng.configure_leg(
            f"l{i}", cfg, None if plain else SrtpKeys(SUITE, *k_tx), None if plain else SrtpKeys(SUITE, *k_rx)
        )
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.connect(sink.getsockname())
        eng.set_send(10000 + 2 * i, s.send, s.fileno())
        socks.append(s)
        amp = 300 + (i * 7919) % 6000
        pcm = np.round(amp * np.sin(2 * np.pi * (300 + (i % 50) * 50) * t)).astype(np.int16)
        snd = None if plain else SrtpSender(SrtpKeys(SUITE, *k_rx))
        leg = []
        for k in range(frames):
            p = pack_rtp_header(0, k, 160 * k, 0x1000 + i) + ulaw_encode(pcm[160 * k : 160 * (k + 1)])
            leg.append(p if snd is None else snd.protect(p))
        pkts.append(leg)
    eng.bench_socks = socks  # type: ignore[attr-defined]
    return eng, pkts, sink


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--layout", default="one")
    ap.add_argument("--frames", type=int, default=150)
    ap.add_argument("--plain", action="store_true")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument(
        "--no-send", action="store_true", help="sans-I/O tick() (datagram list) instead of sending"
    )
    a = ap.parse_args()
    eng, pkts, _sink = build(a.n, a.layout, a.frames, a.plain)
    ports = [10000 + 2 * i for i in range(a.n)]

    def run(k0: int, k1: int) -> tuple[float, float]:
        t_rx = t_tick = 0.0
        for k in range(k0, k1):
            now = k * 0.020
            t0 = time.perf_counter()
            eng.receive_batch(now, [(ports[i], pkts[i][k], None) for i in range(a.n)])
            t1 = time.perf_counter()
            if a.no_send:
                eng.tick(now)
            else:
                eng.tick_send(now, sink_port)
            t2 = time.perf_counter()
            t_rx += t1 - t0
            t_tick += t2 - t1
        return t_rx, t_tick

    run(0, 10)
    prof = cProfile.Profile() if a.profile else None
    if prof:
        prof.enable()
    t_rx, t_tick = run(10, a.frames)
    if prof:
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(18)
    m = (a.frames - 10) * a.n
    print(
        f"N={a.n} {a.layout}: receive {1e6 * t_rx / m:.2f} us/leg-tick, tick {1e6 * t_tick / m:.2f} us/leg-tick"
    )


if __name__ == "__main__":
    main()
