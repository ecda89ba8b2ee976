"""An INVITE flood from one source against the real server (SIPp): the server sheds it with stateless
503s (Retry-After), another source's calls go through, established calls keep their media, the flooding
source is served again within 5 s of the flood's end, and no media leg outlives its call.

Scaled to run in CI on a small machine: the flood is 600 INVITEs/s for 4 s against a server whose
per-source rate is 50/s and call budget 150/s; the legitimate caller makes 20 calls/s from 127.0.0.2;
two established calls from 127.0.0.3 stream RTP (the full-size run is bench/invite_flood.py).
"""

from __future__ import annotations

import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest
from baresip import free_udp_range
from harness import SCENARIOS, ServerProcess, free_port_pair, run_sipp, sipp_errors

from peers import require_peer

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from invite_flood import Call, Media, dial, hang_up  # the established calls' small SIP/RTP client

pytestmark = pytest.mark.peer

_RTP = free_udp_range(200)


def _sipp(
    scenario: str, port: int, source: str, calls: int, rate: int, workdir: Path, *extra: str
) -> list[str]:
    workdir.mkdir(parents=True, exist_ok=True)
    return [
        require_peer("sipp"), f"127.0.0.1:{port}", "-sf", str(SCENARIOS / scenario), "-t", "u1",
        "-i", source, "-p", "0", "-m", str(calls), "-r", str(rate), "-nostdin", "-timeout", "40s",
        "-timeout_error", "-trace_err", "-trace_stat", "-stf", str(workdir / "stats.csv"), *extra,
    ]  # fmt: skip


def _counter(log: str, name: str) -> int:
    m = re.search(rf"'{name}': (\d+)", log)
    return int(m.group(1)) if m else 0


def test_flood_is_shed_with_503_and_other_callers_are_served(tmp_path: Path) -> None:
    cfg = tmp_path / "imsconf.toml"
    cfg.write_text(
        "allow_plain_rtp = true\nallow_sdes_over_udp = true\n"
        f"rtp_port_range = [{_RTP[0]}, {_RTP[1]}]\n"
        "sip_call_rate = 150\nsip_source_rate = 50\n"
    )
    srv = ServerProcess(tmp_path / "var", free_port_pair())
    srv.start("--config", str(cfg), auth="none")
    calls: list[Call] = []
    media: Media | None = None
    try:
        first = dial(("127.0.0.1", srv.port), f"sip:conference-factory@127.0.0.1:{srv.port}")
        calls.append(first)
        conf = first.target.split(":", 1)[1].split("@", 1)[0]
        calls.append(dial(("127.0.0.1", srv.port), f"sip:{conf}@127.0.0.1:{srv.port}"))
        t0 = time.time()
        media = Media(calls, t0)
        media.start()
        flood = subprocess.Popen(
            _sipp("flood_invite.xml", srv.port, "127.0.0.1", 2400, 600, tmp_path / "flood"),
            cwd=tmp_path / "flood", stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        flood_at = time.time() - t0
        time.sleep(0.5)  # the flood is on
        legit = subprocess.run(
            _sipp("conf_create.xml", srv.port, "127.0.0.2", 60, 20, tmp_path / "legit", "-d", "200",
                  "-key", "conf_file", str(tmp_path / "conf.txt")),
            cwd=tmp_path / "legit", capture_output=True, timeout=90,
        )  # fmt: skip
        flood.wait(90)
        flood_end = time.time() - t0
        assert srv.alive(), srv.log()[-3000:]
        # every legitimate call (INVITE, ACK, BYE) succeeded during the flood (loss 0 < 1 %)
        assert legit.returncode == 0, sipp_errors(tmp_path / "legit") + srv.log()[-2000:]
        # the flood itself ended: each of its calls got a 503 (with Retry-After: the scenario checks it) or
        # completed; none timed out
        assert flood.returncode == 0, sipp_errors(tmp_path / "flood")
        # the established calls kept their media during the flood (the mixer sends 50 packets/s)
        pps = [c.received.get(s, 0) for c in calls for s in range(int(flood_at) + 1, int(flood_end))]
        assert pps and statistics.median(pps) >= 49, pps
        # the flooding source's mark lapses (it is quiet now): its own calls go through within 5 s
        time.sleep(2.0)
        back = subprocess.run(
            _sipp("conf_create.xml", srv.port, "127.0.0.1", 20, 20, tmp_path / "back", "-d", "200",
                  "-key", "conf_file", str(tmp_path / "conf2.txt")),
            cwd=tmp_path / "back", capture_output=True, timeout=60,
        )  # fmt: skip
        assert back.returncode == 0, sipp_errors(tmp_path / "back") + srv.log()[-2000:]
        # still serving normally right after
        res = run_sipp("options.xml", f"127.0.0.1:{srv.port}", workdir=tmp_path / "after")
        assert res.returncode == 0
        media.stopped.set()
        for c in calls:
            hang_up(c)
        time.sleep(1.0)
    finally:
        if media is not None:
            media.stopped.set()
        srv.stop()
    log = srv.log()
    shed = _counter(log, "tx_source_busy_503") + _counter(log, "tx_busy_503")
    # the marked source's refusals took the quick path, all but the one that marked it: the mark held
    # across its windows for the whole flood
    assert _counter(log, "tx_quick_503") >= 0.9 * _counter(log, "tx_source_busy_503") > 0
    admitted = log.count("event=conference_created")
    print(f"flood: 2400 INVITEs at 600/s; shed with 503: {shed}; conferences created: {admitted}")
    assert shed >= 1500, f"only {shed} INVITEs were shed"
    assert "event=overload src=127.0.0.1" in log
    assert "event=overload src=127.0.0.2" not in log
    # no media leg outlived its call: every conference that was created was closed and its media released
    created = log.count("event=conference_created")
    assert created > 80 and log.count("event=media_released") == created
    assert log.count("event=participant_joined") == log.count("event=participant_left")
    assert "Traceback" not in log
