"""sd_notify(3) messages: what the server sends to the service manager's socket, and nothing without one."""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from imsconf.app.systemd import ServiceNotifier, watchdog_interval


@pytest.fixture
def notify_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = tmp_path / "notify"
    rx.bind(str(path))
    rx.settimeout(2)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    yield rx
    rx.close()


def _lines(rx: socket.socket) -> list[str]:
    return rx.recv(4096).decode().split("\n")


def test_messages_of_each_state(notify_socket: socket.socket) -> None:
    n = ServiceNotifier()
    assert n.enabled and n.watchdog_interval is None
    n.ready("serving sip:conference-factory@localhost")
    assert _lines(notify_socket) == [
        "READY=1",
        "STATUS=serving sip:conference-factory@localhost",
        f"MAINPID={os.getpid()}",
    ]
    n.reloading()
    reloading = _lines(notify_socket)
    assert reloading[0] == "RELOADING=1" and reloading[1].startswith("MONOTONIC_USEC=")
    assert int(reloading[1].split("=")[1]) > 0
    n.watchdog()
    assert _lines(notify_socket) == ["WATCHDOG=1"]
    n.stopping("draining 3 calls, 1 subscriptions")
    assert _lines(notify_socket) == ["STOPPING=1", "STATUS=draining 3 calls, 1 subscriptions"]


def test_abstract_socket_name(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"imsconf-test-{secrets.token_hex(6)}"
    rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    rx.bind("\0" + name)
    rx.settimeout(2)
    try:
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        ServiceNotifier().watchdog()
        assert _lines(rx) == ["WATCHDOG=1"]
    finally:
        rx.close()


def test_without_a_socket_nothing_is_sent_and_nothing_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    n = ServiceNotifier()
    assert not n.enabled and n.watchdog_interval is None
    n.ready("x")
    n.reloading()
    n.stopping("y")
    n.watchdog()


def test_a_socket_that_went_away_is_ignored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "missing"))
    ServiceNotifier().ready("x")  # sd_notify(3) semantics: a failed send is dropped


def test_watchdog_interval() -> None:
    pid = str(os.getpid())
    assert watchdog_interval({}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "0"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "junk"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "20000000"}) == 10.0
    assert watchdog_interval({"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": pid}) == 10.0
    assert watchdog_interval({"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": "1"}) is None
    env = {"NOTIFY_SOCKET": "/nonexistent", "WATCHDOG_USEC": "3000000"}
    assert ServiceNotifier(env).watchdog_interval == 1.5
    assert ServiceNotifier({"WATCHDOG_USEC": "3000000"}).watchdog_interval is None  # no socket: no pings
