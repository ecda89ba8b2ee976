"""SUBSCRIBE/NOTIFY cycles over UDP whose NOTIFYs are larger than 1,300 bytes, to a subscriber with no TCP
listener (SIPp over UDP only): every NOTIFY is delivered.

RFC 3261 §18.1.1 sends a request larger than the UDP limit over TCP first; the subscriber refuses the
connection, the refusal is remembered (sip/tcp_refusals.py) and the NOTIFYs go over UDP.  The conference
has an owner and ``_MEMBERS`` participants (SIPp), so that its full-state document is over the limit; each
SIPp call is two cycles (subscribe and its NOTIFY, unsubscribe and its terminating NOTIFY), and SIPp counts
the NOTIFYs it receives (-trace_counts).

``NOTIFY_CYCLES`` runs in CI; ``IMSCONF_LOAD_SCALE`` multiplies it (10: the full 20,000 cycles).
"""

from __future__ import annotations

import ast
import csv
import os
import re
import socket
import subprocess
import time
from pathlib import Path

import pytest
from baresip import free_udp_range
from harness import SCENARIOS, ServerProcess, free_port_pair, sipp_bg, sipp_errors, wait_file
from sipclient import build_request, header

from peers import require_peer

pytestmark = pytest.mark.peer

NOTIFY_CYCLES = 2_000 * int(os.environ.get("IMSCONF_LOAD_SCALE", "1"))
_MEMBERS = 8
_RATE = 100  # calls/s, two cycles each
_NEW_PORTS = 100  # subscribers on a new UDP port each
_RTP = free_udp_range(100)


def _wait_log(srv: ServerProcess, text: str, count: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if srv.log().count(text) >= count:
            return
        time.sleep(0.1)
    raise AssertionError(f"{count} x {text!r} not in the server log:\n{srv.log()[-3000:]}")


def _fetch_notify(port: int, conf: str) -> bytes:
    """One fetch (SUBSCRIBE Expires: 0) from a UDP-only socket; its NOTIFY, answered 200."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.settimeout(5)
        local = s.getsockname()[:2]
        req = build_request("SUBSCRIBE", f"sip:{conf}@127.0.0.1:{port}", transport="udp", local=local,
                            extra=["Event: conference", "Expires: 0"])  # fmt: skip
        s.sendto(req.replace(b"sip:alice@localhost", b"sip:owner@127.0.0.1"), ("127.0.0.1", port))
        while True:
            msg = s.recvfrom(65535)[0]
            if msg.startswith(b"NOTIFY "):
                keep = [f"{h}: {v}" for h in ("Via", "From", "To", "Call-ID", "CSeq") for v in header(msg, h)]
                ok = "\r\n".join(["SIP/2.0 200 OK", *keep, "Content-Length: 0", "", ""])
                s.sendto(ok.encode(), ("127.0.0.1", port))
                return msg


def _notifies_received(counts: Path) -> int:
    """The NOTIFYs SIPp received, summed over the scenario's NOTIFY steps (the last line of its counts)."""
    files = list(counts.glob("*_counts.csv"))
    assert files, list(counts.iterdir())
    rows = list(csv.reader(files[0].read_text().splitlines(), delimiter=";"))
    head, last = rows[0], rows[-1]
    return sum(int(v) for h, v in zip(head, last, strict=False) if re.fullmatch(r"\d+_NOTIFY_Recv", h) and v)


def _cycles(
    port: int, conf: str, transport: str, calls: int, rate: int, work: Path, srv: ServerProcess
) -> int:
    """SIPp notify_cycle.xml, *calls* calls (two cycles each) from one UDP port (u1) or one per call (un);
    the NOTIFYs received."""
    work.mkdir()
    res = subprocess.run(
        [require_peer("sipp"), f"127.0.0.1:{port}", "-sf", str(SCENARIOS / "notify_cycle.xml"),
         "-t", transport, "-i", "127.0.0.1", "-p", "0", "-m", str(calls), "-r", str(rate), "-l", "50",
         "-key", "conf", conf, "-key", "sub_user", "owner", "-nostdin",
         "-timeout", f"{calls // rate + 60}s", "-timeout_error", "-trace_err",
         "-trace_counts", "-trace_stat", "-stf", str(work / "stats.csv"), "-max_socket", "1000"],
        cwd=work, capture_output=True, timeout=calls / rate + 90,
    )  # fmt: skip
    assert res.returncode == 0, sipp_errors(work) + res.stderr.decode()[-2000:] + srv.log()[-3000:]
    return _notifies_received(work)


def test_notify_cycles_over_udp_larger_than_1300_bytes(tmp_path: Path) -> None:
    cfg = tmp_path / "imsconf.toml"
    cfg.write_text(
        f"allow_plain_rtp = true\nallow_sdes_over_udp = true\nrtp_port_range = [{_RTP[0]}, {_RTP[1]}]\n"
        "sip_source_rate = 0\n"  # every subscriber is one address here; the source rate is not under test
    )
    srv = ServerProcess(tmp_path / "var", free_port_pair())
    srv.start("--config", str(cfg), auth="none")
    sipp = require_peer("sipp")
    procs: list[subprocess.Popen[bytes]] = []
    try:
        conf_file = tmp_path / "conf.txt"
        procs.append(sipp_bg("conf_create.xml", srv.port, "u1", tmp_path / "owner", "-key", "conf_file",
                             str(conf_file), "-d", "600000", timeout="900s"))  # fmt: skip
        conf = wait_file(conf_file)
        (tmp_path / "members").mkdir()
        procs.append(subprocess.Popen(
            [sipp, f"127.0.0.1:{srv.port}", "-sf", str(SCENARIOS / "conf_join_leave.xml"), "-t", "u1",
             "-i", "127.0.0.1", "-p", "0", "-m", str(_MEMBERS), "-l", str(_MEMBERS), "-r", "20",
             "-key", "conf", conf, "-d", "600000", "-nostdin", "-timeout", "900s", "-trace_err"],
            cwd=tmp_path / "members", stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        ))  # fmt: skip
        _wait_log(srv, "event=participant_joined", _MEMBERS + 1)

        notify = _fetch_notify(srv.port, conf)
        assert len(notify) > 1300, len(notify)

        t0 = time.monotonic()
        received = _cycles(srv.port, conf, "u1", NOTIFY_CYCLES // 2, _RATE, tmp_path / "cycles", srv)
        took = time.monotonic() - t0
        print(f"\n{NOTIFY_CYCLES} SUBSCRIBE/NOTIFY cycles, NOTIFY {len(notify)} bytes over UDP: "
              f"{received} NOTIFYs received in {took:.1f} s")  # fmt: skip
        assert received == NOTIFY_CYCLES
        # a new UDP port per subscriber (SIPp -t un): each refuses TCP once, each NOTIFY still arrives
        assert _cycles(srv.port, conf, "un", _NEW_PORTS, 50, tmp_path / "ports", srv) == 2 * _NEW_PORTS
        assert srv.alive()
        srv.stop()
        log = srv.log()
        assert "Traceback" not in log
        m = re.search(r"event=stopped counters=(\{.*\})", log)
        assert m is not None, log[-2000:]
        counters = ast.literal_eval(m.group(1))
        # TCP is tried once per subscriber address; afterwards the remembered refusal sends over UDP at once
        assert counters.get("transport_connect_failed", 0) <= _NEW_PORTS + 3, counters
        assert counters.get("udp_oversize_tcp_refused", 0) >= NOTIFY_CYCLES - 2, counters
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                p.wait(10)
        srv.stop()
