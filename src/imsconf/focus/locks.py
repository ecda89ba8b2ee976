"""Which conferences an operator has locked: while locked, new joins are refused with 403.

Shared by the operator part (:mod:`.operator`, which sets it), the dial-out part (:mod:`.dialout`: a
REFER-driven join) and the core (an INVITE to the conference URI, a dial-in to a booked conference).
"""

from __future__ import annotations

__all__ = ["LOCKED_REASON", "LOCKED_STATUS", "ConferenceLocks"]

LOCKED_STATUS = 403
LOCKED_REASON = "Conference locked"


class ConferenceLocks:
    """The set of locked conference ids."""

    def __init__(self) -> None:
        self._locked: set[str] = set()

    def locked(self, conf_id: str) -> bool:
        return conf_id in self._locked

    def set(self, conf_id: str, locked: bool) -> bool:
        """Lock or unlock; True when that changed something."""
        if locked == (conf_id in self._locked):
            return False
        if locked:
            self._locked.add(conf_id)
        else:
            self._locked.discard(conf_id)
        return True

    def forget(self, conf_id: str) -> None:
        self._locked.discard(conf_id)
