"""Process tuning of the long-running processes (the server and the separate mixer): the garbage
collector's policy and, when configured, real-time scheduling for the mixer.

Everything built at start-up (modules, tables, the mixer's buffers) lives as long as the process, so it
is frozen out of the cyclic collector's scans; and the young generation is collected less often: every
SIP message and every received media batch allocates, and RFC 3261 keeps UDP transactions for 32 s, so
the heap is large under load. A full collection over a large heap stalls the event loop for
milliseconds, which the mixer's 20 ms tick feels first.

Memory comes back after a load (docs/decisions/0012-memory-after-load.md): a :class:`HeapKeeper` watches
the number of live SIP transactions and, once a load has passed, empties the header and SDP parse memo tables
(their values are the last calls' and pin the arenas the load filled), collects the load's reference
cycles and asks the C allocator to hand its free pages back to the system.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import os
from collections.abc import Callable

from imsconf.memo import clear_memos

__all__ = ["HeapKeeper", "realtime_priority", "release_heap", "settle_heap"]

log = logging.getLogger("imsconf.runtime")


def settle_heap() -> None:
    """Call once, when start-up is over and before the load arrives."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(20000, 20, 20)


def _libc_trim() -> Callable[[int], int] | None:
    try:
        trim: Callable[[int], int] = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc: nothing to ask
        return None
    return trim


_TRIM = _libc_trim()


def release_heap() -> None:
    """Give the memory a passed load used back: empty the memo tables, collect the load's reference cycles
    (with the young generation collected rarely, most of them wait in the older generations), then return
    glibc's free pages."""
    clear_memos()
    gc.collect()
    if _TRIM is not None:
        _TRIM(0)


class HeapKeeper:
    """Calls *release* once a load has passed: when the live work (SIP transactions) falls to an eighth of
    the highest count seen since the last release, and that count was at least *least*; once more when the
    last of that load's work has ended. A steady load never triggers it; a load that comes and goes does."""

    def __init__(self, release: Callable[[], None] = release_heap, *, least: int = 1000) -> None:
        self._release = release
        self._least = least
        self._high = 0
        self._again = False  # released while some of the load's work was still live
        self.releases = 0

    def observe(self, live: int) -> None:
        if live > self._high:
            self._high = live
        elif self._high >= self._least and live * 8 <= self._high:
            self._high = live
            self._again = live > 0
            self._run(live)
        elif self._again and live == 0:
            self._again = False
            self._run(live)

    def _run(self, live: int) -> None:
        self.releases += 1
        self._release()
        log.info("event=heap_released live=%d", live)


def realtime_priority(priority: int) -> bool:
    """Run this process under SCHED_RR at ``priority`` (1-99; 0 does nothing). The mixer's tick is then
    not held back by ordinary threads or deferred kernel work on its core (on this project's VM, a
    5-10 ms hold-up every few seconds otherwise). False, with a warning, when the system refuses it."""
    if priority <= 0:
        return False
    try:
        os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(priority))
    except (OSError, AttributeError) as exc:
        log.warning("event=realtime_refused priority=%d reason=%s", priority, exc.__class__.__name__)
        return False
    log.info("event=realtime priority=%d policy=SCHED_RR", priority)
    return True
