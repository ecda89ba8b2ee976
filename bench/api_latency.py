"""The operator plane's latency on a loaded server (not a test).

(a) ``GET /api/v1/conferences`` and ``GET /api/v1/conferences/{id}``: p50/p99 over sequential keep-alive
    requests while the server holds 100 conferences of 10 participants (SIPp: 100 owners that stay, their
    conferences listed through the API, then 9 members each from a ``-inf`` CSV of the conference users).
(b) A burst of 1,000 API calls (list, show, mute, unmute mixed) from an asyncio client over ~20
    connections during one 200-participant conference whose legs stream RTP (SIPp ``-rtp_echo`` sends
    each leg's downlink back to the mixer, 50 packets/s per leg): the burst's duration, p50/p99, and
    ``imsconf_mixer_late_ticks_total`` before and after it (the burst must not make the mixer late).

SIPp has neither TLS nor SRTP: the bench's server allows plain RTP, as bench/sip_load.py's does.  Every
SIPp run has ``-m`` and ``-timeout``, every child process our own deadline, and everything this bench
started is killed by PID at the end.  Usage: ``python bench/api_latency.py [--conferences 100]
[--members 9] [--big 200] [--burst 1000] [--concurrency 20]``.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parents[1]
SCEN = Path(__file__).parent / "scenarios"
BASE = "/api/v1/conferences"


def free_port() -> int:
    """A port free for TCP and UDP on 127.0.0.1 (and the next one for TCP, the server's TLS listener)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u, socket.socket() as t:
                u.bind(("127.0.0.1", port))
                t.bind(("127.0.0.1", port + 1))
            return port
        except OSError:
            continue


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class Bench:
    def __init__(self, work: Path, sipp: str) -> None:
        self.work = work
        self.sipp = sipp
        self.port = free_port()
        self.http_port = free_port()
        self.procs: list[subprocess.Popen[bytes]] = []
        self.server: subprocess.Popen[bytes] | None = None
        self.token = ""
        self.conn: http.client.HTTPConnection | None = None

    # ---- processes ------------------------------------------------------------------------------------

    def start_server(self) -> None:
        cfg = self.work / "bench.toml"
        cfg.write_text(
            "allow_plain_rtp = true\nallow_sdes_over_udp = true\nrtp_port_range = [30000, 39999]\n"
            'log_level = "warning"\n'
            # SIPp is one source sending every join: no call budget, no per-source limit
            "sip_call_rate = 0\nsip_source_rate = 0\n"
        )
        data = self.work / "var"
        cmd = [sys.executable, "-m", "imsconf.cli", "serve", "--config", str(cfg), "--data-dir", str(data),
               "--auth", "none", "--http", f"127.0.0.1:{self.http_port}",
               "--listen", f"udp:127.0.0.1:{self.port}", "--listen", f"tcp:127.0.0.1:{self.port}",
               "--listen", f"tls:127.0.0.1:{self.port + 1}"]  # fmt: skip
        log = open(self.work / "server.log", "wb")  # noqa: SIM115 - kept open for the server's lifetime
        self.server = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, cwd=REPO)
        assert self.server.stdout is not None
        deadline = time.monotonic() + 30
        buf = b""
        os.set_blocking(self.server.stdout.fileno(), False)
        while b"conference factory" not in buf:
            if time.monotonic() > deadline or self.server.poll() is not None:
                raise RuntimeError(
                    f"the server did not start: {(self.work / 'server.log').read_text()[-2000:]}"
                )
            buf += self.server.stdout.read() or b""
            time.sleep(0.05)
        self.token = (data / "api-token").read_text().strip()

    def sipp_bg(
        self, scenario: str, name: str, calls: int, rate: int, *extra: str
    ) -> subprocess.Popen[bytes]:
        workdir = self.work / name
        workdir.mkdir(exist_ok=True)
        cmd = [self.sipp, f"127.0.0.1:{self.port}", "-sf", str(SCEN / scenario), "-t", "u1",
               "-i", "127.0.0.1", "-p", "0", "-m", str(calls), "-r", str(rate), "-l", str(calls),
               "-nostdin", "-timeout", "900s", "-buff_size", "4194304", "-trace_err", *extra]  # fmt: skip
        proc = subprocess.Popen(cmd, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in [*self.procs, *([self.server] if self.server is not None else [])]:
            if proc.poll() is None:
                proc.kill()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    pass

    # ---- HTTP -----------------------------------------------------------------------------------------

    def call(self, method: str, path: str) -> tuple[int, Any]:
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=30)
            try:
                self.conn.request(method, path, headers={"Authorization": f"Bearer {self.token}"})
                resp = self.conn.getresponse()
                body = resp.read()
                break
            except (OSError, http.client.HTTPException):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
        ctype = resp.getheader("Content-Type", "")
        return resp.status, json.loads(body) if ctype.startswith("application/json") else body.decode()

    def conferences(self) -> list[dict[str, Any]]:
        status, data = self.call("GET", BASE)
        assert status == 200, data
        return list(data["conferences"])

    def metric(self, name: str, labels: dict[str, str] | None = None) -> float:
        status, text = self.call("GET", "/metrics")
        assert status == 200
        total = 0.0
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if s.name == name and all(s.labels.get(k) == v for k, v in (labels or {}).items()):
                    total += s.value
        return total

    def wait(self, what: str, cond: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for {what}")
            if self.server is not None and self.server.poll() is not None:
                raise RuntimeError("the server exited")
            time.sleep(0.5)

    def live(self) -> int:
        return sum(int(c["participants"]) for c in self.conferences())

    def end_all(self, timeout: float = 60) -> None:
        """DELETE every conference (BYE to everyone), wait for the SIPp processes to finish."""
        for c in self.conferences():
            self.call("DELETE", f"{BASE}/{c['id']}")
        self.wait("every conference's end", lambda: not self.conferences(), timeout)
        deadline = time.monotonic() + timeout
        for proc in self.procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    # ---- (a) ------------------------------------------------------------------------------------------

    def latency(self, conferences: int, members: int, samples: int) -> None:
        total = conferences * (1 + members)
        t0 = time.monotonic()
        self.sipp_bg("bench_owner.xml", "owners", conferences, 50)
        self.wait(f"{conferences} conferences", lambda: len(self.conferences()) >= conferences, 120)
        users = [c["uri"].split(":", 1)[1].split("@", 1)[0] for c in self.conferences()]
        csv = self.work / "members.csv"
        csv.write_text("SEQUENTIAL\n" + "".join(f"{u}\n" for u in users for _ in range(members)))
        self.sipp_bg("bench_member.xml", "members", conferences * members, 100, "-inf", str(csv))
        self.wait(f"{total} participants", lambda: self.live() >= total, 300)
        setup = time.monotonic() - t0
        ids = [c["id"] for c in self.conferences()]
        results: dict[str, list[float]] = {"list": [], "show": []}
        for i in range(samples):
            for kind, path in (("list", BASE), ("show", f"{BASE}/{ids[i % len(ids)]}")):
                t = time.perf_counter()
                status, data = self.call("GET", path)
                results[kind].append(time.perf_counter() - t)
                assert status == 200, data
        _, one = self.call("GET", f"{BASE}/{ids[0]}")
        _, listed = self.call("GET", BASE)
        print(f"\n== (a) {conferences} conferences x {1 + members} participants ({total} legs, set up in "
              f"{setup:.1f} s); {samples} sequential requests each, one keep-alive connection")  # fmt: skip
        print(f"{'request':<34} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'bytes':>8}")
        for kind, label, body in (("list", f"GET {BASE}", listed), ("show", f"GET {BASE}/{{id}}", one)):
            v = results[kind]
            print(f"{label:<34} {percentile(v, 0.5) * 1e3:>8.2f} {percentile(v, 0.99) * 1e3:>8.2f} "
                  f"{max(v) * 1e3:>8.2f} {len(json.dumps(body)):>8}")  # fmt: skip
        self.end_all()
        self.procs.clear()

    # ---- (b) ------------------------------------------------------------------------------------------

    def burst(self, size: int, calls: int, concurrency: int) -> None:
        self.sipp_bg("bench_owner.xml", "big-owner", 1, 1, "-rtp_echo")
        self.wait("the big conference", lambda: len(self.conferences()) == 1, 30)
        (conf,) = self.conferences()
        user = conf["uri"].split(":", 1)[1].split("@", 1)[0]
        csv = self.work / "big.csv"
        csv.write_text("SEQUENTIAL\n" + f"{user}\n" * (size - 1))
        self.sipp_bg("bench_member.xml", "big-members", size - 1, 100, "-inf", str(csv), "-rtp_echo")
        self.wait(f"{size} participants", lambda: self.live() >= size, 120)
        _, shown = self.call("GET", f"{BASE}/{conf['id']}")
        pids = [p["id"] for p in shown["participants"]]
        time.sleep(3)  # the streams settle
        rtp_in0 = self.metric("imsconf_rtp_packets_total", {"direction": "in"})
        late0 = self.metric("imsconf_mixer_late_ticks_total")
        ticks0 = self.metric("imsconf_mixer_tick_seconds_count")
        time.sleep(2)
        rtp_rate = (self.metric("imsconf_rtp_packets_total", {"direction": "in"}) - rtp_in0) / 2
        late1 = self.metric("imsconf_mixer_late_ticks_total")
        results, took = asyncio.run(self._burst(conf["id"], pids, calls, concurrency))
        late2 = self.metric("imsconf_mixer_late_ticks_total")
        ticks2 = self.metric("imsconf_mixer_tick_seconds_count")
        print(f"\n== (b) one conference of {size} participants streaming RTP (SIPp -rtp_echo): "
              f"{rtp_rate:.0f} RTP packets/s into the mixer")  # fmt: skip
        print(f"burst: {calls} calls (list, show, mute, unmute), {concurrency} connections, "
              f"{took:.2f} s ({calls / took:.0f} calls/s)")  # fmt: skip
        print(f"{'call':<10} {'n':>5} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
        every: list[float] = []
        for kind in ("list", "show", "mute", "unmute"):
            v = results[kind]
            every += v
            print(f"{kind:<10} {len(v):>5} {percentile(v, 0.5) * 1e3:>8.2f} "
                  f"{percentile(v, 0.99) * 1e3:>8.2f} {max(v) * 1e3:>8.2f}")  # fmt: skip
        print(f"{'all':<10} {len(every):>5} {percentile(every, 0.5) * 1e3:>8.2f} "
              f"{percentile(every, 0.99) * 1e3:>8.2f} {max(every) * 1e3:>8.2f}")  # fmt: skip
        print(f"imsconf_mixer_late_ticks_total: {late0:.0f} at the start of the quiet 2 s, "
              f"{late1:.0f} before the burst, {late2:.0f} after it ({late2 - late1:+.0f} in the burst; "
              f"{ticks2 - ticks0:.0f} ticks in all)")  # fmt: skip
        self.end_all()

    async def _burst(
        self, cid: str, pids: list[str], calls: int, concurrency: int
    ) -> tuple[dict[str, list[float]], float]:
        rng = random.Random(7)
        plan: list[tuple[str, str, str]] = []
        for _ in range(calls):
            kind = rng.choice(("list", "show", "mute", "unmute"))
            pid = rng.choice(pids)
            if kind == "list":
                plan.append((kind, "GET", BASE))
            elif kind == "show":
                plan.append((kind, "GET", f"{BASE}/{cid}"))
            else:
                plan.append((kind, "POST", f"{BASE}/{cid}/participants/{pid}/{kind}"))
        results: dict[str, list[float]] = {"list": [], "show": [], "mute": [], "unmute": []}
        queue: asyncio.Queue[tuple[str, str, str]] = asyncio.Queue()
        for item in plan:
            queue.put_nowait(item)
        headers = {"Authorization": f"Bearer {self.token}"}
        base = f"http://127.0.0.1:{self.http_port}"
        connector = aiohttp.TCPConnector(limit=concurrency)
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(base, connector=connector, headers=headers, timeout=timeout) as s:

            async def worker() -> None:
                while not queue.empty():
                    kind, method, path = queue.get_nowait()
                    t = time.perf_counter()
                    async with s.request(method, path) as resp:
                        await resp.read()
                        if resp.status != 200:
                            raise RuntimeError(f"{method} {path}: {resp.status}")
                    results[kind].append(time.perf_counter() - t)

            # open the pool's connections a few at a time: the server's connection guard closes the oldest
            # not yet authenticated connection beyond 16 of them, and a connection counts as authenticated
            # once a request with the token went through it
            async def warm() -> None:
                async with s.get(BASE) as resp:
                    await resp.read()

            for n in range(4, concurrency + 4, 4):
                async with asyncio.timeout(30):
                    await asyncio.gather(*(warm() for _ in range(min(n, concurrency))))
            t0 = time.perf_counter()
            await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(concurrency))), 120)
            took = time.perf_counter() - t0
        return results, took


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--conferences", type=int, default=100)
    ap.add_argument("--members", type=int, default=9, help="members per conference besides the owner")
    ap.add_argument("--samples", type=int, default=300, help="sequential requests of each kind in (a)")
    ap.add_argument("--big", type=int, default=200, help="participants of (b)'s conference")
    ap.add_argument("--burst", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=20)
    ap.add_argument("--only", choices=["a", "b"], help="run one part only")
    args = ap.parse_args()
    sipp = shutil.which("sipp")
    if sipp is None:
        sys.exit("sipp is not installed (scripts/install-test-deps.sh)")
    with tempfile.TemporaryDirectory(prefix="imsconf-api-bench-") as tmp:
        bench = Bench(Path(tmp), sipp)
        try:
            bench.start_server()
            if args.only in (None, "a"):
                bench.latency(args.conferences, args.members, args.samples)
            if args.only in (None, "b"):
                bench.burst(args.big, args.burst, args.concurrency)
        finally:
            bench.stop_all()


if __name__ == "__main__":
    main()
