"""Bookings in SQLite (``DATA_DIR/bookings.sqlite3``): WAL, ``synchronous=FULL``, numbered migrations.

Durability: in WAL mode with ``synchronous=FULL`` every commit fsyncs the write-ahead log before
``COMMIT`` returns, so a booking whose :meth:`BookingStore.create` returned survives a kill -9 or a power
loss.  Each operation is one short transaction; writers take the write lock up front (``BEGIN IMMEDIATE``)
so the overlap check and the insert are atomic even when the CLI and a running server share the file.

Rule: among non-cancelled bookings, one conference URI (``user@host``; sip: and sips: alike) has at most
one booking at any instant — windows of the same URI must not overlap, each counted up to its close (the
window's end plus its overrun: the conference may still be live then).

Thread safety: one connection guarded by a lock, so the asyncio server may call the store from worker
threads (``asyncio.to_thread``); every call is short.  The file is created with mode 0600 (it holds PIN
hashes); SQLite gives the ``-wal``/``-shm`` files the same mode.
"""

from __future__ import annotations

import builtins
import contextlib
import sqlite3
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from imsconf.sqlitefile import open_sqlite

from .model import (
    Booking,
    BookingError,
    DownlinkMode,
    InvalidBooking,
    Invitee,
    InviteeRole,
    WindowState,
    codecs_text,
    conference_key,
    parse_codecs,
    parse_rekey,
    rekey_text,
    window_status,
)

__all__ = [
    "DB_NAME",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "BookingConflict",
    "BookingStore",
    "BookingStoreError",
]

DB_NAME: Final = "bookings.sqlite3"


class BookingStoreError(OSError):
    """The database cannot be opened, is corrupt, or has a newer schema.  An OSError: a storage failure."""


class BookingConflict(InvalidBooking):
    """The conference URI is already booked for an overlapping window (HTTP 409)."""

    def __init__(self, other_id: str) -> None:
        super().__init__(
            [BookingError("uri", f"already booked for an overlapping window (booking {other_id})")]
        )
        self.other_id = other_id


# -- migrations: append only; each runs in its own transaction and bumps schema_version --


def _migration_1(db: sqlite3.Connection) -> None:
    db.execute(
        """CREATE TABLE bookings (
            id TEXT PRIMARY KEY,
            uri TEXT NOT NULL,
            uri_key TEXT NOT NULL,
            start_ts INTEGER NOT NULL,
            end_ts INTEGER NOT NULL,
            pin_hash TEXT,
            capacity INTEGER NOT NULL,
            downlink TEXT NOT NULL,
            rekey TEXT NOT NULL,
            allow_pin_in_uri INTEGER NOT NULL,
            dial_out INTEGER NOT NULL,
            created_ts INTEGER NOT NULL,
            cancelled INTEGER NOT NULL DEFAULT 0,
            CHECK (end_ts > start_ts)
        ) STRICT"""
    )
    db.execute(
        """CREATE TABLE invitees (
            booking_id TEXT NOT NULL REFERENCES bookings(id) ON DELETE CASCADE,
            position INTEGER NOT NULL,
            uri TEXT NOT NULL,
            role TEXT NOT NULL,
            PRIMARY KEY (booking_id, position)
        ) STRICT"""
    )


def _migration_2(db: sqlite3.Connection) -> None:
    """v2: a subject line, when a booking was cancelled, and an index for the overlap and dial-in lookups."""
    db.execute("ALTER TABLE bookings ADD COLUMN subject TEXT")
    db.execute("ALTER TABLE bookings ADD COLUMN cancelled_ts INTEGER")
    db.execute("CREATE INDEX bookings_by_uri ON bookings (uri_key, start_ts, end_ts)")


def _migration_3(db: sqlite3.Connection) -> None:
    """v3: the overrun, minutes a booked conference may run past its window (existing bookings: none)."""
    db.execute("ALTER TABLE bookings ADD COLUMN overrun INTEGER NOT NULL DEFAULT 0")


def _migration_4(db: sqlite3.Connection) -> None:
    """v4: the conference's audio codecs, comma-separated, preferred first (existing bookings: none, so
    the server's setting)."""
    db.execute("ALTER TABLE bookings ADD COLUMN audio_codecs TEXT NOT NULL DEFAULT ''")


MIGRATIONS: Final[tuple[Callable[[sqlite3.Connection], None], ...]] = (
    _migration_1,
    _migration_2,
    _migration_3,
    _migration_4,
)
SCHEMA_VERSION: Final = len(MIGRATIONS)

_COLUMNS: Final = (
    "id, uri, start_ts, end_ts, pin_hash, capacity, downlink, rekey, allow_pin_in_uri, dial_out, "
    "created_ts, cancelled, subject, overrun, audio_codecs"
)


def _ts(dt: datetime) -> int:
    return int(dt.timestamp())


def _dt(ts: int) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


class BookingStore:
    """Bookings: ``BookingStore.open(data_dir)`` or ``BookingStore(path)``; ``close()`` when done."""

    def __init__(self, path: Path | str, *, migrate_to: int = SCHEMA_VERSION) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        try:  # 0600 (it holds PIN hashes), WAL, synchronous=FULL, foreign keys
            self._db = open_sqlite(self.path, foreign_keys=True)
        except (OSError, sqlite3.Error) as exc:
            raise BookingStoreError(f"cannot open bookings database {self.path}: {exc}") from None
        try:
            self._migrate(migrate_to)
        except sqlite3.Error as exc:
            self._db.close()
            raise BookingStoreError(f"bookings database {self.path}: {exc}") from None
        except BookingStoreError:
            self._db.close()
            raise

    @classmethod
    def open(cls, data_dir: Path | str) -> BookingStore:
        return cls(Path(data_dir) / DB_NAME)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> BookingStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- setup --

    @property
    def journal_mode(self) -> str:
        with self._lock:
            return str(self._db.execute("PRAGMA journal_mode").fetchone()[0])

    @property
    def synchronous(self) -> int:
        """2 is FULL."""
        with self._lock:
            return int(self._db.execute("PRAGMA synchronous").fetchone()[0])

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
            raise BookingStoreError(
                f"bookings database {self.path} has schema v{current}, "
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

    def create(self, booking: Booking) -> Booking:
        """Insert *booking*, durable on return; BookingConflict if its URI overlaps another booking."""
        key = booking.key
        with self._lock, self._write() as db:
            if not booking.cancelled:
                row = db.execute(
                    "SELECT id FROM bookings WHERE uri_key = ? AND cancelled = 0"
                    " AND start_ts < ? AND end_ts + 60 * overrun > ? LIMIT 1",
                    (key, _ts(booking.closes_at), _ts(booking.start)),
                ).fetchone()
                if row is not None:
                    raise BookingConflict(str(row[0]))
            if db.execute("SELECT 1 FROM bookings WHERE id = ?", (booking.id,)).fetchone() is not None:
                raise InvalidBooking([BookingError("id", "a booking with this id exists")])
            db.execute(
                f"INSERT INTO bookings ({_COLUMNS}, uri_key) VALUES ({', '.join('?' * 16)})",
                (
                    booking.id,
                    booking.uri,
                    _ts(booking.start),
                    _ts(booking.end),
                    booking.pin_hash,
                    booking.capacity,
                    booking.downlink.value,
                    rekey_text(booking.rekey),
                    int(booking.allow_pin_in_uri),
                    int(booking.dial_out),
                    _ts(booking.created_at),
                    int(booking.cancelled),
                    booking.subject,
                    booking.overrun,
                    codecs_text(booking.audio_codecs),
                    key,
                ),
            )
            db.executemany(
                "INSERT INTO invitees (booking_id, position, uri, role) VALUES (?, ?, ?, ?)",
                [(booking.id, i, inv.uri, inv.role.value) for i, inv in enumerate(booking.invitees)],
            )
        return booking

    def get(self, booking_id: str) -> Booking | None:
        with self._lock:
            rows = self._select("WHERE id = ?", (booking_id,))
        return rows[0] if rows else None

    def by_uri(self, uri: str) -> builtins.list[Booking]:
        """Every booking (cancelled included) of a conference URI, by start time."""
        try:
            key = conference_key(uri)
        except ValueError:
            return []
        with self._lock:
            return self._select("WHERE uri_key = ? ORDER BY start_ts, id", (key,))

    def list(
        self, active_at: datetime | None = None, include_cancelled: bool = False
    ) -> builtins.list[Booking]:
        """Bookings by start time; only those whose window contains *active_at* when given."""
        where: builtins.list[str] = []
        args: builtins.list[object] = []
        if not include_cancelled:
            where.append("cancelled = 0")
        if active_at is not None:
            where.append("start_ts <= ? AND end_ts > ?")
            args += [_ts(active_at), _ts(active_at)]
        clause = ("WHERE " + " AND ".join(where)) if where else ""
        with self._lock:
            return self._select(f"{clause} ORDER BY start_ts, id", tuple(args))

    def cancel(self, booking_id: str, now: datetime | None = None) -> Booking | None:
        """Mark a booking cancelled (idempotent); None if there is no such booking."""
        stamp = _ts(now if now is not None else datetime.now(UTC))
        with self._lock:
            with self._write() as db:
                db.execute(
                    "UPDATE bookings SET cancelled = 1, cancelled_ts = ? WHERE id = ? AND cancelled = 0",
                    (stamp, booking_id),
                )
            rows = self._select("WHERE id = ?", (booking_id,))
        return rows[0] if rows else None

    def window_status(self, uri: str, now: datetime) -> tuple[Booking | None, WindowState]:
        """What a dial-in to *uri* (a Request-URI; parameters ignored) at *now* meets.

        - ``OPEN`` with the booking whose window holds *now*;
        - else ``EARLY`` with the next booking of that URI;
        - else ``ENDED`` with the latest past booking;
        - else ``CANCELLED`` with the latest cancelled booking;
        - else ``(None, UNKNOWN)`` (also for a URI that is not ``sip(s):user@host``).
        """
        return window_status(self.by_uri(uri), now)

    def verify_pin(self, booking_id: str, pin: str) -> bool:
        """Constant-time PIN check (scrypt, ~40 ms: call it off the event loop).

        False for an unknown booking; True for a booking without PIN (nothing to check).
        """
        booking = self.get(booking_id)
        if booking is None:
            return False
        return booking.verify_pin(pin)

    # -- rows --

    def _select(self, clause: str, args: tuple[object, ...]) -> builtins.list[Booking]:
        rows = self._db.execute(f"SELECT {_COLUMNS} FROM bookings {clause}", args).fetchall()
        if not rows:
            return []
        ids = [r[0] for r in rows]
        invitees: dict[str, builtins.list[Invitee]] = {i: [] for i in ids}
        for chunk in range(0, len(ids), 500):
            part = ids[chunk : chunk + 500]
            marks = ",".join("?" * len(part))
            for booking_id, uri, role in self._db.execute(
                f"SELECT booking_id, uri, role FROM invitees WHERE booking_id IN ({marks})"
                " ORDER BY booking_id, position",
                part,
            ):
                invitees[booking_id].append(Invitee(uri, InviteeRole(role)))
        return [self._row(r, tuple(invitees[r[0]])) for r in rows]

    def _row(self, r: tuple[object, ...], invitees: tuple[Invitee, ...]) -> Booking:
        (
            booking_id,
            uri,
            start_ts,
            end_ts,
            pin_hash,
            capacity,
            downlink,
            rekey,
            allow_pin,
            dial_out,
            created_ts,
            cancelled,
            subject,
            overrun,
            audio_codecs,
        ) = r
        assert isinstance(start_ts, int) and isinstance(end_ts, int) and isinstance(created_ts, int)
        try:
            return Booking(
                id=str(booking_id),
                uri=str(uri),
                start=_dt(start_ts),
                end=_dt(end_ts),
                created_at=_dt(created_ts),
                capacity=int(str(capacity)),
                invitees=invitees,
                downlink=DownlinkMode(str(downlink)),
                rekey=parse_rekey(str(rekey)),
                allow_pin_in_uri=bool(allow_pin),
                dial_out=bool(dial_out),
                overrun=int(str(overrun)),
                subject=None if subject is None else str(subject),
                pin_hash=None if pin_hash is None else str(pin_hash),
                cancelled=bool(cancelled),
                audio_codecs=parse_codecs(str(audio_codecs)),
            )
        except ValueError as exc:
            raise BookingStoreError(
                f"bookings database {self.path}: corrupt row {booking_id!r}: {exc}"
            ) from None
