"""The real server, started as `imsconf serve`, driven by SIPp, raw sockets and a TLS client."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import REPO, ServerProcess, free_port_pair, run_sipp, sipp_errors
from sipclient import SipClient, build_request, digest_authorization, header, status_of

RFC4475 = REPO / "tests" / "data" / "rfc4475"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    srv = ServerProcess(tmp_path_factory.mktemp("srv") / "var", free_port_pair())
    srv.data_dir.mkdir(parents=True)
    srv.add_user("alice", "wonderland")
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def md5_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """Offers MD5 first: SIPp 3.6 answers only the first challenge and knows only MD5."""
    base = tmp_path_factory.mktemp("md5")
    cfg = base / "imsconf.toml"
    cfg.write_text('digest_algorithms = ["MD5", "SHA-256"]\n')
    srv = ServerProcess(base / "var", free_port_pair())
    srv.data_dir.mkdir(parents=True)
    srv.add_user("alice", "wonderland")
    srv.start("--config", str(cfg))
    yield srv
    srv.stop()


def test_startup_prints_transports_and_factory(server: ServerProcess) -> None:
    lines = server.stdout_lines
    assert f"listening udp 127.0.0.1:{server.port}" in lines
    assert f"listening tcp 127.0.0.1:{server.port}" in lines
    assert f"listening tls 127.0.0.1:{server.tls_port}" in lines
    assert "conference factory sip:conference-factory@localhost" in lines


def test_dev_pki_created(server: ServerProcess) -> None:
    pki = server.data_dir / "pki"
    for name in ("ca.pem", "ca.key", "server.pem", "server.key", "server-combined.pem"):
        assert (pki / name).is_file(), name
    assert (pki / "server.key").stat().st_mode & 0o077 == 0


def test_users_file_holds_no_clear_password(server: ServerProcess) -> None:
    text = (server.data_dir / "users.json").read_text()
    assert "wonderland" not in text
    assert "alice" in text


@pytest.mark.peer
@pytest.mark.parametrize("transport", ["u1", "t1"])
def test_sipp_options(server: ServerProcess, transport: str, tmp_path: Path) -> None:
    res = run_sipp("options.xml", f"127.0.0.1:{server.port}", transport=transport, workdir=tmp_path)
    assert res.returncode == 0, sipp_errors(tmp_path) + res.stderr


@pytest.mark.peer
@pytest.mark.parametrize("transport", ["u1", "t1"])
def test_sipp_digest_authenticated_invite(md5_server: ServerProcess, transport: str, tmp_path: Path) -> None:
    res = run_sipp(
        "auth_invite.xml",
        f"127.0.0.1:{md5_server.port}",
        transport=transport,
        workdir=tmp_path,
        extra=["-s", "nobody"],
    )
    assert res.returncode == 0, sipp_errors(tmp_path) + res.stderr + md5_server.log()[-2000:]


@pytest.mark.peer
def test_sipp_wrong_password_is_refused(md5_server: ServerProcess, tmp_path: Path) -> None:
    scen = (Path(__file__).parent / "scenarios" / "auth_invite.xml").read_text()
    bad = tmp_path / "bad.xml"
    bad.write_text(scen.replace("password=wonderland", "password=guess"))
    res = run_sipp(bad, f"127.0.0.1:{md5_server.port}", workdir=tmp_path, extra=["-s", "nobody"], timeout=8)
    assert res.returncode != 0  # the second INVITE is challenged again instead of reaching 404


def test_tls_options_with_verified_certificate(server: ServerProcess) -> None:
    c = SipClient("tls", ("127.0.0.1", server.tls_port), ca=server.data_dir / "pki" / "ca.pem")
    try:
        resp = c.request("OPTIONS", f"sip:127.0.0.1:{server.tls_port}")
        assert status_of(resp) == 200
        assert resp is not None
        allow = ",".join(header(resp, "Allow"))
        assert "INVITE" in allow and "OPTIONS" in allow
        assert "application/sdp" in ",".join(header(resp, "Accept"))
    finally:
        c.close()


@pytest.mark.parametrize("algorithm", ["SHA-256", "MD5"])
def test_tls_digest_authentication(server: ServerProcess, algorithm: str) -> None:
    c = SipClient("tls", ("127.0.0.1", server.tls_port), ca=server.data_dir / "pki" / "ca.pem")
    ruri = "sip:nobody@localhost"
    try:
        first = c.request("INVITE", ruri, cseq=1, call_id="auth-" + algorithm)
        assert status_of(first) == 401
        assert first is not None
        challenges = header(first, "WWW-Authenticate")
        assert "algorithm=SHA-256" in challenges[0]  # preferred first (RFC 8760)
        chal = next(ch for ch in challenges if f"algorithm={algorithm}," in ch)
        auth = digest_authorization(chal, "INVITE", ruri, "alice", "wonderland", algorithm)
        second = c.request(
            "INVITE", ruri, cseq=2, call_id="auth2-" + algorithm, extra=[f"Authorization: {auth}"]
        )
        assert status_of(second) == 404  # authenticated, and nobody is served there
        wrong = digest_authorization(chal, "INVITE", ruri, "alice", "nope", algorithm)
        third = c.request(
            "INVITE", ruri, cseq=3, call_id="auth3-" + algorithm, extra=[f"Authorization: {wrong}"]
        )
        assert status_of(third) == 401
    finally:
        c.close()


# ---- answers real peers rely on, over UDP and TCP ----------------------------------------------------

CASES = [
    # (description, method, extra headers, expected status, text the reason phrase or a header must carry)
    ("unknown method", "FOO", [], 501, None),
    ("known method not served", "PUBLISH", [], 405, "Allow"),
    ("Max-Forwards 0", "INVITE", ["Max-Forwards: 0"], 483, None),
    ("unsupported Require", "INVITE", ["Require: foo, 100rel"], 420, "Unsupported"),
]


@pytest.mark.parametrize("transport", ["udp", "tcp"])
@pytest.mark.parametrize(("desc", "method", "extra", "status", "must"), CASES, ids=[c[0] for c in CASES])
def test_core_answers(
    server: ServerProcess,
    transport: str,
    desc: str,
    method: str,
    extra: list[str],
    status: int,
    must: str | None,
) -> None:
    c = SipClient(transport, ("127.0.0.1", server.port))
    try:
        mf = [h for h in extra if h.startswith("Max-Forwards")]
        others = [h for h in extra if not h.startswith("Max-Forwards")]
        data = build_request(
            method, "sip:conference-factory@localhost", transport=transport, local=c.local, extra=others
        )
        if mf:
            data = data.replace(b"Max-Forwards: 70", mf[0].encode())
        c.send_raw(data)
        resp = c.recv_final()
        assert status_of(resp) == status, resp
        assert resp is not None
        if must == "Unsupported":
            assert header(resp, "Unsupported") and "foo" in header(resp, "Unsupported")[0]
        elif must:
            assert header(resp, must)
    finally:
        c.close()


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_malformed_request_gets_400_naming_the_fault(server: ServerProcess, transport: str) -> None:
    c = SipClient(transport, ("127.0.0.1", server.port))
    try:
        data = build_request("OPTIONS", "sip:localhost", transport=transport, local=c.local)
        data = data.replace(b"CSeq: 1 OPTIONS", b"CSeq: 1 INVITE")
        c.send_raw(data)
        resp = c.recv_final()
        assert status_of(resp) == 400
        assert resp is not None
        assert b"CSeq" in resp.split(b"\r\n")[0]  # the reason phrase names the fault
    finally:
        c.close()


def test_other_sip_version_gets_505(server: ServerProcess) -> None:
    c = SipClient("udp", ("127.0.0.1", server.port))
    try:
        data = build_request("OPTIONS", "sip:localhost", transport="udp", local=c.local)
        c.send_raw(data.replace(b"SIP/2.0\r\n", b"SIP/7.0\r\n", 1))
        assert status_of(c.recv_final()) == 505
    finally:
        c.close()


def test_oversize_stream_message_gets_513_and_close(server: ServerProcess) -> None:
    c = SipClient("tcp", ("127.0.0.1", server.port))
    try:
        data = build_request("OPTIONS", "sip:localhost", transport="tcp", local=c.local)
        data = data.replace(b"Content-Length: 0", b"Content-Type: text/plain\r\nContent-Length: 900000")
        c.send_raw(data)
        assert status_of(c.recv_final()) == 513
        assert c.recv_message(2.0) is None  # connection closed, no hang
    finally:
        c.close()


def test_tcp_fragmented_and_pipelined(server: ServerProcess) -> None:
    c = SipClient("tcp", ("127.0.0.1", server.port))
    try:
        one = build_request("OPTIONS", "sip:localhost", transport="tcp", local=c.local, call_id="p1")
        two = build_request("OPTIONS", "sip:localhost", transport="tcp", local=c.local, call_id="p2")
        c.send_raw(one + two)  # pipelined
        three = build_request("OPTIONS", "sip:localhost", transport="tcp", local=c.local, call_id="p3")
        for i in range(0, len(three), 7):  # fragmented
            c.send_raw(three[i : i + 7])
            time.sleep(0.001)
        got = [c.recv_message() for _ in range(3)]
        assert [status_of(m) for m in got] == [200, 200, 200]
        ids = [header(m, "Call-ID")[0] for m in got if m is not None]
        assert ids == ["p1", "p2", "p3"]
    finally:
        c.close()


def test_tcp_crlf_keepalive_gets_pong(server: ServerProcess) -> None:
    s = socket.create_connection(("127.0.0.1", server.port), timeout=3)
    try:
        s.sendall(b"\r\n\r\n")
        assert s.recv(16) == b"\r\n"
    finally:
        s.close()


def _alive(server: ServerProcess) -> bool:
    c = SipClient("udp", ("127.0.0.1", server.port))
    try:
        return status_of(c.request("OPTIONS", "sip:localhost")) == 200
    finally:
        c.close()


def test_garbage_and_garbled_responses_are_dropped(server: ServerProcess) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.5)
    try:
        for junk in [b"\x00\xff" * 50, b"SIP/2.0 999999 Nope\r\n\r\n", b"SIP/2.0 200 OK\r\nVia: ???\r\n\r\n",
                     b"INVITE\r\n\r\n", b"\r\n"]:  # fmt: skip
            s.sendto(junk, ("127.0.0.1", server.port))
            with pytest.raises(TimeoutError):
                s.recvfrom(65535)
    finally:
        s.close()
    assert _alive(server)
    t = socket.create_connection(("127.0.0.1", server.port), timeout=3)
    t.sendall(b"\x16\x03\x01 this is not SIP at all\r\n\r\n")
    t.settimeout(3)
    try:
        t.recv(100)  # closed (b"") or an error answer, never a hang
    except (ConnectionResetError, TimeoutError):
        pass
    t.close()
    assert server.alive() and _alive(server)
    assert "Traceback" not in server.log()


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_rfc4475_torture_messages_never_kill_the_server(transport: str, tmp_path: Path) -> None:
    # a server of its own: the vectors share branches, so another run's transactions would absorb them
    server = ServerProcess(tmp_path / "var", free_port_pair())
    server.start()
    try:
        _torture(server, transport)
    finally:
        server.stop()


def _torture(server: ServerProcess, transport: str) -> None:
    files = sorted(RFC4475.glob("*.dat"))
    assert len(files) == 49
    answers: dict[str, int | None] = {}
    for f in files:
        c = SipClient(transport, ("127.0.0.1", server.port))
        try:
            c.send_raw(f.read_bytes())
            # over UDP the answer goes to the Via's sent-by (hosts of example.com), so only TCP sees it
            answers[f.stem] = status_of(c.recv_final(timeout=0.6 if transport == "tcp" else 0.05))
        finally:
            c.close()
    assert server.alive() and _alive(server)
    assert "Traceback" not in server.log()
    if transport == "udp":
        return
    assert answers["badvers"] == 505
    for name in ("mismatch01", "ltgtruri", "lwsruri", "lwsstart", "trws", "escruri", "badaspec", "baddn",
                 "badinv01", "ncl", "scalar02", "quotbal", "insuf", "multi01", "mcl01"):  # fmt: skip
        assert answers[name] == 400, name
    assert answers["bext01"] == 420
    assert answers["zeromf"] == 200  # OPTIONS is answered even at Max-Forwards 0 (RFC 3261 §16.3)
    assert answers["unkscm"] == 416
    assert answers["mismatch02"] in (400, 501)
    assert answers["bigcode"] is None and answers["scalarlg"] is None  # garbled responses: dropped
    # RFC 4475 §3.1.2.2: over a stream, a Content-Length beyond the data means "wait for more"
    assert answers["clerr"] is None


def test_users_cli(tmp_path: Path) -> None:
    def cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "imsconf.cli", "users", "--data-dir", str(tmp_path), *args],
            input=stdin, capture_output=True, text=True, cwd=REPO,
        )  # fmt: skip

    assert cli("add", "bob", "--password-stdin", stdin="s3cret\n").returncode == 0
    assert cli("list").stdout.split() == ["bob"]
    assert "s3cret" not in (tmp_path / "users.json").read_text()
    assert cli("add", "bad user", "--password-stdin", stdin="x\n").returncode != 0
    assert cli("remove", "bob").returncode == 0
    assert cli("list").stdout.split() == []
    assert cli("remove", "bob").returncode != 0


def test_sigterm_stops_within_two_seconds_and_pki_is_kept(tmp_path: Path) -> None:
    srv = ServerProcess(tmp_path / "var", free_port_pair())
    srv.start()
    before = {p.name: p.read_bytes() for p in (srv.data_dir / "pki").iterdir()}
    took = srv.stop()
    assert took < 2.0
    assert srv.proc is not None and srv.proc.returncode == 0
    srv.start()  # second start: the existing certificates are never overwritten
    after = {p.name: p.read_bytes() for p in (srv.data_dir / "pki").iterdir()}
    took = srv.stop(sig=2)  # SIGINT
    assert took < 2.0
    assert before == after
