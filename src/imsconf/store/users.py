"""Digest users: the :class:`UserBackend` seam and the rules a username and realm follow (the JSON file
backend is :class:`imsconf.app.users.UserStore`, the PostgreSQL one
:class:`imsconf.store.users_pg.PgUserStore`).  Only HA1 values are stored, never a clear password."""

from __future__ import annotations

import builtins
from typing import Final, Protocol

from imsconf.sip.grammar import USER_RE

__all__ = [
    "HA1_ALGORITHMS",
    "MAX_USERNAME",
    "UserBackend",
    "UserStoreError",
    "validate_realm",
    "validate_username",
]

HA1_ALGORITHMS: tuple[str, ...] = ("MD5", "SHA-256", "SHA-512-256")
MAX_USERNAME: Final = 128


class UserStoreError(Exception):
    """The user store is unreadable or corrupt, or an operation was refused.  Never carries secrets."""


def validate_username(username: str) -> str:
    """Return *username* if it is a valid SIP URI user part (RFC 3261 §25.1 ``user``), else ValueError."""
    if not isinstance(username, str) or not username:
        raise ValueError("username must be a non-empty string")
    if len(username) > MAX_USERNAME:
        raise ValueError(f"username longer than {MAX_USERNAME} characters")
    if not USER_RE.match(username) or "\n" in username:
        raise ValueError(f"{username!r} is not a valid SIP user part")
    return username


def validate_realm(realm: str) -> str:
    if not realm or any(c in realm for c in '"\\') or any(ord(c) < 0x20 or ord(c) == 0x7F for c in realm):
        raise ValueError("realm must be non-empty and free of quotes, backslashes and control characters")
    return realm


class UserBackend(Protocol):
    """Users and their HA1 values; ``ha1`` fits :class:`~imsconf.sip.auth.DigestAuthenticator`'s lookup."""

    def add(self, username: str, password: str, realm: str, *, replace: bool = False) -> None: ...

    def remove(self, username: str) -> None:
        """Delete a user; KeyError when there is no such user."""
        ...

    def list(self) -> builtins.list[str]: ...

    def realm_of(self, username: str) -> str | None: ...

    def ha1(self, username: str, realm: str, algorithm: str) -> str | None: ...

    def reload(self) -> bool:
        """Read the users again now; True when they changed."""
        ...

    def __contains__(self, username: object) -> bool: ...

    def close(self) -> None: ...
