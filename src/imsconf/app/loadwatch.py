"""How busy the event loop is, measured for the admission of new calls (imsconf.sip.overload).

A 10 ms timer measures its own lag (how late it fires); the driver adds the CPU time of its thread
(``time.thread_time``: time the process waits for a core on a shared machine is not counted) that it
spends in the SIP receive path and its timers (:meth:`LoadWatch.spent`). Every 100 ms the window's
figures, the share of the window spent in SIP work, the largest lag and the share in which the thread
ran at all (its CPU time: a lag while it mostly waited for a core is other processes' work), go to
:meth:`Admission.observe_load` as a :class:`~imsconf.sip.overload.LoadSample`, which adapts the call
budget (docs/decisions/0006-sip-connection-limits.md, "INVITE floods").

The stateless refusals of a flooding source's requests (and UDP keep-alives) are *shed* load
(:meth:`LoadWatch.shed`): kept apart from the busy share, because a smaller call budget would not make
them fewer, it would only refuse the other sources' calls; how late the timer fires still sees them.
"""

from __future__ import annotations

import asyncio
import time

from imsconf.sip.overload import Admission, LoadSample

__all__ = ["LoadWatch"]

PROBE = 0.010  # seconds between the lag probes
WINDOW = 0.100  # seconds per load sample


class LoadWatch:
    def __init__(self, loop: asyncio.AbstractEventLoop, admission: Admission) -> None:
        self._loop = loop
        self._admission = admission
        self._timer: asyncio.TimerHandle | None = None
        self._due = 0.0
        self._window_at = 0.0
        self._work = 0.0
        self._shed = 0.0
        self._lag = 0.0
        self._cpu_at = 0.0  # the thread's CPU time when the window began
        self.last = LoadSample(0.0, 0.0)

    def spent(self, seconds: float) -> None:
        """SIP work the driver did (CPU seconds of the loop's thread)."""
        self._work += seconds

    def shed(self, seconds: float) -> None:
        """Work of stateless refusals (CPU seconds of the loop's thread): not in the busy share."""
        self._shed += seconds

    def start(self) -> None:
        now = self._loop.time()
        self._window_at = now
        self._cpu_at = time.thread_time()
        self._due = now + PROBE
        self._timer = self._loop.call_at(self._due, self._probe)

    def _probe(self) -> None:
        now = self._loop.time()
        self._lag = max(self._lag, now - self._due)
        if now - self._window_at >= WINDOW:
            span = now - self._window_at
            cpu = time.thread_time()
            ran = (cpu - self._cpu_at) / span
            self.last = LoadSample(self._work / span, self._lag, self._shed / span, ran)
            self._admission.observe_load(now, self.last)
            self._window_at, self._work, self._shed, self._lag, self._cpu_at = now, 0.0, 0.0, 0.0, cpu
        self._due = now + PROBE
        self._timer = self._loop.call_at(self._due, self._probe)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
