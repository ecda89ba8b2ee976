"""asyncio adapter: BFCP over TCP, or TLS when an ``ssl.SSLContext`` or a TLS protocol wrapper is given
(RFC 8855 §6.2).

It only moves octets: each accepted connection gets an integer id, received data goes to
``FloorControlServer.receive(conn_id, data, now)``, then ``transmit()`` writes ``outputs()``, closes what
``connections_to_close()`` lists, hands ``events()`` to ``on_events`` and re-arms the single timer on
``next_deadline()``.  ``on_connection(conn_id, transport)`` lets the focus bind the connection to a user
(``transport.get_extra_info("ssl_object")`` gives the TLS peer of an ``ssl`` listener; a wrapper's
transport says its own).  After calling the
server directly (``bind``, ``remove_user``, ``set_chair``), call ``transmit()``.
"""

from __future__ import annotations

import asyncio
import itertools
import ssl
from collections.abc import Callable
from typing import Protocol, cast

from .events import FloorEvent

__all__ = ["BfcpTransport", "FloorServerPort"]


class FloorServerPort(Protocol):
    """What the adapter drives: a ``FloorControlServer``, or a dispatcher over many (the focus's)."""

    def connection_made(self, conn_id: int, now: float) -> None: ...

    def connection_lost(self, conn_id: int) -> None: ...

    def receive(self, conn_id: int, data: bytes, now: float) -> None: ...

    def outputs(self) -> list[tuple[int, bytes]]: ...

    def connections_to_close(self) -> list[int]: ...

    def events(self) -> list[FloorEvent]: ...

    def next_deadline(self) -> float | None: ...

    def handle_timer(self, now: float) -> None: ...


class _Connection(asyncio.Protocol):
    def __init__(self, owner: BfcpTransport) -> None:
        self._owner = owner
        self._conn_id = -1

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._conn_id = self._owner._attach(cast(asyncio.Transport, transport))

    def data_received(self, data: bytes) -> None:
        self._owner._received(self._conn_id, data)

    def connection_lost(self, exc: Exception | None) -> None:
        self._owner._detach(self._conn_id)


class BfcpTransport:
    def __init__(
        self,
        server: FloorServerPort,
        *,
        on_connection: Callable[[int, asyncio.Transport], None] | None = None,
        on_events: Callable[[list[FloorEvent]], None] | None = None,
    ) -> None:
        self.server = server
        self._on_connection = on_connection
        self._on_events = on_events
        self._transports: dict[int, asyncio.Transport] = {}
        self._conn_ids = itertools.count(1)
        self._listeners: list[asyncio.Server] = []
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(
        self,
        host: str,
        port: int,
        ssl_context: ssl.SSLContext | None = None,
        *,
        wrap: Callable[[asyncio.Protocol], asyncio.Protocol] | None = None,
    ) -> int:
        """Listen; returns the bound port (useful with ``port=0``).  May be called again for another
        listener (e.g. TCP and TLS) feeding the same server.  *wrap*: puts each connection's protocol
        behind another one on the TCP connection (a TLS layer of the runtime's own)."""
        self._loop = asyncio.get_running_loop()
        if wrap is not None and ssl_context is not None:
            raise ValueError("either an SSL context or a wrapper")

        def factory() -> asyncio.Protocol:
            conn = _Connection(self)
            return wrap(conn) if wrap is not None else conn

        listener = await self._loop.create_server(factory, host, port, ssl=ssl_context)
        self._listeners.append(listener)
        sockname = listener.sockets[0].getsockname()
        return int(sockname[1])

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        listeners, self._listeners = self._listeners, []
        for listener in listeners:
            listener.close()
        for transport in list(self._transports.values()):
            transport.close()
        for listener in listeners:
            await listener.wait_closed()

    def _now(self) -> float:
        assert self._loop is not None
        return self._loop.time()

    def _attach(self, transport: asyncio.Transport) -> int:
        conn_id = next(self._conn_ids)
        self._transports[conn_id] = transport
        self.server.connection_made(conn_id, self._now())
        if self._on_connection is not None:
            self._on_connection(conn_id, transport)
        self.transmit()
        return conn_id

    def _received(self, conn_id: int, data: bytes) -> None:
        self.server.receive(conn_id, data, self._now())
        self.transmit()

    def _detach(self, conn_id: int) -> None:
        self._transports.pop(conn_id, None)
        self.server.connection_lost(conn_id)
        self.transmit()

    def transmit(self) -> None:
        for conn_id, data in self.server.outputs():
            transport = self._transports.get(conn_id)
            if transport is not None and not transport.is_closing():
                transport.write(data)
        for conn_id in self.server.connections_to_close():
            transport = self._transports.get(conn_id)
            if transport is not None:
                transport.close()
        events = self.server.events()
        if events and self._on_events is not None:
            self._on_events(events)
        self._arm_timer()

    def _arm_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        deadline = self.server.next_deadline()
        if deadline is not None and self._loop is not None:
            self._timer = self._loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self.server.handle_timer(self._now())
        self.transmit()
