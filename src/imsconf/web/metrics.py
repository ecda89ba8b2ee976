"""``GET /metrics``: the Prometheus registry the runtime gives (``WebDeps.registry``), and the web layer's
own counter on it, ``imsconf_http_requests_total{method, route, status}``.

The route label is the route's template (``/api/v1/bookings/{id}``), ``unmatched`` for a path no route
has; the status label is the class (``2xx`` .. ``5xx``): the label sets stay small whatever clients send.
"""

from __future__ import annotations

import asyncio
from typing import Final

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.exposition import choose_encoder

from .deps import deps_of, unavailable
from .routes import Access, Handler, Route

__all__ = ["ROUTES", "RequestCounter"]

_METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class RequestCounter:
    """The request counter, registered once on *registry*, and the middleware that counts."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.counter = Counter(
            "imsconf_http_requests_total",
            "HTTP requests answered by the operator API, by method, route template and status class",
            ("method", "route", "status"),
            registry=registry,
        )

    @staticmethod
    def route_of(request: web.Request) -> str:
        resource = request.match_info.route.resource
        if request.match_info.http_exception is not None or resource is None:
            return "unmatched"
        return resource.canonical

    def count(self, request: web.Request, status: int) -> None:
        method = request.method if request.method in _METHODS else "other"
        self.counter.labels(method, self.route_of(request), f"{status // 100}xx").inc()

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        self.count(request, response.status)
        return response


async def metrics(request: web.Request) -> web.StreamResponse:
    registry = deps_of(request).registry
    if registry is None:
        raise unavailable("metrics")
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    body = await asyncio.to_thread(encoder, registry)
    return web.Response(body=body, headers={"Content-Type": content_type})


ROUTES: Final = (
    Route("GET", "/metrics", "metrics", "Prometheus metrics", metrics, Access.READ, "metrics",
          responses={200: ("the metrics in the Prometheus text format", None), 503: ("no registry", "Error")},
          content_type="text/plain"),
)  # fmt: skip
