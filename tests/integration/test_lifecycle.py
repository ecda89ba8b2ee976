"""The server's life cycle as an operator sees it, on the real process: the drain of SIGTERM (a BYE to every
call, a terminated NOTIFY to every subscriber, exit 0 within the drain time), the second signal, the re-read
of SIGHUP with live calls (log level, users, certificates, a broken file) and the sd_notify messages.

The participants are the project's test UAs (SDES-SRTP over UDP with ``allow_sdes_over_udp``) and, for
the 100-participant drain, SIPp.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from baresip import free_udp_range
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from harness import SCENARIOS, ServerProcess, free_port_pair

from imsconf.app.pki import PkiPaths, certificate_fingerprint, issue_cert
from peers import require_peer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from uas import Call, UserAgent, tone_present

pytestmark = pytest.mark.peer

_RTP = free_udp_range(300)


def _config(path: Path, *lines: str) -> Path:
    path.write_text("\n".join(("allow_sdes_over_udp = true", *lines)) + "\n")
    return path


def _rtp(lo: int, hi: int) -> str:
    return f"rtp_port_range = [{lo}, {hi}]"


def _wait_log(srv: ServerProcess, pattern: str, timeout: float = 5.0, count: int = 1) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = srv.log()
        if len(re.findall(pattern, text)) >= count:
            return text
        time.sleep(0.05)
    raise AssertionError(f"{pattern!r} x{count} not in the log:\n{srv.log()[-4000:]}")


def _start(srv: ServerProcess, cfg: Path, auth: str = "none") -> None:
    srv.start("--config", str(cfg), auth=auth)


@pytest.fixture
def uas() -> Iterator[list[UserAgent]]:
    started: list[UserAgent] = []
    yield started
    for ua in started:
        ua.close(hangup=False)


def _ua(uas: list[UserAgent], user: str, tone: float = 440.0, **kw: object) -> UserAgent:
    ua = UserAgent(user, transport="udp", tone_hz=tone, **kw).start()  # type: ignore[arg-type]
    uas.append(ua)
    return ua


def _conference(srv: ServerProcess, owner: UserAgent) -> tuple[Call, str]:
    call = owner.call(f"sip:conference-factory@127.0.0.1:{srv.port}")
    assert call.state == "confirmed", call.final_response
    assert call.remote_target is not None
    return call, call.remote_target


def _byes(call: Call) -> int:
    return sum(1 for r in call.requests if r.method == "BYE")


# ---------------------------------------------------------------------------------------------- SIGTERM


def test_sigterm_byes_every_call_terminates_every_subscription_and_exits_0(
    tmp_path: Path, uas: list[UserAgent]
) -> None:
    lo, hi = _RTP[0], _RTP[0] + 99
    srv = ServerProcess(tmp_path / "var", free_port_pair())
    _start(srv, _config(tmp_path / "imsconf.toml", _rtp(lo, hi), "drain_seconds = 2"))
    alice, bob = _ua(uas, "alice"), _ua(uas, "bob", 1000.0)
    a_call, conf_uri = _conference(srv, alice)
    b_call = bob.call(conf_uri)
    assert b_call.state == "confirmed", b_call.final_response
    watcher = bob.subscribe(conf_uri, proxy=("127.0.0.1", srv.port))
    assert watcher.response is not None and watcher.response.status == 200
    assert watcher.wait_notify(timeout=5) is not None
    t0 = time.monotonic()
    assert srv.proc is not None
    srv.proc.send_signal(signal.SIGTERM)
    code = srv.proc.wait(2.0 + 1.0)
    took = time.monotonic() - t0
    assert code == 0
    assert took < 3.0
    # the BYEs were answered before the process exited: the drain was complete
    log = srv.log()
    assert "event=draining calls=2 subscriptions=1" in log, log[-3000:]
    assert "complete=true" in log and "event=stopped" in log
    for call in (a_call, b_call):
        assert call.state == "terminated" and call.terminated_by == "remote", call.terminated_by
        assert _byes(call) == 1
    final = watcher.wait_notify(lambda n: (n.get("Subscription-State") or "").startswith("terminated"), 1)
    assert final is not None and final.get("Subscription-State") == "terminated;reason=noresource"
    assert log.count("event=participant_left") == 2 and log.count("reason=shutdown") >= 2


def test_new_invite_while_draining_gets_503_and_second_sigterm_exits_at_once(
    tmp_path: Path, uas: list[UserAgent]
) -> None:
    lo, hi = _RTP[0] + 100, _RTP[0] + 199
    srv = ServerProcess(tmp_path / "var", free_port_pair())
    _start(srv, _config(tmp_path / "imsconf.toml", _rtp(lo, hi), "drain_seconds = 30"))
    deaf = _ua(uas, "deaf")
    _conference(srv, deaf)
    deaf.transport.close()  # gone without a word: our BYE is never answered, the drain waits
    assert srv.proc is not None
    srv.proc.send_signal(signal.SIGTERM)
    _wait_log(srv, "event=draining calls=1")
    late = _ua(uas, "late")
    refused = late.call(f"sip:conference-factory@127.0.0.1:{srv.port}")
    assert refused.final_response is not None and refused.final_response.status == 503
    assert refused.final_response.get("Retry-After") == "30"
    assert srv.alive()  # still draining
    t0 = time.monotonic()
    srv.proc.send_signal(signal.SIGTERM)
    code = srv.proc.wait(2.0)
    assert time.monotonic() - t0 < 1.0
    assert code == 0
    log = srv.log()
    assert "event=drain_aborted" in log and "aborted=true" in log and "event=stopped" in log


@pytest.mark.slow
def test_drain_of_100_participants(tmp_path: Path) -> None:
    """100 calls (SIPp, one conference each) at SIGTERM: every BYE answered; the drain time is printed."""
    lo, hi = _RTP[0] + 200, _RTP[0] + 599
    srv = ServerProcess(tmp_path / "var", free_port_pair())
    cfg = _config(tmp_path / "imsconf.toml", _rtp(lo, hi), "allow_plain_rtp = true", "drain_seconds = 5")
    _start(srv, cfg)
    sipp = require_peer("sipp")
    work = tmp_path / "sipp"
    work.mkdir()
    cmd = [sipp, f"127.0.0.1:{srv.port}", "-sf", str(SCENARIOS / "conf_wait_bye.xml"), "-t", "u1",
           "-i", "127.0.0.1", "-p", "0", "-m", "100", "-l", "100", "-r", "50", "-nostdin",
           "-timeout", "60s", "-timeout_error", "-trace_err"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_log(srv, "event=participant_joined", timeout=30, count=100)
        assert srv.proc is not None
        t0 = time.monotonic()
        srv.proc.send_signal(signal.SIGTERM)
        assert srv.proc.wait(5.0 + 1.0) == 0
        took = time.monotonic() - t0
        assert proc.wait(30) == 0, (proc.stderr.read() if proc.stderr else b"").decode()[-2000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    log = srv.log()
    m = re.search(r"event=drained calls=100 complete=true aborted=false seconds=([0-9.]+)", log)
    assert m is not None, log[-3000:]
    print(f"\ndrain of 100 participants: {float(m.group(1)):.3f} s in the server, exit after {took:.3f} s")


# ---------------------------------------------------------------------------------------------- SIGHUP


def _tls_fingerprint(port: int, ca: Path) -> str:
    ctx = ssl.create_default_context(cafile=str(ca))
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        ctx.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).fingerprint(hashes.SHA256()).hex()


def test_sighup_reloads_log_level_users_and_certificates_with_a_live_call(
    tmp_path: Path, uas: list[UserAgent]
) -> None:
    lo, hi = _RTP[0] + 200, _RTP[0] + 299
    srv = ServerProcess(tmp_path / "var", free_port_pair())
    srv.data_dir.mkdir(parents=True)
    srv.add_user("alice", "wonderland")
    cfg = _config(tmp_path / "imsconf.toml", _rtp(lo, hi), 'log_level = "warning"')
    _start(srv, cfg, auth="digest")
    assert srv.proc is not None
    alice = _ua(uas, "alice", 440.0, password="wonderland")
    a_call, conf_uri = _conference(srv, alice)
    assert "event=participant_joined" not in srv.log()  # info is below the level
    # the new configuration: info level, a setting that needs a restart; a new user; a new certificate
    _config(cfg, _rtp(lo, hi + 1), 'log_level = "info"')
    srv.add_user("bob", "builder")
    pki = PkiPaths.under(srv.data_dir)
    ca = pki.ca_cert
    before = _tls_fingerprint(srv.tls_port, ca)
    with tempfile.TemporaryDirectory() as d:
        cert, key = issue_cert(pki, "reloaded", Path(d), client=False, hostnames=["localhost", "127.0.0.1"])
        shutil.copyfile(cert, pki.server_cert)
        shutil.copyfile(key, pki.server_key)
    srv.proc.send_signal(signal.SIGHUP)
    log = _wait_log(srv, "event=reloaded")
    assert re.search(r"event=reloaded changed=log_level,users,certificates", log), log[-2000:]
    assert "event=reload_needs_restart settings=rtp_port_range" in log
    assert srv.alive()
    after = _tls_fingerprint(srv.tls_port, ca)
    assert after != before and after == certificate_fingerprint(pki.server_cert)
    # bob, added to the users file, authenticates; his join is logged at the new level
    bob = _ua(uas, "bob", 1000.0, password="builder")
    b_call = bob.call(conf_uri)
    assert b_call.state == "confirmed", b_call.final_response
    _wait_log(srv, "event=participant_joined")
    # alice's call survived the reload: she hears bob through the mixer
    time.sleep(0.5)
    t = time.monotonic()
    time.sleep(0.8)
    assert tone_present(a_call.media.audio(since=t), 1000.0) > -20
    # a broken file is refused and the old configuration stays
    cfg.write_text('log_level = "loud"\n')
    srv.proc.send_signal(signal.SIGHUP)
    log = _wait_log(srv, "event=reload_failed")
    assert "log_level" in log.split("event=reload_failed", 1)[1].splitlines()[0]
    cfg.write_text("this is [ not toml\n")
    srv.proc.send_signal(signal.SIGHUP)
    _wait_log(srv, "event=reload_failed", count=2)
    assert srv.alive()
    resp = b_call.bye()
    assert resp is not None and resp.status == 200
    _wait_log(srv, "event=participant_left")  # still at info: the failed reloads changed nothing
    resp = a_call.bye()
    assert resp is not None and resp.status == 200
    assert srv.stop() < 3.0 and srv.proc.returncode == 0


# ---------------------------------------------------------------------------------------------- sd_notify


def test_sd_notify_ready_reloading_watchdog_stopping(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sock_dir = Path(tempfile.mkdtemp(prefix="sdn", dir="/tmp"))  # AF_UNIX paths are short
    path = sock_dir / "notify"
    rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    rx.bind(str(path))
    rx.settimeout(0.2)
    messages: list[str] = []

    def collect(until: str, timeout: float = 10.0) -> list[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                messages.append(rx.recv(4096).decode())
            except TimeoutError:
                continue
            if until in messages[-1]:
                return messages
        raise AssertionError(f"{until} not received: {messages}")

    try:
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        monkeypatch.setenv("WATCHDOG_USEC", "400000")  # a ping every 0.2 s
        srv = ServerProcess(tmp_path / "var", free_port_pair())
        lo = _RTP[0] + 300
        _start(srv, _config(tmp_path / "imsconf.toml", _rtp(lo, lo + 9)))
        monkeypatch.delenv("NOTIFY_SOCKET")
        monkeypatch.delenv("WATCHDOG_USEC")
        assert srv.proc is not None
        collect("READY=1")
        ready = messages[0].split("\n")
        assert ready[0] == "READY=1" and f"MAINPID={srv.proc.pid}" in ready
        t0 = time.monotonic()
        collect("WATCHDOG=1")
        collect("WATCHDOG=1")
        assert time.monotonic() - t0 < 2.0
        srv.proc.send_signal(signal.SIGHUP)
        collect("RELOADING=1")
        reloading = messages[-1].split("\n")
        assert reloading[0] == "RELOADING=1" and reloading[1].startswith("MONOTONIC_USEC=")
        collect("READY=1")  # the reload is over
        srv.proc.send_signal(signal.SIGTERM)
        collect("STOPPING=1")
        assert srv.proc.wait(3) == 0
    finally:
        rx.close()
        shutil.rmtree(sock_dir, ignore_errors=True)


def test_no_notify_socket_no_messages_and_sighup_keeps_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Outside systemd (no NOTIFY_SOCKET): SIGHUP no longer kills the server (it was exit 129)."""
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    srv = ServerProcess(tmp_path / "var", free_port_pair())
    lo = _RTP[0] + 310
    _start(srv, _config(tmp_path / "imsconf.toml", _rtp(lo, lo + 9)))
    assert srv.proc is not None
    srv.proc.send_signal(signal.SIGHUP)
    _wait_log(srv, "event=reloaded changed=none")
    assert srv.alive()
    assert srv.stop() < 2.0 and srv.proc.returncode == 0


# ---------------------------------------------------------------------------------------------- hardening

_MDWE = """
import ctypes, runpy, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(65, 1, 0, 0, 0) != 0:  # PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN (Linux 6.3)
    sys.exit(77)
sys.argv = ["imsconf", *sys.argv[1:]]
runpy.run_module("imsconf.cli", run_name="__main__")
"""


def test_call_with_media_under_mdwe(tmp_path: Path, uas: list[UserAgent]) -> None:
    """The unit's MemoryDenyWriteExecute=true: the kernel's own form of it (PR_SET_MDWE, inherited by
    everything the process maps later) over a whole call: SRTP, the mixer's C path, numpy."""
    lo = _RTP[0] + 320
    port = free_port_pair()
    data = tmp_path / "var"
    data.mkdir()
    cfg = _config(tmp_path / "imsconf.toml", _rtp(lo, lo + 39))
    cmd = [sys.executable, "-c", _MDWE, "serve", "--config", str(cfg), "--data-dir", str(data),
           "--listen", f"udp:127.0.0.1:{port}", "--auth", "none", "--http", "off"]  # fmt: skip
    err = open(data / "server.log", "wb")  # noqa: SIM115 - closed below
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, env=env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        while line and b"conference factory" not in line:
            line = proc.stdout.readline()
        if proc.poll() == 77:
            pytest.skip("this kernel has no PR_SET_MDWE")
        assert line, (data / "server.log").read_text()
        alice, bob = _ua(uas, "alice", 440.0), _ua(uas, "bob", 1000.0)
        a_call = alice.call(f"sip:conference-factory@127.0.0.1:{port}")
        assert a_call.state == "confirmed" and a_call.remote_target is not None
        b_call = bob.call(a_call.remote_target)
        assert b_call.state == "confirmed"
        time.sleep(0.5)
        t = time.monotonic()
        time.sleep(0.8)
        assert tone_present(a_call.media.audio(since=t), 1000.0) > -20
        assert tone_present(b_call.media.audio(since=t), 440.0) > -20
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(5) == 0
        assert b_call.wait_terminated(1) and b_call.terminated_by == "remote"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        err.close()
    log = (data / "server.log").read_text()
    assert "event=draining calls=2" in log and "Traceback" not in log
