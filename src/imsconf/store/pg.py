"""One PostgreSQL connection for one store: DSN and password file, bounded timeouts, reconnect, migrations.

Every store backend (bookings, usage, bindings, users, the conference directory) owns one
:class:`PgDatabase`.  Calls are synchronous and short; the runtime makes them from worker threads (the
event loop never waits for the database).  A lost or refused connection is a :class:`StoreUnavailable`
raised within ``connect_timeout`` (refused: at once); the connection is dropped and the next call opens a
new one, so a restarted server is picked up without any action.

Migrations: one ``schema_version`` table with a row per component (``bookings``, ``usage``, ...); each
numbered migration of a component runs in its own transaction under a transaction-scoped advisory lock,
so two nodes starting at once migrate once.  A database with a newer version than this imsconf knows is
refused.  The password never appears in the DSN given to logs: :func:`redact` shows the DSN without it.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Final, Self

import psycopg
from psycopg import conninfo

from .errors import StoreUnavailable

__all__ = [
    "CONNECT_TIMEOUT",
    "STATEMENT_TIMEOUT_MS",
    "PgComponentStore",
    "PgDatabase",
    "PgSchemaError",
    "read_password",
    "redact",
]

CONNECT_TIMEOUT: Final = 3  # seconds; libpq's connect_timeout (whole seconds, at least 2 honoured)
STATEMENT_TIMEOUT_MS: Final = 5000
_SCHEMA_TABLE: Final = (
    "CREATE TABLE IF NOT EXISTS schema_version (component TEXT PRIMARY KEY, version INTEGER NOT NULL)"
)
_MIGRATION_LOCK: Final = 0x1A5C0F  # the advisory lock key every imsconf node takes to migrate


class PgSchemaError(OSError):
    """The database has a schema newer than this imsconf, or a migration failed."""


def read_password(path: Path | str) -> str:
    """The password in *path*: the first line, which must be mode 0600 or stricter (not group/other
    readable)."""
    p = Path(path)
    mode = p.stat().st_mode
    if mode & 0o077:
        raise PermissionError(f"{p}: the store password file must not be readable by group or others")
    lines = p.read_text(encoding="utf-8").splitlines()
    return lines[0] if lines else ""


def redact(dsn: str) -> str:
    """*dsn* without its password, for logs."""
    try:
        params = conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "postgresql://?"
    params.pop("password", None)
    return conninfo.make_conninfo(**{k: str(v) for k, v in params.items() if v is not None})


class PgDatabase:
    """A lazily opened, self-reconnecting connection; :meth:`transaction` is the one way to use it."""

    def __init__(self, dsn: str, password: str | None = None) -> None:
        self.dsn = dsn
        self.where = redact(dsn)
        self._password = password
        self._lock = threading.RLock()
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None

    def _connect(self) -> psycopg.Connection[tuple[object, ...]]:
        try:
            given = str(conninfo.conninfo_to_dict(self.dsn).get("options") or "")
        except psycopg.ProgrammingError as exc:
            raise StoreUnavailable(f"store {self.where}: bad DSN: {_first_line(exc)}") from None
        extra: dict[str, object] = {
            "connect_timeout": CONNECT_TIMEOUT,
            "options": f"{given} -c statement_timeout={STATEMENT_TIMEOUT_MS}".strip(),
            "application_name": "imsconf",
        }
        if self._password is not None:
            extra["password"] = self._password
        try:
            return psycopg.connect(self.dsn, **extra)  # type: ignore[arg-type]
        except psycopg.OperationalError as exc:
            raise StoreUnavailable(f"store {self.where} unavailable: {_first_line(exc)}") from None

    @contextlib.contextmanager
    def transaction(self) -> Iterator[psycopg.Cursor[tuple[object, ...]]]:
        """A cursor in one transaction (committed on a normal exit, rolled back on an exception).  A lost
        connection is a :class:`StoreUnavailable`; the next call reconnects."""
        with self._lock:
            if self._conn is None or self._conn.closed:
                self._conn = self._connect()
            conn = self._conn
            try:
                with conn.transaction(), conn.cursor() as cur:
                    yield cur
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                self._drop()
                raise StoreUnavailable(f"store {self.where} unavailable: {_first_line(exc)}") from None
            if conn.broken:
                self._drop()

    def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
            self._conn = None

    def close(self) -> None:
        with self._lock:
            self._drop()

    # -- migrations --

    def version(self, component: str) -> int:
        with self.transaction() as cur:
            cur.execute(_SCHEMA_TABLE)
            cur.execute("SELECT version FROM schema_version WHERE component = %s", (component,))
            row = cur.fetchone()
        return 0 if row is None else int(str(row[0]))

    def migrate(self, component: str, migrations: Sequence[Sequence[str]], target: int | None = None) -> None:
        """Bring *component* to *target* (default: every migration): each migration is a list of SQL
        statements, run in one transaction that also bumps the version."""
        known = len(migrations)
        goal = known if target is None else target
        with self.transaction() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            cur.execute(_SCHEMA_TABLE)
            cur.execute(
                "INSERT INTO schema_version (component, version) VALUES (%s, 0) ON CONFLICT DO NOTHING",
                (component,),
            )
        current = self.version(component)
        if current > known:
            raise PgSchemaError(
                f"store {self.where}: {component} has schema v{current}, newer than this imsconf (v{known})"
            )
        for number in range(current + 1, goal + 1):
            with self.transaction() as cur:
                cur.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
                cur.execute("SELECT version FROM schema_version WHERE component = %s", (component,))
                row = cur.fetchone()
                if row is not None and int(str(row[0])) >= number:
                    continue  # another node migrated meanwhile
                for statement in migrations[number - 1]:
                    cur.execute(statement.encode())
                cur.execute(
                    "UPDATE schema_version SET version = %s WHERE component = %s", (number, component)
                )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class PgComponentStore:
    """One component's tables in the shared database: migrated to *migrate_to* when opened, its own
    connection closed by :meth:`close`; a context manager."""

    def __init__(
        self, db: PgDatabase, component: str, migrations: Sequence[Sequence[str]], migrate_to: int | None
    ) -> None:
        self.db = db
        self.component = component
        db.migrate(component, migrations, migrate_to)

    @property
    def schema_version(self) -> int:
        return self.db.version(self.component)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
