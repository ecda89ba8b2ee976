"""Memory under churn: the server's RSS before, after each run of conference joins+leaves, and after idle.

Each run is SIPp joining one conference (INVITE→200→ACK, then BYE) at ``--rate`` calls/s for
``--seconds``; two runs, each followed by ``--idle`` seconds without calls. Prints RSS (VmRSS) in MB at every
step, the ratio to the start and the server's open file descriptors (sockets not closed would show there).
Where the memory went, and the fix: docs/decisions/0012-memory-after-load.md. Security relaxed for SIPp as
in ``sip_load.py``.
Usage: ``python bench/churn_memory.py [--rate 300] [--seconds 180] [--idle 60] [--runs 2] [--every 10]
[--trace DIR]``. ``--trace`` has the server write a memory report at the start and after each idle time
(``imsconf.app.memtrace``), copied to DIR: pymalloc's arenas, glibc's heap, live objects by type; with
``--tracemalloc`` also what grew since the start by traceback (several times slower: use a low rate).
UDP server transactions live 64*T1 = 32 s after their final response (RFC 3261): memory a load used comes
back once the load's last transactions have ended, so an idle time under ~35 s still sees some of them.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sip_load import SCEN, free_port, run_step, start_owner, start_server


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def fd_count(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/fd").iterdir()))


def trace(server: subprocess.Popen[bytes], work: Path, into: Path | None) -> None:
    """Have a tracing server write its next report and copy the reports to *into*."""
    if into is None:
        return
    out = work / "var" / "memtrace"
    before = len(list(out.glob("snap-*.txt"))) if out.exists() else 0
    server.send_signal(signal.SIGUSR2)
    for _ in range(3000):  # a tracemalloc snapshot of a large heap takes a while
        time.sleep(0.1)
        if out.exists() and len(list(out.glob("snap-*.txt"))) > before:
            break
    time.sleep(0.5)
    into.mkdir(parents=True, exist_ok=True)
    for f in out.glob("snap-*"):
        shutil.copy(f, into / f.name)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rate", type=int, default=300)
    ap.add_argument("--seconds", type=float, default=180.0)
    ap.add_argument("--idle", type=float, default=60.0)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--every", type=float, default=0.0, help="also print RSS every so many idle seconds")
    ap.add_argument("--trace", type=Path, default=None, help="memory reports into this directory")
    ap.add_argument("--tracemalloc", action="store_true", help="with --trace: trace every allocation")
    args = ap.parse_args()
    if args.trace is not None:
        os.environ["IMSCONF_TRACEMALLOC"] = "1" if args.tracemalloc else "stats"
    sipp = shutil.which("sipp")
    if sipp is None:
        sys.exit("sipp is not installed (scripts/install-test-deps.sh)")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        port = free_port()
        server = start_server(work, port)
        try:
            target = f"127.0.0.1:{port}"
            owner, conf = start_owner(sipp, target, work)
            scenario = ["-sf", str(SCEN / "conf_join_leave.xml"), "-key", "conf", conf, "-d", "0"]
            time.sleep(2.0)
            start = rss_mb(server.pid)
            pid = server.pid
            print(f"{'step':<24} {'RSS MB':>8} {'x start':>8} {'fds':>5} {'calls ok':>9} {'failed':>7}")
            print(f"{'start':<24} {start:>8.1f} {1.0:>8.2f} {fd_count(pid):>5}", flush=True)
            trace(server, work, args.trace)
            for n in range(1, args.runs + 1):
                _, ok, failed = run_step(sipp, target, scenario, args.rate, args.seconds, work)
                now = rss_mb(server.pid)
                row = f"{f'after run {n}':<24} {now:>8.1f} {now / start:>8.2f} {fd_count(pid):>5}"
                print(f"{row} {ok:>9} {failed:>7}", flush=True)
                idle = 0.0
                while idle < args.idle:  # RSS during the idle time every --every s, then at its end
                    step = min(args.every or args.idle, args.idle - idle)
                    time.sleep(step)
                    idle += step
                    now = rss_mb(server.pid)
                    label = f"after run {n} + idle" if idle >= args.idle else f"  idle {idle:.0f} s"
                    print(f"{label:<24} {now:>8.1f} {now / start:>8.2f} {fd_count(pid):>5}", flush=True)
                trace(server, work, args.trace)
            owner.terminate()
        finally:
            server.terminate()
            server.wait(10)


if __name__ == "__main__":
    main()
