"""Process tuning: the heap policy and the mixer's real-time priority."""

from __future__ import annotations

import gc
import multiprocessing as mp
import os

import pytest

from imsconf.app.heap import realtime_priority, settle_heap


def _child(priority: int, out: mp.Queue) -> None:  # type: ignore[type-arg]
    ok = realtime_priority(priority)
    out.put((ok, os.sched_getscheduler(0), os.sched_getparam(0).sched_priority))


def _run(priority: int) -> tuple[bool, int, int]:
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    p = ctx.Process(target=_child, args=(priority, out))
    p.start()
    got: tuple[bool, int, int] = out.get(timeout=30)
    p.join(30)
    return got


def test_zero_leaves_scheduling_alone() -> None:
    assert _run(0) == (False, os.SCHED_OTHER, 0)


def test_realtime_priority_or_a_refusal() -> None:
    ok, policy, prio = _run(5)
    if os.geteuid() == 0:
        if not ok:
            pytest.skip("this container refuses SCHED_RR even to root")
        assert (policy, prio) == (os.SCHED_RR, 5)
    else:  # refused without CAP_SYS_NICE: reported, not raised
        assert not ok and policy == os.SCHED_OTHER


def test_settle_heap_freezes_and_raises_the_threshold() -> None:
    before = gc.get_threshold()
    try:
        settle_heap()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold()[0] == 20000
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
