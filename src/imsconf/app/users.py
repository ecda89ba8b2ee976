"""The user store: digest HA1 values in ``DATA_DIR/users.json``, never a clear password.

File format (version 1)::

    {"version": 1,
     "users": {"alice": {"realm": "example.com",
                         "ha1": {"MD5": "<hex>", "SHA-256": "<hex>", "SHA-512-256": "<hex>"}}}}

Each user belongs to one realm (the HA1 values are bound to it; changing the realm needs the password
again).  Every change rewrites the whole file atomically — temporary file in the same directory, fsync,
``os.replace``, fsync of the directory — with mode 0600, under an advisory lock so that a CLI command and
a running server do not lose each other's updates.  Readers re-load the file when it changes on disk.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import secrets
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from imsconf.sip.auth import DigestAuthenticator, compute_ha1
from imsconf.store.users import HA1_ALGORITHMS, UserBackend, UserStoreError, validate_realm, validate_username

from .config import Settings

__all__ = [
    "HA1_ALGORITHMS",
    "USERS_FILE",
    "UserStore",
    "UserStoreError",
    "authenticator_for",
    "validate_username",
]

USERS_FILE: Final = "users.json"  # in DATA_DIR

log = logging.getLogger(__name__)

_FORMAT_VERSION = 1


@dataclass(frozen=True, slots=True)
class _Entry:
    realm: str
    ha1: dict[str, str]


class UserStore:
    """Users and their HA1 values in one JSON file.  ``ha1`` fits :class:`DigestAuthenticator`'s lookup."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._cache: dict[str, _Entry] = {}
        self._stamp: tuple[int, int, int] | None = None

    # -- public API --

    def add(self, username: str, password: str, realm: str, *, replace: bool = False) -> None:
        """Create a user (or, with *replace*, set a new password / realm).  Only HA1 values are stored."""
        validate_username(username)
        validate_realm(realm)
        if not isinstance(password, str) or not password:
            raise ValueError("password must be a non-empty string")
        ha1 = {alg: compute_ha1(username, realm, password, alg) for alg in HA1_ALGORITHMS}
        with self._locked():
            users = dict(self._load())
            if username in users and not replace:
                raise UserStoreError(f"user {username!r} already exists")
            users[username] = _Entry(realm, ha1)
            self._write(users)

    def remove(self, username: str) -> None:
        """Delete a user; KeyError when there is no such user."""
        with self._locked():
            users = dict(self._load())
            if username not in users:
                raise KeyError(username)
            del users[username]
            self._write(users)

    def list(self) -> list[str]:
        """Usernames, sorted."""
        return sorted(self._load())

    def realm_of(self, username: str) -> str | None:
        entry = self._load().get(username)
        return entry.realm if entry else None

    def ha1(self, username: str, realm: str, algorithm: str) -> str | None:
        """Stored HA1 (hex) of *username* in *realm* for *algorithm* ("MD5", "SHA-256", "SHA-512-256")."""
        entry = self._load().get(username)
        if entry is None or entry.realm != realm:
            return None
        return entry.ha1.get(algorithm)

    def reload(self) -> bool:
        """Read the file again now (a SIGHUP); True when its users or their HA1 values changed.
        UserStoreError when it is unreadable or corrupt: the users read before stay in force."""
        before, stamp = self._cache, self._stamp
        self._stamp = None
        try:
            after = self._load()
        except UserStoreError:
            self._cache, self._stamp = before, stamp
            raise
        return after != before

    def __contains__(self, username: object) -> bool:
        return isinstance(username, str) and username in self._load()

    def close(self) -> None:
        """Nothing to release: the file is read and written whole on each use."""

    # -- file handling --

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        lock_path = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._stamp = None  # re-read under the lock
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _load(self) -> dict[str, _Entry]:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self._cache, self._stamp = {}, None
            return self._cache
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        if stamp == self._stamp:
            return self._cache
        if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            log.warning("user file %s is accessible by group or others; it should be mode 0600", self.path)
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise UserStoreError(f"cannot read user file {self.path}: {type(exc).__name__}") from None
        self._cache = _decode(data, self.path)
        self._stamp = stamp
        return self._cache

    def _write(self, users: dict[str, _Entry]) -> None:
        doc: dict[str, Any] = {
            "version": _FORMAT_VERSION,
            "users": {u: {"realm": e.realm, "ha1": dict(e.ha1)} for u, e in sorted(users.items())},
        }
        text = json.dumps(doc, indent=2, sort_keys=True) + "\n"
        directory = self.path.parent
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=directory)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
        self._cache = dict(users)
        st = self.path.stat()
        self._stamp = (st.st_ino, st.st_mtime_ns, st.st_size)


def _decode(data: object, path: Path) -> dict[str, _Entry]:
    def bad(what: str) -> UserStoreError:
        return UserStoreError(f"corrupt user file {path}: {what}")

    if not isinstance(data, dict) or data.get("version") != _FORMAT_VERSION:
        raise bad("unknown format version")
    users = data.get("users")
    if not isinstance(users, dict):
        raise bad("'users' is not an object")
    out: dict[str, _Entry] = {}
    for name, entry in users.items():
        try:
            validate_username(name)
        except ValueError:
            raise bad("invalid username") from None
        if not isinstance(entry, dict) or not isinstance(entry.get("realm"), str):
            raise bad(f"entry of {name!r} has no realm")
        ha1 = entry.get("ha1")
        if not isinstance(ha1, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in ha1.items()
        ):
            raise bad(f"entry of {name!r} has no HA1 table")
        out[name] = _Entry(entry["realm"], dict(ha1))
    return out


def authenticator_for(settings: Settings, users: UserBackend) -> DigestAuthenticator | None:
    """The digest authenticator *settings* ask for (realm, algorithms) over *users*; None for ``auth =
    "none"``. Each one draws a new nonce secret: nonces of an earlier one get a fresh challenge."""
    if settings.auth != "digest":
        return None
    return DigestAuthenticator(
        settings.realm, users.ha1, secrets.token_bytes(32), algorithms=settings.digest_algorithms
    )
