"""Bookings in PostgreSQL: the :class:`~imsconf.booking.backend.BookingStorage` shared by every node.

Same rule as the SQLite store (one booking per conference URI at any instant, each counted up to its
close): the overlap check and the insert run in one transaction under a transaction-scoped advisory lock
on the URI key, so two nodes booking the same URI at once serialise and the second sees the first.
"""

from __future__ import annotations

import builtins
from datetime import UTC, datetime
from typing import Final

from imsconf.booking.model import (
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
from imsconf.booking.store import BookingConflict, BookingStoreError

from .pg import PgComponentStore, PgDatabase

__all__ = ["COMPONENT", "MIGRATIONS", "PgBookingStore"]

COMPONENT: Final = "bookings"
MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    (
        """CREATE TABLE bookings (
            id TEXT PRIMARY KEY,
            uri TEXT NOT NULL,
            uri_key TEXT NOT NULL,
            start_ts BIGINT NOT NULL,
            end_ts BIGINT NOT NULL,
            pin_hash TEXT,
            capacity INTEGER NOT NULL,
            downlink TEXT NOT NULL,
            rekey TEXT NOT NULL,
            allow_pin_in_uri BOOLEAN NOT NULL,
            dial_out BOOLEAN NOT NULL,
            created_ts BIGINT NOT NULL,
            cancelled BOOLEAN NOT NULL DEFAULT FALSE,
            subject TEXT,
            cancelled_ts BIGINT,
            overrun INTEGER NOT NULL DEFAULT 0,
            CHECK (end_ts > start_ts)
        )""",
        """CREATE TABLE invitees (
            booking_id TEXT NOT NULL REFERENCES bookings(id) ON DELETE CASCADE,
            position INTEGER NOT NULL,
            uri TEXT NOT NULL,
            role TEXT NOT NULL,
            PRIMARY KEY (booking_id, position)
        )""",
        "CREATE INDEX bookings_by_uri ON bookings (uri_key, start_ts, end_ts)",
    ),
    # v2: the conference's audio codecs, comma-separated, preferred first (existing bookings: none)
    ("ALTER TABLE bookings ADD COLUMN audio_codecs TEXT NOT NULL DEFAULT ''",),
)
SCHEMA_VERSION: Final = len(MIGRATIONS)

_COLUMNS: Final = (
    "id, uri, start_ts, end_ts, pin_hash, capacity, downlink, rekey, allow_pin_in_uri, dial_out, "
    "created_ts, cancelled, subject, overrun, audio_codecs"
)


def _ts(dt: datetime) -> int:
    return int(dt.timestamp())


def _dt(ts: object) -> datetime:
    return datetime.fromtimestamp(int(str(ts)), UTC)


class PgBookingStore(PgComponentStore):
    """The bookings of every node in one PostgreSQL database."""

    def __init__(self, db: PgDatabase, *, migrate_to: int = SCHEMA_VERSION) -> None:
        super().__init__(db, COMPONENT, MIGRATIONS, migrate_to)

    def create(self, booking: Booking) -> Booking:
        key = booking.key
        with self.db.transaction() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (key,))
            if not booking.cancelled:
                cur.execute(
                    "SELECT id FROM bookings WHERE uri_key = %s AND NOT cancelled"
                    " AND start_ts < %s AND end_ts + 60 * overrun > %s LIMIT 1",
                    (key, _ts(booking.closes_at), _ts(booking.start)),
                )
                row = cur.fetchone()
                if row is not None:
                    raise BookingConflict(str(row[0]))
            cur.execute("SELECT 1 FROM bookings WHERE id = %s", (booking.id,))
            if cur.fetchone() is not None:
                raise InvalidBooking([BookingError("id", "a booking with this id exists")])
            cur.execute(
                f"INSERT INTO bookings ({_COLUMNS}, uri_key) VALUES ({', '.join(['%s'] * 16)})".encode(),
                (
                    booking.id, booking.uri, _ts(booking.start), _ts(booking.end), booking.pin_hash,
                    booking.capacity, booking.downlink.value, rekey_text(booking.rekey),
                    booking.allow_pin_in_uri, booking.dial_out, _ts(booking.created_at), booking.cancelled,
                    booking.subject, booking.overrun, codecs_text(booking.audio_codecs), key,
                ),
            )  # fmt: skip
            if booking.invitees:
                cur.executemany(
                    "INSERT INTO invitees (booking_id, position, uri, role) VALUES (%s, %s, %s, %s)",
                    [(booking.id, i, inv.uri, inv.role.value) for i, inv in enumerate(booking.invitees)],
                )
        return booking

    def get(self, booking_id: str) -> Booking | None:
        rows = self._select("WHERE id = %s", (booking_id,))
        return rows[0] if rows else None

    def by_uri(self, uri: str) -> builtins.list[Booking]:
        try:
            key = conference_key(uri)
        except ValueError:
            return []
        return self._select("WHERE uri_key = %s ORDER BY start_ts, id", (key,))

    def list(
        self, active_at: datetime | None = None, include_cancelled: bool = False
    ) -> builtins.list[Booking]:
        where: builtins.list[str] = []
        args: builtins.list[object] = []
        if not include_cancelled:
            where.append("NOT cancelled")
        if active_at is not None:
            where.append("start_ts <= %s AND end_ts > %s")
            args += [_ts(active_at), _ts(active_at)]
        clause = ("WHERE " + " AND ".join(where)) if where else ""
        return self._select(f"{clause} ORDER BY start_ts, id", tuple(args))

    def cancel(self, booking_id: str, now: datetime | None = None) -> Booking | None:
        stamp = _ts(now if now is not None else datetime.now(UTC))
        with self.db.transaction() as cur:
            cur.execute(
                "UPDATE bookings SET cancelled = TRUE, cancelled_ts = %s WHERE id = %s AND NOT cancelled",
                (stamp, booking_id),
            )
        return self.get(booking_id)

    def window_status(self, uri: str, now: datetime) -> tuple[Booking | None, WindowState]:
        return window_status(self.by_uri(uri), now)

    def verify_pin(self, booking_id: str, pin: str) -> bool:
        booking = self.get(booking_id)
        if booking is None:
            return False
        return booking.verify_pin(pin)

    def _select(self, clause: str, args: tuple[object, ...]) -> builtins.list[Booking]:
        with self.db.transaction() as cur:
            cur.execute(f"SELECT {_COLUMNS} FROM bookings {clause}".encode(), args)
            rows = cur.fetchall()
            if not rows:
                return []
            ids = [str(r[0]) for r in rows]
            invitees: dict[str, builtins.list[Invitee]] = {i: [] for i in ids}
            cur.execute(
                "SELECT booking_id, uri, role FROM invitees WHERE booking_id = ANY(%s)"
                " ORDER BY booking_id, position",
                (ids,),
            )
            for booking_id, uri, role in cur.fetchall():
                invitees[str(booking_id)].append(Invitee(str(uri), InviteeRole(str(role))))
        return [self._row(r, tuple(invitees[str(r[0])])) for r in rows]

    def _row(self, r: tuple[object, ...], invitees: tuple[Invitee, ...]) -> Booking:
        (booking_id, uri, start_ts, end_ts, pin_hash, capacity, downlink, rekey, allow_pin, dial_out,
         created_ts, cancelled, subject, overrun, audio_codecs) = r  # fmt: skip
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
            raise BookingStoreError(f"bookings {self.db.where}: corrupt row {booking_id!r}: {exc}") from None
