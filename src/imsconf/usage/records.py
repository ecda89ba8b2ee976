"""The usage record types and the sink the focus hands them to.

The focus builds a :class:`LegUsage` when a participant's leg ends (BYE either way, kick, conference end,
failure) and a :class:`ConferenceUsage` when a conference ends; the runtime's sink writes them to the data
store off the event loop.  Identities are recorded as the event package would show them to a third party:
a participant who asked for privacy is recorded as ``anonymous`` (``privacy`` says so).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

__all__ = ["ConferenceUsage", "LegUsage", "NullUsageSink", "UsageSink"]


@dataclass(frozen=True, slots=True)
class LegUsage:
    conference_id: str
    conference_uri: str
    participant_id: str
    identity: str  # the participant's AoR, or "anonymous" when privacy applies
    privacy: bool
    joined: datetime  # UTC
    left: datetime  # UTC
    reason: str  # how it ended: "bye", "booted", "conference-ended", "failed", "shutdown", ...
    codec: str | None
    srtp_suite: str | None  # None: plain RTP
    key_mode: str  # "sdes" | "group" | "none"
    packets_sent: int
    packets_received: int
    loss: float | None  # fraction lost from the participant's RTCP receiver reports
    jitter_ms: float | None

    @property
    def duration(self) -> float:
        return (self.left - self.joined).total_seconds()


@dataclass(frozen=True, slots=True)
class ConferenceUsage:
    conference_id: str
    conference_uri: str
    owner: str | None
    created: datetime  # UTC
    ended: datetime  # UTC
    reason: str  # "owner-left", "last-left", "operator", "booking-window-ended", "shutdown", ...
    participants: int  # legs that joined over the conference's life
    planned: bool  # a booked conference

    @property
    def duration(self) -> float:
        return (self.ended - self.created).total_seconds()


class UsageSink(Protocol):
    """Takes records from the focus; must return at once (writes happen off the event loop)."""

    def leg_ended(self, record: LegUsage) -> None: ...

    def conference_ended(self, record: ConferenceUsage) -> None: ...


class NullUsageSink:
    """Records nothing (tests and tools that do not keep usage)."""

    def leg_ended(self, record: LegUsage) -> None:
        pass

    def conference_ended(self, record: ConferenceUsage) -> None:
        pass
