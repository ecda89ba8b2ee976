"""The connection guard: strangers are capped and the oldest evicted, the total is capped, every request
has a deadline; an authenticated client always gets in."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from imsconf.web.guard import MAX_CONNECTIONS, MAX_UNAUTHENTICATED
from web_harness import ServedApi, raw_exchange, with_deps


@pytest.fixture
def api(tmp_path: Path) -> Iterator[ServedApi]:
    a = ServedApi(tmp_path, with_deps(request_timeout=2.0))
    yield a
    a.close()


def _closed(s: socket.socket, timeout: float = 3.0) -> bool:
    s.settimeout(timeout)
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def _authenticated(api: ServedApi) -> socket.socket:
    """A keep-alive connection that has sent one request with the token."""
    s = socket.create_connection(("127.0.0.1", api.port), timeout=5)
    s.sendall(f"GET /health/live HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {api.token}\r\n\r\n".encode())
    data = b""
    while not data.endswith(b"}\n"):
        data += s.recv(4096)
    assert data.startswith(b"HTTP/1.1 200 ")
    return s


def test_the_oldest_stranger_makes_room(api: ServedApi) -> None:
    strangers = [
        socket.create_connection(("127.0.0.1", api.port), timeout=5) for _ in range(MAX_UNAUTHENTICATED)
    ]
    time.sleep(0.2)
    extra = [socket.create_connection(("127.0.0.1", api.port), timeout=5) for _ in range(3)]
    try:
        assert all(_closed(s) for s in strangers[:3])  # the three oldest
        assert not _closed(strangers[3], timeout=0.2)
        assert api.request("GET", "/health/live")[0] == 200
        assert api.server.guard.unauthenticated <= MAX_UNAUTHENTICATED
        assert api.server.guard.counters["evicted"] >= 3
    finally:
        for s in strangers + extra:
            s.close()


def test_authenticated_connections_are_not_evicted(api: ServedApi) -> None:
    kept = _authenticated(api)
    strangers = [
        socket.create_connection(("127.0.0.1", api.port), timeout=5) for _ in range(MAX_UNAUTHENTICATED + 4)
    ]
    try:
        assert not _closed(kept, timeout=0.3)
        kept.sendall(
            f"GET /health/live HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {api.token}\r\n\r\n".encode()
        )
        assert kept.recv(4096).startswith(b"HTTP/1.1 200 ")
    finally:
        kept.close()
        for s in strangers:
            s.close()


def test_beyond_the_cap_a_connection_is_answered_503(api: ServedApi) -> None:
    held = [_authenticated(api) for _ in range(MAX_CONNECTIONS)]
    try:
        reply = raw_exchange(api.port, b"", shut=False)
        assert reply.startswith(b"HTTP/1.1 503 ") and b"too many connections" in reply
    finally:
        for s in held:
            s.close()
    time.sleep(0.2)
    assert api.request("GET", "/health/live")[0] == 200


def test_an_idle_connection_is_closed_at_the_deadline(api: ServedApi) -> None:
    s = socket.create_connection(("127.0.0.1", api.port), timeout=5)
    try:
        t0 = time.monotonic()
        assert s.recv(100) == b""  # closed without an answer: it never began a request
        assert 1.5 < time.monotonic() - t0 < 4.5
    finally:
        s.close()


def test_a_half_closing_client_gets_its_answer(api: ServedApi) -> None:
    reply = raw_exchange(api.port, b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 200 ") and reply.endswith(b'{"status":"ok"}\n')
