"""Group downlink benchmark (not a test): CPU per mixed second and packets encrypted per tick, per-participant
vs group downlink keying (feeds ``docs/security-evaluation.md``).

One conference of N listeners + K=3 speakers, G.711 µ-law 20 ms, SRTP AES_CM_128_HMAC_SHA1_80 both ways.
Every leg sends 50 packets/s (speakers a tone, listeners low-level noise below the speech floor), as
phones do. The mixer is the real engine on real loopback UDP sockets, in this process, pinned to one CPU:

* untimed, per tick: the phones' sockets send that tick's pre-protected SRTP packets to the mixer's
  sockets (so the generator's own CPU is not counted);
* timed, per tick: the mixer drains each leg's connected socket with ``recv`` and hands the datagrams to
  the engine (:meth:`MediaEngine.receive_batch` from connected sockets, the UDP adapter's fast path), then
  :meth:`MediaEngine.tick_send` mixes, protects and sends with ``send`` on the connected sockets.

Modes: ``per-participant`` (every leg its own stream under its own key: N+K protects per tick) and
``group`` (every leg on epoch 1: one common packet per tick protected once and sent to the N
non-speakers, plus each speaker's N-1 mix on its private stream under the epoch key: K+1 protects).
The phones' sockets never read (receive buffers at the kernel minimum, so a phone costs no reader): the send
cost covers the transmit path and loopback input up to the socket queue.

Printed per (N, mode): medians over ``--repeat`` runs of ``--seconds`` of mixed audio: CPU ms per mixed
second (= ‰ of one core), µs per leg per tick, protect calls per tick, RTP packets sent per tick, and the
group mode's saving. ``--json FILE`` also writes the figures.

    .venv/bin/python bench/mixer_group.py
    .venv/bin/python bench/mixer_group.py --sizes 3,10,50,200,1000 --repeat 7 --json /tmp/group.json
"""

# ruff: noqa: E501  (benchmark output lines)
from __future__ import annotations

import argparse
import json
import os
import random
import socket
import statistics
import sys
import time
from typing import Any

import numpy as np

from imsconf.media.engine import LegConfig, MediaEngine
from imsconf.media.events import Datagram
from imsconf.media.g711 import ulaw_encode
from imsconf.media.ingress import Received
from imsconf.media.rtp import pack_rtp_header
from imsconf.media.srtp import SrtpKeys, SrtpSender

SUITE = "AES_CM_128_HMAC_SHA1_80"
K = 3
TICK = 0.020
FREQS = (400.0, 1000.0, 1600.0)


class _Discard:
    """The egress port for the benchmark: the RTCP and unconnected legs' datagrams are not sent."""

    def send_datagrams(self, datagrams: list[Datagram]) -> tuple[int, int]:
        return 0, 0


sink_port = _Discard()


def keys() -> SrtpKeys:
    return SrtpKeys(SUITE, os.urandom(16), os.urandom(14))


def payloads(freq: float | None, ticks: int, rng: np.random.Generator) -> list[bytes]:
    n = np.arange(ticks * 160)
    # listeners: low-level noise, well below the mixer's speech floor
    pcm = rng.integers(-6, 7, size=len(n)) if freq is None else 8000 * np.sin(2 * np.pi * freq * n / 8000)
    s = np.round(pcm).astype(np.int16)
    return [ulaw_encode(s[i * 160 : (i + 1) * 160]) for i in range(ticks)]


class Setup:
    def __init__(self, n_listeners: int, mode: str, ticks: int, port_base: int) -> None:
        self.engine = MediaEngine(k=K, rng=random.Random(1))
        eng = self.engine
        rng = np.random.default_rng(1)
        self.n = n_listeners + K
        self.mixer_socks: list[socket.socket] = []
        self.phone_socks: list[socket.socket] = []
        self.ports: list[int] = []
        self.packets: list[list[bytes]] = []  # per leg, per tick
        for i in range(self.n):
            ms = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            ms.bind(("127.0.0.1", 0))
            ps = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            ps.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)  # never read: the kernel minimum
            ps.bind(("127.0.0.1", 0))
            ms.connect(ps.getsockname())
            ps.connect(ms.getsockname())
            ms.setblocking(False)
            port = ms.getsockname()[1]
            tx, rx = keys(), keys()
            eng.add_leg(f"leg{i}", "c1", port, port, rtcp_mux=True)
            eng.configure_leg(f"leg{i}", LegConfig(ps.getsockname(), None, 0, "PCMU", None), tx, rx)
            eng.set_send(port, ms.send)
            phone = SrtpSender(rx)
            seq, ts, ssrc = random.randrange(1 << 16), random.randrange(1 << 32), 0x10000 + i
            pkts = []
            for j, pay in enumerate(payloads(FREQS[i] if i < K else None, ticks, rng)):
                pkts.append(
                    phone.protect(
                        pack_rtp_header(0, (seq + j) & 0xFFFF, (ts + 160 * j) & 0xFFFFFFFF, ssrc) + pay
                    )
                )
            self.packets.append(pkts)
            self.mixer_socks.append(ms)
            self.phone_socks.append(ps)
            self.ports.append(port)
        if mode == "group":
            eng.set_downlink_mode("c1", "group")
            eng.add_group_epoch("c1", 1, keys(), 0x7777_0001)
            for i in range(self.n):
                eng.set_listener_stream(f"leg{i}", 1)

    def run(self, ticks: int) -> dict[str, float]:
        eng = self.engine
        recv = [s.recv for s in self.mixer_socks]
        receive_batch = eng.receive_batch
        sends = [s.send for s in self.phone_socks]
        ports = self.ports
        pkts = self.packets
        cpu = tick_cpu = 0
        protects: list[int] = []
        sent: list[int] = []
        clock = time.process_time_ns
        now = 0.0
        for t in range(ticks):
            for i, send in enumerate(sends):  # the phones (untimed)
                send(pkts[i][t])
            c0 = clock()
            batch: list[Received] = []
            for i, rd in enumerate(recv):
                while True:
                    try:
                        batch.append((ports[i], rd(2048), None))
                    except BlockingIOError:
                        break
            receive_batch(now, batch)
            c1 = clock()
            eng.tick_send(now, sink_port)
            c2 = clock()
            cpu += c2 - c0
            tick_cpu += c2 - c1
            protects.append(eng.tick_protects)
            sent.append(eng.tick_sent)
            now += TICK
        warm = ticks // 10  # the jitter buffer fills during the first ticks
        seconds = ticks * TICK
        return {
            "cpu_ms_per_s": cpu / 1e6 / seconds,
            "us_per_leg_tick": cpu / 1e3 / ticks / self.n,
            "tick_us_per_leg": tick_cpu / 1e3 / ticks / self.n,  # mix + protect + send only
            "protects_per_tick": statistics.median(protects[warm:]),
            "sent_per_tick": statistics.median(sent[warm:]),
        }

    def close(self) -> None:
        for s in self.mixer_socks + self.phone_socks:
            s.close()


def measure(n: int, mode: str, seconds: float, repeat: int, port_base: int) -> dict[str, Any]:
    ticks = int(seconds / TICK)
    runs = []
    for _ in range(repeat):
        setup = Setup(n, mode, ticks, port_base)
        try:
            runs.append(setup.run(ticks))
        finally:
            setup.close()
    out: dict[str, Any] = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    out["runs"] = [round(r["cpu_ms_per_s"], 2) for r in runs]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="3,10,50,200", help="numbers of listeners (K=3 speakers come on top)")
    ap.add_argument("--seconds", type=float, default=4.0, help="mixed audio per run")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--cpu", type=int, default=1, help="pin to this CPU (-1: do not pin)")
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args()
    where = "unpinned"
    if args.cpu >= 0:
        try:
            os.sched_setaffinity(0, {args.cpu})
            where = f"cpu{args.cpu}"
        except (AttributeError, OSError):
            pass
    print(
        f"python {sys.version.split()[0]}, {where}, SRTP {SUITE} both ways, PCMU 20 ms, K={K} speakers, "
        f"one conference; medians of {args.repeat} runs of {args.seconds:g} s mixed audio"
    )
    print(
        f"{'listeners':>9} {'legs':>5} {'mode':<16} {'CPU ms/s':>9} {'µs/leg-tick':>11} {'protects/tick':>13} "
        f"{'sent/tick':>9} {'saving':>7} {'send-side µs/leg':>16}  runs (CPU ms/s)"
    )
    results = []
    for n in [int(x) for x in args.sizes.split(",")]:
        base = None
        for mode in ("per-participant", "group"):
            r = measure(n, mode, args.seconds, args.repeat, 0)
            r.update(listeners=n, legs=n + K, mode=mode)
            results.append(r)
            saving = "" if base is None else f"{100 * (1 - r['cpu_ms_per_s'] / base):6.1f}%"
            if base is None:
                base = r["cpu_ms_per_s"]
            print(
                f"{n:>9} {n + K:>5} {mode:<16} {r['cpu_ms_per_s']:>9.2f} {r['us_per_leg_tick']:>11.2f} "
                f"{r['protects_per_tick']:>13.0f} {r['sent_per_tick']:>9.0f} {saving:>7} {r['tick_us_per_leg']:>16.2f}  {r['runs']}",
                flush=True,
            )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {"python": sys.version.split()[0], "suite": SUITE, "k": K, "results": results}, f, indent=1
            )


if __name__ == "__main__":
    main()
