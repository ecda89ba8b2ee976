"""The registrar of a standalone server (RFC 3261 §10) against the real server: SIPp registers with
digest (401, then 200 with the binding and Service-Route), refreshes, removes with Expires: 0 and gets a
400 for a bad Expires; the bindings survive a restart; a user registered here is reached by a REFER to
the focus at its registered contact (a SIPp answerer there); with the registrar off REGISTER is 405.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from baresip import free_udp_range
from harness import ServerProcess, free_port_pair, run_sipp, sipp_bg, sipp_errors, wait_file
from sipclient import SipClient, digest_authorization, header, status_of

pytestmark = pytest.mark.peer

_RTP = free_udp_range(200)
# SIPp 3.6 answers only the first challenge and knows only MD5
DIGEST = 'digest_algorithms = ["MD5", "SHA-256"]\n'
MEDIA = f"allow_plain_rtp = true\nallow_sdes_over_udp = true\nrtp_port_range = [{_RTP[0]}, {_RTP[1]}]\n"


def _start(base: Path, config: str, *, auth: str = "digest", users: bool = True) -> ServerProcess:
    cfg = base / "imsconf.toml"
    cfg.write_text(config)
    srv = ServerProcess(base / "var", free_port_pair())
    srv.data_dir.mkdir(parents=True, exist_ok=True)
    if users:
        srv.add_user("alice", "wonderland")
    srv.start("--config", str(cfg), auth=auth)
    return srv


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    srv = _start(tmp_path_factory.mktemp("registrar"), DIGEST)
    yield srv
    srv.stop()


def _messages(workdir: Path) -> str:
    return "".join(p.read_text(errors="replace") for p in workdir.glob("*_messages.log"))


@pytest.mark.parametrize("transport", ["u1", "t1"])
def test_sipp_registers_with_digest_refreshes_removes_and_gets_400(
    server: ServerProcess, transport: str, tmp_path: Path
) -> None:
    res = run_sipp("register_digest.xml", f"127.0.0.1:{server.port}", transport=transport,
                   workdir=tmp_path, extra=["-trace_msg"])  # fmt: skip
    assert res.returncode == 0, sipp_errors(tmp_path) + server.log()[-3000:]
    msgs = _messages(tmp_path)
    tp = "udp" if transport == "u1" else "tcp"
    assert f"Service-Route: <sip:127.0.0.1:{server.port};transport={tp};lr>" in msgs
    assert msgs.count("SIP/2.0 401 Unauthorized") == 4
    assert "SIP/2.0 400 Bad Request (bad Expires)" in msgs
    log = server.log()
    assert "event=registered aor=sip:alice@localhost bindings=1" in log
    assert "Traceback" not in log


def _register(c: SipClient, expires: int, cseq: int) -> bytes:
    """REGISTER alice's client address with digest; the final answer."""
    ruri = "sip:alice@localhost"
    first = c.request("REGISTER", ruri, cseq=cseq, call_id="reg-restart", extra=[f"Expires: {expires}"])
    assert status_of(first) == 401 and first is not None
    chal = next(ch for ch in header(first, "WWW-Authenticate") if "algorithm=MD5," in ch)
    auth = digest_authorization(chal, "REGISTER", ruri, "alice", "wonderland", "MD5")
    resp = c.request("REGISTER", ruri, cseq=cseq + 1, call_id="reg-restart",
                     extra=[f"Expires: {expires}", f"Authorization: {auth}"])  # fmt: skip
    assert resp is not None
    return resp


def test_bindings_survive_a_restart(tmp_path: Path) -> None:
    srv = _start(tmp_path, DIGEST)
    try:
        c = SipClient("udp", ("127.0.0.1", srv.port))
        try:
            resp = _register(c, 900, 1)
            assert status_of(resp) == 200, resp
            contact = f"<sip:alice@127.0.0.1:{c.local[1]};transport=udp>;expires=900"
            assert header(resp, "Contact") == [contact]
        finally:
            c.close()
        srv.stop()
        srv.start("--config", str(tmp_path / "imsconf.toml"))
        c = SipClient("udp", ("127.0.0.1", srv.port))
        try:
            # a second client registers: the 200 lists every binding of the AoR, the one made before the
            # restart included
            resp = _register(c, 600, 10)
            assert status_of(resp) == 200, resp
            listed = header(resp, "Contact")
            assert len(listed) == 2 and any(v.startswith(contact.split(";expires")[0]) for v in listed)
        finally:
            c.close()
        assert "event=registrations_loaded bindings=1" in srv.log()
    finally:
        srv.stop()


def test_registrar_off_leaves_register_unserved(tmp_path: Path) -> None:
    srv = _start(tmp_path, DIGEST + 'registrar = "off"\n')
    try:
        c = SipClient("udp", ("127.0.0.1", srv.port))
        try:
            resp = c.request("REGISTER", "sip:alice@localhost")
            assert status_of(resp) == 405 and resp is not None
            assert "REGISTER" not in header(resp, "Allow")[0]
            opts = c.request("OPTIONS", "sip:localhost")
            assert opts is not None and "REGISTER" not in header(opts, "Allow")[0]
        finally:
            c.close()
    finally:
        srv.stop()


def _finish(proc: subprocess.Popen[bytes], workdir: Path, srv: ServerProcess, timeout: float = 30) -> None:
    try:
        rc = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError(f"sipp in {workdir.name} hung: {sipp_errors(workdir)}") from None
    assert rc == 0, f"{workdir.name}: {sipp_errors(workdir)}\n{srv.log()[-4000:]}"


@pytest.mark.parametrize("transport", ["u1", "t1"])
def test_refer_to_focus_reaches_a_registered_user_at_its_contact(transport: str, tmp_path: Path) -> None:
    """Over TCP the phone registers from another connection than the one it answers on: the focus opens
    a connection to the registered contact."""
    srv = _start(tmp_path, MEDIA, auth="none", users=False)
    try:
        port = free_port_pair()
        # the registered phone: a SIPp answering at 127.0.0.1:port, registered by another SIPp
        uas = sipp_bg("conf_uas.xml", srv.port, transport, tmp_path / "phone", "-p", str(port),
                      "-s", "invitee", "-trace_msg")  # fmt: skip
        res = run_sipp("register_contact.xml", f"127.0.0.1:{srv.port}", transport=transport,
                       workdir=tmp_path / "register",
                       extra=["-s", "invitee", "-key", "contact_port", str(port)])  # fmt: skip
        assert res.returncode == 0, sipp_errors(tmp_path / "register") + srv.log()[-3000:]
        conf_file = tmp_path / "conf.txt"
        owner = sipp_bg("conf_create.xml", srv.port, transport, tmp_path / "owner",
                        "-key", "conf_file", str(conf_file), "-d", "3000")  # fmt: skip
        conf = wait_file(conf_file)
        # the REFER names the AoR only: no host or port of the phone
        res = run_sipp("conf_refer.xml", f"127.0.0.1:{srv.port}", transport=transport,
                       workdir=tmp_path / "refer",
                       extra=["-key", "conf", conf, "-key", "refer_from", "owner",
                              "-key", "refer_to", "sip:invitee@localhost"])  # fmt: skip
        assert res.returncode == 0, sipp_errors(tmp_path / "refer") + srv.log()[-3000:]
        _finish(owner, tmp_path / "owner", srv)
        _finish(uas, tmp_path / "phone", srv)
        msgs = _messages(tmp_path / "phone")
        tp = "UDP" if transport == "u1" else "TCP"
        assert f"INVITE sip:invitee@127.0.0.1:{port};transport={tp} SIP/2.0" in msgs
        assert "To: <sip:invitee@localhost>" in msgs
        log = srv.log()
        assert f"target=sip:invitee@localhost dst={tp.lower()}:127.0.0.1:{port}" in log
        assert "Traceback" not in log
    finally:
        srv.stop()


def test_registering_another_users_aor_is_403(tmp_path: Path) -> None:
    """Digest-authenticated as mallory, a REGISTER for alice's AoR is refused; the log says why."""
    srv = _start(tmp_path, DIGEST)
    try:
        srv.add_user("mallory", "secret")
        c = SipClient("udp", ("127.0.0.1", srv.port))
        try:
            ruri = "sip:alice@localhost"
            first = c.request("REGISTER", ruri, call_id="steal")
            assert first is not None and status_of(first) == 401
            chal = next(ch for ch in header(first, "WWW-Authenticate") if "algorithm=MD5," in ch)
            auth = digest_authorization(chal, "REGISTER", ruri, "mallory", "secret", "MD5")
            resp = c.request("REGISTER", ruri, cseq=2, call_id="steal", extra=[f"Authorization: {auth}"])
            assert status_of(resp) == 403
        finally:
            c.close()
        time.sleep(0.1)
        assert "event=register_refused aor=sip:alice@localhost status=403" in srv.log()
    finally:
        srv.stop()
