"""Janus AudioBridge vs the imsconf mixer, side by side in one run (not a test).

Both mixers run pinned to CPU 1 (nice -10, as in mixer_capacity.py), one after the other, with the same
load generator (``mixer_load.generator_main``, CPU 0): plain RTP PCMU, 20 ms, 50 packets/s per
participant, and a sample of participants reading what the mixer sends them. Janus cannot decrypt SRTP
from plain-RTP participants in this setup, so the comparison is plain RTP; imsconf therefore runs with
``allow_plain_rtp=True`` (security relaxed: no SRTP) for this half. imsconf's SRTP capacity
(AES_CM_128_HMAC_SHA1_80, nothing relaxed) is measured in the same run and printed beside it.

Capacity = the largest N where the mixer stays under 100 % of its core and every sampled participant
receives >= 49 packets/s with a p99 inter-arrival under 40 ms (for imsconf also: no late ticks).

Janus 1.1.2 is started by this script from a copy of /etc/janus in a temporary directory (HTTP transport
on 127.0.0.1, unused plugins and transports disabled, audiobridge bound to 127.0.0.1), one fresh process
per step, and stopped by PID. Rooms are created with ``allow_rtp_participants`` and the room rate given
by ``--janus-rate`` (8000 by default: no resampling for PCMU); each participant is a handle that joins
with ``"codec": "pcmu"`` and an ``rtp`` block naming its generator socket.

With ``--codec opus`` every participant speaks Opus (RFC 7587: RTP clock 48000, payload type 111; 16 kHz
audio at 24 kbit/s with in-band FEC), only three per conference talk (the others send encoded silence),
Janus rooms run at 16 kHz (``--janus-rate``; Janus decodes and encodes Opus for each participant, its home
ground), and imsconf runs with SRTP on (nothing relaxed: its Opus legs as the focus configures them, one
encode per listener group) against Janus on plain RTP. ``--codec g722`` and ``--codec amr-wb`` measure
imsconf alone (Janus 1.1's AudioBridge takes Opus, PCMU and PCMA only).

Like with like, Opus (``--janus-opus matched``, the default): each Janus participant joins with the
encoder settings imsconf's ``OpusSettings`` gives its own encoders: ``quality`` (libopus complexity) 5,
``bitrate`` 24000, ``expected_loss`` 10 and ``"fec": true`` in the ``rtp`` block. Janus 1.1.2's own
defaults (``--janus-opus defaults``) are complexity 4 (the join option is named ``quality``;
``DEFAULT_COMPLEXITY`` in ``janus_audiobridge.c``), libopus's automatic bitrate, and no FEC
(``expected_loss`` 0). Both encode 20 ms frames at 16 kHz (Janus: the room's ``sampling_rate``, its
encoders capped at WIDEBAND) with OPUS_APPLICATION_VOIP, mono; both get the same packets from the same
generator (3 talkers per conference, the others encoded silence, none DTX). What still differs, by
design: Janus decodes every participant's packet on arrival and encodes one frame per participant per
tick (its mix minus the participant's own contribution, in a thread per participant, silent or not);
imsconf decodes every leg, mixes the loudest three and encodes once per distinct mix (each speaker's
N-1, one frame for all its listeners). Janus sums every participant, imsconf the three loudest.
Transport: imsconf SRTP (AES_CM_128_HMAC_SHA1_80), Janus plain RTP.

    .venv/bin/python bench/janus_compare.py
    .venv/bin/python bench/janus_compare.py --janus-sizes 200,300,400,500 --imsconf-sizes 1500,2000,2500
    .venv/bin/python bench/janus_compare.py --codec opus --janus-sizes 50,100,150 --imsconf-sizes 200,300,400
"""

# ruff: noqa: E501  (benchmark output lines)
from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from mixer_capacity import capacity
from mixer_load import CODECS, TALKERS, TICK, core_busy, generator_main, proc_cpu

from imsconf.media.codecs.opus import OpusSettings

PLUGINS = Path("/usr/lib/x86_64-linux-gnu/janus/plugins")
TRANSPORTS = Path("/usr/lib/x86_64-linux-gnu/janus/transports")
NICE = -10


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Janus:
    """One Janus process with its own config copy; HTTP API over urllib."""

    def __init__(self, workdir: Path, rtp_range: str) -> None:
        self.http_port = free_port()
        etc = workdir / "etc"
        if etc.exists():
            shutil.rmtree(etc)
        shutil.copytree("/etc/janus", etc)
        keep_plugins = {"libjanus_audiobridge.so"}
        keep_transports = {"libjanus_http.so"}
        off_p = ",".join(p.name for p in PLUGINS.glob("*.so") if p.name not in keep_plugins)
        off_t = ",".join(p.name for p in TRANSPORTS.glob("*.so") if p.name not in keep_transports)
        cfg = (etc / "janus.jcfg").read_text()
        cfg = cfg.replace('#disable = "libjanus_voicemail.so,libjanus_recordplay.so"', f'disable = "{off_p}"')
        cfg = cfg.replace('#disable = "libjanus_rabbitmq.so"', f'disable = "{off_t}"')
        cfg = cfg.replace("#session_timeout = 60", "session_timeout = 0")
        (etc / "janus.jcfg").write_text(cfg)
        http = (etc / "janus.transport.http.jcfg").read_text()
        http = http.replace("port = 8088", f"port = {self.http_port}")
        http = http.replace('#ip = "192.168.0.1"', 'ip = "127.0.0.1"', 1)
        (etc / "janus.transport.http.jcfg").write_text(http)
        ab = (etc / "janus.plugin.audiobridge.jcfg").read_text()
        ab = ab.replace('#rtp_port_range = "50000-60000"', f'rtp_port_range = "{rtp_range}"')
        ab = ab.replace('#local_ip = "1.2.3.4"', 'local_ip = "127.0.0.1"')
        (etc / "janus.plugin.audiobridge.jcfg").write_text(ab)
        self.log = open(workdir / "janus.log", "w")  # noqa: SIM115
        self.proc = subprocess.Popen(
            ["taskset", "-c", "1", "janus", "-F", str(etc), "-i", "127.0.0.1", "-r", "20000-20100"],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            os.setpriority(os.PRIO_PROCESS, self.proc.pid, NICE)
        except OSError:
            pass
        realtime_threads(self.proc.pid)
        self.base = f"http://127.0.0.1:{self.http_port}/janus"
        self.events: dict[int, list[dict[str, Any]]] = {}
        self.cond = threading.Condition()
        self._stop = False
        for _ in range(100):
            try:
                urllib.request.urlopen(f"{self.base}/info", timeout=1).read()
                break
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(
                        f"janus exited ({self.proc.returncode}); see {workdir}/janus.log"
                    ) from None
                time.sleep(0.1)
        else:
            raise RuntimeError("janus did not answer on HTTP")
        self.session = self.post(self.base, {"janus": "create"})["data"]["id"]
        self.poller = threading.Thread(target=self._poll, daemon=True)
        self.poller.start()

    def post(self, url: str, body: dict[str, Any]) -> dict[str, Any]:
        body = {**body, "transaction": os.urandom(6).hex()}
        req = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            out: dict[str, Any] = json.loads(r.read())
        if out.get("janus") == "error":
            raise RuntimeError(f"janus error: {out}")
        return out

    def _poll(self) -> None:
        while not self._stop:
            try:
                with urllib.request.urlopen(f"{self.base}/{self.session}?maxev=50", timeout=35) as r:
                    evs = json.loads(r.read())
            except (OSError, ValueError, http.client.HTTPException):
                if self._stop:
                    return
                time.sleep(0.1)
                continue
            for ev in evs if isinstance(evs, list) else [evs]:
                sender = ev.get("sender")
                if sender is not None:
                    with self.cond:
                        self.events.setdefault(sender, []).append(ev)
                        self.cond.notify_all()

    def attach(self) -> int:
        out = self.post(
            f"{self.base}/{self.session}", {"janus": "attach", "plugin": "janus.plugin.audiobridge"}
        )
        return int(out["data"]["id"])

    def message(self, handle: int, body: dict[str, Any]) -> dict[str, Any]:
        return self.post(f"{self.base}/{self.session}/{handle}", {"janus": "message", "body": body})

    def join_rtp(
        self, handle: int, room: int, port: int, codec: str = "pcmu", opus: dict[str, Any] | None = None
    ) -> int:
        """Join a plain-RTP participant (PCMU or Opus); returns the port Janus receives its RTP on.
        ``opus``: the encoder's join options (``quality``, ``bitrate``, ``expected_loss``; ``fec`` goes in
        the ``rtp`` block), None: Janus's defaults."""
        rtp: dict[str, Any] = {"ip": "127.0.0.1", "port": port, "payload_type": CODECS[codec][0]}
        body: dict[str, Any] = {"request": "join", "room": room, "codec": codec, "rtp": rtp}
        if opus is not None:
            body.update({k: v for k, v in opus.items() if k != "fec"})
            rtp["fec"] = bool(opus.get("fec"))
        self.message(handle, body)
        deadline = time.monotonic() + 10
        with self.cond:
            while time.monotonic() < deadline:
                for ev in self.events.get(handle, []):
                    data = ev.get("plugindata", {}).get("data", {})
                    if data.get("audiobridge") == "joined" and "rtp" in data:
                        return int(data["rtp"]["port"])
                    if "error" in data:
                        raise RuntimeError(f"join failed: {data}")
                self.cond.wait(0.5)
        raise RuntimeError("no joined event from janus")

    def close(self) -> None:
        self._stop = True
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.log.close()


def janus_step(
    workdir: Path,
    n: int,
    layout: str,
    rate: int,
    warm: float,
    measure: float,
    codec: str = "pcmu",
    opus: dict[str, Any] | None = None,
) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    g_parent, g_child = ctx.Pipe()
    gen = ctx.Process(target=generator_main, args=(g_child, n, 16, codec, layout))
    gen.start()
    janus = None
    try:
        addrs = g_parent.recv()
        janus = Janus(workdir, "21000-29999")
        rooms = 1 if layout == "one" else (n + 4) // 5
        admin = janus.attach()
        for r in range(rooms):
            janus.message(
                admin,
                {
                    "request": "create",
                    "room": 1000 + r,
                    "allow_rtp_participants": True,
                    "sampling_rate": rate,
                },
            )
        dests = []
        for i in range(n):
            h = janus.attach()
            room = 1000 + (0 if layout == "one" else i // 5)
            dests.append(("127.0.0.1", janus.join_rtp(h, room, addrs[i][1], codec, opus)))
        g_parent.send((dests, None))
        assert g_parent.recv() == "ready"
        g_parent.send((warm + measure + 0.5, warm, warm + measure))
        realtime_threads(janus.proc.pid)  # again: the threads made for the participants
        time.sleep(warm)
        c0, w0 = proc_cpu(janus.proc.pid), time.monotonic()
        b0 = core_busy(1)
        time.sleep(measure)
        c1, w1, b1 = proc_cpu(janus.proc.pid), time.monotonic(), core_busy(1)
        r: dict[str, Any] = g_parent.recv()
        r["cpu"] = (c1 - c0) / (w1 - w0)
        r["foreign"] = max(0.0, (b1 - b0) - (c1 - c0)) / (w1 - w0)
        return r
    finally:
        if janus is not None:
            janus.close()
        gen.join(15)
        if gen.is_alive():
            gen.kill()
            gen.join()


def realtime_threads(pid: int) -> None:
    """Give every thread of a process the same SCHED_RR priority the imsconf mixer gets (BENCH_RT)."""
    prio = int(os.environ.get("BENCH_RT", "0"))
    if not prio:
        return
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            os.sched_setscheduler(int(tid), os.SCHED_RR, os.sched_param(prio))
        except OSError:
            pass


# Janus 1.1.2's AudioBridge when a join names none of these: complexity ("quality") 4, libopus's automatic
# bitrate, in-band FEC off (expected_loss 0), a 20 ms frame, the room's rate (WIDEBAND at 16 kHz).
JANUS_DEFAULTS = "Janus defaults (quality 4, bitrate auto, FEC off)"


def matched_opus() -> dict[str, Any]:
    """Janus join options that set its per-participant Opus encoder as imsconf sets its own."""
    s = OpusSettings()
    return {
        "quality": s.complexity,
        "bitrate": s.bitrate,
        "expected_loss": min(s.loss_percent, 20),
        "fec": s.fec,
    }


def imsconf_opus() -> str:
    s = OpusSettings()
    return f"complexity {s.complexity}, {s.bitrate} bit/s, FEC {'on' if s.fec else 'off'} ({s.loss_percent} % loss), {s.sample_rate} Hz, 20 ms"


def janus_passes(r: dict[str, Any]) -> bool:
    return bool(r["cpu"] < 1.0 and r["min_pps"] >= 49 and r["max_p99_ia"] < 40)


def janus_capacity(
    workdir: Path,
    layouts: list[str],
    sizes: list[int],
    rate: int,
    warm: float,
    measure: float,
    codec: str = "pcmu",
    opus: dict[str, Any] | None = None,
    repeat: int = 1,
) -> dict[str, int]:
    """Step N per layout, ``repeat`` fresh Janus runs per step: the step passes on the runs' median
    figures and on a majority of them (as ``mixer_capacity.capacity`` judges imsconf)."""
    out = {}
    print(
        f"{'layout':7} {'N':>5} {'cpu%':>6} {'us/leg-tick':>11} {'min pps':>7} {'ia99 ms':>7} {'other%':>6}  verdict"
    )
    for layout in layouts:
        best = 0
        for n in sizes:
            try:
                runs = [
                    janus_step(workdir, n, layout, rate, warm, measure, codec, opus) for _ in range(repeat)
                ]
            except RuntimeError as exc:
                print(f"{layout:7} {n:>5}  janus failed: {exc}")
                break
            r = {
                k: statistics.median(x[k] for x in runs) for k in ("cpu", "min_pps", "max_p99_ia", "foreign")
            }
            marks = "".join("+" if janus_passes(x) else "-" for x in runs)
            ok = janus_passes(r) and marks.count("+") * 2 > len(runs)
            print(
                f"{layout:7} {n:>5} {100 * r['cpu']:>6.1f} {r['cpu'] * TICK * 1e6 / n:>11.2f} {r['min_pps']:>7.1f} "
                f"{r['max_p99_ia']:>7.1f} {100 * r['foreign']:>6.1f}  {'PASS' if ok else 'FAIL'} ({marks})",
                flush=True,
            )
            if not ok:
                break
            best = n
        out[layout] = best
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--janus-sizes", default="200,300,400,500,600")
    ap.add_argument("--imsconf-sizes", default="1000,1500,2000,2500,3000")
    ap.add_argument("--srtp-sizes", default="1000,1500")
    ap.add_argument("--layouts", default="one,fives")
    ap.add_argument("--codec", choices=sorted(CODECS), default="pcmu")
    ap.add_argument(
        "--janus-rate", type=int, default=0, help="room sampling rate (default: 8000 PCMU, 16000 Opus)"
    )
    ap.add_argument("--warm", type=float, default=2.0)
    ap.add_argument("--measure", type=float, default=3.0)
    ap.add_argument("--repeat", type=int, default=1, help="imsconf runs per step (median)")
    ap.add_argument("--janus-repeat", type=int, default=1, help="Janus runs per step (median)")
    ap.add_argument(
        "--realtime",
        type=int,
        default=10,
        help="SCHED_RR priority for both mixers (every Janus thread; imsconf's media_realtime_priority); 0: nice",
    )
    ap.add_argument(
        "--janus-opus",
        choices=("matched", "defaults"),
        default="matched",
        help="Janus's Opus encoders: matched to imsconf's OpusSettings (complexity, bitrate, FEC) or Janus's own defaults",
    )
    args = ap.parse_args()
    rate = args.janus_rate or (8000 if args.codec == "pcmu" else 16000)
    opus = matched_opus() if args.codec == "opus" and args.janus_opus == "matched" else None
    os.environ["BENCH_RT"] = str(args.realtime)
    layouts = args.layouts.split(",")
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs; mixers on CPU 1 (SCHED_RR {args.realtime} if > 0, "
        f"else nice {NICE}), generator on CPU 0"
    )
    janus: dict[str, int] | None = None
    why = ""
    if args.codec not in ("pcmu", "opus"):
        why = f"Janus's AudioBridge has no {args.codec} (it takes opus, pcmu and pcma)"
    elif shutil.which("janus") is None or not (PLUGINS / "libjanus_audiobridge.so").exists():
        why = "janus (with the audiobridge plugin) is not installed: apt-get install -y janus"
    else:
        talk = f", {TALKERS} talkers per conference" if args.codec != "pcmu" else ""
        print(f"\n== Janus AudioBridge, plain RTP {args.codec} participants{talk}, {rate} Hz rooms")
        if args.codec == "opus":
            print(f"# Janus Opus encoders: {opus if opus else JANUS_DEFAULTS}; imsconf: {imsconf_opus()}")
        with tempfile.TemporaryDirectory(prefix="janus-bench-") as d:
            try:
                janus = janus_capacity(
                    Path(d),
                    layouts,
                    [int(x) for x in args.janus_sizes.split(",")],
                    rate,
                    args.warm,
                    args.measure,
                    args.codec,
                    opus,
                    args.janus_repeat,
                )
            except (OSError, RuntimeError) as exc:
                why = f"janus could not be run: {exc}"
    if why:
        print(f"\n!! {why}; running the imsconf half only")
    if args.codec != "pcmu":
        print(f"\n== imsconf, SRTP {args.codec} legs (nothing relaxed)")
        srtp_codec = capacity(
            layouts,
            [int(x) for x in args.imsconf_sizes.split(",")],
            False,
            args.repeat,
            args.warm,
            args.measure,
            40000,
            codec=args.codec,
        )
        print(f"\nparticipants per core, {args.codec} (largest passing N; the last step is the resolution)")
        print(f"{'layout':7} {'Janus plain':>12} {'imsconf SRTP':>13} {'ratio':>6}")
        for layout in layouts:
            j = janus.get(layout, 0) if janus else None
            p = srtp_codec[layout]
            ratio = f"{p / j:.1f}x" if j else "n/a"
            print(f"{layout:7} {j if j is not None else 'n/a':>12} {p:>13} {ratio:>6}")
        return
    print("\n== imsconf, plain RTP PCMU (allow_plain_rtp=True: SRTP relaxed for the comparison)")
    plain = capacity(
        layouts,
        [int(x) for x in args.imsconf_sizes.split(",")],
        True,
        args.repeat,
        args.warm,
        args.measure,
        40000,
    )
    print("\n== imsconf, SRTP AES_CM_128_HMAC_SHA1_80 (nothing relaxed)")
    srtp = capacity(
        layouts,
        [int(x) for x in args.srtp_sizes.split(",")],
        False,
        args.repeat,
        args.warm,
        args.measure,
        40000,
    )
    print("\nparticipants per core (largest passing N; the last step is the resolution)")
    print(f"{'layout':7} {'Janus plain':>12} {'imsconf plain':>14} {'ratio':>6} {'imsconf SRTP':>13}")
    for layout in layouts:
        j = janus.get(layout, 0) if janus else None
        p, s = plain[layout], srtp[layout]
        ratio = f"{p / j:.1f}x" if j else "n/a"
        print(f"{layout:7} {j if j is not None else 'n/a':>12} {p:>14} {ratio:>6} {s:>13}")


if __name__ == "__main__":
    main()
