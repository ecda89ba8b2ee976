"""The state of the focus's control channel to a separate mixer (``imsconf mixer``), sans I/O.

:class:`MixerLink` decides; the asyncio adapter in :mod:`.remote` connects, reads and writes.  ``now`` is
passed in and every timer is a deadline (:meth:`MixerLink.next_deadline`, :meth:`MixerLink.poll`).

* **Down** (the start, or after a loss): a connection attempt is due at once the first time, then after a
  capped exponential backoff (:class:`Backoff`, 0.5 s doubling up to 5 s, reset by a successful connection).
* **Connecting**: an attempt is under way (:meth:`MixerLink.attempting`); it ends in
  :meth:`MixerLink.connected` (the mixer's hello arrived) or :meth:`MixerLink.attempt_failed`.
* **Up**: a ping is due every :attr:`Heartbeat.interval` seconds; anything received from the mixer counts as
  a sign of life (:meth:`MixerLink.received`).  Silence for :attr:`Heartbeat.timeout` seconds, or the
  connection closing (:meth:`MixerLink.lost`), is a loss: the link is down again and the next attempt waits
  for the backoff.  Detection is therefore bounded: a closed connection at once, a silent mixer within the
  timeout (3 s by default).

Each successful connection gets a new :attr:`MixerLink.generation`: state held on an earlier mixer is gone.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

__all__ = ["Backoff", "Heartbeat", "LinkAction", "LinkState", "MixerLink"]


class LinkState(enum.Enum):
    DOWN = "down"
    CONNECTING = "connecting"
    UP = "up"


class LinkAction(enum.Enum):
    """What :meth:`MixerLink.poll` asks the adapter to do."""

    CONNECT = "connect"  # start a connection attempt
    PING = "ping"  # send a heartbeat on the channel
    DROP = "drop"  # the mixer is silent past the timeout: close the connection (the link is down)


@dataclass(slots=True)
class Backoff:
    """Capped exponential backoff: *initial*, doubled per failure up to *cap*; :meth:`reset` on success."""

    initial: float = 0.5
    cap: float = 5.0
    factor: float = 2.0
    _next: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        if not 0 < self.initial <= self.cap or self.factor < 1:
            raise ValueError("backoff needs 0 < initial <= cap and factor >= 1")
        self._next = self.initial

    def delay(self) -> float:
        """The wait before the next attempt (and the one after grows)."""
        d = self._next
        self._next = min(self.cap, self._next * self.factor)
        return d

    def reset(self) -> None:
        self._next = self.initial


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """A ping every *interval* seconds; the mixer counts as lost after *timeout* seconds without a word."""

    interval: float = 1.0
    timeout: float = 3.0

    def __post_init__(self) -> None:
        if not 0 < self.interval < self.timeout:
            raise ValueError("heartbeat needs 0 < interval < timeout")


class MixerLink:
    """The link's state machine (see the module docstring)."""

    def __init__(self, backoff: Backoff | None = None, heartbeat: Heartbeat | None = None) -> None:
        self.backoff = backoff if backoff is not None else Backoff()
        self.heartbeat = heartbeat if heartbeat is not None else Heartbeat()
        self.state = LinkState.DOWN
        self.generation = 0  # incremented by every successful connection
        self.attempts = 0  # failed attempts since the link was last up
        self.lost_at: float | None = None  # when the link last went down (None: never up yet)
        self._retry_at: float | None = 0.0  # due at once
        self._last_heard = 0.0
        self._ping_at = 0.0

    @property
    def up(self) -> bool:
        return self.state is LinkState.UP

    # ---- events from the adapter ----------------------------------------------------------------------
    def attempting(self, now: float) -> None:
        """A connection attempt has started."""
        self.state = LinkState.CONNECTING
        self._retry_at = None

    def attempt_failed(self, now: float) -> float:
        """The attempt failed (refused, timed out, handshake refused); returns the wait before the next."""
        self.state = LinkState.DOWN
        self.attempts += 1
        delay = self.backoff.delay()
        self._retry_at = now + delay
        return delay

    def connected(self, now: float) -> int:
        """The mixer's hello arrived: the link is up; returns its new generation."""
        self.state = LinkState.UP
        self.generation += 1
        self.attempts = 0
        self.backoff.reset()
        self._retry_at = None
        self._last_heard = now
        self._ping_at = now + self.heartbeat.interval
        return self.generation

    def received(self, now: float) -> None:
        """Something arrived from the mixer (any message is a sign of life)."""
        self._last_heard = now

    def lost(self, now: float) -> float:
        """The connection closed or failed (or :data:`LinkAction.DROP` was carried out); returns the wait
        before the next attempt.  A loss of a link that is not up is an attempt that failed."""
        if self.state is not LinkState.UP:
            return self.attempt_failed(now)
        self.state = LinkState.DOWN
        self.lost_at = now
        delay = self.backoff.delay()
        self._retry_at = now + delay
        return delay

    # ---- timers -----------------------------------------------------------------------------------------
    def next_deadline(self) -> float | None:
        if self.state is LinkState.UP:
            return min(self._ping_at, self._last_heard + self.heartbeat.timeout)
        if self.state is LinkState.DOWN:
            return self._retry_at
        return None  # connecting: the attempt ends by itself (it has its own timeout)

    def poll(self, now: float) -> list[LinkAction]:
        """What is due at *now*.  ``DROP`` leaves the link down (no separate :meth:`lost` is needed)."""
        if self.state is LinkState.UP:
            if now >= self._last_heard + self.heartbeat.timeout:
                self.lost(now)
                return [LinkAction.DROP]
            if now >= self._ping_at:
                self._ping_at = now + self.heartbeat.interval
                return [LinkAction.PING]
            return []
        if self.state is LinkState.DOWN and self._retry_at is not None and now >= self._retry_at:
            return [LinkAction.CONNECT]
        return []
