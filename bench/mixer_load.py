"""Shared pieces of the mixer benchmarks (not a test): the imsconf mixer process and the load generator.

* :func:`imsconf_main` runs the real media plane (MediaEngine + UdpMediaTransport: one connected socket
  per leg, rtcp-mux, timed socket drains) in its own process, pinned to CPU 1.
* :func:`generator_main` is the phones, in another process on CPU 0: N sockets, each sending 50
  packets/s of PCMU or a wideband codec (pre-protected SRTP, AES_CM_128_HMAC_SHA1_80, or plain RTP),
  spread over the 20 ms period in bursts. Most sockets never read (their receive buffers are at the
  kernel minimum, so the phones cost no reader); a sample of them do, timestamping each packet to check
  what the participants get.
"""

from __future__ import annotations

import asyncio
import gc
import os
import resource
import select
import socket
import threading
import time
from multiprocessing.connection import Connection

import numpy as np

from imsconf.app.heap import realtime_priority, settle_heap
from imsconf.media.codec_port import negotiated_codec
from imsconf.media.control import LocalMediaControl
from imsconf.media.engine import Direction, LegConfig, MediaEngine
from imsconf.media.g711 import ulaw_encode
from imsconf.media.rtp import pack_rtp_header
from imsconf.media.srtp import SrtpKeys, SrtpSender
from imsconf.media.udp import UdpMediaTransport

SUITE = "AES_CM_128_HMAC_SHA1_80"
TICK = 0.020
SLOTS = 10  # the generator spreads each 20 ms period over this many send bursts
CLK = os.sysconf("SC_CLK_TCK")
# codec -> (payload type, a=rtpmap name, RTP clock); Opus: 16 kHz audio inside, the RTP clock of RFC 7587;
# G.722: 16 kHz audio, the 8000 Hz clock of RFC 3551
CODECS = {
    "pcmu": (0, "PCMU", 8000),
    "opus": (111, "opus", 48000),
    "amr-wb": (100, "AMR-WB", 16000),
    "g722": (9, "G722", 8000),
}
TALKERS = 3  # codec phones: the legs per conference that talk (the others send encoded silence)


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


def proc_cpu(pid: int) -> float:
    """CPU seconds (user + system, all threads) of a process."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def core_busy(cpu: int) -> float:
    """Busy seconds of one CPU so far (everything but idle and iowait)."""
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith(f"cpu{cpu} "):
                v = [int(x) for x in line.split()[1:]]
                return (sum(v[:8]) - v[3] - v[4]) / CLK
    return 0.0


def conference_of(i: int, layout: str) -> str:
    return "c0" if layout == "one" else f"c{i // 5}"


# --------------------------------------------------------------------------------- imsconf mixer


def set_nice(nice: int) -> str:
    """Raise the scheduling priority (as a media server deployment would): this VM is shared, and a
    competing process on the mixer's core otherwise delays ticks by whole scheduler slices."""
    rt = int(os.environ.get("BENCH_RT", "0"))
    # media_realtime_priority, as `imsconf mixer` applies it (FreeSWITCH -rp, Asterisk -p do the same)
    if rt and realtime_priority(rt):
        return f" SCHED_RR {rt}"
    if nice:
        try:
            os.setpriority(os.PRIO_PROCESS, 0, nice)
        except OSError:
            return ""
    return f" nice {nice}" if nice else ""


def imsconf_main(
    conn: Connection, n: int, layout: str, plain: bool, port_base: int, nice: int = 0, codec: str = "pcmu"
) -> None:
    """Mixer process. Protocol: send ports; recv (remote addrs, keys); send "ready"; recv "window" ->
    reset the window; recv "report" -> send the window's figures; recv "stop"."""
    where = pin(1) + set_nice(nice)
    raise_nofile()
    # The production event loop (uvloop, as `imsconf serve` / `imsconf mixer`); BENCH_LOOP=asyncio: stock.
    runner = asyncio.run
    if os.environ.get("BENCH_LOOP", "uvloop") == "uvloop":
        import uvloop

        runner = uvloop.run
    runner(_imsconf(conn, n, layout, plain, port_base, where, codec))


async def _imsconf(
    conn: Connection, n: int, layout: str, plain: bool, port_base: int, where: str, codec: str
) -> None:
    loop = asyncio.get_running_loop()
    engine = MediaEngine(allow_plain_rtp=plain)
    transport = UdpMediaTransport(engine, "127.0.0.1", port_base, port_base + 4 * n + 1000)
    control = LocalMediaControl(engine, transport, now=transport.now)
    transport.after_tick = control.deliver_events
    ports = [
        control.allocate_leg(conference_of(i, layout), f"l{i}", rtcp_mux=True).rtp_port for i in range(n)
    ]
    conn.send(ports)
    remote_addrs, keys = conn.recv()
    for i in range(n):
        tx = rx = None
        if keys is not None:
            (tx_key, tx_salt), (rx_key, rx_salt) = keys[i]
            tx, rx = SrtpKeys(SUITE, tx_key, tx_salt), SrtpKeys(SUITE, rx_key, rx_salt)
        if codec == "pcmu":
            control.configure_leg(
                f"l{i}",
                remote_rtp=tuple(remote_addrs[i]),
                remote_rtcp=None,
                codec_pt=0,
                codec_name="PCMU",
                dtmf_pt=101,
                tx_keys=tx,
                rx_keys=rx,
                direction=Direction.SENDRECV,
            )
        else:  # a codec leg, as the focus configures one after choosing it from the SDP
            pt, name, clock = CODECS[codec]
            remote = tuple(remote_addrs[i])
            cfg = LegConfig(remote, None, pt, name, 101, Direction.SENDRECV, codec_clock=clock)
            engine.configure_leg(f"l{i}", cfg, tx, rx)
    # As `imsconf mixer` runs: the production heap policy (BENCH_GC=off: the interpreter's defaults).
    if os.environ.get("BENCH_GC", "settle") != "off":
        settle_heap()
    transport.start()
    where += ", C per-packet path" if engine.c_path else ", Python per-packet path"
    conn.send(("ready", os.getpid(), where))

    def received() -> int:
        return sum(engine.leg_stats(f"l{i}").received for i in range(n))

    st = transport.stats
    rx0 = 0
    t0 = 0.0
    # Cyclic-GC pauses inside the window (a pause lands on the tick or on a drain).
    gc_pauses: list[tuple[int, float]] = []
    gc_start = [0.0]

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            gc_start[0] = time.perf_counter()
        else:
            gc_pauses.append((info["generation"], time.perf_counter() - gc_start[0]))

    gc.callbacks.append(on_gc)
    profile_to = os.environ.get("BENCH_PROFILE")  # a file: cProfile of the measurement window
    prof = None
    while True:
        cmd = await loop.run_in_executor(None, conn.recv)
        if cmd == "window":
            if profile_to:
                import cProfile

                cpu_clock = os.environ.get("BENCH_PROFILE_CPU")  # CPU time (incl. the kernel's), not wall
                prof = cProfile.Profile(time.process_time) if cpu_clock else cProfile.Profile()
                prof.enable()
            # received() walks every leg (≈8 µs each: 16 ms at N=2000) and holds the loop meanwhile: do it
            # before the window, and let the tick it delayed run before the window opens.
            rx0, t0 = received(), loop.time()
            await asyncio.sleep(0.1)
            gc_pauses.clear()
            st.reset_window()
            st.keep = 100_000
        elif cmd == "report":
            if prof is not None:
                prof.disable()
                prof.dump_stats(profile_to)
                prof = None
            wall = loop.time() - t0
            d = np.array(st.durations or [0.0]) * 1000
            conn.send(
                {
                    "p50": float(np.percentile(d, 50)),
                    "p99": float(np.percentile(d, 99)),
                    "lag99": float(np.percentile(np.array(st.lags or [0.0]) * 1000, 99)),
                    "lagmax": float(max(st.lags or [0.0]) * 1000),
                    "workmax": float(d.max()),
                    "gcs": len(gc_pauses),
                    "gcmax": 1000 * max((p for _, p in gc_pauses), default=0.0),
                    "late": st.late,
                    "skipped": st.skipped,
                    "rx_ratio": (received() - rx0) / (n * wall / TICK),
                    "decrypt_failed": sum(engine.leg_stats(f"l{i}").decrypt_failed for i in range(n)),
                    "send_dropped": st.send_dropped,
                }
            )
        else:
            break
    transport.close()


# --------------------------------------------------------------------------------- load generator


def codec_payloads(codec: str, n: int, layout: str, frames: int) -> list[list[bytes]]:
    """RTP payloads of *codec* (the project's codec objects with their defaults: Opus 16 kHz 24 kbit/s
    with in-band FEC, AMR-WB 23.85 octet-aligned, G.722 64 kbit/s) for *n* phones: the first
    :data:`TALKERS` legs of each conference send a tone (one of 50, each a whole number of cycles per
    lap), the others silence. Encoded once per distinct stream: the phones are not what is measured."""
    _, name, clock = CODECS[codec]
    per_conf = n if layout == "one" else 5
    streams: dict[int, list[bytes]] = {}
    out = []
    for i in range(n):
        key = -1 if i % per_conf >= TALKERS else i % 50
        if key not in streams:
            enc = negotiated_codec(name, clock, {})
            fs = enc.frame_samples
            t = np.arange(fs * frames) / enc.sample_rate
            amp = 0 if key < 0 else 300 + (key * 7919) % 6000
            pcm = np.round(amp * np.sin(2 * np.pi * (300 + max(key, 0) * 50) * t)).astype(np.int16)
            streams[key] = [enc.encode(pcm[fs * k : fs * (k + 1)]) for k in range(frames)]
        out.append(streams[key])
    return out


def generator_main(conn: Connection, n: int, sample: int, codec: str = "pcmu", layout: str = "one") -> None:
    """Phones. Protocol: send local addrs; recv (dest addrs, keys or None); send "ready"; recv
    (seconds, window_start, window_end) and run; send the report."""
    pin(0)
    raise_nofile()
    socks = []
    sampled = set(np.linspace(0, n - 1, min(sample, n)).astype(int).tolist()) if sample else set()
    for i in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        if i not in sampled:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)  # never read: keep the queue minimal
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    conn.send([s.getsockname() for s in socks])
    dests, keys = conn.recv()
    pt, _, clock = CODECS[codec]
    ts_step = clock // 50
    payloads: list[list[bytes]] = []
    if codec != "pcmu":
        frames = 50  # 1 s of audio, repeated
        payloads = codec_payloads(codec, n, layout, frames)
    else:
        frames = 600  # 12 s of audio, repeated (SRTP: the sequence keeps counting, so re-protect per lap)
        t = np.arange(160 * frames) / 8000
        for i in range(n):
            amp = 300 + (i * 7919) % 6000  # distinct loudness per leg, so the K loudest are stable
            pcm = np.round(amp * np.sin(2 * np.pi * (300 + (i % 50) * 50) * t)).astype(np.int16)
            payloads.append([ulaw_encode(pcm[160 * k : 160 * (k + 1)]) for k in range(frames)])
    senders = [SrtpSender(SrtpKeys(SUITE, *keys[i])) for i in range(n)] if keys is not None else None
    for i, s in enumerate(socks):
        if i not in sampled:
            s.connect(tuple(dests[i]))
    conn.send("ready")
    seconds, w0, w1 = conn.recv()
    arrivals: dict[int, list[float]] = {i: [] for i in sampled}
    stop = threading.Event()

    def reader() -> None:
        by_fd = {socks[i].fileno(): i for i in sampled}
        ep = select.epoll()
        for fd in by_fd:
            ep.register(fd, select.EPOLLIN)
        while not stop.is_set():
            for fd, _ in ep.poll(0.05):
                i = by_fd[fd]
                try:
                    socks[i].recv(2048)
                except OSError:
                    continue
                arrivals[i].append(time.monotonic())
        ep.close()

    th = threading.Thread(target=reader, daemon=True)
    th.start()
    slot_legs = [range(s * n // SLOTS, (s + 1) * n // SLOTS) for s in range(SLOTS)]
    t0 = time.monotonic()
    dropped = behind = 0
    sends = [socks[i].send if i not in sampled else None for i in range(n)]
    dest_t = [tuple(d) for d in dests]
    for k in range(int(seconds / TICK)):
        f = k % frames
        for s, legs in enumerate(slot_legs):
            delay = t0 + k * TICK + s * TICK / SLOTS - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            elif delay < -0.010:
                behind += 1
            for i in legs:
                pkt = pack_rtp_header(pt, k & 0xFFFF, (ts_step * k) & 0xFFFFFFFF, 0x1000 + i) + payloads[i][f]
                if senders is not None:
                    pkt = senders[i].protect(pkt)
                snd = sends[i]
                try:
                    if snd is not None:
                        snd(pkt)
                    else:
                        socks[i].sendto(pkt, dest_t[i])
                except OSError:
                    dropped += 1
    stop.set()
    th.join()
    rates, p99s = [], []
    for ts in arrivals.values():
        a = np.array([x for x in ts if t0 + w0 <= x <= t0 + w1])
        rates.append(len(a) / (w1 - w0))
        p99s.append(float(np.percentile(np.diff(a), 99)) * 1000 if len(a) > 2 else float("inf"))
    conn.send(
        {
            "gen_dropped": dropped,
            "gen_behind": behind,
            "min_pps": min(rates) if rates else float("nan"),
            "max_p99_ia": max(p99s) if p99s else float("nan"),
        }
    )
    for s in socks:
        s.close()
