"""Turns: the operator plane's synchronous work runs one piece per loop iteration, so a timer (the mixer's
tick) that falls due runs between two pieces instead of after a whole burst."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest
import uvloop

from imsconf.web.turns import Turns

_T = TypeVar("_T")


def _busy(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def _run(loop: str, coro: Coroutine[Any, Any, _T]) -> _T:
    factory = uvloop.new_event_loop if loop == "uvloop" else asyncio.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(coro)


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])  # the server runs on uvloop
def test_a_due_timer_runs_between_two_turns(loop: str) -> None:
    async def main() -> list[str]:
        turns = Turns()
        order: list[str] = []

        loop = asyncio.get_running_loop()

        async def job(i: int) -> None:
            async with turns:
                order.append(f"job{i}")
                if i == 0:  # a timer that falls due while the first job works (whatever the machine's load)
                    loop.call_later(0.001, order.append, "tick")
                _busy(0.01)

        await asyncio.gather(*(job(i) for i in range(4)))
        return order

    order = _run(loop, main())
    assert order[:3] == ["job0", "tick", "job1"], order
    assert sorted(order) == ["job0", "job1", "job2", "job3", "tick"]


def test_without_turns_the_burst_holds_the_timer_up() -> None:
    """The reason for Turns: plain coroutines that arrive together run back to back."""

    async def main() -> list[str]:
        order: list[str] = []

        async def job(i: int) -> None:
            order.append(f"job{i}")
            _busy(0.01)

        asyncio.get_running_loop().call_later(0.001, order.append, "tick")
        await asyncio.gather(*(job(i) for i in range(4)))
        await asyncio.sleep(0.01)
        return order

    assert asyncio.run(main())[-1] == "tick"


def test_the_turns_are_exclusive_and_in_order() -> None:
    async def main() -> list[tuple[str, int]]:
        turns = Turns()
        trace: list[tuple[str, int]] = []

        async def job(i: int) -> None:
            async with turns:
                trace.append(("in", i))
                await asyncio.sleep(0.001)  # even a body that awaits holds the turn
                trace.append(("out", i))

        await asyncio.gather(*(job(i) for i in range(3)))
        return trace

    assert asyncio.run(main()) == [("in", 0), ("out", 0), ("in", 1), ("out", 1), ("in", 2), ("out", 2)]


def test_a_cancelled_waiter_or_holder_does_not_stop_the_others() -> None:
    async def main() -> list[int]:
        turns = Turns()
        done: list[int] = []
        gate = asyncio.Event()

        async def job(i: int) -> None:
            async with turns:
                if i == 0:
                    await gate.wait()
                done.append(i)

        tasks = [asyncio.create_task(job(i)) for i in range(4)]
        await asyncio.sleep(0.01)  # job 0 holds the turn, 1..3 wait
        tasks[1].cancel()  # a waiter goes
        tasks[0].cancel()  # the holder goes
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert isinstance(results[0], asyncio.CancelledError)
        assert isinstance(results[1], asyncio.CancelledError)
        return done

    assert asyncio.run(main()) == [2, 3]


@pytest.mark.parametrize("burst", [1, 20])
def test_every_request_of_a_burst_gets_its_turn(burst: int) -> None:
    async def main() -> int:
        turns = Turns()
        n = 0

        async def job() -> None:
            nonlocal n
            async with turns:
                n += 1

        await asyncio.wait_for(asyncio.gather(*(job() for _ in range(burst))), 5)
        return n

    assert asyncio.run(main()) == burst
