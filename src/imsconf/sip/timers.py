"""SIP transaction timers (RFC 3261 §17 and Table 4, RFC 6026 §8.4) as explicit deadlines.

Nothing here reads a clock: every deadline is computed from a ``now`` handed in by the caller.

=======  ==================  =====================================================  ===================
timer    default             meaning                                                reliable transport
=======  ==================  =====================================================  ===================
T1       500 ms              RTT estimate
T2       4 s                 maximum retransmit interval (non-INVITE, INVITE 2xx)
T4       5 s                 maximum time a message stays in the network
A        T1, doubling        INVITE request retransmit                              not used
B        64*T1               INVITE transaction timeout
D        > 32 s              wait for response retransmits (INVITE client)          0
E        T1, doubling to T2  non-INVITE request retransmit                          not used
F        64*T1               non-INVITE transaction timeout
G        T1, doubling to T2  INVITE final response retransmit                       not used
H        64*T1               wait for ACK receipt
I        T4                  wait for ACK retransmits                               0
J        64*T1               wait for non-INVITE request retransmits                0
K        T4                  wait for response retransmits (non-INVITE client)      0
L        64*T1               INVITE server Accepted state (RFC 6026)
M        64*T1               INVITE client Accepted state (RFC 6026)
=======  ==================  =====================================================  ===================
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum


class TimerName(StrEnum):
    A = "A"
    B = "B"
    D = "D"
    E = "E"
    F = "F"
    G = "G"
    H = "H"
    I = "I"  # noqa: E741 - the RFC's name
    J = "J"
    K = "K"
    L = "L"
    M = "M"


# Retransmission timers: doubled on every firing, never armed on a reliable transport.
RETRANSMIT_TIMERS = frozenset({TimerName.A, TimerName.E, TimerName.G})
# Timers whose value is zero on a reliable transport (RFC 3261 Table 4).
ZERO_WHEN_RELIABLE = frozenset({TimerName.D, TimerName.I, TimerName.J, TimerName.K})


@dataclass(frozen=True, slots=True)
class TimerConfig:
    """T1/T2/T4 (seconds) and Timer D; every other timer derives from them."""

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0
    timer_d: float = 32.0

    def __post_init__(self) -> None:
        for name in ("t1", "t2", "t4", "timer_d"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number of seconds")
        if self.t2 < self.t1:
            raise ValueError("t2 must not be smaller than t1")

    def initial(self, timer: TimerName, reliable: bool) -> float:
        """The value a timer is started with."""
        if reliable and timer in ZERO_WHEN_RELIABLE:
            return 0.0
        if timer in RETRANSMIT_TIMERS:
            return self.t1
        if timer is TimerName.D:
            return self.timer_d
        if timer in (TimerName.I, TimerName.K):
            return self.t4
        return 64 * self.t1  # B, F, H, J, L, M

    def cap(self, timer: TimerName) -> float:
        """Upper bound of a doubling retransmission interval (Timer A is not capped: RFC 3261 §17.1.1.2)."""
        return math.inf if timer is TimerName.A else self.t2


_BY_VALUE = {t.value: t for t in TimerName}


@dataclass(slots=True)
class TimerSet:
    """The running timers of one transaction: name -> (deadline, current interval).

    Keyed by the timers' plain string values (equal to the :class:`TimerName` members, which look them up):
    dicts of plain strings and floats are not tracked by the cyclic garbage collector, and tens of thousands
    of transactions linger for 64*T1 on UDP.
    """

    deadlines: dict[str, float] = field(default_factory=dict)
    intervals: dict[str, float] = field(default_factory=dict)

    def start(self, timer: TimerName, now: float, interval: float) -> None:
        key = timer.value  # the plain str: TimerName members hash and compare equal to it
        self.deadlines[key] = now + interval
        self.intervals[key] = interval

    def stop(self, timer: TimerName) -> None:
        self.deadlines.pop(timer, None)
        self.intervals.pop(timer, None)

    def stop_all(self) -> None:
        self.deadlines.clear()
        self.intervals.clear()

    def running(self, timer: TimerName) -> bool:
        return timer in self.deadlines

    def next_deadline(self) -> float | None:
        return min(self.deadlines.values()) if self.deadlines else None

    def pop_due(self, now: float) -> TimerName | None:
        """Remove and return the earliest timer whose deadline is <= now (None when nothing is due)."""
        due = [(d, t) for t, d in self.deadlines.items() if d <= now]
        if not due:
            return None
        _, timer = min(due)
        del self.deadlines[timer]
        return _BY_VALUE[timer]
