"""Memoised parsing of immutable header views (URIs, name-addrs, Vias, CSeqs).

The same header text is parsed many times per message as layers look at it; the parsed values are frozen,
so one parse serves them all.  Bounded: peers choose the text, so a full table is simply dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

MEMO_MAX = 4096


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
