"""The conference: roster, roles, policy and lifecycle.  Pure: no SIP, no sockets, no clock.

Every operation either raises (``PolicyError``, ``UnknownParticipantError``, ``InvalidTransitionError``;
nothing is changed then) or returns the events it caused, in order.  Roster events carry the new roster
``version``, which grows by exactly one per roster event, so a conference-info document can be built for
every version.

Disconnecting is two-step.  ``remove()`` and ``close()`` do not drop anybody by themselves: they return
``DisconnectRequired`` actions; the focus sends BYE and then reports the end of the dialog with ``leave()``,
which emits ``ParticipantLeft`` (with the removal's reason and author).  A participant's own BYE is
simply ``leave()``.

Lifecycle: ACTIVE → CLOSING (no more joins; everyone is being disconnected) → CLOSED (the registry
forgets the conference).  With ``close_when_owner_leaves`` the departure of the owner closes the
conference; with ``close_when_empty`` the departure of the last participant does.  When the roster becomes
empty a ``MediaReleaseRequired`` action says the mixer resources can go.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Final

from .errors import InvalidTransitionError, PolicyError, UnknownParticipantError
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
    drop_holder,
)
from .participant import ConferenceState, MediaInfo, Participant, ParticipantStatus, Role

__all__ = [
    "GIVEN_IDS_KEPT",
    "STATUS_TRANSITIONS",
    "Audience",
    "Conference",
    "ConferencePolicy",
]

# participant ids a caller gave (the focus's PIN lobby ids) that a conference remembers, to refuse them again:
# the newest this many; the callers make them unique themselves (the lobby's from a counter that only rises)
GIVEN_IDS_KEPT = 1024


class Audience(Enum):
    """Who may do something that is not tied to a role (subscribing to the conference state)."""

    ANYONE = "anyone"
    PARTICIPANTS = "participants"  # anyone in the roster, plus the owner and operators
    MODERATORS = "moderators"  # owner, moderators, operators


@dataclass(frozen=True, slots=True)
class ConferencePolicy:
    """Per-conference rules.  Users are AoR strings, compared exactly (normalising them is the focus's job).

    ``allowed_users`` (``None``: anyone) limits who may join; the owner and moderators always may.
    ``operators`` may do everything (remove the owner, close) without being in the roster.
    ``full_status`` is the SIP status of a join beyond ``max_participants`` (486 Busy Here, or 503).
    ``audio_codecs`` is the conference's own audio codec preference, first preferred (a booking's);
    empty: the focus's setting.
    """

    close_when_owner_leaves: bool = True
    close_when_empty: bool = True
    max_participants: int | None = None
    full_status: int = 486
    allowed_users: frozenset[str] | None = None
    require_authenticated_identity: bool = False
    moderators: frozenset[str] = frozenset()
    operators: frozenset[str] = frozenset()
    subscribers: Audience = Audience.PARTICIPANTS
    invite_roles: frozenset[Role] = frozenset(Role)
    remove_roles: frozenset[Role] = frozenset({Role.OWNER, Role.MODERATOR})
    audio_codecs: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.max_participants is not None and self.max_participants < 1:
            raise ValueError("max_participants must be at least 1")
        if self.full_status not in (486, 503):
            raise ValueError("full_status must be 486 or 503")


# Status changes allowed by set_status(); DISCONNECTED is reached only through leave().
STATUS_TRANSITIONS: Final[dict[ParticipantStatus, frozenset[ParticipantStatus]]] = {
    ParticipantStatus.JOINING: frozenset({ParticipantStatus.CONNECTED, ParticipantStatus.ON_HOLD}),
    ParticipantStatus.CONNECTED: frozenset({ParticipantStatus.ON_HOLD}),
    ParticipantStatus.ON_HOLD: frozenset({ParticipantStatus.CONNECTED}),
    ParticipantStatus.DISCONNECTED: frozenset(),
}


@dataclass(frozen=True, slots=True)
class _PendingDisconnect:
    reason: str
    by: str | None


@dataclass(slots=True)
class Conference:
    """One conference and its roster.  Mutable aggregate; the snapshots it hands out are frozen."""

    conf_id: str
    uri: str
    owner: str | None
    policy: ConferencePolicy
    created_at: float
    state: ConferenceState = ConferenceState.ACTIVE
    version: int = 0
    floors: tuple[FloorState, ...] = ()  # BFCP floors and their holders (set by the focus)
    _participants: dict[str, Participant] = field(default_factory=dict, repr=False)
    _pending: dict[str, _PendingDisconnect] = field(default_factory=dict, repr=False)
    # ids given by the caller (the focus's lobby ids), oldest first, at most GIVEN_IDS_KEPT of them; the
    # ids this conference makes are "p<n>" from a counter that only rises, so they need no record:
    # remembering every id ever used would keep one string per call for the conference's whole life
    _given_ids: dict[str, None] = field(default_factory=dict, repr=False)
    _next_id: int = field(default=1, repr=False)
    _media_released: bool = field(default=True, repr=False)

    def __post_init__(self) -> None:
        if not self.conf_id or not self.uri:
            raise ValueError("a conference needs an id and a URI")

    # ---------------------------------------------------------------- queries

    @property
    def participants(self) -> tuple[Participant, ...]:
        """The roster, in join order."""
        return tuple(self._participants.values())

    @property
    def pending_disconnects(self) -> frozenset[str]:
        """Participants the focus has been asked to disconnect and that have not left yet."""
        return frozenset(self._pending)

    def __len__(self) -> int:
        return len(self._participants)

    def __contains__(self, participant_id: object) -> bool:
        return participant_id in self._participants

    def participant(self, participant_id: str) -> Participant:
        try:
            return self._participants[participant_id]
        except KeyError:
            raise UnknownParticipantError(participant_id) from None

    def participants_of(self, user: str) -> tuple[Participant, ...]:
        return tuple(p for p in self._participants.values() if p.user == user)

    def role_of(self, user: str) -> Role | None:
        """The strongest role ``user`` holds here.

        The owner and the policy's moderators hold their role even when not in the roster.
        """
        if self.owner is not None and user == self.owner:
            return Role.OWNER
        roles = {p.role for p in self.participants_of(user)}
        if user in self.policy.moderators:
            roles.add(Role.MODERATOR)
        for role in (Role.OWNER, Role.MODERATOR, Role.PARTICIPANT):
            if role in roles:
                return role
        return None

    # ---------------------------------------------------------------- authorization

    def authorize_subscribe(self, user: str) -> None:
        """Raise ``PolicyError(403)`` unless ``user`` may subscribe to the conference state."""
        if self.state is ConferenceState.CLOSED:
            raise PolicyError("conference is closed", 404)
        audience = self.policy.subscribers
        if audience is Audience.ANYONE or user in self.policy.operators:
            return
        role = self.role_of(user)
        if audience is Audience.PARTICIPANTS and role is not None:
            return
        if audience is Audience.MODERATORS and role in (Role.OWNER, Role.MODERATOR):
            return
        raise PolicyError(f"{user} may not subscribe to this conference", 403)

    def authorize_invite(self, user: str) -> None:
        """Raise ``PolicyError`` unless ``user`` may bring others in (REFER to the focus)."""
        self._require_active()
        if user in self.policy.operators:
            return
        role = self.role_of(user)
        if role is None or role not in self.policy.invite_roles:
            raise PolicyError(f"{user} may not invite to this conference", 403)

    def _authorize_remove(self, by: str, target: Participant) -> None:
        if by in self.policy.operators:
            return
        role = self.role_of(by)
        if role is None or role not in self.policy.remove_roles:
            raise PolicyError(f"{by} may not remove participants", 403)
        if target.role is Role.OWNER and role is not Role.OWNER:
            raise PolicyError("only the owner or an operator may remove the owner", 403)

    def _require_active(self) -> None:
        if self.state is ConferenceState.CLOSED:
            raise PolicyError("conference is closed", 404)
        if self.state is ConferenceState.CLOSING:
            raise PolicyError("conference is closing", 480)

    # ---------------------------------------------------------------- operations

    def join(
        self,
        user: str,
        now: float,
        *,
        display: str | None = None,
        participant_id: str | None = None,
        identity_authenticated: bool = False,
        privacy: bool = False,
        media: MediaInfo | None = None,
        status: ParticipantStatus = ParticipantStatus.JOINING,
    ) -> list[ConferenceEvent]:
        """Add ``user`` to the roster.  The new participant is in the ``ParticipantJoined`` event.

        Raises ``PolicyError``: 404 closed, 480 closing, 403 not allowed, 486/503 full.  A
        ``participant_id`` that is present, one this conference made, or one of the last
        :data:`GIVEN_IDS_KEPT` given is a ``ValueError`` (local bug).
        """
        self._require_active()
        policy = self.policy
        if policy.require_authenticated_identity and not identity_authenticated:
            raise PolicyError("an authenticated identity is required to join", 403)
        privileged = user == self.owner or user in policy.moderators or user in policy.operators
        if policy.allowed_users is not None and user not in policy.allowed_users and not privileged:
            raise PolicyError(f"{user} is not allowed in this conference", 403)
        if policy.max_participants is not None and len(self._participants) >= policy.max_participants:
            raise PolicyError("conference is full", policy.full_status)
        if status is ParticipantStatus.DISCONNECTED:
            raise ValueError("cannot join as disconnected")
        if participant_id is None:
            pid = self._new_id()
        elif self._id_used(participant_id):
            raise ValueError(f"participant id {participant_id!r} already used in this conference")
        else:
            pid = participant_id
        if self.owner is not None and user == self.owner:
            role = Role.OWNER
        elif user in policy.moderators:
            role = Role.MODERATOR
        else:
            role = Role.PARTICIPANT
        p = Participant(
            participant_id=pid,
            user=user,
            role=role,
            status=status,
            joined_at=now,
            display=display,
            media=media,
            identity_authenticated=identity_authenticated,
            privacy=privacy,
        )
        if participant_id is not None:
            self._remember_given(pid)
        self._participants[pid] = p
        self._media_released = False
        return [ParticipantJoined(self.conf_id, self._bump(), p)]

    def set_status(self, participant_id: str, status: ParticipantStatus) -> list[ConferenceEvent]:
        """Change a participant's status per ``STATUS_TRANSITIONS``; the same status is a no-op."""
        p = self.participant(participant_id)
        if status is p.status:
            return []
        if status not in STATUS_TRANSITIONS[p.status]:
            raise InvalidTransitionError(f"status {p.status.value} cannot become {status.value}")
        new = replace(p, status=status)
        self._participants[participant_id] = new
        return [ParticipantStatusChanged(self.conf_id, self._bump(), new, p.status)]

    def set_media(self, participant_id: str, media: MediaInfo | None) -> list[ConferenceEvent]:
        """Record the participant's media (SSRC, SRTP, direction); an unchanged value is a no-op."""
        p = self.participant(participant_id)
        if media == p.media:
            return []
        new = replace(p, media=media)
        self._participants[participant_id] = new
        return [ParticipantMediaChanged(self.conf_id, self._bump(), new, p.media)]

    def announce_media(self, participant_id: str) -> list[ConferenceEvent]:
        """A media event for an unchanged participant (a new version): what the event package shows beside
        the model changed (e.g. the participant's key scope), so subscribers get a partial NOTIFY."""
        p = self.participant(participant_id)
        return [ParticipantMediaChanged(self.conf_id, self._bump(), p, p.media)]

    def set_floors(self, floors: tuple[FloorState, ...]) -> list[ConferenceEvent]:
        """Record the floors and their holders (from BFCP); unchanged floors are a no-op.

        Floors are kept in floor-id order; holders that are not in the roster are dropped.
        """
        if self.state is ConferenceState.CLOSED:
            raise PolicyError("conference is closed", 404)
        ordered = tuple(
            replace(f, holders=tuple(h for h in f.holders if h in self._participants))
            for f in sorted(floors, key=lambda f: f.floor_id)
        )
        if len({f.floor_id for f in ordered}) != len(ordered):
            raise ValueError("duplicate floor id")
        if ordered == self.floors:
            return []
        self.floors = ordered
        return [FloorChanged(self.conf_id, self._bump(), ordered)]

    def set_role(self, by: str, participant_id: str, role: Role) -> list[ConferenceEvent]:
        """Make a participant a moderator or a plain participant (owner or operator only)."""
        self._require_active()
        p = self.participant(participant_id)
        if by not in self.policy.operators and self.role_of(by) is not Role.OWNER:
            raise PolicyError(f"{by} may not change roles", 403)
        if role is Role.OWNER or p.role is Role.OWNER:
            raise PolicyError("ownership cannot be moved", 403)
        if role is p.role:
            return []
        new = replace(p, role=role)
        self._participants[participant_id] = new
        return [ParticipantRoleChanged(self.conf_id, self._bump(), new, p.role, by)]

    def remove(self, by: str, participant_id: str, reason: str = "removed") -> list[ConferenceEvent]:
        """``by`` (an AoR) asks to drop a participant: owner/moderator (per policy) or operator only.

        Returns a ``DisconnectRequired``; the participant stays in the roster until ``leave()``.  A second
        request for the same participant returns nothing.
        """
        if self.state is ConferenceState.CLOSED:
            raise PolicyError("conference is closed", 404)
        target = self.participant(participant_id)
        self._authorize_remove(by, target)
        if participant_id in self._pending:
            return []
        return [self._request_disconnect(target, reason, by)]

    def leave(self, participant_id: str, reason: str = "left") -> list[ConferenceEvent]:
        """The participant's dialog ended (its BYE, our BYE, or a failure): it leaves the roster."""
        p = self._participants.pop(participant_id, None)
        if p is None:
            raise UnknownParticipantError(participant_id, 481)
        pending = self._pending.pop(participant_id, None)
        gone = replace(p, status=ParticipantStatus.DISCONNECTED)
        self.floors = drop_holder(self.floors, participant_id)  # shown without it from this version on
        events: list[ConferenceEvent] = [
            ParticipantLeft(
                self.conf_id,
                self._bump(),
                gone,
                pending.reason if pending is not None else reason,
                pending.by if pending is not None else None,
            )
        ]
        owner_left = p.role is Role.OWNER and not any(q.role is Role.OWNER for q in self.participants)
        if owner_left and self.policy.close_when_owner_leaves and self.state is ConferenceState.ACTIVE:
            events += self.close("owner left")
        if not self._participants and self.state is not ConferenceState.CLOSED:
            events += self._release_media()
            if self.state is ConferenceState.CLOSING or self.policy.close_when_empty:
                events += self._finish("last participant left")
        return events

    def close(self, reason: str = "closed") -> list[ConferenceEvent]:
        """Close the conference: no more joins; every participant must be disconnected.

        Closing an empty conference ends it at once; closing a closing or closed one does nothing.
        """
        if self.state is not ConferenceState.ACTIVE:
            return []
        if not self._participants:
            return [*self._release_media(), *self._finish(reason)]
        self.state = ConferenceState.CLOSING
        events: list[ConferenceEvent] = [ConferenceClosing(self.conf_id, self._bump(), reason)]
        events += [
            self._request_disconnect(p, reason, None)
            for p in self.participants
            if p.participant_id not in self._pending
        ]
        return events

    # ---------------------------------------------------------------- internals

    def _new_id(self) -> str:
        while (pid := f"p{self._next_id}") in self._given_ids or pid in self._participants:
            self._next_id += 1
        self._next_id += 1
        return pid

    def _remember_given(self, pid: str) -> None:
        """Record a given id; past :data:`GIVEN_IDS_KEPT` the oldest that left is forgotten.  A forgotten
        ``p<n>`` moves the counter past it, so this conference never makes it."""
        given = self._given_ids
        given[pid] = None
        while len(given) > GIVEN_IDS_KEPT:
            old = next(iter(given))
            del given[old]
            if old in self._participants:  # still here: kept (its id is checked as a present one)
                given[old] = None
                if all(p in self._participants for p in given):
                    break
                continue
            digits = old[1:]
            if old[:1] == "p" and digits.isascii() and digits.isdigit() and digits[:1] != "0":
                self._next_id = max(self._next_id, int(digits) + 1)

    def _id_used(self, pid: str) -> bool:
        """Whether *pid* was ever given to a participant here (ids are never reused)."""
        if pid in self._given_ids or pid in self._participants:
            return True
        digits = pid[1:]
        # one this conference made: "p<n>" below the counter (the ones it skipped are given ids)
        return (
            pid[:1] == "p"
            and digits.isascii()
            and digits.isdigit()
            and digits[:1] != "0"
            and int(digits) < self._next_id
        )

    def _bump(self) -> int:
        self.version += 1
        return self.version

    def _request_disconnect(self, p: Participant, reason: str, by: str | None) -> DisconnectRequired:
        self._pending[p.participant_id] = _PendingDisconnect(reason, by)
        return DisconnectRequired(self.conf_id, p.participant_id, p.user, reason)

    def _release_media(self) -> Iterable[ConferenceEvent]:
        if self._media_released:
            return []
        self._media_released = True
        return [MediaReleaseRequired(self.conf_id)]

    def _finish(self, reason: str) -> list[ConferenceEvent]:
        self.state = ConferenceState.CLOSED
        return [ConferenceClosed(self.conf_id, self._bump(), reason)]
