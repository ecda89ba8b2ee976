"""Early legs: INVITEs the focus has answered with a reliable 183 (RFC 3262) whose 200 waits.

The 200 goes out once the 183 is PRACKed and, for an INVITE with ``Require: precondition`` (RFC 3312), once
the caller's UPDATE reports its resources reserved. Until then the leg is in an early dialog: the core asks
this table what is pending, retransmits the 183 on its deadlines, and refuses the INVITE (a UAS sends no
BYE in an early dialog) when the leg must end before its 200. Pure bookkeeping: nothing here sends.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from imsconf.sip.events import TransactionKey
from imsconf.sip.message import Response
from imsconf.sip.reliable import ReliableProvisional

__all__ = ["EarlyAnswer", "EarlyAnswers"]


@dataclass(slots=True)
class EarlyAnswer:
    """One INVITE answered by a reliable 183; *final* is the 200 held back."""

    leg_id: str
    invite_key: TransactionKey
    reliable: ReliableProvisional
    final: Response
    # the caller's mandatory QoS preconditions (RFC 3312) are not met yet: the 200 waits for its UPDATE
    resources_pending: bool = False

    @property
    def ready(self) -> bool:
        """The 200 may go: the 183 is PRACKed and no precondition is left unmet."""
        return self.reliable.acknowledged and not self.resources_pending


class EarlyAnswers:
    """The early legs of the focus, by leg id."""

    def __init__(self) -> None:
        self._by_leg: dict[str, EarlyAnswer] = {}

    def __contains__(self, leg_id: object) -> bool:
        return leg_id in self._by_leg

    def __iter__(self) -> Iterator[EarlyAnswer]:
        return iter(list(self._by_leg.values()))

    def add(self, early: EarlyAnswer) -> None:
        self._by_leg[early.leg_id] = early

    def get(self, leg_id: str) -> EarlyAnswer | None:
        return self._by_leg.get(leg_id)

    def pop(self, leg_id: str) -> EarlyAnswer | None:
        return self._by_leg.pop(leg_id, None)

    def next_deadline(self) -> float | None:
        deadlines = [d for e in self._by_leg.values() if (d := e.reliable.next_deadline()) is not None]
        return min(deadlines, default=None)
