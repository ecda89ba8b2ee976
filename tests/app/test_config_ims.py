"""The IMS settings: outbound_proxy (a SIP URI) and trusted_peers (IP addresses and networks)."""

from __future__ import annotations

from pathlib import Path

import pytest

from imsconf.app.config import Settings, load_settings


def test_ims_settings_from_toml(tmp_path: Path) -> None:
    cfg = tmp_path / "imsconf.toml"
    cfg.write_text(
        'outbound_proxy = "sip:scscf.ims.example.net;lr"\ntrusted_peers = ["10.0.0.0/8", "192.0.2.7"]\n'
    )
    s = load_settings(cfg)
    assert s.outbound_proxy == "sip:scscf.ims.example.net;lr"
    assert s.trusted_peers == ("10.0.0.0/8", "192.0.2.7")
    assert Settings().outbound_proxy is None and Settings().trusted_peers == ()


@pytest.mark.parametrize("bad", ["http://x", "sip:", "not a uri"])
def test_bad_outbound_proxy_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="outbound_proxy"):
        load_settings(None, {"outbound_proxy": bad})


def test_bad_trusted_peer_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"trusted_peers: 'scscf\.example\.net'"):
        load_settings(None, {"trusted_peers": ["scscf.example.net"]})
    with pytest.raises(ValueError, match="trusted_peers"):
        load_settings(None, {"trusted_peers": 5})
    assert load_settings(None, {"trusted_peers": "127.0.0.2, ::1"}).trusted_peers == ("127.0.0.2", "::1")


def test_front_peers_are_addresses_like_trusted_peers() -> None:
    """front_peers (the cluster front, whose takeover marker is believed) parse and fail as trusted_peers."""
    assert Settings().front_peers == ()
    assert load_settings(None, {"front_peers": "10.0.0.1"}).front_peers == ("10.0.0.1",)
    with pytest.raises(ValueError, match=r"front_peers: 'front\.example\.net'"):
        load_settings(None, {"front_peers": ["front.example.net"]})
