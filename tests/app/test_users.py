"""The user store: HA1 only on disk, mode 0600, atomic rewrites, add/remove/list, lookup for digest."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from imsconf.app.users import UserStore, UserStoreError, validate_username
from imsconf.sip.auth import DigestAuthenticator, compute_ha1, compute_response
from imsconf.sip.headers import parse_auth_params

PASSWORD = "correct horse battery staple"


@pytest.fixture
def store(tmp_path: Path) -> UserStore:
    return UserStore(tmp_path / "var" / "users.json")


def test_empty_store(store: UserStore) -> None:
    assert store.list() == []
    assert store.ha1("alice", "example.com", "SHA-256") is None
    assert not store.path.exists()


def test_add_list_remove(store: UserStore) -> None:
    store.add("bob", PASSWORD, "example.com")
    store.add("alice", PASSWORD, "example.com")
    assert store.list() == ["alice", "bob"]
    assert "alice" in store
    store.remove("bob")
    assert store.list() == ["alice"]
    with pytest.raises(KeyError):
        store.remove("bob")
    assert UserStore(store.path).list() == ["alice"]


def test_no_clear_password_on_disk(store: UserStore) -> None:
    store.add("alice", PASSWORD, "example.com")
    raw = store.path.read_bytes()
    assert PASSWORD.encode() not in raw
    assert b"horse" not in raw
    doc = json.loads(raw)
    assert set(doc["users"]["alice"]["ha1"]) == {"MD5", "SHA-256", "SHA-512-256"}
    assert set(doc["users"]["alice"]) == {"realm", "ha1"}


def test_ha1_values(store: UserStore) -> None:
    store.add("alice", PASSWORD, "example.com")
    for alg in ("MD5", "SHA-256", "SHA-512-256"):
        assert store.ha1("alice", "example.com", alg) == compute_ha1("alice", "example.com", PASSWORD, alg)
    assert store.ha1("alice", "other.realm", "SHA-256") is None
    assert store.ha1("alice", "example.com", "SHA-1") is None
    assert store.realm_of("alice") == "example.com"


def test_file_mode_0600_even_with_loose_umask(store: UserStore) -> None:
    old = os.umask(0)
    try:
        store.add("alice", PASSWORD, "example.com")
    finally:
        os.umask(old)
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600


def test_rewrite_is_atomic_replace(store: UserStore) -> None:
    store.add("alice", PASSWORD, "example.com")
    inode = store.path.stat().st_ino
    store.add("bob", PASSWORD, "example.com")
    assert store.path.stat().st_ino != inode  # a new file was renamed over the old one
    leftovers = [p.name for p in store.path.parent.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


def test_failed_write_leaves_old_file_intact(store: UserStore, monkeypatch: pytest.MonkeyPatch) -> None:
    store.add("alice", PASSWORD, "example.com")
    before = store.path.read_bytes()

    def boom(src: object, dst: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        store.add("bob", PASSWORD, "example.com")
    monkeypatch.undo()
    assert store.path.read_bytes() == before
    assert [p for p in store.path.parent.iterdir() if p.name.endswith(".tmp")] == []
    assert UserStore(store.path).list() == ["alice"]


def test_duplicate_and_replace(store: UserStore) -> None:
    store.add("alice", PASSWORD, "example.com")
    with pytest.raises(UserStoreError):
        store.add("alice", "other", "example.com")
    store.add("alice", "other", "example.com", replace=True)
    assert store.ha1("alice", "example.com", "MD5") == compute_ha1("alice", "example.com", "other", "MD5")


def test_sees_changes_made_by_another_instance(store: UserStore) -> None:
    store.add("alice", PASSWORD, "example.com")
    assert store.list() == ["alice"]
    UserStore(store.path).add("carol", PASSWORD, "example.com")
    assert store.list() == ["alice", "carol"]


@pytest.mark.parametrize(
    "name", ["", "a b", "a:b", "a@b", 'a"b', "a\\b", "a\nb", "a<b>", "x" * 129, "%zz", "a#b"]
)
def test_rejects_invalid_usernames(store: UserStore, name: str) -> None:
    with pytest.raises(ValueError):
        store.add(name, PASSWORD, "example.com")
    assert not store.path.exists()


@pytest.mark.parametrize("name", ["alice", "+33123456789", "a.b-c_d", "a%20b", "user;x=1", "o'hara"])
def test_accepts_sip_user_parts(name: str) -> None:
    assert validate_username(name) == name


def test_rejects_bad_realm_and_empty_password(store: UserStore) -> None:
    with pytest.raises(ValueError):
        store.add("alice", PASSWORD, 'bad"realm')
    with pytest.raises(ValueError):
        store.add("alice", "", "example.com")


def test_corrupt_file_error_has_no_content(store: UserStore) -> None:
    store.path.parent.mkdir(parents=True)
    store.path.write_text('{"version": 1, "users": {"alice": {"realm": 1, "ha1": "s3cr3t"}}}')
    with pytest.raises(UserStoreError) as ei:
        store.list()
    assert "s3cr3t" not in str(ei.value)
    store.path.write_text("not json s3cr3t")
    with pytest.raises(UserStoreError) as ei:
        store.list()
    assert "s3cr3t" not in str(ei.value)


def test_store_as_digest_lookup(store: UserStore) -> None:
    store.add("alice", PASSWORD, "example.com")
    auth = DigestAuthenticator(
        "example.com", store.ha1, b"k" * 32, algorithms=("SHA-512-256", "SHA-256", "MD5")
    )
    for i, alg in enumerate(auth.algorithms):
        challenge = auth.challenge(0.0)[i]
        nonce = parse_auth_params(challenge)[1]["nonce"]
        ha1 = compute_ha1("alice", "example.com", PASSWORD, alg)
        resp = compute_response(alg, ha1, "REGISTER", "sip:example.com", nonce, nc="00000001", cnonce="c")
        value = (
            f'Digest username="alice", realm="example.com", nonce="{nonce}", uri="sip:example.com", '
            f'response="{resp}", algorithm={alg}, qop=auth, nc=00000001, cnonce="c"'
        )
        assert auth.verify("REGISTER", value, now=1.0).ok
