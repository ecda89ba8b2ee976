"""The registrar's bindings stored (app/registrations.py: SQLite; store/bindings_pg.py: PostgreSQL):
written behind the loop, loaded at start."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest
from reg_helpers import DOMAIN, register, registrar

from imsconf.app.registrations import BindingStore, BindingWriter, StoredBinding
from imsconf.registrar.bindings import Binding
from imsconf.registrar.core import Registrar, RegistrarConfig
from imsconf.sip.peer import Peer
from imsconf.store.bindings import BindingsBackend
from imsconf.store.errors import RETRY_AFTER, StoreUnavailable
from pg import PgCluster

AOR = f"sip:alice@{DOMAIN}"


def _registered(reg: Registrar, now: float) -> None:
    path = (("Path", "<sip:edge.example.net;lr>"),)
    req = register(
        contacts=("<sip:alice@198.51.100.7:5070>;q=0.5", "<sip:alice@198.51.100.8>;expires=100"), extra=path
    )
    assert reg.register(req, Peer("tcp", "198.51.100.7", 40001, 9), "alice", now).status == 200  # fmt: skip


@pytest.fixture(params=["sqlite", "postgresql"])
def open_bindings(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], BindingsBackend]:
    """Opens the same bindings store of one backend on each call (a restart opens it again)."""
    if request.param == "sqlite":
        return lambda: BindingStore(tmp_path / "registrations.sqlite3")
    from imsconf.store.bindings_pg import PgBindingStore
    from imsconf.store.pg import PgDatabase, read_password

    cluster: PgCluster = request.getfixturevalue("pg_cluster")
    dsn, password = cluster.create_database(), read_password(cluster.password_file)
    return lambda: PgBindingStore(PgDatabase(dsn, password))


def test_bindings_survive_a_restart_and_expired_ones_are_dropped(
    tmp_path: Path, open_bindings: Callable[[], BindingsBackend]
) -> None:
    db = tmp_path / "registrations.sqlite3"

    async def first_run() -> None:
        loop = asyncio.get_running_loop()
        writer = BindingWriter(open_bindings(), loop)
        assert await writer.load() == []
        reg = registrar()
        _registered(reg, loop.time())
        writer.submit(reg.take_changes())
        await writer.close()

    async def second_run(skew: float) -> list[Binding]:
        loop = asyncio.get_running_loop()
        writer = BindingWriter(open_bindings(), loop)
        loaded = await writer.load()
        reg = Registrar(RegistrarConfig(domains=frozenset({DOMAIN})), loaded, now=loop.time() + skew)
        await writer.close()
        return reg.lookup(AOR, loop.time() + skew)

    asyncio.run(first_run())
    if db.exists():  # SQLite: a private file
        assert db.stat().st_mode & 0o077 == 0
    (kept_early, other) = asyncio.run(second_run(0.0))
    assert str(kept_early.uri) == "sip:alice@198.51.100.8" and str(other.uri) == "sip:alice@198.51.100.7:5070"
    assert other.q == 500 and other.q_given and other.path == ("<sip:edge.example.net;lr>",)
    assert other.flow == Peer("tcp", "198.51.100.7", 40001)  # no connection survives a restart
    assert 3590 < other.expires_at - asyncio.run(_loop_time()) <= 3600
    (only,) = asyncio.run(second_run(200.0))  # the 100 s binding is gone by then
    assert str(only.uri) == "sip:alice@198.51.100.7:5070"


async def _loop_time() -> float:
    return asyncio.get_running_loop().time()


def test_load_deletes_expired_rows(tmp_path: Path) -> None:
    store = BindingStore(tmp_path / "r.sqlite3")
    now = time.time()
    row = StoredBinding(AOR, "sip:alice@h", now - 1, 1000, False, "c", 1, (), "udp", "h", 5060, now - 100)
    fresh = dataclasses.replace(row, contact="sip:alice@g", expires_wall=now + 60)
    store.replace([(AOR, [row, fresh])])
    assert [r.contact for r in store.load(now)] == ["sip:alice@g"]
    store.close()
    with sqlite3.connect(tmp_path / "r.sqlite3") as db:
        assert db.execute("SELECT COUNT(*) FROM bindings").fetchone()[0] == 1


def test_writes_run_off_the_loop_thread_and_in_order(tmp_path: Path) -> None:
    threads: list[str] = []

    class Spy(BindingStore):
        def replace(self, changes: Iterable[tuple[str, list[StoredBinding]]]) -> None:
            threads.append(threading.current_thread().name)
            super().replace(changes)

    async def run() -> list[StoredBinding]:
        loop = asyncio.get_running_loop()
        store = Spy(tmp_path / "r.sqlite3")
        writer = BindingWriter(store, loop)
        reg = registrar()
        for cseq, expires in ((1, "600"), (2, "0"), (3, "900")):
            req = register(expires=expires, cseq=cseq)
            assert reg.register(req, Peer("udp", "198.51.100.7", 5070), "alice", loop.time()).status == 200
            writer.submit(reg.take_changes())
        await writer.drain()
        rows = await loop.run_in_executor(None, store.load, time.time())
        await writer.close()
        return rows

    rows = asyncio.run(run())
    assert len(threads) == 3 and all(t.startswith("imsconf-registrations") for t in threads)
    (row,) = rows
    assert row.cseq == 3 and 890 < row.expires_wall - time.time() <= 900


def test_a_failing_store_is_logged_and_the_server_goes_on(tmp_path: Path) -> None:
    class Broken(BindingStore):
        def replace(self, changes: Iterable[tuple[str, list[StoredBinding]]]) -> None:
            raise sqlite3.OperationalError("disk I/O error")

        def load(self, wall_now: float) -> list[StoredBinding]:
            raise sqlite3.OperationalError("unable to open database file")

    async def run() -> int:
        loop = asyncio.get_running_loop()
        writer = BindingWriter(Broken(tmp_path / "r.sqlite3"), loop)
        assert await writer.load() == []
        reg = registrar()
        _registered(reg, loop.time())
        writer.submit(reg.take_changes())
        await writer.close()
        return writer.failures

    assert asyncio.run(run()) == 1


def test_writes_lost_to_an_unreachable_store_are_retried_until_stored(tmp_path: Path) -> None:
    """StoreUnavailable (PostgreSQL down): the rows wait, the writer says so (the registrar answers 503
    meanwhile) and tries again; once a write succeeds the newest rows of the AoR are stored."""
    down = threading.Event()
    down.set()

    class Flaky(BindingStore):
        def replace(self, changes: Iterable[tuple[str, list[StoredBinding]]]) -> None:
            if down.is_set():
                raise StoreUnavailable("store postgresql://db unavailable: connection refused")
            super().replace(changes)

    async def run() -> tuple[int | None, int | None, list[StoredBinding]]:
        loop = asyncio.get_running_loop()
        store = Flaky(tmp_path / "r.sqlite3")
        writer = BindingWriter(store, loop, retry_interval=0.05)
        reg = registrar()
        _registered(reg, loop.time())
        writer.submit(reg.take_changes())
        await writer.drain()
        while_down = writer.unavailable()
        await asyncio.sleep(0.2)  # retried (and failed) meanwhile
        assert writer.failures >= 2
        down.clear()
        for _ in range(100):
            if writer.unavailable() is None:
                break
            await asyncio.sleep(0.02)
        after = writer.unavailable()
        rows = await loop.run_in_executor(None, store.load, time.time())
        await writer.close()
        return while_down, after, rows

    while_down, after, rows = asyncio.run(run())
    assert while_down == RETRY_AFTER and after is None
    assert sorted(r.contact for r in rows) == ["sip:alice@198.51.100.7:5070", "sip:alice@198.51.100.8"]
