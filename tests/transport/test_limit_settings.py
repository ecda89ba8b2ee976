"""The connection-limit settings: secure defaults, validation, and the transport's view of them."""

from __future__ import annotations

from pathlib import Path

import pytest

from imsconf.app.config import Settings, load_settings
from imsconf.transport.limits import StreamLimits


def test_defaults_reach_the_transport_limits() -> None:
    s = Settings()
    assert (s.sip_max_connections_per_source, s.sip_max_connections) == (64, 0)
    assert (s.sip_idle_unused_seconds, s.sip_idle_seconds) == (32.0, 300.0)
    assert StreamLimits.from_settings(s) == StreamLimits()


def test_toml_and_command_line(tmp_path: Path) -> None:
    cfg = tmp_path / "imsconf.toml"
    cfg.write_text(
        "sip_max_connections_per_source = 8\nsip_max_connections = 500\n"
        "sip_idle_unused_seconds = 10\nsip_idle_seconds = 120.5\n"
    )
    s = load_settings(cfg, {"sip_max_connections_per_source": "16"})
    assert StreamLimits.from_settings(s) == StreamLimits(16, 500, 10.0, 120.5)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("sip_max_connections_per_source", 0),
        ("sip_max_connections_per_source", "many"),
        ("sip_max_connections", -1),
        ("sip_max_connections", True),
        ("sip_idle_unused_seconds", 0),
        ("sip_idle_seconds", "inf"),
        ("sip_idle_seconds", "nan"),
    ],
)
def test_bad_values_name_the_setting(key: str, value: object) -> None:
    with pytest.raises(ValueError, match=key):
        load_settings(None, {key: value})
