"""End to end: floor-controlled audio over BFCP against the real server.

Three Python test UAs join one conference over SIP/TLS with SRTP, each offering a BFCP stream in its SDP:
the owner (chair) and carol over ``TCP/TLS/BFCP`` with client certificates whose fingerprints are in their
offers (the owner's from the conference CA, carol's self-signed), bob over ``TCP/BFCP``.  The BFCP side
is ``bfcp_client`` (independent of ``imsconf.floor``), which connects to the port of the SDP answer.  Bob
and carol request the audio floor; under chair control nothing happens until the owner grants bob: then
the owner hears bob's tone only; the owner revokes bob and grants carol: then it hears carol's only.  The
BFCP traffic is captured on loopback and tshark's BFCP dissector must decode every message (TLS decrypted
with the clients' key log) without errors.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import re
import shutil
import signal
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from bfcp_client import GRANTED, PENDING, REVOKED, BfcpClient
from harness import ServerProcess, free_port_pair, free_tcp_port, with_separate_mixer

from imsconf.app.pki import PkiPaths, ensure_dev_pki, issue_cert
from peers import require_peer
from uas import Call, UserAgent, tone_present
from uas.pki import self_signed_certificate

OWNER_HZ, BOB_HZ, CAROL_HZ = 440.0, 1000.0, 1700.0
pytestmark = pytest.mark.peer


def fingerprint(cert: Path) -> str:
    der = ssl.PEM_cert_to_DER_cert(cert.read_text())
    return hashlib.sha256(der).digest().hex(":").upper()


def sdp_attr(body: bytes, name: str) -> str:
    """The value of ``a=<name>:`` inside the m=application section of an answer."""
    text = body.decode()
    section = text[text.index("m=application") :]
    m = re.search(rf"^a={name}:(.*?)\r?$", section, re.M)
    assert m is not None, (name, text)
    return m.group(1).strip()


def bfcp_lines(proto: str, cert: Path | None) -> str:
    lines = [f"m=application 9 {proto} *", "a=setup:active", "a=connection:new", "a=floorctrl:c-only"]
    if cert is not None:
        lines.append(f"a=fingerprint:sha-256 {fingerprint(cert)}")
    return "\r\n".join(lines) + "\r\n"


def join(ua: UserAgent, target: str, proxy: tuple[str, int], extra_sdp: str) -> Call:
    """INVITE with our audio offer plus a BFCP m-line (the test UA builds audio only)."""
    call = ua.new_call(target)
    make_offer = call.make_offer

    def offer(new_key: bool = False, direction: str | None = None) -> bytes:
        return make_offer(new_key, direction) + extra_sdp.encode()

    call.make_offer = offer  # type: ignore[method-assign]
    fut = asyncio.run_coroutine_threadsafe(ua.invite(call, proxy, None, 10.0), ua.transport.loop)
    fut.result(15)
    assert call.state == "confirmed", call.final_response
    return call


class Dumpcap:
    def __init__(self, pcap: Path, ports: list[int]) -> None:
        tool = shutil.which("dumpcap") or require_peer("tshark")
        flt = " or ".join(f"tcp port {p}" for p in ports)
        self.log = pcap.with_suffix(".log")
        self.proc = subprocess.Popen(
            [tool, "-i", "lo", "-f", flt, "-q", "-w", str(pcap)],
            stdin=subprocess.DEVNULL,
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 10
        while "Capturing on" not in self.log.read_text(errors="replace"):
            assert self.proc.poll() is None and time.monotonic() < deadline, self.log.read_text()
            time.sleep(0.05)
        time.sleep(0.2)

    def stop(self) -> None:
        if self.proc.poll() is None:
            time.sleep(0.3)
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(params=["in-process", "separate-mixer"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[ServerProcess, int, int]]:
    """The server with its mixer in process or as a separate ``imsconf mixer``: floor-controlled audio is
    then set over the control channel."""
    tcp, tls = free_tcp_port(), free_tcp_port()
    config = tmp_path / "imsconf.toml"
    text = f'bfcp_listen = ["tcp:127.0.0.1:{tcp}", "tls:127.0.0.1:{tls}"]\nbfcp_policy = "chair"\n'
    srv = ServerProcess(tmp_path / "srv", free_port_pair())
    mixer = with_separate_mixer(srv, config, text) if request.param == "separate-mixer" else None
    if mixer is None:
        config.write_text(text)
    try:
        srv.start("--config", str(config), auth="none")
        assert f"bfcp-tls 127.0.0.1:{tls}" in "\n".join(srv.stdout_lines), srv.stdout_lines
        yield srv, tcp, tls
    finally:
        srv.stop()
        if mixer is not None:
            mixer.stop()
            assert "focus_connected" in mixer.log(), mixer.log()[-2000:]


def level(call: Call, hz: float, since: float) -> float:
    return tone_present(call.media.audio(since=since), hz)


def test_chair_grants_then_revokes_the_audio_floor(
    server: tuple[ServerProcess, int, int], tmp_path: Path
) -> None:
    tshark = require_peer("tshark")
    srv, tcp_port, tls_port = server
    pki: PkiPaths = ensure_dev_pki(srv.data_dir, ["localhost"])
    # the owner's certificate is from the conference CA, carol's is self-signed (RFC 8856 §4)
    certs = {
        "owner": issue_cert(pki, "owner-bfcp", tmp_path / "certs"),
        "carol": self_signed_certificate(tmp_path / "certs", "carol-bfcp"),
    }
    keylog = tmp_path / "tls-keys.log"
    pcap = tmp_path / "bfcp.pcapng"
    capture = Dumpcap(pcap, [tcp_port, tls_port])
    proxy = ("127.0.0.1", srv.tls_port)
    uas: list[UserAgent] = []
    clients: list[BfcpClient] = []

    def ua(user: str, hz: float) -> UserAgent:
        agent = UserAgent(user, transport="tls", ca_file=str(pki.ca_cert), tls_server_name="localhost",
                          tone_hz=hz, srtp=True, srtp_required=True).start()  # fmt: skip
        uas.append(agent)
        return agent

    def bfcp(call: Call, cert: tuple[Path, Path] | None) -> BfcpClient:
        body = call.final_response.body if call.final_response is not None else b""
        port = int(re.search(rb"m=application (\d+) ", body).group(1))  # type: ignore[union-attr]
        ctx = None
        if cert is not None:
            ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
            ctx.load_cert_chain(*cert)
            ctx.keylog_filename = str(keylog)
        client = BfcpClient("127.0.0.1", port, int(sdp_attr(body, "confid")), int(sdp_attr(body, "userid")),
                            ssl_context=ctx, server_hostname="localhost")  # fmt: skip
        if cert is not None:  # the server's certificate is the one its a=fingerprint names
            assert isinstance(client.sock, ssl.SSLSocket)
            der = client.sock.getpeercert(binary_form=True)
            assert der is not None
            assert sdp_attr(body, "fingerprint") == "sha-256 " + hashlib.sha256(der).digest().hex(":").upper()
        clients.append(client)
        return client

    try:
        owner = join(
            ua("owner", OWNER_HZ),
            "sip:conference-factory@localhost",
            proxy,
            bfcp_lines("TCP/TLS/BFCP", certs["owner"][0]),
        )
        conf_uri = owner.remote_target
        bob = join(ua("bob", BOB_HZ), conf_uri, proxy, bfcp_lines("TCP/BFCP", None))
        carol = join(ua("carol", CAROL_HZ), conf_uri, proxy, bfcp_lines("TCP/TLS/BFCP", certs["carol"][0]))
        for call in (owner, bob, carol):
            assert call.remote_sdp is not None and call.remote_sdp.proto == "RTP/SAVP"
            assert b"a=floorctrl:s-only" in (call.final_response.body if call.final_response else b"")
        chair, b_floor, c_floor = bfcp(owner, certs["owner"]), bfcp(bob, None), bfcp(carol, certs["carol"])
        for client in (chair, b_floor, c_floor):
            assert client.hello().primitive == 12  # HelloAck
        chair.floor_query(1)  # the chair watches the audio floor
        frid_b = b_floor.request_floor(1)
        frid_c = c_floor.request_floor(1)
        # nobody holds the floor: nobody is mixed
        time.sleep(1.0)
        t0 = time.monotonic()
        time.sleep(0.8)
        assert level(owner, BOB_HZ, t0) < -45 and level(owner, CAROL_HZ, t0) < -45

        assert chair.chair_action(frid_b, 1, GRANTED).primitive == 10  # ChairActionAck
        b_floor.wait_state(frid_b, GRANTED)
        time.sleep(0.5)
        t1 = time.monotonic()
        time.sleep(1.2)
        assert level(owner, BOB_HZ, t1) > -25, level(owner, BOB_HZ, t1)
        assert level(owner, CAROL_HZ, t1) < -45, level(owner, CAROL_HZ, t1)
        assert level(carol, BOB_HZ, t1) > -25  # the floor holder is heard by the others too
        c_state = c_floor.transact(3, b"\x06\x04" + frid_c.to_bytes(2, "big"))  # FloorRequestQuery
        assert c_state.request_state() == (frid_c, PENDING)

        assert chair.chair_action(frid_b, 1, REVOKED).primitive == 10
        b_floor.wait_state(frid_b, REVOKED)
        assert chair.chair_action(frid_c, 1, GRANTED).primitive == 10
        c_floor.wait_state(frid_c, GRANTED)
        time.sleep(0.5)
        t2 = time.monotonic()
        time.sleep(1.2)
        assert level(owner, CAROL_HZ, t2) > -25, level(owner, CAROL_HZ, t2)
        assert level(owner, BOB_HZ, t2) < -45, level(owner, BOB_HZ, t2)

        # bob may not act as the chair, nor as carol
        refused = b_floor.chair_action(frid_c, 1, REVOKED)
        assert (refused.primitive, refused.error_code()) == (13, 5)
        spoof = b_floor.transact(1, b"\x05\x04\x00\x01", user_id=c_floor.user_id)  # FloorRequest as carol
        assert (spoof.primitive, spoof.error_code()) == (13, 5)
        for client in (chair, b_floor, c_floor):
            assert client.goodbye().primitive == 17
    finally:
        for client in clients:
            client.close()
        for agent in uas:
            agent.close()
        capture.stop()

    rows = dissect(tshark, pcap, tcp_port)  # plain TCP: straight from the capture
    assert len(rows) >= 10, rows
    tls_rows = []
    for client_port, segments in decrypt_tls(tshark, pcap, keylog, tls_port).items():
        plain = tmp_path / f"tls-{client_port}.pcap"
        _write_pcap(plain, ("127.0.0.1", client_port), ("127.0.0.1", tls_port), segments)
        tls_rows += dissect(tshark, plain, tls_port)
    assert len(tls_rows) >= 10, "TLS traffic was not decrypted and dissected"
    primitives = [p for row in rows + tls_rows for p in row[1].split(",")]
    for needed in ("1", "4", "7", "8", "9", "10", "11", "12", "13", "16", "17"):
        assert needed in primitives, (needed, primitives)
    for row in rows + tls_rows:
        assert row[2] == "", row
        assert all(int(s) < 6291456 for s in row[3].split(",") if s), row  # no warnings or errors


def dissect(tshark: str, pcap: Path, port: int) -> list[list[str]]:
    result = subprocess.run(
        [tshark, "-n", "-r", str(pcap), "-d", f"tcp.port=={port},bfcp", "-Y", "bfcp",
         "-T", "fields", "-E", "separator=|", "-e", "tcp.dstport", "-e", "bfcp.primitive",
         "-e", "_ws.malformed", "-e", "_ws.expert.severity"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return [line.split("|") for line in result.stdout.splitlines()]


def decrypt_tls(tshark: str, pcap: Path, keylog: Path, port: int) -> dict[int, list[tuple[bool, bytes]]]:
    """tshark decrypts the TLS records (client key log): per client port, (from_client, plaintext)."""
    result = subprocess.run(
        [tshark, "-n", "-r", str(pcap), "-o", f"tls.keylog_file:{keylog}", "-d", f"tcp.port=={port},tls",
         "-d", f"tls.port=={port},data", "-Y", f"tcp.port=={port} and data",
         "-T", "fields", "-e", "tcp.srcport", "-e", "tcp.dstport", "-e", "data.data"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    out: dict[int, list[tuple[bool, bytes]]] = {}
    for line in result.stdout.splitlines():
        src, dst, data = line.split("\t")
        from_client = int(dst) == port
        client = int(src) if from_client else int(dst)
        for chunk in data.split(","):
            out.setdefault(client, []).append((from_client, bytes.fromhex(chunk)))
    return out


def _write_pcap(
    path: Path, client: tuple[str, int], server: tuple[str, int], segs: list[tuple[bool, bytes]]
) -> None:
    spec = importlib.util.spec_from_file_location(
        "bfcp_pcap", Path(__file__).parents[1] / "floor" / "bfcp_pcap.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.write_pcap(str(path), client, server, segs)
