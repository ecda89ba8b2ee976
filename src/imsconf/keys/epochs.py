"""Group-key epochs: one fresh key and one fresh common-stream SSRC each.

Keystream reuse is forbidden (RFC 3711 §9.1): one (key, SSRC) pair may carry exactly one packet sequence.
Each epoch therefore gets a new master key from :func:`imsconf.keys.authority.new_master_key` *and* an SSRC
never used before in the conference, so a receiver can also tell from the SSRC alone which key a packet is
under.  The same allocator hands out the per-(listener, epoch) SSRCs of speaking group listeners' N-1 mixes
(they are under the epoch key too), so no (epoch key, SSRC) pair is ever used twice.

Key bytes never appear in a repr; :meth:`EpochTable.retire` wipes the key in place.  Whoever copied the
key (the mixer's SRTP context, the focus's SDP) must have done so when it received the ``Rekey`` /
``OfferKey`` action: after ``RetireEpoch`` the bytearray is zeroed.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from .authority import MasterKey, new_master_key

__all__ = ["Epoch", "EpochTable", "SsrcAllocator"]


def _random_ssrc() -> int:
    return secrets.randbits(32)


class SsrcAllocator:
    """Hands out 32-bit SSRCs that never repeat in one conference (0 is never used).

    ``reserve`` marks SSRCs used elsewhere (the mixer's per-participant streams), so that the common and
    speaker streams never share one with them either - not needed for cryptographic safety (other keys),
    but it keeps every receiver's view of the conference's SSRCs unambiguous.
    """

    __slots__ = ("_source", "_used")

    def __init__(self, source: Callable[[], int] | None = None) -> None:
        self._source = source or _random_ssrc
        self._used: set[int] = set()

    def reserve(self, ssrcs: Iterable[int]) -> None:
        for s in ssrcs:
            if not 0 <= s < 1 << 32:
                raise ValueError("an SSRC is a 32-bit unsigned integer")
            self._used.add(s)

    def __contains__(self, ssrc: object) -> bool:
        return ssrc in self._used

    def __len__(self) -> int:
        return len(self._used)

    def allocate(self) -> int:
        for _ in range(1000):
            s = self._source() & 0xFFFFFFFF
            if s and s not in self._used:
                self._used.add(s)
                return s
        raise RuntimeError("SSRC source keeps repeating itself")


@dataclass(slots=True, repr=False)
class Epoch:
    """One group-key epoch.  ``receivers`` counts listeners sent its common stream, ``offers_out`` the
    listeners with an unanswered offer for it; an old epoch is retired when both are zero."""

    number: int
    key: MasterKey
    ssrc: int
    created_at: float
    reason: str
    seq: int  # the manager's membership sequence number when it was created
    offered_to: int = 0  # listeners (present or gone) that were ever sent this key
    receivers: int = 0
    offers_out: int = 0
    retired_at: float | None = None
    speaker_ssrcs: dict[str, int] = field(default_factory=dict)

    @property
    def retired(self) -> bool:
        return self.retired_at is not None

    @property
    def in_use(self) -> bool:
        return self.receivers > 0 or self.offers_out > 0

    def __repr__(self) -> str:
        state = "retired" if self.retired else "live"
        return (
            f"Epoch({self.number}, ssrc={self.ssrc:#010x}, {state}, receivers={self.receivers}, "
            f"offers_out={self.offers_out}, key=<redacted>)"
        )


class EpochTable:
    """The epochs of one conference, numbered 1, 2, ...; the newest is *current*."""

    __slots__ = ("_epochs", "_live", "_suite", "ssrcs")

    def __init__(self, suite: str, ssrcs: SsrcAllocator) -> None:
        self._suite = suite
        self.ssrcs = ssrcs
        self._epochs: list[Epoch] = []
        self._live: dict[int, Epoch] = {}

    @property
    def current(self) -> Epoch | None:
        return self._epochs[-1] if self._epochs else None

    def __len__(self) -> int:
        return len(self._epochs)

    def get(self, number: int) -> Epoch | None:
        return self._epochs[number - 1] if 1 <= number <= len(self._epochs) else None

    def live(self) -> Iterator[Epoch]:
        """Epochs not yet retired, oldest first."""
        return iter(list(self._live.values()))

    def all(self) -> Iterator[Epoch]:
        return iter(self._epochs)

    def create(self, now: float, reason: str, seq: int) -> Epoch:
        ep = Epoch(
            number=len(self._epochs) + 1,
            key=new_master_key(self._suite),
            ssrc=self.ssrcs.allocate(),
            created_at=now,
            reason=reason,
            seq=seq,
        )
        self._epochs.append(ep)
        self._live[ep.number] = ep
        return ep

    def retirable(self) -> list[Epoch]:
        """Live epochs other than the current one that nobody receives and nobody has an offer for."""
        cur = self.current
        return [ep for ep in self._live.values() if ep is not cur and not ep.in_use]

    def retire(self, ep: Epoch, now: float) -> None:
        if ep.retired:
            return
        ep.retired_at = now
        ep.key.wipe()
        del self._live[ep.number]

    def oldest_live(self) -> int | None:
        return next(iter(self._live), None)
