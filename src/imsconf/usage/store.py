"""Usage records in SQLite (``DATA_DIR/usage.sqlite3``): WAL, ``synchronous=FULL``, numbered migrations.

A file of its own, not a table in the bookings database: usage records are append-only and grow with
traffic, while bookings are a small, rewritten set; separate files keep their write locks, retention and
backups apart, and a PostgreSQL backend can later replace this one alone behind :class:`UsageBackend`.

Durability: each :meth:`UsageStore.append` is one transaction; in WAL mode with ``synchronous=FULL`` the
write-ahead log is fsynced before ``COMMIT`` returns, so a committed record survives a kill -9 (and a power
loss).  Times are stored as UTC ISO 8601 text of fixed width (``2030-06-01T09:00:00.000000+00:00``), so
text order is time order and the window queries use the indexes on the end times.

Thread safety: one connection guarded by a lock (the runtime's writer thread appends, the web layer reads
through ``asyncio.to_thread``); the CLI opens its own connection, WAL lets it read while the server writes.
The file is created 0600: it holds the participants' identities.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, Protocol

from imsconf.sqlitefile import open_sqlite

from .records import ConferenceUsage, LegUsage

__all__ = [
    "DB_NAME",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "UsageBackend",
    "UsageStore",
    "UsageStoreError",
    "from_text",
    "to_text",
]

DB_NAME: Final = "usage.sqlite3"


class UsageStoreError(OSError):
    """The database cannot be opened, is corrupt, or has a newer schema.  An OSError: a storage failure."""


class UsageBackend(Protocol):
    """Where usage records are kept (SQLite here; a PostgreSQL backend would implement the same)."""

    def append(self, legs: Sequence[LegUsage], conferences: Sequence[ConferenceUsage]) -> None:
        """Store every record given, in one transaction: all of them or none."""
        ...

    def append_legs(self, records: Sequence[LegUsage]) -> None: ...

    def append_conferences(self, records: Sequence[ConferenceUsage]) -> None: ...

    def records(
        self, since: datetime | None, until: datetime | None
    ) -> tuple[tuple[LegUsage, ...], tuple[ConferenceUsage, ...]]:
        """Legs that *ended* in ``[since, until)`` and conferences that ended in it, by end time
        (None: unbounded on that side)."""
        ...

    def close(self) -> None: ...


# -- migrations: append only; each runs in its own transaction and bumps schema_version --


def _migration_1(db: sqlite3.Connection) -> None:
    db.execute(
        """CREATE TABLE legs (
            seq INTEGER PRIMARY KEY,
            conference_id TEXT NOT NULL,
            conference_uri TEXT NOT NULL,
            participant_id TEXT NOT NULL,
            identity TEXT NOT NULL,
            privacy INTEGER NOT NULL,
            joined TEXT NOT NULL,
            left_at TEXT NOT NULL,
            reason TEXT NOT NULL,
            codec TEXT,
            srtp_suite TEXT,
            key_mode TEXT NOT NULL,
            packets_sent INTEGER NOT NULL,
            packets_received INTEGER NOT NULL,
            loss REAL,
            jitter_ms REAL
        ) STRICT"""
    )
    db.execute(
        """CREATE TABLE conferences (
            seq INTEGER PRIMARY KEY,
            conference_id TEXT NOT NULL,
            conference_uri TEXT NOT NULL,
            owner TEXT,
            created TEXT NOT NULL,
            ended TEXT NOT NULL,
            reason TEXT NOT NULL,
            participants INTEGER NOT NULL,
            planned INTEGER NOT NULL
        ) STRICT"""
    )
    db.execute("CREATE INDEX legs_by_end ON legs (left_at)")
    db.execute("CREATE INDEX conferences_by_end ON conferences (ended)")


MIGRATIONS: Final[tuple[Callable[[sqlite3.Connection], None], ...]] = (_migration_1,)
SCHEMA_VERSION: Final = len(MIGRATIONS)

_LEG_COLUMNS: Final = (
    "conference_id, conference_uri, participant_id, identity, privacy, joined, left_at, reason, codec, "
    "srtp_suite, key_mode, packets_sent, packets_received, loss, jitter_ms"
)
_CONF_COLUMNS: Final = "conference_id, conference_uri, owner, created, ended, reason, participants, planned"


def to_text(dt: datetime) -> str:
    """UTC ISO 8601, fixed width (microseconds always shown); a naive *dt* is taken as UTC."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).isoformat(timespec="microseconds")


def from_text(text: str) -> datetime:
    dt = datetime.fromisoformat(text)
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def _leg_row(r: LegUsage) -> tuple[object, ...]:
    return (
        r.conference_id, r.conference_uri, r.participant_id, r.identity, int(r.privacy), to_text(r.joined),
        to_text(r.left), r.reason, r.codec, r.srtp_suite, r.key_mode, r.packets_sent, r.packets_received,
        r.loss, r.jitter_ms,
    )  # fmt: skip


def _conf_row(r: ConferenceUsage) -> tuple[object, ...]:
    return (
        r.conference_id, r.conference_uri, r.owner, to_text(r.created), to_text(r.ended), r.reason,
        r.participants, int(r.planned),
    )  # fmt: skip


def _opt_str(v: object) -> str | None:
    return None if v is None else str(v)


def _opt_float(v: object) -> float | None:
    return None if v is None else float(str(v))


def _leg(row: tuple[object, ...]) -> LegUsage:
    (conf_id, conf_uri, pid, identity, privacy, joined, left, reason, codec, suite, key_mode, sent, received,
     loss, jitter) = row  # fmt: skip
    return LegUsage(
        conference_id=str(conf_id),
        conference_uri=str(conf_uri),
        participant_id=str(pid),
        identity=str(identity),
        privacy=bool(privacy),
        joined=from_text(str(joined)),
        left=from_text(str(left)),
        reason=str(reason),
        codec=_opt_str(codec),
        srtp_suite=_opt_str(suite),
        key_mode=str(key_mode),
        packets_sent=int(str(sent)),
        packets_received=int(str(received)),
        loss=_opt_float(loss),
        jitter_ms=_opt_float(jitter),
    )


def _conference(row: tuple[object, ...]) -> ConferenceUsage:
    conf_id, conf_uri, owner, created, ended, reason, participants, planned = row
    return ConferenceUsage(
        conference_id=str(conf_id),
        conference_uri=str(conf_uri),
        owner=_opt_str(owner),
        created=from_text(str(created)),
        ended=from_text(str(ended)),
        reason=str(reason),
        participants=int(str(participants)),
        planned=bool(planned),
    )


class UsageStore:
    """The SQLite :class:`UsageBackend`: ``UsageStore.open(data_dir)`` or ``UsageStore(path)``."""

    def __init__(self, path: Path | str, *, migrate_to: int = SCHEMA_VERSION) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        try:  # 0600, WAL, synchronous=FULL
            self._db = open_sqlite(self.path)
        except (OSError, sqlite3.Error) as exc:
            raise UsageStoreError(f"cannot open usage database {self.path}: {exc}") from None
        try:
            self._migrate(migrate_to)
        except sqlite3.Error as exc:
            self._db.close()
            raise UsageStoreError(f"usage database {self.path}: {exc}") from None
        except UsageStoreError:
            self._db.close()
            raise

    @classmethod
    def open(cls, data_dir: Path | str) -> UsageStore:
        return cls(Path(data_dir) / DB_NAME)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> UsageStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- setup --

    @property
    def schema_version(self) -> int:
        with self._lock:
            return self._version()

    def _version(self) -> int:
        row = self._db.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name='schema_version'"
        ).fetchone()
        if row is None:
            return 0
        row = self._db.execute("SELECT version FROM schema_version").fetchone()
        return 0 if row is None else int(row[0])

    def _migrate(self, target: int) -> None:
        with self._write():
            self._db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL) STRICT")
            if self._db.execute("SELECT COUNT(*) FROM schema_version").fetchone()[0] == 0:
                self._db.execute("INSERT INTO schema_version (version) VALUES (0)")
        current = self._version()
        if current > SCHEMA_VERSION:
            raise UsageStoreError(
                f"usage database {self.path} has schema v{current}, "
                f"newer than this imsconf (v{SCHEMA_VERSION})"
            )
        for number in range(current + 1, target + 1):
            with self._write():
                # re-check inside the write lock: another process may have migrated meanwhile
                if self._version() >= number:
                    continue
                MIGRATIONS[number - 1](self._db)
                self._db.execute("UPDATE schema_version SET version = ?", (number,))

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction holding the database write lock from the start."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # -- API --

    def append(self, legs: Sequence[LegUsage], conferences: Sequence[ConferenceUsage]) -> None:
        if not legs and not conferences:
            return
        with self._lock, self._write() as db:
            if legs:
                db.executemany(
                    f"INSERT INTO legs ({_LEG_COLUMNS}) VALUES ({', '.join('?' * 15)})",
                    [_leg_row(r) for r in legs],
                )
            if conferences:
                db.executemany(
                    f"INSERT INTO conferences ({_CONF_COLUMNS}) VALUES ({', '.join('?' * 8)})",
                    [_conf_row(r) for r in conferences],
                )

    def append_legs(self, records: Sequence[LegUsage]) -> None:
        self.append(records, ())

    def append_conferences(self, records: Sequence[ConferenceUsage]) -> None:
        self.append((), records)

    def records(
        self, since: datetime | None, until: datetime | None
    ) -> tuple[tuple[LegUsage, ...], tuple[ConferenceUsage, ...]]:
        """Legs that ended in ``[since, until)`` and conferences that ended in it, by end time then
        insertion order (None: unbounded on that side; naive times are UTC)."""
        leg_where, leg_args = _window("left_at", since, until)
        conf_where, conf_args = _window("ended", since, until)
        try:
            with self._lock:
                leg_rows = self._db.execute(
                    f"SELECT {_LEG_COLUMNS} FROM legs{leg_where} ORDER BY left_at, seq", leg_args
                ).fetchall()
                conf_rows = self._db.execute(
                    f"SELECT {_CONF_COLUMNS} FROM conferences{conf_where} ORDER BY ended, seq", conf_args
                ).fetchall()
            return tuple(_leg(r) for r in leg_rows), tuple(_conference(r) for r in conf_rows)
        except (sqlite3.Error, ValueError) as exc:
            raise UsageStoreError(f"usage database {self.path}: {exc}") from None


def _window(column: str, since: datetime | None, until: datetime | None) -> tuple[str, tuple[str, ...]]:
    where: list[str] = []
    args: list[str] = []
    if since is not None:
        where.append(f"{column} >= ?")
        args.append(to_text(since))
    if until is not None:
        where.append(f"{column} < ?")
        args.append(to_text(until))
    return (" WHERE " + " AND ".join(where)) if where else "", tuple(args)
