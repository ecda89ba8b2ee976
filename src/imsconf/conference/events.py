"""Events returned by the conference model's operations.

Two kinds: *roster events* change the conference document and carry the new roster ``version`` (it grows
by exactly one per roster event); *actions* (``DisconnectRequired``, ``MediaReleaseRequired``) tell the
focus what to do next and change nothing by themselves.
"""

from __future__ import annotations

from dataclasses import dataclass

from .participant import MediaInfo, Participant, ParticipantStatus, Role

__all__ = [
    "ConferenceClosed",
    "ConferenceClosing",
    "ConferenceEvent",
    "DisconnectRequired",
    "FloorChanged",
    "FloorState",
    "MediaReleaseRequired",
    "ParticipantJoined",
    "ParticipantLeft",
    "ParticipantMediaChanged",
    "ParticipantRoleChanged",
    "ParticipantStatusChanged",
    "RosterEvent",
    "drop_holder",
]


def _require(condition: bool, what: str) -> None:
    if not condition:
        raise ValueError(what)


@dataclass(frozen=True, slots=True)
class RosterEvent:
    conf_id: str
    version: int

    def __post_init__(self) -> None:
        _require(bool(self.conf_id), "conf_id must not be empty")
        _require(self.version >= 1, "roster versions start at 1")


@dataclass(frozen=True, slots=True)
class ParticipantJoined(RosterEvent):
    participant: Participant


@dataclass(frozen=True, slots=True)
class ParticipantStatusChanged(RosterEvent):
    participant: Participant
    previous: ParticipantStatus


@dataclass(frozen=True, slots=True)
class ParticipantMediaChanged(RosterEvent):
    participant: Participant
    previous: MediaInfo | None


@dataclass(frozen=True, slots=True)
class ParticipantRoleChanged(RosterEvent):
    participant: Participant
    previous: Role
    by: str


@dataclass(frozen=True, slots=True)
class ParticipantLeft(RosterEvent):
    """The participant is out of the roster; ``participant`` is its last snapshot (status DISCONNECTED).

    ``removed_by`` is set when an owner/moderator/operator removed it (a ``DisconnectRequired`` follows).
    """

    participant: Participant
    reason: str
    removed_by: str | None = None


@dataclass(frozen=True, slots=True)
class ConferenceClosing(RosterEvent):
    """The conference refuses new joins; every remaining participant gets a ``DisconnectRequired``."""

    reason: str


@dataclass(frozen=True, slots=True)
class ConferenceClosed(RosterEvent):
    """The conference is over: the registry forgets it."""

    reason: str


@dataclass(frozen=True, slots=True)
class FloorState:
    """One BFCP floor as the conference document shows it: its id, the media it controls (``audio``,
    ``video``) and the participant ids holding it (sorted)."""

    floor_id: int
    media: str
    holders: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _require(0 < self.floor_id <= 0xFFFF, "floor ids are 16-bit and non-zero")
        _require(bool(self.media), "a floor names its media")
        _require(tuple(sorted(set(self.holders))) == self.holders, "holders must be sorted and unique")


def drop_holder(floors: tuple[FloorState, ...], participant_id: str) -> tuple[FloorState, ...]:
    """``floors`` without ``participant_id`` among the holders (a participant that left holds nothing)."""
    if not any(participant_id in f.holders for f in floors):
        return floors
    return tuple(
        FloorState(f.floor_id, f.media, tuple(h for h in f.holders if h != participant_id)) for f in floors
    )


@dataclass(frozen=True, slots=True)
class FloorChanged(RosterEvent):
    """The floors (or their holders) changed: every floor of the conference, in floor-id order."""

    floors: tuple[FloorState, ...]


@dataclass(frozen=True, slots=True)
class DisconnectRequired:
    """The focus must end this participant's dialog (BYE), then report it with ``leave()``."""

    conf_id: str
    participant_id: str
    user: str
    reason: str


@dataclass(frozen=True, slots=True)
class MediaReleaseRequired:
    """Nobody is left: the mixer resources of the conference can be released."""

    conf_id: str


ConferenceEvent = (
    ParticipantJoined
    | ParticipantStatusChanged
    | ParticipantMediaChanged
    | ParticipantRoleChanged
    | ParticipantLeft
    | ConferenceClosing
    | ConferenceClosed
    | FloorChanged
    | DisconnectRequired
    | MediaReleaseRequired
)
