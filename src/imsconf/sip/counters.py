"""Counts of the final responses the server sent to incoming requests, by method and response class.

Plain integers in the sans-I/O endpoint (:class:`~.endpoint.SipEndpoint` counts every final answer it
sends, through a transaction or statelessly); the runtime's metrics read :meth:`RequestCounters.items`.
Methods outside :data:`KNOWN_METHODS` count as ``other``, so a peer cannot grow the table.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

__all__ = ["KNOWN_METHODS", "RequestCounters", "response_class"]

KNOWN_METHODS: Final = frozenset(
    {
        "ACK", "BYE", "CANCEL", "INFO", "INVITE", "MESSAGE", "NOTIFY", "OPTIONS", "PRACK", "PUBLISH",
        "REFER", "REGISTER", "SUBSCRIBE", "UPDATE",
    }
)  # fmt: skip


def response_class(status: int) -> str:
    """``"1xx"`` .. ``"6xx"`` (a status outside 100-699 is counted with its nearest class)."""
    return f"{min(6, max(1, status // 100))}xx"


class RequestCounters:
    """``(method, response class) -> count`` of final responses sent."""

    __slots__ = ("_counts",)

    def __init__(self) -> None:
        self._counts: dict[tuple[str, str], int] = {}

    def final_response(self, method: str, status: int) -> None:
        key = (method if method in KNOWN_METHODS else "other", response_class(status))
        self._counts[key] = self._counts.get(key, 0) + 1

    def get(self, method: str, cls: str) -> int:
        return self._counts.get((method, cls), 0)

    def items(self) -> Iterator[tuple[str, str, int]]:
        """``(method, response class, count)``, sorted."""
        for (method, cls), n in sorted(self._counts.items()):
            yield method, cls, n

    def total(self) -> int:
        return sum(self._counts.values())
