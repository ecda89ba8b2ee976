"""The shared conference directory in PostgreSQL (the seam and its rules: :mod:`imsconf.store.directory`)."""

from __future__ import annotations

from typing import Final

from imsconf.booking.model import conference_key

from .directory import HEARTBEAT_TIMEOUT, DirectoryEntry
from .pg import PgDatabase

__all__ = ["COMPONENT", "MIGRATIONS", "PgDirectory"]

COMPONENT: Final = "directory"
MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    (
        """CREATE TABLE conference_directory (
            uri_key TEXT PRIMARY KEY,
            node_id TEXT NOT NULL,
            heartbeat DOUBLE PRECISION NOT NULL
        )""",
        "CREATE INDEX conference_directory_by_node ON conference_directory (node_id)",
        "CREATE INDEX conference_directory_by_heartbeat ON conference_directory (heartbeat)",
    ),
)


def _entry(row: tuple[object, ...]) -> DirectoryEntry:
    return DirectoryEntry(str(row[0]), str(row[1]), float(str(row[2])))


class PgDirectory:
    """The shared directory in PostgreSQL."""

    def __init__(self, db: PgDatabase, heartbeat_timeout: float = HEARTBEAT_TIMEOUT) -> None:
        self.db = db
        self.heartbeat_timeout = heartbeat_timeout
        db.migrate(COMPONENT, MIGRATIONS)

    def claim(self, uri: str, node_id: str, now: float, *, takeover_from: str | None = None) -> str:
        key = conference_key(uri)
        while True:
            with self.db.transaction() as cur:
                # takeover_from NULL: "d.node_id = NULL" is never true, the plain claim
                cur.execute(
                    """INSERT INTO conference_directory AS d (uri_key, node_id, heartbeat) VALUES (%s, %s, %s)
                       ON CONFLICT (uri_key) DO UPDATE
                       SET node_id = EXCLUDED.node_id, heartbeat = EXCLUDED.heartbeat
                       WHERE d.node_id = EXCLUDED.node_id OR d.heartbeat < EXCLUDED.heartbeat - %s
                          OR d.node_id = %s
                       RETURNING d.node_id""",
                    (key, node_id, now, self.heartbeat_timeout, takeover_from),
                )
                row = cur.fetchone()
                if row is not None:
                    return str(row[0])
                cur.execute("SELECT node_id FROM conference_directory WHERE uri_key = %s", (key,))
                held = cur.fetchone()
            if held is not None:
                return str(held[0])
            # the holder released it between the two statements: claim again

    def lookup(self, uri: str, now: float) -> str | None:
        key = conference_key(uri)
        with self.db.transaction() as cur:
            cur.execute(
                "SELECT node_id FROM conference_directory WHERE uri_key = %s AND heartbeat >= %s",
                (key, now - self.heartbeat_timeout),
            )
            row = cur.fetchone()
        return None if row is None else str(row[0])

    def release(self, uri: str, node_id: str) -> None:
        key = conference_key(uri)
        with self.db.transaction() as cur:
            cur.execute(
                "DELETE FROM conference_directory WHERE uri_key = %s AND node_id = %s", (key, node_id)
            )

    def heartbeat(self, node_id: str, now: float) -> int:
        with self.db.transaction() as cur:
            cur.execute("UPDATE conference_directory SET heartbeat = %s WHERE node_id = %s", (now, node_id))
            return max(cur.rowcount, 0)

    def expire(self, now: float) -> list[DirectoryEntry]:
        with self.db.transaction() as cur:
            cur.execute(
                "DELETE FROM conference_directory WHERE heartbeat < %s RETURNING uri_key, node_id, heartbeat",
                (now - self.heartbeat_timeout,),
            )
            rows = cur.fetchall()
        return sorted((_entry(r) for r in rows), key=lambda r: r.uri_key)

    def entries(self) -> list[DirectoryEntry]:
        with self.db.transaction() as cur:
            cur.execute("SELECT uri_key, node_id, heartbeat FROM conference_directory ORDER BY uri_key")
            return [_entry(r) for r in cur.fetchall()]

    def close(self) -> None:
        self.db.close()
