"""The registrar's bindings in PostgreSQL: the :class:`~imsconf.store.bindings.BindingsBackend` shared by
every node (the Path is a ``TEXT[]``; times are wall-clock seconds)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from .bindings import StoredBinding
from .pg import PgDatabase

__all__ = ["COMPONENT", "MIGRATIONS", "PgBindingStore"]

COMPONENT: Final = "bindings"
MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    (
        """CREATE TABLE registrar_bindings (
            aor TEXT NOT NULL, contact TEXT NOT NULL, expires_wall DOUBLE PRECISION NOT NULL,
            q INTEGER NOT NULL, q_given BOOLEAN NOT NULL, call_id TEXT NOT NULL,
            cseq BIGINT NOT NULL, path TEXT[] NOT NULL, transport TEXT NOT NULL,
            host TEXT NOT NULL, port INTEGER NOT NULL, registered_wall DOUBLE PRECISION NOT NULL
        )""",
        "CREATE INDEX registrar_bindings_by_aor ON registrar_bindings (aor)",
        "CREATE INDEX registrar_bindings_by_expiry ON registrar_bindings (expires_wall)",
    ),
)
_INSERT: Final = (
    "INSERT INTO registrar_bindings (aor, contact, expires_wall, q, q_given, call_id, cseq, path, transport,"
    " host, port, registered_wall) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)
_COLUMNS: Final = (
    "aor, contact, expires_wall, q, q_given, call_id, cseq, path, transport, host, port, registered_wall"
)


class PgBindingStore:
    """The bindings of every node's registrar in one table."""

    def __init__(self, db: PgDatabase) -> None:
        self.db = db
        self.where = db.where
        db.migrate(COMPONENT, MIGRATIONS)

    def load(self, wall_now: float) -> list[StoredBinding]:
        with self.db.transaction() as cur:
            cur.execute("DELETE FROM registrar_bindings WHERE expires_wall <= %s", (wall_now,))
            cur.execute(f"SELECT {_COLUMNS} FROM registrar_bindings".encode())
            rows = cur.fetchall()
        out: list[StoredBinding] = []
        for r in rows:
            aor, contact, expires, q, q_given, call_id, cseq, path, transport, host, port, registered = r
            paths = tuple(str(p) for p in path) if isinstance(path, list) else ()
            out.append(
                StoredBinding(str(aor), str(contact), float(str(expires)), int(str(q)), bool(q_given),
                              str(call_id), int(str(cseq)), paths, str(transport), str(host), int(str(port)),
                              float(str(registered)))
            )  # fmt: skip
        return out

    def replace(self, changes: Iterable[tuple[str, list[StoredBinding]]]) -> None:
        with self.db.transaction() as cur:
            for aor, rows in changes:
                cur.execute("DELETE FROM registrar_bindings WHERE aor = %s", (aor,))
                if rows:
                    cur.executemany(
                        _INSERT,
                        [
                            (r.aor, r.contact, r.expires_wall, r.q, r.q_given, r.call_id, r.cseq,
                             list(r.path), r.transport, r.host, r.port, r.registered_wall)
                            for r in rows
                        ],
                    )  # fmt: skip

    def close(self) -> None:
        self.db.close()
