"""One call's media: an RTP/RTCP port pair, a paced tone sender, an SRTP receiver that records audio."""

from __future__ import annotations

import secrets
import select
import socket
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import pylibsrtp

from .rtp import (
    KeySwitch,
    RecvStats,
    RxKeyRing,
    alaw_decode,
    build_dtmf_payload,
    build_rtcp_report,
    build_rtp,
    is_rtcp,
    parse_dtmf_payload,
    parse_rtcp_sr,
    parse_rtp,
    srtp_session,
    ulaw_decode,
    ulaw_encode,
)
from .sdp import Crypto

FRAME = 160  # samples per 20 ms at 8 kHz
PTIME = 0.020


@dataclass
class AudioFrame:
    at: float  # arrival, time.monotonic()
    ssrc: int
    seq: int
    ts: int
    samples: np.ndarray


@dataclass
class DtmfEvent:
    digit: str
    at: float
    ssrc: int
    ts: int
    duration: int = 0
    ended: bool = False


@dataclass
class _DtmfTx:
    digit: str
    start_ts: int
    duration_ms: int
    pause_ms: int
    volume: int
    sent_ms: int = 0
    ends_left: int = 3


@dataclass
class MediaStats:
    tx_packets: int = 0
    tx_rtcp: int = 0
    rx_packets: int = 0
    rx_auth_fail: int = 0
    rx_malformed: int = 0
    rx_rtcp: int = 0
    rx_rtcp_auth_fail: int = 0
    rx_dtmf_packets: int = 0
    by_ssrc: dict[int, int] = field(default_factory=dict)


def _bind_pair(ip: str) -> tuple[socket.socket, socket.socket]:
    for _ in range(200):
        a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        a.bind((ip, 0))
        port = a.getsockname()[1]
        if port % 2 or port >= 65535:
            a.close()
            continue
        b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            b.bind((ip, port + 1))
        except OSError:
            a.close()
            b.close()
            continue
        return a, b
    raise RuntimeError("no free RTP port pair")


class MediaStream:
    """Sends a PCMU tone (SRTP or plain RTP) every 20 ms on absolute deadlines; receives and records.

    Thread-safe: the SIP thread changes keys/remote/direction while the media threads run.
    """

    def __init__(
        self,
        ip: str = "127.0.0.1",
        *,
        tone_hz: float = 440.0,
        amplitude: float = 0.25,
        capture: bool = True,
        rtcp_interval: float = 1.0,
        cname: str = "uas",
        rr_only: bool = False,
    ) -> None:
        self.ip = ip
        self.tone_hz = tone_hz
        self.amplitude = amplitude
        self.capture = capture
        self.rtcp_interval = rtcp_interval
        self.cname = cname
        self.rr_only = rr_only  # RFC 3550 sends SR while sending; True forces RR (+SDES) always
        self.rtp_sock, self.rtcp_sock = _bind_pair(ip)
        self.ssrc = secrets.randbits(32)
        self.stats = MediaStats()
        self.frames: list[AudioFrame] = []
        self.captured: list[tuple[float, bytes]] = []
        self.dtmf_received: list[DtmfEvent] = []
        self.remote: tuple[str, int] | None = None
        self.remote_rtcp: tuple[str, int] | None = None
        self.pt = 0
        self.dtmf_pt: int | None = None
        self.sending = True
        self.srtp = False
        self._tx: pylibsrtp.Session | None = None
        self.tx_crypto: Crypto | None = None
        self.rx = RxKeyRing(None)
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._seq = secrets.randbits(16)
        self._ts0 = secrets.randbits(32)
        self._dtmf_queue: list[tuple[str, int, int, int]] = []  # digit, duration ms, pause ms, volume
        self._dtmf_idle = threading.Event()
        self._dtmf_idle.set()
        self._recv: dict[int, RecvStats] = {}
        self._last_sr: tuple[int, float] = (0, 0.0)
        self._sent_since_report = 0
        self._octets = 0

    # ---------------------------------------------------------------------------------------- control
    @property
    def rtp_port(self) -> int:
        return int(self.rtp_sock.getsockname()[1])

    @property
    def rtcp_port(self) -> int:
        return int(self.rtcp_sock.getsockname()[1])

    def configure(
        self,
        remote: tuple[str, int] | None,
        remote_rtcp: tuple[str, int] | None,
        *,
        tx: Crypto | None,
        rx: Crypto | None,
        srtp: bool,
        pt: int = 0,
        dtmf_pt: int | None = None,
        sending: bool = True,
    ) -> None:
        """Apply a negotiated SDP. A changed rx key becomes pending (kept until it authenticates)."""
        with self._lock:
            self.remote = remote if remote and remote[1] else None
            self.remote_rtcp = remote_rtcp
            self.pt, self.dtmf_pt, self.sending, self.srtp = pt, dtmf_pt, sending, srtp
            if srtp and tx is not None and (self.tx_crypto is None or tx.key_salt != self.tx_crypto.key_salt):
                self._tx = srtp_session(tx, outbound=True)
                self.tx_crypto = tx
            if srtp and rx is not None:
                self.rx.offer(rx)

    @property
    def key_switches(self) -> list[KeySwitch]:
        return list(self.rx.switches)

    def start(self) -> None:
        if self._threads:
            return
        for target, name in ((self._send_loop, "tx"), (self._recv_loop, "rx")):
            t = threading.Thread(target=target, name=f"uas-media-{name}-{self.rtp_port}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=2)
        self._threads.clear()
        self.rtp_sock.close()
        self.rtcp_sock.close()

    def send_dtmf(
        self, digits: str, duration_ms: int = 100, pause_ms: int = 80, volume: int = 10, wait: bool = True
    ) -> None:
        """Send digits as RFC 4733 events (needs a telephone-event PT in the peer's SDP)."""
        if self.dtmf_pt is None:
            raise RuntimeError("the peer did not offer telephone-event")
        with self._lock:
            self._dtmf_idle.clear()
            self._dtmf_queue += [(d, duration_ms, pause_ms, volume) for d in digits]
        if wait:
            self._dtmf_idle.wait(timeout=5 + len(digits) * (duration_ms + pause_ms + 80) / 1000)

    # ---------------------------------------------------------------------------------------- results
    def audio(
        self, since: float | None = None, until: float | None = None, ssrc: int | None = None
    ) -> np.ndarray:
        """Received samples in arrival order (no padding for lost packets)."""
        with self._lock:
            chunks = [
                f.samples
                for f in self.frames
                if (since is None or f.at >= since)
                and (until is None or f.at < until)
                and (ssrc is None or f.ssrc == ssrc)
            ]
        return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)

    def timeline(self, since: float | None = None, until: float | None = None) -> np.ndarray:
        """Received audio placed by arrival time (8 kHz): zeros wherever nothing arrived."""
        with self._lock:
            frames = [
                f for f in self.frames if (since is None or f.at >= since) and (until is None or f.at < until)
            ]
        if not frames:
            return np.zeros(0, dtype=np.int16)
        t0 = since if since is not None else frames[0].at - PTIME
        end = until if until is not None else frames[-1].at
        out = np.zeros(int((end - t0) * 8000) + FRAME, dtype=np.int16)
        for f in frames:
            stop = int((f.at - t0) * 8000)
            start = max(0, stop - len(f.samples))
            out[start:stop] = f.samples[len(f.samples) - (stop - start) :]
        return out

    def arrival_times(self, ssrc: int | None = None) -> list[float]:
        with self._lock:
            return [f.at for f in self.frames if ssrc is None or f.ssrc == ssrc]

    def ssrcs(self) -> list[int]:
        with self._lock:
            return list(dict.fromkeys(f.ssrc for f in self.frames))

    def digits(self) -> str:
        with self._lock:
            return "".join(e.digit for e in self.dtmf_received)

    # ---------------------------------------------------------------------------------------- sender
    def _send(self, pkt: bytes, rtcp: bool = False) -> None:
        with self._lock:
            dest = self.remote_rtcp if rtcp else self.remote
            if dest is None:
                return
            if self.srtp:
                if self._tx is None:
                    return
                pkt = self._tx.protect_rtcp(pkt) if rtcp else self._tx.protect(pkt)
        try:
            (self.rtcp_sock if rtcp else self.rtp_sock).sendto(pkt, dest)
        except OSError:
            return
        if rtcp:
            self.stats.tx_rtcp += 1
        else:
            self.stats.tx_packets += 1

    def _send_loop(self) -> None:
        w = 2 * np.pi * self.tone_hz / 8000
        n = 0  # sample clock, advances 160 per tick whatever is sent
        dtmf: _DtmfTx | None = None
        pause_ticks = 0
        next_t = time.monotonic()
        next_rtcp = next_t + self.rtcp_interval * (0.5 + secrets.randbelow(1000) / 1000)
        while not self._stop.is_set():
            now = time.monotonic()
            if next_t > now and self._stop.wait(next_t - now):
                break
            ts = self._ts0 + n
            with self._lock:
                sending = self.sending and self.remote is not None
                if dtmf is None and pause_ticks == 0:
                    if self._dtmf_queue:
                        d, dur, pause, vol = self._dtmf_queue.pop(0)
                        dtmf = _DtmfTx(d, ts, dur, pause, vol)
                    else:
                        self._dtmf_idle.set()
            if dtmf is not None and self.dtmf_pt is not None:
                dtmf.sent_ms = min(dtmf.sent_ms + 20, dtmf.duration_ms)
                end = dtmf.sent_ms >= dtmf.duration_ms
                payload = build_dtmf_payload(dtmf.digit, end, dtmf.volume, dtmf.sent_ms * 8)
                first = dtmf.sent_ms == 20 and dtmf.ends_left == 3
                self._send(build_rtp(self.dtmf_pt, self._seq, dtmf.start_ts, self.ssrc, payload, first))
                self._seq += 1
                if end:
                    dtmf.ends_left -= 1
                    if dtmf.ends_left == 0:
                        pause_ticks = max(1, dtmf.pause_ms // 20)
                        dtmf = None
            else:
                dtmf = None
                if pause_ticks:
                    pause_ticks -= 1
                if sending:
                    idx = np.arange(n, n + FRAME)
                    pcm = (np.sin(w * idx) * self.amplitude * 32767).astype(np.int16)
                    payload = ulaw_encode(pcm)
                    self._send(build_rtp(self.pt, self._seq, ts, self.ssrc, payload))
                    self._seq += 1
                    self._sent_since_report += 1
                    self._octets += len(payload)
            n += FRAME
            if now >= next_rtcp:
                self._send_report(ts)
                next_rtcp = now + self.rtcp_interval * (0.5 + secrets.randbelow(1000) / 1000)
            next_t += PTIME
            if next_t < time.monotonic() - 0.2:  # long stall: resynchronise instead of bursting
                next_t = time.monotonic()

    def _send_report(self, rtp_ts: int) -> None:
        with self._lock:
            lsr_ssrc, lsr_at = self._last_sr
            blocks = []
            for ssrc, st in list(self._recv.items())[-31:]:
                lsr = lsr_ssrc if lsr_at else 0
                dlsr = int((time.monotonic() - lsr_at) * 65536) if lsr_at else 0
                blocks.append(st.report_block(ssrc, lsr, dlsr))
            sending = self._sent_since_report and not self.rr_only
            sender = (rtp_ts, self.stats.tx_packets, self._octets) if sending else None
            self._sent_since_report = 0
        self._send(build_rtcp_report(self.ssrc, blocks, self.cname, sender), rtcp=True)

    # ---------------------------------------------------------------------------------------- receiver
    def _recv_loop(self) -> None:
        socks = [self.rtp_sock, self.rtcp_sock]
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select(socks, [], [], 0.05)
            except (OSError, ValueError):
                return
            for s in ready:
                try:
                    data, _addr = s.recvfrom(4096)
                except OSError:
                    continue
                now = time.monotonic()
                if s is self.rtcp_sock or is_rtcp(data):
                    self._on_rtcp(data, now)
                else:
                    self._on_rtp(data, now)

    def _on_rtcp(self, data: bytes, now: float) -> None:
        with self._lock:
            if self.srtp:
                plain = self.rx.unprotect(data, rtcp=True, now=now)
                if plain is None:
                    self.stats.rx_rtcp_auth_fail += 1
                    return
            else:
                plain = data
            self.stats.rx_rtcp += 1
            for _ssrc, mid in parse_rtcp_sr(plain):
                self._last_sr = (mid, now)

    def _on_rtp(self, data: bytes, now: float) -> None:
        with self._lock:
            if self.capture:
                self.captured.append((now, data))
            if self.srtp:
                plain = self.rx.unprotect(data, rtcp=False, now=now)
                if plain is None:
                    self.stats.rx_auth_fail += 1
                    return
            else:
                plain = data
            pkt = parse_rtp(plain)
            if pkt is None:
                self.stats.rx_malformed += 1
                return
            self.stats.rx_packets += 1
            self.stats.by_ssrc[pkt.ssrc] = self.stats.by_ssrc.get(pkt.ssrc, 0) + 1
            st = self._recv.get(pkt.ssrc)
            if st is None:
                st = self._recv[pkt.ssrc] = RecvStats(pkt.seq, pkt.seq)
            st.update(pkt.seq, pkt.ts, now)
            if pkt.pt in (0, 8):
                samples = ulaw_decode(pkt.payload) if pkt.pt == 0 else alaw_decode(pkt.payload)
                self.frames.append(AudioFrame(now, pkt.ssrc, pkt.seq, pkt.ts, samples))
                return
            ev = parse_dtmf_payload(pkt.payload)
            if ev is None:
                return
            self.stats.rx_dtmf_packets += 1
            digit, end, _vol, duration = ev
            for e in reversed(self.dtmf_received[-8:]):
                if e.ssrc == pkt.ssrc and e.ts == pkt.ts:
                    e.duration = max(e.duration, duration)
                    e.ended = e.ended or end
                    return
            self.dtmf_received.append(DtmfEvent(digit, now, pkt.ssrc, pkt.ts, duration, end))
