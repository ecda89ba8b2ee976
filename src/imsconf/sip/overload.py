"""Admission of new requests under load: a call-rate budget and per-source limits, sans-I/O.

Two token buckets, both refilled with ``now``:

* **Calls.** New INVITEs (out of dialog, not a retransmission) take one token of a budget that refills at
  ``invite_rate`` per second up to ``invite_burst``. Without a token the INVITE is answered ``503 Service
  Unavailable`` with ``Retry-After``, statelessly (no transaction, no media), so an overload costs the
  server one parse and one small answer per attempt while established calls keep their media.
* **Sources.** Every new out-of-dialog request from one source address takes a token of that source's
  bucket (``source_rate`` per second, ``source_burst`` deep). A source that empties it is *dropped*, not
  answered, for ``source_block`` seconds, as Kamailio's pike module does: a flooder learns nothing and
  costs no answers. In-dialog requests, ACK and CANCEL are never limited here (they belong to calls that
  were admitted). Sources in ``exempt`` (trusted proxies, which carry many users) skip the source limit.

Memory is bounded: at most ``max_sources`` sources are tracked (the oldest entry goes first).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["Admission", "OverloadConfig", "Verdict"]


class Verdict(enum.Enum):
    ADMIT = "admit"
    BUSY = "busy"  # answer 503 with Retry-After
    DROP = "drop"  # no answer at all
    BLOCK = "block"  # no answer, and the source's block starts with this request (log it once)


@dataclass(frozen=True, slots=True)
class OverloadConfig:
    invite_rate: float = 800.0  # new calls per second admitted (0: no call budget)
    invite_burst: float = 400.0
    source_rate: float = 200.0  # new out-of-dialog requests per second from one source (0: no limit)
    source_burst: float = 400.0
    source_block: float = 5.0  # seconds a source over its rate is dropped
    retry_after: int = 5  # seconds, in the 503
    max_sources: int = 10000

    def __post_init__(self) -> None:
        values = {
            "invite_rate": self.invite_rate,
            "invite_burst": self.invite_burst,
            "source_rate": self.source_rate,
            "source_burst": self.source_burst,
            "source_block": self.source_block,
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
    _blocked: dict[str, float] = field(default_factory=dict)  # host -> until

    def new_request(self, host: str, method: str, now: float) -> Verdict:
        """The verdict on a new out-of-dialog request (not ACK/CANCEL, not a retransmission)."""
        cfg = self.config
        if cfg.source_rate and not self.exempt(host):
            until = self._blocked.get(host)
            if until is not None:
                if now < until:
                    self._count("dropped_source")
                    return Verdict.DROP
                del self._blocked[host]
            bucket = self._sources.get(host)
            if bucket is None:
                if len(self._sources) >= cfg.max_sources:
                    self._sources.pop(next(iter(self._sources)))
                bucket = self._sources[host] = _Bucket(cfg.source_burst, now)
            if not bucket.take(cfg.source_rate, cfg.source_burst, now):
                if len(self._blocked) >= cfg.max_sources:
                    self._blocked.pop(next(iter(self._blocked)))
                self._blocked[host] = now + cfg.source_block
                self._count("sources_blocked")
                self._count("dropped_source")
                return Verdict.BLOCK
        if method == "INVITE" and cfg.invite_rate:
            if self._calls is None:
                self._calls = _Bucket(cfg.invite_burst, now)
            if not self._calls.take(cfg.invite_rate, cfg.invite_burst, now):
                self._count("busy_503")
                return Verdict.BUSY
        return Verdict.ADMIT

    def _count(self, name: str) -> None:
        self.counters[name] = self.counters.get(name, 0) + 1
