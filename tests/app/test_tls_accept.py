"""TLS of the media-plane listeners (imsconf.app.tls_accept) under the real MSRP and BFCP listeners.

The focus runs sans-I/O in the in-memory harness (SIP joins without sockets); its chat switch and floors
are driven by the real listeners on loopback, and the clients are the integration tests' own MSRP and
BFCP clients over the standard library's TLS. A client may authenticate with a self-signed certificate
whose fingerprint it offered (RFC 4975 §14.4, RFC 8856); any other certificate, or none when the offer
had a fingerprint, gets 403 and is closed.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "focus"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from bfcp_client import HELLO_ACK, BfcpClient
from helpers import Harness, sdp_offer
from msrp_client import MsrpClient, cpim_headers

from imsconf.app.bfcp import start_floor_listeners
from imsconf.app.focus_wiring import FocusOptions
from imsconf.app.msrp import MsrpListeners, start_msrp_listeners
from imsconf.app.pki import PkiPaths, ensure_dev_pki, issue_cert
from imsconf.app.tls_accept import TlsServer
from imsconf.floor.sdp import BfcpMedia
from imsconf.focus.chat import FocusChat
from imsconf.focus.floor_feature import certificate_fingerprint
from imsconf.sdp.msrp import MessageMedia
from imsconf.sdp.session import SessionDescription
from uas.pki import self_signed_certificate as self_signed

Cert = tuple[Path, Path]  # certificate, key (PEM files)


def fingerprint(cert: Cert) -> str:
    der = x509.load_pem_x509_certificate(cert[0].read_bytes()).public_bytes(serialization.Encoding.DER)
    return certificate_fingerprint(der)


def message_offer(user: str, fp: str | None) -> bytes:
    lines = [
        "m=message 9 TCP/TLS/MSRP *",
        "a=accept-types:message/cpim text/plain",
        f"a=path:msrps://198.51.100.1:9/{user};tcp",
    ]
    if fp is not None:
        lines.append(f"a=fingerprint:sha-256 {fp}")
    return sdp_offer() + ("\r\n".join(lines) + "\r\n").encode()


def client_context(pki: PkiPaths, cert: Cert | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
    if cert is not None:
        ctx.load_cert_chain(*cert)
    return ctx


class ChatRoom:
    """A conference of the harness with the real MSRP TLS listener on loopback."""

    def __init__(self, pki: PkiPaths, listeners: MsrpListeners, h: Harness) -> None:
        self.pki, self.listeners, self.h = pki, listeners, h
        self.uri = ""
        self.clients: list[MsrpClient] = []

    @property
    def port(self) -> int:
        return self.listeners.bound[0][2]

    def join(self, user: str, fp: str | None) -> str:
        """Join with a message stream offering *fp*; the focus's MSRP path."""
        ua = self.h.ua(user)
        if not self.uri:
            resp, self.uri = self.h.create(ua, message_offer(user, fp))
        else:
            resp = self.h.join(ua, self.uri, message_offer(user, fp))
        answer = SessionDescription.parse(resp.body)
        [section] = [m for m in answer.media if m.media == "message"]
        mm = MessageMedia.from_media(section)
        assert mm.port == self.port and not mm.fingerprints  # the server certificate is the CA's
        return mm.path[0]

    async def connect(self, user: str, cert: Cert | None) -> MsrpClient:
        ctx = client_context(self.pki, cert)
        own = f"msrps://127.0.0.1:9/{user};tcp"
        client = await asyncio.to_thread(MsrpClient, "127.0.0.1", self.port, own, ctx)
        self.clients.append(client)
        return client

    async def open(self, client: MsrpClient, path: str) -> int | None:
        """The empty SEND that opens the session: its status, None when the connection closed first."""
        [tid] = await asyncio.to_thread(client.send, path, b"")
        try:
            resp = await asyncio.to_thread(client.response, tid)
        except EOFError:
            return None
        return resp.status if resp is not None else None

    def close(self) -> None:
        for client in self.clients:
            client.close()


@asynccontextmanager
async def chat_room(tmp_path: Path) -> AsyncIterator[ChatRoom]:
    pki = ensure_dev_pki(tmp_path, ["localhost"])
    h = Harness(options=FocusOptions(chat_history=5))
    chat = h.focus.chat
    assert isinstance(chat, FocusChat)
    listeners = await start_msrp_listeners(
        chat,
        ["tls:127.0.0.1:0"],
        media_host="127.0.0.1",
        cert=pki.server_cert,
        key=pki.server_key,
        ca=pki.ca_cert,
    )
    room = ChatRoom(pki, listeners, h)
    try:
        yield room
    finally:
        room.close()
        await listeners.close()


async def closed(client: MsrpClient) -> bool:
    """The focus closed the connection (EOF within 5 s)."""
    try:
        await asyncio.to_thread(client.next_frame, 5.0)
    except EOFError:
        return True
    return False


def test_self_signed_certificate_matching_its_fingerprint_is_relayed(tmp_path: Path) -> None:
    async def run() -> None:
        async with chat_room(tmp_path) as room:
            alice_cert = self_signed(tmp_path / "certs", "alice")  # self-signed, its fingerprint offered
            bob_cert = issue_cert(room.pki, "bob-msrp", tmp_path / "certs")  # issued by the conference CA
            alice_path = room.join("alice", fingerprint(alice_cert))
            bob_path = room.join("bob", fingerprint(bob_cert))
            alice = await room.connect("alice", alice_cert)
            bob = await room.connect("bob", bob_cert)
            assert await room.open(alice, alice_path) == 200
            assert await room.open(bob, bob_path) == 200
            [tid] = await asyncio.to_thread(alice.send, alice_path, b"hello from a self-signed cert")
            resp = await asyncio.to_thread(alice.response, tid)
            assert resp is not None and resp.status == 200
            [msg] = await asyncio.to_thread(bob.messages, 1)
            assert msg.content_type == "message/cpim"
            headers, ctype, content = cpim_headers(msg.body)
            assert (ctype, content) == ("text/plain", b"hello from a self-signed cert")
            assert "alice" in headers["From"][0]
            await asyncio.to_thread(bob.send, bob_path, b"and back, CA-issued")
            [back] = await asyncio.to_thread(alice.messages, 1)
            assert cpim_headers(back.body)[2] == b"and back, CA-issued"

    asyncio.run(run())


def test_a_certificate_other_than_the_offered_fingerprint_gets_403_and_is_closed(tmp_path: Path) -> None:
    async def run() -> None:
        async with chat_room(tmp_path) as room:
            offered = self_signed(tmp_path / "certs", "alice")
            other = self_signed(tmp_path / "certs", "mallory")
            path = room.join("alice", fingerprint(offered))
            client = await room.connect("alice", other)
            assert await room.open(client, path) == 403
            assert await closed(client)
            # the rightful certificate still gets in
            assert await room.open(await room.connect("alice", offered), path) == 200

    asyncio.run(run())


def test_no_client_certificate_when_the_offer_had_a_fingerprint_gets_403(tmp_path: Path) -> None:
    async def run() -> None:
        async with chat_room(tmp_path) as room:
            path = room.join("alice", fingerprint(self_signed(tmp_path / "certs", "alice")))
            client = await room.connect("alice", None)
            assert await room.open(client, path) == 403
            assert await closed(client)

    asyncio.run(run())


def test_without_a_fingerprint_only_a_ca_issued_certificate_or_none(tmp_path: Path) -> None:
    """An offer without a=fingerprint keeps the rules of a verifying handshake: no certificate or one
    from the conference CA; a self-signed one is refused."""

    async def run() -> None:
        async with chat_room(tmp_path) as room:
            paths = [room.join(user, None) for user in ("alice", "bob", "carol")]
            none = await room.connect("alice", None)
            assert await room.open(none, paths[0]) == 200
            issued = await room.connect("bob", issue_cert(room.pki, "bob-msrp", tmp_path / "certs"))
            assert await room.open(issued, paths[1]) == 200
            stranger = await room.connect("carol", self_signed(tmp_path / "certs", "carol"))
            assert await room.open(stranger, paths[2]) == 403
            assert await closed(stranger)

    asyncio.run(run())


def _raw_exchange(port: int, data: bytes) -> bytes:
    """Send *data* on a plain TCP connection; everything received until the server closes it."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        got = b""
        while chunk := sock.recv(4096):
            got += chunk
        return got


def test_garbage_instead_of_a_client_hello_is_closed_and_the_server_lives(tmp_path: Path) -> None:
    async def run() -> None:
        async with chat_room(tmp_path) as room:
            for junk in (b"GET / HTTP/1.0\r\n\r\n", b"\x16\x03\x01\x00\x05hello" + bytes(200)):
                got = await asyncio.to_thread(_raw_exchange, room.port, junk)
                assert len(got) < 64  # at most an alert, then the close
            path = room.join("alice", None)
            assert await room.open(await room.connect("alice", None), path) == 200

    asyncio.run(run())


def test_close_notify_is_answered_and_a_silent_handshake_times_out(tmp_path: Path) -> None:
    pki = ensure_dev_pki(tmp_path, ["localhost"])

    async def run() -> None:
        listeners = MsrpListeners(FocusChat())
        tls = TlsServer(pki.server_cert, pki.server_key, pki.ca_cert, handshake_timeout=0.3)
        port = await listeners.add("TCP/TLS/MSRP", "127.0.0.1", 0, advertise="127.0.0.1", tls=tls)
        try:

            def unwrap() -> None:
                raw = socket.create_connection(("127.0.0.1", port), timeout=5)
                sock = client_context(pki, None).wrap_socket(raw, server_hostname="localhost")
                sock.unwrap().close()  # returns once the server's close_notify came back

            await asyncio.to_thread(unwrap)

            def silent() -> float:
                start = time.monotonic()
                with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                    assert sock.recv(1) == b""
                return time.monotonic() - start

            assert 0.2 < await asyncio.to_thread(silent) < 3
        finally:
            await listeners.close()

    asyncio.run(run())


def test_bfcp_client_with_a_self_signed_certificate_matching_its_fingerprint(tmp_path: Path) -> None:
    pki = ensure_dev_pki(tmp_path, ["localhost"])
    cert = self_signed(tmp_path / "certs", "alice")
    other = self_signed(tmp_path / "certs", "mallory")

    async def run() -> None:
        h = Harness()
        listeners = await start_floor_listeners(
            h.focus.floor,
            ["tls:127.0.0.1:0"],
            media_host="127.0.0.1",
            cert=pki.server_cert,
            key=pki.server_key,
            ca=pki.ca_cert,
        )
        try:
            port = listeners.bound[0][2]
            lines = [
                "m=application 9 TCP/TLS/BFCP *",
                "a=setup:active",
                "a=connection:new",
                "a=floorctrl:c-only",
                f"a=fingerprint:sha-256 {fingerprint(cert)}",
            ]
            resp, _ = h.create(h.ua("alice"), sdp_offer() + ("\r\n".join(lines) + "\r\n").encode())
            answer = SessionDescription.parse(resp.body)
            [section] = [m for m in answer.media if m.media == "application"]
            bm = BfcpMedia.from_media(section)
            assert bm.port == port and bm.conference_id is not None and bm.user_id is not None
            assert bm.fingerprints == (("sha-256", certificate_fingerprint(listeners_der(pki))),)

            def hello(with_cert: Cert) -> int:
                client = BfcpClient(
                    "127.0.0.1",
                    port,
                    bm.conference_id or 0,
                    bm.user_id or 0,
                    ssl_context=client_context(pki, with_cert),
                    server_hostname="localhost",
                )
                try:
                    return client.hello().primitive
                finally:
                    client.close()

            assert await asyncio.to_thread(hello, cert) == HELLO_ACK
            assert await asyncio.to_thread(hello, other) != HELLO_ACK  # an Error, then closed
        finally:
            await listeners.close()

    asyncio.run(run())


def listeners_der(pki: PkiPaths) -> bytes:
    return ssl.PEM_cert_to_DER_cert(pki.server_cert.read_text())


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_tls_1_2_and_1_3_with_a_self_signed_client_certificate(
    tmp_path: Path, version: ssl.TLSVersion
) -> None:
    pki = ensure_dev_pki(tmp_path, ["localhost"])

    async def run() -> None:
        listeners = MsrpListeners(FocusChat())
        tls = TlsServer(pki.server_cert, pki.server_key, pki.ca_cert)
        port = await listeners.add("TCP/TLS/MSRP", "127.0.0.1", 0, advertise="127.0.0.1", tls=tls)
        try:

            def handshake(low: ssl.TLSVersion, high: ssl.TLSVersion) -> str | None:
                ctx = client_context(pki, self_signed(tmp_path / "c", "v"))
                ctx.minimum_version, ctx.maximum_version = low, high
                raw = socket.create_connection(("127.0.0.1", port), timeout=5)
                with ctx.wrap_socket(raw, server_hostname="localhost") as sock:
                    return sock.version()

            expect = "TLSv1.2" if version is ssl.TLSVersion.TLSv1_2 else "TLSv1.3"
            assert await asyncio.to_thread(handshake, version, version) == expect
        finally:
            await listeners.close()

    asyncio.run(run())


_MDWE_HANDSHAKE = """
import asyncio, ctypes, socket, ssl, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(65, 1, 0, 0, 0) != 0:  # PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN (Linux 6.3)
    sys.exit(77)
from pathlib import Path
from imsconf.app.tls_accept import TlsServer, tls_peer
cert, key, ca, client_cert, client_key = sys.argv[1:6]

class Peer(asyncio.Protocol):
    def connection_made(self, transport):
        peer = tls_peer(transport)
        transport.write(b"cert=%d verified=%d" % (peer.certificate is not None, peer.chain_verified))
        transport.close()

def client(port):
    ctx = ssl.create_default_context(cafile=ca)
    ctx.load_cert_chain(client_cert, client_key)
    with ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="localhost") as s:
        return s.recv(100)

async def main():
    tls = TlsServer(Path(cert), Path(key), Path(ca))
    server = await asyncio.get_running_loop().create_server(lambda: tls.wrap(Peer()), "127.0.0.1", 0)
    print((await asyncio.to_thread(client, server.sockets[0].getsockname()[1])).decode())
    server.close()

asyncio.run(main())
"""


def test_the_verify_callback_works_under_memory_deny_write_execute(tmp_path: Path) -> None:
    """The units' MemoryDenyWriteExecute (PR_SET_MDWE): a cffi callback could not be made there."""
    pki = ensure_dev_pki(tmp_path, ["localhost"])
    client = self_signed(tmp_path / "certs", "alice")
    args = [str(p) for p in (pki.server_cert, pki.server_key, pki.ca_cert, *client)]
    done = subprocess.run(
        [sys.executable, "-c", _MDWE_HANDSHAKE, *args], capture_output=True, timeout=60, check=False
    )
    if done.returncode == 77:
        pytest.skip("this kernel has no PR_SET_MDWE")
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().strip() == "cert=1 verified=0"
