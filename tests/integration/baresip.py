"""A real phone for tests: baresip 1.0.0, headless, TLS + mandatory SDES-SRTP, driven over ctrl_tcp.

Usage::

    pki = make_test_pki(tmp / "pki")      # or the server's D/pki/{ca.pem,server-combined.pem}
    tone = write_tone_wav(tmp / "440.wav", 440, seconds=90)
    with BaresipPhone("alice", tmp / "a", tone_wav=tone, ca_pem=pki.ca, cert_combined_pem=pki.combined) as a:
        a.dial("sip:bob@127.0.0.1:5063")                   # the account adds ;transport=tls itself
        a.wait_event("CALL_ESTABLISHED", 10)
        a.hangup()
        a.wait_event("CALL_CLOSED", 5)
    a.dec_wavs()                                           # what alice heard (sndfile: dump-*-dec.wav)

Ports are picked at runtime (SIP P for UDP/TCP, P+1 for TLS, a ctrl_tcp port, a small RTP range) unless given.
ctrl_tcp events are collected by a background thread; every event gets ``_t`` = time.monotonic() at receipt.
A BYE from the peer shows up as ``CALL_CLOSED`` with param ``Connection reset by peer`` in baresip 1.0.0.
Only the process started here is ever signalled, by its PID.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import free_port_pair

from peers import require_peer

__all__ = ["BaresipError", "BaresipPhone", "Pki", "free_tcp_port", "free_udp_range", "make_test_pki"]

Event = dict[str, Any]
ANSI = re.compile(r"\x1b\[[0-9;]*m")

MODULES = ("g711.so", "aubridge.so", "aufile.so", "sndfile.so", "srtp.so")
MODULES_TMP = ("uuid.so", "account.so")
MODULES_APP = ("contact.so", "menu.so", "ctrl_tcp.so")


class BaresipError(AssertionError):
    pass


def free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_claimed_ranges: list[tuple[int, int]] = []
_claim_lock = threading.Lock()


def _media_port_area() -> tuple[int, int]:
    """Ports outside the kernel's ephemeral range (no client socket of another test can take them there):
    the larger of the areas above and below it (ranges handed out are never given back within a test
    process, so the area must hold the whole suite's), else a middle area."""
    try:
        eph_lo, eph_hi = (int(v) for v in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        return 40000, 60000
    above, below = (eph_hi + 1, 65000), (10000, eph_lo - 1)
    best = max(above, below, key=lambda r: r[1] - r[0])
    return best if best[1] - best[0] >= 2000 else (40000, 60000)


def free_udp_range(count: int, lo: int | None = None, hi: int | None = None) -> tuple[int, int]:
    """A range of *count* consecutive UDP ports on 127.0.0.1 that bind now and were not handed out before in
    this process (baresip and the server bind RTP ports lazily, so two ranges must never overlap)."""
    area_lo, area_hi = _media_port_area()
    lo = area_lo if lo is None else lo
    hi = area_hi if hi is None else hi
    rng = random.Random(os.getpid() ^ time.monotonic_ns())
    for _ in range(500):
        base = rng.randrange(lo, hi - count) & ~1
        rng_ = (base, base + count - 1)
        with _claim_lock:
            if any(not (rng_[1] < a or rng_[0] > b) for a, b in _claimed_ranges):
                continue
        socks: list[socket.socket] = []
        try:
            for p in range(rng_[0], rng_[1] + 1):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind(("127.0.0.1", p))
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
        with _claim_lock:
            _claimed_ranges.append(rng_)
        return rng_
    raise RuntimeError(f"no free range of {count} UDP ports")


@dataclass(frozen=True)
class Pki:
    ca: Path
    combined: Path  # certificate + private key in one PEM (what baresip's sip_certificate wants)


def make_test_pki(directory: Path, cn: str = "127.0.0.1") -> Pki:
    """A throw-away self-signed CA+leaf in one (baresip 1.0.0 does not verify the peer certificate anyway)."""
    directory.mkdir(parents=True, exist_ok=True)
    key, crt = directory / "key.pem", directory / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(crt), "-days", "2", "-subj", f"/CN={cn}",
         "-addext", f"subjectAltName=IP:{cn}"],
        check=True, capture_output=True,
    )  # fmt: skip
    combined = directory / "combined.pem"
    combined.write_bytes(crt.read_bytes() + key.read_bytes())
    return Pki(crt, combined)


def netstring(data: bytes) -> bytes:
    return str(len(data)).encode() + b":" + data + b","


class BaresipPhone:
    """One baresip process with one TLS account ``sip:NAME@127.0.0.1;transport=tls`` and auto-answer."""

    def __init__(
        self,
        name: str,
        workdir: Path,
        sip_port: int | None = None,
        rtp_ports: tuple[int, int] | None = None,
        tone_wav: Path | None = None,
        ca_pem: Path | None = None,
        cert_combined_pem: Path | None = None,
        *,
        ctrl_port: int | None = None,
        mediaenc: str = "srtp-mand",
        codecs: str = "pcmu",
        answermode: str = "auto",
        ausrc_srate: int = 8000,
        ausrc_channels: int = 1,
        extra_config: str = "",
    ) -> None:
        self.binary = require_peer("baresip")
        self.name = name
        self.workdir = workdir
        self.sip_port = sip_port if sip_port is not None else free_port_pair()
        self.rtp_ports = rtp_ports if rtp_ports is not None else free_udp_range(20)
        self.ctrl_port = ctrl_port if ctrl_port is not None else free_tcp_port()
        self.tone_wav = tone_wav
        self.ca_pem = ca_pem
        self.cert_combined_pem = cert_combined_pem
        self.mediaenc = mediaenc
        self.codecs = codecs
        self.answermode = answermode
        self.ausrc_srate = ausrc_srate
        self.ausrc_channels = ausrc_channels
        self.extra_config = extra_config
        self.rec_dir = workdir / "rec"
        self.log_path = workdir / "baresip.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None
        self._reader: threading.Thread | None = None
        self._cond = threading.Condition()
        self._events: list[Event] = []
        self._responses: dict[str, Event] = {}
        self._token = 0
        self._closed = False

    # ----------------------------------------------------------------- addresses
    @property
    def tls_port(self) -> int:
        return self.sip_port + 1

    @property
    def aor(self) -> str:
        return f"sip:{self.name}@127.0.0.1"

    @property
    def uri(self) -> str:
        """What another phone dials to reach this one (its account adds ;transport=tls)."""
        return f"sip:{self.name}@127.0.0.1:{self.tls_port}"

    # ----------------------------------------------------------------- files
    def config_text(self) -> str:
        lines = [
            "poll_method\tepoll",
            f"sip_listen\t127.0.0.1:{self.sip_port}",
            f"audio_player\taubridge,{self.name}sink",
            f"audio_alert\taubridge,{self.name}sink",
            f"rtp_ports\t{self.rtp_ports[0]}-{self.rtp_ports[1]}",
            "rtcp_mux\tno",
            "statmode_default\toff",  # no "[0:00:01] audio=64000/64000 (bit/s)" status line spam in the log
            "rtp_stats\tyes",
            "net_interface\t127.0.0.1",
            "module_path\t/usr/lib/baresip/modules",
            f"ctrl_tcp_listen\t127.0.0.1:{self.ctrl_port}",
            f"snd_path\t{self.rec_dir}",
            f"ausrc_srate\t{self.ausrc_srate}",
            f"ausrc_channels\t{self.ausrc_channels}",
        ]
        if self.cert_combined_pem is not None:
            lines.append(f"sip_certificate\t{self.cert_combined_pem}")
        if self.ca_pem is not None:
            lines.append(f"sip_cafile\t{self.ca_pem}")
        if self.tone_wav is not None:
            lines.append(f"audio_source\taufile,{self.tone_wav}")
        else:
            lines.append(f"audio_source\taubridge,{self.name}src")
        lines += [f"module\t{m}" for m in MODULES]
        lines += [f"module_tmp\t{m}" for m in MODULES_TMP]
        lines += [f"module_app\t{m}" for m in MODULES_APP]
        if self.extra_config:
            lines.append(self.extra_config.strip())
        return "\n".join(lines) + "\n"

    def account_line(self) -> str:
        return (
            f"<sip:{self.name}@127.0.0.1;transport=tls>;regint=0;answermode={self.answermode};"
            f"mediaenc={self.mediaenc};audio_codecs={self.codecs}"
        )

    def write_files(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.rec_dir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "config").write_text(self.config_text())
        (self.workdir / "accounts").write_text(self.account_line() + "\n")
        (self.workdir / "contacts").write_text("")

    # ----------------------------------------------------------------- process
    def start(self, timeout: float = 10.0) -> BaresipPhone:
        self.write_files()
        log = open(self.log_path, "wb")  # noqa: SIM115 - kept open for the process lifetime
        self.proc = subprocess.Popen(
            [self.binary, "-f", str(self.workdir), "-s"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        last_err: OSError | None = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BaresipError(
                    f"{self.name}: baresip exited with {self.proc.returncode}\n{self.log_tail()}"
                )
            try:
                self._sock = socket.create_connection(("127.0.0.1", self.ctrl_port), timeout=1.0)
                break
            except OSError as exc:
                last_err = exc
                time.sleep(0.1)
        else:
            self.stop()
            raise BaresipError(f"{self.name}: ctrl_tcp did not come up ({last_err})\n{self.log_tail()}")
        self._sock.settimeout(None)
        self._reader = threading.Thread(target=self._read_loop, name=f"baresip-{self.name}", daemon=True)
        self._reader.start()
        # wait until the UA is really up (the TLS listener exists once the account is loaded)
        while time.monotonic() < deadline:
            if f"{self.aor}" in self.log_text() or "baresip is ready" in self.log_text():
                break
            time.sleep(0.05)
        return self

    def _read_loop(self) -> None:
        sock = self._sock
        assert sock is not None
        buf = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except OSError:
                chunk = b""
            if not chunk:
                with self._cond:
                    self._closed = True
                    self._cond.notify_all()
                return
            buf += chunk
            while True:
                colon = buf.find(b":")
                if colon < 0 or colon > 10:
                    if colon > 10 or (colon < 0 and len(buf) > 10):
                        buf = b""  # desynchronised: drop and resync on the next message
                    break
                try:
                    n = int(buf[:colon])
                except ValueError:
                    buf = b""
                    break
                if len(buf) < colon + 1 + n + 1:
                    break
                body = buf[colon + 1 : colon + 1 + n]
                buf = buf[colon + 1 + n + 1 :]
                try:
                    msg = json.loads(body.decode("utf-8", errors="replace"))
                except ValueError:
                    msg = {"unparsed": body.decode("utf-8", errors="replace")}
                msg.setdefault("_t", time.monotonic())
                with self._cond:
                    if msg.get("response"):
                        self._responses[str(msg.get("token", ""))] = msg
                    else:
                        self._events.append(msg)
                    self._cond.notify_all()

    def command(self, command: str, params: str | None = None, timeout: float = 5.0) -> Event:
        """Send a ctrl_tcp command and wait for its response."""
        if self._sock is None:
            raise BaresipError(f"{self.name}: not started")
        with self._cond:
            self._token += 1
            token = f"{self.name}-{self._token}"
        msg: dict[str, str] = {"command": command, "token": token}
        if params is not None:
            msg["params"] = params
        self._sock.sendall(netstring(json.dumps(msg).encode()))
        deadline = time.monotonic() + timeout
        with self._cond:
            while token not in self._responses:
                left = deadline - time.monotonic()
                if left <= 0 or self._closed:
                    raise BaresipError(f"{self.name}: no response to {msg}\n{self.log_tail()}")
                self._cond.wait(left)
            return self._responses.pop(token)

    def dial(self, uri: str) -> Event:
        resp = self.command("dial", uri)
        if not resp.get("ok"):
            raise BaresipError(f"{self.name}: dial {uri} failed: {resp}\n{self.log_tail()}")
        return resp

    def hangup(self) -> Event:
        return self.command("hangup")

    def callstat(self) -> str:
        return str(self.command("callstat").get("data", ""))

    @property
    def events(self) -> list[Event]:
        with self._cond:
            return list(self._events)

    def event_types(self) -> list[str]:
        return [str(e.get("type")) for e in self.events]

    def wait_event(
        self,
        type_: str,
        timeout: float = 10.0,
        *,
        since: int = 0,
        where: Callable[[Event], bool] | None = None,
        fail_on: tuple[str, ...] = (),
    ) -> Event:
        """The first event of *type_* (at index >= *since*).

        BaresipError with the log tail on timeout, or as soon as an event in *fail_on* (e.g. ``CALL_CLOSED``
        while waiting for ``CALL_ESTABLISHED``) shows up first."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for ev in self._events[since:]:
                    if ev.get("type") == type_ and (where is None or where(ev)):
                        return ev
                    if ev.get("type") in fail_on:
                        raise BaresipError(
                            f"{self.name}: got {ev.get('type')} ({ev.get('param')}) while waiting for "
                            f"{type_}; events {self.event_types_locked()}\n{self.log_tail()}"
                        )
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BaresipError(
                        f"{self.name}: no {type_} within {timeout} s; events {self.event_types_locked()}\n"
                        f"{self.log_tail()}"
                    )
                self._cond.wait(min(left, 0.5))

    def event_types_locked(self) -> list[str]:
        return [f"{e.get('type')}:{e.get('param', '')}" for e in self._events]

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 5.0) -> None:
        """Quit baresip (SIGTERM to our PID, so sndfile closes its wavs), SIGKILL if it lingers."""
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._sock.close()
            self._sock = None
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._reader is not None:
            self._reader.join(2.0)

    def __enter__(self) -> BaresipPhone:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ----------------------------------------------------------------- output
    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 40) -> str:
        tail = [ANSI.sub("", line) for line in self.log_text().splitlines()[-lines:]]
        return f"--- {self.name} baresip log (last {len(tail)} lines) ---\n" + "\n".join(tail)

    def dec_wavs(self) -> list[Path]:
        """Recordings of what this phone heard (decrypted and decoded), oldest first."""
        return sorted(self.rec_dir.glob("dump-*-dec.wav"), key=lambda p: p.stat().st_mtime)

    def enc_wavs(self) -> list[Path]:
        """Recordings of what this phone sent."""
        return sorted(self.rec_dir.glob("dump-*-enc.wav"), key=lambda p: p.stat().st_mtime)

    def sip_messages(self) -> str:
        """The SIP trace (-s) part of the log."""
        return self.log_text()
