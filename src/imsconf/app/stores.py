"""The backends the settings select: ``store = "sqlite"`` (files in ``data_dir``) or a PostgreSQL DSN.

:func:`open_stores` opens every store of one node; with PostgreSQL each store has its own connection to
the one shared database (the password read from ``store_password_file``, never logged: :func:`describe`
names the store without it).  The PostgreSQL modules are imported only when a DSN is configured, so the
default needs no driver.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from imsconf.booking.backend import BookingStorage
from imsconf.booking.store import BookingStore
from imsconf.store.bindings import BindingsBackend
from imsconf.store.directory import ConferenceDirectory, LocalDirectory
from imsconf.store.users import UserBackend
from imsconf.usage.store import UsageBackend, UsageStore

from .config import Settings
from .registrations import DB_NAME as REGISTRATIONS_DB
from .registrations import BindingStore
from .users import UserStore

__all__ = ["Stores", "describe", "open_stores", "uses_postgresql"]


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
    data_dir = Path(settings.data_dir)
    if not uses_postgresql(settings):
        data_dir.mkdir(parents=True, exist_ok=True)
        return Stores(
            bookings=BookingStore.open(data_dir),
            usage=UsageStore.open(data_dir),
            bindings=BindingStore(data_dir / REGISTRATIONS_DB),
            users=UserStore(data_dir / "users.json"),
            directory=LocalDirectory(),
        )
    from imsconf.store.bindings_pg import PgBindingStore
    from imsconf.store.booking_pg import PgBookingStore
    from imsconf.store.directory_pg import PgDirectory
    from imsconf.store.pg import PgDatabase, read_password
    from imsconf.store.usage_pg import PgUsageStore
    from imsconf.store.users_pg import PgUserStore

    password = None if settings.store_password_file is None else read_password(settings.store_password_file)

    def db() -> PgDatabase:
        return PgDatabase(settings.store, password)

    return Stores(
        bookings=PgBookingStore(db()),
        usage=PgUsageStore(db()),
        bindings=PgBindingStore(db()),
        users=PgUserStore(db()),
        directory=PgDirectory(db()),
    )
