"""The operator plane served by an asyncio loop in a background thread on 127.0.0.1 and a kernel-chosen
port, for tests that speak HTTP with blocking clients (http.client, raw sockets)."""

from __future__ import annotations

import asyncio
import dataclasses
import http.client
import json
import socket
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from imsconf.web.auth import Tokens
from imsconf.web.deps import WebDeps
from imsconf.web.server import WebServer, start_web


class ServedApi:
    def __init__(self, data_dir: Path, make_deps: Callable[[Tokens], WebDeps]) -> None:
        self.tokens = Tokens.ensure(data_dir)
        self.token = self.tokens.operator
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.deps = make_deps(self.tokens)
        self.server: WebServer = self.call(start_web(self.deps, "127.0.0.1", 0))
        self.port = self.server.address[1]

    def call(self, coro: Any) -> Any:
        fut: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return fut.result(10)

    def close(self) -> None:
        self.call(self.server.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | None = "default",
        headers: dict[str, str] | None = None,
        raw_body: bytes | None = None,
    ) -> tuple[int, dict[str, Any], http.client.HTTPResponse]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        h = {"Content-Type": "application/json"} if body is not None or raw_body is not None else {}
        if token is not None:
            h["Authorization"] = f"Bearer {self.token if token == 'default' else token}"
        h.update(headers or {})
        data = raw_body if raw_body is not None else (None if body is None else json.dumps(body).encode())
        conn.request(method, path, body=data, headers=h)
        resp = conn.getresponse()
        payload = resp.read()
        conn.close()
        ctype = resp.getheader("Content-Type", "")
        parsed = json.loads(payload) if payload and ctype.startswith("application/json") else {}
        return resp.status, parsed, resp

    def request_text(self, path: str, token: str | None = "default") -> str:
        """The body of a GET as text (non-JSON answers such as /metrics)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        headers = (
            {}
            if token is None
            else {"Authorization": f"Bearer {self.token if token == 'default' else token}"}
        )
        conn.request("GET", path, headers=headers)
        text = conn.getresponse().read().decode()
        conn.close()
        return text


def with_deps(**changes: Any) -> Callable[[Tokens], WebDeps]:
    """A deps factory: the tokens and *changes*."""
    return lambda tokens: dataclasses.replace(WebDeps(tokens), **changes)


def raw_exchange(port: int, data: bytes, *, shut: bool = True) -> bytes:
    """Send *data*, half-close, read until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        try:
            s.sendall(data)
            if shut:
                s.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server may already have answered and closed
        chunks = []
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)
