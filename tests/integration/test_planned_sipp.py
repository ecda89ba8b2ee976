"""Booked conferences against the real server: booking by the CLI → dial-in by SIPp with
the PIN as RFC 4733 events (SIPp's shipped ``dtmf_2833_*.pcap`` played with ``play_pcap_audio``) → the
conference is created on the first call → a wrong PIN gets BYE → after the window, callers get 403.

SIPp has neither TLS nor SRTP: the server runs with ``allow_plain_rtp`` / ``allow_sdes_over_udp``.  The pcaps
carry fixed RTP timestamps (one event each, increasing from 0 to 9, then ``*``, ``#``), so one call can key
one entry whose digits increase; the wrong-PIN call keys one wrong entry and lets the next two attempts time
out (10 s each), which also makes three failures.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from baresip import free_udp_range
from harness import REPO, ServerProcess, free_port_pair, run_sipp, sipp_errors, with_separate_mixer

pytestmark = pytest.mark.peer

# RTP ports chosen free at run time (fixed ranges collide with other servers on the machine)
_RTP = free_udp_range(200)


def _iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def book(
    srv: ServerProcess, user: str, start: datetime, end: datetime, pin: str | None = None
) -> dict[str, object]:
    cmd = [sys.executable, "-m", "imsconf.cli", "book", "--data-dir", str(srv.data_dir),
           "--domain", "localhost", "create", "--uri", f"sip:{user}@localhost",
           "--start", _iso(start), "--end", _iso(end),
           "--capacity", "4", "--invite", "sip:chair@127.0.0.1:chair"]  # fmt: skip
    if pin is not None:
        cmd.append("--pin-stdin")
    out = subprocess.run(cmd, input=(pin or "").encode(), cwd=REPO, capture_output=True, check=True)
    booking: dict[str, object] = json.loads(out.stdout)
    return booking


@pytest.fixture(scope="module", params=["in-process", "separate-mixer"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """The server with its mixer in process or as a separate ``imsconf mixer`` (the PIN lobby's isolation
    and its prompts then go over the control channel)."""
    base = tmp_path_factory.mktemp("planned")
    cfg = base / "imsconf.toml"
    text = (
        f"allow_plain_rtp = true\nallow_sdes_over_udp = true\nrtp_port_range = [{_RTP[0]}, {_RTP[1]}]\n"
        "pin_timeout_seconds = 3\n"  # the timed-out attempts of the wrong-PIN caller: 6 s, not 20
    )
    srv = ServerProcess(base / "var", free_port_pair())
    mixer = with_separate_mixer(srv, cfg, text) if request.param == "separate-mixer" else None
    if mixer is None:
        cfg.write_text(text)
    srv.start("--config", str(cfg), "--log-level", "debug", auth="none")
    yield srv
    srv.stop()
    if mixer is not None:
        mixer.stop()
        assert "focus_connected" in mixer.log(), mixer.log()[-2000:]


def _wait_log(srv: ServerProcess, text: str, timeout: float = 5.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = srv.log()
        if text in log:
            return log
        time.sleep(0.05)
    raise AssertionError(f"{text!r} not in the server log:\n{srv.log()[-3000:]}")


def test_dial_in_with_the_right_pin(server: ServerProcess, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    b = book(server, "weekly", now - timedelta(minutes=1), now + timedelta(hours=1), pin="2468")
    res = run_sipp("planned_pin_ok.xml", f"127.0.0.1:{server.port}", workdir=tmp_path,
                   extra=["-key", "conf", "weekly", "-mp", "33500"], timeout=20)  # fmt: skip
    assert res.returncode == 0, sipp_errors(tmp_path) + server.log()[-3000:]
    log = _wait_log(server, "event=pin_accepted")
    assert f"event=conference_created conf_uri=sip:weekly@localhost booking={b['id']}" in log
    assert "event=lobby_entered" in log
    digits = [line.rsplit("digit=", 1)[1].strip() for line in log.splitlines() if "event=dtmf " in line]
    keys = [d for d, _ in itertools.groupby(digits)]  # the focus logs each key's start and end
    assert keys[:5] == ["2", "4", "6", "8", "#"], digits
    assert "event=pin_wrong" not in log


def test_dial_in_with_a_wrong_pin_gets_bye(server: ServerProcess, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    book(server, "standup", now - timedelta(minutes=1), now + timedelta(hours=1), pin="2468")
    t0 = time.monotonic()
    res = run_sipp("planned_pin_wrong.xml", f"127.0.0.1:{server.port}", workdir=tmp_path,
                   extra=["-key", "conf", "standup", "-mp", "33600"], timeout=45)  # fmt: skip
    assert res.returncode == 0, sipp_errors(tmp_path) + server.log()[-3000:]
    # one wrong entry, two 3 s timeouts, the goodbye prompt: the BYE comes well before a 10 s timeout would
    assert time.monotonic() - t0 < 20
    log = server.log()
    standup = [line for line in log.splitlines() if "event=pin_wrong" in line]
    assert len(standup) >= 3 and "attempt=3" in standup[-1]
    assert "event=lobby_bye" in log and "reason='wrong PIN'" in log


def test_first_call_creates_and_window_end_refuses(server: ServerProcess, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    book(server, "later", now + timedelta(hours=1), now + timedelta(hours=2))
    b = book(server, "brief", now - timedelta(minutes=1), now + timedelta(seconds=4))
    target = f"127.0.0.1:{server.port}"
    res = run_sipp("planned_refused.xml", target, workdir=tmp_path / "early", extra=["-key", "conf", "later"])
    assert res.returncode == 0, sipp_errors(tmp_path / "early")
    assert "reason=early" in server.log()
    # inside the window, no PIN: the first call instantiates the conference
    res = run_sipp("conf_join_leave.xml", target, workdir=tmp_path / "first",
                   extra=["-key", "conf", "brief", "-d", "300"])  # fmt: skip
    assert res.returncode == 0, sipp_errors(tmp_path / "first") + server.log()[-3000:]
    assert f"event=conference_created conf_uri=sip:brief@localhost booking={b['id']}" in server.log()
    end = datetime.fromisoformat(str(b["end"]).replace("Z", "+00:00"))
    time.sleep(max(0.0, (end - datetime.now(UTC)).total_seconds()) + 0.5)
    res = run_sipp("planned_refused.xml", target, workdir=tmp_path / "late", extra=["-key", "conf", "brief"])
    assert res.returncode == 0, sipp_errors(tmp_path / "late") + server.log()[-3000:]
    assert f"event=dial_in_refused booking={b['id']} reason=ended" in server.log()
