"""Test UAs calling each other directly (no server): UDP/TCP/TLS, SRTP both ways, rekeying, hold,
DTMF, REFER with Replaces, INVITE with Replaces, CANCEL, digest, captured-packet decryption."""

from __future__ import annotations

import hashlib
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from uas import Call, UserAgent, gaps, tone_present, try_decrypt
from uas.pki import Pki, issue_cert, make_pki
from uas.sipmsg import SipMessage, parse_auth_params, parse_message

A_HZ, B_HZ, C_HZ = 440.0, 1000.0, 1700.0

MakeUa = Callable[..., UserAgent]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"), "alice")


@pytest.fixture
def make_ua(pki: Pki, tmp_path: Path) -> Iterator[MakeUa]:
    started: list[UserAgent] = []

    def make(user: str, transport: str = "udp", tls_listener: bool = True, **kw: Any) -> UserAgent:
        if transport == "tls":
            kw.setdefault("ca_file", str(pki.ca))
            if tls_listener:
                cert, key = issue_cert(pki.ca, pki.ca_key, tmp_path, user)
                kw.setdefault("cert_file", str(cert))
                kw.setdefault("key_file", str(key))
        kw.setdefault("rtcp_interval", 0.2)
        ua = UserAgent(user, transport=transport, **kw).start()
        started.append(ua)
        return ua

    yield make
    for ua in started:
        ua.close()
    leftover = [t.name for t in threading.enumerate() if t.name.startswith("uas-") and t.is_alive()]
    assert not leftover, leftover  # every SIP loop and media thread we started has ended


def target(ua: UserAgent) -> str:
    return ua.contact_uri


def hears(call: Call, freq: float, since: float | None = None) -> float:
    return tone_present(call.media.audio(since=since), freq)


def establish(a: UserAgent, b: UserAgent, **kw: Any) -> tuple[Call, Call]:
    ca = a.call(target(b), **kw)
    assert ca.state == "confirmed", ca.final_response
    cb = b.wait_call(2)
    assert cb.wait_confirmed(2)
    return ca, cb


@pytest.mark.parametrize("transport", ["udp", "tcp", "tls"])
def test_srtp_call_each_side_hears_the_other(make_ua: MakeUa, transport: str) -> None:
    a = make_ua("alice", transport, tone_hz=A_HZ)
    b = make_ua("bob", transport, tone_hz=B_HZ)
    ca, cb = establish(a, b)
    assert ca.remote_sdp is not None and ca.remote_sdp.proto == "RTP/SAVP"
    time.sleep(0.8)
    assert hears(ca, B_HZ) > -20 and hears(ca, A_HZ) < -50
    assert hears(cb, A_HZ) > -20 and hears(cb, B_HZ) < -50
    for c in (ca, cb):
        st = c.media.stats
        assert st.rx_packets > 25 and st.rx_auth_fail == 0 and st.rx_rtcp >= 1 and st.rx_rtcp_auth_fail == 0
    assert ca.bye() is not None and ca.state == "terminated"
    assert cb.wait_terminated(2) and cb.terminated_by == "remote"


def test_tls_client_without_listener_reuses_its_connection(make_ua: MakeUa) -> None:
    a = make_ua("alice", "tls", tls_listener=False, tone_hz=A_HZ)  # CA file only: verifies bob
    b = make_ua("bob", "tls", tone_hz=B_HZ)
    ca, cb = establish(a, b)
    assert cb.reinvite(new_key=True).status == 200  # bob -> alice over alice's own connection
    assert cb.bye() is not None and ca.wait_terminated(2)


def test_tls_refuses_unverified_server(make_ua: MakeUa, tmp_path: Path) -> None:
    other = make_pki(tmp_path / "other", "mallory")
    a = make_ua("alice", "tls", tls_listener=False, ca_file=str(other.ca))
    b = make_ua("bob", "tls")
    call = a.call(target(b), timeout=3)
    assert call.state == "terminated" and call.final_response is not None
    assert call.final_response.status == 408


def test_rekey_by_reinvite_and_update_has_no_gap(make_ua: MakeUa) -> None:
    a = make_ua("alice", tone_hz=A_HZ)
    b = make_ua("bob", tone_hz=B_HZ, rekey_in_answer=True)
    ca, cb = establish(a, b)
    time.sleep(0.3)
    t0 = time.monotonic()
    keys = [ca.tx_crypto]
    for method in ("INVITE", "UPDATE", "INVITE"):
        old_b_key = ca.remote_sdp.cryptos[0] if ca.remote_sdp else None
        assert ca.reinvite(new_key=True, method=method).status == 200
        keys.append(ca.tx_crypto)
        assert ca.remote_sdp is not None and ca.remote_sdp.cryptos[0] != old_b_key  # bob's new answer key
        time.sleep(0.25)
    t1 = time.monotonic()
    assert len({k.key_salt for k in keys if k}) == 4
    assert cb.wait_key_switches(3, 2) and ca.wait_key_switches(3, 2)
    assert [s.crypto for s in cb.media.key_switches] == keys[1:]
    assert [r.new_rx_key for r in cb.offers_received] == [False, True, True, True]
    for c in (ca, cb):
        assert gaps(c.media.arrival_times(), since=t0, until=t1) < 60
        assert gaps(c.media.timeline(since=t0, until=t1), A_HZ if c is cb else B_HZ) < 60
        assert c.media.stats.rx_auth_fail == 0
        switch = c.media.key_switches[0]
        assert switch.at >= switch.offered_at


def test_captured_packets_decrypt_only_under_their_key(make_ua: MakeUa) -> None:
    a = make_ua("alice")
    b = make_ua("bob")
    ca, cb = establish(a, b)
    time.sleep(0.3)
    first = ca.tx_crypto
    assert first is not None
    ca.reinvite(new_key=True)
    assert cb.wait_key_switches(1, 2)
    switch_at = cb.media.key_switches[0].at
    time.sleep(0.3)
    second = ca.tx_crypto
    assert second is not None and second != first
    before = [p for p in cb.media.captured if p[0] < switch_at]
    after = [p for p in cb.media.captured if p[0] >= switch_at]
    assert len(before) > 10 and len(after) > 10
    assert try_decrypt(before, first.b64) == len(before)
    assert try_decrypt(after, first.b64) == 0  # the old key cannot read what came after the rekey
    assert try_decrypt(after, second.b64) == len(after)
    assert try_decrypt(before, second.b64) == 0
    assert try_decrypt(cb.media.captured, "A" * 40) == 0


def test_hold_and_resume(make_ua: MakeUa) -> None:
    a = make_ua("alice", tone_hz=A_HZ)
    b = make_ua("bob", tone_hz=B_HZ)
    ca, cb = establish(a, b)
    assert ca.hold().status == 200
    assert cb.offers_received[-1].direction == "sendonly" and cb.local_direction == "recvonly"
    time.sleep(0.1)
    n = cb.media.stats.tx_packets
    time.sleep(0.3)
    assert cb.media.stats.tx_packets == n  # bob no longer sends to a holder
    assert ca.hold(inactive=True).status == 200 and cb.local_direction == "inactive"
    assert ca.resume().status == 200 and cb.local_direction == "sendrecv"
    t = time.monotonic()
    time.sleep(0.4)
    assert hears(ca, B_HZ, since=t) > -20


def test_dtmf_digits_arrive(make_ua: MakeUa) -> None:
    a = make_ua("alice")
    b = make_ua("bob")
    ca, cb = establish(a, b, srtp=False)
    assert ca.remote_sdp is not None and ca.remote_sdp.proto == "RTP/AVP"
    ca.send_dtmf("0123456789*#", duration_ms=60, pause_ms=40)
    time.sleep(0.15)
    assert cb.media.digits() == "0123456789*#"
    assert all(e.ended and e.duration == 480 for e in cb.media.dtmf_received)
    from uas import decode_dtmf

    assert decode_dtmf(p for _, p in cb.media.captured) == "0123456789*#"  # plain RTP: parse the wire


def test_invite_with_replaces_takes_over_the_dialog(make_ua: MakeUa) -> None:
    a = make_ua("alice", tone_hz=A_HZ)
    b = make_ua("bob", tone_hz=B_HZ)
    c = make_ua("carol", tone_hz=C_HZ)
    ab, ba = establish(a, b)
    cb = c.call(target(b), headers=[("Replaces", ab.replaces_value())])
    assert cb.state == "confirmed"
    bc = b.wait_call(2)
    assert bc.replaces is ba and bc.wait_confirmed(2)
    assert ba.wait_terminated(2) and ba.terminated_by == "replaced" and ba.replaced_by is bc
    assert ab.wait_terminated(2) and ab.terminated_by == "remote"
    bad = c.call(target(b), headers=[("Replaces", "nope;to-tag=1;from-tag=2")])
    assert bad.final_response is not None and bad.final_response.status == 481


def test_refer_with_replaces_three_party(make_ua: MakeUa) -> None:
    """A talks to B and C, holds both, REFERs B to C with Replaces of A-C; B calls C, C drops A."""
    a = make_ua("alice", tone_hz=A_HZ)
    b = make_ua("bob", tone_hz=B_HZ)
    c = make_ua("carol", tone_hz=C_HZ)
    ab, ba = establish(a, b)
    ac, ca = establish(a, c)
    assert ab.hold().status == 200 and ac.hold().status == 200
    resp = ab.refer(ac.remote_target, replaces=ac)
    assert resp.status == 202
    assert ab.wait_refer_final(5) == 200
    assert [n.body.split(b"\r\n")[0] for n in ab.notifies] == [b"SIP/2.0 100 Trying", b"SIP/2.0 200 OK"]
    assert "terminated" in (ab.notifies[-1].get("Subscription-State") or "")
    bc = b.transfers[0]
    assert bc.state == "confirmed" and bc.final_response is not None
    assert ac.wait_terminated(2) and ac.terminated_by == "remote" and ca.terminated_by == "replaced"
    cb = ca.replaced_by
    assert cb is not None and cb.wait_confirmed(2)
    refer_req = next(r for r in b.requests_received if r.method == "REFER")
    assert "Replaces=" in (refer_req.get("Refer-To") or "")
    t = time.monotonic()
    time.sleep(0.5)
    assert hears(bc, C_HZ, since=t) > -20 and hears(cb, B_HZ, since=t) > -20
    assert ab.bye() is not None and ba.wait_terminated(2)


def test_out_of_dialog_refer_notifies_the_subscription(make_ua: MakeUa) -> None:
    a = make_ua("alice")
    b = make_ua("bob")
    c = make_ua("carol")
    sub = a.refer(target(b), target(c))
    assert sub.response is not None and sub.response.status == 202
    final = sub.wait_notify(lambda n: b"200 OK" in n.body, 5)
    assert final is not None and sub.terminated() and sub.remote_tag
    assert c.wait_call(2).wait_confirmed(2)


def test_cancel_and_reject(make_ua: MakeUa) -> None:
    a = make_ua("alice")
    b = make_ua("bob", auto_answer=False)
    call = a.call(target(b), wait=False)
    incoming = b.wait_call(2)  # bob sent 100 Trying before this returns
    time.sleep(0.05)
    assert call.cancel() is not None
    assert call.wait_terminated(3) and call.terminated_by == "rejected 487"
    assert incoming.wait_terminated(2) and incoming.terminated_by == "cancelled"
    c = make_ua("carol", auto_answer=486)
    rejected = a.call(target(c))
    assert rejected.state == "terminated" and rejected.final_response is not None
    assert rejected.final_response.status == 486


class _Challenger:
    """A UDP SIP endpoint that challenges once (one WWW-Authenticate per algorithm in ``offer``, in that
    order) and checks the digest answer with its own arithmetic."""

    def __init__(self, offer: tuple[str, ...], expect: str) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.offer, self.expect = offer, expect
        self.seen: list[SipMessage] = []
        self.ok = False
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _reply(self, req: SipMessage, addr: tuple[str, int], code: str, extra: str = "") -> None:
        head = "".join(
            f"{k}: {v}\r\n" for k, v in req.headers if k in ("Via", "From", "To", "Call-ID", "CSeq")
        )
        self.sock.sendto(f"SIP/2.0 {code}\r\n{head}{extra}Content-Length: 0\r\n\r\n".encode(), addr)

    def _run(self) -> None:
        h = hashlib.sha256 if self.expect == "SHA-256" else hashlib.md5
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            req = parse_message(data)
            self.seen.append(req)
            auth = req.get("Authorization")
            if auth is None:
                chal = "".join(
                    f'WWW-Authenticate: Digest realm="test", nonce="abc", qop="auth", algorithm={alg}\r\n'
                    for alg in self.offer
                )
                self._reply(req, addr, "401 Unauthorized", chal)
                continue
            _, p = parse_auth_params(auth)
            ha1 = h(b"alice:test:secret").hexdigest()
            ha2 = h(f"{req.method}:{p['uri']}".encode()).hexdigest()
            want = h(f"{ha1}:abc:{p['nc']}:{p['cnonce']}:auth:{ha2}".encode()).hexdigest()
            self.ok = p["response"] == want and p["algorithm"] == self.expect
            self._reply(req, addr, "200 OK" if self.ok else "403 Forbidden")

    def close(self) -> None:
        self._stop.set()
        self._t.join(2)
        self.sock.close()


@pytest.mark.parametrize(
    ("offer", "expect"), [(("MD5", "SHA-256"), "SHA-256"), (("MD5",), "MD5"), (("SHA-256",), "SHA-256")]
)
def test_digest_authentication_retry(make_ua: MakeUa, offer: tuple[str, ...], expect: str) -> None:
    srv = _Challenger(offer, expect)  # with both offered, MD5 first, the UA must pick SHA-256 (RFC 8760)
    try:
        a = make_ua("alice", password="secret")
        resp = a.options(f"sip:conf@127.0.0.1:{srv.port}")
        assert resp.status == 200 and srv.ok
        first, second = srv.seen[0], srv.seen[1]
        assert second.cseq[0] == first.cseq[0] + 1 and second.branch != first.branch
        assert re.search(rf"algorithm={expect}\b", second.get("Authorization") or "")
    finally:
        srv.close()
