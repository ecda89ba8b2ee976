"""Turns: the operator plane's work on the event loop, one piece per loop iteration.

The web layer shares its event loop with the focus and, by default, the mixer, whose 20 ms tick is a
timer.  Building a large conference's view or applying a command is synchronous work of a few
milliseconds; twenty such requests that arrive together would otherwise all run in the same loop
iteration, back to back, and the tick due meanwhile would start that much late.  A handler takes a
:class:`Turns` turn around its synchronous part: a turn resumes in a later iteration than the one that
asked for it, and the next turn is given one iteration after the previous ended, so the timers that fell
due during a turn run before the next.  (An
``asyncio.Lock`` would not do: taken uncontended it never yields, so the requests of one iteration would
still run in that iteration.)
"""

from __future__ import annotations

import asyncio
from collections import deque
from types import TracebackType

__all__ = ["Turns"]


class Turns:
    """``async with turns:`` runs the body alone and never in the iteration that asked for the turn."""

    def __init__(self) -> None:
        self._waiting: deque[asyncio.Future[None]] = deque()
        self._held = False

    async def __aenter__(self) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append(fut)
        if not self._held:
            self._hand_over()
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():  # cancelled after being given the turn: pass it on
                self._release()
            raise  # cancelled while waiting: the hand-over skips its future

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._release()

    def _release(self) -> None:
        """End the turn; the next one is given in the next iteration, so that the timers due by then
        run before it (a turn given at once would resume in the same iteration as those timers, first)."""
        asyncio.get_running_loop().call_soon(self._pass_on)

    def _pass_on(self) -> None:
        self._held = False
        self._hand_over()

    def _hand_over(self) -> None:
        """Give the turn to the oldest waiter (its task resumes in the next iteration)."""
        while self._waiting:
            fut = self._waiting.popleft()
            if not fut.done():
                self._held = True
                fut.set_result(None)
                return
