"""What the web layer is given: :class:`WebDeps`, built by the runtime (``imsconf.app.server``) or a test."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

from aiohttp import web
from prometheus_client import CollectorRegistry

from imsconf.booking.backend import BookingStorage
from imsconf.focus.admin import ConferenceAdmin

from .auth import Tokens
from .errors import ApiError
from .guard import REQUEST_TIMEOUT
from .usage import UsageReader

__all__ = ["DEPS", "BookingBackend", "WebDeps", "admin_of", "deps_of", "unavailable"]


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _always() -> bool:
    return True


@dataclass(frozen=True, slots=True)
class BookingBackend:
    """The booking store (either backend) and what a new booking is checked against."""

    store: BookingStorage
    domain: str
    reserved_users: tuple[str, ...] = ()  # user parts a booking may not take (the conference factory)
    clock: Callable[[], datetime] = _utcnow


@dataclass(frozen=True, slots=True)
class WebDeps:
    """Everything the routes reach.  A dependency left None makes its routes answer 503."""

    tokens: Tokens
    bookings: BookingBackend | None = None
    admin: ConferenceAdmin | None = None
    registry: CollectorRegistry | None = None  # rendered at /metrics; the request counter is added to it
    metrics_auth: bool = True  # False: /metrics without a token (a scraper on a trusted network)
    usage: UsageReader | None = None
    ready: Callable[[], bool] = _always  # /health/ready: listeners up and the mixer connected
    request_timeout: float = REQUEST_TIMEOUT
    keepalive_seconds: float = field(default=15.0)  # the event stream's keep-alive comment interval


DEPS: Final = web.AppKey("imsconf_deps", WebDeps)


def deps_of(request: web.Request) -> WebDeps:
    return request.app[DEPS]


def unavailable(what: str) -> ApiError:
    """The 503 of a route whose dependency this server was started without."""
    return ApiError(503, f"{what} not available on this server")


def admin_of(request: web.Request) -> ConferenceAdmin:
    """The live conference seam; 503 when this server runs without one."""
    admin = deps_of(request).admin
    if admin is None:
        raise unavailable("live conference control")
    return admin
