"""The aiohttp application of the operator plane, built from :class:`imsconf.web.deps.WebDeps`.

Middlewares, outermost first: the request counter (``imsconf_http_requests_total``, when a registry is
given), the error renderer (every error is the JSON shape of :mod:`.errors`; an unexpected exception is a
logged 500 without a traceback), the connection guard's bracket (:mod:`.guard`), the token check
(:mod:`.auth`).  The routes are exactly those of the route table, :data:`ROUTES`.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import Final

from aiohttp import web
from aiohttp.typedefs import Middleware

from imsconf import __version__
from imsconf.store.errors import StoreUnavailable

from . import bookings, cdrs, conferences, events, health, metrics, openapi, session
from .auth import auth_middleware
from .deps import DEPS, WebDeps
from .errors import MAX_BODY, ApiError, store_unavailable
from .guard import ConnectionGuard
from .metrics import RequestCounter
from .routes import Access, Handler, Route
from .turns import Turns

__all__ = ["ROUTES", "SCHEMAS", "build_app", "routes_for"]

log = logging.getLogger("imsconf.web")

ROUTES: Final[tuple[Route, ...]] = (
    *bookings.ROUTES,
    *conferences.ROUTES,
    *events.ROUTES,
    *cdrs.ROUTES,
    *metrics.ROUTES,
    *health.ROUTES,
    *openapi.ROUTES,
    *session.ROUTES,
)
SCHEMAS: Final[Mapping[str, Mapping[str, object]]] = {
    **bookings.SCHEMAS,
    **conferences.SCHEMAS,
    **events.SCHEMAS,
    **cdrs.SCHEMAS,
    **health.SCHEMAS,
    **session.SCHEMAS,
}
_METHOD_ORDER: Final = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def routes_for(deps: WebDeps) -> tuple[Route, ...]:
    """The route table as this server serves it (``/metrics`` is public when ``metrics_auth`` is off)."""
    if deps.metrics_auth:
        return ROUTES
    return tuple(dataclasses.replace(r, access=Access.PUBLIC) if r.name == "metrics" else r for r in ROUTES)


def _allow(methods: set[str]) -> str:
    known = [m for m in _METHOD_ORDER if m in methods]
    return ", ".join(known + sorted(methods - set(known)))


def _from_aiohttp(request: web.Request, exc: web.HTTPException) -> ApiError:
    if isinstance(exc, web.HTTPMethodNotAllowed):
        return ApiError(
            405, f"{request.method[:16]} not allowed here", headers={"Allow": _allow(exc.allowed_methods)}
        )
    if isinstance(exc, web.HTTPNotFound):
        return ApiError(404, "no such resource")
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        return ApiError(413, f"body larger than {MAX_BODY} bytes", close=True)
    return ApiError(exc.status, exc.reason)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return exc.response()
    except web.HTTPException as exc:
        return _from_aiohttp(request, exc).response()
    except StoreUnavailable:  # the database is down: the store reconnects on a later request
        log.warning("event=http_store_unavailable method=%s path=%s", request.method[:16], request.path[:80])
        return store_unavailable().response()
    except ConnectionError:
        log.debug("event=http_client_gone path=%s", request.path[:80])
        return ApiError(500, "connection lost", close=True).response()
    except Exception:  # a bug: log it, never show it
        log.exception("event=http_internal_error method=%s path=%s", request.method[:16], request.path[:80])
        return ApiError(500, "internal error", close=True).response()


async def _common_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers["Server"] = "imsconf"
    response.headers.setdefault("Cache-Control", "no-store")
    response.headers["X-Content-Type-Options"] = "nosniff"


def build_app(deps: WebDeps, guard: ConnectionGuard | None = None) -> web.Application:
    """The application for *deps*; *guard* (the server's connection guard) is told of authenticated
    requests and brackets each request's deadline."""
    table = routes_for(deps)
    access: dict[str, Access] = {}
    middlewares: list[Middleware] = []
    if deps.registry is not None:
        middlewares.append(RequestCounter(deps.registry).middleware)
    middlewares.append(error_middleware)
    if guard is not None:
        middlewares.append(guard.middleware)
    middlewares.append(
        auth_middleware(deps.tokens, access, guard.authenticated if guard is not None else lambda _: None)
    )
    app = web.Application(middlewares=middlewares, client_max_size=MAX_BODY)
    app[DEPS] = deps
    app[openapi.OPENAPI] = openapi.render_document(table, SCHEMAS, version=__version__)
    app[conferences.TURNS] = Turns()
    for route in table:
        app.router.add_route(route.method, route.path, route.handler, name=route.name)
        access[route.name] = route.access
        for i, alias in enumerate(route.aliases, 1):
            name = f"{route.name}_alias{i}"
            app.router.add_route(route.method, alias, route.handler, name=name)
            access[name] = route.access
    app.on_response_prepare.append(_common_headers)
    return app
