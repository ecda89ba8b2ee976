"""The backends the settings select: ``store = "sqlite"`` (files in ``data_dir``) or a PostgreSQL DSN.

:func:`open_stores` opens every store of one node; with PostgreSQL each store has its own connection to
the one shared database (the password read from ``store_password_file``, never logged: :func:`describe`
names the store without it).  The PostgreSQL modules are imported only when a DSN is configured, so the
default needs no driver.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeVar

from imsconf.booking.backend import BookingStorage
from imsconf.booking.store import BookingStore
from imsconf.store.bindings import BindingsBackend
from imsconf.store.directory import ConferenceDirectory, LocalDirectory
from imsconf.store.users import UserBackend
from imsconf.usage.store import UsageBackend, UsageStore

from .config import Settings
from .registrations import DB_NAME as REGISTRATIONS_DB
from .registrations import BindingStore
from .users import USERS_FILE, UserStore

if TYPE_CHECKING:
    from imsconf.store.pg import PgDatabase

__all__ = [
    "Stores",
    "describe",
    "open_bindings",
    "open_bookings",
    "open_directory",
    "open_stores",
    "open_usage",
    "open_users",
    "uses_postgresql",
]


class _Closable(Protocol):
    def close(self) -> None: ...


_T = TypeVar("_T", bound=_Closable)


@dataclass(frozen=True, slots=True)
class Stores:
    bookings: BookingStorage
    usage: UsageBackend
    bindings: BindingsBackend
    users: UserBackend
    directory: ConferenceDirectory

    def close(self) -> None:
        self.bookings.close()
        self.usage.close()
        self.bindings.close()
        self.users.close()
        self.directory.close()


def uses_postgresql(settings: Settings) -> bool:
    return settings.store != "sqlite"


def describe(settings: Settings) -> str:
    """The store for logs: ``sqlite:DATA_DIR`` or the DSN without any password."""
    if not uses_postgresql(settings):
        return f"sqlite:{settings.data_dir}"
    from imsconf.store.pg import redact

    return redact(settings.store)


def open_stores(settings: Settings) -> Stores:
    """Every store of this node, by ``settings.store``; StoreUnavailable when PostgreSQL cannot be
    reached, PermissionError for a password file others may read."""
    opened: list[_Closable] = []

    def keep(store: _T) -> _T:
        opened.append(store)
        return store

    try:
        return Stores(
            bookings=keep(open_bookings(settings)),
            usage=keep(open_usage(settings)),
            bindings=keep(open_bindings(settings)),
            users=keep(open_users(settings)),
            directory=keep(open_directory(settings)),
        )
    except BaseException:
        for store in opened:
            store.close()
        raise


# -- one store each: what a command that needs only one opens (``imsconf book``, ``cdr``, ``users``) --


def _data_dir(settings: Settings) -> Path:
    data_dir = Path(settings.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    return data_dir


def _database(settings: Settings) -> PgDatabase:
    """A connection of its own to the configured PostgreSQL (opened lazily by its first call)."""
    from imsconf.store.pg import PgDatabase, read_password

    password = None if settings.store_password_file is None else read_password(settings.store_password_file)
    return PgDatabase(settings.store, password)


def open_bookings(settings: Settings) -> BookingStorage:
    if not uses_postgresql(settings):
        return BookingStore.open(_data_dir(settings))
    from imsconf.store.booking_pg import PgBookingStore

    return PgBookingStore(_database(settings))


def open_usage(settings: Settings) -> UsageBackend:
    if not uses_postgresql(settings):
        return UsageStore.open(_data_dir(settings))
    from imsconf.store.usage_pg import PgUsageStore

    return PgUsageStore(_database(settings))


def open_bindings(settings: Settings) -> BindingsBackend:
    if not uses_postgresql(settings):
        return BindingStore(_data_dir(settings) / REGISTRATIONS_DB)
    from imsconf.store.bindings_pg import PgBindingStore

    return PgBindingStore(_database(settings))


def open_users(settings: Settings) -> UserBackend:
    if not uses_postgresql(settings):
        return UserStore(_data_dir(settings) / USERS_FILE)
    from imsconf.store.users_pg import PgUserStore

    return PgUserStore(_database(settings))


def open_directory(settings: Settings) -> ConferenceDirectory:
    if not uses_postgresql(settings):
        return LocalDirectory()
    from imsconf.store.directory_pg import PgDirectory

    return PgDirectory(_database(settings))
