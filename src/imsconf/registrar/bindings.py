"""The bindings of the registrar: per address of record, the registered contacts and their expiry.

In memory and authoritative; the runtime persists the changes (:class:`AorChanged`) elsewhere.  Times are
the caller's clock (``now``), never read here.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable
from dataclasses import dataclass

from imsconf.sip.peer import Peer
from imsconf.sip.uri import SipUri

__all__ = ["AorChanged", "Binding", "BindingTable", "best_first"]


@dataclass(frozen=True, slots=True)
class Binding:
    """One registered contact of an address of record (RFC 3261 §10.3)."""

    aor: str  # sip:user@host, the lookup key (SipUri.aor)
    uri: SipUri  # the Contact URI: the Request-URI of a request to this binding
    expires_at: float  # on the registrar's clock
    q: int  # thousandths (1000 when the Contact had no q)
    call_id: str
    cseq: int
    path: tuple[str, ...]  # Path entries (RFC 3327): the route set towards the contact, first hop first
    flow: Peer  # where the REGISTER came from (transport, source address, stream connection)
    registered_at: float  # when this binding was last written (newest first among equal q)
    q_given: bool = False  # the Contact carried a q parameter (the 200 repeats it)

    def expires_in(self, now: float) -> int:
        """Whole seconds left (rounded up), as the 200's ``expires`` parameter shows it."""
        return max(0, math.ceil(round(self.expires_at - now, 3)))  # no float noise: 600.0000001 is 600

    def live(self, now: float) -> bool:
        return self.expires_at > now


def best_first(bindings: Iterable[Binding]) -> list[Binding]:
    """Highest q first; among equal q the most recently registered."""
    return sorted(bindings, key=lambda b: (-b.q, -b.registered_at))


@dataclass(frozen=True, slots=True)
class AorChanged:
    """The whole set of bindings an AoR has after a change (empty: the AoR has none left)."""

    aor: str
    bindings: tuple[Binding, ...]


class BindingTable:
    """Bindings by AoR, one lazy heap of expiry deadlines, and the changes not yet taken."""

    def __init__(self) -> None:
        self._by_aor: dict[str, tuple[Binding, ...]] = {}
        self._heap: list[tuple[float, str]] = []
        self._changes: dict[str, AorChanged] = {}

    def __len__(self) -> int:
        return len(self._by_aor)

    def aors(self) -> list[str]:
        return list(self._by_aor)

    def get(self, aor: str, now: float) -> tuple[Binding, ...]:
        """The live bindings of *aor* (expired ones are not returned, even before the timer drops them)."""
        return tuple(b for b in self._by_aor.get(aor, ()) if b.live(now))

    def load(self, bindings: Iterable[Binding], now: float) -> None:
        """Start from stored bindings (expired ones dropped); records no change."""
        grouped: dict[str, list[Binding]] = {}
        for b in bindings:
            if b.live(now):
                grouped.setdefault(b.aor, []).append(b)
        for aor, items in grouped.items():
            self._put(aor, tuple(items))

    def replace(self, aor: str, bindings: Iterable[Binding]) -> None:
        """Commit the new set of *aor* and record the change."""
        items = tuple(bindings)
        self._put(aor, items)
        self._changes[aor] = AorChanged(aor, items)

    def _put(self, aor: str, items: tuple[Binding, ...]) -> None:
        if items:
            self._by_aor[aor] = items
            heapq.heappush(self._heap, (min(b.expires_at for b in items), aor))
        else:
            self._by_aor.pop(aor, None)

    def next_deadline(self) -> float | None:
        return self._heap[0][0] if self._heap else None

    def expire(self, now: float) -> None:
        """Drop every binding whose time is up; each AoR that lost one is recorded as changed."""
        while self._heap and self._heap[0][0] <= now:
            _, aor = heapq.heappop(self._heap)
            items = self._by_aor.get(aor)
            if items is None:
                continue
            left = tuple(b for b in items if b.live(now))
            if len(left) != len(items):
                self.replace(aor, left)
            # else a stale entry: the AoR was written again since, and that write pushed its own deadline
        # every write pushes an entry; rebuild the heap when stale ones pile up
        if len(self._heap) > 4 * len(self._by_aor) + 64:
            self._heap = [(min(b.expires_at for b in v), k) for k, v in self._by_aor.items()]
            heapq.heapify(self._heap)

    def take_changes(self) -> list[AorChanged]:
        out = list(self._changes.values())
        self._changes.clear()
        return out
