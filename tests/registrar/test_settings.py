"""The registrar's settings (app/config.py) and how the runtime turns them into the core's config."""

from __future__ import annotations

from pathlib import Path

import pytest

from imsconf.app.config import Listen, Settings, load_settings
from imsconf.app.server import registrar_config


def test_auto_is_on_without_an_outbound_proxy() -> None:
    assert Settings().registrar == "auto" and Settings().registrar_enabled
    assert not Settings(outbound_proxy="sip:scscf.example.com;lr").registrar_enabled
    assert Settings(registrar="on", outbound_proxy="sip:scscf.example.com;lr").registrar_enabled
    assert not Settings(registrar="off").registrar_enabled


@pytest.mark.parametrize("bad", ["scscf.example.com:5060", "tel:+123", "sip:", "http://x"])
def test_outbound_proxy_must_be_a_sip_uri(bad: str) -> None:
    with pytest.raises(ValueError, match="outbound_proxy"):
        Settings(outbound_proxy=bad)


def test_expiry_bounds_are_checked() -> None:
    with pytest.raises(ValueError, match="register_min_expires"):
        Settings(register_min_expires=600, register_default_expires=300)
    with pytest.raises(ValueError, match="register_max_bindings"):
        Settings(register_max_bindings=0)


def test_toml_values(tmp_path: Path) -> None:
    cfg = tmp_path / "imsconf.toml"
    cfg.write_text(
        'registrar = "ON"\noutbound_proxy = "sip:scscf.example.com:5060;lr"\nregister_min_expires = 30\n'
        "register_default_expires = 600\nregister_max_expires = 7200\nregister_max_bindings = 3\n"
    )
    s = load_settings(cfg)
    assert (s.registrar, s.outbound_proxy) == ("on", "sip:scscf.example.com:5060;lr")
    assert (s.register_min_expires, s.register_default_expires, s.register_max_expires) == (30, 600, 7200)
    assert s.register_max_bindings == 3
    cfg.write_text("registrar = false\n")
    assert load_settings(cfg).registrar == "off"
    cfg.write_text('registrar = "maybe"\n')
    with pytest.raises(ValueError, match="registrar"):
        load_settings(cfg)
    cfg.write_text("register_min_expires = -5\n")
    with pytest.raises(ValueError, match="register_min_expires"):
        load_settings(cfg)


def test_registrar_config_serves_the_domain_realm_and_listen_hosts() -> None:
    s = Settings(
        domain="Example.COM",
        realm="auth.example.com",
        listen=(Listen("udp", "192.0.2.1", 5060), Listen("tls", "0.0.0.0", 5061)),
        register_min_expires=30,
        register_max_bindings=4,
    )
    cfg = registrar_config(s, authenticated=True)
    assert cfg.domains == frozenset({"example.com", "auth.example.com", "192.0.2.1"})
    assert (cfg.min_expires, cfg.max_bindings, cfg.require_auth) == (30, 4, True)
    assert not registrar_config(s, authenticated=False).require_auth
