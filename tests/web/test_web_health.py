"""Health probes, the console's files, /metrics with the request counter, and the usage records route."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Gauge

from imsconf.usage import ConferenceUsage, LegUsage
from web_harness import ServedApi, raw_exchange, with_deps

T0 = datetime(2027, 3, 1, 12, 0, 0, tzinfo=UTC)
URI = "sip:c1@example.com"


def test_health_live_and_ready(tmp_path: Path) -> None:
    state = {"ready": False}
    api = ServedApi(tmp_path, with_deps(ready=lambda: state["ready"]))
    try:
        status, body, resp = api.request("GET", "/health/live", token=None)
        assert (status, body) == (200, {"status": "ok"})
        assert api.request("GET", "/health/ready", token=None)[:2] == (503, {"status": "unavailable"})
        state["ready"] = True
        assert api.request("GET", "/health/ready", token=None)[:2] == (200, {"status": "ok"})
        assert resp.getheader("Server") == "imsconf" and resp.getheader("Cache-Control") == "no-store"
        assert api.request("POST", "/health/live", token=None)[0] == 401  # a wrong method asks for a token
        assert api.request("POST", "/health/live")[0] == 405
    finally:
        api.close()


def test_console_is_served_without_a_token(tmp_path: Path) -> None:
    api = ServedApi(tmp_path, with_deps())
    try:
        for path in ("/", "/console/index.html"):
            status, _, resp = api.request("GET", path, token=None)
            assert status == 200 and resp.getheader("Content-Type", "").startswith("text/html")
        reply = raw_exchange(api.port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert b"imsconf console" in reply and b"X-Content-Type-Options: nosniff" in reply
        for path in ("/console/nothing.js", "/console/..%2Fapp.py", "/console/.hidden", "/console/"):
            assert api.request("GET", path, token=None)[0] in (401, 404), path
            assert api.request("GET", path)[0] == 404, path
    finally:
        api.close()


def test_metrics_and_the_request_counter(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    Gauge("imsconf_test_gauge", "a gauge of the runtime", registry=registry).set(7)
    api = ServedApi(tmp_path, with_deps(registry=registry))
    try:
        assert api.request("GET", "/metrics", token=None)[0] == 401
        api.request("GET", "/health/live", token=None)
        api.request("GET", "/api/v1/bookings/abcdefgh12")  # no booking store: 503
        api.request("GET", "/no/such/path")
        status, _, resp = api.request("GET", "/metrics", token=api.tokens.viewer)
        assert status == 200 and resp.getheader("Content-Type", "").startswith("text/plain")
        text = api.request_text("/metrics")
        assert "imsconf_test_gauge 7.0" in text
        assert 'imsconf_http_requests_total{method="GET",route="/health/live",status="2xx"} 1.0' in text
        assert 'route="/api/v1/bookings/{id}",status="5xx"} 1.0' in text
        assert 'route="unmatched",status="4xx"} 1.0' in text
        assert 'route="/metrics",status="4xx"} 1.0' in text  # the 401
    finally:
        api.close()


def test_metrics_without_auth_and_without_a_registry(tmp_path: Path) -> None:
    api = ServedApi(tmp_path / "a", with_deps(registry=CollectorRegistry(), metrics_auth=False))
    try:
        assert api.request("GET", "/metrics", token=None)[0] == 200
    finally:
        api.close()
    api = ServedApi(tmp_path / "b", with_deps())
    try:
        assert api.request("GET", "/metrics")[0] == 503
    finally:
        api.close()


class Records:
    def __init__(self) -> None:
        self.asked: list[tuple[datetime | None, datetime | None]] = []

    def records(
        self, since: datetime | None, until: datetime | None
    ) -> tuple[tuple[LegUsage, ...], tuple[ConferenceUsage, ...]]:
        self.asked.append((since, until))
        end = T0 + timedelta(seconds=90)
        suite = "AES_CM_128_HMAC_SHA1_80"
        leg = LegUsage("c1", URI, "p1", "anonymous", True, T0, end, "bye", "PCMU", suite, "sdes", 4500, 4490,
                       0.002, 1.5)  # fmt: skip
        conf = ConferenceUsage("c1", URI, None, T0, T0 + timedelta(minutes=2), "last-left", 2, False)
        return (leg,), (conf,)


def test_usage_records(tmp_path: Path) -> None:
    reader = Records()
    api = ServedApi(tmp_path, with_deps(usage=reader))
    try:
        window = "since=2027-03-01T00:00:00Z&until=2027-03-02T00:00:00Z"
        status, body, _ = api.request("GET", f"/api/v1/cdrs?{window}", token=api.tokens.viewer)
        assert status == 200
        assert reader.asked == [(datetime(2027, 3, 1, tzinfo=UTC), datetime(2027, 3, 2, tzinfo=UTC))]
        (leg,) = body["legs"]
        assert leg["joined"] == "2027-03-01T12:00:00Z" and leg["left"] == "2027-03-01T12:01:30Z"
        assert leg["duration"] == 90.0 and leg["identity"] == "anonymous" and leg["privacy"] is True
        (conf,) = body["conferences"]
        assert conf["ended"] == "2027-03-01T12:02:00Z" and conf["participants"] == 2
        assert api.request("GET", "/api/v1/cdrs")[0] == 200
        assert reader.asked[-1] == (None, None)
    finally:
        api.close()


@pytest.mark.parametrize(
    ("query", "field"),
    [("since=yesterday", "since"), ("until=2027-13-01T00:00:00Z", "until"), ("since=2027-03-01T00:00:00",
     "since"), ("colour=red", "colour"), ("since=2027-03-02T00:00:00Z&until=2027-03-01T00:00:00Z", "until"),
     ("since=2027-03-01T00:00:00Z&since=2027-03-01T00:00:00Z", "since")],
)  # fmt: skip
def test_usage_records_bad_times_are_400(tmp_path: Path, query: str, field: str) -> None:
    api = ServedApi(tmp_path, with_deps(usage=Records()))
    try:
        status, body, _ = api.request("GET", f"/api/v1/cdrs?{query}")
        assert status == 400 and field in [e["field"] for e in body["errors"]], body
        assert api.request("GET", "/api/v1/cdrs", token=None)[0] == 401
    finally:
        api.close()
