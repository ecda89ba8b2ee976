"""Conference instant messages (RFC 3428 pager mode) with real phones: baresip 1.0.0 over TLS.

alice creates the conference at the factory, bob and carol join it by its URI. bob sends a MESSAGE to the
conference (baresip's ``/message`` goes to its current contact: bob's contacts file names the conference,
so bob is started once the conference exists); alice and carol receive it with bob named. baresip 1.0.0
takes only text/plain (it answers ``message/cpim`` with 415 and ``Accept: text/plain``), so the focus sends
it the text with the sender in front (``sip:bob@127.0.0.1: hello``); baresip's SIP trace (``-s``) shows
each request it took and its 200.

baresip cannot send a CPIM body, so the private message comes from our own SIP client over TLS, which
joins the conference as a fourth participant (an SRTP offer, no media) and sends ``message/cpim`` with
CPIM ``To`` carol: only carol gets it. Before joining, the same client is a stranger: its MESSAGE gets 403.

linphone 5.1 is the third phone of the second test: ``chat URI TEXT`` sends to the conference (through
its account's proxy, the server, since it drops a chat URI's port and transport), the baresip phones read
it; it refuses the relayed ``message/cpim`` (488: its CPIM sender check wants the SIP From) and takes the
text the focus then sends, with bob named.
"""

from __future__ import annotations

import base64
import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from baresip import BaresipError, BaresipPhone
from harness import ServerProcess, free_port_pair
from linphone import LinphoneError, LinphonePhone, SipLogMessage, conference_target
from sipclient import SipClient, build_request, header, status_of
from test_baresip_conference import established, explained, join_uri, wait_conf_uri

from peers import require_peer


class PagerPhone(BaresipPhone):
    """A baresip phone whose contacts file names one contact (the target of its ``/message``), reached
    through *outbound* (baresip 1.0.0 drops a contact's ``;transport=tls`` and has no sips: for MESSAGE:
    the outbound proxy, the server's TLS address, carries it over TLS)."""

    def __init__(self, *args: object, contact: str, outbound: str, **kw: object) -> None:
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self.contact = contact
        self.outbound = outbound

    def account_line(self) -> str:
        return super().account_line() + f';outbound="{self.outbound}"'

    def write_files(self) -> None:
        super().write_files()
        (self.workdir / "contacts").write_text(f'"Conference" <{self.contact}>\n')


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    srv = ServerProcess(tmp_path / "srv", free_port_pair())
    srv.data_dir.mkdir(parents=True)
    cfg = tmp_path / "imsconf.toml"
    # baresip resolves names with its own DNS client: the focus's Contact must be an address for it
    cfg.write_text('media_host = "127.0.0.1"\nfocus_host = "127.0.0.1"\n')
    try:
        srv.start("--config", str(cfg), auth="none")
        yield srv
    finally:
        srv.stop()


def _received(phone: BaresipPhone, text: str, timeout: float = 8.0) -> str:
    """The body of a text MESSAGE holding *text* that *phone* took (its SIP trace: the request, then its
    200 with the same CSeq)."""
    deadline = time.monotonic() + timeout
    while True:
        blocks = _plain_log(phone).split("\n#\n")
        answered = {
            m.group(1) for b in blocks if (m := re.search(r"SIP/2.0 200 OK.*?CSeq: (\d+) MESSAGE", b, re.S))
        }
        for b in blocks:
            m = re.search(
                r"\nMESSAGE sip:.*?CSeq: (\d+) MESSAGE.*?Content-Type: text/plain.*?\r?\n\r?\n(.*)", b, re.S
            )
            if m and text in m.group(2) and m.group(1) in answered:
                return m.group(2).strip()
        if time.monotonic() > deadline:
            raise BaresipError(f"{phone.name}: no received message with {text!r}\n{phone.log_tail(60)}")
        time.sleep(0.1)


def _plain_log(phone: BaresipPhone) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", phone.log_text())


def _sdp() -> bytes:
    key = base64.b64encode(secrets.token_bytes(30)).decode()
    return (
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        "m=audio 9 RTP/SAVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
        f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{key}\r\na=sendrecv\r\n"
    ).encode()


def _join(client: SipClient, conf: str) -> None:
    """INVITE the conference with an SRTP offer and ACK the 200 (our client does not ACK a 2xx itself)."""
    call_id, tag = secrets.token_hex(8), secrets.token_hex(4)
    resp = client.request(
        "INVITE",
        conf,
        call_id=call_id,
        from_tag=tag,
        body=_sdp(),
        extra=["Content-Type: application/sdp"],
    )
    assert status_of(resp) == 200, resp
    assert resp is not None
    to = header(resp, "To")[0]
    target = header(resp, "Contact")[0].split("<", 1)[1].split(">", 1)[0]
    ack = build_request(
        "ACK", target, transport="tls", local=client.local, call_id=call_id, from_tag=tag
    ).replace(f"To: <{target}>".encode(), f"To: {to}".encode())
    client.send_raw(ack)


def _message(client: SipClient, conf: str, body: bytes, ctype: str) -> int | None:
    return status_of(client.request("MESSAGE", conf, body=body, extra=[f"Content-Type: {ctype}"]))


@pytest.mark.peer
@pytest.mark.slow
@pytest.mark.timeout(90)
def test_three_phones_chat_a_private_message_and_a_stranger(server: ServerProcess, tmp_path: Path) -> None:
    require_peer("baresip")
    srv = server
    pki = srv.data_dir / "pki"
    ca, combined = pki / "ca.pem", pki / "server-combined.pem"
    alice = BaresipPhone("alice", tmp_path / "alice", ca_pem=ca, cert_combined_pem=combined)
    carol = BaresipPhone("carol", tmp_path / "carol", ca_pem=ca, cert_combined_pem=combined)
    phones: list[BaresipPhone] = [alice, carol]
    client: SipClient | None = None
    try:
        with explained(srv, phones):
            alice.start()
            carol.start()
            alice.dial(f"sip:conference-factory@127.0.0.1:{srv.tls_port}")
            established(alice)
            target = join_uri(wait_conf_uri(srv), srv.tls_port)
            carol.dial(target)
            established(carol)
            bob = PagerPhone(
                "bob",
                tmp_path / "bob",
                ca_pem=ca,
                cert_combined_pem=combined,
                contact=target,
                outbound=f"sip:127.0.0.1:{srv.tls_port};transport=tls",
            )
            phones.append(bob)
            bob.start()
            bob.dial(target)
            established(bob)

            # bob writes to the conference: alice and carol read it, with bob named
            resp = bob.command("message", "hello from bob")
            assert resp.get("ok"), resp
            for p in (alice, carol):
                assert _received(p, "hello from bob") == "sip:bob@127.0.0.1: hello from bob"
            assert "event=message_relayed" in srv.log() and "recipients=2" in srv.log()

            # a stranger (not in the conference) is refused
            client = SipClient("tls", ("127.0.0.1", srv.tls_port), ca=ca)
            assert _message(client, target, b"spam", "text/plain") == 403

            # once it has joined, its CPIM To names carol: only carol gets it
            _join(client, target)
            cpim = (
                b"From: <sip:someone-else@example.com>\r\n"
                b"To: <sip:carol@127.0.0.1>\r\n"
                b"\r\n"
                b"Content-Type: text/plain;charset=utf-8\r\n"
                b"\r\n"
                b"just for carol"
            )
            assert _message(client, target, cpim, "message/cpim") == 200
            assert _received(carol, "just for carol") == "sip:alice@localhost (private): just for carol"
            time.sleep(1.0)
            for p in (alice, bob):
                assert "just for carol" not in _plain_log(p), f"{p.name} got the private message"
            assert "someone-else" not in _plain_log(carol)
    finally:
        if client is not None:
            client.close()
        for p in phones:
            p.stop()


def _linphone_took(phone: LinphonePhone, text: str, timeout: float = 8.0) -> SipLogMessage:
    """The MESSAGE holding *text* that linphone received and answered with 200."""
    deadline = time.monotonic() + timeout
    while True:
        msgs = phone.sip_messages()
        oks = {c for m in msgs if m.direction == "out" and m.status == 200 for c in m.header("CSeq")}
        for m in msgs:
            took = any(c in oks for c in m.header("CSeq"))
            if m.direction == "in" and m.method == "MESSAGE" and text in m.body and took:
                return m
        if time.monotonic() > deadline:
            raise LinphoneError(f"{phone.name}: took no MESSAGE with {text!r}\n{phone.log_tail(80)}")
        time.sleep(0.2)


@pytest.mark.peer
@pytest.mark.slow
@pytest.mark.timeout(90)
def test_linphone_chats_with_baresip_phones(server: ServerProcess, tmp_path: Path) -> None:
    """linphone as the third phone: its ``chat`` command sends to the conference, and it takes what the
    focus relays from a baresip phone (as text after refusing the CPIM wrapper), bob named."""
    require_peer("baresip")
    require_peer("linphonec")
    srv = server
    pki = srv.data_dir / "pki"
    ca, combined = pki / "ca.pem", pki / "server-combined.pem"
    alice = BaresipPhone("alice", tmp_path / "alice", ca_pem=ca, cert_combined_pem=combined)
    phones: list[BaresipPhone] = [alice]
    # linphone drops the port and transport of a chat's URI: its account's proxy (the server's TLS
    # address; no REGISTER) carries the MESSAGE, as it does a registered account's requests
    proxy = {
        "reg_proxy": f"<sip:localhost:{srv.tls_port};transport=tls>",
        "reg_identity": '"lin" <sip:lin@127.0.0.1>',
        "reg_sendregister": "0",
        "publish": "0",
    }
    lin = LinphonePhone(
        "lin",
        tmp_path / "lin",
        ca_pem=ca,
        record=False,
        extra_rc={"sip": {"default_proxy": "0"}, "proxy_0": proxy},
    )
    try:
        with explained(srv, phones):
            alice.start()
            alice.dial(f"sip:conference-factory@127.0.0.1:{srv.tls_port}")
            established(alice)
            conf_uri = wait_conf_uri(srv)
            target = join_uri(conf_uri, srv.tls_port)
            bob = PagerPhone(
                "bob",
                tmp_path / "bob",
                ca_pem=ca,
                cert_combined_pem=combined,
                contact=target,
                outbound=f"sip:127.0.0.1:{srv.tls_port};transport=tls",
            )
            phones.append(bob)
            bob.start()
            bob.dial(target)
            established(bob)
            lin.start()
            conf_user = conf_uri.split(":", 1)[1].split("@", 1)[0]
            lin_target = conference_target(conf_user, srv.tls_port)
            since = lin.call(lin_target)
            lin.wait_call_state("StreamsRunning", 15, since=since)

            # linphone writes: both baresip phones read it, with linphone named
            lin.command(f"chat {lin_target} hello from linphone")  # linphonec would send quotes as text
            for p in (alice, bob):
                assert _received(p, "hello from linphone") == "lin: hello from linphone"

            # bob writes: linphone takes it with bob named
            assert bob.command("message", "hello linphone").get("ok")
            got = _linphone_took(lin, "hello linphone")
            assert got.body == "sip:bob@127.0.0.1: hello linphone", got.text
    finally:
        lin.stop()
        for p in phones:
            p.stop()
