"""The seam every bookings backend implements: SQLite (:class:`imsconf.booking.store.BookingStore`) and
PostgreSQL (:class:`imsconf.store.booking_pg.PgBookingStore`)."""

from __future__ import annotations

import builtins
from datetime import datetime
from typing import Protocol

from .model import Booking, WindowState

__all__ = ["BookingStorage"]


class BookingStorage(Protocol):
    """Bookings with the overlap rule (one booking per conference URI at any instant, up to its close)."""

    def create(self, booking: Booking) -> Booking:
        """Insert *booking*, durable on return; BookingConflict if its URI overlaps another booking."""
        ...

    def get(self, booking_id: str) -> Booking | None: ...

    def by_uri(self, uri: str) -> builtins.list[Booking]:
        """Every booking (cancelled included) of a conference URI, by start time."""
        ...

    def list(
        self, active_at: datetime | None = None, include_cancelled: bool = False
    ) -> builtins.list[Booking]: ...

    def cancel(self, booking_id: str, now: datetime | None = None) -> Booking | None: ...

    def window_status(self, uri: str, now: datetime) -> tuple[Booking | None, WindowState]: ...

    def verify_pin(self, booking_id: str, pin: str) -> bool: ...

    @property
    def schema_version(self) -> int: ...

    def close(self) -> None: ...
