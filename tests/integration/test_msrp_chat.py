"""End to end: session-mode IM, the focus as the MSRP chat switch (RFC 7701), against the real server.

Python test UAs join one conference over SIP/TLS, each offering an ``m=message ... TCP/TLS/MSRP`` stream
with the ``a=fingerprint`` of its client certificate (issued by the conference CA; one participant's is
self-signed, RFC 4975 §14.4). ``msrp_client`` (its
own MSRP framing, not ``imsconf.im``) connects over TLS to the ``a=path`` of the answer: a message from
the owner reaches the two others in CPIM with the sender named, a private message only its target, a
chunked message arrives whole, a late joiner gets the history, and a connection that addresses a wrong
session-id is refused. A second run over plain ``TCP/MSRP`` (``allow_plain_msrp = true``) is captured with
dumpcap and tshark's MSRP dissector decodes every frame without a malformed-packet or expert warning.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import shutil
import signal
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import ServerProcess, free_port_pair, free_tcp_port
from msrp_client import MsrpClient, cpim_headers
from sipclient import SipClient, build_request

from imsconf.app.pki import PkiPaths, ensure_dev_pki, issue_cert
from peers import require_peer
from uas import Call, UserAgent
from uas.pki import self_signed_certificate

pytestmark = pytest.mark.peer


def fingerprint(cert: Path) -> str:
    der = ssl.PEM_cert_to_DER_cert(cert.read_text())
    return hashlib.sha256(der).digest().hex(":").upper()


def message_lines(proto: str, own_path: str, cert: Path | None) -> str:
    lines = [f"m=message 9 {proto} *", "a=accept-types:message/cpim text/plain", f"a=path:{own_path}"]
    if cert is not None:
        lines.append(f"a=fingerprint:sha-256 {fingerprint(cert)}")
    return "\r\n".join(lines) + "\r\n"


def join(
    ua: UserAgent, target: str, proxy: tuple[str, int], extra_sdp: str, *, chat_only: bool = False
) -> Call:
    """INVITE with our audio offer plus an m=message line (the test UA builds audio only); *chat_only*:
    the m=message line alone (the session part of the UA's offer kept, its audio line left out)."""
    call = ua.new_call(target)
    make_offer = call.make_offer

    def offer(new_key: bool = False, direction: str | None = None) -> bytes:
        sdp = make_offer(new_key, direction)
        if chat_only:
            sdp = sdp.split(b"m=audio", 1)[0]
        return sdp + extra_sdp.encode()

    def no_audio(body: bytes) -> None:
        assert b"m=audio" not in body, body  # nothing to set up: the answer has only the message line

    call.make_offer = offer  # type: ignore[method-assign]
    if chat_only:
        call.apply_answer = no_audio  # type: ignore[method-assign]
    fut = asyncio.run_coroutine_threadsafe(ua.invite(call, proxy, None, 10.0), ua.transport.loop)
    fut.result(15)
    assert call.state == "confirmed", call.final_response
    return call


def answer_path(call: Call) -> str:
    body = call.final_response.body if call.final_response is not None else b""
    m = re.search(rb"m=message (\d+) [^\r\n]*\r\n(?:[^m][^\r\n]*\r\n)*?a=path:([^\r\n]+)", body)
    assert m is not None and int(m.group(1)) != 0, body
    return m.group(2).decode()


def port_of(path: str) -> int:
    m = re.search(r"://[^/]*:(\d+)/", path)
    assert m is not None, path
    return int(m.group(1))


class Dumpcap:
    """dumpcap on loopback for the given TCP ports (only this process is signalled, by PID)."""

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


@pytest.fixture
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[ServerProcess, int]]:
    plain = getattr(request, "param", False)
    port = free_tcp_port()
    config = tmp_path / "imsconf.toml"
    listen = f"tcp:127.0.0.1:{port}" if plain else f"tls:127.0.0.1:{port}"
    config.write_text(
        f'msrp_listen = ["{listen}"]\nallow_plain_msrp = {str(plain).lower()}\nchat_history = 5\n'
    )
    srv = ServerProcess(tmp_path / "srv", free_port_pair())
    try:
        srv.start("--config", str(config), auth="none")
        kind = "msrp-tcp" if plain else "msrp-tls"
        assert f"{kind} 127.0.0.1:{port}" in "\n".join(srv.stdout_lines), srv.stdout_lines
        yield srv, port
    finally:
        srv.stop()


def fetch_conference_state(room: Room) -> bytes:
    """A fetch (SUBSCRIBE, Expires: 0) of the conference package over TLS as alice; the NOTIFY's body."""
    sip = SipClient("tls", ("127.0.0.1", room.srv.tls_port), ca=room.pki.ca_cert)
    try:
        req = build_request(
            "SUBSCRIBE",
            room.conf_uri,
            transport="tls",
            local=sip.local,
            extra=["Event: conference", "Expires: 0", "Accept: application/conference-info+xml"],
        )
        sip.send_raw(req)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            msg = sip.recv_message(1.0)
            if msg is not None and msg.startswith(b"NOTIFY "):
                return msg.split(b"\r\n\r\n", 1)[1]
        raise AssertionError("no NOTIFY")
    finally:
        sip.close()


class Room:
    def __init__(self, srv: ServerProcess, tmp_path: Path, *, plain: bool = False) -> None:
        self.srv, self.tmp, self.plain = srv, tmp_path, plain
        self.pki: PkiPaths = ensure_dev_pki(srv.data_dir, ["localhost"])
        self.proxy = ("127.0.0.1", srv.tls_port)
        self.uas: list[UserAgent] = []
        self.clients: list[MsrpClient] = []
        self.conf_uri = ""

    def enter(
        self, user: str, *, chat_only: bool = False, self_signed: bool = False
    ) -> tuple[MsrpClient, str]:
        """Join with an MSRP stream (and audio unless *chat_only*), connect, open the session with an empty
        SEND; (client, focus path). The client certificate is from the conference CA, or *self_signed*."""
        agent = UserAgent(user, transport="tls", ca_file=str(self.pki.ca_cert), tls_server_name="localhost",
                          srtp=True, srtp_required=True).start()  # fmt: skip
        self.uas.append(agent)
        cert = None
        if self_signed:
            cert = self_signed_certificate(self.tmp / "certs", f"{user}-msrp")
        elif not self.plain:
            cert = issue_cert(self.pki, f"{user}-msrp", self.tmp / "certs")
        own = f"msrp{'' if self.plain else 's'}://127.0.0.1:9/{user}{time.monotonic_ns()};tcp"
        proto = "TCP/MSRP" if self.plain else "TCP/TLS/MSRP"
        call = join(agent, self.conf_uri or "sip:conference-factory@localhost", self.proxy,
                    message_lines(proto, own, cert[0] if cert else None), chat_only=chat_only)  # fmt: skip
        if not self.conf_uri:
            assert call.remote_target is not None
            self.conf_uri = call.remote_target
        path = answer_path(call)
        assert path.startswith("msrp://" if self.plain else "msrps://"), path
        client = MsrpClient("127.0.0.1", port_of(path), own, self.context(cert))
        self.clients.append(client)
        [tid] = client.send(path, b"")
        resp = client.response(tid)
        assert resp is not None and resp.status == 200, resp
        return client, path

    def context(self, cert: tuple[Path, Path] | None) -> ssl.SSLContext | None:
        if self.plain:
            return None
        ctx = ssl.create_default_context(cafile=str(self.pki.ca_cert))
        if cert is not None:
            ctx.load_cert_chain(*cert)
        return ctx

    def close(self) -> None:
        for client in self.clients:
            client.close()
        for agent in self.uas:
            agent.close()


def test_chat_relay_private_chunked_history_and_refusal(
    server: tuple[ServerProcess, int], tmp_path: Path
) -> None:
    srv, _port = server
    room = Room(srv, tmp_path)
    try:
        alice, a_path = room.enter("alice")
        bob, b_path = room.enter("bob")
        carol, c_path = room.enter("carol")
        assert len({a_path, b_path, c_path}) == 3  # one session-id each

        [tid] = alice.send(a_path, b"hello everyone")
        assert (r := alice.response(tid)) is not None and r.status == 200
        for who in (bob, carol):
            [msg] = who.messages(1)
            assert msg.content_type == "message/cpim"
            headers, ctype, content = cpim_headers(msg.body)
            assert headers["From"] == ["<sip:alice@localhost>"], headers
            assert headers["To"][0].startswith("<sip:conf-"), headers
            assert "DateTime" in headers
            assert (ctype, content) == ("text/plain", b"hello everyone")
        assert alice.messages(1, timeout=0.5) == []

        # a private message from bob to carol only
        private = (b"From: <sip:bob@localhost>\r\nTo: <sip:carol@localhost>\r\n\r\n"
                   b"Content-Type: text/plain\r\n\r\njust for you")  # fmt: skip
        [tid] = bob.send(b_path, private, "message/cpim")
        assert (r := bob.response(tid)) is not None and r.status == 200
        [msg] = carol.messages(1)
        headers, _, content = cpim_headers(msg.body)
        assert content == b"just for you" and headers["From"] == ["<sip:bob@localhost>"]
        assert headers["To"] == ["<sip:carol@localhost>"]
        assert alice.messages(1, timeout=0.5) == []

        # a chunked message arrives whole (the focus cuts its own chunks again)
        big = "".join(f"line {i:05d}\n" for i in range(1200)).encode()
        tids = carol.send(c_path, big, chunks=5)
        assert all((r := carol.response(t)) is not None and r.status == 200 for t in tids)
        for who in (alice, bob):
            [msg] = who.messages(1)
            _, _, content = cpim_headers(msg.body)
            assert content == big

        # a late joiner gets the public messages as history, marked as such
        dave, _ = room.enter("dave")
        history = dave.messages(2)
        assert len(history) == 2, history
        for msg in history:
            headers, _, _ = cpim_headers(msg.body)
            assert headers["NS"] == ["imsconf <urn:imsconf:params:cpim>"]
            assert headers["imsconf.History"] == ["original"]
        assert cpim_headers(history[0].body)[2] == b"hello everyone"
        assert cpim_headers(history[1].body)[2] == big

        # a chat-only participant (m=message alone, no audio): history, then it chats both ways
        erin, e_path = room.enter("erin", chat_only=True)
        assert [cpim_headers(m.body)[2] for m in erin.messages(2)] == [b"hello everyone", big]
        [tid] = erin.send(e_path, b"text only, no audio")
        assert (r := erin.response(tid)) is not None and r.status == 200
        for who in (alice, bob, carol, dave):
            [msg] = who.messages(1)
            headers, _, content = cpim_headers(msg.body)
            assert content == b"text only, no audio" and headers["From"] == ["<sip:erin@localhost>"]
        [tid] = bob.send(b_path, b"welcome erin")
        assert (r := bob.response(tid)) is not None and r.status == 200
        [msg] = erin.messages(1)
        assert cpim_headers(msg.body)[2] == b"welcome erin"
        for who in (alice, carol, dave):
            assert len(who.messages(1)) == 1

        # the event package lists each chat participant's message media; erin has no audio
        notify = fetch_conference_state(room)
        assert notify.count(b"<type>message</type>") == 5, notify
        assert notify.count(b"<type>audio</type>") == 4, notify

        # a self-signed client certificate whose fingerprint was in the SDP (RFC 4975 §14.4): history, chat
        frank, f_path = room.enter("frank", self_signed=True)
        assert len(frank.messages(4)) == 4
        [tid] = frank.send(f_path, b"self-signed and welcome")
        assert (r := frank.response(tid)) is not None and r.status == 200
        for who in (alice, bob, carol, dave, erin):
            [msg] = who.messages(1)
            assert cpim_headers(msg.body)[2] == b"self-signed and welcome"

        # a connection that names a session-id the focus did not hand out is refused and closed
        cert = issue_cert(room.pki, "mallory-msrp", tmp_path / "certs")
        wrong = a_path.rsplit("/", 1)[0] + "/guessed-session-id;tcp"
        mallory = MsrpClient(
            "127.0.0.1", port_of(a_path), "msrps://127.0.0.1:9/mallory;tcp", room.context(cert)
        )
        room.clients.append(mallory)
        [tid] = mallory.send(wrong, b"let me in")
        resp = mallory.response(tid)
        assert resp is not None and resp.status == 481
        with pytest.raises(EOFError):
            mallory.next_frame(5)
        # the real session-id with another certificate than the one in alice's SDP: refused too
        intruder = MsrpClient("127.0.0.1", port_of(a_path), "msrps://127.0.0.1:9/x1;tcp", room.context(cert))
        room.clients.append(intruder)
        [tid] = intruder.send(a_path, b"")
        resp = intruder.response(tid)
        assert resp is not None and resp.status == 403
        assert bob.messages(1, timeout=0.5) == []  # nothing leaked to the others
    finally:
        room.close()


@pytest.mark.parametrize("server", [True], indirect=True)
def test_tshark_decodes_plain_msrp(server: tuple[ServerProcess, int], tmp_path: Path) -> None:
    tshark = require_peer("tshark")
    srv, port = server
    pcap = tmp_path / "msrp.pcapng"
    capture = Dumpcap(pcap, [port])
    room = Room(srv, tmp_path, plain=True)
    try:
        alice, a_path = room.enter("alice")
        bob, _ = room.enter("bob")
        [tid] = alice.send(a_path, b"hello over plain MSRP", extra=("Success-Report: yes",))
        assert (r := alice.response(tid)) is not None and r.status == 200
        [msg] = bob.messages(1)
        assert cpim_headers(msg.body)[2] == b"hello over plain MSRP"
        tids = alice.send(a_path, b"x" * 5000, chunks=3)
        assert all((r := alice.response(t)) is not None and r.status == 200 for t in tids)
        assert len(bob.messages(1)) == 1
        time.sleep(0.3)
    finally:
        room.close()
        capture.stop()
    result = subprocess.run(
        [tshark, "-n", "-r", str(pcap), "-d", f"tcp.port=={port},msrp", "-Y", "msrp",
         "-T", "fields", "-E", "separator=|", "-e", "msrp.method", "-e", "msrp.status.code",
         "-e", "_ws.malformed", "-e", "_ws.expert.severity"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    rows = [line.split("|") for line in result.stdout.splitlines()]
    methods = [m for row in rows for m in row[0].split(",") if m]
    statuses = [s for row in rows for s in row[1].split(",") if s]
    assert methods.count("SEND") >= 6 and "REPORT" in methods, rows
    assert statuses.count("200") >= 6, rows
    for row in rows:
        assert row[2] == "", row
        assert all(int(s) < 6291456 for s in row[3].split(",") if s), row  # no warnings or errors
    verbose = subprocess.run(
        [tshark, "-n", "-r", str(pcap), "-d", f"tcp.port=={port},msrp", "-V"],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    assert "Malformed" not in verbose and "Message Session Relay Protocol" in verbose
