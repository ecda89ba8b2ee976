"""End to end: presentation video switching driven by the BFCP presentation floor, against the real server.

Three Python test UAs (SIP/TLS, SRTP audio) each offer an ``m=video`` line (H264, SRTP with its own
``a=crypto``, rtcp-mux) and a ``TCP/BFCP`` line.  The video side is this module's :class:`VideoPeer`: a UDP
socket and pylibsrtp contexts of its own (independent of ``imsconf.media``) that sends a synthetic "video"
stream at 30 packets/s whose payloads name the sender, and records what it receives.  The owner (A) is the
chair.  Nobody holds floor 2: no video flows.  The chair grants A's request: B and C receive A's payloads,
A receives nothing.  The chair revokes A and grants B: A and C receive B's.  Each receiver sees one SSRC
throughout and a continuing sequence.  Bob's conference subscription shows the holder in ``ext:floor``.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import os
import re
import socket
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pylibsrtp
import pytest
from bfcp_client import GRANTED, REVOKED, BfcpClient
from harness import ServerProcess, free_port_pair, free_tcp_port, with_separate_mixer

from imsconf.app.pki import ensure_dev_pki
from uas import Call, UserAgent

EXT_NS = "urn:imsconf:params:xml:ns:conference-info-ext"
PT = 96


class VideoPeer:
    """A participant's video: sends ``VIDEO:<name>:<n>`` payloads at 30 packets/s when ``sending``."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.key = os.urandom(30)
        self.tx = self._session(self.key, True)
        self.rx: pylibsrtp.Session | None = None
        self.remote: tuple[str, int] | None = None
        self.ssrc = int.from_bytes(os.urandom(4), "big") | 1
        self.received: list[tuple[float, int, int, int, bytes]] = []  # (time, pt, seq, ssrc, payload)
        self.rtcp: list[bytes] = []
        self.errors = 0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    @staticmethod
    def _session(key: bytes, outbound: bool) -> pylibsrtp.Session:
        kind = pylibsrtp.Policy.SSRC_ANY_OUTBOUND if outbound else pylibsrtp.Policy.SSRC_ANY_INBOUND
        return pylibsrtp.Session(
            pylibsrtp.Policy(
                key=key, ssrc_type=kind, srtp_profile=pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80
            )
        )

    def sdp(self) -> str:
        inline = base64.b64encode(self.key).decode()
        return (
            f"m=video {self.port} RTP/SAVP {PT}\r\na=rtpmap:{PT} H264/90000\r\n"
            f"a=fmtp:{PT} packetization-mode=1;profile-level-id=42e01f\r\na=rtcp-fb:{PT} nack pli\r\n"
            f"a=rtcp-mux\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{inline}\r\na=sendrecv\r\n"
        )

    def answered(self, body: bytes) -> None:
        text = body.decode()
        section = text[text.index("m=video") :]
        section = section[: section.index("m=", 2)] if "m=" in section[2:] else section
        port = int(section.split()[1])
        assert port != 0, text
        key = re.search(r"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:(\S+)", section)
        assert key is not None and "a=rtcp-mux" in section and f"a=rtpmap:{PT} H264/90000" in section, section
        self.rx = self._session(base64.b64decode(key.group(1)), False)
        self.remote = ("127.0.0.1", port)
        for target in (self._send_loop, self._recv_loop):
            t = threading.Thread(target=target, daemon=True)
            t.start()
            self._threads.append(t)

    def _send_loop(self) -> None:
        seq, ts, n = 4000, 1000, 0
        next_at = time.monotonic()
        while not self._stop.is_set():
            n += 1
            seq, ts = (seq + 1) & 0xFFFF, (ts + 3000) & 0xFFFFFFFF
            payload = f"VIDEO:{self.name}:{n}".encode() + bytes(200)
            packet = struct.pack("!BBHII", 0x80, 0x80 | PT, seq, ts, self.ssrc) + payload
            assert self.remote is not None
            self.sock.sendto(self.tx.protect(packet), self.remote)
            next_at += 1 / 30
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def _recv_loop(self) -> None:
        assert self.rx is not None
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                if len(data) > 1 and 192 <= data[1] <= 223:
                    self.rtcp.append(self.rx.unprotect_rtcp(data))
                    continue
                plain = self.rx.unprotect(data)
            except pylibsrtp.Error:
                self.errors += 1
                continue
            _b0, b1, seq, _ts, ssrc = struct.unpack_from("!BBHII", plain)
            self.received.append((time.monotonic(), b1 & 0x7F, seq, ssrc, plain[12:]))

    def senders(self, since: float, until: float) -> dict[str, int]:
        out: dict[str, int] = {}
        for t, _pt, _seq, _ssrc, payload in self.received:
            if since <= t < until:
                who = payload.split(b":")[1].decode()
                out[who] = out.get(who, 0) + 1
        return out

    def close(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(2)
        self.sock.close()


def bfcp_lines() -> str:
    return "m=application 9 TCP/BFCP *\r\na=setup:active\r\na=connection:new\r\na=floorctrl:c-only\r\n"


def join(ua: UserAgent, target: str, proxy: tuple[str, int], extra_sdp: str) -> Call:
    call = ua.new_call(target)
    make_offer = call.make_offer

    def offer(new_key: bool = False, direction: str | None = None) -> bytes:
        return make_offer(new_key, direction) + extra_sdp.encode()

    call.make_offer = offer  # type: ignore[method-assign]
    fut = asyncio.run_coroutine_threadsafe(ua.invite(call, proxy, None, 10.0), ua.transport.loop)
    fut.result(15)
    assert call.state == "confirmed", call.final_response
    return call


def sdp_attr(body: bytes, name: str) -> str:
    text = body.decode()
    m = re.search(rf"^a={name}:(.*?)\r?$", text[text.index("m=application") :], re.M)
    assert m is not None, (name, text)
    return m.group(1).strip()


@pytest.fixture(params=["in-process", "separate-mixer"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[ServerProcess, int]]:
    """The server with the mixer in its own process, or as a separate ``imsconf mixer`` (the video plane
    then goes over the mutual-TLS control channel)."""
    tcp = free_tcp_port()
    config = tmp_path / "imsconf.toml"
    text = f'bfcp_listen = ["tcp:127.0.0.1:{tcp}"]\nbfcp_policy = "chair"\n'
    srv = ServerProcess(tmp_path / "srv", free_port_pair())
    mixer = with_separate_mixer(srv, config, text) if request.param == "separate-mixer" else None
    if mixer is None:
        config.write_text(text)
    try:
        srv.start("--config", str(config), auth="none")
        yield srv, tcp
    finally:
        srv.stop()
        if mixer is not None:
            mixer.stop()
            assert "focus_connected" in mixer.log(), mixer.log()[-2000:]


def test_presentation_floor_switches_video(server: tuple[ServerProcess, int]) -> None:
    srv, _tcp = server
    pki = ensure_dev_pki(srv.data_dir, ["localhost"])
    proxy = ("127.0.0.1", srv.tls_port)
    uas: list[UserAgent] = []
    peers: dict[str, VideoPeer] = {}
    clients: list[BfcpClient] = []
    try:
        calls: dict[str, Call] = {}
        target = "sip:conference-factory@localhost"
        for name in ("alice", "bob", "carol"):
            ua = UserAgent(name, transport="tls", ca_file=str(pki.ca_cert), tls_server_name="localhost",
                           tone_hz=440.0, srtp=True, srtp_required=True).start()  # fmt: skip
            uas.append(ua)
            peers[name] = VideoPeer(name)
            calls[name] = join(ua, target, proxy, peers[name].sdp() + bfcp_lines())
            target = calls["alice"].remote_target
            final = calls[name].final_response
            body = final.body if final is not None else b""
            assert b"a=content:slides" in body
            peers[name].answered(body)
        sub = uas[1].subscribe(calls["alice"].remote_target, proxy=proxy)
        floor: dict[str, BfcpClient] = {}
        for name, call in calls.items():
            body = call.final_response.body if call.final_response else b""
            port = int(re.search(rb"m=application (\d+) ", body).group(1))  # type: ignore[union-attr]
            floor[name] = BfcpClient(
                "127.0.0.1", port, int(sdp_attr(body, "confid")), int(sdp_attr(body, "userid"))
            )
            clients.append(floor[name])
            assert floor[name].hello().primitive == 12
        chair = floor["alice"]

        time.sleep(1.0)  # nobody holds the presentation floor: nobody receives video
        t0 = time.monotonic()
        assert all(not p.senders(0, t0) for p in peers.values()), {
            n: p.senders(0, t0) for n, p in peers.items()
        }

        frid_a = floor["alice"].request_floor(2)
        assert chair.chair_action(frid_a, 2, GRANTED).primitive == 10
        floor["alice"].wait_state(frid_a, GRANTED)
        time.sleep(0.3)
        t1 = time.monotonic()
        time.sleep(1.5)
        t2 = time.monotonic()
        for name in ("bob", "carol"):
            got = peers[name].senders(t1, t2)
            assert set(got) == {"alice"} and got["alice"] >= 30, (name, got)
        assert peers["alice"].senders(t1, t2) == {}
        # the new holder was asked for a key frame: RR + PLI (PSFB 206, FMT 1) over SRTCP
        assert any(len(r) >= 20 and r[8] & 0x1F == 1 and r[9] == 206 for r in peers["alice"].rtcp)

        frid_b = floor["bob"].request_floor(2)
        assert chair.chair_action(frid_a, 2, REVOKED).primitive == 10
        assert chair.chair_action(frid_b, 2, GRANTED).primitive == 10
        floor["bob"].wait_state(frid_b, GRANTED)
        time.sleep(0.3)
        t3 = time.monotonic()
        time.sleep(1.5)
        t4 = time.monotonic()
        for name in ("alice", "carol"):
            got = peers[name].senders(t3, t4)
            assert set(got) == {"bob"} and got["bob"] >= 30, (name, got)
        assert peers["bob"].senders(t3, t4) == {}

        # carol saw one stream: one SSRC and payload type, a sequence without a restart at the switch
        rows = [r for r in peers["carol"].received if t1 <= r[0] < t4]
        assert {r[3] for r in rows} == {rows[0][3]} and {r[1] for r in rows} == {PT}
        steps = [(b[2] - a[2]) & 0xFFFF for a, b in itertools.pairwise(rows)]
        assert max(steps) < 50, steps
        assert all(p.errors == 0 for p in peers.values())

        # the conference event package showed the holders (a partial NOTIFY per floor change)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not any(
            b"<ext:holder" in b and b"sip:bob@" in b for b in sub.bodies()
        ):
            time.sleep(0.1)
        shown = [b for b in sub.bodies() if b"ext:floor" in b]
        assert any(b"sip:alice@" in b and b'state="partial"' in b for b in shown), sub.bodies()[-1]
        last = shown[-1].decode()
        holder = re.search(r'<ext:floor id="2" media="video"><ext:holder entity="([^"]+)"', last)
        assert holder is not None and holder.group(1).startswith("sip:bob@"), last
        assert EXT_NS in last
    finally:
        for client in clients:
            client.close()
        for agent in uas:
            agent.close()
        for peer in peers.values():
            peer.close()
