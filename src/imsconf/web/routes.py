"""The one route table: each route says its method, path, summary, parameters, schemas and who may call it.

:func:`imsconf.web.app.build_app` registers exactly these routes with aiohttp and
:mod:`imsconf.web.openapi` renders exactly these into the OpenAPI document, so the two cannot drift.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from aiohttp import web

__all__ = ["Access", "Handler", "Param", "Route"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Access(enum.Enum):
    """Who may call a route."""

    PUBLIC = "public"  # no token (health, the OpenAPI document, the console's static files)
    READ = "read"  # either token: the operator's or the viewer's
    WRITE = "write"  # the operator's token only; the viewer's gets 403


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    where: Literal["path", "query"]
    description: str
    schema: Mapping[str, object] = field(default_factory=lambda: {"type": "string"})
    required: bool = False  # path parameters are always required


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    path: str  # aiohttp path template; "{id:regex}" placeholders render as "{id}" in the document
    name: str  # unique; the aiohttp route name and the OpenAPI operationId
    summary: str
    handler: Handler
    access: Access
    tag: str
    params: tuple[Param, ...] = ()
    request: str | None = None  # schema name of the JSON request body
    # status -> (description, schema name of the JSON response or None for no body / not JSON)
    responses: Mapping[int, tuple[str, str | None]] = field(default_factory=dict)
    content_type: str = "application/json"  # of the success responses
    aliases: tuple[str, ...] = ()  # the same operation under older paths (registered, not documented)
