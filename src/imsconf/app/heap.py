"""The garbage-collector policy of the long-running processes (the server and the separate mixer).

Everything built at start-up (modules, tables, the mixer's buffers) lives as long as the process, so it
is frozen out of the cyclic collector's scans; and the young generation is collected less often: every
SIP message and every received media batch allocates, and RFC 3261 keeps UDP transactions for 32 s, so
the heap is large under load. A full collection over a large heap stalls the event loop for
milliseconds, which the mixer's 20 ms tick feels first.
"""

from __future__ import annotations

import gc

__all__ = ["settle_heap"]


def settle_heap() -> None:
    """Call once, when start-up is over and before the load arrives."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(20000, 20, 20)
