"""The listener: a bound address the caller learns, HTTPS with the server's certificate, a clean close."""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
from pathlib import Path

import pytest

from imsconf.app.pki import client_ssl_context, ensure_dev_pki, server_ssl_context
from imsconf.web.auth import Tokens
from imsconf.web.deps import WebDeps
from imsconf.web.server import start_web


def test_https_with_the_server_certificate(tmp_path: Path) -> None:
    pki = ensure_dev_pki(tmp_path, [])
    deps = WebDeps(Tokens.ensure(tmp_path))

    async def scenario() -> tuple[int, dict[str, str], bytes]:
        web = await start_web(deps, "127.0.0.1", 0, ssl_context=server_ssl_context(pki))
        try:
            port = web.address[1]

            def fetch() -> tuple[int, dict[str, str]]:
                conn = http.client.HTTPSConnection(
                    "localhost", port, timeout=10, context=client_ssl_context(pki.ca_cert)
                )
                conn.request("GET", "/health/live")
                resp = conn.getresponse()
                return resp.status, json.loads(resp.read())

            status, body = await asyncio.to_thread(fetch)

            def plain() -> bytes:
                with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                    s.sendall(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
                    try:
                        return s.recv(100)
                    except (ConnectionResetError, TimeoutError):
                        return b""

            return status, body, await asyncio.to_thread(plain)
        finally:
            await web.close()

    status, body, plain = asyncio.run(scenario())
    assert (status, body) == (200, {"status": "ok"})
    assert not plain.startswith(b"HTTP/1.1 200")  # plain HTTP gets no answer from the TLS listener


def test_bind_error_is_raised_and_the_port_is_free_after_close(tmp_path: Path) -> None:
    deps = WebDeps(Tokens.ensure(tmp_path))

    async def scenario() -> int:
        web = await start_web(deps, "127.0.0.1", 0)
        port = web.address[1]
        with pytest.raises(OSError, match=r"http listener 127\.0\.0\.1"):
            await start_web(deps, "127.0.0.1", port)
        await web.close()
        again = await start_web(deps, "127.0.0.1", port)
        await again.close()
        return port

    assert asyncio.run(scenario()) > 0
