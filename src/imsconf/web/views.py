"""JSON renderings of the focus's operator views, the operator events and the usage records.

Times are ISO 8601 in UTC with ``Z``; everything else is the view's plain value.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from imsconf.focus.admin import ConferenceView, OperatorEvent, ParticipantView
from imsconf.usage import ConferenceUsage, LegUsage
from imsconf.usage.export import conference_to_json, leg_to_json

__all__ = [
    "conference_json",
    "conference_summary_json",
    "conference_usage_json",
    "event_json",
    "iso",
    "leg_usage_json",
    "participant_json",
]


def iso(dt: datetime) -> str:
    """``2030-06-01T09:00:00Z`` (milliseconds when the time has a fraction)."""
    dt = dt.astimezone(UTC)
    spec = "milliseconds" if dt.microsecond else "seconds"
    return dt.replace(tzinfo=None).isoformat(timespec=spec) + "Z"


def participant_json(p: ParticipantView) -> dict[str, Any]:
    return {
        "id": p.id,
        "uri": p.uri,
        "display": p.display,
        "role": p.role,
        "joined": iso(p.joined),
        "transport": p.transport,
        "codec": p.codec,
        "srtp": p.srtp,
        "key": p.key,
        "muted": p.muted,
        "deaf": p.deaf,
        "on_hold": p.on_hold,
        "speaking": p.speaking,
        "floor": p.floor,
        "rtcp": {"loss": p.rtcp.loss, "jitter_ms": p.rtcp.jitter_ms},
        "chat": p.chat,
    }


def _conference_fields(c: ConferenceView) -> dict[str, Any]:
    return {
        "id": c.id,
        "uri": c.uri,
        "created": iso(c.created),
        "owner": c.owner,
        "locked": c.locked,
        "downlink": c.downlink,
        "key_epoch": c.key_epoch,
        "messages": c.messages,
    }


def conference_summary_json(c: ConferenceView) -> dict[str, Any]:
    """A conference in the list: its participants as a count."""
    return {**_conference_fields(c), "participants": len(c.participants)}


def conference_json(c: ConferenceView) -> dict[str, Any]:
    """One conference with every participant."""
    return {**_conference_fields(c), "participants": [participant_json(p) for p in c.participants]}


def event_json(event: OperatorEvent) -> dict[str, Any]:
    return {
        "conference": event.conference_id,
        "participant": event.participant_id,
        "data": dict(event.data),
    }


def leg_usage_json(r: LegUsage) -> dict[str, Any]:
    """A leg's usage record as the API shows it: the export's fields, times in the API's form."""
    return dict(leg_to_json(r, iso))


def conference_usage_json(r: ConferenceUsage) -> dict[str, Any]:
    return dict(conference_to_json(r, iso))
