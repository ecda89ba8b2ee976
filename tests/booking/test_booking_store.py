"""The bookings stores (SQLite and PostgreSQL, the same tests over both): CRUD, the overlap rule, window
status; for SQLite WAL + synchronous=FULL, migrations, PIN never in clear on disk, and bookings surviving a
kill -9 right after the commit returned; for PostgreSQL the rule across nodes racing, the schema version."""

from __future__ import annotations

import dataclasses
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from booking_cases import DOMAIN, END, NOW, START, iso, valid_request

from imsconf.booking.backend import BookingStorage
from imsconf.booking.model import Booking, InvalidBooking, WindowState, booking_from_request
from imsconf.booking.store import (
    DB_NAME,
    MIGRATIONS,
    SCHEMA_VERSION,
    BookingConflict,
    BookingStore,
    BookingStoreError,
)
from pg import PgCluster

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[BookingStore]:
    s = BookingStore.open(tmp_path / "var")
    yield s
    s.close()


def pg_store(cluster: PgCluster, dsn: str) -> BookingStorage:
    from imsconf.store.booking_pg import PgBookingStore
    from imsconf.store.pg import PgDatabase, read_password

    return PgBookingStore(PgDatabase(dsn, read_password(cluster.password_file)))


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BookingStorage]:
    """Each backend in turn: the embedded SQLite file and a PostgreSQL database of the session cluster."""
    s: BookingStorage
    if request.param == "sqlite":
        s = BookingStore.open(tmp_path / "var")
    else:
        cluster: PgCluster = request.getfixturevalue("pg_cluster")
        s = pg_store(cluster, cluster.create_database())
    yield s
    s.close()


def make(**changes: Any) -> Booking:
    base: dict[str, Any] = {"uri": "sip:weekly@example.com", "start": iso(START), "end": iso(END)}
    base.update(changes)
    return booking_from_request(base, domain=DOMAIN, now=NOW)


def test_create_get_list_cancel(store: BookingStorage) -> None:
    full = booking_from_request(valid_request(), domain=DOMAIN, now=NOW)
    assert store.create(full) is full
    assert store.get(full.id) == full  # every field round-trips, invitees in order
    other = store.create(make(uri="sip:daily@example.com", start=iso(START + timedelta(hours=3)),
                              end=iso(END + timedelta(hours=3))))  # fmt: skip
    assert [b.id for b in store.list()] == [full.id, other.id]
    assert store.get("nosuchbooking") is None
    cancelled = store.cancel(full.id, NOW)
    assert cancelled is not None and cancelled.cancelled
    assert store.cancel(full.id, NOW) == cancelled  # idempotent
    assert store.cancel("nosuchbooking") is None
    assert [b.id for b in store.list()] == [other.id]
    assert [b.id for b in store.list(include_cancelled=True)] == [full.id, other.id]


def test_list_active_at(store: BookingStorage) -> None:
    a = store.create(make())
    b = store.create(make(uri="sip:later@example.com", start=iso(END), end=iso(END + timedelta(hours=1))))
    assert [x.id for x in store.list(active_at=START)] == [a.id]
    assert [x.id for x in store.list(active_at=END)] == [b.id]  # the window is [start, end)
    assert store.list(active_at=NOW) == []


def test_duplicate_id_refused(store: BookingStorage) -> None:
    a = store.create(make())
    with pytest.raises(InvalidBooking) as info:
        store.create(dataclasses.replace(a, uri="sip:other@example.com"))
    assert info.value.fields == ("id",)


OVERLAP: list[tuple[str, str, timedelta, timedelta, bool]] = [
    ("same-window", "sip:weekly@example.com", timedelta(0), timedelta(0), True),
    ("inside", "sip:weekly@example.com", timedelta(minutes=10), timedelta(minutes=-10), True),
    ("covering", "sip:weekly@example.com", timedelta(minutes=-10), timedelta(minutes=10), True),
    ("tail-overlap", "sip:weekly@example.com", timedelta(minutes=59), timedelta(hours=1), True),
    ("sips-same-room", "sips:weekly@example.com", timedelta(0), timedelta(0), True),
    ("host-case", "sip:weekly@EXAMPLE.com", timedelta(0), timedelta(0), True),
    ("adjacent-after", "sip:weekly@example.com", timedelta(hours=1), timedelta(hours=1), False),
    ("adjacent-before", "sip:weekly@example.com", timedelta(hours=-1), timedelta(hours=-1), False),
    ("other-user", "sip:monthly@example.com", timedelta(0), timedelta(0), False),
    (
        "user-case-differs",
        "sip:Weekly@example.com",
        timedelta(0),
        timedelta(0),
        False,
    ),  # RFC 3261: case-sensitive
]


@pytest.mark.parametrize(
    ("uri", "ds", "de", "conflict"), [c[1:] for c in OVERLAP], ids=[c[0] for c in OVERLAP]
)
def test_overlap_rule(store: BookingStorage, uri: str, ds: timedelta, de: timedelta, conflict: bool) -> None:
    first = store.create(make())
    second = make(uri=uri, start=iso(START + ds), end=iso(END + de))
    if conflict:
        with pytest.raises(BookingConflict) as info:
            store.create(second)
        assert info.value.fields == ("uri",) and info.value.other_id == first.id
        assert len(store.list()) == 1
    else:
        store.create(second)
        assert len(store.list()) == 2


def test_overrun_round_trips_and_holds_the_uri_until_the_close(store: BookingStorage) -> None:
    first = store.create(make(overrun=30))
    assert store.get(first.id) == first and first.overrun == 30
    # the next window of the URI may not start while the conference may still run
    with pytest.raises(BookingConflict):
        store.create(make(start=iso(END + timedelta(minutes=29)), end=iso(END + timedelta(hours=1))))
    store.create(make(start=iso(END + timedelta(minutes=30)), end=iso(END + timedelta(hours=1))))
    # nor may an earlier window run (with its own overrun) into this one
    with pytest.raises(BookingConflict):
        store.create(make(start=iso(START - timedelta(hours=1)), end=iso(START), overrun=1))
    store.create(make(start=iso(START - timedelta(hours=1)), end=iso(START)))
    assert len(store.list()) == 3


def test_cancelled_booking_frees_the_window(store: BookingStorage) -> None:
    first = store.create(make())
    store.cancel(first.id, NOW)
    store.create(make())
    assert len(store.list(include_cancelled=True)) == 2


def test_overlap_rule_holds_across_two_connections(tmp_path: Path) -> None:
    """The CLI and a running server open the same file: the check and the insert are one transaction."""
    with BookingStore.open(tmp_path) as a, BookingStore.open(tmp_path) as b:
        a.create(make())
        with pytest.raises(BookingConflict):
            b.create(make())
        assert len(b.list()) == 1


def test_pg_overlap_rule_holds_across_two_nodes(pg_cluster: PgCluster, pg_dsn: str) -> None:
    """Two nodes on one database: the check and the insert are one transaction under the URI's lock."""
    a, b = pg_store(pg_cluster, pg_dsn), pg_store(pg_cluster, pg_dsn)
    try:
        a.create(make())
        with pytest.raises(BookingConflict):
            b.create(make())
        assert len(b.list()) == 1
    finally:
        a.close()
        b.close()


def test_pg_overlap_rule_under_a_race(pg_cluster: PgCluster, pg_dsn: str) -> None:
    """Eight nodes book the same window at once: exactly one booking is made."""
    import threading

    stores = [pg_store(pg_cluster, pg_dsn) for _ in range(8)]
    results: list[str] = []
    gate = threading.Barrier(len(stores))

    def book(s: BookingStorage) -> None:
        gate.wait()
        try:
            s.create(make())
            results.append("won")
        except BookingConflict:
            results.append("conflict")

    threads = [threading.Thread(target=book, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert sorted(results) == ["conflict"] * 7 + ["won"]
        assert len(stores[0].list()) == 1
    finally:
        for s in stores:
            s.close()


def test_pg_schema_version_and_newer_schema_refused(pg_cluster: PgCluster, pg_dsn: str) -> None:
    from imsconf.store import booking_pg
    from imsconf.store.pg import PgDatabase, PgSchemaError, read_password

    s = pg_store(pg_cluster, pg_dsn)
    assert s.schema_version == booking_pg.SCHEMA_VERSION == len(booking_pg.MIGRATIONS)
    s.close()
    db = PgDatabase(pg_dsn, read_password(pg_cluster.password_file))
    with db.transaction() as cur:
        cur.execute("UPDATE schema_version SET version = 99 WHERE component = 'bookings'")
    with pytest.raises(PgSchemaError, match="newer"):
        booking_pg.PgBookingStore(db)
    db.close()


def test_window_status(store: BookingStorage) -> None:
    early = store.create(make())
    later = store.create(make(start=iso(START + timedelta(days=1)), end=iso(END + timedelta(days=1))))
    gone = store.create(make(uri="sip:gone@example.com"))
    store.cancel(gone.id, NOW)
    ruri = "sips:weekly@example.com:5061;transport=tls;pin=0123"
    assert store.window_status(ruri, NOW) == (early, WindowState.EARLY)
    assert store.window_status(ruri, START) == (early, WindowState.OPEN)
    assert store.window_status(ruri, END) == (later, WindowState.EARLY)
    assert store.window_status(ruri, END + timedelta(days=1)) == (later, WindowState.ENDED)
    status = store.window_status("sip:gone@example.com", START)
    assert status[1] is WindowState.CANCELLED and status[0] is not None and status[0].id == gone.id
    assert store.window_status("sip:nobody@example.com", START) == (None, WindowState.UNKNOWN)
    assert store.window_status("not a uri", START) == (None, WindowState.UNKNOWN)
    assert store.window_status("tel:+123", START) == (None, WindowState.UNKNOWN)


def test_verify_pin(store: BookingStorage) -> None:
    with_pin = store.create(make(pin="24680"))
    without = store.create(make(uri="sip:open@example.com"))
    assert store.verify_pin(with_pin.id, "24680")
    assert not store.verify_pin(with_pin.id, "24681")
    assert not store.verify_pin(with_pin.id, "")
    assert store.verify_pin(without.id, "")
    assert not store.verify_pin("nosuchbooking", "24680")


def test_wal_full_sync_and_private_file(sqlite_store: BookingStore) -> None:
    store = sqlite_store
    assert store.journal_mode == "wal"
    assert store.synchronous == 2  # FULL
    assert stat.S_IMODE(os.stat(store.path).st_mode) == 0o600
    store.create(make())
    for suffix in ("-wal", "-shm"):
        side = Path(str(store.path) + suffix)
        if side.exists():
            assert stat.S_IMODE(os.stat(side).st_mode) == 0o600
    with sqlite3.connect(store.path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"  # persistent in the file


def test_no_clear_pin_on_disk(tmp_path: Path) -> None:
    pins = ["73915804", "46029931", "583920174466"]
    with BookingStore.open(tmp_path) as s:
        for i, pin in enumerate(pins):
            s.create(make(uri=f"sip:room{i}@example.com", pin=pin))
        files = [p for p in tmp_path.iterdir() if p.name.startswith(DB_NAME)]
        assert files
        blob = b"".join(p.read_bytes() for p in files)  # DB, WAL and SHM while open
    blob += b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith(DB_NAME))
    for pin in pins:
        assert pin.encode() not in blob
        assert pin.encode("utf-16-le") not in blob
    assert b"scrypt$" in blob


def test_schema_version_table(sqlite_store: BookingStore) -> None:
    store = sqlite_store
    assert store.schema_version == SCHEMA_VERSION == len(MIGRATIONS) >= 2
    with sqlite3.connect(store.path) as raw:
        assert raw.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]


def test_migrates_an_old_database(tmp_path: Path) -> None:
    path = tmp_path / DB_NAME
    with BookingStore(path, migrate_to=1) as old:
        assert old.schema_version == 1
    # a v1 row, written as a v1 imsconf would have
    b = make(pin="1357", invitees=[{"uri": "sip:a@example.com", "role": "chair"}])
    with sqlite3.connect(path) as raw:
        cols = [r[1] for r in raw.execute("PRAGMA table_info(bookings)")]
        assert "subject" not in cols
        raw.execute(
            "INSERT INTO bookings (id, uri, uri_key, start_ts, end_ts, pin_hash, capacity, downlink,"
            " rekey, allow_pin_in_uri, dial_out, created_ts)"
            " VALUES (?, ?, ?, ?, ?, ?, 10, 'group', 'both', 0, 0, ?)",
            (b.id, b.uri, b.key, int(b.start.timestamp()), int(b.end.timestamp()), b.pin_hash,
             int(b.created_at.timestamp())),
        )  # fmt: skip
        raw.execute("INSERT INTO invitees VALUES (?, 0, 'sip:a@example.com', 'chair')", (b.id,))
    with BookingStore(path) as new:
        assert new.schema_version == SCHEMA_VERSION
        got = new.get(b.id)
        assert got is not None and got.subject is None and got.invitees == b.invitees
        assert new.verify_pin(b.id, "1357")
        new.cancel(b.id, NOW)  # uses the v2 column cancelled_ts
    with sqlite3.connect(path) as raw:
        assert raw.execute("SELECT cancelled_ts FROM bookings").fetchone()[0] == int(NOW.timestamp())
        indexes = {r[1] for r in raw.execute("PRAGMA index_list(bookings)")}
        assert "bookings_by_uri" in indexes


def test_migrates_a_database_without_the_overrun(tmp_path: Path) -> None:
    path = tmp_path / DB_NAME
    b = make(subject="before the overrun")
    with BookingStore(path, migrate_to=2) as old:
        assert old.schema_version == 2
    with sqlite3.connect(path) as raw:  # a v2 row, written as a v2 imsconf would have
        assert "overrun" not in [r[1] for r in raw.execute("PRAGMA table_info(bookings)")]
        raw.execute(
            "INSERT INTO bookings (id, uri, uri_key, start_ts, end_ts, pin_hash, capacity, downlink,"
            " rekey, allow_pin_in_uri, dial_out, created_ts, subject)"
            " VALUES (?, ?, ?, ?, ?, NULL, 10, 'group', 'both', 0, 0, ?, ?)",
            (b.id, b.uri, b.key, int(b.start.timestamp()), int(b.end.timestamp()),
             int(b.created_at.timestamp()), b.subject),
        )  # fmt: skip
    with BookingStore(path) as new:
        assert new.schema_version == SCHEMA_VERSION >= 3
        got = new.get(b.id)
        assert got is not None and got.overrun == 0 and got.subject == "before the overrun"
        later = new.create(make(uri="sip:later@example.com", overrun=5))
        assert new.get(later.id) == later


def test_audio_codecs_round_trip_in_order(store: BookingStorage) -> None:
    b = store.create(make(audio_codecs=["G722", "PCMU", "AMR-WB"]))
    got = store.get(b.id)
    assert got == b and got is not None and got.audio_codecs == ("G722", "PCMU", "AMR-WB")
    plain = store.create(make(uri="sip:plain@example.com"))
    assert {x.id: x.audio_codecs for x in store.list()} == {b.id: ("G722", "PCMU", "AMR-WB"), plain.id: ()}
    assert store.get(plain.id) == plain


def test_migrates_a_database_without_audio_codecs(tmp_path: Path) -> None:
    path = tmp_path / DB_NAME
    b = make(subject="before the codecs", overrun=5)
    with BookingStore(path, migrate_to=3) as old:
        assert old.schema_version == 3
    with sqlite3.connect(path) as raw:  # a v3 row, written as a v3 imsconf would have
        assert "audio_codecs" not in [r[1] for r in raw.execute("PRAGMA table_info(bookings)")]
        raw.execute(
            "INSERT INTO bookings (id, uri, uri_key, start_ts, end_ts, pin_hash, capacity, downlink,"
            " rekey, allow_pin_in_uri, dial_out, created_ts, subject, overrun)"
            " VALUES (?, ?, ?, ?, ?, NULL, 10, 'group', 'both', 0, 0, ?, ?, 5)",
            (b.id, b.uri, b.key, int(b.start.timestamp()), int(b.end.timestamp()),
             int(b.created_at.timestamp()), b.subject),
        )  # fmt: skip
    with BookingStore(path) as new:
        assert new.schema_version == SCHEMA_VERSION >= 4
        got = new.get(b.id)
        assert got is not None and got.audio_codecs == () and got.overrun == 5
        later = new.create(make(uri="sip:later@example.com", audio_codecs=["PCMA"]))
        assert new.get(later.id) == later


def test_pg_migrates_a_database_without_audio_codecs(pg_cluster: PgCluster, pg_dsn: str) -> None:
    from imsconf.store import booking_pg
    from imsconf.store.pg import PgDatabase, read_password

    b = make(subject="before the codecs")
    db = PgDatabase(pg_dsn, read_password(pg_cluster.password_file))
    old = booking_pg.PgBookingStore(db, migrate_to=1)
    assert old.schema_version == 1
    with db.transaction() as cur:  # a v1 row, written as a v1 imsconf would have
        cur.execute(
            "SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema()"
            " AND table_name = 'bookings' AND column_name = 'audio_codecs'"
        )
        assert cur.fetchone() is None
        cur.execute(
            "INSERT INTO bookings (id, uri, uri_key, start_ts, end_ts, pin_hash, capacity, downlink,"
            " rekey, allow_pin_in_uri, dial_out, created_ts, subject)"
            " VALUES (%s, %s, %s, %s, %s, NULL, 10, 'group', 'both', FALSE, FALSE, %s, %s)",
            (b.id, b.uri, b.key, int(b.start.timestamp()), int(b.end.timestamp()),
             int(b.created_at.timestamp()), b.subject),
        )  # fmt: skip
    db.close()
    new = pg_store(pg_cluster, pg_dsn)
    try:
        assert new.schema_version == booking_pg.SCHEMA_VERSION >= 2
        got = new.get(b.id)
        assert got is not None and got.audio_codecs == () and got.subject == "before the codecs"
        later = new.create(make(uri="sip:later@example.com", audio_codecs=["opus", "PCMU"]))
        assert new.get(later.id) == later
    finally:
        new.close()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / DB_NAME
    BookingStore(path).close()
    with sqlite3.connect(path) as raw:
        raw.execute("UPDATE schema_version SET version = 99")
    with pytest.raises(BookingStoreError, match="newer"):
        BookingStore(path)


def test_corrupt_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / DB_NAME
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(BookingStoreError, match="bookings database"):
        BookingStore(path)


# -- crash safety: kill -9 right after create() returned --

CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from datetime import UTC, datetime, timedelta
    from imsconf.booking.model import booking_from_request
    from imsconf.booking.store import BookingStore

    data_dir, count, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    store = BookingStore.open(data_dir)
    now = datetime.now(UTC).replace(microsecond=0)
    for i in range(count):
        b = booking_from_request(
            {"uri": f"sip:room{i}@example.com", "start": (now + timedelta(hours=1)).isoformat(),
             "end": (now + timedelta(hours=2)).isoformat()},
            domain="example.com", now=now)
        store.create(b)
        os.write(1, (b.id + "\\n").encode())  # reported only once the commit has returned
        if mode == "self" and i == count - 1:
            os.kill(os.getpid(), signal.SIGKILL)
    if mode == "wait":
        signal.pause()
    """
)


def _run_child(data_dir: Path, count: int, mode: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(data_dir), str(count), mode], stdout=subprocess.PIPE, env=env
    )


def test_bookings_survive_kill_9_right_after_commit(tmp_path: Path) -> None:
    proc = _run_child(tmp_path, 25, "self")
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    ids = out.decode().split()
    assert len(ids) == 25
    with BookingStore.open(tmp_path) as s:
        assert {b.id for b in s.list()} == set(ids)


def test_bookings_survive_kill_9_mid_stream(tmp_path: Path) -> None:
    """Killed from outside while it keeps creating: every booking it reported is there."""
    proc = _run_child(tmp_path, 400, "wait")
    assert proc.stdout is not None
    ids = [proc.stdout.readline().decode().strip() for _ in range(15)]
    os.kill(proc.pid, signal.SIGKILL)
    rest, _ = proc.communicate(timeout=30)
    ids += rest.decode().split()
    assert proc.returncode == -signal.SIGKILL
    with BookingStore.open(tmp_path) as s:
        stored = {b.id for b in s.list()}
    assert set(ids) <= stored
    assert len(stored) - len(ids) <= 1  # at most the one committed between its write and the kill
