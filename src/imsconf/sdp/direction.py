"""RFC 3264 §5.1 stream direction: the one definition that SDP, the conference model and the mixer share."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Direction"]


class Direction(StrEnum):
    """RFC 3264 §5.1 stream direction, as seen by whoever wrote the attribute."""

    SENDRECV = "sendrecv"
    SENDONLY = "sendonly"
    RECVONLY = "recvonly"
    INACTIVE = "inactive"

    @property
    def sends(self) -> bool:
        return self in (Direction.SENDRECV, Direction.SENDONLY)

    @property
    def mixes_input(self) -> bool:
        """Whether the mixer takes this leg's audio into the mix (only a sendrecv leg speaks to the room)."""
        return self is Direction.SENDRECV

    @property
    def receives(self) -> bool:
        return self in (Direction.SENDRECV, Direction.RECVONLY)

    @classmethod
    def of(cls, sends: bool, receives: bool) -> Direction:
        if sends and receives:
            return cls.SENDRECV
        if sends:
            return cls.SENDONLY
        return cls.RECVONLY if receives else cls.INACTIVE

    def reverse(self) -> Direction:
        """The direction the other side should write (RFC 3264 §6.1: sendonly ↔ recvonly)."""
        return Direction.of(self.receives, self.sends)

    def intersect(self, other: Direction) -> Direction:
        return Direction.of(self.sends and other.sends, self.receives and other.receives)
