"""Value types of the roster: roles, statuses, media info, the participant snapshot."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from imsconf.sdp.direction import Direction

__all__ = ["ConferenceState", "MediaInfo", "Participant", "ParticipantStatus", "Role"]


class Role(Enum):
    OWNER = "owner"
    MODERATOR = "moderator"
    PARTICIPANT = "participant"


class ParticipantStatus(Enum):
    JOINING = "joining"
    CONNECTED = "connected"
    ON_HOLD = "on-hold"
    DISCONNECTED = "disconnected"


class ConferenceState(Enum):
    ACTIVE = "active"
    CLOSING = "closing"
    CLOSED = "closed"


def _require(condition: bool, what: str) -> None:
    if not condition:
        raise ValueError(what)


@dataclass(frozen=True, slots=True)
class MediaInfo:
    """What the roster shows of a participant's media: of its audio the SSRC it sends, SRTP or not,
    direction, codec; ``message``: it has an MSRP chat stream (session-mode IM); ``audio`` False: it has
    no audio at all (a chat-only session)."""

    ssrc: int | None = None
    srtp: bool = False
    direction: Direction = Direction.SENDRECV
    codec: str | None = None
    message: bool = False
    audio: bool = True

    def __post_init__(self) -> None:
        _require(self.ssrc is None or 0 <= self.ssrc < 2**32, "SSRC must be a 32-bit unsigned number")


@dataclass(frozen=True, slots=True)
class Participant:
    """One endpoint in the roster.  ``user`` is an AoR string; one user may join from several devices."""

    participant_id: str
    user: str
    role: Role
    status: ParticipantStatus
    joined_at: float
    display: str | None = None
    media: MediaInfo | None = None
    identity_authenticated: bool = False
    privacy: bool = False

    def __post_init__(self) -> None:
        _require(bool(self.participant_id), "participant_id must not be empty")
        _require(bool(self.user), "user must not be empty")

    @property
    def active(self) -> bool:
        return self.status is not ParticipantStatus.DISCONNECTED
