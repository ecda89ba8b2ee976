"""IMS mode against the real server, driven by SIPp: P-Asserted-Identity from a trusted address only
(RFC 3325), reliable provisional responses (RFC 3262) and preconditions (RFC 3312) with UPDATE (RFC 3311).

The trusted peer (the S-CSCF) is 127.0.0.2: SIPp binds it with ``-i 127.0.0.2``; SIPp on 127.0.0.1 is a
phone outside the trust domain. SIPp has no SRTP, so the server runs with plain RTP allowed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from baresip import free_udp_range
from harness import ServerProcess, free_port_pair, run_sipp, sipp_bg, sipp_errors, wait_file

pytestmark = pytest.mark.peer

_RTP = free_udp_range(200)
TRUSTED = "127.0.0.2"
ASSERTED = "sip:+15550001@ims.example.net"
FORGED = "sip:forged-boss@ims.example.net"


def _server(base: Path, auth: str) -> ServerProcess:
    cfg = base / "imsconf.toml"
    cfg.write_text(
        f"allow_plain_rtp = true\nallow_sdes_over_udp = true\nrtp_port_range = [{_RTP[0]}, {_RTP[1]}]\n"
        f'trusted_peers = ["{TRUSTED}"]\n'
    )
    srv = ServerProcess(base / "var", free_port_pair())
    srv.start("--config", str(cfg), auth=auth)
    return srv


@pytest.fixture(scope="module")
def open_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    srv = _server(tmp_path_factory.mktemp("ims-open"), "none")
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def digest_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    srv = _server(tmp_path_factory.mktemp("ims-digest"), "digest")
    yield srv
    srv.stop()


def _keys(**values: str) -> list[str]:
    out: list[str] = []
    for k, v in values.items():
        out += ["-key", k, v]
    return out


def test_trusted_pai_is_the_identity_untrusted_pai_is_ignored(
    open_server: ServerProcess, tmp_path: Path
) -> None:
    conf_file = tmp_path / "conf.txt"
    owner = sipp_bg(
        "ims_pai_call.xml", open_server.port, "u1", tmp_path / "owner", "-i", TRUSTED, "-d", "4000",
        *_keys(ruri="conference-factory", pai=ASSERTED, conf_file=str(conf_file), caller="owner"),
    )  # fmt: skip
    try:
        conf = wait_file(conf_file)
        res = run_sipp(
            "ims_pai_call.xml", f"127.0.0.1:{open_server.port}", workdir=tmp_path / "phone",
            extra=["-d", "300", *_keys(ruri=conf, pai=FORGED, conf_file=str(tmp_path / "c"), caller="phone")],
        )  # fmt: skip
        assert res.returncode == 0, sipp_errors(tmp_path / "phone") + open_server.log()[-3000:]
        assert owner.wait(30) == 0, sipp_errors(tmp_path / "owner")
    finally:
        if owner.poll() is None:
            owner.kill()
    log = open_server.log()
    joined = [line for line in log.splitlines() if "event=participant_joined" in line]
    assert any(f"user={ASSERTED} " in line and line.endswith("identity=asserted") for line in joined), joined
    assert any("user=sip:phone@127.0.0.1 " in line and line.endswith("identity=none") for line in joined), (
        joined
    )
    assert "forged-boss" not in log  # never taken, never shown
    assert "event=asserted_identity_ignored src=udp:127.0.0.1" in log
    assert re.search(rf"event=conference_created .* owner={re.escape(ASSERTED)}", log)
    assert "Traceback" not in log


def test_trusted_peer_needs_no_digest_untrusted_is_challenged(
    digest_server: ServerProcess, tmp_path: Path
) -> None:
    res = run_sipp(
        "ims_pai_call.xml", f"127.0.0.1:{digest_server.port}", workdir=tmp_path / "scscf",
        extra=["-i", TRUSTED, "-d", "200",
               *_keys(ruri="conference-factory", pai=ASSERTED, conf_file=str(tmp_path / "c"), caller="ue")],
    )  # fmt: skip
    assert res.returncode == 0, sipp_errors(tmp_path / "scscf") + digest_server.log()[-3000:]
    res = run_sipp(
        "ims_pai_challenged.xml",
        f"127.0.0.1:{digest_server.port}",
        workdir=tmp_path / "phone",
        extra=_keys(ruri="conference-factory", pai=FORGED, caller="phone"),
    )
    assert res.returncode == 0, sipp_errors(tmp_path / "phone") + digest_server.log()[-3000:]
    log = digest_server.log()
    assert f"user={ASSERTED} " in log and "forged-boss" not in log


@pytest.mark.parametrize("transport", ["u1", "t1"])
def test_100rel_invite_183_prack_200_ack_bye(
    open_server: ServerProcess, transport: str, tmp_path: Path
) -> None:
    res = run_sipp(
        "ims_100rel.xml", f"127.0.0.1:{open_server.port}", transport=transport, workdir=tmp_path,
        extra=["-d", "300"],
    )  # fmt: skip
    assert res.returncode == 0, sipp_errors(tmp_path) + open_server.log()[-3000:]
    log = open_server.log()
    assert "user=sip:ue@127.0.0.1 " in log and "event=no_prack" not in log
    assert "Traceback" not in log


@pytest.mark.parametrize("transport", ["u1", "t1"])
def test_precondition_invite_183_prack_update_200(
    open_server: ServerProcess, transport: str, tmp_path: Path
) -> None:
    res = run_sipp(
        "ims_precondition.xml", f"127.0.0.1:{open_server.port}", transport=transport, workdir=tmp_path,
        extra=["-d", "300"],
    )  # fmt: skip
    assert res.returncode == 0, sipp_errors(tmp_path) + open_server.log()[-3000:]
    log = open_server.log()
    assert "event=preconditions_met" in log and "Traceback" not in log
