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
