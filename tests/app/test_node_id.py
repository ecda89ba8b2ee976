"""The node id setting: ad hoc conference URIs carry it (conf-<node>-<random>) for a routing proxy."""

from __future__ import annotations

import pytest

from imsconf.app.config import Settings, load_settings
from imsconf.app.focus_wiring import FocusOptions, assemble_focus
from imsconf.focus.config import FocusConfig
from imsconf.media.control import NullMediaControl


def _conference_uri(config: FocusConfig) -> str:
    focus = assemble_focus(config, NullMediaControl(), FocusOptions())
    return focus.registry.create(0.0).uri


def test_without_node_id_uris_stay_as_before() -> None:
    uri = _conference_uri(FocusConfig(domain="conf.example.com"))
    assert uri.startswith("sip:conf-") and uri.endswith("@conf.example.com")
    token = uri[len("sip:conf-") : -len("@conf.example.com")]
    assert len(token) >= 14  # >= 80 random bits, base64url


def test_node_id_is_the_hint_in_the_user_part() -> None:
    uri = _conference_uri(FocusConfig(domain="conf.example.com", node_id="b2"))
    assert uri.startswith("sip:conf-b2-") and uri.endswith("@conf.example.com")
    assert len(uri[len("sip:conf-b2-") : -len("@conf.example.com")]) >= 14


def test_node_id_setting_checked() -> None:
    assert Settings(node_id="a1").node_id == "a1"
    assert load_settings(None, {"node_id": "n7"}).node_id == "n7"
    for bad in ("A", "a-b", "x" * 17, "a.b"):
        with pytest.raises(ValueError, match="node_id"):
            Settings(node_id=bad)
