"""The real server (``imsconf serve --http``), a subprocess: bookings over HTTP survive kill -9 + restart."""

from __future__ import annotations

import http.client
import json
import signal
import socket
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from harness import ServerProcess, free_port_pair

from imsconf.web.auth import TOKEN_FILE

pytestmark = pytest.mark.slow
SOON = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)


def free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def call(port: int, token: str | None, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Content-Type": "application/json"} if body is not None else {}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    conn.request(method, path, None if body is None else json.dumps(body), headers)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, json.loads(data) if data else None


def booking(i: int, **extra: Any) -> dict[str, Any]:
    start = SOON + timedelta(hours=i)
    return {
        "uri": f"sip:room{i}@localhost",
        "start": iso(start),
        "end": iso(start + timedelta(hours=1)),
        **extra,
    }


def start(srv: ServerProcess, http_port: int) -> str:
    srv.start("--http", f"127.0.0.1:{http_port}", auth="none")
    assert f"listening http 127.0.0.1:{http_port}" in srv.stdout_lines
    assert f"console http://127.0.0.1:{http_port}/" in srv.stdout_lines
    assert call(http_port, None, "GET", "/health/live") == (200, {"status": "ok"})
    assert call(http_port, None, "GET", "/health/ready") == (200, {"status": "ok"})
    return str((srv.data_dir / TOKEN_FILE).read_text().strip())


def test_bookings_survive_kill_9_of_the_server(tmp_path: Path) -> None:
    srv = ServerProcess(tmp_path / "var", free_port_pair())
    http_port = free_tcp_port()
    token = start(srv, http_port)
    try:
        assert call(http_port, None, "GET", "/bookings")[0] == 401
        ids = []
        for i in range(5):
            status, body = call(http_port, token, "POST", "/bookings", booking(i, pin=f"90{i}123"))
            assert status == 201, body
            ids.append(body["id"])
        status, body = call(http_port, token, "POST", "/bookings", booking(0, start="noon", capacity=0))
        assert status == 422 and {e["field"] for e in body["errors"]} == {"start", "capacity"}
        assert call(http_port, token, "DELETE", f"/bookings/{ids[4]}")[0] == 200
        srv.stop(signal.SIGKILL)
        assert srv.proc is not None and srv.proc.returncode == -signal.SIGKILL

        assert start(srv, http_port) == token  # same token after restart
        status, body = call(http_port, token, "GET", "/bookings?include_cancelled=true")
        assert status == 200
        assert [b["id"] for b in body["bookings"]] == ids
        assert [b["cancelled"] for b in body["bookings"]] == [False] * 4 + [True]
        assert all(b["has_pin"] for b in body["bookings"])
    finally:
        srv.stop()


def test_server_killed_mid_booking_keeps_every_acknowledged_booking(tmp_path: Path) -> None:
    """A client books in a loop; kill -9 lands while requests are in flight; every 201 is still there."""
    srv = ServerProcess(tmp_path / "var", free_port_pair())
    http_port = free_tcp_port()
    token = start(srv, http_port)
    acknowledged: list[str] = []
    stop = threading.Event()

    def client() -> None:
        i = 0
        while not stop.is_set():
            try:
                status, body = call(http_port, token, "POST", "/bookings", booking(i))
            except (OSError, http.client.HTTPException):
                return
            if status == 201:
                acknowledged.append(body["id"])
            i += 1

    t = threading.Thread(target=client)
    try:
        t.start()
        deadline = time.monotonic() + 20
        while len(acknowledged) < 20 and time.monotonic() < deadline:
            time.sleep(0.01)
        srv.stop(signal.SIGKILL)
        stop.set()
        t.join(15)
        assert len(acknowledged) >= 20
        start(srv, http_port)
        status, body = call(http_port, token, "GET", "/bookings")
        assert status == 200
        stored = {b["id"] for b in body["bookings"]}
        assert set(acknowledged) <= stored
        assert len(stored) - len(acknowledged) <= 1  # at most one committed whose 201 was lost in the kill
    finally:
        stop.set()
        srv.stop()


def test_cli_bookings_are_served_over_http(tmp_path: Path) -> None:
    import subprocess

    srv = ServerProcess(tmp_path / "var", free_port_pair())
    srv.data_dir.mkdir(parents=True)
    http_port = free_tcp_port()
    token = start(srv, http_port)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "imsconf.cli", "book", "--data-dir", str(srv.data_dir), "create",
             "--uri", "sip:weekly@localhost", "--start", iso(SOON), "--end", iso(SOON + timedelta(hours=1))],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        bid = json.loads(proc.stdout)["id"]
        status, body = call(http_port, token, "GET", f"/bookings/{bid}")
        assert status == 200 and body["uri"] == "sip:weekly@localhost"
        # and the overlap rule holds across the CLI and the server
        status, body = call(http_port, token, "POST", "/bookings", {"uri": "sip:weekly@localhost",
                            "start": iso(SOON), "end": iso(SOON + timedelta(minutes=30))})  # fmt: skip
        assert status == 409
    finally:
        srv.stop()
