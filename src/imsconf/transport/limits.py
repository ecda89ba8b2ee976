"""Limits on SIP stream (TCP/TLS) connections: per-source and global caps, idle times.

The reasoning and the defaults are in docs/decisions/0006-sip-connection-limits.md.  :class:`Admission`
keeps the counts (per source and in all) and refuses a new inbound connection beyond either cap; it logs a
refused source at most once per interval, with the number refused since, so a flood cannot flood the log.
"""

from __future__ import annotations

import ipaddress
import logging
import resource
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger("imsconf.transport")

# descriptors kept aside from the share of SIP connections: listeners, log and database files, the
# mixer's control connection, BFCP listeners
RESERVED_FDS = 64
# of what is left, this fraction may be SIP connections; the rest is for RTP/RTCP (a participant has a SIP
# connection and at least an RTP and an RTCP socket, four with video) and BFCP connections
SIP_SHARE = 1 / 3
# a RLIMIT_NOFILE of "unlimited" is taken as this many descriptors
UNLIMITED_FDS = 1 << 20
REFUSAL_LOG_INTERVAL = 60.0
_MAX_LOGGED_SOURCES = 4096


def default_max_connections(soft_limit: int | None = None) -> int:
    """The global cap on SIP stream connections derived from the soft RLIMIT_NOFILE (*soft_limit*)."""
    if soft_limit is None:
        soft_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft_limit == resource.RLIM_INFINITY or soft_limit < 0:
        soft_limit = UNLIMITED_FDS
    return max(16, int((soft_limit - RESERVED_FDS) * SIP_SHARE))


class StreamLimitSettings(Protocol):
    """The settings :meth:`StreamLimits.from_settings` reads (``imsconf.app.config.Settings`` has them)."""

    @property
    def sip_max_connections_per_source(self) -> int: ...

    @property
    def sip_max_connections(self) -> int: ...

    @property
    def sip_idle_unused_seconds(self) -> float: ...

    @property
    def sip_idle_seconds(self) -> float: ...


@dataclass(frozen=True, slots=True)
class StreamLimits:
    """Caps and idle times for SIP TCP/TLS connections.

    *max_per_source*: concurrent inbound connections from one source (an IPv4 address, an IPv6 /64).
    *max_total*: all stream connections, inbound and outbound; 0 derives it from RLIMIT_NOFILE.
    *idle_unused*: an inbound connection that has carried no complete SIP message is closed this long
    after it was opened (or after its last keep-alive); *idle_used*: a connection that has carried
    messages is closed this long after the last one (RFC 5626 keep-alives count).
    """

    max_per_source: int = 64
    max_total: int = 0
    idle_unused: float = 32.0
    idle_used: float = 300.0

    def __post_init__(self) -> None:
        if self.max_per_source < 1 or self.max_total < 0:
            raise ValueError("connection caps must be positive (max_total 0: derived)")
        if not (self.idle_unused > 0 and self.idle_used > 0):
            raise ValueError("idle times must be positive")

    @classmethod
    def from_settings(cls, settings: StreamLimitSettings) -> StreamLimits:
        return cls(
            max_per_source=settings.sip_max_connections_per_source,
            max_total=settings.sip_max_connections,
            idle_unused=settings.sip_idle_unused_seconds,
            idle_used=settings.sip_idle_seconds,
        )

    def total(self) -> int:
        return self.max_total or default_max_connections()


def source_key(host: str) -> str:
    """What the per-source cap counts by: the IPv4 address, or the /64 of an IPv6 address (one host
    commonly holds a whole /64)."""
    try:
        addr = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return str(addr.ipv4_mapped)
        return str(ipaddress.IPv6Network((addr, 64), strict=False))
    return str(addr)


class Admission:
    """Counts stream connections per source and in all; refuses inbound ones beyond the caps."""

    def __init__(self, max_per_source: int, max_total: int, log_interval: float = REFUSAL_LOG_INTERVAL):
        self.max_per_source = max_per_source
        self.max_total = max_total
        self.log_interval = log_interval
        self.total = 0
        self._by_source: dict[str, int] = {}
        self._logged: dict[str, tuple[float, int]] = {}  # source -> (last log time, refused since)

    def by_source(self, key: str) -> int:
        return self._by_source.get(key, 0)

    def admit(self, key: str | None, now: float) -> str | None:
        """Take a place for a connection from *key* (None: one we open); the reason when refused."""
        if self.total >= self.max_total:
            self._log_refusal(key, "total", now)
            return "total"
        if key is not None:
            n = self._by_source.get(key, 0)
            if n >= self.max_per_source:
                self._log_refusal(key, "per_source", now)
                return "per_source"
            self._by_source[key] = n + 1
        self.total += 1
        return None

    def release(self, key: str | None) -> None:
        self.total -= 1
        if key is not None:
            n = self._by_source.get(key, 0) - 1
            if n > 0:
                self._by_source[key] = n
            else:
                self._by_source.pop(key, None)

    def _log_refusal(self, key: str | None, reason: str, now: float) -> None:
        # the global cap is one condition, logged as one "source"
        slot = "*" if reason == "total" or key is None else key
        last, refused = self._logged.get(slot, (-1e18, 0))
        refused += 1
        if now - last < self.log_interval:
            self._logged[slot] = (last, refused)
            return
        if len(self._logged) >= _MAX_LOGGED_SOURCES:
            cutoff = now - self.log_interval
            self._logged = {k: v for k, v in self._logged.items() if v[0] > cutoff}
            if len(self._logged) >= _MAX_LOGGED_SOURCES:
                self._logged.clear()
        self._logged[slot] = (now, 0)
        log.warning(
            "event=stream_connection_refused src=%s reason=%s refused=%d open_from_src=%d open_total=%d",
            slot,
            reason,
            refused,
            self._by_source.get(key, 0) if key is not None else 0,
            self.total,
        )
