"""What the floor control server tells the focus (so the mixer can mix only floor holders)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

__all__ = ["FloorEvent", "FloorGranted", "FloorReleased", "FloorRevoked"]


def _check_ids(floor_id: int, user_id: int, floor_request_id: int) -> None:
    for name, value in (("floor_id", floor_id), ("user_id", user_id), ("floor_request_id", floor_request_id)):
        if not 0 <= value <= 0xFFFF:
            raise ValueError(f"{name} must be a 16-bit unsigned integer")


@dataclass(frozen=True, slots=True)
class FloorGranted:
    """``user_id`` now holds ``floor_id``."""

    floor_id: int
    user_id: int
    floor_request_id: int

    def __post_init__(self) -> None:
        _check_ids(self.floor_id, self.user_id, self.floor_request_id)


@dataclass(frozen=True, slots=True)
class FloorReleased:
    """``user_id`` gave ``floor_id`` up: FloorRelease, Goodbye, lost connection or removal by the focus."""

    floor_id: int
    user_id: int
    floor_request_id: int

    def __post_init__(self) -> None:
        _check_ids(self.floor_id, self.user_id, self.floor_request_id)


@dataclass(frozen=True, slots=True)
class FloorRevoked:
    """The chair took ``floor_id`` away from ``user_id``."""

    floor_id: int
    user_id: int
    floor_request_id: int

    def __post_init__(self) -> None:
        _check_ids(self.floor_id, self.user_id, self.floor_request_id)


FloorEvent: TypeAlias = FloorGranted | FloorReleased | FloorRevoked
