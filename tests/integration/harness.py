"""Start the real server as a subprocess and drive it with real peers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from peers import require_peer

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = Path(__file__).parent / "scenarios"


def free_port_pair() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 (and port+1 free for TLS)."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port > 65000:
            continue
        ok = True
        for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
            for p in (port, port + 1):
                with socket.socket(socket.AF_INET, kind) as t:
                    try:
                        t.bind(("127.0.0.1", p))
                    except OSError:
                        ok = False
        if ok:
            return port
    raise RuntimeError("no free port pair")


@dataclass
class ServerProcess:
    data_dir: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None
    stdout_lines: list[str] = field(default_factory=list)
    log_path: Path | None = None

    @property
    def tls_port(self) -> int:
        return self.port + 1

    def start(self, *extra: str, auth: str = "digest", timeout: float = 20.0) -> None:
        cmd = [
            sys.executable, "-m", "imsconf.cli", "serve",
            "--data-dir", str(self.data_dir),
            "--listen", f"udp:127.0.0.1:{self.port}",
            "--listen", f"tcp:127.0.0.1:{self.port}",
            "--listen", f"tls:127.0.0.1:{self.tls_port}",
            "--auth", auth,
            # the operator plane (on 127.0.0.1:8080 by default) only where a test asks for it: parallel
            # servers would collide on the port
            *(() if "--http" in extra else ("--http", "off")),
            *extra,
        ]  # fmt: skip
        self.log_path = self.data_dir / "server.log"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        err = open(self.log_path, "wb")  # noqa: SIM115 - kept open for the process lifetime
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, cwd=REPO, env=env)
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        os.set_blocking(self.proc.stdout.fileno(), False)
        buf = b""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.log()}")
            chunk = self.proc.stdout.read()
            if chunk:
                buf += chunk
                if b"conference factory" in buf:
                    self.stdout_lines = buf.decode().splitlines()
                    return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"server did not start: {buf!r} {self.log()}")

    def log(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 5.0) -> float:
        """Stop the server by PID; returns how long it took."""
        if self.proc is None or self.proc.poll() is not None:
            return 0.0
        t0 = time.monotonic()
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return time.monotonic() - t0

    def add_user(self, username: str, password: str) -> None:
        subprocess.run(
            [sys.executable, "-m", "imsconf.cli", "users", "--data-dir", str(self.data_dir),
             "add", username, "--password-stdin"],
            input=(password + "\n").encode(), check=True, cwd=REPO, capture_output=True,
        )  # fmt: skip


@dataclass
class SippResult:
    returncode: int
    stdout: str
    stderr: str
    stats: str


def run_sipp(
    scenario: str | Path,
    target: str,
    *,
    transport: str = "u1",
    calls: int = 1,
    rate: float = 10,
    timeout: float = 30.0,
    workdir: Path,
    extra: list[str] | None = None,
) -> SippResult:
    """Run SIPp headless; ``scenario`` is a file name under scenarios/ or a built-in (sn:uac)."""
    sipp = require_peer("sipp")
    workdir.mkdir(parents=True, exist_ok=True)
    if isinstance(scenario, str) and scenario.startswith("sn:"):
        scen_args = ["-sn", scenario[3:]]
    else:
        path = Path(scenario) if Path(scenario).is_absolute() else SCENARIOS / scenario
        scen_args = ["-sf", str(path)]
    stats = workdir / "stats.csv"
    cmd = [
        sipp, target, *scen_args, "-t", transport, "-i", "127.0.0.1", "-p", "0",
        "-m", str(calls), "-r", str(rate), "-nostdin", "-timeout", f"{int(timeout)}s",
        "-timeout_error", "-trace_err", "-trace_stat", "-stf", str(stats),
        *(extra or []),
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, timeout=timeout + 15)
    return SippResult(
        proc.returncode,
        proc.stdout.decode(errors="replace"),
        proc.stderr.decode(errors="replace"),
        stats.read_text() if stats.exists() else "",
    )


def sipp_errors(workdir: Path) -> str:
    return "\n".join(p.read_text(errors="replace")[-3000:] for p in workdir.glob("*errors.log"))


@dataclass
class MixerProcess:
    """``imsconf mixer`` as a subprocess (the MRFP in its own process, mutual TLS control channel)."""

    data_dir: Path
    listen: str
    config: Path | None = None
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    def start(self, timeout: float = 20.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "imsconf.cli", "mixer", "--data-dir", str(self.data_dir),
               "--listen", self.listen]  # fmt: skip
        if self.config is not None:
            cmd += ["--config", str(self.config)]
        self.log_path = self.data_dir / "mixer.log"
        err = open(self.log_path, "wb")  # noqa: SIM115 - kept open for the process lifetime
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, cwd=REPO)
        assert self.proc.stdout is not None
        line = b""
        deadline = time.monotonic() + timeout
        os.set_blocking(self.proc.stdout.fileno(), False)
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mixer exited with {self.proc.returncode}: {self.log()}")
            line += self.proc.stdout.read() or b""
            if b"mixer listening" in line:
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"mixer did not start: {line!r} {self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sipp_bg(
    scenario: str, port: int, transport: str, workdir: Path, *extra: str, timeout: str = "30s"
) -> subprocess.Popen[bytes]:
    """One SIPp call from scenarios/ in the background (the test waits for it); ``-p`` in *extra* wins."""
    sipp = require_peer("sipp")
    workdir.mkdir(parents=True, exist_ok=True)
    cmd = [sipp, f"127.0.0.1:{port}", "-sf", str(SCENARIOS / scenario), "-t", transport,
           "-i", "127.0.0.1", "-m", "1", "-nostdin", "-timeout", timeout, "-timeout_error",
           "-trace_err", *extra]  # fmt: skip
    if "-p" not in extra:
        cmd += ["-p", "0"]
    return subprocess.Popen(cmd, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_file(path: Path, timeout: float = 10.0) -> str:
    """The stripped contents of *path* once a scenario has written it (e.g. the conference user part)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return path.read_text().strip()
        time.sleep(0.05)
    raise AssertionError(f"{path} was not written")


def with_separate_mixer(srv: ServerProcess, config: Path, text: str) -> MixerProcess:
    """Write *text* plus ``mixer = ...`` to *config* and start an ``imsconf mixer`` (same data directory,
    so the same CA) for the server *srv* to use; the caller stops it after the server."""
    listen = f"127.0.0.1:{free_tcp_port()}"
    srv.data_dir.mkdir(parents=True, exist_ok=True)
    config.write_text(text + f'mixer = "{listen}"\n')
    mixer = MixerProcess(srv.data_dir, listen, config)
    mixer.start()
    return mixer
