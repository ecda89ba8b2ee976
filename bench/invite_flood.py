"""An INVITE flood at full size against the real server, legitimate and established calls beside it.

1. **Capacity** (unless ``--rate`` gives it): SIPp conference joins (INVITE→200→ACK, BYE) at stepped rates
   against a server without overload limits; the highest rate carried with zero failures.
2. **Flood**: a server with its default overload limits (per-source rate, call budget), auth off. A few
   established calls (``--calls``, from 127.0.0.3, a small SIP/RTP client in this file) stream RTP into one
   conference and count the packets/s the mixer sends them; legitimate callers join and leave that conference
   at ``--legit`` calls/s from 127.0.0.2 (SIPp ``-i 127.0.0.2``), before, during and after the flood; the
   flood is SIPp INVITEs at ``--factor`` times the capacity for ``--seconds`` from 127.0.0.1.

Prints, per second: the flood's INVITEs answered 503 and 200 and the ones that timed out; the legitimate
calls that succeeded and failed; the established calls' packets/s (min over the calls). Then: the legitimate
failure %, the established-call pps min/median during the flood, the time after the flood until the
legitimate rate runs again with zero failures, and the media legs bound (RTP ports of the server) after
the flood, which must come down to the established calls.

Always terminates: every SIPp run has ``-m`` (max calls), ``-timeout`` and ``-timeout_error``, runs under
``Popen`` with this script's own wall-clock deadline and is killed by its PID when that passes; the server
and the clients are stopped in ``finally``. Usage:
``python bench/invite_flood.py [--rate N] [--factor 5] [--seconds 20] [--legit 200] [--calls 3]``;
``BENCH_PROFILE=FILE`` (with ``PYTHONMALLOC=malloc``, so that the server does not re-execute itself) runs
the flood phase's server under cProfile and writes its figures to FILE when it stops.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sip_load import REPO, SCEN, free_port

RTP_RANGE = (33000, 39999)


# ---- processes -------------------------------------------------------------------------------------------
def start_server(work: Path, port: int, *, limits: bool) -> subprocess.Popen[bytes]:
    work.mkdir(parents=True, exist_ok=True)
    cfg = work / "bench.toml"
    text = (
        "allow_plain_rtp = true\nallow_sdes_over_udp = true\n"
        f"rtp_port_range = [{RTP_RANGE[0]}, {RTP_RANGE[1]}]\n"
        'log_level = "warning"\n'
    )
    if not limits:
        text += "sip_call_rate = 0\nsip_source_rate = 0\n"  # raw capacity: no call budget, no source limit
    cfg.write_text(text)
    profile = os.environ.get("BENCH_PROFILE")  # a file: cProfile of the flood phase's server
    python = [sys.executable, "-m", "cProfile", "-o", profile] if profile and limits else [sys.executable]
    cmd = [*python, "-m", "imsconf.cli", "serve", "--config", str(cfg),
           "--data-dir", str(work / "var"), "--auth", "none", "--listen", f"udp:127.0.0.1:{port}",
           "--listen", f"tcp:127.0.0.1:{port}", "--listen", f"tls:127.0.0.1:{port + 1}",
           "--http", "off"]  # fmt: skip
    log = open(work / "server.log", "wb")  # noqa: SIM115 - kept open for the server's lifetime
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, cwd=REPO)
    assert proc.stdout is not None
    os.set_blocking(proc.stdout.fileno(), False)
    buf = b""
    deadline = time.monotonic() + 30
    while b"conference factory" not in buf:
        if time.monotonic() > deadline or proc.poll() is not None:
            stop(proc)
            raise RuntimeError("the server did not start: " + (work / "server.log").read_text()[-2000:])
        buf += proc.stdout.read() or b""
        time.sleep(0.05)
    return proc


def start_free(work: Path, *, limits: bool) -> tuple[subprocess.Popen[bytes], int]:
    """:func:`start_server` on a free port pair (the TLS listener takes the next port): a few tries."""
    for attempt in range(5):
        port = free_port()
        try:
            return start_server(work, port, limits=limits), port
        except RuntimeError:
            if attempt == 4:
                raise
    raise AssertionError("unreachable")


def stop(proc: subprocess.Popen[bytes] | None, grace: float = 10.0) -> None:
    """Stop a process this script started, by its PID: SIGTERM, then SIGKILL after *grace* seconds."""
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(5)


@dataclass
class Sipp:
    """One SIPp run: bounded by ``-m`` and ``-timeout``, and by our wall-clock *deadline*."""

    name: str
    work: Path
    proc: subprocess.Popen[bytes]
    deadline: float
    killed: bool = False

    @classmethod
    def start(
        cls,
        sipp: str,
        target: str,
        scenario: list[str],
        *,
        source: str,
        rate: int,
        calls: int,
        limit: int,
        wall: float,
        work: Path,
        name: str,
        extra: tuple[str, ...] = (),
    ) -> Sipp:
        work.mkdir(parents=True, exist_ok=True)
        for f in work.glob("*.csv"):
            f.unlink()
        cmd = [sipp, target, *scenario, "-i", source, "-p", "0", "-r", str(rate), "-m", str(calls),
               "-l", str(limit), "-nostdin", "-timeout", f"{int(wall)}s", "-timeout_error",
               "-recv_timeout", "4000", "-trace_stat", "-trace_counts", "-fd", "1",
               "-stf", str(work / "stat.csv"), "-buff_size", "4194304", *extra]  # fmt: skip
        proc = subprocess.Popen(cmd, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return cls(name, work, proc, time.monotonic() + wall + 10)

    def finish(self) -> int:
        """Wait for the run, at most until its deadline; then kill it by its PID."""
        left = self.deadline - time.monotonic()
        try:
            return self.proc.wait(max(0.1, left))
        except subprocess.TimeoutExpired:
            self.killed = True
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGKILL)
            return self.proc.wait(5)

    def rows(self, pattern: str) -> list[dict[str, str]]:
        files = sorted(self.work.glob(pattern))
        if not files:
            return []
        lines = [ln for ln in files[0].read_text(errors="replace").splitlines() if ln.strip()]
        if len(lines) < 2:
            return []
        head = lines[0].split(";")
        return [dict(zip(head, ln.split(";"), strict=False)) for ln in lines[1:]]

    def failure_causes(self) -> dict[str, int]:
        """SIPp's cumulative ``Failed...(C)`` columns that are not zero, without the prefix and suffix
        (``UnexpectedMessage``: a 503 where a 200 was expected; ``TimeoutOnRecv``: no answer)."""
        rows = self.rows("stat.csv")
        last = rows[-1] if rows else {}
        out = {}
        for col, value in last.items():
            if col.startswith("Failed") and col.endswith("(C)") and col != "FailedCall(C)":
                n = int(value or 0)
                if n:
                    out[col[len("Failed") : -len("(C)")]] = n
        return out

    def totals(self) -> tuple[int, int]:
        rows = self.rows("stat.csv")
        if not rows:
            return 0, 0
        last = rows[-1]
        return int(last.get("SuccessfulCall(C)", 0) or 0), int(last.get("FailedCall(C)", 0) or 0)


def epoch(value: str) -> float:
    """SIPp's time columns: ``date<TAB>time<TAB>epoch``."""
    return float(value.split("\t")[-1])


def per_second(rows: list[dict[str, str]], t0: float, columns: dict[str, str]) -> dict[int, dict[str, int]]:
    """Rows of a SIPp stat/counts file (cumulative or periodic, one per second) by second since *t0*: for
    every *columns* name (ours → SIPp's; a ``+`` prefix: cumulative, differenced) the count in that second."""
    out: dict[int, dict[str, int]] = {}
    prev: dict[str, int] = {}
    for row in rows:
        try:
            sec = int(epoch(row["CurrentTime"]) - t0 - 0.5)
        except (KeyError, ValueError):
            continue
        got = out.setdefault(sec, {})
        for ours, col in columns.items():
            cumulative = col.startswith("+")
            raw = int(row.get(col.lstrip("+"), "0") or 0)
            value = raw - prev.get(ours, 0) if cumulative else raw
            prev[ours] = raw
            got[ours] = got.get(ours, 0) + value
    return out


def counts_columns(rows: list[dict[str, str]]) -> dict[str, str]:
    """The -trace_counts columns of the flood's first 503 and 200 receptions (``<n>_503_Recv``...)."""
    names = list(rows[0]) if rows else []
    first = {}
    for status in ("503", "200"):
        col = next((c for c in names if c.endswith(f"_{status}_Recv")), None)
        if col is not None:
            first[f"r{status}"] = "+" + col
    return first


# ---- the established calls: a small SIP UA with RTP, from 127.0.0.3 ---------------------------------------
@dataclass
class Call:
    sip: socket.socket
    rtp: socket.socket
    call_id: str
    tag: str
    to: str = ""
    target: str = ""
    remote_media: tuple[str, int] = ("", 0)
    cseq: int = 1
    received: dict[int, int] = field(default_factory=dict)


def _request(call: Call, method: str, ruri: str, to: str, cseq: int, body: bytes = b"") -> bytes:
    host, port = call.sip.getsockname()
    lines = [
        f"{method} {ruri} SIP/2.0",
        f"Via: SIP/2.0/UDP {host}:{port};branch=z9hG4bK{secrets.token_hex(8)};rport",
        f"From: <sip:established@{host}>;tag={call.tag}",
        f"To: {to}",
        f"Call-ID: {call.call_id}",
        f"CSeq: {cseq} {method}",
        "Max-Forwards: 70",
        f"Contact: <sip:established@{host}:{port}>",
    ]
    if body:
        lines.append("Content-Type: application/sdp")
    lines += [f"Content-Length: {len(body)}", "", ""]
    return "\r\n".join(lines).encode() + body


def _header(msg: str, name: str) -> str:
    for line in msg.split("\r\n"):
        if line.lower().startswith(name.lower() + ":"):
            return line.split(":", 1)[1].strip()
    return ""


def _final(sock: socket.socket, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data, _ = sock.recvfrom(65535)
        except TimeoutError:
            break
        text = data.decode("utf-8", "replace")
        if text.startswith("SIP/2.0 ") and not text.startswith("SIP/2.0 1"):
            return text
    raise RuntimeError("no final response")


def dial(server: tuple[str, int], ruri: str) -> Call:
    sip = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sip.bind(("127.0.0.3", 0))
    sip.connect(server)
    rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rtp.bind(("127.0.0.3", 0))
    call = Call(sip, rtp, secrets.token_hex(8), secrets.token_hex(4))
    port = rtp.getsockname()[1]
    sdp = (
        f"v=0\r\no=est 1 1 IN IP4 127.0.0.3\r\ns=-\r\nc=IN IP4 127.0.0.3\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"
    ).encode()
    sip.send(_request(call, "INVITE", ruri, f"<{ruri}>", 1, sdp))
    resp = _final(sip, 5.0)
    if not resp.startswith("SIP/2.0 200"):
        raise RuntimeError(f"established call refused: {resp.splitlines()[0]}")
    call.to = _header(resp, "To")
    call.target = _header(resp, "Contact").strip("<>").split(">")[0]
    body = resp.split("\r\n\r\n", 1)[1]
    host = next(ln[len("c=IN IP4 ") :] for ln in body.split("\r\n") if ln.startswith("c=IN IP4 "))
    mport = next(int(ln.split()[1]) for ln in body.split("\r\n") if ln.startswith("m=audio "))
    call.remote_media = (host.strip(), mport)
    sip.send(_request(call, "ACK", call.target, call.to, 1))
    return call


def hang_up(call: Call) -> None:
    with contextlib.suppress(OSError, RuntimeError):
        call.sip.send(_request(call, "BYE", call.target, call.to, 2))
        _final(call.sip, 2.0)
    call.sip.close()
    call.rtp.close()


class Media(threading.Thread):
    """Sends 20 ms PCMU packets from every call and counts what each receives, per second since *t0*."""

    def __init__(self, calls: list[Call], t0: float) -> None:
        super().__init__(daemon=True)
        self.calls = calls
        self.t0 = t0
        self.stopped = threading.Event()

    def run(self) -> None:
        import select

        seq = 0
        ssrc = [secrets.randbits(32) for _ in self.calls]
        socks = {c.rtp.fileno(): c for c in self.calls}
        next_send = time.monotonic()
        while not self.stopped.is_set():
            now = time.monotonic()
            if now >= next_send:
                seq += 1
                for c, s in zip(self.calls, ssrc, strict=True):
                    head = bytes([0x80, 0]) + (seq & 0xFFFF).to_bytes(2, "big")
                    head += (seq * 160 & 0xFFFFFFFF).to_bytes(4, "big") + s.to_bytes(4, "big")
                    with contextlib.suppress(OSError):
                        c.rtp.sendto(head + os.urandom(160), c.remote_media)
                next_send += 0.02
                if next_send < now:
                    next_send = now + 0.02
            ready, _, _ = select.select(list(socks), [], [], max(0.0, next_send - time.monotonic()))
            sec = int(time.time() - self.t0)
            for fd in ready:
                c = socks[fd]
                with contextlib.suppress(BlockingIOError, OSError):
                    while True:
                        c.rtp.recv(2048, socket.MSG_DONTWAIT)
                        c.received[sec] = c.received.get(sec, 0) + 1


def rtp_ports_bound(pid: int) -> int:
    """UDP sockets of process *pid* bound in the media port range."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    n = 0
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                parts = line.split()
                port = int(parts[1].rsplit(":", 1)[1], 16)
                if parts[9] in inodes and RTP_RANGE[0] <= port <= RTP_RANGE[1]:
                    n += 1
    return n


# ---- the two phases ---------------------------------------------------------------------------------------
def capacity(sipp: str, work: Path, rates: list[int], seconds: float) -> int:
    server, port = start_free(work / "capacity", limits=False)
    best = 0
    try:
        target = f"127.0.0.1:{port}"
        owner = Sipp.start(sipp, target, ["-sf", str(SCEN / "conf_create.xml"), "-key", "conf_file",
                           str(work / "conf.txt"), "-d", "600000"], source="127.0.0.1", rate=1, calls=1,
                           limit=1, wall=600, work=work / "cap-owner", name="owner")  # fmt: skip
        conf = wait_file(work / "conf.txt")
        print(f"\n== capacity: conference joins, {seconds:.0f} s per step, no overload limits")
        print(f"{'requested/s':>12} {'achieved/s':>11} {'ok':>7} {'failed':>7}")
        for rate in rates:
            calls = int(rate * seconds)
            t0 = time.monotonic()
            run = Sipp.start(sipp, target, ["-sf", str(SCEN / "conf_join_leave.xml"), "-key", "conf", conf,
                             "-d", "0"], source="127.0.0.1", rate=rate, calls=calls, limit=rate * 4,
                             wall=seconds * 3 + 10, work=work / "cap-step", name="step")  # fmt: skip
            run.finish()
            took = time.monotonic() - t0
            ok, failed = run.totals()
            failed += max(0, calls - ok - failed)
            achieved = calls / took
            print(f"{rate:>12} {achieved:>11.0f} {ok:>7} {failed:>7}", flush=True)
            if failed or achieved < 0.95 * rate:
                break
            best = rate
            time.sleep(2.0)
        stop(owner.proc, 2)
    finally:
        stop(server)
    return best


def wait_file(path: Path, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return path.read_text().strip()
        time.sleep(0.05)
    raise RuntimeError(f"{path} was not written")


def flood(sipp: str, work: Path, rate: int, seconds: float, legit: int, ncalls: int) -> None:
    server, port = start_free(work / "flood", limits=True)
    target = f"127.0.0.1:{port}"
    calls: list[Call] = []
    media: Media | None = None
    runs: list[Sipp] = []
    try:
        first = dial(("127.0.0.1", port), f"sip:conference-factory@127.0.0.1:{port}")
        calls.append(first)
        conf_uri = first.target
        conf = conf_uri.split(":", 1)[1].split("@", 1)[0]
        for _ in range(ncalls - 1):
            calls.append(dial(("127.0.0.1", port), f"sip:{conf}@127.0.0.1:{port}"))
        time.sleep(0.5)
        baseline = rtp_ports_bound(server.pid)
        t0 = time.time()
        media = Media(calls, t0)
        media.start()
        before, after = 3.0, 15.0
        legit_run = Sipp.start(
            sipp,
            target,
            ["-sf", str(SCEN / "conf_join_leave.xml"), "-key", "conf", conf, "-d", "0"],
            source="127.0.0.2",
            rate=legit,
            calls=int(legit * (before + seconds + after)),
            limit=legit * 10,
            wall=before + seconds + after + 30,
            work=work / "legit",
            name="legit",
        )
        runs.append(legit_run)
        time.sleep(before)
        flood_t0 = time.time() - t0
        flood_run = Sipp.start(sipp, target, ["-sf", str(SCEN / "flood_invite.xml")], source="127.0.0.1",
                               rate=rate, calls=int(rate * seconds), limit=rate * 5, wall=seconds + 30,
                               work=work / "flood-sipp", name="flood")  # fmt: skip
        runs.append(flood_run)
        flood_run.finish()
        flood_t1 = time.time() - t0
        legs_after: list[tuple[float, int]] = []
        while legit_run.proc.poll() is None and time.time() - t0 < flood_t1 + after + 30:
            legs_after.append((time.time() - t0 - flood_t1, rtp_ports_bound(server.pid)))
            time.sleep(1.0)
        legit_run.finish()
        for _ in range(40):  # the legitimate calls' last transactions, then the legs settle
            legs_after.append((time.time() - t0 - flood_t1, rtp_ports_bound(server.pid)))
            if legs_after[-1][1] <= baseline:
                break
            time.sleep(1.0)
        media.stopped.set()
        media.join(2)
        report(t0, flood_t0, flood_t1, rate, seconds, legit, calls, flood_run, legit_run, legs_after)
        print(f"media ports bound with only the established calls, before the flood: {baseline} "
              f"({baseline // 2} legs' worth)")  # fmt: skip
    finally:
        if media is not None:
            media.stopped.set()
        for run in runs:
            if run.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(run.proc.pid, signal.SIGKILL)
                run.proc.wait(5)
        for c in calls:
            hang_up(c)
        stop(server)
        log = (work / "flood" / "server.log").read_text(errors="replace")
        print(
            f"server log: {log.count('Traceback')} tracebacks, {log.count('event=overload')} overload events"
        )
        # one line per source and limit at most every 10 s: which limit refused whom
        for line in sorted({ln.split("event=overload", 1)[1].strip() for ln in log.splitlines()
                            if "event=overload" in ln}):  # fmt: skip
            print(f"  overload: {line}")


def report(
    t0: float,
    flood_t0: float,
    flood_t1: float,
    rate: int,
    seconds: float,
    legit: int,
    calls: list[Call],
    flood_run: Sipp,
    legit_run: Sipp,
    legs_after: list[tuple[float, int]],
) -> None:
    counts = flood_run.rows("*_counts.csv")
    fl = per_second(counts, t0, counts_columns(counts))
    fs = per_second(flood_run.rows("stat.csv"), t0, {"timeout": "FailedTimeoutOnRecv(P)",
                    "fail": "FailedCall(P)"})  # fmt: skip
    lg = per_second(legit_run.rows("stat.csv"), t0, {"ok": "SuccessfulCall(P)", "fail": "FailedCall(P)"})
    secs = sorted(set(fl) | set(fs) | set(lg))
    print(f"\n== flood: {rate}/s for {seconds:.0f} s from 127.0.0.1 (SIPp), legitimate {legit}/s from "
          f"127.0.0.2, {len(calls)} established calls streaming RTP; flood from t={flood_t0:.1f} s to "
          f"t={flood_t1:.1f} s")  # fmt: skip
    heads = ("flood 503", "flood 200", "timeouts", "legit ok", "legit fail", "est. pps min")
    print(f"{'t s':>4} " + " ".join(f"{h:>12}" for h in heads))
    pps_during: list[int] = []
    for s in secs:
        f, t, g = fl.get(s, {}), fs.get(s, {}), lg.get(s, {})
        pps = [c.received.get(s, 0) for c in calls]
        if flood_t0 + 1 <= s < flood_t1 - 1:
            pps_during += pps
        row = (f.get("r503", 0), f.get("r200", 0), t.get("timeout", 0), g.get("ok", 0), g.get("fail", 0))
        print(f"{s:>4} " + " ".join(f"{v:>12}" for v in (*row, min(pps) if pps else 0)))
    in_flood = [lg[s] for s in secs if flood_t0 <= s < flood_t1 and s in lg]
    ok = sum(r.get("ok", 0) for r in in_flood)
    failed = sum(r.get("fail", 0) for r in in_flood)
    total_ok, total_failed = legit_run.totals()
    print(
        f"\nflood sent: {sum(r.get('r503', 0) + r.get('r200', 0) for r in fl.values())} answered "
        f"({sum(r.get('r503', 0) for r in fl.values())} 503, {sum(r.get('r200', 0) for r in fl.values())} "
        f"200), {sum(r.get('timeout', 0) for r in fs.values())} timed out; SIPp killed: {flood_run.killed}"
    )
    pct = 100 * failed / max(1, ok + failed)
    print(f"legitimate calls during the flood: {ok} ok, {failed} failed ({pct:.2f} %); whole run: "
          f"{total_ok} ok, {total_failed} failed; SIPp killed: {legit_run.killed}")  # fmt: skip
    causes = legit_run.failure_causes()
    if causes:
        print("legitimate failures by cause (whole run): " + ", ".join(f"{k} {v}" for k, v in causes.items()))
    if pps_during:
        print(f"established calls' received pps during the flood: min {min(pps_during)}, median "
              f"{statistics.median(pps_during):.0f} (50 expected)")  # fmt: skip
    # recovery: the first second after the flood from which every second has no failure and the full rate
    after = [s for s in secs if s >= int(flood_t1) and s in lg]
    back = None
    for i, s in enumerate(after):
        tail = after[i:]
        if tail and all(lg[x].get("fail", 0) == 0 for x in tail) and lg[s].get("ok", 0) >= 0.9 * legit:
            back = s
            break
    shown = f"{max(0.0, back - flood_t1):.1f} s" if back is not None else "not within the run"
    print(f"after the flood, the legitimate rate ran with zero failures from: {shown}")
    legs = ", ".join(f"{t:.0f}s:{n // 2}" for t, n in legs_after[:: max(1, len(legs_after) // 12)])
    final = legs_after[-1][1] // 2 if legs_after else -1
    print(f"media legs bound after the flood (s after its end: legs): {legs}; at the end {final} "
          f"(established calls: {len(calls)})")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=int, default=0, help="capacity (joins/s); 0: measure it first")
    ap.add_argument("--rates", default="200,400,600,800,1000,1200,1500", help="capacity steps")
    ap.add_argument("--step", type=float, default=4.0, help="seconds per capacity step")
    ap.add_argument("--factor", type=float, default=5.0)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--legit", type=int, default=200)
    ap.add_argument("--calls", type=int, default=3)
    args = ap.parse_args()
    sipp = shutil.which("sipp")
    if sipp is None:
        sys.exit("sipp is not installed (scripts/install-test-deps.sh)")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        cap = args.rate or capacity(sipp, work, [int(r) for r in args.rates.split(",")], args.step)
        cap = max(cap, 1)
        print(f"capacity: {cap} joins/s" + (" (given)" if args.rate else " (measured)"), flush=True)
        flood(sipp, work, int(cap * args.factor), args.seconds, args.legit, args.calls)


if __name__ == "__main__":
    main()
