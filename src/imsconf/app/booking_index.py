"""The bookings as the focus reads them: an in-memory index that the runtime refreshes from the store.

A dial-in looks its booking up on the event loop, which also runs the mixer's tick: it must not wait for
SQLite.  :class:`BookingIndex` answers ``window_status`` from memory (the same rules as
:meth:`imsconf.booking.store.BookingStore.window_status`); the store's queries run elsewhere: once at start,
in the worker thread of each booking change (:class:`IndexedBookingStore`, the store the HTTP API writes
through), and periodically in the loop's executor (:class:`IndexRefresher`, for changes made by other
processes).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import sqlite3
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from pathlib import Path

from imsconf.booking.model import Booking, WindowState, conference_key, window_status
from imsconf.booking.store import BookingStore

__all__ = ["BookingIndex", "IndexRefresher", "IndexedBookingStore"]

log = logging.getLogger("imsconf.bookings")

REFRESH_INTERVAL = 30.0


class BookingIndex:
    """Every booking (cancelled included) by conference key, and the live ones by the end of their window;
    replaced whole on each refresh."""

    def __init__(self, bookings: Iterable[Booking] = ()) -> None:
        self._by_key: dict[str, list[Booking]] = {}
        self._by_end: tuple[list[datetime], list[Booking]] = ([], [])
        self.replace(bookings)

    def replace(self, bookings: Iterable[Booking]) -> None:
        bookings = list(bookings)
        live = sorted((b for b in bookings if not b.cancelled), key=lambda b: (b.end, b.id))
        self._by_end = ([b.end for b in live], live)
        by_key: dict[str, list[Booking]] = {}
        for b in bookings:
            try:
                key = conference_key(b.uri)
            except ValueError:
                continue
            by_key.setdefault(key, []).append(b)
        for items in by_key.values():
            items.sort(key=lambda b: (b.start, b.id))
        self._by_key = by_key  # one assignment: a reader sees the old or the new index

    def window_status(self, uri: str, now: datetime) -> tuple[Booking | None, WindowState]:
        try:
            bookings = self._by_key.get(conference_key(uri), [])
        except ValueError:
            return None, WindowState.UNKNOWN
        return window_status(bookings, now)

    def open_or_starting(self, now: datetime, horizon: timedelta) -> list[Booking]:
        """The bookings (not cancelled) whose window holds *now* or starts within *horizon* after it, by
        start.  Pure: the bookings as of the last refresh."""
        ends, live = self._by_end
        later = now + horizon
        found = [b for b in live[bisect.bisect_right(ends, now) :] if b.start <= later]
        found.sort(key=lambda b: (b.start, b.id))
        return found


def _snapshot(store: BookingStore) -> list[Booking]:
    return store.list(include_cancelled=True)


class IndexedBookingStore(BookingStore):
    """The booking store that keeps a :class:`BookingIndex` current: after each change (made in a worker
    thread by the HTTP API) it reads the bookings there and hands them to the event loop, before the
    change's caller is answered."""

    def __init__(self, path: Path | str) -> None:
        super().__init__(path)
        self.index = BookingIndex(_snapshot(self))
        self._publish: Callable[[list[Booking]], None] = self.index.replace

    def publish_on(self, loop: asyncio.AbstractEventLoop) -> None:
        """Refreshes go through *loop* (the index is then only replaced on the loop's thread)."""
        index = self.index

        def publish(bookings: list[Booking]) -> None:
            loop.call_soon_threadsafe(index.replace, bookings)

        self._publish = publish

    def create(self, booking: Booking) -> Booking:
        created = super().create(booking)
        self._publish(_snapshot(self))
        return created

    def cancel(self, booking_id: str, now: datetime | None = None) -> Booking | None:
        cancelled = super().cancel(booking_id, now)
        self._publish(_snapshot(self))
        return cancelled


class IndexRefresher:
    """Re-reads the store into its index every *interval* seconds, in the loop's default executor."""

    def __init__(self, store: IndexedBookingStore, interval: float = REFRESH_INTERVAL) -> None:
        self.store = store
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    def refresh(self, done: Callable[[], None]) -> None:
        """Re-read the store now (in the executor); *done* runs on the loop once the index is current
        (also when the read failed: the last index stays)."""
        task = asyncio.get_running_loop().create_task(self.reread())
        task.add_done_callback(lambda _: done())

    async def reread(self) -> None:
        """One read of the store in the loop's executor into the index; a failing store keeps the last one."""
        try:
            bookings = await asyncio.get_running_loop().run_in_executor(None, _snapshot, self.store)
        except (OSError, sqlite3.Error) as exc:
            log.warning("event=booking_index_refresh_failed reason=%r", str(exc))
            return
        self.store.index.replace(bookings)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.reread()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
