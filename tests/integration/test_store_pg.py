"""A node on PostgreSQL end to end: a real ``imsconf serve`` configured with ``store = DSN``, the session's
throw-away cluster (``tests/pg.py``), the project's SRTP test UAs (``tests/uas``) and the operator API.

A booking made over the API and one made by ``imsconf book`` land in PostgreSQL (read back with psycopg),
and a leg's usage record lands there once the call ends; the data directory holds no SQLite store.  Then
PostgreSQL is stopped (by its postmaster's PID): the live booked conference goes on (its participants still
hear each other, a caller of that booking still joins from the node's booking index), a dial-in to a
booking the node has not read yet gets ``503`` with ``Retry-After``, an API write gets a 503 JSON with
``Retry-After``, a REGISTER (once the store has refused a write) 503 with ``Retry-After``.  PostgreSQL
started again, the next dial-in to that booking joins, an API write succeeds, the binding kept during the
outage is written and registrations are taken again, the usage record of a leg that ended during the
outage is written, without a restart of the node.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from baresip import free_tcp_port, free_udp_range
from harness import REPO, ServerProcess, free_port_pair
from sipclient import SipClient, header, status_of

from imsconf.store.pg import read_password
from pg import PgCluster
from uas import Call, UserAgent, tone_present

pytestmark = pytest.mark.timeout(180)

TONES = {"alice": 440.0, "bob": 660.0, "carol": 880.0, "dave": 550.0}
HEARD_DB = -32.0


def _iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


class Node:
    """The server, its operator API and a psycopg view of its database."""

    def __init__(self, srv: ServerProcess, http_port: int, config: Path, dsn: str, password: str) -> None:
        self.srv = srv
        self.http_port = http_port
        self.config = config
        self.dsn = dsn
        self.password = password
        self.token = (srv.data_dir / "api-token").read_text().strip()

    def api(self, method: str, path: str, body: Any = None) -> tuple[int, Any, dict[str, str]]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{self.http_port}{path}", data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=15) as resp:
                status, payload, headers = resp.status, resp.read(), dict(resp.headers)
        except urllib.error.HTTPError as exc:
            status, payload, headers = exc.code, exc.read(), dict(exc.headers)
        return status, json.loads(payload) if payload else None, headers

    def query(self, sql: str, *args: object) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.dsn, password=self.password, connect_timeout=5) as conn:
            return conn.execute(sql.encode(), args).fetchall()

    def book_cli(self, user: str, start: datetime, end: datetime) -> dict[str, Any]:
        """``imsconf book create`` with the node's configuration (another process: the node learns of it
        only when it re-reads the bookings)."""
        out = subprocess.run(
            [sys.executable, "-m", "imsconf.cli", "book", "--config", str(self.config),
             "--data-dir", str(self.srv.data_dir), "--domain", "localhost", "create",
             "--uri", f"sip:{user}@localhost", "--start", _iso(start), "--end", _iso(end), "--capacity", "6"],
            cwd=REPO, capture_output=True, check=True, timeout=60,
        )  # fmt: skip
        booking: dict[str, Any] = json.loads(out.stdout)
        return booking


def register(node: Node, user: str) -> tuple[int | None, list[str]]:
    """One REGISTER of *user* over UDP (the node runs without digest auth): its status and Retry-After."""
    client = SipClient("udp", ("127.0.0.1", node.srv.port))
    try:
        resp = client.request("REGISTER", f"sip:{user}@localhost", extra=["Expires: 600"])
    finally:
        client.close()
    return status_of(resp), [] if resp is None else header(resp, "Retry-After")


def booking_body(user: str, start: datetime, end: datetime) -> dict[str, Any]:
    return {"uri": f"sip:{user}@localhost", "start": _iso(start), "end": _iso(end), "capacity": 6}


def wait_for(cond: Callable[[], bool], timeout: float, what: str, node: Node) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}\n--- server ---\n{node.srv.log()[-5000:]}")


def hears(call: Call, other: str, window: float = 0.5) -> bool:
    audio = call.media.audio(since=time.monotonic() - window)
    return len(audio) >= 8000 * window * 0.6 and tone_present(audio, TONES[other]) >= HEARD_DB


@pytest.fixture
def node(pg_cluster: PgCluster, pg_dsn: str, tmp_path: Path) -> Iterator[Node]:
    lo, hi = free_udp_range(100)
    cfg = tmp_path / "imsconf.toml"
    cfg.write_text(
        f'store = "{pg_dsn}"\nstore_password_file = "{pg_cluster.password_file}"\n'
        f'rtp_port_range = [{lo}, {hi}]\nmedia_host = "127.0.0.1"\nbfcp_listen = []\n'
    )
    srv = ServerProcess(tmp_path / "srv", free_port_pair())
    http_port = free_tcp_port()
    srv.start("--config", str(cfg), "--http", f"127.0.0.1:{http_port}", auth="none")
    try:
        yield Node(srv, http_port, cfg, pg_dsn, read_password(pg_cluster.password_file))
    finally:
        srv.stop()
        if not (pg_cluster.data / "postmaster.pid").exists():  # the session's other tests need it up
            pg_cluster.start()


def test_node_on_postgresql_rides_out_a_database_outage(node: Node, pg_cluster: PgCluster) -> None:
    now = datetime.now(UTC)
    start, end = now - timedelta(minutes=1), now + timedelta(hours=1)
    status, weekly, _ = node.api("POST", "/api/v1/bookings", booking_body("weekly", start, end))
    assert status == 201, weekly
    later = node.book_cli("later", start, end)
    rows = node.query("SELECT id, uri FROM bookings ORDER BY uri")
    assert rows == [(later["id"], "sip:later@localhost"), (weekly["id"], "sip:weekly@localhost")]
    assert register(node, "erin") == (200, [])
    assert node.query("SELECT aor FROM registrar_bindings") == [("sip:erin@localhost",)]
    sqlite_files = sorted(p.name for p in node.srv.data_dir.glob("*.sqlite3*"))
    assert sqlite_files == [], sqlite_files  # nothing of the stores went to SQLite

    ca = str(node.srv.data_dir / "pki" / "ca.pem")
    proxy = ("127.0.0.1", node.srv.tls_port)
    agents: list[UserAgent] = []

    def agent(user: str) -> UserAgent:
        ua = UserAgent(user, transport="tls", ca_file=ca, tls_server_name="localhost", tone_hz=TONES[user],
                       srtp=True, srtp_required=True, rtcp_interval=0.5).start()  # fmt: skip
        agents.append(ua)
        return ua

    try:
        alice, bob, carol, dave = (agent(u) for u in ("alice", "bob", "carol", "dave"))
        a = alice.call("sip:weekly@localhost", proxy=proxy)
        b = bob.call("sip:weekly@localhost", proxy=proxy)
        assert a.state == "confirmed" and b.state == "confirmed", (a.final_response, b.final_response)
        wait_for(lambda: hears(a, "bob") and hears(b, "alice"), 10, "alice and bob hear each other", node)

        # a leg that ends: its usage record is in PostgreSQL
        c = carol.call("sip:weekly@localhost", proxy=proxy)
        assert c.state == "confirmed", c.final_response
        time.sleep(0.5)
        c.bye()
        wait_for(lambda: len(node.query("SELECT 1 FROM usage_legs")) == 1, 10, "carol's usage record", node)
        (leg_uri,) = node.query("SELECT conference_uri FROM usage_legs")[0]
        assert leg_uri == "sip:weekly@localhost"

        # PostgreSQL goes away
        pg_cluster.stop_now()
        began = time.monotonic()
        refused = dave.call("sip:later@localhost", proxy=proxy)
        answered_in = time.monotonic() - began
        resp = refused.final_response
        assert resp is not None and resp.status == 503, resp
        assert resp.get("Retry-After") == "5", resp
        assert answered_in < 5.0, answered_in
        status, body, headers = node.api("POST", "/api/v1/bookings", booking_body("spare", start, end))
        assert status == 503 and headers.get("Retry-After") == "5", (status, body, headers)
        assert body is not None and body["error"].startswith("store unavailable")
        # a registration: the first change finds the store gone (kept, to be written later), the next
        # ones are refused until it is back
        assert register(node, "frank") == (200, [])
        wait_for(
            lambda: "event=registrations_store_unavailable" in node.srv.log(), 10, "the lost write", node
        )
        assert register(node, "grace") == (503, ["5"])
        # the live conference goes on: media flows, and a caller of its booking joins from the index
        time.sleep(1.0)
        assert node.srv.alive()
        assert hears(a, "bob") and hears(b, "alice")
        c2 = carol.call("sip:weekly@localhost", proxy=proxy)
        assert c2.state == "confirmed", c2.final_response
        wait_for(lambda: hears(c2, "alice"), 10, "carol hears the live conference", node)
        c2.bye()  # a leg that ends during the outage: its usage record waits for the store
        wait_for(lambda: "event=usage_store_unavailable" in node.srv.log(), 10, "the usage record held", node)

        # PostgreSQL is back: the node reconnects by itself
        pg_cluster.start()
        back = time.monotonic()
        joined = dave.call("sip:later@localhost", proxy=proxy)
        assert joined.state == "confirmed", joined.final_response
        rejoined_in = time.monotonic() - back
        assert rejoined_in < 5.0, rejoined_in
        print(f"store_pg: 503 answered in {answered_in * 1000:.0f} ms with PostgreSQL down; "
              f"booked join {rejoined_in * 1000:.0f} ms after it was back")  # fmt: skip
        status, spare, _ = node.api("POST", "/api/v1/bookings", booking_body("spare", start, end))
        assert status == 201, spare
        assert node.query("SELECT id FROM bookings WHERE uri = %s", "sip:spare@localhost") == [(spare["id"],)]
        wait_for(lambda: register(node, "grace")[0] == 200, 15, "registrations taken again", node)
        wait_for(lambda: len(node.query("SELECT 1 FROM usage_legs")) == 2, 15, "the held usage record", node)
        aors = {aor for (aor,) in node.query("SELECT aor FROM registrar_bindings")}
        assert aors == {"sip:erin@localhost", "sip:frank@localhost", "sip:grace@localhost"}, aors
        assert hears(a, "bob") and hears(b, "alice")
        log = node.srv.log()
        assert "event=dial_in_refused" in log and "reason=store_unavailable" in log
        assert "Traceback" not in log, log[-5000:]
    finally:
        for ua in agents:
            ua.close()
