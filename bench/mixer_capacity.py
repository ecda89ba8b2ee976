"""Mixer capacity benchmark (not a test): how many SRTP G.711 legs one Python mixer core carries.

One process runs the real media plane (MediaEngine + UdpMediaTransport, one socket per leg, rtcp-mux),
pinned to CPU 1 where ``os.sched_setaffinity`` works. Another process (CPU 0) is the load generator: N
sockets, each sending pre-protected SRTP (AES_CM_128_HMAC_SHA1_80) PCMU at 50 packets/s, spread over
the 20 ms period. It never reads the mixer's output (its receive buffers are tiny), as in
PERF-BUDGET §6.

For each layout (one conference of N; N/5 conferences of 5) and each N, after a warm-up it measures the
work per tick (p50, p99), tick start lag behind its deadline (p99), late ticks (lag > 10 ms) and
skipped ticks, the mixer process's CPU share, and received / expected packets. A step passes when
p99 work < 20 ms, there are no late or skipped ticks, and at least 99 % of the packets arrived.

    .venv/bin/python bench/mixer_capacity.py                 # default steps, about 2 minutes
    .venv/bin/python bench/mixer_capacity.py --sizes 100,300 --measure 2 --repeat 3
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import resource
import socket
import statistics
import sys
import time
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from imsconf.media.control import LocalMediaControl
from imsconf.media.engine import Direction, MediaEngine
from imsconf.media.g711 import ulaw_encode
from imsconf.media.rtp import pack_rtp_header
from imsconf.media.srtp import SrtpKeys, SrtpSender
from imsconf.media.udp import UdpMediaTransport

SUITE = "AES_CM_128_HMAC_SHA1_80"
TICK = 0.020
SLOTS = 10  # the generator spreads each 20 ms period over this many send bursts


def pin(cpu: int) -> str:
    try:
        os.sched_setaffinity(0, {cpu})
        return f"cpu{cpu}"
    except (AttributeError, OSError):
        return "unpinned"


def raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def conference_of(i: int, layout: str) -> str:
    return "c0" if layout == "one" else f"c{i // 5}"


# --------------------------------------------------------------------------------- mixer process


def mixer_main(conn: Connection, n: int, layout: str, warm: float, measure: float, port_base: int) -> None:
    where = pin(1)
    raise_nofile()
    asyncio.run(_mixer(conn, n, layout, warm, measure, port_base, where))


async def _mixer(
    conn: Connection, n: int, layout: str, warm: float, measure: float, port_base: int, where: str
) -> None:
    loop = asyncio.get_running_loop()
    engine = MediaEngine()
    transport = UdpMediaTransport(engine, "127.0.0.1", port_base, port_base + 2 * n + 200)
    control = LocalMediaControl(engine, transport, now=transport.now)
    transport.after_tick = control.deliver_events
    ports = [
        control.allocate_leg(conference_of(i, layout), f"l{i}", rtcp_mux=True).rtp_port for i in range(n)
    ]
    conn.send(ports)
    remote_addrs, keys = conn.recv()
    for i in range(n):
        (tx_key, tx_salt), (rx_key, rx_salt) = keys[i]
        control.configure_leg(
            f"l{i}",
            remote_rtp=tuple(remote_addrs[i]),
            remote_rtcp=None,
            codec_pt=0,
            codec_name="PCMU",
            dtmf_pt=101,
            tx_keys=SrtpKeys(SUITE, tx_key, tx_salt),
            rx_keys=SrtpKeys(SUITE, rx_key, rx_salt),
            direction=Direction.SENDRECV,
        )
    transport.start()
    conn.send("ready")
    conn.recv()  # go
    await asyncio.sleep(warm)

    def received() -> int:
        return sum(engine.leg_stats(f"l{i}").received for i in range(n))

    transport.stats.reset_window()
    transport.stats.keep = int(measure / TICK) + 100
    rx0 = received()
    cpu0, wall0 = os.times(), loop.time()
    await asyncio.sleep(measure)
    cpu1, wall1 = os.times(), loop.time()
    rx1 = received()
    st = transport.stats
    durations = np.array(st.durations) * 1000
    lags = np.array(st.lags) * 1000
    fails = sum(engine.leg_stats(f"l{i}").decrypt_failed for i in range(n))
    wall = wall1 - wall0
    conn.send(
        {
            "where": where,
            "p50": float(np.percentile(durations, 50)),
            "p99": float(np.percentile(durations, 99)),
            "lag99": float(np.percentile(lags, 99)),
            "late": st.late,
            "skipped": st.skipped,
            "cpu": ((cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)) / wall,
            "rx_ratio": (rx1 - rx0) / (n * wall / TICK),
            "decrypt_failed": fails,
            "send_dropped": st.send_dropped,
        }
    )
    transport.close()


# --------------------------------------------------------------------------------- load generator


def generator_main(conn: Connection, n: int, seconds: float) -> None:
    pin(0)
    raise_nofile()
    ports, keys = conn.recv()
    socks = []
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)  # we never read: keep the queue minimal
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    conn.send([s.getsockname() for s in socks])
    frames = int(seconds / TICK) + 5
    # Distinct loudness per leg so the K loudest are stable, as with real talkers and listeners.
    t = np.arange(160 * frames) / 8000
    packets: list[list[bytes]] = []
    for i in range(n):
        amp = 300 + (i * 7919) % 6000
        pcm = np.round(amp * np.sin(2 * np.pi * (300 + (i % 50) * 50) * t)).astype(np.int16)
        sender = SrtpSender(SrtpKeys(SUITE, *keys[i]))
        ssrc, seq0, ts0 = 0x1000 + i, (i * 31) & 0xFFFF, i * 1000
        packets.append(
            [
                sender.protect(
                    pack_rtp_header(0, (seq0 + k) & 0xFFFF, (ts0 + 160 * k) & 0xFFFFFFFF, ssrc)
                    + ulaw_encode(pcm[160 * k : 160 * (k + 1)])
                )
                for k in range(frames)
            ]
        )
    conn.send("ready")
    conn.recv()  # go
    dests = [("127.0.0.1", p) for p in ports]
    slot_legs = [range(s * n // SLOTS, (s + 1) * n // SLOTS) for s in range(SLOTS)]
    t0 = time.monotonic()
    dropped = 0
    for k in range(frames - 5):
        for s, legs in enumerate(slot_legs):
            delay = t0 + k * TICK + s * TICK / SLOTS - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            for i in legs:
                try:
                    socks[i].sendto(packets[i][k], dests[i])
                except BlockingIOError:
                    dropped += 1
    conn.send(dropped)


# --------------------------------------------------------------------------------- driver


def run_step(n: int, layout: str, warm: float, measure: float, port_base: int) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    m_parent, m_child = ctx.Pipe()
    g_parent, g_child = ctx.Pipe()
    mixer = ctx.Process(target=mixer_main, args=(m_child, n, layout, warm, measure, port_base))
    gen = ctx.Process(target=generator_main, args=(g_child, n, warm + measure + 0.5))
    mixer.start()
    gen.start()
    try:
        ports = m_parent.recv()
        keys = [((os.urandom(16), os.urandom(14)), (os.urandom(16), os.urandom(14))) for _ in range(n)]
        g_parent.send((ports, [k[1] for k in keys]))  # the phones send with the mixer's receive keys
        addrs = g_parent.recv()
        m_parent.send((addrs, keys))
        assert m_parent.recv() == "ready" and g_parent.recv() == "ready"
        g_parent.send("go")
        m_parent.send("go")
        result: dict[str, Any] = m_parent.recv()
        result["gen_dropped"] = g_parent.recv()
    finally:
        mixer.join(10)
        gen.join(10)
        for p in (mixer, gen):
            if p.is_alive():
                p.kill()
    return result


def passes(r: dict[str, Any]) -> bool:
    return bool(r["p99"] < 20.0 and r["late"] == 0 and r["skipped"] == 0 and r["rx_ratio"] >= 0.99)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="100,300,600,800,1000,1500")
    ap.add_argument("--layouts", default="one,fives")
    ap.add_argument("--warm", type=float, default=1.0)
    ap.add_argument("--measure", type=float, default=3.0)
    ap.add_argument("--repeat", type=int, default=1, help="runs per step; medians are printed")
    ap.add_argument("--port-base", type=int, default=20000)
    ap.add_argument("--keep-going", action="store_true", help="do not stop a layout at its first failing N")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, suite {SUITE}, K=3, 50 pps per leg")
    header = (
        f"{'layout':7} {'N':>5} {'p50 ms':>7} {'p99 ms':>7} {'lag99':>6} {'late':>5} {'skip':>5} "
        f"{'cpu%':>6} {'us/leg-tick':>11} {'rx%':>6} ok"
    )
    summary = {}
    for layout in args.layouts.split(","):
        print(header)
        best = 0
        for n in sizes:
            runs = [run_step(n, layout, args.warm, args.measure, args.port_base) for _ in range(args.repeat)]
            r = {k: statistics.median(x[k] for x in runs) for k in runs[0] if k != "where"}
            ok = passes(r)
            per_leg = r["cpu"] * TICK * 1e6 / n
            print(
                f"{layout:7} {n:>5} {r['p50']:>7.2f} {r['p99']:>7.2f} {r['lag99']:>6.2f} {r['late']:>5.0f} "
                f"{r['skipped']:>5.0f} {100 * r['cpu']:>6.1f} {per_leg:>11.1f} {100 * r['rx_ratio']:>6.1f} "
                f"{'yes' if ok else 'NO'}  [{runs[0]['where']}]",
                flush=True,
            )
            if ok:
                best = n
            elif not args.keep_going:
                break
        summary[layout] = best
    for layout, best in summary.items():
        print(f"largest N with p99 < 20 ms, no late ticks, >= 99% received ({layout}): {best}")


if __name__ == "__main__":
    main()
