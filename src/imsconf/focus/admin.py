"""The operator's view of live conferences and the commands an operator may give.

:class:`ConferenceAdmin` is the seam between the operator plane (the HTTP API, the console, the CLI
through the API) and the running focus.  The web layer consumes it; the runtime implements it over the
focus (binding the SIP endpoint, the clock and the flush), so every command is applied on the event loop
that runs the focus and shows in the conference event package like any other change.

The views are immutable snapshots made at the moment of the call: plain values only, times as UTC
``datetime``, so the web layer renders them without reaching into the focus.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol

__all__ = [
    "AdminError",
    "ConferenceAdmin",
    "ConferenceView",
    "InvalidTarget",
    "OperatorEvent",
    "OperatorEventKind",
    "ParticipantView",
    "RtcpView",
    "UnknownConference",
    "UnknownParticipant",
]


class AdminError(Exception):
    """An operator command that cannot be carried out; the message is safe to show the operator."""


class UnknownConference(AdminError, LookupError):
    """No live conference has this id."""


class UnknownParticipant(AdminError, LookupError):
    """The conference has no active participant with this id."""


class InvalidTarget(AdminError, ValueError):
    """A dial-out target that is not a usable SIP or SIPS URI."""


@dataclass(frozen=True, slots=True)
class RtcpView:
    """What the participant's RTCP receiver reports say of our stream to it (None: no report yet)."""

    loss: float | None = None  # fraction lost, 0.0 .. 1.0
    jitter_ms: float | None = None


@dataclass(frozen=True, slots=True)
class ParticipantView:
    id: str
    uri: str  # privacy is the event package's concern; the operator sees the identity
    display: str | None
    role: str  # "owner" | "moderator" | "participant"
    joined: datetime
    transport: str  # "udp" | "tcp" | "tls"
    codec: str | None  # e.g. "PCMU"
    srtp: str | None  # the negotiated suite, e.g. "AES_CM_128_HMAC_SHA1_80"; None for plain RTP
    key: str  # key mode: "sdes" (own key) | "group" (group downlink) | "none"
    muted: bool
    deaf: bool
    on_hold: bool
    speaking: bool
    floor: bool  # holds a floor of the conference
    rtcp: RtcpView = field(default_factory=RtcpView)
    chat: bool = False  # has an MSRP message stream, or receives the conference's pager messages


@dataclass(frozen=True, slots=True)
class ConferenceView:
    id: str
    uri: str
    created: datetime
    owner: str | None
    participants: tuple[ParticipantView, ...]
    locked: bool
    downlink: str  # "per-leg" | "group"
    key_epoch: int | None
    messages: int = 0  # instant messages relayed so far (pager mode and MSRP); never their content


OperatorEventKind = Literal[
    "conference-created",
    "conference-ended",
    "participant-joined",
    "participant-left",
    "participant-muted",  # data: {"muted": bool}; also sent on unmute
    "participant-deaf",  # data: {"deaf": bool}
    "participant-speaking",  # data: {"speaking": bool}
    "conference-locked",  # data: {"locked": bool}
    "floor-changed",  # data: {"holders": [participant ids]}
    "key-epoch",  # data: {"epoch": int}
    "message-relayed",  # data: {"count": int}, the conference's message count; at most one a second
]


@dataclass(frozen=True, slots=True)
class OperatorEvent:
    """One change worth telling a watching operator (the ``/api/v1/events`` stream)."""

    kind: OperatorEventKind
    conference_id: str
    participant_id: str | None = None
    data: Mapping[str, object] = field(default_factory=dict)


class ConferenceAdmin(Protocol):
    """Live conference control.  Every method runs on the focus's event loop and returns at once; the
    SIP work it starts (BYE, re-INVITE, NOTIFY, dial-out) proceeds in the background."""

    def conferences(self) -> tuple[ConferenceView, ...]: ...

    def conference(self, conference_id: str) -> ConferenceView:
        """Raises :class:`UnknownConference`."""
        ...

    def set_muted(self, conference_id: str, participant_id: str, muted: bool) -> ParticipantView:
        """A muted participant is mixed into nobody's audio.  Idempotent."""
        ...

    def set_deaf(self, conference_id: str, participant_id: str, deaf: bool) -> ParticipantView:
        """A deaf participant receives silence.  Idempotent."""
        ...

    def kick(self, conference_id: str, participant_id: str) -> None:
        """BYE the participant; the event package shows ``disconnection-method="booted"``."""
        ...

    def set_locked(self, conference_id: str, locked: bool) -> ConferenceView:
        """While locked, new joins (INVITE, REFER-driven, dial-in) get 403."""
        ...

    def end(self, conference_id: str) -> None:
        """BYE to every participant, ``terminated`` NOTIFY to every subscriber."""
        ...

    def invite(self, conference_id: str, uri: str) -> None:
        """Dial the user out into the conference.  Raises :class:`InvalidTarget`."""
        ...

    def watch(self, sink: Callable[[OperatorEvent], None]) -> Callable[[], None]:
        """Call *sink* with every operator event from now on; returns the function that stops it."""
        ...
