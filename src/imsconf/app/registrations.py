"""The registrar's bindings on disk (``DATA_DIR/registrations.sqlite3``), written behind the event loop.

The registrar core (:mod:`imsconf.registrar`) is the authority, in memory; this module keeps a copy so
that a restart keeps the registrations.  :class:`BindingWriter` runs every SQLite call on one worker
thread (so writes stay in order and the loop never waits for the disk): :meth:`BindingWriter.load` once at
start (expired bindings are dropped, on disk too), :meth:`BindingWriter.submit` for each change, which
replaces the whole set of bindings of one AoR.  A failed write is logged and the server goes on.

Times on disk are wall-clock seconds (``time.time()``); the registrar runs on the loop's clock, so the
expiry is converted on the way in and out.  Stream connections do not survive a restart: a loaded
binding keeps its transport and source address, no connection.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Final

from imsconf.registrar.bindings import AorChanged, Binding
from imsconf.sqlitefile import open_sqlite
from imsconf.store.bindings import BindingsBackend, StoredBinding
from imsconf.store.errors import RETRY_AFTER, StoreUnavailable

__all__ = ["DB_NAME", "BindingStore", "BindingWriter", "StoredBinding"]

log = logging.getLogger("imsconf.registrar")

DB_NAME: Final = "registrations.sqlite3"
SCHEMA_VERSION: Final = 1


class BindingStore:
    """The SQLite :class:`~imsconf.store.bindings.BindingsBackend`; every method is called from one thread
    at a time (the writer's worker)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.where = str(self.path)
        self._db: sqlite3.Connection | None = None

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            # 0600 (contact addresses are private); soft state: a lost last write costs a re-REGISTER
            db = open_sqlite(self.path, synchronous="NORMAL")
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                db.close()
                raise sqlite3.DatabaseError(f"{self.path}: schema {version} is newer than this server's")
            if version < 1:
                db.execute(
                    """CREATE TABLE IF NOT EXISTS bindings (
                        aor TEXT NOT NULL, contact TEXT NOT NULL, expires_wall REAL NOT NULL,
                        q INTEGER NOT NULL, q_given INTEGER NOT NULL, call_id TEXT NOT NULL,
                        cseq INTEGER NOT NULL, path TEXT NOT NULL, transport TEXT NOT NULL,
                        host TEXT NOT NULL, port INTEGER NOT NULL, registered_wall REAL NOT NULL)"""
                )
                db.execute("CREATE INDEX IF NOT EXISTS bindings_aor ON bindings (aor)")
                db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            self._db = db
        return self._db

    def load(self, wall_now: float) -> list[StoredBinding]:
        """Every binding still live at *wall_now*; expired rows are deleted."""
        db = self._conn()
        db.execute("DELETE FROM bindings WHERE expires_wall <= ?", (wall_now,))
        rows = db.execute(
            "SELECT aor, contact, expires_wall, q, q_given, call_id, cseq, path, transport, host, port, "
            "registered_wall FROM bindings"
        ).fetchall()
        out: list[StoredBinding] = []
        for r in rows:
            try:
                path = tuple(str(p) for p in json.loads(r[7]))
            except (ValueError, TypeError):
                continue
            aor, contact, expires, q, q_given, call_id, cseq, _, transport, host, port, registered = r
            out.append(
                StoredBinding(str(aor), str(contact), float(expires), int(q), bool(q_given), str(call_id),
                              int(cseq), path, str(transport), str(host), int(port), float(registered))
            )  # fmt: skip
        return out

    def replace(self, changes: Iterable[tuple[str, list[StoredBinding]]]) -> None:
        """For each (aor, rows): the AoR's bindings become exactly *rows* (one transaction)."""
        db = self._conn()
        db.execute("BEGIN IMMEDIATE")
        try:
            for aor, rows in changes:
                db.execute("DELETE FROM bindings WHERE aor = ?", (aor,))
                db.executemany(
                    "INSERT INTO bindings VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        (r.aor, r.contact, r.expires_wall, r.q, int(r.q_given), r.call_id, r.cseq,
                         json.dumps(list(r.path)), r.transport, r.host, r.port, r.registered_wall)
                        for r in rows
                    ],
                )  # fmt: skip
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


class BindingWriter:
    """A bindings backend on one worker thread, for the event loop: load once, then write behind.

    A write that fails because the store is unreachable (:class:`StoreUnavailable`: PostgreSQL down) is
    kept, the newest rows of each AoR, and tried again every ``retry_interval`` seconds until it is
    stored; meanwhile :meth:`unavailable` gives the Retry-After the registrar answers new registrations
    with.  Other failures are logged and dropped (the next change of the AoR writes it whole again)."""

    def __init__(
        self, store: BindingsBackend, loop: asyncio.AbstractEventLoop, *, retry_interval: float = RETRY_AFTER
    ) -> None:
        self.store = store
        self._loop = loop
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="imsconf-registrations")
        self._pending: set[asyncio.Future[None]] = set()
        self.failures = 0
        self.retry_interval = retry_interval
        self._unstored: dict[str, list[StoredBinding]] = {}  # by AoR: rows a lost connection kept out
        self._retry: asyncio.TimerHandle | None = None
        self._closing = False

    def _offset(self) -> float:
        return time.time() - self._loop.time()

    def unavailable(self) -> int | None:
        """The Retry-After for a change while the store is unreachable (writes wait to be retried);
        None when it takes writes."""
        return RETRY_AFTER if self._unstored else None

    async def load(self) -> list[Binding]:
        """The stored live bindings on the loop's clock (a failing store logs and gives none)."""
        try:
            rows = await self._loop.run_in_executor(self._executor, self.store.load, time.time())
        except (sqlite3.Error, OSError) as exc:
            log.warning("event=registrations_load_failed path=%s error=%s", self.store.where, exc)
            return []
        offset = self._offset()
        bindings = [b for b in (r.binding(offset) for r in rows) if b is not None]
        log.info("event=registrations_loaded bindings=%d", len(bindings))
        return bindings

    def submit(self, changes: list[AorChanged]) -> None:
        """Write *changes* behind: converted here, stored on the worker, in submission order."""
        if not changes:
            return
        offset = self._offset()
        self._write([(c.aor, [StoredBinding.of(b, offset) for b in c.bindings]) for c in changes])

    def _write(self, rows: list[tuple[str, list[StoredBinding]]]) -> None:
        fut = self._loop.run_in_executor(self._executor, self.store.replace, rows)
        self._pending.add(fut)
        fut.add_done_callback(lambda f: self._done(f, rows))

    def _done(self, fut: asyncio.Future[None], rows: list[tuple[str, list[StoredBinding]]]) -> None:
        # writes run in order on one thread and their callbacks in that order: the newest outcome of an AoR
        # decides whether its rows still wait
        self._pending.discard(fut)
        if fut.cancelled():
            return
        exc = fut.exception()
        if exc is None:
            for aor, written in rows:
                if self._unstored.get(aor) is written:
                    del self._unstored[aor]
            if not self._unstored and self._retry is not None:
                self._retry.cancel()
                self._retry = None
                log.info("event=registrations_store_back")
            return
        self.failures += 1
        if not isinstance(exc, StoreUnavailable):
            log.warning("event=registrations_write_failed error=%s", exc)
            return
        if not self._unstored:
            log.warning("event=registrations_store_unavailable error=%s", exc)
        for aor, kept in rows:
            self._unstored[aor] = kept
        self._arm()

    def _arm(self) -> None:
        if self._retry is None and not self._closing:
            self._retry = self._loop.call_later(self.retry_interval, self._again)

    def _again(self) -> None:
        self._retry = None
        if self._unstored and not self._closing:
            self._write(list(self._unstored.items()))

    async def drain(self) -> None:
        """Wait until every submitted write is on disk (or failed)."""
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)

    async def close(self) -> None:
        self._closing = True
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        await self.drain()
        if self._unstored:
            log.warning("event=registrations_unstored aors=%d", len(self._unstored))
        await self._loop.run_in_executor(self._executor, self.store.close)
        self._executor.shutdown(wait=True)
