"""Ad hoc conferences driven by SIPp over UDP and TCP: create, join, leave, owner-close, 404 afterwards.

SIPp (Debian's build) has neither TLS nor SRTP, so this server runs with the security relaxations
``allow_plain_rtp`` and ``allow_sdes_over_udp`` set in its configuration.  The secure path (TLS + SDES-SRTP)
is covered with real baresip phones in test_baresip_conference.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from baresip import free_udp_range
from harness import ServerProcess, free_port_pair, run_sipp, sipp_bg, sipp_errors, wait_file

pytestmark = pytest.mark.peer

# RTP ports chosen free at run time (fixed ranges collide with other servers on the machine)
_RTP = free_udp_range(200)


@pytest.fixture(scope="module")
def plain_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    base = tmp_path_factory.mktemp("plain")
    cfg = base / "imsconf.toml"
    cfg.write_text(
        f"allow_plain_rtp = true\nallow_sdes_over_udp = true\nrtp_port_range = [{_RTP[0]}, {_RTP[1]}]\n"
    )
    srv = ServerProcess(base / "var", free_port_pair())
    srv.start("--config", str(cfg), auth="none")
    yield srv
    srv.stop()


@pytest.mark.parametrize("transport", ["u1", "t1"])
def test_create_join_leave_owner_close(plain_server: ServerProcess, transport: str, tmp_path: Path) -> None:
    conf_file = tmp_path / "conf.txt"
    owner = sipp_bg(
        "conf_create.xml", plain_server.port, transport, tmp_path / "owner",
        "-key", "conf_file", str(conf_file), "-d", "4000",
    )  # fmt: skip
    try:
        conf = wait_file(conf_file)
        assert conf.startswith("conf-") and len(conf) >= 5 + 14  # ≥ 80 random bits, base64url
        # a member joins and leaves by itself
        res = run_sipp("conf_join_leave.xml", f"127.0.0.1:{plain_server.port}", transport=transport,
                       workdir=tmp_path / "leaver", extra=["-key", "conf", conf, "-d", "300"])  # fmt: skip
        assert res.returncode == 0, sipp_errors(tmp_path / "leaver") + plain_server.log()[-3000:]
        # another member stays until the owner leaves: the focus BYEs it
        stayer = sipp_bg("conf_join_closed.xml", plain_server.port, transport, tmp_path / "stayer",
                          "-key", "conf", conf)  # fmt: skip
        assert stayer.wait(30) == 0, sipp_errors(tmp_path / "stayer") + plain_server.log()[-3000:]
        assert owner.wait(30) == 0, sipp_errors(tmp_path / "owner")
    finally:
        for p in (owner,):
            if p.poll() is None:
                p.kill()
    # the conference is gone: its URI no longer answers
    res = run_sipp("conf_unknown.xml", f"127.0.0.1:{plain_server.port}", transport=transport,
                   workdir=tmp_path / "late", extra=["-key", "conf", conf])  # fmt: skip
    assert res.returncode == 0, sipp_errors(tmp_path / "late")
    log = plain_server.log()
    assert f"event=conference_closed conf=sip:{conf}@localhost" in log
    assert f"event=media_released conf=sip:{conf}@localhost" in log
    assert "Traceback" not in log


def test_many_members_join_and_leave(plain_server: ServerProcess, tmp_path: Path) -> None:
    """20 members join one conference at 20 calls/s and leave again; the owner then closes it."""
    conf_file = tmp_path / "conf.txt"
    owner = sipp_bg("conf_create.xml", plain_server.port, "u1", tmp_path / "owner",
                     "-key", "conf_file", str(conf_file), "-d", "6000")  # fmt: skip
    try:
        conf = wait_file(conf_file)
        res = run_sipp("conf_join_leave.xml", f"127.0.0.1:{plain_server.port}", calls=20, rate=20,
                       workdir=tmp_path / "members", extra=["-key", "conf", conf, "-d", "1000"])  # fmt: skip
        assert res.returncode == 0, sipp_errors(tmp_path / "members")
        assert owner.wait(30) == 0, sipp_errors(tmp_path / "owner")
    finally:
        if owner.poll() is None:
            owner.kill()
    assert plain_server.log().count(f"conf=sip:{conf}@localhost leg=") == 21
