"""The server's Prometheus metrics: custom collectors over the live objects, on a registry of their own.

Nothing here counts: each collector reads, at scrape time, the plain counters the sans-I/O parts keep
(:class:`~imsconf.sip.counters.RequestCounters` and the auth counters of the SIP endpoint, the focus's
conference registry and legs, :class:`~imsconf.keys.stats.KeyingStats`, the mixer's
:class:`~imsconf.media.events.MixerStats`) and yields metric families; ``prometheus_client`` renders the
exposition text.  The registry also holds the process and platform collectors; the web layer adds its own
HTTP counter to it.  See docs/decisions/0014-usage-and-metrics.md for the names, labels and cardinality.

Scrapes must run on the event loop's thread (the collectors read the focus's dictionaries); rendering one
costs a walk over the legs, no I/O.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Final

from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.metrics_core import Metric

from imsconf.focus.core import Focus
from imsconf.keys.stats import REKEY_SECONDS_BOUNDS
from imsconf.media.control import MediaControl
from imsconf.media.engine import MediaEngineError
from imsconf.media.events import TICK_SECONDS_BOUNDS, MixerStats
from imsconf.sip.endpoint import SipEndpoint

if TYPE_CHECKING:
    from .server import Server

__all__ = [
    "KEY_MODES",
    "TRANSPORTS",
    "FocusCollector",
    "MediaCollector",
    "SipCollector",
    "build_metrics",
    "build_registry",
]

log = logging.getLogger("imsconf.metrics")

TRANSPORTS: Final = ("udp", "tcp", "tls")
KEY_MODES: Final = ("sdes", "group", "none")


def _histogram_buckets(bounds: Sequence[float], cumulative: Sequence[int]) -> list[tuple[str, float]]:
    """``(le, cumulative count)`` pairs: one per bound, then ``+Inf`` (the last of *cumulative*)."""
    pairs = [(repr(float(b)), float(n)) for b, n in zip(bounds, cumulative, strict=False)]
    pairs.append(("+Inf", float(cumulative[-1]) if cumulative else 0.0))
    return pairs


class SipCollector:
    """``imsconf_sip_requests_total`` and ``imsconf_auth_failures_total`` from the SIP endpoint."""

    def __init__(self, endpoint: SipEndpoint) -> None:
        self.endpoint = endpoint

    def describe(self) -> Iterable[Metric]:
        return self._families()

    def _families(self) -> tuple[CounterMetricFamily, CounterMetricFamily]:
        requests = CounterMetricFamily(
            "imsconf_sip_requests",
            "Incoming SIP requests by method and the class of the final response the server sent",
            labels=["method", "response_class"],
        )
        auth = CounterMetricFamily(
            "imsconf_auth_failures",
            "Digest authentication failures (credentials given and wrong: answered 401)",
        )
        return requests, auth

    def collect(self) -> Iterable[Metric]:
        requests, auth = self._families()
        for method, cls, n in self.endpoint.requests.items():
            requests.add_metric([method, cls], n)
        auth.add_metric([], self.endpoint.counters.get("auth_failed", 0))
        return requests, auth


class FocusCollector:
    """Conferences, participants by transport and key mode, rekeys and epoch age, from the focus."""

    def __init__(self, focus: Focus, clock: Callable[[], float]) -> None:
        """*clock*: the focus's clock (the loop's time in the server), for the epoch age."""
        self.focus = focus
        self.clock = clock

    def describe(self) -> Iterable[Metric]:
        return self._families()

    def _families(
        self,
    ) -> tuple[
        GaugeMetricFamily, GaugeMetricFamily, CounterMetricFamily, HistogramMetricFamily, GaugeMetricFamily
    ]:
        return (
            GaugeMetricFamily("imsconf_conferences", "Live conferences"),
            GaugeMetricFamily(
                "imsconf_participants",
                "Participant legs of live conferences by signalling transport and downlink key mode",
                labels=["transport", "key_mode"],
            ),
            CounterMetricFamily("imsconf_rekeys", "Group key epochs started after a conference's first"),
            HistogramMetricFamily(
                "imsconf_rekey_duration_seconds",
                "From the membership change that caused a rekey to the switch of the last listener moved",
                labels=[],
            ),
            GaugeMetricFamily(
                "imsconf_key_epoch_age_seconds",
                "Age of the oldest live group key epoch of any conference (0: none live)",
            ),
        )

    def collect(self) -> Iterable[Metric]:
        conferences, participants, rekeys, duration, age = self._families()
        focus = self.focus
        registry = focus.registry
        conferences.add_metric([], len(registry))
        counts = {(t, k): 0 for t in TRANSPORTS for k in KEY_MODES}
        for leg in focus.legs.values():
            if registry.get(leg.conf_id) is None:
                continue
            key = (leg.peer.transport.lower(), leg.media.key_mode)
            counts[key] = counts.get(key, 0) + 1
        for (transport, mode), n in sorted(counts.items()):
            participants.add_metric([transport, mode], n)
        keying = focus.keying
        stats = keying.stats
        rekeys.add_metric([], stats.rekeys)
        duration.add_metric(
            [], _histogram_buckets(REKEY_SECONDS_BOUNDS, stats.cumulative_buckets()), stats.duration_sum
        )
        oldest = keying.oldest_epoch_created_at()
        age.add_metric([], 0.0 if oldest is None else max(0.0, self.clock() - oldest))
        return conferences, participants, rekeys, duration, age


class MediaCollector:
    """SRTP errors, RTP packets and the mixer tick, from ``MediaControl.mixer_stats()`` (the in-process
    mixer or the separate mixer process alike)."""

    def __init__(self, media: MediaControl) -> None:
        self.media = media

    def describe(self) -> Iterable[Metric]:
        return self._families()

    def _families(
        self,
    ) -> tuple[CounterMetricFamily, CounterMetricFamily, HistogramMetricFamily, CounterMetricFamily]:
        return (
            CounterMetricFamily("imsconf_srtp_errors", "SRTP packets refused by the mixer", labels=["kind"]),
            CounterMetricFamily("imsconf_rtp_packets", "RTP packets through the mixer", labels=["direction"]),
            HistogramMetricFamily(
                "imsconf_mixer_tick_seconds", "Work time of one 20 ms mixer tick", labels=[]
            ),
            CounterMetricFamily(
                "imsconf_mixer_late_ticks", "Mixer ticks that started late behind their deadline"
            ),
        )

    def collect(self) -> Iterable[Metric]:
        try:
            st: MixerStats = self.media.mixer_stats()
        except MediaEngineError as exc:  # the mixer cannot say now: its metrics are left out this time
            log.debug("event=mixer_stats_unavailable error=%s", exc)
            return ()
        errors, packets, tick, late = self._families()
        errors.add_metric(["auth"], st.srtp_auth_failures)
        errors.add_metric(["replay"], st.srtp_replays)
        packets.add_metric(["in"], st.rtp_received)
        packets.add_metric(["out"], st.rtp_sent)
        tick.add_metric(
            [], _histogram_buckets(TICK_SECONDS_BOUNDS, st.tick_seconds_buckets), st.tick_seconds_sum
        )
        late.add_metric([], st.late_ticks)
        return errors, packets, tick, late


def build_metrics(
    endpoint: SipEndpoint,
    *,
    focus: Focus | None = None,
    media: MediaControl | None = None,
    clock: Callable[[], float] | None = None,
    process: bool = True,
) -> CollectorRegistry:
    """A registry (not the global default one) with the collectors of what is given; *process* adds
    ``ProcessCollector`` and ``PlatformCollector``."""
    registry = CollectorRegistry()
    registry.register(SipCollector(endpoint))
    if focus is not None:
        registry.register(FocusCollector(focus, clock if clock is not None else (lambda: 0.0)))
    if media is not None:
        registry.register(MediaCollector(media))
    if process:
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
    return registry


def build_registry(server: Server) -> CollectorRegistry:
    """The running server's registry: the endpoint, and the focus and its mixer when it runs one."""
    focus = server.focus
    return build_metrics(
        server.endpoint,
        focus=focus,
        media=focus.media if focus is not None else None,
        clock=server.driver.now,
    )
