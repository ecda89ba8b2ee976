"""Admission of new requests under load: a call-rate budget and per-source limits, sans-I/O.

Token buckets refilled with ``now``; a request over a limit is answered ``503 Service Unavailable`` with
``Retry-After``, statelessly (no transaction, no media leg, nothing retransmitted), so an overload costs
one parse and one small answer per attempt while established calls keep their media:

* **Sources.** Every new out-of-dialog request from one source address takes a token of that source's
  bucket (``source_rate`` per second, ``source_burst`` deep), as Kamailio's pike counts them. A flooding
  source is held to its rate; the other sources' requests are untouched by it. Sources in ``exempt``
  (trusted proxies, which carry many users) have no source limit.
* **Calls.** New INVITEs that passed their source's limit take one token of the server's call budget
  (``invite_rate`` per second up to ``invite_burst``): the bound on what the server takes on in all.

In-dialog requests, ACK, CANCEL and retransmissions are never limited here: they belong to calls that
were admitted. Memory is bounded: at most ``max_sources`` sources are tracked (the oldest goes first).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["Admission", "OverloadConfig", "Verdict"]


class Verdict(enum.Enum):
    ADMIT = "admit"
    BUSY = "busy"  # the server's call budget is spent: 503 with Retry-After
    SOURCE_BUSY = "source-busy"  # the source is over its rate: 503 with Retry-After


@dataclass(frozen=True, slots=True)
class OverloadConfig:
    # off by default here: the runtime sets them from its settings (sip_call_rate, sip_source_rate)
    invite_rate: float = 0.0  # new calls per second admitted (0: no call budget)
    invite_burst: float = 400.0
    source_rate: float = 0.0  # new out-of-dialog requests per second from one source (0: no limit)
    source_burst: float = 600.0
    retry_after: int = 5  # seconds, in the 503
    max_sources: int = 10000

    def __post_init__(self) -> None:
        values = {
            "invite_rate": self.invite_rate,
            "invite_burst": self.invite_burst,
            "source_rate": self.source_rate,
            "source_burst": self.source_burst,
        }
        for name, value in values.items():
            if value < 0:
                raise ValueError(f"{name} must not be negative, not {value}")
        if self.invite_rate and self.invite_burst < 1:
            raise ValueError("invite_burst must be at least 1 when invite_rate is set")
        if self.source_rate and self.source_burst < 1:
            raise ValueError("source_burst must be at least 1 when source_rate is set")
        if not 1 <= self.retry_after <= 3600:
            raise ValueError("retry_after must be 1 to 3600 seconds")


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float

    def take(self, rate: float, burst: float, now: float) -> bool:
        self.tokens = min(burst, self.tokens + (now - self.at) * rate)
        self.at = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


@dataclass(slots=True)
class Admission:
    """See the module docstring. ``exempt(host)`` names sources without a per-source limit."""

    config: OverloadConfig = field(default_factory=OverloadConfig)
    exempt: Callable[[str], bool] = field(default=lambda host: False)
    counters: dict[str, int] = field(default_factory=dict)
    _calls: _Bucket | None = None
    _sources: dict[str, _Bucket] = field(default_factory=dict)
    _logged: dict[str, float] = field(default_factory=dict)  # host -> when its last line was logged

    def new_request(self, host: str, method: str, now: float) -> Verdict:
        """The verdict on a new out-of-dialog request (not ACK/CANCEL, not a retransmission)."""
        cfg = self.config
        if cfg.source_rate and not self.exempt(host):
            bucket = self._sources.get(host)
            if bucket is None:
                if len(self._sources) >= cfg.max_sources:
                    self._sources.pop(next(iter(self._sources)))
                bucket = self._sources[host] = _Bucket(cfg.source_burst, now)
            if not bucket.take(cfg.source_rate, cfg.source_burst, now):
                self._count("source_busy_503")
                return Verdict.SOURCE_BUSY
        if method == "INVITE" and cfg.invite_rate:
            if self._calls is None:
                self._calls = _Bucket(cfg.invite_burst, now)
            if not self._calls.take(cfg.invite_rate, cfg.invite_burst, now):
                self._count("busy_503")
                return Verdict.BUSY
        return Verdict.ADMIT

    def log_due(self, host: str, now: float, every: float = 10.0) -> bool:
        """True at most once per *every* seconds per source: one log line for a whole flood."""
        last = self._logged.get(host)
        if last is not None and now - last < every:
            return False
        if len(self._logged) >= self.config.max_sources:
            self._logged.clear()
        self._logged[host] = now
        return True

    def _count(self, name: str) -> None:
        self.counters[name] = self.counters.get(name, 0) + 1
