"""``GET /api/v1/events``: Server-Sent Events from ConferenceAdmin.watch, keep-alives, unsubscribe on
disconnect, a bounded queue per client."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fake_admin import FakeAdmin, conference
from imsconf.focus.admin import OperatorEvent
from imsconf.web.events import QUEUE_SIZE
from web_harness import ServedApi, with_deps


@pytest.fixture
def admin() -> FakeAdmin:
    return FakeAdmin(conference("weekly"))


@pytest.fixture
def api(tmp_path: Path, admin: FakeAdmin) -> Iterator[ServedApi]:
    a = ServedApi(tmp_path, with_deps(admin=admin, keepalive_seconds=0.3))
    yield a
    a.close()


def open_stream(api: ServedApi, token: str) -> tuple[socket.socket, bytes]:
    s = socket.create_connection(("127.0.0.1", api.port), timeout=5)
    s.sendall(f"GET /api/v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        data += s.recv(4096)
    head, _, rest = data.partition(b"\r\n\r\n")
    return s, head + b"\r\n\r\n" + rest


def read_until(s: socket.socket, marker: bytes, data: bytes = b"", timeout: float = 5.0) -> bytes:
    deadline = time.monotonic() + timeout
    while marker not in data and time.monotonic() < deadline:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def wait_for(predicate: object, timeout: float = 5.0) -> bool:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_events_are_streamed_with_keep_alives(api: ServedApi, admin: FakeAdmin) -> None:
    s, head = open_stream(api, api.tokens.viewer)  # either token
    try:
        assert head.startswith(b"HTTP/1.1 200 ")
        assert b"Content-Type: text/event-stream" in head
        assert wait_for(lambda: len(admin.sinks) == 1)
        event = OperatorEvent("participant-muted", "weekly", "p1", {"muted": True})
        api.loop.call_soon_threadsafe(admin.emit, event)
        data = read_until(s, b"\n\n", read_until(s, b"event: participant-muted", head))
        message = data[data.index(b"event: participant-muted") :].split(b"\n\n", 1)[0]
        kind, payload = message.split(b"\n")
        assert kind == b"event: participant-muted"
        assert json.loads(payload.removeprefix(b"data: ")) == {
            "conference": "weekly",
            "participant": "p1",
            "data": {"muted": True},
        }
        assert b": keep-alive\n\n" in read_until(s, b": keep-alive\n\n", timeout=3)
    finally:
        s.close()
    assert wait_for(lambda: admin.sinks == [])  # unsubscribed when the client went


def test_a_client_that_does_not_read_is_dropped(api: ServedApi, admin: FakeAdmin) -> None:
    s, head = open_stream(api, api.token)
    try:
        assert wait_for(lambda: len(admin.sinks) == 1)
        events = [OperatorEvent("floor-changed", "weekly", None, {"holders": ["x" * 200]})] * (
            QUEUE_SIZE + 10
        )

        def burst() -> None:
            for e in events:
                admin.emit(e)

        api.loop.call_soon_threadsafe(burst)
        assert wait_for(lambda: admin.sinks == [])
        s.settimeout(5)
        data = read_until(s, b"\0", head)  # to the server's close
        assert data.count(b"event: floor-changed") <= QUEUE_SIZE
    finally:
        s.close()


def test_events_need_a_token(api: ServedApi, admin: FakeAdmin) -> None:
    status, _, resp = api.request("GET", "/api/v1/events", token=None)
    assert status == 401 and resp.getheader("WWW-Authenticate", "").startswith("Bearer")
    assert admin.sinks == []
