"""The runtime's usage sink: records from the focus go to the usage store on one writer thread.

:meth:`UsageWriter.leg_ended` and :meth:`UsageWriter.conference_ended` return at once: the record goes to
a bounded queue (a full queue drops it and counts the drop; the event loop never waits).  The writer
thread wakes on the first record, waits ``linger`` seconds (20 ms) for more, takes whatever is queued then
(at most ``batch`` records) and commits them in one transaction, so a record is on disk some 20-30 ms after
the sink returned — well within 100 ms — and survives a kill -9 of the server from then on.  The wait makes
a churn of short calls one commit (one fsync) per 20 ms instead of one per ended leg: at 300 ended legs/s
the writer thread's commits, and the GIL hand-overs they cost the event loop, fall about sixfold.
:meth:`UsageWriter.close` stops taking records, lets the thread write what is queued, waits at most
``timeout`` seconds and closes the store.
A store that cannot be reached (PostgreSQL down: :class:`StoreUnavailable`) holds the batch back, tried
again every few seconds, so the records of an outage are written once the store is back.

Logs carry counts only, never identities.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
from typing import Final

from imsconf.store.errors import RETRY_AFTER, StoreUnavailable
from imsconf.usage.records import ConferenceUsage, LegUsage
from imsconf.usage.store import UsageBackend

__all__ = ["QUEUE_SIZE", "UsageWriter"]

log = logging.getLogger("imsconf.usage")

QUEUE_SIZE: Final = 10_000  # records waiting for the writer; beyond this they are dropped (and counted)
BATCH: Final = 500  # records per transaction at most
LINGER: Final = 0.02  # how long the writer waits after a first record for more to commit with it
_IDLE_POLL: Final = 0.05  # how often an idle writer looks whether it should stop

_Record = LegUsage | ConferenceUsage


class UsageWriter:
    """A :class:`~imsconf.usage.records.UsageSink` over a :class:`~imsconf.usage.store.UsageBackend`.

    Counters (read by anyone, written by their own side only): ``written`` records committed,
    ``dropped`` records refused (queue full, or after close), ``failed`` records whose write failed."""

    def __init__(
        self,
        backend: UsageBackend,
        *,
        queue_size: int = QUEUE_SIZE,
        batch: int = BATCH,
        retry_interval: float = RETRY_AFTER,
        linger: float = LINGER,
    ) -> None:
        self.backend = backend
        self.batch = batch
        self.linger = linger
        self.retry_interval = retry_interval
        self.waiting = False  # a batch waits for an unreachable store
        self._queue: queue.Queue[_Record] = queue.Queue(maxsize=queue_size)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="imsconf-usage", daemon=True)
        self.written = 0
        self.dropped = 0
        self.failed = 0
        self._started = False

    def start(self) -> UsageWriter:
        if not self._started:
            self._started = True
            self._thread.start()
        return self

    # -- the sink (event loop side) --

    def leg_ended(self, record: LegUsage) -> None:
        self._put(record)

    def conference_ended(self, record: ConferenceUsage) -> None:
        self._put(record)

    def _put(self, record: _Record) -> None:
        if self._stopping.is_set():
            self._drop("closed")
            return
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            self._drop("queue_full")

    def _drop(self, reason: str) -> None:
        self.dropped += 1
        if self.dropped == 1 or self.dropped % 1000 == 0:  # one line for a whole burst
            log.warning("event=usage_record_dropped reason=%s dropped=%d", reason, self.dropped)

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    # -- the writer thread --

    def _run(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=_IDLE_POLL)
            except queue.Empty:
                if self._stopping.is_set():
                    return
                continue
            if self.linger > 0 and self._queue.qsize() < self.batch - 1:
                self._stopping.wait(self.linger)  # gather more for the same commit (close cuts it short)
            batch = [first]
            while len(batch) < self.batch:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            self._write(batch)

    def _write(self, batch: list[_Record]) -> None:
        """Commit *batch*; while the store is unreachable (StoreUnavailable) the batch is held and tried
        again every ``retry_interval`` seconds (records meanwhile wait in the queue), until close."""
        legs = [r for r in batch if isinstance(r, LegUsage)]
        conferences = [r for r in batch if isinstance(r, ConferenceUsage)]
        while True:
            try:
                self.backend.append(legs, conferences)
            except StoreUnavailable as exc:
                if self._stopping.is_set():  # closing: no more waiting for the store
                    self._failed(batch, exc)
                    return
                if not self.waiting:
                    self.waiting = True
                    log.warning("event=usage_store_unavailable records=%d error=%s", len(batch), exc)
                self._stopping.wait(self.retry_interval)
                continue
            except (sqlite3.Error, OSError) as exc:
                self._failed(batch, exc)
                return
            break
        if self.waiting:
            self.waiting = False
            log.info("event=usage_store_back records=%d", len(batch))
        self.written += len(batch)

    def _failed(self, batch: list[_Record], exc: BaseException) -> None:
        self.failed += len(batch)
        log.warning("event=usage_write_failed records=%d error=%s", len(batch), exc)

    # -- shutdown --

    def close(self, timeout: float = 1.0) -> bool:
        """Stop taking records, write what is queued (at most *timeout* seconds), close the store.
        True when everything queued was written; a writer still busy after *timeout* is left to finish on
        its own (a daemon thread) and the store stays open for it."""
        self._stopping.set()
        if self._started:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("event=usage_close_timeout pending=%d", self.pending)
                return False
        left = self.pending
        if left:
            self.failed += left
            log.warning("event=usage_records_lost pending=%d", left)
        self.backend.close()
        log.info(
            "event=usage_closed written=%d dropped=%d failed=%d", self.written, self.dropped, self.failed
        )
        return left == 0
