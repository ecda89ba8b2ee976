"""The connection guard: slow or idle strangers cannot lock an authenticated client out of the API.

:class:`ConnectionGuard` wraps aiohttp's protocol factory (``AppRunner.server``, what
``loop.create_server`` takes): each connection's protocol is a :class:`GuardedConnection` that passes every
transport callback on to aiohttp's own and keeps the connection's record here.  The rules:

* at most ``max_connections`` connections; one more is answered 503 and closed;
* at most ``max_unauthenticated`` of them that have not yet sent a request with a valid token (the auth
  middleware says so through :meth:`ConnectionGuard.authenticated`); a new connection beyond that closes
  the oldest of those, so connections that send nothing, or a byte at a time, never fill the server;
* a request must arrive whole within ``request_timeout`` of the connection's start or of the previous
  answer (idle time included): past it the connection is answered 408 (if a request had begun) and closed;
* at most ``max_requests`` requests per connection.

Only public API is used: the factory's protocols are driven through the ``asyncio.Protocol`` callbacks, and
the middleware reaches the connection through ``request.transport``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Final, cast

from aiohttp import web

from .routes import Handler

__all__ = ["ConnectionGuard", "GuardedConnection"]

log = logging.getLogger("imsconf.web.guard")

MAX_CONNECTIONS: Final = 64
MAX_UNAUTHENTICATED: Final = 16
REQUEST_TIMEOUT: Final = 10.0
MAX_REQUESTS: Final = 100


def _raw_answer(status: int, phrase: str, message: str) -> bytes:
    """A whole HTTP/1.1 error response, for answers given outside aiohttp (before or instead of it)."""
    body = json.dumps({"error": message, "errors": []}, separators=(",", ":")).encode() + b"\n"
    head = (
        f"HTTP/1.1 {status} {phrase}\r\nServer: imsconf\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


class GuardedConnection(asyncio.Protocol):
    """One connection: aiohttp's protocol behind it, the guard's bookkeeping in front."""

    def __init__(self, guard: ConnectionGuard, factory: Callable[[], asyncio.Protocol]) -> None:
        self.guard = guard
        self.factory = factory
        self.inner: asyncio.Protocol | None = None
        self.transport: asyncio.Transport | None = None
        self.requests = 0
        self.busy = False  # a request is in the handler
        self.begun = False  # bytes of a request arrived since the last answer
        self.eof = False  # the client closed its sending side (it may still read the answer)
        self.current: web.Request | None = None  # the request in the handler
        self._timer: asyncio.TimerHandle | None = None

    # -- asyncio.Protocol, passed on to aiohttp's protocol --

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # a stream transport (uvloop's does not derive from asyncio.Transport; aiohttp casts the same way)
        self.transport = cast(asyncio.Transport, transport)
        transport = self.transport
        if not self.guard.admit(self):
            transport.write(_raw_answer(503, "Service Unavailable", "too many connections"))
            transport.close()
            return
        self.inner = self.factory()
        self.inner.connection_made(transport)
        self.arm()

    def data_received(self, data: bytes) -> None:
        if not self.busy:
            self.begun = True
        if self.inner is not None:
            self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        """A client that half-closes after its request still gets the answer (aiohttp alone would close
        at once): the connection stays open for writing and closes after the answer in hand."""
        self.eof = True
        if self.inner is None:
            return None
        self.inner.eof_received()
        if self.busy and self.current is not None:
            _end_body(self.current)
            return True
        return True if self.begun else None  # nothing begun: close now, as aiohttp would

    def pause_writing(self) -> None:
        if self.inner is not None:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.inner is not None:
            self.inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self.disarm()
        self.guard.forget(self)
        if self.inner is not None:
            self.inner.connection_lost(exc)

    # -- the request deadline --

    def arm(self) -> None:
        self.disarm()
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self.guard.request_timeout, self._expired)

    def disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expired(self) -> None:
        self._timer = None
        transport = self.transport
        if transport is None or transport.is_closing() or self.busy:
            return
        self.guard.counters["timed_out"] += 1
        if self.begun and transport.get_write_buffer_size() == 0:
            transport.write(_raw_answer(408, "Request Timeout", "request timeout"))
            log.debug("event=http_request_timeout peer=%s", transport.get_extra_info("peername"))
        transport.close()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def _end_body(request: web.Request) -> None:
    """The client sent EOF while its request is in the handler: the body ends here, so a reader waiting
    for more (a body shorter than its Content-Length) sees the end at once instead of waiting for the
    deadline.  aiohttp feeds this EOF only when the connection is lost; ``StreamReader.feed_eof`` is the
    one not-quite-public call of the web layer, and it lives here alone."""
    request.content.feed_eof()


class ConnectionGuard:
    """The connections of one listener; :meth:`wrap` makes the protocol factory for ``loop.create_server``."""

    def __init__(
        self,
        *,
        max_connections: int = MAX_CONNECTIONS,
        max_unauthenticated: int = MAX_UNAUTHENTICATED,
        request_timeout: float = REQUEST_TIMEOUT,
        max_requests: int = MAX_REQUESTS,
    ) -> None:
        self.max_connections = max_connections
        self.max_unauthenticated = max_unauthenticated
        self.request_timeout = request_timeout
        self.max_requests = max_requests
        self._open: dict[asyncio.BaseTransport, GuardedConnection] = {}
        # the connections not yet authenticated, oldest first (a dict keeps insertion order)
        self._strangers: dict[GuardedConnection, None] = {}
        self.counters: dict[str, int] = {"evicted": 0, "refused": 0, "timed_out": 0}

    def wrap(self, factory: Callable[[], asyncio.Protocol]) -> Callable[[], GuardedConnection]:
        """The factory of guarded connections in front of *factory* (aiohttp's ``runner.server``)."""
        return lambda: GuardedConnection(self, factory)

    @property
    def open_connections(self) -> int:
        return len(self._open)

    @property
    def unauthenticated(self) -> int:
        return len(self._strangers)

    def admit(self, conn: GuardedConnection) -> bool:
        while len(self._strangers) >= self.max_unauthenticated:
            oldest = next(iter(self._strangers))
            self.forget(oldest)  # its place is free now; aiohttp's protocol ends on the close
            self.counters["evicted"] += 1
            log.debug("event=http_unauthenticated_closed")
            oldest.close()
        if len(self._open) >= self.max_connections:
            self.counters["refused"] += 1
            return False
        assert conn.transport is not None
        self._open[conn.transport] = conn
        self._strangers[conn] = None
        return True

    def forget(self, conn: GuardedConnection) -> None:
        self._strangers.pop(conn, None)
        if conn.transport is not None and self._open.get(conn.transport) is conn:
            del self._open[conn.transport]

    def _connection(self, request: web.Request) -> GuardedConnection | None:
        transport = request.transport
        return self._open.get(transport) if transport is not None else None

    def authenticated(self, request: web.Request) -> None:
        """*request* carried a valid token: its connection is no stranger's any more."""
        conn = self._connection(request)
        if conn is not None:
            self._strangers.pop(conn, None)

    def close_all(self) -> None:
        for conn in list(self._open.values()):
            conn.close()

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Brackets each request: no deadline while it is handled, a fresh one after its answer."""
        conn = self._connection(request)
        if conn is None:
            return await handler(request)
        conn.busy, conn.begun, conn.current = True, False, request
        conn.disarm()
        conn.requests += 1
        if conn.eof:  # the EOF came with the request, before the handler
            _end_body(request)
        try:
            response = await handler(request)
        finally:
            conn.busy, conn.current = False, None
            conn.arm()
        if conn.requests >= self.max_requests or conn.eof:
            response.force_close()
        log.debug("event=http_request method=%s path=%s status=%d", request.method[:16], request.path[:80],
                  response.status)  # fmt: skip
        return response
