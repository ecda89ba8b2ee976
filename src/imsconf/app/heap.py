"""Process tuning of the long-running processes (the server and the separate mixer): the garbage
collector's policy and, when configured, real-time scheduling for the mixer.

Everything built at start-up (modules, tables, the mixer's buffers) lives as long as the process, so it
is frozen out of the cyclic collector's scans; and the young generation is collected less often: every
SIP message and every received media batch allocates, and RFC 3261 keeps UDP transactions for 32 s, so
the heap is large under load. A full collection over a large heap stalls the event loop for
milliseconds, which the mixer's 20 ms tick feels first.
"""

from __future__ import annotations

import gc
import logging
import os

__all__ = ["realtime_priority", "settle_heap"]

log = logging.getLogger("imsconf.runtime")


def settle_heap() -> None:
    """Call once, when start-up is over and before the load arrives."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(20000, 20, 20)


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
