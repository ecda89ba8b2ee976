"""The runtime's booking index over either backend: a change publishes the bookings to the index; a re-read
that cannot reach the store keeps the last index and says so (the focus then answers 503 Retry-After)."""

from __future__ import annotations

import asyncio
import builtins
from datetime import UTC, datetime, timedelta
from pathlib import Path

from imsconf.app.booking_index import IndexedBookingStore, IndexRefresher
from imsconf.booking.model import Booking, WindowState
from imsconf.booking.store import BookingStore
from imsconf.focus.planned import Refreshed
from imsconf.keys.policy import DownlinkMode
from imsconf.store.errors import RETRY_AFTER, StoreUnavailable

T0 = datetime(2030, 6, 1, 9, 0, tzinfo=UTC)


def _booking(name: str, n: int) -> Booking:
    return Booking(
        id=f"b{n:08d}",
        uri=f"sip:{name}@example.com",
        start=T0,
        end=T0 + timedelta(hours=1),
        created_at=T0 - timedelta(days=1),
        capacity=5,
        downlink=DownlinkMode.PER_PARTICIPANT,
    )


class Outage(BookingStore):
    """SQLite whose reads can be made to fail like an unreachable PostgreSQL."""

    down = False

    def list(
        self, active_at: datetime | None = None, include_cancelled: bool = False
    ) -> builtins.list[Booking]:
        if self.down:
            raise StoreUnavailable("store host=db unavailable: connection refused")
        return super().list(active_at, include_cancelled)


def test_a_change_publishes_and_a_failed_read_after_it_does_not_fail_the_change(tmp_path: Path) -> None:
    store = Outage(tmp_path / "b.sqlite3")
    indexed = IndexedBookingStore(store)
    try:
        indexed.create(_booking("weekly", 1))
        assert indexed.index.window_status("sip:weekly@example.com", T0)[1] is WindowState.OPEN
        store.down = True  # stored, then the store is lost before the index is read again
        indexed.create(_booking("daily", 2))
        assert indexed.index.window_status("sip:daily@example.com", T0)[1] is WindowState.UNKNOWN
        assert store.get("b00000002") is not None
    finally:
        indexed.close()


def test_a_reread_says_whether_the_store_was_reachable(tmp_path: Path) -> None:
    store = Outage(tmp_path / "b.sqlite3")
    indexed = IndexedBookingStore(store)

    async def run() -> tuple[Refreshed, Refreshed]:
        refresher = IndexRefresher(indexed)
        store.create(_booking("weekly", 1))  # another process's booking: not in the index yet
        store.down = True
        lost = await refresher.reread()
        assert indexed.index.window_status("sip:weekly@example.com", T0)[1] is WindowState.UNKNOWN
        store.down = False
        return lost, await refresher.reread()

    try:
        lost, back = asyncio.run(run())
    finally:
        indexed.close()
    assert lost == Refreshed.unavailable(RETRY_AFTER) and not lost.available
    assert back == Refreshed.current() and back.available
    assert indexed.index.window_status("sip:weekly@example.com", T0)[1] is WindowState.OPEN
