"""A booked conference with dial-out against the real server: booked by the CLI, two SIPp answerers in the
roster are called when the window opens and get BYE when it ends.

The booking is made before the server starts (the server reads the store at start; a booking another
process makes later reaches the running server's index at its next periodic re-read).  SIPp has neither
TLS nor SRTP: the server allows SDES over UDP (``allow_sdes_over_udp``), as for the other SIPp tests.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from baresip import free_udp_range
from harness import REPO, ServerProcess, free_port_pair, sipp_bg, sipp_errors

pytestmark = pytest.mark.peer

_RTP = free_udp_range(200)
CONFIG = f"allow_plain_rtp = true\nallow_sdes_over_udp = true\nrtp_port_range = [{_RTP[0]}, {_RTP[1]}]\n"


def _iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_invitees_are_called_at_the_start_and_get_bye_at_the_end(tmp_path: Path) -> None:
    srv = ServerProcess(tmp_path / "var", free_port_pair())
    ports = [free_port_pair(), free_port_pair()]
    while ports[1] == ports[0]:
        ports[1] = free_port_pair()
    uas = [sipp_bg("planned_dialout_uas.xml", srv.port, "u1", tmp_path / f"uas{i}",
                   "-p", str(p), "-s", f"user{i}", timeout="40s") for i, p in enumerate(ports)]  # fmt: skip
    try:
        start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=4)
        end = start + timedelta(seconds=8)
        cmd = [sys.executable, "-m", "imsconf.cli", "book", "--data-dir", str(srv.data_dir),
               "--domain", "localhost", "create", "--uri", "sip:windowed@localhost",
               "--start", _iso(start), "--end", _iso(end), "--dial-out",
               "--downlink", "per-participant",  # no group epochs: SIPp's answerer takes no key re-INVITE
               "--invite", f"sip:user0@127.0.0.1:{ports[0]};transport=udp:chair",
               "--invite", f"sip:user1@127.0.0.1:{ports[1]};transport=udp"]  # fmt: skip
        out = subprocess.run(cmd, cwd=REPO, capture_output=True, check=True, timeout=30)
        booking = json.loads(out.stdout)
        assert booking["dial_out"] is True and booking["overrun"] == 0
        cfg = tmp_path / "imsconf.toml"
        cfg.write_text(CONFIG)
        srv.start("--config", str(cfg), "--log-level", "debug", auth="none")
        for i, proc in enumerate(uas):
            try:
                rc = proc.wait(40)
            except subprocess.TimeoutExpired:
                raise AssertionError(f"uas{i} hung: {sipp_errors(tmp_path / f'uas{i}')}") from None
            assert rc == 0, f"uas{i}: {sipp_errors(tmp_path / f'uas{i}')}\n{srv.log()[-4000:]}"
        finished = datetime.now(UTC)
        assert finished >= end - timedelta(seconds=1)  # the BYE came at the end, not before
        log = srv.log()
        assert f"event=booking_dial_out booking={booking['id']} conf=sip:windowed@localhost" in log
        assert log.count("event=dial_out conf=sip:windowed@localhost") == 2
        assert log.count("dialed_out=true") == 2
        assert "event=booking_window_ended conf=sip:windowed@localhost" in log
        assert log.count("reason=booking-window-ended") == 2
        assert "event=conference_closed conf=sip:windowed@localhost" in log
        assert "Traceback" not in log
    finally:
        for proc in uas:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        srv.stop()
