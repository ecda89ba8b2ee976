"""A large request to a UDP-only peer: TCP is tried once, then UDP directly while the refusal is
remembered (RFC 3261 §18.1.1), over real loopback sockets with the SIP endpoint and the transports."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from transport_helpers import Driver, Runner, big_message, both_loops, endpoint, self_connected_socket

from imsconf.sip.endpoint import SipEndpoint
from imsconf.sip.message import UDP_MTU_LIMIT
from imsconf.sip.peer import Peer
from imsconf.transport.connect import Connector, open_tcp_socket
from imsconf.transport.manager import TransportManager


@dataclass
class Stack:
    ep: SipEndpoint
    mgr: TransportManager
    peer_sock: socket.socket  # the UDP-only peer
    peer: Peer
    connects: list[tuple[str, int]]

    def send(self, n: int) -> None:
        now = asyncio.get_running_loop().time()
        self.ep.send_request(big_message((self.peer.host, self.peer.port), n), self.peer, now)
        driver = self.mgr.receiver
        assert isinstance(driver, Driver)
        driver.flush()

    async def datagrams(self, n: int) -> list[bytes]:
        loop = asyncio.get_running_loop()
        out = []
        for _ in range(n):
            data = await asyncio.wait_for(loop.sock_recv(self.peer_sock, 65535), 3.0)
            out.append(data)
        return out


@asynccontextmanager
async def stack(connector: Connector | None = None) -> AsyncIterator[Stack]:
    connects: list[tuple[str, int]] = []
    inner = connector if connector is not None else open_tcp_socket

    async def counting(host: str, port: int) -> socket.socket:
        connects.append((host, port))
        return await inner(host, port)

    ep = endpoint()
    driver = Driver(ep)
    mgr = TransportManager(driver, connector=counting)
    driver.transports = mgr
    for kind in ("udp", "tcp"):
        ep.config.local[kind] = await mgr.listen(kind, "127.0.0.1", 0)
    peer_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer_sock.bind(("127.0.0.1", 0))
    peer_sock.setblocking(False)
    host, port = peer_sock.getsockname()
    try:
        yield Stack(ep, mgr, peer_sock, Peer("udp", host, port), connects)
    finally:
        peer_sock.close()
        await mgr.close()


@both_loops
def test_refused_tcp_is_remembered_and_udp_used_directly(run: Runner) -> None:
    async def scenario() -> None:
        async with stack() as s:
            s.ep.config.tcp_refusals.ttl = 0.5
            s.send(1)
            (first,) = await s.datagrams(1)  # TCP refused, then UDP after all
            assert len(first) > UDP_MTU_LIMIT and first.startswith(b"MESSAGE ")
            assert b"SIP/2.0/UDP" in first
            assert s.connects == [("127.0.0.1", s.peer.port)]
            assert s.ep.counters["tcp_to_udp_fallback"] == 1
            for n in range(2, 12):
                s.send(n)
            assert len(await s.datagrams(10)) == 10
            assert s.connects == [("127.0.0.1", s.peer.port)]  # no further connection attempt
            assert s.ep.counters["udp_oversize_tcp_refused"] == 10
            assert s.mgr.counters["connect_failed"] == 1
            await asyncio.sleep(0.6)  # the refusal is forgotten: TCP is tried again
            s.send(12)
            await s.datagrams(1)
            assert len(s.connects) == 2 and s.mgr.counters["connect_failed"] == 2

    run(scenario())


@both_loops
def test_self_connected_socket_to_a_udp_peer_falls_back_and_is_remembered(run: Runner) -> None:
    """The operators' fault: the TCP try to the peer's UDP port P connected to itself (127.0.0.1:P both
    ends); every later request to that peer then failed.  Now the socket is refused, the request goes
    over UDP, and so do the next ones."""
    made: list[socket.socket] = []

    async def self_connecting(host: str, port: int) -> socket.socket:
        sock = self_connected_socket(port, host)
        made.append(sock)
        return sock

    async def scenario() -> None:
        async with stack(self_connecting) as s:
            for n in range(1, 6):
                s.send(n)
                (data,) = await s.datagrams(1)
                assert data.startswith(b"MESSAGE ") and f"CSeq: {n} MESSAGE".encode() in data
            assert len(made) == 1 and made[0].fileno() == -1
            assert s.mgr.counters["connect_self_refused"] == 1
            assert s.mgr.open_streams == 0
            assert s.ep.counters["udp_oversize_tcp_refused"] == 4

    run(scenario())


@both_loops
def test_a_peer_listening_on_tcp_still_gets_tcp(run: Runner) -> None:
    async def scenario() -> None:
        async with stack() as s:
            got: asyncio.Queue[bytes] = asyncio.Queue()

            async def on_conn(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                got.put_nowait(await reader.readuntil(b"\r\n\r\n"))
                writer.close()

            server = await asyncio.start_server(on_conn, "127.0.0.1", s.peer.port)
            try:
                s.send(1)
                head = await asyncio.wait_for(got.get(), 3.0)
                assert head.startswith(b"MESSAGE ") and b"SIP/2.0/TCP" in head
                assert len(s.ep.config.tcp_refusals) == 0
            finally:
                server.close()

    run(scenario())
