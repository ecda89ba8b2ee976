"""Digest users in PostgreSQL: the :class:`~imsconf.store.users.UserBackend` shared by every node.

:class:`PgUserStore` keeps the users in memory (the digest check reads them on the event loop, so it never
waits for the database) and reads the table again on :meth:`~PgUserStore.reload` (a SIGHUP) and after each
of its own changes.
"""

from __future__ import annotations

import builtins
from typing import Final

from imsconf.sip.auth import compute_ha1

from .pg import PgDatabase
from .users import HA1_ALGORITHMS, UserStoreError, validate_realm, validate_username

__all__ = ["COMPONENT", "MIGRATIONS", "PgUserStore"]

COMPONENT: Final = "users"
MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    (
        """CREATE TABLE digest_users (
            username TEXT NOT NULL,
            realm TEXT NOT NULL,
            algorithm TEXT NOT NULL,
            ha1 TEXT NOT NULL,
            PRIMARY KEY (username, algorithm)
        )""",
    ),
)

_Users = dict[str, tuple[str, dict[str, str]]]  # username → (realm, algorithm → HA1)


class PgUserStore:
    """The users of every node in one PostgreSQL table, cached in memory."""

    def __init__(self, db: PgDatabase) -> None:
        self.db = db
        db.migrate(COMPONENT, MIGRATIONS)
        self._cache: _Users = self._read()

    def _read(self) -> _Users:
        users: _Users = {}
        with self.db.transaction() as cur:
            cur.execute("SELECT username, realm, algorithm, ha1 FROM digest_users")
            for username, realm, algorithm, ha1 in cur.fetchall():
                entry = users.setdefault(str(username), (str(realm), {}))
                entry[1][str(algorithm)] = str(ha1)
        return users

    def add(self, username: str, password: str, realm: str, *, replace: bool = False) -> None:
        validate_username(username)
        validate_realm(realm)
        if not isinstance(password, str) or not password:
            raise ValueError("password must be a non-empty string")
        ha1 = {alg: compute_ha1(username, realm, password, alg) for alg in HA1_ALGORITHMS}
        with self.db.transaction() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", ("digest_users:" + username,))
            cur.execute("SELECT 1 FROM digest_users WHERE username = %s", (username,))
            if cur.fetchone() is not None:
                if not replace:
                    raise UserStoreError(f"user {username!r} already exists")
                cur.execute("DELETE FROM digest_users WHERE username = %s", (username,))
            cur.executemany(
                "INSERT INTO digest_users (username, realm, algorithm, ha1) VALUES (%s, %s, %s, %s)",
                [(username, realm, alg, value) for alg, value in ha1.items()],
            )
        self._cache = self._read()

    def remove(self, username: str) -> None:
        with self.db.transaction() as cur:
            cur.execute("DELETE FROM digest_users WHERE username = %s", (username,))
            gone = cur.rowcount
        self._cache = self._read()
        if gone <= 0:
            raise KeyError(username)

    def list(self) -> builtins.list[str]:
        return sorted(self._cache)

    def realm_of(self, username: str) -> str | None:
        entry = self._cache.get(username)
        return entry[0] if entry else None

    def ha1(self, username: str, realm: str, algorithm: str) -> str | None:
        entry = self._cache.get(username)
        if entry is None or entry[0] != realm:
            return None
        return entry[1].get(algorithm)

    def reload(self) -> bool:
        """Read the table again (StoreUnavailable when it cannot: the users read before stay in force)."""
        before = self._cache
        self._cache = self._read()
        return self._cache != before

    def __contains__(self, username: object) -> bool:
        return isinstance(username, str) and username in self._cache

    def close(self) -> None:
        self.db.close()
