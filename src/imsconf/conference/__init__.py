"""imsconf.conference: the pure conference domain (roster, roles, policy, lifecycle).  No SIP inside."""

from .errors import ConferenceError, InvalidTransitionError, PolicyError, UnknownParticipantError
from .events import (
    ConferenceClosed,
    ConferenceClosing,
    ConferenceEvent,
    DisconnectRequired,
    FloorChanged,
    FloorState,
    MediaReleaseRequired,
    ParticipantJoined,
    ParticipantLeft,
    ParticipantMediaChanged,
    ParticipantRoleChanged,
    ParticipantStatusChanged,
    RosterEvent,
)
from .model import STATUS_TRANSITIONS, Audience, Conference, ConferencePolicy
from .participant import ConferenceState, MediaInfo, Participant, ParticipantStatus, Role
from .registry import ConferenceRegistry, uri_key

__all__ = [
    "STATUS_TRANSITIONS",
    "Audience",
    "Conference",
    "ConferenceClosed",
    "ConferenceClosing",
    "ConferenceError",
    "ConferenceEvent",
    "ConferencePolicy",
    "ConferenceRegistry",
    "ConferenceState",
    "DisconnectRequired",
    "FloorChanged",
    "FloorState",
    "InvalidTransitionError",
    "MediaInfo",
    "MediaReleaseRequired",
    "Participant",
    "ParticipantJoined",
    "ParticipantLeft",
    "ParticipantMediaChanged",
    "ParticipantRoleChanged",
    "ParticipantStatus",
    "ParticipantStatusChanged",
    "PolicyError",
    "Role",
    "RosterEvent",
    "UnknownParticipantError",
    "uri_key",
]
