"""Memoised parsing of immutable header views (URIs, name-addrs, Vias, CSeqs).

The same header text is parsed many times per message as layers look at it; the parsed values are frozen,
so one parse serves them all.  Bounded: peers choose the text, so a full table is simply dropped.

The bound is small on purpose: most texts are a call's own (tags, branches), so a table holds a few
hundred recent calls' values, and those values outlive the calls.  Small objects that outlive a load pin
the allocator's arenas the load filled, so the runtime empties the tables (:func:`clear_memos`) once a
load has passed, and the process's memory comes back (docs/decisions/0012-memory-after-load.md).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

MEMO_MAX = 256

_TABLES: list[dict[str, Any]] = []


def memo_table() -> dict[str, Any]:
    """A new memo table, emptied with the others by :func:`clear_memos`."""
    table: dict[str, Any] = {}
    _TABLES.append(table)
    return table


def clear_memos() -> None:
    """Empty every memo table (they refill as messages arrive)."""
    for table in _TABLES:
        table.clear()


def memoised(table: dict[str, T], text: str, parse: Callable[[str], T]) -> T:
    """``parse(text)``, served from *table* when seen before (errors are never cached)."""
    hit = table.get(text)
    if hit is not None:
        return hit
    value = parse(text)
    if len(table) >= MEMO_MAX:
        table.clear()
    table[text] = value
    return value
