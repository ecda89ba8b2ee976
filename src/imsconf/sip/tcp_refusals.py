"""Destinations that took no TCP connection on their UDP port (RFC 3261 §18.1.1).

A request larger than the UDP limit is first tried over TCP to the peer's UDP address; a UDP-only peer
refuses.  Remembering the refusal for a while sends the next requests to that peer over UDP at once,
instead of a connection attempt (and, on loopback, a chance of a self-connected socket) per request.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# how long a refusal is remembered; a peer that starts to listen on TCP is tried again after this
TCP_REFUSAL_TTL = 300.0


@dataclass(slots=True)
class TcpRefusals:
    """(host, port) -> when the refusal is forgotten; at most *max_entries* (the oldest go first)."""

    ttl: float = TCP_REFUSAL_TTL
    max_entries: int = 4096
    _until: dict[tuple[str, int], float] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self._until)

    def add(self, host: str, port: int, now: float) -> None:
        key = (host, port)
        self._until.pop(key, None)  # re-insert: the dict stays ordered by expiry
        self._until[key] = now + self.ttl
        while len(self._until) > self.max_entries:
            del self._until[next(iter(self._until))]

    def refused(self, host: str, port: int, now: float) -> bool:
        until = self._until.get((host, port))
        if until is None:
            return False
        if now >= until:
            del self._until[(host, port)]
            return False
        return True
