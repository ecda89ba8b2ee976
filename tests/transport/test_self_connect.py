"""A TCP socket connected to itself (ESTAB 127.0.0.1:P <-> 127.0.0.1:P) is never used, over real sockets.

The kernel makes one by chance when it picks the destination port as the source port of a connection to
a port nothing listens on; here the test makes it on purpose (a socket bound to P connected to P).
"""

from __future__ import annotations

import asyncio
import socket

import pytest
from transport_helpers import Recorder, Runner, both_loops, self_connected_socket

from imsconf.sip.peer import Peer
from imsconf.transport.connect import SelfConnectError, checked, is_self_connected
from imsconf.transport.manager import TransportManager


def test_self_connected_socket_is_detected_and_closed() -> None:
    sock = self_connected_socket()
    name = sock.getsockname()
    assert sock.getpeername() == name  # the fault as the operators saw it
    assert is_self_connected(sock)
    with pytest.raises(SelfConnectError) as info:
        checked(sock)
    assert isinstance(info.value, ConnectionRefusedError)
    assert sock.fileno() == -1  # closed


def test_an_ordinary_connection_passes() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname())
        accepted, _ = server.accept()
        try:
            assert not is_self_connected(client)
            assert checked(client) is client
        finally:
            client.close()
            accepted.close()


@both_loops
def test_manager_refuses_a_self_connected_socket(run: Runner) -> None:
    made: list[socket.socket] = []

    async def self_connecting(host: str, port: int) -> socket.socket:
        sock = self_connected_socket(port, host)  # what the kernel did by chance, on purpose
        made.append(sock)
        return sock

    async def scenario() -> None:
        rec = Recorder()
        mgr = TransportManager(rec, connector=self_connecting)
        with socket.socket() as probe:  # a port free for TCP
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        dest = Peer("tcp", "127.0.0.1", port)
        mgr.send(b"OPTIONS sip:x SIP/2.0\r\n\r\n", dest)
        for _ in range(100):
            if rec.failed:
                break
            await asyncio.sleep(0.01)
        assert [(p.host, p.port) for p in rec.failed] == [("127.0.0.1", port)]
        assert mgr.counters["connect_self_refused"] == 1
        assert mgr.open_streams == 0 and mgr.admission.total == 0
        assert made[0].fileno() == -1  # the self-connected socket was closed, not kept for later requests
        await mgr.close()

    run(scenario())
