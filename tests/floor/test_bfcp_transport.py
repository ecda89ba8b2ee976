"""BFCP over real loopback TCP and TLS, with a tiny client built on the codec, and a tshark wire check."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
import subprocess
from pathlib import Path

import pytest
from bfcp_pcap import write_pcap
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from imsconf.floor.attributes import (
    Attribute,
    FloorId,
    FloorRequestId,
    FloorRequestInformation,
    FloorRequestStatus,
    RequestStatus,
)
from imsconf.floor.codec import BfcpFramer, Message
from imsconf.floor.constants import Primitive, RequestState
from imsconf.floor.events import FloorEvent, FloorGranted, FloorReleased
from imsconf.floor.server import FloorConfig, FloorControlServer, Policy
from imsconf.floor.transport import BfcpTransport
from peers import require_peer

CONF = 4321
SLIDES = 2
CHAIR = 100
USER = 1


def split_messages(stream: bytes) -> list[bytes]:
    """Cut a BFCP stream by the Payload Length field alone (independent of the codec under test)."""
    out = []
    while len(stream) >= 12:
        size = 12 + 4 * int.from_bytes(stream[2:4], "big")
        out.append(stream[:size])
        stream = stream[size:]
    assert stream == b""
    return out


class Client:
    """A floor participant or chair: sends requests, collects everything the server sends."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, user_id: int) -> None:
        self.reader, self.writer, self.user_id = reader, writer, user_id
        self.framer = BfcpFramer()
        self.tid = 0
        self.inbox: list[Message] = []
        self.wire: list[tuple[bool, bytes]] = []  # (from_client, one message) in order, for the pcap

    @classmethod
    async def connect(cls, port: int, user_id: int, ssl_context: ssl.SSLContext | None = None) -> Client:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=ssl_context, server_hostname="localhost" if ssl_context else None
        )
        return cls(reader, writer, user_id)

    async def _read(self) -> bool:
        data = await asyncio.wait_for(self.reader.read(65536), 5)
        if not data:
            return False
        self.inbox += self.framer.feed(data)
        self.wire += [(False, m) for m in split_messages(data)]
        return True

    async def request(self, primitive: Primitive, *attrs: Attribute) -> Message:
        self.tid += 1
        wire = bytes(Message(primitive, CONF, self.tid, self.user_id, attrs))
        self.wire.append((True, wire))
        self.writer.write(wire)
        while True:
            for m in self.inbox:
                if m.transaction_id == self.tid:
                    self.inbox.remove(m)
                    return m
            assert await self._read(), "connection closed"

    async def notification(self, primitive: Primitive) -> Message:
        while True:
            for m in self.inbox:
                if m.transaction_id == 0 and m.primitive == primitive:
                    self.inbox.remove(m)
                    return m
            assert await self._read(), "connection closed"

    async def closed_by_server(self) -> bool:
        return not await self._read()

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (ConnectionError, ssl.SSLError):
            pass


def grant(frid: int) -> FloorRequestInformation:
    return FloorRequestInformation(frid, (FloorRequestStatus(SLIDES, RequestStatus(RequestState.GRANTED)),))


async def scenario(
    ssl_pair: tuple[ssl.SSLContext, ssl.SSLContext] | None,
) -> tuple[int, list[Client], list[FloorEvent]]:
    server = FloorControlServer(CONF, [FloorConfig(SLIDES, Policy.CHAIR, chair_id=CHAIR)])
    pending_users = [USER, CHAIR]
    events: list[FloorEvent] = []

    def on_connection(conn_id: int, transport: asyncio.Transport) -> None:
        if ssl_pair is not None:
            assert transport.get_extra_info("ssl_object") is not None
        server.bind(conn_id, pending_users.pop(0))  # the focus would match the SDP fingerprint here

    adapter = BfcpTransport(server, on_connection=on_connection, on_events=events.extend)
    port = await adapter.start("127.0.0.1", 0, ssl_pair[0] if ssl_pair else None)
    client_ctx = ssl_pair[1] if ssl_pair else None
    try:
        alice = await Client.connect(port, USER, client_ctx)
        assert (await alice.request(Primitive.HELLO)).primitive == Primitive.HELLO_ACK
        chair = await Client.connect(port, CHAIR, client_ctx)
        assert (
            await chair.request(Primitive.FLOOR_QUERY, FloorId(SLIDES))
        ).primitive == Primitive.FLOOR_STATUS

        rsp = await alice.request(Primitive.FLOOR_REQUEST, FloorId(SLIDES))
        fri = rsp.get(FloorRequestInformation)
        assert fri is not None and fri.floor_request_statuses[0].request_status == RequestStatus(
            RequestState.PENDING, 1
        )
        status = await chair.notification(Primitive.FLOOR_STATUS)
        assert status.get_all(FloorRequestInformation)[0].floor_request_id == fri.floor_request_id

        ack = await chair.request(Primitive.CHAIR_ACTION, grant(fri.floor_request_id))
        assert ack.primitive == Primitive.CHAIR_ACTION_ACK
        note = await alice.notification(Primitive.FLOOR_REQUEST_STATUS)
        assert note.get(FloorRequestInformation) is not None
        assert server.holders(SLIDES) == {USER}
        await chair.notification(Primitive.FLOOR_STATUS)

        rsp = await alice.request(Primitive.FLOOR_RELEASE, FloorRequestId(fri.floor_request_id))
        assert rsp.primitive == Primitive.FLOOR_REQUEST_STATUS
        await chair.notification(Primitive.FLOOR_STATUS)
        assert (await alice.request(Primitive.GOODBYE)).primitive == Primitive.GOODBYE_ACK
        assert await alice.closed_by_server()
        assert (await chair.request(Primitive.GOODBYE)).primitive == Primitive.GOODBYE_ACK
        await alice.close()
        await chair.close()
        return port, [alice, chair], events
    finally:
        await adapter.close()


def check_events(events: list[FloorEvent]) -> None:
    assert events == [FloorGranted(SLIDES, USER, 1), FloorReleased(SLIDES, USER, 1)]


def test_bfcp_over_tcp_loopback() -> None:
    _, _, events = asyncio.run(scenario(None))
    check_events(events)


def _self_signed(tmp: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_pem, key_pem = tmp / "cert.pem", tmp / "key.pem"
    cert_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert_pem, key_pem)
    client_ctx = ssl.create_default_context(cafile=str(cert_pem))
    return server_ctx, client_ctx


def test_bfcp_over_tls_loopback(tmp_path: Path) -> None:
    _, clients, events = asyncio.run(scenario(_self_signed(tmp_path)))
    check_events(events)
    assert all(len(c.wire) >= 6 for c in clients)


@pytest.mark.peer
def test_tshark_decodes_every_message(tmp_path: Path) -> None:
    tshark = require_peer("tshark")
    port, clients, _ = asyncio.run(scenario(None))
    for i, client in enumerate(clients):
        pcap = tmp_path / f"bfcp{i}.pcap"
        write_pcap(str(pcap), ("127.0.0.1", 40000 + i), ("127.0.0.1", port), client.wire)
        result = subprocess.run(
            [
                tshark,
                "-n",
                "-r",
                str(pcap),
                "-d",
                f"tcp.port=={port},bfcp",
                "-Y",
                "tcp.len > 0",
                "-T",
                "fields",
                "-E",
                "separator=|",
                "-e",
                "bfcp.primitive",
                "-e",
                "_ws.expert",
                "-e",
                "_ws.malformed",
                "-e",
                "_ws.expert.severity",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        rows = [line.split("|") for line in result.stdout.splitlines()]
        expected = [str(Message.parse(m).primitive.value) for _, m in client.wire]
        assert [r[0] for r in rows] == expected, result.stdout
        for primitive, expert, malformed, severity in rows:
            assert malformed == "", (primitive, malformed)
            # chat-level notes (TCP sequence analysis) are fine; warnings and errors are not
            assert all(int(s) < 6291456 for s in severity.split(",") if s), (primitive, expert)
