"""``GET /api/v1/session``: which role the caller's token has (the console enables its controls by it)."""

from __future__ import annotations

from typing import Final

from aiohttp import web

from .auth import ROLE_KEY
from .errors import json_response
from .routes import Access, Route

__all__ = ["ROUTES", "SCHEMAS"]


async def session(request: web.Request) -> web.StreamResponse:
    return json_response(200, {"role": request[ROLE_KEY].value})


ROUTES: Final = (
    Route("GET", "/api/v1/session", "session", "The role of the caller's token (operator or viewer)",
          session, Access.READ, "session", responses={200: ("the role", "Session")}),
)  # fmt: skip

SCHEMAS: Final[dict[str, dict[str, object]]] = {
    "Session": {
        "type": "object",
        "required": ["role"],
        "properties": {"role": {"type": "string", "enum": ["operator", "viewer"]}},
    },
}
