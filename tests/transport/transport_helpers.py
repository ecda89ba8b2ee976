"""A recording Receiver, a SIP-endpoint driver and socket helpers for the transport tests (loopback only)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
import uvloop

from imsconf.sip.endpoint import EndpointConfig, SipEndpoint
from imsconf.sip.errors import SipParseError
from imsconf.sip.headers import Headers
from imsconf.sip.message import Request, Response
from imsconf.sip.peer import Peer
from imsconf.transport.manager import Receiver, TransportManager

Runner = Callable[[Coroutine[Any, Any, Any]], Any]

# every transport test runs on the stock asyncio loop and on uvloop (what `imsconf serve` uses)
both_loops = pytest.mark.parametrize("run", [asyncio.run, uvloop.run], ids=["asyncio", "uvloop"])


class Recorder(Receiver):
    def __init__(self) -> None:
        self.messages: list[tuple[Request | Response, Peer]] = []
        self.failed: list[Peer] = []

    def receive_datagram(self, data: bytes, peer: Peer) -> None:
        return None

    def receive_message(self, msg: Request | Response, peer: Peer) -> None:
        self.messages.append((msg, peer))

    def receive_stream_error(self, error: SipParseError, peer: Peer) -> None:
        return None

    def connect_failed(self, peer: Peer) -> None:
        self.failed.append(peer)


class Driver(Receiver):
    """The endpoint fed from the transports, its outbox flushed to them (timers are not run)."""

    def __init__(self, endpoint: SipEndpoint) -> None:
        self.endpoint = endpoint
        self.transports: TransportManager | None = None
        self.loop = asyncio.get_running_loop()

    def receive_datagram(self, data: bytes, peer: Peer) -> None:
        self.endpoint.receive_datagram(data, peer, self.loop.time())
        self.flush()

    def receive_message(self, msg: Request | Response, peer: Peer) -> None:
        self.endpoint.receive_message(msg, peer, self.loop.time())
        self.flush()

    def receive_stream_error(self, error: SipParseError, peer: Peer) -> None:
        self.endpoint.receive_stream_error(error, peer, self.loop.time())
        self.flush()

    def connect_failed(self, peer: Peer) -> None:
        self.endpoint.connect_failed(peer, self.loop.time())
        self.flush()

    def flush(self) -> None:
        assert self.transports is not None
        for data, peer in self.endpoint.take_outbox():
            self.transports.send(data, peer)


def endpoint() -> SipEndpoint:
    return SipEndpoint(EndpointConfig())


def big_message(target: tuple[str, int], n: int, size: int = 2000) -> Request:
    """A MESSAGE larger than the UDP limit (as a conference-info NOTIFY is)."""
    host, port = target
    h = Headers()
    h.add("Max-Forwards", "70")
    h.add("To", f"<sip:peer@{host}:{port}>")
    h.add("From", f"<sip:focus@{host}>;tag=f{n}")
    h.add("Call-ID", f"big-{n}@test")
    h.add("CSeq", f"{n} MESSAGE")
    h.add("Content-Type", "text/plain")
    return Request("MESSAGE", f"sip:peer@{host}:{port}", h, b"x" * size)


def self_connected_socket(port: int = 0, host: str = "127.0.0.1") -> socket.socket:
    """A TCP socket bound to *host*:*port* and connected to that same address (simultaneous open), as the
    kernel makes by chance when it picks the destination port as the source port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.connect(sock.getsockname())
    sock.setblocking(False)
    return sock


def tcp_listen_free_port() -> int:
    """A loopback port with nothing listening on TCP (bound and closed at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def options(n: int = 1, host: str = "127.0.0.1") -> bytes:
    return (
        f"OPTIONS sip:{host} SIP/2.0\r\nVia: SIP/2.0/TCP {host}:9;branch=z9hG4bK-opt{n}\r\n"
        f"Max-Forwards: 70\r\nTo: <sip:{host}>\r\nFrom: <sip:t@{host}>;tag=t{n}\r\nCall-ID: opt{n}@t\r\n"
        f"CSeq: {n} OPTIONS\r\nContent-Length: 0\r\n\r\n"
    ).encode()


async def connect(port: int, source: str = "127.0.0.1") -> socket.socket:
    """A non-blocking client TCP socket from *source* to 127.0.0.1:*port*."""
    sock = socket.socket()
    sock.bind((source, 0))
    sock.setblocking(False)
    try:
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    except ConnectionResetError:
        pass  # refused by the cap before the connect call returned: state() says "closed"
    return sock


def state(sock: socket.socket) -> str:
    """ "open" (nothing to read yet) or "closed" (EOF or RST from the other end), without blocking."""
    try:
        data = sock.recv(65536)
    except BlockingIOError:
        return "open"
    except ConnectionResetError:
        return "closed"
    return "closed" if data == b"" else "open"


async def wait_for(cond: Callable[[], bool], timeout: float = 3.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        if loop.time() > end:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.005)


async def closed_after(sock: socket.socket, timeout: float = 5.0) -> float:
    """Seconds until the other end closes *sock* (EOF or RST)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while True:
        try:
            data = await asyncio.wait_for(loop.sock_recv(sock, 65536), timeout)
        except ConnectionResetError:
            break
        if data == b"":
            break
    return loop.time() - start
