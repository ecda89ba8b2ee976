"""Running totals of group rekeying across every conference, for the metrics.

One :class:`KeyingStats` is shared by all the key managers of a focus (they come and go with their
conferences; the totals stay).  Plain integers and floats, sans I/O: the durations are differences of the
``now`` values the managers are given.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Final

__all__ = ["REKEY_SECONDS_BOUNDS", "KeyingStats"]

REKEY_SECONDS_BOUNDS: Final[tuple[float, ...]] = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
"""Upper bounds (seconds) of the rekey duration histogram; a last, implicit bucket is +Inf."""


@dataclass(slots=True)
class KeyingStats:
    """``rekeys``: epochs started after a conference's first (a membership change, a batch, a request).
    ``duration_*``: for each such rekey once complete, the time from the change that caused it to the
    switch of the last listener that had to move (:attr:`~imsconf.keys.manager.RekeyRecord.switch_window`);
    ``duration_buckets`` holds non-cumulative counts per :data:`REKEY_SECONDS_BOUNDS` bucket, then +Inf."""

    rekeys: int = 0
    duration_count: int = 0
    duration_sum: float = 0.0
    duration_buckets: list[int] = field(default_factory=lambda: [0] * (len(REKEY_SECONDS_BOUNDS) + 1))

    def observe_duration(self, seconds: float) -> None:
        seconds = max(0.0, seconds)
        self.duration_count += 1
        self.duration_sum += seconds
        self.duration_buckets[bisect.bisect_left(REKEY_SECONDS_BOUNDS, seconds)] += 1

    def cumulative_buckets(self) -> tuple[int, ...]:
        """Counts of observations ``<=`` each bound, then the total (the +Inf bucket)."""
        out: list[int] = []
        total = 0
        for n in self.duration_buckets:
            total += n
            out.append(total)
        return tuple(out)
