"""Usage records as JSON objects and CSV rows (the CLI export and the web layer share them).

Times are UTC ISO 8601 (``to_text``), ``duration`` is in seconds; in CSV a None is an empty field and a
bool is ``true``/``false``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Final

from .records import ConferenceUsage, LegUsage
from .store import to_text

__all__ = [
    "CONFERENCE_FIELDS",
    "LEG_FIELDS",
    "conference_to_json",
    "conferences_csv",
    "leg_to_json",
    "legs_csv",
]

LEG_FIELDS: Final = (
    "conference_id", "conference_uri", "participant_id", "identity", "privacy", "joined", "left",
    "duration", "reason", "codec", "srtp_suite", "key_mode", "packets_sent", "packets_received", "loss",
    "jitter_ms",
)  # fmt: skip
CONFERENCE_FIELDS: Final = (
    "conference_id", "conference_uri", "owner", "created", "ended", "duration", "reason", "participants",
    "planned",
)  # fmt: skip

Json = str | int | float | bool | None


def leg_to_json(r: LegUsage, time_text: Callable[[datetime], str] = to_text) -> dict[str, Json]:
    """One leg's record; *time_text* renders its times (the store's fixed-width form by default)."""
    return {
        "conference_id": r.conference_id,
        "conference_uri": r.conference_uri,
        "participant_id": r.participant_id,
        "identity": r.identity,
        "privacy": r.privacy,
        "joined": time_text(r.joined),
        "left": time_text(r.left),
        "duration": r.duration,
        "reason": r.reason,
        "codec": r.codec,
        "srtp_suite": r.srtp_suite,
        "key_mode": r.key_mode,
        "packets_sent": r.packets_sent,
        "packets_received": r.packets_received,
        "loss": r.loss,
        "jitter_ms": r.jitter_ms,
    }


def conference_to_json(r: ConferenceUsage, time_text: Callable[[datetime], str] = to_text) -> dict[str, Json]:
    """One conference's record; *time_text* as for :func:`leg_to_json`."""
    return {
        "conference_id": r.conference_id,
        "conference_uri": r.conference_uri,
        "owner": r.owner,
        "created": time_text(r.created),
        "ended": time_text(r.ended),
        "duration": r.duration,
        "reason": r.reason,
        "participants": r.participants,
        "planned": r.planned,
    }


def _cell(v: Json) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _csv(fields: tuple[str, ...], rows: Iterable[dict[str, Json]]) -> str:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow(fields)
    for row in rows:
        w.writerow([_cell(row[f]) for f in fields])
    return out.getvalue()


def legs_csv(records: Iterable[LegUsage]) -> str:
    """A header row, then one row per leg."""
    return _csv(LEG_FIELDS, (leg_to_json(r) for r in records))


def conferences_csv(records: Iterable[ConferenceUsage]) -> str:
    """A header row, then one row per conference."""
    return _csv(CONFERENCE_FIELDS, (conference_to_json(r) for r in records))
