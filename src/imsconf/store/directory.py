"""The conference directory: which node hosts which conference URI, kept alive by heartbeats.

A row per conference URI (its ``user@host`` key: sip: and sips: alike) with the owning node's id and the
wall-clock time of its last heartbeat.  :meth:`ConferenceDirectory.claim` gives the URI to the caller
unless another node holds it with a fresh heartbeat, so two nodes racing for one booked URI get exactly one
winner; :meth:`~ConferenceDirectory.heartbeat` refreshes every row of a node; rows whose heartbeat is older
than the timeout belong to a dead node: a claim takes them over and :meth:`~ConferenceDirectory.expire`
deletes them.  A claim ``takeover_from=<node>`` also takes a row that *node* still holds with a fresh
heartbeat: the front saw that node die (its dispatcher's probe failed) before its rows went stale; a row held
by any other node is left alone.  Times are passed in (``time.time()`` at the runtime), never read here.

:class:`LocalDirectory` is the single-node directory (embedded SQLite mode: one process, nobody to race);
:class:`imsconf.store.directory_pg.PgDirectory` is the shared one, where the claim is one
``INSERT ... ON CONFLICT DO UPDATE ... WHERE`` statement: PostgreSQL serialises two claims of one URI on
the row, the second one sees the first's row and takes it only if it is its own or stale.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Final, Protocol

from imsconf.booking.model import conference_key

__all__ = [
    "HEARTBEAT_TIMEOUT",
    "ConferenceDirectory",
    "DirectoryEntry",
    "LocalDirectory",
]

HEARTBEAT_TIMEOUT: Final = 30.0  # seconds without a heartbeat after which a node's rows are free


@dataclass(frozen=True, slots=True)
class DirectoryEntry:
    uri_key: str
    node_id: str
    heartbeat: float


class ConferenceDirectory(Protocol):
    """Conference URI → node, shared by the nodes of a cluster."""

    heartbeat_timeout: float

    def claim(self, uri: str, node_id: str, now: float, *, takeover_from: str | None = None) -> str:
        """Take *uri* for *node_id* unless a live node holds it (*takeover_from*: a node known to be dead,
        whose row is taken however fresh); the node that holds it afterwards (equal to *node_id* when the
        claim won).  ValueError for a URI that is not ``sip(s):user@host``."""
        ...

    def lookup(self, uri: str, now: float) -> str | None:
        """The live node holding *uri*, or None."""
        ...

    def release(self, uri: str, node_id: str) -> None:
        """Give *uri* up (only if *node_id* holds it)."""
        ...

    def heartbeat(self, node_id: str, now: float) -> int:
        """Refresh every row of *node_id*; how many it holds."""
        ...

    def expire(self, now: float) -> list[DirectoryEntry]:
        """Delete and return the rows of nodes silent for longer than the heartbeat timeout."""
        ...

    def entries(self) -> list[DirectoryEntry]: ...

    def close(self) -> None: ...


class LocalDirectory:
    """The directory of a single node: in memory, behind a lock."""

    def __init__(self, heartbeat_timeout: float = HEARTBEAT_TIMEOUT) -> None:
        self.heartbeat_timeout = heartbeat_timeout
        self._rows: dict[str, DirectoryEntry] = {}
        self._lock = threading.Lock()

    def claim(self, uri: str, node_id: str, now: float, *, takeover_from: str | None = None) -> str:
        key = conference_key(uri)
        with self._lock:
            row = self._rows.get(key)
            if (
                row is None
                or row.node_id in (node_id, takeover_from)
                or row.heartbeat < now - self.heartbeat_timeout
            ):
                row = DirectoryEntry(key, node_id, now)
                self._rows[key] = row
            return row.node_id

    def lookup(self, uri: str, now: float) -> str | None:
        key = conference_key(uri)
        with self._lock:
            row = self._rows.get(key)
        if row is None or row.heartbeat < now - self.heartbeat_timeout:
            return None
        return row.node_id

    def release(self, uri: str, node_id: str) -> None:
        key = conference_key(uri)
        with self._lock:
            row = self._rows.get(key)
            if row is not None and row.node_id == node_id:
                del self._rows[key]

    def heartbeat(self, node_id: str, now: float) -> int:
        with self._lock:
            mine = [k for k, r in self._rows.items() if r.node_id == node_id]
            for k in mine:
                self._rows[k] = DirectoryEntry(k, node_id, now)
        return len(mine)

    def expire(self, now: float) -> list[DirectoryEntry]:
        with self._lock:
            dead = [r for r in self._rows.values() if r.heartbeat < now - self.heartbeat_timeout]
            for r in dead:
                del self._rows[r.uri_key]
        return sorted(dead, key=lambda r: r.uri_key)

    def entries(self) -> list[DirectoryEntry]:
        with self._lock:
            return sorted(self._rows.values(), key=lambda r: r.uri_key)

    def close(self) -> None:
        pass
