from __future__ import annotations

import itertools

import pytest

from imsconf.conference import ConferencePolicy, ConferenceRegistry, PolicyError, uri_key
from imsconf.conference.registry import ID_BYTES


def test_ids_are_unguessable_and_uris_resolve() -> None:
    reg = ConferenceRegistry("conf.example.com")
    conf = reg.create(1.0, owner="sip:alice@example.com")
    assert ID_BYTES * 8 >= 80 and len(conf.conf_id) >= 22  # 16 bytes in url-safe base64
    assert conf.uri == f"sips:conf-{conf.conf_id}@conf.example.com"
    assert reg.get(conf.conf_id) is conf
    assert reg.by_uri(conf.uri) is conf
    assert reg.by_uri(f"<sip:conf-{conf.conf_id}@CONF.example.com;isfocus>") is conf
    assert reg.by_uri("sips:conf-other@conf.example.com") is None
    assert reg.by_uri("garbage") is None
    ids = {reg.create(1.0).conf_id for _ in range(200)}
    assert len(ids) == 200


def test_booked_uri_and_conflicts() -> None:
    reg = ConferenceRegistry("example.com")
    conf = reg.create(0.0, uri="sips:weekly@example.com", policy=ConferencePolicy(max_participants=5))
    assert reg.by_uri("sip:weekly@example.com;transport=tls") is conf
    with pytest.raises(PolicyError) as info:
        reg.create(0.0, uri="sips:weekly@example.com")
    assert info.value.status == 409


def test_capacity() -> None:
    reg = ConferenceRegistry("example.com", max_conferences=1)
    reg.create(0.0)
    with pytest.raises(PolicyError) as info:
        reg.create(0.0)
    assert info.value.status == 503


def test_removed_on_close() -> None:
    counter = itertools.count()
    reg = ConferenceRegistry("example.com", token=lambda: f"id{next(counter)}")
    conf = reg.create(0.0, owner="sip:a@example.com")
    (joined,) = conf.join("sip:a@example.com", 1.0)
    reg.apply([joined])
    assert len(reg) == 1
    reg.apply(conf.leave(conf.participants[0].participant_id))
    assert len(reg) == 0 and reg.get("id0") is None and reg.by_uri(conf.uri) is None
    assert reg.remove("id0") is None
    assert list(reg) == []


def test_uri_key() -> None:
    assert uri_key("sips:Conf@Example.COM:5061;isfocus") == ("Conf", "example.com", "5061")
    assert uri_key("sip:[2001:db8::1]") == ("", "[2001:db8::1]", "")
    with pytest.raises(ValueError):
        uri_key("no uri")
