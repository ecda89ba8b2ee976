"""3PTY signalling of B/C with SIPp: the focus's INVITE carries the Replaces that A embedded in Refer-To.

A (a Python test UA) creates a conference at the factory and REFERs the focus with
``Refer-To: <sip:bob@<sipp>?Replaces=3pty-ab%40pbx%3Bto-tag%3Dbob-1%3Bfrom-tag%3Dalice-1>``; SIPp
(``threeparty_uas.xml``) checks ``Replaces: 3pty-ab@pbx;to-tag=bob-1;from-tag=alice-1`` and
``Require: replaces`` on the INVITE it receives, answers, and takes the focus's BYE once A (the owner) leaves.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from baresip import free_udp_range
from harness import SCENARIOS, ServerProcess, free_port_pair, sipp_errors

from peers import require_peer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from uas import UserAgent

pytestmark = pytest.mark.peer

# RTP ports chosen free at run time (fixed ranges collide with other servers on the machine)
_RTP = free_udp_range(200)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    base = tmp_path_factory.mktemp("threeparty_sipp")
    cfg = base / "imsconf.toml"
    cfg.write_text(
        f"allow_plain_rtp = true\nallow_sdes_over_udp = true\nrtp_port_range = [{_RTP[0]}, {_RTP[1]}]\n"
    )
    srv = ServerProcess(base / "var", free_port_pair())
    srv.start("--config", str(cfg), auth="none")
    yield srv
    srv.stop()


def _free_udp() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_focus_invites_with_replaces(server: ServerProcess, tmp_path: Path) -> None:
    sipp = require_peer("sipp")
    port = _free_udp()
    cmd = [sipp, "-sf", str(SCENARIOS / "threeparty_uas.xml"), "-t", "u1", "-i", "127.0.0.1", "-p", str(port),
           "-m", "1", "-nostdin", "-timeout", "20s", "-timeout_error", "-trace_err"]  # fmt: skip
    bob = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    a = UserAgent("alice", transport="udp").start()
    try:
        af = a.call(f"sip:conference-factory@127.0.0.1:{server.port}")
        assert af.state == "confirmed", af.final_response
        replaces = "3pty-ab%40pbx%3Bto-tag%3Dbob-1%3Bfrom-tag%3Dalice-1"
        resp = af.refer(f"sip:bob@127.0.0.1:{port}?Replaces={replaces}")
        assert resp.status == 202
        assert af.wait_refer_final(10) == 200, server.log()[-3000:]
        assert af.bye() is not None  # the owner leaves: the focus ends the conference and BYEs bob
        assert bob.wait(20) == 0, sipp_errors(tmp_path) + server.log()[-3000:]
    finally:
        a.close()
        if bob.poll() is None:
            bob.kill()
    assert "event=refer_accepted" in server.log()
