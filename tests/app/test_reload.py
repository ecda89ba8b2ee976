"""What a SIGHUP re-reads, piece by piece: the settings plan, the users file, the server certificate, and the
Reloader over a started server (the whole of it on the real process: tests/integration/test_lifecycle.py)."""

from __future__ import annotations

import asyncio
import logging
import shutil
import socket
import ssl
from pathlib import Path

import pytest

from imsconf.app.config import RELOADABLE, Listen, Settings, load_settings, reload_plan
from imsconf.app.pki import (
    certificate_fingerprint,
    ensure_dev_pki,
    issue_cert,
    reload_server_certificate,
    server_ssl_context,
)
from imsconf.app.reload import Reloader
from imsconf.app.server import start_server
from imsconf.app.systemd import ServiceNotifier
from imsconf.app.users import UserStore, UserStoreError, authenticator_for
from imsconf.keys.policy import DownlinkMode

# ---- settings ------------------------------------------------------------------------------------------


def test_drain_seconds_default_and_bounds(tmp_path: Path) -> None:
    assert Settings().drain_seconds == 2.0
    cfg = tmp_path / "c.toml"
    cfg.write_text("drain_seconds = 0.5\n")
    assert load_settings(cfg).drain_seconds == 0.5
    assert load_settings(None, {"drain_seconds": "7"}).drain_seconds == 7.0
    for bad in ("-1", "true", "soon", "4000"):
        cfg.write_text(f"drain_seconds = {bad}\n" if bad != "soon" else 'drain_seconds = "soon"\n')
        with pytest.raises(ValueError, match="drain_seconds"):
            load_settings(cfg)


def test_reload_plan_takes_reloadable_changes_and_names_the_rest() -> None:
    old = Settings(log_level="info", downlink="per-participant")
    new = Settings(
        log_level="debug",
        downlink="group",
        rekey="on-join",
        auth_max_failures=9,
        media_host="127.0.0.2",
        listen=(Listen("udp", "127.0.0.1", 5999),),
    )
    plan = reload_plan(old, new)
    assert plan.changed == ("log_level", "auth_max_failures", "downlink", "rekey")
    assert plan.needs_restart == ("listen", "media_host")
    assert plan.settings.log_level == "debug" and plan.settings.downlink == "group"
    assert plan.settings.listen == old.listen and plan.settings.media_host == "127.0.0.1"
    assert set(plan.changed) <= set(RELOADABLE)


def test_reload_plan_of_an_unchanged_file_changes_nothing() -> None:
    plan = reload_plan(Settings(), Settings())
    assert plan.changed == () and plan.needs_restart == () and plan.settings == Settings()


def test_a_realm_that_follows_a_changed_domain_waits_for_the_restart() -> None:
    plan = reload_plan(Settings(domain="a.example"), Settings(domain="b.example"))
    assert plan.changed == () and plan.needs_restart == ("domain", "realm")
    assert plan.settings.realm == "a.example"


# ---- users ---------------------------------------------------------------------------------------------


def test_users_reload_tells_a_change_and_refuses_a_corrupt_file(tmp_path: Path) -> None:
    store = UserStore(tmp_path / "users.json")
    store.add("alice", "pw", "localhost")
    assert store.reload() is False
    UserStore(store.path).add("bob", "pw2", "localhost")  # another writer (the CLI)
    assert store.reload() is True and "bob" in store
    UserStore(store.path).add("bob", "new password", "localhost", replace=True)
    assert store.reload() is True
    good = store.ha1("bob", "localhost", "SHA-256")
    store.path.write_text("{broken")
    with pytest.raises(UserStoreError):
        store.reload()
    store.path.unlink()
    assert store.reload() is True and store.list() == []
    assert good is not None


def test_authenticator_for_follows_auth_realm_and_algorithms(tmp_path: Path) -> None:
    users = UserStore(tmp_path / "users.json")
    assert authenticator_for(Settings(auth="none"), users) is None
    auth = authenticator_for(Settings(realm="r.example", digest_algorithms=("MD5",)), users)
    assert auth is not None and auth.realm == "r.example" and auth.algorithms == ("MD5",)


# ---- certificates --------------------------------------------------------------------------------------


def test_reload_server_certificate_swaps_the_live_context_and_refuses_a_bad_pair(tmp_path: Path) -> None:
    pki = ensure_dev_pki(tmp_path, [])
    ctx = server_ssl_context(pki)
    first = certificate_fingerprint(pki.server_cert)
    cert, key = issue_cert(pki, "next", tmp_path / "new", client=False, hostnames=["localhost"])
    shutil.copyfile(cert, pki.server_cert)
    shutil.copyfile(key, pki.server_key)
    second = reload_server_certificate(ctx, pki)
    assert second != first and second == certificate_fingerprint(pki.server_cert)
    # a key that does not match the certificate: refused, the context keeps the last good pair
    other, other_key = issue_cert(pki, "other", tmp_path / "other", client=False)
    shutil.copyfile(other_key, pki.server_key)
    with pytest.raises(ssl.SSLError):
        reload_server_certificate(ctx, pki)
    pki.server_cert.write_text("not a certificate\n")
    with pytest.raises((ssl.SSLError, ValueError)):
        reload_server_certificate(ctx, pki)
    assert other.exists()


# ---- the Reloader over a started server ----------------------------------------------------------------


def test_reloader_applies_settings_users_and_keeps_the_old_on_a_broken_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = tmp_path / "imsconf.toml"
    data_dir = (tmp_path / "var").as_posix()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg.write_text(
        f'data_dir = "{data_dir}"\nbfcp_listen = []\nhttp = "off"\nlisten = ["udp:127.0.0.1:{port}"]\n'
    )

    async def scenario() -> None:
        server = await start_server(load_settings(cfg))
        try:
            reloader = Reloader(server, ServiceNotifier({}), cfg, {})
            old_auth = server.endpoint.auth
            cfg.write_text(
                cfg.read_text()
                + 'log_level = "debug"\nrealm = "r.example"\nauth_block_seconds = 5\ndownlink = "group"\n'
                + 'media_host = "127.0.0.2"\n'
            )
            assert isinstance(server.users, UserStore)  # the SQLite default: the JSON users file
            UserStore(server.users.path).add("carol", "pw", "r.example")
            with caplog.at_level(logging.INFO):
                assert reloader.reload()
                assert logging.getLogger().level == logging.DEBUG
            assert "event=reloaded changed=realm,log_level,auth_block_seconds,downlink,users" in caplog.text
            assert "event=reload_needs_restart settings=media_host" in caplog.text
            assert server.settings.realm == "r.example" and server.settings.media_host == "127.0.0.1"
            assert server.endpoint.auth is not old_auth and server.endpoint.auth is not None
            assert server.endpoint.auth.realm == "r.example"
            assert server.endpoint.config.throttle.block == 5.0
            assert server.focus is not None and server.focus.keying.mode is DownlinkMode.GROUP
            # broken: nothing changes
            before = server.settings
            cfg.write_text(cfg.read_text() + "no_such_setting = 1\n")
            caplog.clear()
            assert not reloader.reload()
            assert "event=reload_failed" in caplog.text and "no_such_setting" in caplog.text
            assert server.settings is before
            cfg.write_text(cfg.read_text().replace("no_such_setting = 1\n", ""))
            server.users.path.write_text("{")
            caplog.clear()
            assert not reloader.reload()
            assert "event=reload_failed" in caplog.text and "UserStoreError" in caplog.text
        finally:
            logging.getLogger().setLevel(logging.WARNING)
            await server.close()

    asyncio.run(scenario())
