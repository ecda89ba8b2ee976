"""Reliable provisional responses at a UAS (RFC 3262): RSeq, retransmission until PRACK, RAck matching.

Sans-I/O like the rest of the core: :class:`ReliableProvisional` holds one reliable 1xx and its deadlines;
the application retransmits it through the INVITE server transaction when :meth:`handle_timer` says so,
and gives up (RFC 3262 §3: a 5xx to the INVITE) once :attr:`give_up_at` has passed without a PRACK.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from .errors import SipParseError
from .message import Request, Response
from .timers import TimerConfig

__all__ = ["RAck", "ReliableProvisional", "first_rseq", "wants_100rel"]

TAG = "100rel"
_MAX_RSEQ = 2**31 - 1


def wants_100rel(req: Request) -> bool:
    """The UAC supports or requires reliable provisional responses."""
    return TAG in req.headers.tokens("Supported") or TAG in req.headers.tokens("Require")


def first_rseq() -> int:
    """A random initial RSeq, small enough to leave room for increments (RFC 3262 §3: 1 .. 2**31 - 1)."""
    return 1 + secrets.randbelow(2**30)


@dataclass(frozen=True, slots=True)
class RAck:
    """``RAck: response-num CSeq-num Method`` (RFC 3262 §7.2)."""

    rseq: int
    cseq: int
    method: str

    @classmethod
    def parse(cls, value: str) -> RAck:
        parts = value.split()
        if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit():
            raise SipParseError(f"bad RAck {value[:60]!r}")
        rseq, cseq = int(parts[0]), int(parts[1])
        if not 1 <= rseq <= _MAX_RSEQ or cseq > _MAX_RSEQ:
            raise SipParseError(f"RAck number out of range {value[:60]!r}")
        return cls(rseq, cseq, parts[2].upper())


@dataclass(slots=True)
class ReliableProvisional:
    """One reliable provisional response sent by the UAS, until its PRACK (RFC 3262 §3).

    Retransmitted every T1, doubling each time (no T2 cap: RFC 3262 §3 names none), for 64*T1.
    """

    response: Response
    started: float
    config: TimerConfig = field(default_factory=TimerConfig)
    acknowledged: bool = False
    _interval: float = field(init=False, default=0.0)
    _next: float = field(init=False, default=0.0)

    def __post_init__(self) -> None:
        if not 100 < self.response.status < 200 or self.response.headers.get("RSeq") is None:
            raise ValueError("a reliable provisional response is a 101-199 with an RSeq")
        self._interval = self.config.t1
        self._next = self.started + self._interval

    @property
    def rseq(self) -> int:
        return int(self.response.headers.get("RSeq") or "0")

    @property
    def give_up_at(self) -> float:
        return self.started + 64 * self.config.t1

    def next_deadline(self) -> float | None:
        return None if self.acknowledged else min(self._next, self.give_up_at)

    def expired(self, now: float) -> bool:
        """No PRACK within 64*T1: the UAS rejects the INVITE (with a 5xx)."""
        return not self.acknowledged and now >= self.give_up_at

    def handle_timer(self, now: float) -> bool:
        """True when the response must be sent again now."""
        if self.acknowledged or now >= self.give_up_at or now < self._next:
            return False
        self._interval *= 2
        self._next = now + self._interval
        return True

    def matches(self, rack: RAck) -> bool:
        """*rack* acknowledges this response (its RSeq, the INVITE's CSeq number and method)."""
        cseq = self.response.cseq
        return rack.rseq == self.rseq and rack.cseq == cseq.number and rack.method == cseq.method

    def prack(self, rack: RAck) -> bool:
        """Take a PRACK: True when it acknowledges this response for the first time (a 200 is due); False
        when it matches no unacknowledged reliable response (RFC 3262 §3: 481)."""
        if self.acknowledged or not self.matches(rack):
            return False
        self.acknowledged = True
        return True
