"""The OpenAPI 3.1 document of the API, rendered from the route table (:mod:`imsconf.web.routes`).

``GET /api/v1/openapi.json`` (no token) serves it.  Nothing here is written by hand but the component
schemas the routes name: a route added to the table is in the document, with its parameters, its body,
its answers and who may call it (``x-roles``); the old paths kept as aliases are listed as deprecated.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, Final

from aiohttp import web

from .errors import json_response
from .routes import Access, Route

__all__ = ["OPENAPI", "ROUTES", "document_path", "render_document"]

OPENAPI: Final = web.AppKey("imsconf_openapi", dict)
_PLACEHOLDER: Final = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::[^{}]*(?:\{[^{}]*\}[^{}]*)*)?\}")
_ROLES: Final = {Access.PUBLIC: [], Access.READ: ["operator", "viewer"], Access.WRITE: ["operator"]}
_ERROR: Final[dict[str, object]] = {
    "type": "object",
    "required": ["error", "errors"],
    "properties": {
        "error": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "reason"],
                "properties": {"field": {"type": "string"}, "reason": {"type": "string"}},
            },
        },
    },
}


def document_path(template: str) -> str:
    """``/api/v1/bookings/{id:[a-z0-9]{8,64}}`` → ``/api/v1/bookings/{id}``."""
    return _PLACEHOLDER.sub(lambda m: "{" + m.group(1) + "}", template)


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _responses(route: Route) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for status, (description, schema) in sorted(route.responses.items()):
        answer: dict[str, Any] = {"description": description}
        if schema is not None:
            ctype = route.content_type if status < 300 else "application/json"
            answer["content"] = {ctype: {"schema": _ref(schema)}}
        elif status < 300 and status != 204:
            answer["content"] = {route.content_type: {"schema": {"type": "string"}}}
        out[str(status)] = answer
    if route.access is not Access.PUBLIC:
        error = {"application/json": {"schema": _ref("Error")}}
        out.setdefault("401", {"description": "no token or a wrong one", "content": error})
        if route.access is Access.WRITE:
            out.setdefault("403", {"description": "the viewer's token on a write", "content": error})
    return out


def _operation(route: Route, operation_id: str, *, deprecated: bool) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": operation_id,
        "summary": route.summary,
        "tags": [route.tag],
        "security": [] if route.access is Access.PUBLIC else [{"bearer": []}],
        "x-roles": _ROLES[route.access],
        "responses": _responses(route),
    }
    if route.params:
        op["parameters"] = [
            {
                "name": p.name,
                "in": p.where,
                "description": p.description,
                "required": p.where == "path" or p.required,
                "schema": dict(p.schema),
            }
            for p in route.params
        ]
    if route.request is not None:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(route.request)}},
        }
    if deprecated:
        op["deprecated"] = True
    return op


def render_document(
    routes: Iterable[Route], schemas: Mapping[str, Mapping[str, object]], *, version: str
) -> dict[str, Any]:
    """The whole document for *routes*; *schemas* are the component schemas they name."""
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        templates = [(route.path, route.name, False)]
        templates += [(alias, f"{route.name}_alias{i}", True) for i, alias in enumerate(route.aliases, 1)]
        for template, operation_id, deprecated in templates:
            item = paths.setdefault(document_path(template), {})
            item[route.method.lower()] = _operation(route, operation_id, deprecated=deprecated)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "imsconf operator API",
            "version": version,
            "description": "Bookings, live conferences, operator events, usage records, metrics and health.",
        },
        "servers": [{"url": "/"}],
        "paths": dict(sorted(paths.items())),
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Error": _ERROR, **{name: dict(schema) for name, schema in schemas.items()}},
        },
    }


async def openapi_json(request: web.Request) -> web.StreamResponse:
    return json_response(200, request.app[OPENAPI])


ROUTES: Final = (
    Route("GET", "/api/v1/openapi.json", "openapi", "This document", openapi_json, Access.PUBLIC, "meta",
          responses={200: ("the OpenAPI document", None)}),
)  # fmt: skip
