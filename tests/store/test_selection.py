"""The store setting: "sqlite" opens the files in data_dir, a DSN opens PostgreSQL with the password from
a 0600 file; a DSN with a password, a readable password file, a bad scheme are refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from imsconf.app.config import load_settings
from imsconf.app.stores import describe, open_stores
from imsconf.booking.store import BookingStore
from imsconf.store.directory import LocalDirectory
from pg import PgCluster


def test_default_is_sqlite_in_the_data_dir(tmp_path: Path) -> None:
    settings = load_settings(overrides={"data_dir": str(tmp_path)})
    assert settings.store == "sqlite"
    stores = open_stores(settings)
    try:
        assert isinstance(stores.bookings, BookingStore) and isinstance(stores.directory, LocalDirectory)
        assert (tmp_path / "bookings.sqlite3").exists() and (tmp_path / "usage.sqlite3").exists()
    finally:
        stores.close()
    assert describe(settings) == f"sqlite:{tmp_path}"


@pytest.mark.parametrize(
    ("store", "error"),
    [
        ("mysql://u@h/db", "store must be"),
        ("postgresql://u:secret@h/db", "must not carry a password"),
    ],
)
def test_bad_store_settings(store: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        load_settings(overrides={"store": store})


def test_postgresql_by_dsn_and_password_file(pg_cluster: PgCluster, pg_dsn: str, tmp_path: Path) -> None:
    given = {"data_dir": str(tmp_path), "store": pg_dsn, "store_password_file": str(pg_cluster.password_file)}
    settings = load_settings(overrides=given)
    stores = open_stores(settings)
    try:
        assert stores.directory.claim("sip:room@example.com", "node-a", 1.0) == "node-a"
        stores.users.add("alice", "wonderland", "example.com")
        assert "alice" in stores.users and stores.users.realm_of("alice") == "example.com"
        assert stores.users.ha1("alice", "example.com", "SHA-256") is not None
        assert stores.bindings.load(0.0) == [] and stores.bookings.list() == []
        assert not list(tmp_path.iterdir())  # nothing on disk
    finally:
        stores.close()
    assert pg_cluster.password not in describe(settings)


def test_postgresql_password_file_must_be_private(pg_cluster: PgCluster, pg_dsn: str, tmp_path: Path) -> None:
    loose = tmp_path / "pw"
    loose.write_text(pg_cluster.password + "\n")
    loose.chmod(0o644)
    settings = load_settings(overrides={"store": pg_dsn, "store_password_file": str(loose)})
    with pytest.raises(PermissionError, match="group or others"):
        open_stores(settings)


def test_postgresql_wrong_password_is_unavailable(pg_cluster: PgCluster, pg_dsn: str, tmp_path: Path) -> None:
    from imsconf.store.errors import StoreUnavailable

    wrong = tmp_path / "pw"
    wrong.write_text("not-the-password\n")
    wrong.chmod(0o600)
    settings = load_settings(overrides={"store": pg_dsn, "store_password_file": str(wrong)})
    with pytest.raises(StoreUnavailable) as info:
        open_stores(settings)
    assert "not-the-password" not in str(info.value)


def _iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_the_commands_use_the_configured_store(
    pg_cluster: PgCluster, pg_dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``imsconf users``, ``book`` and ``cdr`` on a node configured for PostgreSQL: they read and write the
    database and leave no file in the data directory."""
    from imsconf.cli import main

    cfg = tmp_path / "imsconf.toml"
    cfg.write_text(f'store = "{pg_dsn}"\nstore_password_file = "{pg_cluster.password_file}"\n')
    data = tmp_path / "var"
    base = ["--config", str(cfg), "--data-dir", str(data)]
    assert main(["users", *base, "add", "alice", "--password", "wonderland"]) == 0
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    window = [_iso(start), "--end", _iso(start + timedelta(hours=1))]
    assert main(["book", *base, "--domain", "example.com", "create", "--uri", "sip:weekly@example.com",
                 "--start", *window]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["cdr", *base, "export", "--format", "json"]) == 0
    assert '"legs": []' in capsys.readouterr().out
    assert not data.exists()
    stores = open_stores(load_settings(cfg))
    try:
        assert stores.users.list() == ["alice"]
        assert [b.uri for b in stores.bookings.list()] == ["sip:weekly@example.com"]
    finally:
        stores.close()
