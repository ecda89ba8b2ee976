"""The allocator of Python's small objects for the server process, chosen by ``python_allocator``.

CPython's own allocator (pymalloc) carves small objects out of 1 MiB arenas and gives an arena back only
when every object in it is gone. After a burst of calls a few hundred long-lived objects stay scattered
over the arenas the peak created, so the process keeps tens of megabytes of empty pools for good
(docs/decisions/0012-memory-after-load.md has the figures). With ``PYTHONMALLOC=malloc`` small objects
come from glibc's malloc, and ``malloc_trim`` (the heap keeper, ``app/heap.py``) returns the free pages
anywhere in the heap once the load is over. The allocator is fixed when the interpreter starts, so the
command line re-executes itself once with the variable set (same PID, same arguments).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

__all__ = ["ENV", "reexec_argv", "reexec_for_allocator"]

ENV = "PYTHONMALLOC"


def reexec_argv(args: Sequence[str]) -> list[str]:
    """The command line that runs ``imsconf`` again with *args* under the current interpreter."""
    return [sys.executable, "-m", "imsconf.cli", *args]


def reexec_for_allocator(choice: str, args: Sequence[str]) -> None:
    """Replace this process by ``imsconf`` *args* under glibc's malloc when *choice* is ``malloc`` and the
    allocator was not chosen by the environment already (an explicit ``PYTHONMALLOC`` always wins, which
    also stops the re-execution from repeating). Returns only when nothing is to be done."""
    if choice != "malloc" or ENV in os.environ:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, reexec_argv(args), {**os.environ, ENV: "malloc"})
