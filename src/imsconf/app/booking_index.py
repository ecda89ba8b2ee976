"""The bookings as the focus reads them: an in-memory index that the runtime refreshes from the store.

A dial-in looks its booking up on the event loop, which also runs the mixer's tick: it must not wait for
the store (SQLite or PostgreSQL).  :class:`BookingIndex` answers ``window_status`` from memory (the same
rules as :meth:`imsconf.booking.store.BookingStore.window_status`); the store's queries run elsewhere:
once at start, in the worker thread of each booking change (:class:`IndexedBookingStore`, the store the
HTTP API writes through), and periodically in the loop's executor (:class:`IndexRefresher`, for changes
made by other processes).  A read that fails (PostgreSQL unreachable: :class:`StoreUnavailable`) keeps
the last index and tells the focus so (:class:`imsconf.focus.planned.Refreshed`): a dial-in the index
cannot admit gets 503 with Retry-After rather than a 404 that may be wrong.
"""

from __future__ import annotations

import asyncio
import bisect
import builtins
import contextlib
import logging
import sqlite3
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from imsconf.booking.backend import BookingStorage
from imsconf.booking.model import Booking, WindowState, conference_key, window_status
from imsconf.focus.planned import Refreshed
from imsconf.store.errors import RETRY_AFTER

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


def _snapshot(store: BookingStorage) -> list[Booking]:
    return store.list(include_cancelled=True)


class IndexedBookingStore:
    """A :class:`BookingStorage` over the node's store (either backend) that keeps a :class:`BookingIndex`
    current: after each change (made in a worker thread by the HTTP API) it reads the bookings there and
    hands them to the event loop, before the change's caller is answered.  The store is read once when
    this is made: an unreachable store then is an error of the start."""

    def __init__(self, store: BookingStorage) -> None:
        self.store = store
        self.index = BookingIndex(_snapshot(store))
        self._publish: Callable[[list[Booking]], None] = self.index.replace

    def publish_on(self, loop: asyncio.AbstractEventLoop) -> None:
        """Refreshes go through *loop* (the index is then only replaced on the loop's thread)."""
        index = self.index

        def publish(bookings: list[Booking]) -> None:
            loop.call_soon_threadsafe(index.replace, bookings)

        self._publish = publish

    def create(self, booking: Booking) -> Booking:
        created = self.store.create(booking)
        self._republish()
        return created

    def cancel(self, booking_id: str, now: datetime | None = None) -> Booking | None:
        cancelled = self.store.cancel(booking_id, now)
        self._republish()
        return cancelled

    def _republish(self) -> None:
        """The index after a change that is already stored: a read that fails now (the store lost
        meanwhile) leaves the change to the next re-read rather than failing the caller's request."""
        try:
            bookings = _snapshot(self.store)
        except (OSError, sqlite3.Error) as exc:
            log.warning("event=booking_index_publish_failed reason=%r", str(exc))
            return
        self._publish(bookings)

    def get(self, booking_id: str) -> Booking | None:
        return self.store.get(booking_id)

    def by_uri(self, uri: str) -> builtins.list[Booking]:
        return self.store.by_uri(uri)

    def list(
        self, active_at: datetime | None = None, include_cancelled: bool = False
    ) -> builtins.list[Booking]:
        return self.store.list(active_at, include_cancelled)

    def window_status(self, uri: str, now: datetime) -> tuple[Booking | None, WindowState]:
        return self.store.window_status(uri, now)

    def verify_pin(self, booking_id: str, pin: str) -> bool:
        return self.store.verify_pin(booking_id, pin)

    @property
    def schema_version(self) -> int:
        return self.store.schema_version

    def close(self) -> None:
        self.store.close()


class IndexRefresher:
    """Re-reads the store into its index every *interval* seconds, in the loop's default executor."""

    def __init__(self, store: IndexedBookingStore, interval: float = REFRESH_INTERVAL) -> None:
        self.store = store
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    def refresh(self, done: Callable[[Refreshed], None]) -> None:
        """Re-read the store now (in the executor); *done* runs on the loop once the index is current, or
        once the read failed (the last index stays; the outcome says whether the store was reachable)."""
        task = asyncio.get_running_loop().create_task(self.reread())
        task.add_done_callback(lambda t: done(t.result() if not t.cancelled() else Refreshed.current()))

    async def reread(self) -> Refreshed:
        """One read of the store in the loop's executor into the index; a failing store keeps the last one
        (unreachable: an outcome with the Retry-After to answer)."""
        try:
            bookings = await asyncio.get_running_loop().run_in_executor(None, _snapshot, self.store.store)
        except (OSError, sqlite3.Error) as exc:  # StoreUnavailable among them: PostgreSQL unreachable
            log.warning("event=booking_index_refresh_failed reason=%r", str(exc))
            return Refreshed.unavailable(RETRY_AFTER)
        self.store.index.replace(bookings)
        return Refreshed.current()

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
