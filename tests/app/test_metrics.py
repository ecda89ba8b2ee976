"""The metrics registry: names and types, the mixer's figures, the SIP counters on a bare endpoint.

The collectors over a focus driven through joins and rekeys are in tests/focus/test_focus_metrics.py (they
use the focus harness).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from imsconf.app.config import load_settings
from imsconf.app.focus_wiring import FocusOptions, assemble_focus
from imsconf.app.metrics import MediaCollector, build_metrics
from imsconf.app.server import build_capabilities, start_server
from imsconf.focus.config import FocusConfig
from imsconf.media.control import NullMediaControl
from imsconf.media.engine import MediaEngineError
from imsconf.media.events import TICK_SECONDS_BOUNDS, MixerStats
from imsconf.sip.endpoint import EndpointConfig, SipEndpoint
from imsconf.sip.peer import Peer
from imsconf.usage.store import UsageStore
from usage_records import T0, leg


class StatsMedia(NullMediaControl):
    """A mixer with figures to report (and the group keying calls accepted)."""

    def __init__(self) -> None:
        super().__init__()
        self.stats = MixerStats(
            ticks=100,
            late_ticks=3,
            tick_seconds_sum=0.25,
            tick_seconds_buckets=(10, 40, 90, 97, 99, 100, 100, 100),
            legs=2,
            conferences=1,
            rtp_received=5000,
            rtp_sent=4800,
            srtp_auth_failures=7,
            srtp_replays=2,
        )

    def mixer_stats(self) -> MixerStats:
        return self.stats


class GoneMedia(NullMediaControl):
    def mixer_stats(self) -> MixerStats:
        raise MediaEngineError("no mixer")


def _samples(registry: CollectorRegistry) -> Iterator[Sample]:
    text = generate_latest(registry).decode()
    for family in text_string_to_metric_families(text):
        yield from family.samples


def _value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    found = [s.value for s in _samples(registry) if s.name == name and s.labels == labels]
    assert len(found) == 1, (name, labels, found)
    return found[0]


def _families(registry: CollectorRegistry) -> dict[str, str]:
    text = generate_latest(registry).decode()
    return {f.name: f.type for f in text_string_to_metric_families(text)}


def _endpoint(media: NullMediaControl | None = None) -> tuple[SipEndpoint, CollectorRegistry]:
    control = media if media is not None else StatsMedia()
    focus = assemble_focus(FocusConfig(domain="conf.example.com"), control, FocusOptions())
    ep = SipEndpoint(EndpointConfig(caps=build_capabilities(), local={"udp": ("203.0.113.5", 5060)}), focus)
    return ep, build_metrics(ep, focus=focus, media=control, clock=lambda: 0.0)


def test_names_and_types() -> None:
    _, reg = _endpoint()
    families = _families(reg)
    expected = {
        "imsconf_conferences": "gauge",
        "imsconf_participants": "gauge",
        "imsconf_sip_requests": "counter",
        "imsconf_auth_failures": "counter",
        "imsconf_srtp_errors": "counter",
        "imsconf_rtp_packets": "counter",
        "imsconf_mixer_tick_seconds": "histogram",
        "imsconf_mixer_late_ticks": "counter",
        "imsconf_rekeys": "counter",
        "imsconf_rekey_duration_seconds": "histogram",
        "imsconf_key_epoch_age_seconds": "gauge",
    }
    assert {k: families.get(k) for k in expected} == expected
    assert "python_info" in families and "process_cpu_seconds" in families  # process + platform collectors
    assert _value(reg, "imsconf_conferences") == 0
    assert _value(reg, "imsconf_key_epoch_age_seconds") == 0


_ODD = (
    b"FROBNICATE sip:x@conf.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 198.51.100.9:5070;branch=z9hG4bKodd\r\n"
    b"From: <sip:x@example.net>;tag=1\r\nTo: <sip:x@conf.example.com>\r\nCall-ID: odd@test\r\n"
    b"CSeq: 1 FROBNICATE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
)


def test_sip_counters_on_unknown_and_malformed_requests() -> None:
    ep, reg = _endpoint()
    peer = Peer("udp", "198.51.100.9", 5070)
    ep.receive_datagram(_ODD, peer, 1.0)
    assert _value(reg, "imsconf_sip_requests_total", method="other", response_class="5xx") == 1
    ep.receive_datagram(_ODD.replace(b"CSeq: 1 FROBNICATE", b"CSeq: x FROBNICATE"), peer, 1.0)
    assert _value(reg, "imsconf_sip_requests_total", method="other", response_class="4xx") == 1
    options = _ODD.replace(b"FROBNICATE", b"OPTIONS").replace(b"z9hG4bKodd", b"z9hG4bKopt")
    ep.receive_datagram(options, peer, 1.0)
    assert _value(reg, "imsconf_sip_requests_total", method="OPTIONS", response_class="2xx") == 1
    assert ep.requests.total() == 3


def test_mixer_figures() -> None:
    _, reg = _endpoint()
    assert _value(reg, "imsconf_srtp_errors_total", kind="auth") == 7
    assert _value(reg, "imsconf_srtp_errors_total", kind="replay") == 2
    assert _value(reg, "imsconf_rtp_packets_total", direction="in") == 5000
    assert _value(reg, "imsconf_rtp_packets_total", direction="out") == 4800
    assert _value(reg, "imsconf_mixer_late_ticks_total") == 3
    assert _value(reg, "imsconf_mixer_tick_seconds_bucket", le="0.0005") == 10
    assert _value(reg, "imsconf_mixer_tick_seconds_bucket", le="0.05") == 100
    assert _value(reg, "imsconf_mixer_tick_seconds_bucket", le="+Inf") == 100
    assert _value(reg, "imsconf_mixer_tick_seconds_count") == 100
    assert _value(reg, "imsconf_mixer_tick_seconds_sum") == 0.25
    assert len(TICK_SECONDS_BOUNDS) + 1 == len(StatsMedia().stats.tick_seconds_buckets)


def test_a_mixer_that_cannot_answer_leaves_its_metrics_out() -> None:
    assert list(MediaCollector(GoneMedia()).collect()) == []
    ep, _ = _endpoint()
    reg = build_metrics(ep, media=GoneMedia(), process=False)
    assert "imsconf_rtp_packets" not in _families(reg)


def test_null_media_gives_zeros() -> None:
    ep, _ = _endpoint()
    reg = build_metrics(ep, media=NullMediaControl(), process=False)
    assert _value(reg, "imsconf_rtp_packets_total", direction="in") == 0
    assert _value(reg, "imsconf_mixer_tick_seconds_count") == 0


def test_the_running_server_has_its_registry_and_usage_sink(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = load_settings(
        None,
        {"data_dir": str(tmp_path), "listen": [f"udp:127.0.0.1:{port}"], "bfcp_listen": [], "http": "off"},
    )

    async def scenario() -> None:
        server = await start_server(settings)
        try:
            reg = server.metrics_registry
            assert reg is not None and server.usage is not None
            assert _value(reg, "imsconf_conferences") == 0
            assert _value(reg, "imsconf_rtp_packets_total", direction="in") == 0
            server.usage.leg_ended(leg(T0))
        finally:
            await server.close()
        with UsageStore.open(tmp_path) as store:
            assert store.records(None, None)[0] == (leg(T0),)

    asyncio.run(scenario())


def test_the_web_layer_can_add_its_counter_and_names_are_guarded() -> None:
    _, reg = _endpoint()
    http = Counter("imsconf_http_requests", "HTTP requests", ["route", "status"], registry=reg)
    http.labels("/metrics", "200").inc()
    assert _value(reg, "imsconf_http_requests_total", route="/metrics", status="200") == 1
    with pytest.raises(ValueError, match="Duplicated"):
        Counter("imsconf_sip_requests", "clash", registry=reg)  # the collectors' names are known
