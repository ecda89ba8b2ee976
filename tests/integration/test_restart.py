"""The focus process killed (SIGKILL, as in a crash) and started again on the same data directory.

What is on disk survives: bookings, users, registrar bindings, the PKI. What lived in memory does not: the
dialogs, conferences and subscriptions (with their SRTP keys, which are never written to disk). So the new
process sends nothing for the old dialogs (no BYE, no NOTIFY), answers in-dialog requests of those dialogs
with 481 (BYE, re-INVITE, SUBSCRIBE refresh), and the booked conference starts again at the next call (SIPp).
"""

from __future__ import annotations

import json
import re
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from baresip import free_udp_range
from harness import REPO, ServerProcess, free_port_pair, run_sipp, sipp_errors
from sipclient import header, status_of
from test_planned_sipp import book

pytestmark = pytest.mark.peer

_RTP = free_udp_range(100)

_SDP = (
    "v=0\r\no=phone 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio {port} RTP/AVP 8 0\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\n"
)


class Phone:
    """One UDP phone that keeps its dialogs' identifiers (it outlives the server process)."""

    def __init__(self, server: tuple[str, int]) -> None:
        self.server = server
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.local: tuple[str, int] = self.sock.getsockname()[:2]
        self.tag = secrets.token_hex(4)

    def send(self, method: str, ruri: str, call_id: str, cseq: int, to: str, extra: list[str] | None = None,
             body: str = "", branch: str | None = None) -> str:  # fmt: skip
        branch = branch or "z9hG4bK" + secrets.token_hex(8)
        lines = [f"{method} {ruri} SIP/2.0",
                 f"Via: SIP/2.0/UDP {self.local[0]}:{self.local[1]};branch={branch};rport",
                 f"From: <sip:phone@localhost>;tag={self.tag}", f"To: {to}", f"Call-ID: {call_id}",
                 f"CSeq: {cseq} {method}", "Max-Forwards: 70",
                 f"Contact: <sip:phone@{self.local[0]}:{self.local[1]}>", *(extra or []),
                 f"Content-Length: {len(body.encode())}", "", ""]  # fmt: skip
        self.sock.sendto("\r\n".join(lines).encode() + body.encode(), self.server)
        return branch

    def recv(self, timeout: float) -> bytes | None:
        self.sock.settimeout(timeout)
        try:
            return self.sock.recvfrom(65535)[0]
        except TimeoutError:
            return None

    def final(self, call_id: str, cseq: str, timeout: float = 5.0) -> bytes:
        """The final response to (call_id, cseq); requests from the server on the way are answered 200."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            msg = self.recv(left)
            if msg is None:
                break
            if not msg.startswith(b"SIP/2.0"):
                self.answer(msg)
                continue
            if (
                header(msg, "Call-ID") == [call_id]
                and header(msg, "CSeq") == [cseq]
                and (status_of(msg) or 0) >= 200
            ):
                return msg
        raise AssertionError(f"no final response to {cseq} ({call_id})")

    def answer(self, req: bytes) -> None:
        keep = [ln for ln in req.split(b"\r\n\r\n")[0].decode().split("\r\n")[1:]
                if ln.split(":")[0] in ("Via", "From", "To", "Call-ID", "CSeq")]  # fmt: skip
        self.sock.sendto(
            "\r\n".join(["SIP/2.0 200 OK", *keep, "Content-Length: 0", "", ""]).encode(), self.server
        )


def _to_with_tag(resp: bytes) -> str:
    to = header(resp, "To")[0]
    assert ";tag=" in to, to
    return to


def _cli(*args: str) -> str:
    out = subprocess.run([sys.executable, "-m", "imsconf.cli", *args], cwd=REPO, capture_output=True,
                         check=True, text=True)  # fmt: skip
    return out.stdout


def _wait_binding(db: Path, contact: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if db.exists():
            with sqlite3.connect(db) as con:
                if contact in "".join(con.iterdump()):
                    return
        time.sleep(0.1)
    raise AssertionError(f"{contact} not written to {db}")


def test_kill_9_and_restart(tmp_path: Path) -> None:
    cfg = tmp_path / "imsconf.toml"
    cfg.write_text(
        f"allow_plain_rtp = true\nallow_sdes_over_udp = true\nrtp_port_range = [{_RTP[0]}, {_RTP[1]}]\n"
    )
    srv = ServerProcess(tmp_path / "var", free_port_pair())
    srv.add_user("alice", "wonderland")
    srv.start("--config", str(cfg), "--log-level", "debug", auth="none")
    try:
        now = datetime.now(UTC)
        b = book(srv, "survivor", now - timedelta(minutes=1), now + timedelta(hours=1))
        conf = f"sip:survivor@127.0.0.1:{srv.port}"
        phone = Phone(("127.0.0.1", srv.port))

        # a registration (the binding is written behind the event loop; wait for it)
        reg_contact = "<sip:bob@127.0.0.1:5999;transport=udp>"
        phone.send("REGISTER", f"sip:127.0.0.1:{srv.port}", "reg-1", 1, "<sip:bob@localhost>",
                   [f"Contact: {reg_contact}", "Expires: 600"])  # fmt: skip
        assert status_of(phone.final("reg-1", "1 REGISTER")) == 200

        # a call in the booked conference and a subscription to it
        phone.send("INVITE", conf, "call-1", 1, f"<{conf}>", ["Content-Type: application/sdp"],
                   _SDP.format(port=_RTP[1] - 2))  # fmt: skip
        ok = phone.final("call-1", "1 INVITE")
        assert status_of(ok) == 200, ok.decode()
        call_to = _to_with_tag(ok)
        target = re.search(r"<([^>]+)>", header(ok, "Contact")[0])
        assert target is not None
        focus = target.group(1)
        phone.send("ACK", focus, "call-1", 1, call_to)
        phone.send("SUBSCRIBE", focus, "sub-1", 1, f"<{focus}>", ["Event: conference", "Expires: 600",
                   "Accept: application/conference-info+xml"])  # fmt: skip
        sub_ok = phone.final("sub-1", "1 SUBSCRIBE")
        assert status_of(sub_ok) == 200, sub_ok.decode()
        sub_to = _to_with_tag(sub_ok)
        log = srv.log()
        assert f"event=conference_created conf_uri=sip:survivor@localhost booking={b['id']}" in log
        _wait_binding(srv.data_dir / "registrations.sqlite3", "sip:bob@127.0.0.1:5999")
        while phone.recv(0.3) is not None:  # the NOTIFYs of the first process, answered or not
            pass

        pki = {name: (srv.data_dir / "pki" / name).read_bytes() for name in ("ca.pem", "server.pem")}

        # crash
        assert srv.proc is not None
        srv.proc.send_signal(signal.SIGKILL)
        srv.proc.wait(5)
        srv.start("--config", str(cfg), "--log-level", "debug", auth="none")

        # nothing stale: no BYE, no NOTIFY for the dialogs of the previous process
        stale = phone.recv(3.0)
        assert stale is None, stale

        # in-dialog requests of the lost dialogs: 481
        phone.send("BYE", focus, "call-1", 2, call_to)
        assert status_of(phone.final("call-1", "2 BYE")) == 481
        branch = phone.send("INVITE", focus, "call-1", 3, call_to, ["Content-Type: application/sdp"],
                            _SDP.format(port=_RTP[1] - 2))  # fmt: skip
        reinvite = phone.final("call-1", "3 INVITE")
        assert status_of(reinvite) == 481, reinvite.decode()
        phone.send("ACK", focus, "call-1", 3, header(reinvite, "To")[0], branch=branch)
        phone.send("SUBSCRIBE", focus, "sub-1", 2, sub_to, ["Event: conference", "Expires: 600"])
        assert status_of(phone.final("sub-1", "2 SUBSCRIBE")) == 481
        assert phone.recv(1.0) is None  # and still nothing from the server

        # on disk: the registration, the booking, the users
        phone.send("REGISTER", f"sip:127.0.0.1:{srv.port}", "reg-1", 2, "<sip:bob@localhost>")
        bindings = phone.final("reg-1", "2 REGISTER")
        assert status_of(bindings) == 200
        assert any("sip:bob@127.0.0.1:5999" in c for c in header(bindings, "Contact")), bindings.decode()
        listed = json.loads(_cli("book", "--data-dir", str(srv.data_dir), "--domain", "localhost", "list"))
        assert [x["id"] for x in listed["bookings"]] == [b["id"]]
        assert {name: (srv.data_dir / "pki" / name).read_bytes() for name in pki} == pki
        assert "alice" in _cli("users", "--data-dir", str(srv.data_dir), "list").split()

        # the booked conference starts again at the next call
        res = run_sipp("conf_join_leave.xml", f"127.0.0.1:{srv.port}", workdir=tmp_path / "next",
                       extra=["-key", "conf", "survivor", "-d", "300"])  # fmt: skip
        assert res.returncode == 0, sipp_errors(tmp_path / "next") + srv.log()[-3000:]
        assert f"event=conference_created conf_uri=sip:survivor@localhost booking={b['id']}" in srv.log()
        assert srv.alive()
    finally:
        srv.stop()
