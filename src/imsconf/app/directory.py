"""The conference directory at the runtime: the focus's claims of booked URIs, heartbeats, expiry.

:class:`DirectoryClaims` is the focus's :class:`imsconf.focus.claims.Claimer` over a shared
:class:`imsconf.store.directory.ConferenceDirectory` (PostgreSQL): every claim and release runs in a worker
thread (``asyncio.to_thread``; the event loop never waits for the database) and its result is handed back
on the loop.  A running :class:`DirectoryClaims` also heartbeats this node's rows every ``interval``
seconds (well under the directory's heartbeat timeout) and deletes the rows of nodes silent for longer
(their conferences died with them); a release that failed (the store down) is retried at the next beat,
or the heartbeat would keep the row alive.

:func:`open_claims` gives None for a single node (the SQLite store or no ``node_id``: nobody to race), and
the focus then wins every claim at once (:class:`imsconf.focus.claims.NoClaims`): no thread, no wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Final

from imsconf.focus.claims import ClaimFailed, ClaimLost, ClaimRequest, ClaimResult, ClaimWon
from imsconf.store.directory import ConferenceDirectory
from imsconf.store.errors import StoreUnavailable

from .config import Settings
from .stores import uses_postgresql

__all__ = ["RETRY_AFTER", "DirectoryClaims", "open_claims"]

log = logging.getLogger("imsconf.directory")

RETRY_AFTER: Final = 5  # seconds, the Retry-After of a 503 while the directory cannot be reached


class DirectoryClaims:
    """Claims, releases and heartbeats of one node in a shared directory (worker threads)."""

    def __init__(
        self,
        directory: ConferenceDirectory,
        node_id: str,
        *,
        interval: float | None = None,
        clock: Callable[[], float] = time.time,
        retry_after: int = RETRY_AFTER,
        owns_directory: bool = False,
    ) -> None:
        """*interval*: seconds between heartbeats (default: a third of the directory's timeout);
        *owns_directory*: :meth:`close` closes it too."""
        self.directory = directory
        self.node_id = node_id
        self.interval = interval if interval is not None else directory.heartbeat_timeout / 3
        self.clock = clock
        self.retry_after = retry_after
        self.owns_directory = owns_directory
        self._tasks: set[asyncio.Task[None]] = set()
        self._unreleased: set[str] = set()  # releases that failed: retried at each heartbeat
        self._won: set[str] = set()  # URIs this node holds: given back at close
        self._beat: asyncio.Task[None] | None = None

    # ---- the focus's Claimer

    def claim(self, request: ClaimRequest, done: Callable[[ClaimResult], None]) -> None:
        self._spawn(self._claim(request.uri, done, request.takeover_from))

    def release(self, uri: str) -> None:
        self._spawn(self._release(uri))

    def _spawn(self, coro: Coroutine[object, object, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _claim(
        self, uri: str, done: Callable[[ClaimResult], None], takeover_from: str | None = None
    ) -> None:
        result: ClaimResult
        began = time.monotonic()
        try:
            holder = await asyncio.to_thread(
                lambda: self.directory.claim(uri, self.node_id, self.clock(), takeover_from=takeover_from)
            )
        except StoreUnavailable as exc:
            log.warning("event=claim_failed conf_uri=%s reason=%r", uri, str(exc))
            result = ClaimFailed(self.retry_after)
        except ValueError:  # not sip:user@host: nothing another node could hold
            result = ClaimWon()
        else:
            result = ClaimWon() if holder == self.node_id else ClaimLost(holder)
            self._unreleased.discard(uri)
            if holder == self.node_id:
                self._won.add(uri)
        holder_id = self.node_id if isinstance(result, ClaimWon) else None
        if isinstance(result, ClaimLost):
            holder_id = result.node_id
        ms = (time.monotonic() - began) * 1000
        took = (
            f" taken_from={takeover_from}" if takeover_from is not None and holder_id == self.node_id else ""
        )
        log.info("event=claim conf_uri=%s holder=%s ms=%.1f%s", uri, holder_id or "-", ms, took)
        done(result)

    async def _release(self, uri: str) -> None:
        self._won.discard(uri)
        try:
            await asyncio.to_thread(self.directory.release, uri, self.node_id)
        except StoreUnavailable as exc:
            log.warning("event=release_failed conf_uri=%s reason=%r", uri, str(exc))
            self._unreleased.add(uri)
        except ValueError:
            pass

    # ---- heartbeat and expiry

    def start(self) -> DirectoryClaims:
        self._beat = asyncio.get_running_loop().create_task(self._run())
        return self

    async def _run(self) -> None:
        while True:
            await self.beat()
            await asyncio.sleep(self.interval)

    async def beat(self) -> None:
        """One heartbeat: the failed releases again, this node's rows refreshed, dead nodes' rows gone."""
        try:
            for uri in list(self._unreleased):
                await asyncio.to_thread(self.directory.release, uri, self.node_id)
                self._unreleased.discard(uri)
            held = await asyncio.to_thread(self.directory.heartbeat, self.node_id, self.clock())
            expired = await asyncio.to_thread(self.directory.expire, self.clock())
        except StoreUnavailable as exc:
            log.warning("event=heartbeat_failed node=%s reason=%r", self.node_id, str(exc))
            return
        for row in expired:
            log.info("event=claim_expired conf_uri=%s node=%s", row.uri_key, row.node_id)
        log.debug("event=heartbeat node=%s held=%d", self.node_id, held)

    async def close(self) -> None:
        """Stop the heartbeat; wait for the claims and releases under way; give back every URI still held
        (the front would otherwise send callers here until the rows expire)."""
        if self._beat is not None:
            self._beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._beat
            self._beat = None
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for uri in sorted(self._won | self._unreleased):
            await self._release(uri)
        if self.owns_directory:
            await asyncio.to_thread(self.directory.close)


def open_claims(settings: Settings, directory: ConferenceDirectory | None = None) -> DirectoryClaims | None:
    """The running claims of this node (call on the event loop): None for a single node (the SQLite
    store, or no ``node_id``); else over *directory*, or over a :class:`PgDirectory` opened here (and
    closed with it).  StoreUnavailable when PostgreSQL cannot be reached."""
    if not uses_postgresql(settings) or not settings.node_id:
        return None
    owned = directory is None
    if directory is None:
        from imsconf.store.directory_pg import PgDirectory
        from imsconf.store.pg import PgDatabase, read_password

        pw = settings.store_password_file
        directory = PgDirectory(PgDatabase(settings.store, None if pw is None else read_password(pw)))
    return DirectoryClaims(directory, settings.node_id, owns_directory=owned).start()
