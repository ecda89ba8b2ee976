"""``GET /api/v1/cdrs?since=ISO&until=ISO``: the usage records (either token), through
:class:`imsconf.web.usage.UsageReader` in a worker thread.  ``{"legs": [...], "conferences": [...]}``;
a bad or reversed time is a 400 naming the parameter."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Final
from urllib.parse import parse_qsl

from aiohttp import web

from imsconf.booking.model import parse_time

from .deps import deps_of, unavailable
from .errors import ApiError, FieldError, json_response
from .routes import Access, Param, Route
from .views import conference_usage_json, leg_usage_json

__all__ = ["ROUTES", "SCHEMAS"]

_NAMES: Final = ("since", "until")


def _times(request: web.Request) -> tuple[datetime | None, datetime | None]:
    raw = request.query_string
    try:
        pairs = parse_qsl(raw, keep_blank_values=True, strict_parsing=bool(raw))
    except ValueError:
        raise ApiError(400, "malformed query string") from None
    errors: list[FieldError] = []
    found: dict[str, datetime] = {}
    seen: set[str] = set()
    for name, value in pairs:
        if name in seen:
            errors.append(FieldError(name[:64], "repeated"))
            continue
        seen.add(name)
        if name not in _NAMES:
            errors.append(FieldError(name[:64], "unknown query parameter"))
            continue
        try:
            found[name] = parse_time(value)
        except ValueError as exc:
            errors.append(FieldError(name, str(exc)))
    since, until = found.get("since"), found.get("until")
    if since is not None and until is not None and until < since:
        errors.append(FieldError("until", "must not be before since"))
    if errors:
        raise ApiError(400, "invalid query", errors=errors)
    return since, until


async def usage_records(request: web.Request) -> web.StreamResponse:
    reader = deps_of(request).usage
    if reader is None:
        raise unavailable("usage records")
    since, until = _times(request)
    legs, conferences = await asyncio.to_thread(reader.records, since, until)
    return json_response(
        200,
        {
            "legs": [leg_usage_json(r) for r in legs],
            "conferences": [conference_usage_json(r) for r in conferences],
        },
    )


_TIME: Final = {"type": "string", "format": "date-time"}

ROUTES: Final = (
    Route("GET", "/api/v1/cdrs", "usage_records", "Usage records of legs and conferences", usage_records,
          Access.READ, "usage",
          params=(Param("since", "query", "records that ended at or after this instant (ISO 8601)", _TIME),
                  Param("until", "query", "records that ended before this instant (ISO 8601)", _TIME)),
          responses={200: ("the records", "UsageRecords"), 400: ("invalid query", "Error"),
                     503: ("no usage store", "Error")}),
)  # fmt: skip

SCHEMAS: Final[dict[str, dict[str, object]]] = {
    "UsageRecords": {
        "type": "object",
        "required": ["legs", "conferences"],
        "properties": {
            "legs": {"type": "array", "items": {"type": "object"}},
            "conferences": {"type": "array", "items": {"type": "object"}},
        },
    },
}
