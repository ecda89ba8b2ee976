"""The usage stores (SQLite and PostgreSQL: round trips, windows and a second writer over both);
for SQLite migrations, WAL and file mode; for PostgreSQL the schema version."""

from __future__ import annotations

import os
import sqlite3
import stat
import tempfile
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imsconf.usage.records import ConferenceUsage, LegUsage
from imsconf.usage.store import DB_NAME, SCHEMA_VERSION, UsageBackend, UsageStore, UsageStoreError, to_text
from pg import PgCluster
from usage_records import T0, conference, conferences, leg, legs


class OpenBackend:
    """Opens a store of one backend; every call opens the same database (a second call: a second writer),
    :meth:`fresh` starts a new, empty one."""

    def __init__(self, kind: str, request: pytest.FixtureRequest) -> None:
        self.kind = kind
        self.request = request
        self.opened: list[UsageBackend] = []
        self.where = ""

    def fresh(self) -> None:
        if self.kind == "sqlite":
            self.where = tempfile.mkdtemp(prefix="imsconf-usage-")
        else:
            cluster: PgCluster = self.request.getfixturevalue("pg_cluster")
            self.where = cluster.create_database()

    def __call__(self) -> UsageBackend:
        if not self.where:
            self.fresh()
        store: UsageBackend
        if self.kind == "sqlite":
            store = UsageStore.open(self.where)
        else:
            from imsconf.store.pg import PgDatabase, read_password
            from imsconf.store.usage_pg import PgUsageStore

            cluster: PgCluster = self.request.getfixturevalue("pg_cluster")
            store = PgUsageStore(PgDatabase(self.where, read_password(cluster.password_file)))
        self.opened.append(store)
        return store


@pytest.fixture(params=["sqlite", "postgresql"])
def open_backend(request: pytest.FixtureRequest) -> Iterator[OpenBackend]:
    factory = OpenBackend(request.param, request)
    yield factory
    for store in factory.opened:
        store.close()


def test_round_trip_and_file(tmp_path: Path) -> None:
    store = UsageStore.open(tmp_path)
    assert store.path == tmp_path / DB_NAME
    a, c = leg(T0), conference(T0)
    store.append([a], [c])
    assert store.records(None, None) == ((a,), (c,))
    store.close()
    assert stat.S_IMODE(os.stat(tmp_path / DB_NAME).st_mode) == 0o600
    with UsageStore.open(tmp_path) as again:  # reopened: still there
        assert again.records(None, None) == ((a,), (c,))
        assert again.schema_version == SCHEMA_VERSION
    db = sqlite3.connect(tmp_path / DB_NAME)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    row = db.execute("SELECT joined, left_at FROM legs").fetchone()
    assert row == ("2030-06-01T08:59:00.000000+00:00", "2030-06-01T09:00:00.000000+00:00")
    db.close()


@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(legs, max_size=5), st.lists(conferences, max_size=5))
def test_round_trip_of_any_records(
    open_backend: OpenBackend, ls: list[LegUsage], cs: list[ConferenceUsage]
) -> None:
    open_backend.fresh()
    store = open_backend()
    try:
        store.append_legs(ls)
        store.append_conferences(cs)
        got_legs, got_confs = store.records(None, None)
    finally:
        store.close()
    assert sorted(got_legs, key=repr) == sorted(ls, key=repr)
    assert sorted(got_confs, key=repr) == sorted(cs, key=repr)
    assert [r.left for r in got_legs] == sorted(r.left for r in ls)  # by end time


def test_window_is_by_end_time_half_open(open_backend: OpenBackend) -> None:
    store = open_backend()
    times = [T0 + timedelta(minutes=m) for m in range(5)]
    store.append(
        [leg(t, pid=f"p{i}", seconds=3600) for i, t in enumerate(times)], [conference(t) for t in times]
    )
    ls, cs = store.records(times[1], times[3])
    assert [r.participant_id for r in ls] == ["p1", "p2"]  # joined long before: the end time counts
    assert [r.ended for r in cs] == times[1:3]
    assert [r.participant_id for r in store.records(times[3], None)[0]] == ["p3", "p4"]
    assert [r.participant_id for r in store.records(None, times[1])[0]] == ["p0"]
    assert store.records(times[2], times[2]) == ((), ())
    # another offset, and a naive instant (UTC), name the same instants
    plus2 = timezone(timedelta(hours=2))
    assert store.records(times[1].astimezone(plus2), times[3].replace(tzinfo=None))[0] == ls


def test_migrations_from_empty_and_old_and_newer(tmp_path: Path) -> None:
    path = tmp_path / "u.sqlite3"
    UsageStore(path, migrate_to=0).close()  # schema_version only
    db = sqlite3.connect(path)
    names = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert names == {"schema_version"}
    db.close()
    with UsageStore(path) as store:
        assert store.schema_version == SCHEMA_VERSION
        store.append([leg()], [])
    db = sqlite3.connect(path)
    indexes = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert {"legs_by_end", "conferences_by_end"} <= indexes
    db.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
    db.commit()
    db.close()
    with pytest.raises(UsageStoreError, match="newer"):
        UsageStore(path)


def test_garbage_file_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / DB_NAME
    path.write_bytes(b"not a database" * 100)
    with pytest.raises(UsageStoreError):
        UsageStore(path)


def test_two_connections_write_concurrently(open_backend: OpenBackend) -> None:
    """The server's writer and another process (here a second connection) append at once: nothing lost."""
    a, b = open_backend(), open_backend()
    n = 50

    def write(store: UsageBackend, tag: str) -> None:
        for i in range(n):
            store.append([leg(T0 + timedelta(seconds=i), pid=f"{tag}{i}")], [])

    threads = [threading.Thread(target=write, args=(s, t)) for s, t in ((a, "a"), (b, "b"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ls, _ = a.records(None, None)
    assert len(ls) == 2 * n and len({r.participant_id for r in ls}) == 2 * n


def test_the_store_is_a_backend(open_backend: OpenBackend) -> None:
    backend: UsageBackend = open_backend()
    backend.append([], [])
    assert backend.records(datetime(2000, 1, 1, tzinfo=UTC), None) == ((), ())


def test_pg_schema_version_and_newer_schema_refused(pg_cluster: PgCluster, pg_dsn: str) -> None:
    from imsconf.store import usage_pg
    from imsconf.store.pg import PgDatabase, PgSchemaError, read_password

    db = PgDatabase(pg_dsn, read_password(pg_cluster.password_file))
    store = usage_pg.PgUsageStore(db, migrate_to=0)
    assert store.schema_version == 0
    store = usage_pg.PgUsageStore(db)
    assert store.schema_version == usage_pg.SCHEMA_VERSION == len(usage_pg.MIGRATIONS)
    with db.transaction() as cur:
        cur.execute("UPDATE schema_version SET version = 99 WHERE component = 'usage'")
    with pytest.raises(PgSchemaError, match="newer"):
        usage_pg.PgUsageStore(db)
    db.close()


def test_to_text_is_fixed_width_utc() -> None:
    assert to_text(datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=1)))) == (
        "2030-01-02T02:04:05.000000+00:00"
    )
    assert to_text(datetime(2030, 1, 2)) == "2030-01-02T00:00:00.000000+00:00"
