"""The event loop's load figure for the call budget (imsconf.app.loadwatch): shed work stays apart."""

from __future__ import annotations

import asyncio

import pytest

from imsconf.app.loadwatch import LoadWatch
from imsconf.sip.overload import Admission, OverloadConfig


def test_the_stateless_refusals_are_shed_load_and_not_in_the_busy_share() -> None:
    async def run() -> LoadWatch:
        watch = LoadWatch(asyncio.get_running_loop(), Admission(OverloadConfig(invite_rate=800)))
        watch.start()
        watch.spent(0.001)
        watch.shed(0.050)
        for _ in range(500):  # the first window closes after 100 ms (later on a loaded machine)
            await asyncio.sleep(0.01)
            if watch.last.shed:
                break
        watch.close()
        return watch

    sample = asyncio.run(run()).last
    assert sample.shed > 0 and 0 < sample.busy < sample.shed
    assert sample.shed / sample.busy == pytest.approx(50.0)


def test_the_share_of_the_window_the_loop_ran_is_measured() -> None:
    import time

    async def run() -> tuple[LoadWatch, float]:
        watch = LoadWatch(asyncio.get_running_loop(), Admission(OverloadConfig(invite_rate=800)))
        watch.start()
        started = time.thread_time()
        until = time.monotonic() + 0.15
        while time.monotonic() < until:  # the loop's thread works (blocks the loop) for 150 ms
            pass
        ran = time.thread_time() - started
        for _ in range(500):
            await asyncio.sleep(0.01)
            if watch.last.cpu is not None:
                break
        watch.close()
        return watch, ran

    watch, ran = asyncio.run(run())
    cpu = watch.last.cpu
    assert cpu is not None and cpu > 0.0
    assert cpu <= 1.05 and watch.last.lag >= 0.05  # the blocked loop's probe fired late
    assert ran > 0
