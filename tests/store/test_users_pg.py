"""Digest users in PostgreSQL: the same rules as the JSON file store, shared by two nodes (each sees the
other's change on reload), no clear password in the table."""

from __future__ import annotations

import pytest

from imsconf.store.users import UserBackend, UserStoreError
from pg import PgCluster


def open_users(cluster: PgCluster, dsn: str) -> UserBackend:
    from imsconf.store.pg import PgDatabase, read_password
    from imsconf.store.users_pg import PgUserStore

    return PgUserStore(PgDatabase(dsn, read_password(cluster.password_file)))


def test_add_remove_and_reload_across_nodes(pg_cluster: PgCluster, pg_dsn: str) -> None:
    a, b = open_users(pg_cluster, pg_dsn), open_users(pg_cluster, pg_dsn)
    a.add("alice", "wonderland", "example.com")
    assert a.list() == ["alice"] and "alice" not in b  # b reads on reload (a SIGHUP)
    assert b.reload() and "alice" in b and not b.reload()
    assert b.ha1("alice", "example.com", "MD5") == a.ha1("alice", "example.com", "MD5") is not None
    assert b.ha1("alice", "other.realm", "MD5") is None
    with pytest.raises(UserStoreError, match="exists"):
        b.add("alice", "again", "example.com")
    b.add("alice", "again", "example.com", replace=True)
    assert a.reload() and a.ha1("alice", "example.com", "MD5") != b.ha1("nobody", "example.com", "MD5")
    with pytest.raises(ValueError):
        a.add("bad user", "x", "example.com")
    with pytest.raises(ValueError):
        a.add("bob", "", "example.com")
    a.remove("alice")
    with pytest.raises(KeyError):
        a.remove("alice")
    assert b.reload() and b.list() == []
    a.close()
    b.close()


def test_no_clear_password_in_the_table(pg_cluster: PgCluster, pg_dsn: str) -> None:
    from imsconf.store.pg import PgDatabase, read_password

    users = open_users(pg_cluster, pg_dsn)
    users.add("carol", "s3cret-pass-phrase", "example.com")
    db = PgDatabase(pg_dsn, read_password(pg_cluster.password_file))
    with db.transaction() as cur:
        cur.execute("SELECT username, realm, algorithm, ha1 FROM digest_users")
        rows = cur.fetchall()
    db.close()
    users.close()
    assert len(rows) == 3 and not any("s3cret" in str(v) for row in rows for v in row)
