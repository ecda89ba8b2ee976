"""The metrics collectors over a focus driven through joins, leaves and a rekey (the focus harness).

Names, types and the mixer's figures are in tests/app/test_metrics.py.
"""

from __future__ import annotations

from collections.abc import Iterator

from helpers import DOMAIN, FACTORY, UA, Harness, answer_to, requests, sdp_offer
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from imsconf.app.focus_wiring import FocusOptions
from imsconf.app.metrics import KEY_MODES, TRANSPORTS, build_metrics
from imsconf.focus.config import FocusConfig
from imsconf.keys import DownlinkMode, KeyManagerConfig, RekeyPolicy
from imsconf.media.events import GroupStreamConfirmed
from imsconf.sip.message import Request


def _samples(registry: CollectorRegistry) -> Iterator[Sample]:
    text = generate_latest(registry).decode()
    for family in text_string_to_metric_families(text):
        yield from family.samples


def _value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    found = [s.value for s in _samples(registry) if s.name == name and s.labels == labels]
    assert len(found) == 1, (name, labels, found)
    return found[0]


def _group_harness() -> Harness:
    options = FocusOptions(
        downlink=DownlinkMode.parse("group"),
        rekey=RekeyPolicy.parse("both"),
        key_config=KeyManagerConfig(confirm_timeout=12.0),
    )
    return Harness(options=options)


def _registry(h: Harness) -> CollectorRegistry:
    return build_metrics(h.ep, focus=h.focus, media=h.focus.media, clock=lambda: h.now, process=False)


def _answer_key_offer(h: Harness, ua: UA, invite: Request) -> None:
    h.send(ua, answer_to(invite, 200, body=sdp_offer(version=ua.cseq + 10)))


def test_participants_follow_the_live_conference() -> None:
    config = FocusConfig(
        domain=DOMAIN, media_host="198.18.0.1", allow_plain_rtp=True, allow_sdes_over_insecure=True
    )
    h = Harness(config)
    reg = _registry(h)
    assert _value(reg, "imsconf_conferences") == 0
    assert all(
        _value(reg, "imsconf_participants", transport=t, key_mode=k) == 0
        for t in TRANSPORTS
        for k in KEY_MODES
    )
    alice = h.ua("alice", "tls")
    _, uri = h.create(alice)
    bob = h.ua("bob", "udp")
    h.join(bob, uri)
    carol = h.ua("carol", "tcp")
    h.join(carol, uri, sdp_offer(srtp=False))
    conf = h.conference(uri)
    assert _value(reg, "imsconf_conferences") == 1
    by_label = {
        (s.labels["transport"], s.labels["key_mode"]): s.value
        for s in _samples(reg)
        if s.name == "imsconf_participants"
    }
    assert sum(by_label.values()) == len(conf.participants) == 3
    assert by_label[("tls", "sdes")] == 1 and by_label[("udp", "sdes")] == 1
    assert by_label[("tcp", "none")] == 1
    h.send(bob, bob.bye())
    assert _value(reg, "imsconf_participants", transport="udp", key_mode="sdes") == 0
    assert _value(reg, "imsconf_conferences") == 1


def test_sip_request_counters_move() -> None:
    h = Harness()
    reg = _registry(h)
    alice = h.ua("alice", "tls")
    h.create(alice)
    assert _value(reg, "imsconf_sip_requests_total", method="INVITE", response_class="2xx") == 1
    bob = h.ua("bob")
    assert h.call(bob, "sip:conf-nonexistent@conf.example.com").status == 404
    assert _value(reg, "imsconf_sip_requests_total", method="INVITE", response_class="4xx") == 1
    h.send(alice, alice.bye())
    assert _value(reg, "imsconf_sip_requests_total", method="BYE", response_class="2xx") == 1
    assert _value(reg, "imsconf_auth_failures_total") == 0


def test_rekeys_and_epoch_age() -> None:
    h = _group_harness()
    reg = _registry(h)
    alice = h.ua("alice")
    resp = h.call(alice, FACTORY, sdp_offer())
    assert resp.status == 200 and alice.remote_target is not None
    uri = alice.remote_target
    [(offer, _)] = requests(h.send(alice, alice.ack()), "INVITE")
    _answer_key_offer(h, alice, offer)
    a_leg = next(iter(h.focus.legs))
    h.focus.on_media_event(GroupStreamConfirmed(a_leg, 1))
    h.advance(0.001)
    assert _value(reg, "imsconf_rekeys_total") == 0  # the first epoch is not a rekey
    h.advance(5.0)
    assert _value(reg, "imsconf_key_epoch_age_seconds") >= 5.0
    bob = h.ua("bob")
    assert h.call(bob, uri, sdp_offer()).status == 200
    invites = [r for r, _ in requests(h.send(bob, bob.ack()), "INVITE")]
    assert _value(reg, "imsconf_rekeys_total") == 1
    h.advance(0.3)
    for r in invites:
        _answer_key_offer(h, alice if "alice" in r.uri else bob, r)
    assert _value(reg, "imsconf_rekey_duration_seconds_count") == 1
    assert 0.29 <= _value(reg, "imsconf_rekey_duration_seconds_sum") < 1.0
    assert _value(reg, "imsconf_rekey_duration_seconds_bucket", le="0.25") == 0
    assert _value(reg, "imsconf_rekey_duration_seconds_bucket", le="0.5") == 1
    assert _value(reg, "imsconf_rekey_duration_seconds_bucket", le="+Inf") == 1
    assert _value(reg, "imsconf_participants", transport="tls", key_mode="group") == 2
