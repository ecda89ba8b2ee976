"""The operator plane's HTTP listener, inside the running event loop.

:func:`start_web` binds the socket itself (so the caller learns a port chosen by the kernel and a bind
error before anything else starts), sets the application up with ``web.AppRunner`` (no signal handlers:
the runtime owns the signals) and serves it with ``loop.create_server`` through the connection guard
(:mod:`.guard`).  No thread; :meth:`WebServer.close` stops it.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from typing import Final

from aiohttp import web

from .app import build_app
from .deps import WebDeps
from .guard import ConnectionGuard

__all__ = ["WebServer", "start_web"]

log = logging.getLogger("imsconf.web")

MAX_LINE: Final = 4096  # request line (method, target, version)
MAX_FIELD: Final = 8190  # one header field
MAX_HEADERS: Final = 64
SHUTDOWN_SECONDS: Final = 1.0  # what open requests (an event stream) get to finish at close


class _WireLogFilter(logging.Filter):
    """aiohttp logs a malformed request (which it answers 400 itself) as an error with a traceback: here
    it becomes one info line, since the fault is the client's."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        record.msg = "event=http_bad_request reason=%s"
        record.args = (str(exc).replace("\n", " ")[:200] if exc else "unknown",)
        record.exc_info = None
        record.exc_text = None
        record.levelno, record.levelname = logging.INFO, "INFO"
        return True


_wire_log = logging.getLogger("imsconf.web.wire")
_wire_log.addFilter(_WireLogFilter())


class WebServer:
    def __init__(self, runner: web.AppRunner, server: asyncio.Server, guard: ConnectionGuard) -> None:
        self.runner = runner
        self.server = server
        self.guard = guard

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.server.sockets[0].getsockname()[:2]
        return str(host), int(port)

    async def close(self) -> None:
        self.server.close()
        self.guard.close_all()
        await self.runner.cleanup()
        await self.server.wait_closed()


def _bind(host: str, port: int) -> socket.socket:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        sock.listen(128)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"http listener {host}:{port}: {exc.strerror}") from None
    return sock


async def start_web(
    deps: WebDeps, host: str, port: int, *, ssl_context: ssl.SSLContext | None = None
) -> WebServer:
    """Serve the operator plane on *host*:*port* (0: a port the kernel chooses)."""
    sock = _bind(host, port)
    guard = ConnectionGuard(request_timeout=deps.request_timeout)
    runner = web.AppRunner(
        build_app(deps, guard),
        handle_signals=False,
        access_log=None,
        logger=_wire_log,
        shutdown_timeout=SHUTDOWN_SECONDS,
        max_line_size=MAX_LINE,
        max_field_size=MAX_FIELD,
        max_headers=MAX_HEADERS,
        keepalive_timeout=2 * deps.request_timeout + 1,  # the guard's deadline closes idle ones first
        lingering_time=2.0,
    )
    try:
        await runner.setup()
        assert runner.server is not None  # set up
        loop = asyncio.get_running_loop()
        factory = guard.wrap(runner.server)
        if ssl_context is None:
            server = await loop.create_server(factory, sock=sock)
        else:
            server = await loop.create_server(
                factory, sock=sock, ssl=ssl_context, ssl_handshake_timeout=deps.request_timeout
            )
    except BaseException:
        sock.close()
        await runner.cleanup()
        raise
    return WebServer(runner, server, guard)
