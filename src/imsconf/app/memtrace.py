"""Opt-in memory tracing of a running server, to find what a load leaves behind
(docs/decisions/0012-memory-after-load.md).

Off unless the environment has ``IMSCONF_TRACEMALLOC`` set (otherwise nothing is traced and no handler is
set: no cost). ``IMSCONF_TRACEMALLOC=stats`` only sets the handler: each SIGUSR2 writes a report into
``DATA_DIR/memtrace/`` with pymalloc's statistics (``sys._debugmallocstats()``: arenas allocated and in use,
the usage of their pools), glibc's (``mallinfo2``: heap in use, free, mmapped) and the live objects the
collector tracks by type, the types that grew most since the first report first. ``IMSCONF_TRACEMALLOC=1``
also traces every allocation with :mod:`tracemalloc` (``IMSCONF_TRACEMALLOC_FRAMES`` frames, default 12;
the server is several times slower), and the report adds the 40 tracebacks that grew most since the first
SIGUSR2 (the first report names the largest ones instead) and the snapshot itself
(``snap-<n>.tracemalloc``, for ``tracemalloc.Snapshot.load``).

The first SIGUSR2 is the baseline: send it when the server has settled, before the load.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import io
import logging
import os
import signal
import sys
import tracemalloc
from collections import Counter
from pathlib import Path

import numpy as np
import numpy.typing as npt

__all__ = ["MemTrace", "install_memtrace"]

log = logging.getLogger("imsconf.runtime")

TOP = 40


def _mallocstats() -> str:
    """``sys._debugmallocstats()`` writes to the C stream stderr: catch it through a pipe."""
    read, write = os.pipe()
    saved = os.dup(2)
    try:
        sys.stderr.flush()
        os.dup2(write, 2)
        sys._debugmallocstats()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(write)
    chunks: list[bytes] = []
    with os.fdopen(read, "rb") as f:
        chunks.append(f.read())
    return b"".join(chunks).decode("utf-8", "replace")


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
                     "fordblks", "keepcost")
    ]  # fmt: skip


def _glibc() -> str:
    try:
        fn = ctypes.CDLL("libc.so.6").mallinfo2
    except (OSError, AttributeError):  # not glibc 2.33+
        return "glibc: mallinfo2 not available\n"
    fn.restype = _MallInfo2
    m = fn()
    mb = 1e6
    return (
        f"glibc: heap {m.arena / mb:.1f} MB, in use {m.uordblks / mb:.1f} MB, "
        f"free {m.fordblks / mb:.1f} MB in {m.ordblks} chunks, mmapped {m.hblkhd / mb:.1f} MB in {m.hblks}, "
        f"top pad {m.keepcost / mb:.1f} MB\n"
    )


def _types() -> Counter[str]:
    return Counter(type(o).__qualname__ for o in gc.get_objects())


def _held() -> dict[int, tuple[str, str, str]]:
    """Every object the collector tracks (the frozen start-up ones too) and every object they refer to
    directly (strings, numbers, bytes: the ones the collector does not track), by id: (type, what holds
    it, a short repr).  New ids between two reports are the objects made meanwhile that are still alive."""
    gc.unfreeze()
    try:
        tracked = gc.get_objects()
    finally:
        gc.freeze()
    out: dict[int, tuple[str, str, str]] = {}
    for holder in tracked:
        kind = type(holder).__qualname__
        out.setdefault(id(holder), (kind, "-", ""))
        if isinstance(holder, dict):
            items: list[tuple[str, object]] = []
            for k, v in list(holder.items())[:100000]:
                items.append(("key", k))
                items.append((f"[{str(k)[:30]}]", v))
        else:
            items = [("", r) for r in gc.get_referents(holder)]
        for where, ref in items:
            if gc.is_tracked(ref) or id(ref) in out:
                continue
            out[id(ref)] = (type(ref).__qualname__, f"{kind}{where}", repr(ref)[:60])
    del tracked
    return out


def _describe(o: object) -> str:
    if isinstance(o, dict):
        return f"len={len(o)} keys={list(o)[:4]!r}"[:160]
    if isinstance(o, list | tuple | set | frozenset):
        return f"len={len(o)}"
    return repr(o)[:100]


class MemTrace:
    """Writes one report per :meth:`report` call (see the module docstring)."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.count = 0
        self.base: tracemalloc.Snapshot | None = None
        self.base_types: Counter[str] | None = None
        # the ids of report 1 as an array: a set would hold one int object per id, made at report 1
        self.base_held: npt.NDArray[np.uint64] | None = None

    def report(self) -> Path:
        self.out.mkdir(parents=True, exist_ok=True)
        self.count += 1
        stats = _mallocstats()  # before the snapshot: its own allocations are not counted in it
        text = io.StringIO()
        text.write(_glibc())
        types = _types()
        text.write(f"gc-tracked objects: {sum(types.values())}\n")
        if tracemalloc.is_tracing():
            self._traces(text)
        if self.base_types is None:
            self.base_types = types
            text.write("\n== gc-tracked objects by type (most)\n")
            rows = types.most_common(40)
        else:
            text.write("\n== gc-tracked objects by type (grown most since report 1)\n")
            grown = Counter(types)
            grown.subtract(self.base_types)
            rows = grown.most_common(40)
        for name, n in rows:
            text.write(f"{n:>+10d}  {name} (now {types[name]})\n")
        if self.count > 1:
            self._referrers(text, [name for name, n in rows[:6] if n > 100])
        self._new_objects(text)
        text.write("\n== pymalloc\n" + stats)
        path = self.out / f"snap-{self.count}.txt"
        path.write_text(text.getvalue())
        log.warning("event=memtrace report=%s", path)
        return path

    @staticmethod
    def _referrers(text: io.StringIO, names: list[str]) -> None:
        """What holds one object of each of these (grown) types, two levels up."""
        frame = sys._getframe()
        objs = gc.get_objects()
        for name in names:
            sample = next((o for o in reversed(objs) if type(o).__qualname__ == name), None)
            if sample is None:
                continue
            text.write(f"\n-- held: one {name}\n")
            for r in gc.get_referrers(sample):
                if r is objs or r is frame:
                    continue
                text.write(f"   by {type(r).__qualname__} {_describe(r)}\n")
                for r2 in gc.get_referrers(r)[:6]:
                    if r2 is objs or r2 is frame:
                        continue
                    text.write(f"      by {type(r2).__qualname__} {_describe(r2)}\n")
        del objs

    def _new_objects(self, text: io.StringIO) -> None:
        held = _held()
        if self.base_held is None:
            self.base_held = np.fromiter(sorted(held), dtype=np.uint64, count=len(held))
            text.write(f"\nobjects held (tracked and their direct referents): {len(held)}\n")
            return
        ids = np.fromiter(held, dtype=np.uint64, count=len(held))
        known = np.isin(ids, self.base_held)
        values = list(held.values())
        new = [values[i] for i in np.flatnonzero(~known).tolist()]
        text.write(f"\n== objects alive now that were not at report 1: {len(new)} of {len(held)}\n")
        groups: Counter[tuple[str, str]] = Counter((kind, where) for kind, where, _ in new)
        sample = {(kind, where): r for kind, where, r in new}
        for (kind, where), n in groups.most_common(60):
            text.write(f"{n:>8}  {kind:<24} held by {where:<50} e.g. {sample[kind, where]}\n")

    def _traces(self, text: io.StringIO) -> None:
        snap = tracemalloc.take_snapshot().filter_traces(
            (tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, __file__))
        )
        snap.dump(str(self.out / f"snap-{self.count}.tracemalloc"))
        size, peak = tracemalloc.get_traced_memory()
        text.write(f"traced {size / 1e6:.1f} MB (peak {peak / 1e6:.1f} MB)\n")
        if self.base is None:
            self.base = snap
            text.write(f"\n== largest {TOP} by traceback\n")
            for stat in snap.statistics("traceback")[:TOP]:
                text.write(f"\n{stat.size / 1e3:.1f} kB in {stat.count} blocks\n")
                text.write("\n".join(stat.traceback.format(limit=8)) + "\n")
            return
        text.write(f"\n== grown most since snap-1 ({TOP} by traceback)\n")
        for diff in snap.compare_to(self.base, "traceback")[:TOP]:
            text.write(
                f"\n{diff.size_diff / 1e3:+.1f} kB, {diff.count_diff:+d} blocks "
                f"(now {diff.size / 1e3:.1f} kB in {diff.count})\n"
            )
            text.write("\n".join(diff.traceback.format(limit=8)) + "\n")


def install_memtrace(loop: asyncio.AbstractEventLoop, data_dir: Path) -> MemTrace | None:
    """Set the SIGUSR2 handler when ``IMSCONF_TRACEMALLOC`` is set (``1``: and start tracing); else do
    nothing."""
    mode = os.environ.get("IMSCONF_TRACEMALLOC", "")
    if mode not in ("1", "stats"):
        return None
    frames = int(os.environ.get("IMSCONF_TRACEMALLOC_FRAMES", "12"))
    if mode == "1" and not tracemalloc.is_tracing():
        tracemalloc.start(frames)
    trace = MemTrace(data_dir / "memtrace")
    with contextlib.suppress(NotImplementedError):
        loop.add_signal_handler(signal.SIGUSR2, trace.report)
    log.warning("event=memtrace_on frames=%d dir=%s", frames, trace.out)
    return trace
