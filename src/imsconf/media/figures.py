"""Running figures of one mixer for :class:`~imsconf.media.events.MixerStats`: the tick-work histogram the
UDP adapter feeds (it measures; the engine keeps no clock) and the counters of released legs, so the
process-wide totals include every leg that ever existed."""

from __future__ import annotations

from bisect import bisect_left

from .events import TICK_SECONDS_BOUNDS

__all__ = ["LegTotals", "TickRecord"]


class TickRecord:
    """The ticks the adapter measured: late ones, the sum of their work and a histogram over
    :data:`~imsconf.media.events.TICK_SECONDS_BOUNDS` (per bucket, not cumulative; the last is +Inf)."""

    __slots__ = ("counts", "late", "measured", "seconds_sum")

    def __init__(self) -> None:
        self.measured = 0
        self.late = 0
        self.seconds_sum = 0.0
        self.counts = [0] * (len(TICK_SECONDS_BOUNDS) + 1)

    def add(self, seconds: float, late: int = 0) -> None:
        """One tick that took ``seconds`` of work; ``late`` late or skipped ticks to count with it."""
        self.measured += 1
        self.seconds_sum += seconds
        self.counts[bisect_left(TICK_SECONDS_BOUNDS, seconds)] += 1
        if late:
            self.late += late

    def cumulative(self) -> tuple[int, ...]:
        out: list[int] = []
        total = 0
        for n in self.counts:
            total += n
            out.append(total)
        return tuple(out)


class LegTotals:
    """RTP/SRTP counters summed over released legs (their final counts)."""

    __slots__ = ("auth_failures", "received", "replays", "sent")

    def __init__(self) -> None:
        self.received = 0
        self.sent = 0
        self.auth_failures = 0
        self.replays = 0

    def add(self, received: int, sent: int, auth_failures: int, replays: int) -> None:
        self.received += received
        self.sent += sent
        self.auth_failures += auth_failures
        self.replays += replays
