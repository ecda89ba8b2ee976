"""Memoised parsing of immutable values: SIP header views (URIs, name-addrs, Vias, CSeqs) and SDP bodies.

The same text is parsed many times as layers look at it (a header per message, an offer sent again, the
same client's bodies in a churn of calls); the parsed values are frozen, so one parse serves them all.
Bounded: peers choose the text, so a full table is simply dropped.

The bound is small on purpose: most texts are a call's own (tags, branches), so a table holds a few
hundred recent calls' values, and those values outlive the calls.  Small objects that outlive a load pin
the allocator's arenas the load filled, so the runtime empties the tables (:func:`clear_memos`) once a
load has passed, and the process's memory comes back (docs/decisions/0012-memory-after-load.md).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, TypeVar

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")

MEMO_MAX = 256

_TABLES: list[dict[Any, Any]] = []


def memo_table() -> dict[Any, Any]:
    """A new memo table, emptied with the others by :func:`clear_memos`."""
    table: dict[Any, Any] = {}
    _TABLES.append(table)
    return table


def clear_memos() -> None:
    """Empty every memo table (they refill as messages arrive)."""
    for table in _TABLES:
        table.clear()


def memoised(table: dict[K, T], text: K, parse: Callable[[K], T], bound: int = MEMO_MAX) -> T:
    """``parse(text)``, served from *table* when seen before (errors are never cached); a table holding
    *bound* values is emptied before the next one goes in."""
    hit = table.get(text)
    if hit is not None:
        return hit
    value = parse(text)
    if len(table) >= bound:
        table.clear()
    table[text] = value
    return value
