"""Mixer capacity with ``mixers = 1`` and ``mixers = 2`` (not a test): participants carried per setting.

The variant of ``mixer_capacity.py`` for the mixer pool: K mixer processes (``mixer_load.imsconf_main``,
the real media plane as ``imsconf mixer`` runs it), mixer *i* pinned to CPU ``(i + 1) % cpus`` as
``app/mixer_pool.py`` pins its children to their own cores, the N participants' conferences of five
split evenly between them (a conference lives on one mixer), and one load generator
(``mixer_load.generator_main``) sending SRTP PCMU at 50 packets/s per leg to all of them. A step passes on
``mixer_capacity.failures`` applied to the worst mixer (the largest tick p99 and CPU share, the smallest
received ratio, late and skipped ticks summed) and the sampled phones, in the median of ``--repeat`` runs
and in most runs.  With two mixers on a 2-core machine one mixer shares its core with the load
generator: the figure is what this machine carries, not what two free cores would.

    .venv/bin/python bench/mixer_pool_capacity.py                       # mixers 1 and 2
    .venv/bin/python bench/mixer_pool_capacity.py --sizes 600,1000,1400 --repeat 3

"other%" is the busy share of all CPUs not taken by the mixers during the window (the load generator's
included): a shared VM's other jobs show there. What it measured on the 2-core development VM (busy with
other jobs) is in docs/decisions/0019-mixer-pool.md.
"""

# ruff: noqa: E501  (benchmark output lines)
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import sys
import time
from typing import Any

from mixer_capacity import failures
from mixer_load import SUITE, TICK, core_busy, generator_main, imsconf_main, proc_cpu

NICE = -10


def run_step(
    n: int, mixers: int, warm: float, measure: float, port_base: int, sample: int = 16
) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    cpus = sorted(os.sched_getaffinity(0))
    share = [n // mixers // 5 * 5] * mixers
    share[-1] = n - sum(share[:-1])
    procs: list[Any] = []
    pipes = []
    for i in range(mixers):
        parent, child = ctx.Pipe()
        p = ctx.Process(
            target=imsconf_main, args=(child, share[i], "fives", False, port_base + i * (4 * n + 1200), NICE)
        )
        p.start()
        procs.append(p)
        pipes.append(parent)
    g_parent, g_child = ctx.Pipe()
    gen = ctx.Process(target=generator_main, args=(g_child, n, sample))
    gen.start()
    procs.append(gen)
    try:
        ports: list[int] = []
        for i, m in enumerate(pipes):
            ports += m.recv()
            os.sched_setaffinity(procs[i].pid, {cpus[(i + 1) % len(cpus)]})  # its own core (after its pin)
        addrs = g_parent.recv()
        keys = [((os.urandom(16), os.urandom(14)), (os.urandom(16), os.urandom(14))) for _ in range(n)]
        g_parent.send(([("127.0.0.1", p) for p in ports], [k[1] for k in keys]))
        at = 0
        for i, m in enumerate(pipes):
            m.send((addrs[at : at + share[i]], keys[at : at + share[i]]))
            at += share[i]
        pids = [m.recv()[1] for m in pipes]
        assert g_parent.recv() == "ready"
        g_parent.send((warm + measure + 0.5, warm, warm + measure))
        time.sleep(warm)
        for m in pipes:
            m.send("window")
        c0 = [proc_cpu(p) for p in pids]
        b0, w0 = sum(core_busy(c) for c in cpus), time.monotonic()
        time.sleep(measure)
        c1 = [proc_cpu(p) for p in pids]
        b1, w1 = sum(core_busy(c) for c in cpus), time.monotonic()
        reports = []
        for m in pipes:
            m.send("report")
            reports.append(m.recv())
            m.send("stop")
        g = g_parent.recv()
        wall = w1 - w0
        cpu = [(b - a) / wall for a, b in zip(c0, c1, strict=True)]
        r: dict[str, Any] = {
            "p50": max(x["p50"] for x in reports),
            "p99": max(x["p99"] for x in reports),
            "late": sum(x["late"] for x in reports),
            "skipped": sum(x["skipped"] for x in reports),
            "rx_ratio": min(x["rx_ratio"] for x in reports),
            "cpu": max(cpu),
            "cpu_total": sum(cpu),
            "min_pps": g["min_pps"],
            "max_p99_ia": g["max_p99_ia"],
            "other": max(0.0, (b1 - b0) - sum(c1) + sum(c0)) / wall / len(cpus),
        }
    finally:
        for p in procs:
            p.join(15)
            if p.is_alive():
                p.kill()
                p.join()
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mixers", default="1,2")
    ap.add_argument("--sizes", default="400,700,1000,1300,1600")
    ap.add_argument("--warm", type=float, default=1.5)
    ap.add_argument("--measure", type=float, default=2.5)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--port-base", type=int, default=40000)
    ap.add_argument(
        "--realtime", type=int, default=0, help="the mixers' media_realtime_priority (0: nice only)"
    )
    args = ap.parse_args()
    os.environ["BENCH_RT"] = str(args.realtime)
    sizes = [int(s) for s in args.sizes.split(",")]
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, SRTP {SUITE} both ways, PCMU 20 ms, "
        f"conferences of 5, 50 pps per leg, one generator, median of {args.repeat} runs of {args.measure:g} s; "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    print(
        f"{'mixers':>6} {'N':>5} {'p50 ms':>7} {'p99 ms':>7} {'late':>5} {'skip':>5} {'cpu% max':>8} {'us/leg':>6} {'rx%':>6} {'min pps':>7} {'other%':>6}  verdict (runs)"
    )
    for k in [int(x) for x in args.mixers.split(",")]:
        best = 0
        for n in sizes:
            runs = [run_step(n, k, args.warm, args.measure, args.port_base) for _ in range(args.repeat)]
            r = {key: statistics.median(x[key] for x in runs) for key in runs[0]}
            marks = "".join("-" if failures(x) else "+" for x in runs)
            why = sorted({w for x in runs for w in failures(x)})
            ok = not failures(r) and marks.count("+") * 2 > len(runs)
            per_leg = r["cpu_total"] * TICK * 1e6 / n
            print(
                f"{k:>6} {n:>5} {r['p50']:>7.2f} {r['p99']:>7.2f} {r['late']:>5.0f} {r['skipped']:>5.0f} "
                f"{100 * r['cpu']:>8.1f} {per_leg:>6.2f} {100 * r['rx_ratio']:>6.1f} {r['min_pps']:>7.1f} "
                f"{100 * r['other']:>6.1f}  {'PASS' if ok else 'FAIL'} ({marks}{': ' + ', '.join(why) if why else ''})",
                flush=True,
            )
            if not ok:
                break
            best = n
        print(
            f"largest passing N with mixers = {k}: {best} (load average now {os.getloadavg()[0]:.2f})",
            flush=True,
        )


if __name__ == "__main__":
    main()
