"""KeyingStats: rekeys counted across managers, durations from the change to the last listener's switch."""

from __future__ import annotations

import pytest
from keyharness import Plane

from imsconf.keys import DownlinkMode, GroupKeyManager, KeyManagerConfig, RekeyPolicy
from imsconf.keys.stats import REKEY_SECONDS_BOUNDS, KeyingStats


def _plane(stats: KeyingStats, conf: str, policy: str = "both") -> Plane:
    cfg = KeyManagerConfig(answer_timeout=2.0, confirm_timeout=6.0, demote_timeout=3.0)
    return Plane(
        GroupKeyManager(DownlinkMode.GROUP, RekeyPolicy.parse(policy), cfg, conference_id=conf, stats=stats)
    )


def test_histogram_buckets_are_cumulative() -> None:
    s = KeyingStats()
    for v in (0.05, 0.1, 0.3, 100.0, -1.0):
        s.observe_duration(v)
    cum = s.cumulative_buckets()
    assert len(cum) == len(REKEY_SECONDS_BOUNDS) + 1
    assert cum[0] == 3  # 0.05, 0.1 (<= the bound), -1 as 0
    assert cum[REKEY_SECONDS_BOUNDS.index(0.5)] == 4 and cum[-1] == 5
    assert s.duration_count == 5 and s.duration_sum == pytest.approx(100.45)


def test_rekeys_and_durations_across_conferences() -> None:
    stats = KeyingStats()
    p = _plane(stats, "c1")
    p.join("a")
    p.answer("a")
    p.confirm("a")
    assert stats.rekeys == 0 and stats.duration_count == 0  # the first epoch is no rekey
    p.now = 10.0
    p.join("b")  # epoch 2: a must move
    assert stats.rekeys == 1
    p.now = 10.7
    p.answer("a")
    assert stats.duration_count == 1 and stats.duration_sum == pytest.approx(0.7)
    assert p.mgr.oldest_epoch_created_at() is not None
    q = _plane(stats, "c2")  # another conference, the same totals
    q.join("x")
    q.answer("x")
    q.confirm("x")
    q.now = 5.0
    q.join("y")
    assert stats.rekeys == 2
    q.mgr.close(6.0)
    assert q.mgr.oldest_epoch_created_at() is None
    assert stats.rekeys == 2  # a closed manager's counts stay


def test_a_rekey_nobody_has_to_follow_takes_no_time() -> None:
    stats = KeyingStats()
    p = _plane(stats, "c1")
    p.join("a")  # epoch 1 offered, not answered: nobody on the group key
    p.now = 3.0
    p.mgr.request_rekey(p.now)
    assert stats.rekeys == 1 and stats.duration_count == 1 and stats.duration_sum == 0.0
