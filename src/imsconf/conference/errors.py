"""Errors of the conference model.  Each carries the SIP status the focus should answer with."""

from __future__ import annotations


class ConferenceError(Exception):
    """Base class of every error raised on purpose by the conference model."""

    def __init__(self, reason: str, status: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


class PolicyError(ConferenceError):
    """The request is refused by policy: 403 (not allowed), 486 (full), 480 (closing), 404 (closed)."""

    def __init__(self, reason: str, status: int = 403) -> None:
        super().__init__(reason, status)


class UnknownParticipantError(ConferenceError):
    """No participant with that id in the roster (404 for a REFER with method=BYE, 481 in a dialog)."""

    def __init__(self, participant_id: str, status: int = 404) -> None:
        super().__init__(f"no participant {participant_id!r} in this conference", status)
        self.participant_id = participant_id


class InvalidTransitionError(ConferenceError):
    """A status change the participant state table forbids; nothing was changed (a local bug: 500)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, 500)
