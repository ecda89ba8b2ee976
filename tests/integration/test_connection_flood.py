"""Idle connection floods against the real server; legitimate clients are still served.

SIP: ``SIP_FLOOD`` idle TCP connections from one source (127.0.0.1): the per-source cap keeps 64 of them,
the rest are refused at accept; then sources 127.0.0.2-4 fill the global cap (``sip_max_connections``,
256 here) and a fifth source is refused. UDP still takes calls (SIPp INVITE answered). Once one flooding
source lets go, a new TLS client from another address completes its handshake and an OPTIONS, and a new
INVITE over TCP (SIPp, from yet another address) is answered.

HTTP: 64 slow clients on the booking API (half send their head a byte at a time, half send nothing) while
an authenticated request is served at once.

``SIP_FLOOD`` runs in CI; ``IMSCONF_LOAD_SCALE`` multiplies it (10: the full 20,000 connections).
"""

from __future__ import annotations

import ast
import os
import re
import select
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from baresip import free_udp_range
from harness import ServerProcess, free_port_pair, free_tcp_port, run_sipp, sipp_errors
from sipclient import build_request, status_of

pytestmark = pytest.mark.peer

SIP_FLOOD = 2_000 * int(os.environ.get("IMSCONF_LOAD_SCALE", "1"))
PER_SOURCE = 64
GLOBAL = 256
SLOW_HTTP = 64
_BATCH = 200
_RTP = free_udp_range(40)


def _connect(src: str, port: int) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST on close
    s.bind((src, 0))
    s.settimeout(5)
    s.connect(("127.0.0.1", port))
    return s


def _drop_refused(held: list[socket.socket], settle: float = 0.3) -> list[socket.socket]:
    """The connections the server kept: an idle kept one is not readable, a refused one is (RST/EOF)."""
    time.sleep(settle)
    poll = select.poll()
    by_fd = {s.fileno(): s for s in held}
    for fd in by_fd:
        poll.register(fd, select.POLLIN)
    closed = {fd for fd, _ in poll.poll(0)}
    for fd in closed:
        by_fd[fd].close()
    return [s for fd, s in by_fd.items() if fd not in closed]


def _flood(src: str, port: int, count: int) -> list[socket.socket]:
    held: list[socket.socket] = []
    for i in range(count):
        try:
            held.append(_connect(src, port))
        except OSError:  # a connect that met the refusal in the kernel's queue
            pass
        if (i + 1) % _BATCH == 0:
            held = _drop_refused(held, settle=0.05)
    return _drop_refused(held)


def _counters(log: str) -> dict[str, int]:
    m = re.search(r"event=stopped counters=(\{.*\})", log)
    assert m is not None, log[-2000:]
    counters: dict[str, int] = ast.literal_eval(m.group(1))
    return counters


def _tls_options(srv: ServerProcess, src: str) -> int | None:
    ctx = ssl.create_default_context(cafile=str(srv.data_dir / "pki" / "ca.pem"))
    raw = socket.create_connection(("127.0.0.1", srv.tls_port), timeout=5, source_address=(src, 0))
    with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
        local = tls.getsockname()[:2]
        tls.sendall(build_request("OPTIONS", f"sip:127.0.0.1:{srv.tls_port}", transport="tls", local=local))
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = tls.recv(65535)
            if not chunk:
                break
            data += chunk
        return status_of(data)


@pytest.fixture
def held() -> Iterator[list[socket.socket]]:
    socks: list[socket.socket] = []
    yield socks
    for s in socks:
        s.close()


def test_idle_tcp_flood_leaves_room_for_tls_and_invite(tmp_path: Path, held: list[socket.socket]) -> None:
    cfg = tmp_path / "imsconf.toml"
    cfg.write_text(
        f"allow_plain_rtp = true\nrtp_port_range = [{_RTP[0]}, {_RTP[1]}]\n"
        f"sip_max_connections_per_source = {PER_SOURCE}\nsip_max_connections = {GLOBAL}\n"
    )
    srv = ServerProcess(tmp_path / "var", free_port_pair())
    srv.start("--config", str(cfg), auth="none")
    try:
        t0 = time.monotonic()
        one = _flood("127.0.0.1", srv.port, SIP_FLOOD)
        took = time.monotonic() - t0
        held += one
        print(f"\n{SIP_FLOOD} TCP connections from one source in {took:.1f} s: {len(one)} kept")
        assert len(one) == PER_SOURCE
        others = {
            src: _flood(src, srv.port, PER_SOURCE + 10) for src in ("127.0.0.2", "127.0.0.3", "127.0.0.4")
        }
        for socks in others.values():
            held += socks
        assert sum(len(s) for s in others.values()) == GLOBAL - PER_SOURCE
        assert _flood("127.0.0.5", srv.port, 10) == []  # the global cap
        # UDP is not capped: a call goes through while every TCP place is taken
        res = run_sipp("conf_create.xml", f"127.0.0.1:{srv.port}", workdir=tmp_path / "udp",
                       extra=["-key", "conf_file", str(tmp_path / "c1.txt"), "-d", "100"])  # fmt: skip
        assert res.returncode == 0, sipp_errors(tmp_path / "udp") + srv.log()[-3000:]
        for s in others["127.0.0.4"]:
            s.close()
        time.sleep(0.3)
        assert _tls_options(srv, "127.0.0.20") == 200
        res = run_sipp("conf_create.xml", f"127.0.0.1:{srv.port}", transport="t1",
                       workdir=tmp_path / "tcp", extra=["-i", "127.0.0.21", "-key", "conf_file",
                                                        str(tmp_path / "c2.txt"), "-d", "100"])  # fmt: skip
        assert res.returncode == 0, sipp_errors(tmp_path / "tcp") + srv.log()[-3000:]
        assert srv.alive()
        # the flood is still held
        assert _drop_refused(one, settle=0.0) == one
    finally:
        srv.stop()
    assert "level=error" not in srv.log()
    counters = _counters(srv.log())
    assert counters["transport_stream_refused_per_source"] >= SIP_FLOOD - PER_SOURCE, counters
    assert counters["transport_stream_refused_total"] >= 10, counters


# ------------------------------------------------------------------------------------------------ HTTP


def _http(port: int, token: str) -> tuple[int, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(f"GET /bookings HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n"
                  "Connection: close\r\n\r\n".encode())  # fmt: skip
        data = b""
        while chunk := s.recv(65535):
            data += chunk
    m = re.match(rb"HTTP/1.1 (\d{3})", data)
    assert m is not None, data
    return int(m.group(1)), data


def test_slow_http_clients_do_not_block_the_booking_api(tmp_path: Path) -> None:
    srv = ServerProcess(tmp_path / "var", free_port_pair())
    http_port = free_tcp_port()
    srv.start("--http", f"127.0.0.1:{http_port}", auth="none")
    stop = threading.Event()
    slow = [socket.create_connection(("127.0.0.1", http_port), timeout=5) for _ in range(SLOW_HTTP)]
    head = b"GET /bookings HTTP/1.1\r\nHost: localhost\r\nX-Slow: " + b"a" * 200

    def trickle() -> None:
        for i in range(len(head)):
            for s in slow[: SLOW_HTTP // 2]:
                try:
                    s.send(head[i : i + 1])
                except OSError:
                    pass
            if stop.wait(0.1):
                return

    sender = threading.Thread(target=trickle, daemon=True)
    try:
        sender.start()
        time.sleep(1.0)  # every slow client is connected and half of them are sending
        token = (srv.data_dir / "api-token").read_text().strip()
        t0 = time.monotonic()
        status, body = _http(http_port, token)
        took = time.monotonic() - t0
        assert status == 200, body
        assert b'"bookings"' in body
        assert took < 2.0, took
        assert srv.alive()
        assert "level=error" not in srv.log()
    finally:
        stop.set()
        sender.join(5)
        for s in slow:
            s.close()
        srv.stop()
