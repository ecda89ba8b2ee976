"""The booking routes: ``/api/v1/bookings`` and ``/api/v1/bookings/{id}`` (``/bookings`` is an alias).

::

    POST   /api/v1/bookings        JSON body -> 201 + booking, Location: /api/v1/bookings/{id}
    GET    /api/v1/bookings        ?active_at=ISO&include_cancelled=true -> {"bookings": [...]}
    GET    /api/v1/bookings/{id}   -> booking
    DELETE /api/v1/bookings/{id}   -> the cancelled booking (idempotent)

400 malformed JSON or query, 404, 405, 409 (URI already booked for an overlapping window), 413, 415,
422 (one entry per invalid field).  Store calls and PIN hashing run in worker threads.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any, Final
from urllib.parse import parse_qsl

from aiohttp import web

from imsconf.booking.model import (
    SUPPORTED_CODECS,
    Booking,
    InvalidBooking,
    booking_from_request,
    booking_to_json,
    parse_time,
)
from imsconf.booking.store import BookingConflict

from .deps import BookingBackend, deps_of, unavailable
from .errors import ApiError, FieldError, json_response, no_query, read_json
from .routes import Access, Param, Route

__all__ = ["ROUTES", "SCHEMAS"]

log = logging.getLogger("imsconf.web.bookings")

BASE: Final = "/api/v1/bookings"
_ID: Final = "{id:[a-z0-9]{8,64}}"
_TRUE: Final = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def _backend(request: web.Request) -> BookingBackend:
    backend = deps_of(request).bookings
    if backend is None:
        raise unavailable("bookings")
    return backend


def _query(request: web.Request) -> tuple[datetime | None, bool]:
    raw = request.query_string
    try:
        pairs = parse_qsl(raw, keep_blank_values=True, strict_parsing=bool(raw))
    except ValueError:
        raise ApiError(400, "malformed query string") from None
    errors: list[FieldError] = []
    seen: set[str] = set()
    active_at: datetime | None = None
    include_cancelled = False
    for name, value in pairs:
        if name in seen:
            errors.append(FieldError(name[:64], "repeated"))
            continue
        seen.add(name)
        if name == "active_at":
            try:
                active_at = parse_time(value)
            except ValueError as exc:
                errors.append(FieldError(name, str(exc)))
        elif name == "include_cancelled":
            if value.lower() not in _TRUE:
                errors.append(FieldError(name, "must be true or false"))
            else:
                include_cancelled = _TRUE[value.lower()]
        else:
            errors.append(FieldError(name[:64], "unknown query parameter"))
    if errors:
        raise ApiError(400, "invalid query", errors=errors)
    return active_at, include_cancelled


async def list_bookings(request: web.Request) -> web.StreamResponse:
    backend = _backend(request)
    active_at, include_cancelled = _query(request)
    found = await asyncio.to_thread(backend.store.list, active_at, include_cancelled)
    return json_response(200, {"bookings": [booking_to_json(b) for b in found]})


def _create_sync(backend: BookingBackend, data: dict[str, Any]) -> Booking:
    booking = booking_from_request(
        data, domain=backend.domain, now=backend.clock(), reserved_users=backend.reserved_users
    )
    return backend.store.create(booking)


async def create_booking(request: web.Request) -> web.StreamResponse:
    backend = _backend(request)
    no_query(request)
    data = await read_json(request, deps_of(request).request_timeout)
    try:
        booking = await asyncio.to_thread(_create_sync, backend, data)
    except BookingConflict as exc:
        raise ApiError(409, "conference URI already booked", errors=exc.errors) from None
    except InvalidBooking as exc:
        raise ApiError(422, "invalid booking", errors=exc.errors) from None
    log.info("event=booking_created id=%s uri=%s", booking.id, booking.uri)
    base = request.path.rstrip("/")
    return json_response(201, booking_to_json(booking), headers={"Location": f"{base}/{booking.id}"})


async def get_booking(request: web.Request) -> web.StreamResponse:
    backend = _backend(request)
    no_query(request)
    found = await asyncio.to_thread(backend.store.get, request.match_info["id"])
    if found is None:
        raise ApiError(404, "no such booking")
    return json_response(200, booking_to_json(found))


async def cancel_booking(request: web.Request) -> web.StreamResponse:
    backend = _backend(request)
    no_query(request)
    booking_id = request.match_info["id"]
    found = await asyncio.to_thread(backend.store.cancel, booking_id, backend.clock())
    if found is None:
        raise ApiError(404, "no such booking")
    log.info("event=booking_cancelled id=%s", booking_id)
    return json_response(200, booking_to_json(found))


_ID_PARAM: Final = Param("id", "path", "the booking id", {"type": "string", "pattern": "^[a-z0-9]{8,64}$"})
_NOT_FOUND: Final = ("no such booking", "Error")

ROUTES: Final = (
    Route("GET", BASE, "list_bookings", "List bookings", list_bookings, Access.READ, "bookings",
          params=(Param("active_at", "query", "only bookings whose window contains this instant (ISO 8601)",
                        {"type": "string", "format": "date-time"}),
                  Param("include_cancelled", "query", "also cancelled bookings (true/false)",
                        {"type": "boolean"})),
          responses={200: ("the bookings", "BookingList"), 400: ("invalid query", "Error")},
          aliases=("/bookings",)),
    Route("POST", BASE, "create_booking", "Book a conference", create_booking, Access.WRITE, "bookings",
          request="BookingRequest",
          responses={201: ("the booking (Location: its URL)", "Booking"),
                     400: ("malformed JSON body", "Error"), 409: ("URI already booked", "Error"),
                     413: ("body too large", "Error"), 415: ("not application/json", "Error"),
                     422: ("invalid fields", "Error")},
          aliases=("/bookings",)),
    Route("GET", f"{BASE}/{_ID}", "get_booking", "One booking", get_booking, Access.READ, "bookings",
          params=(_ID_PARAM,), responses={200: ("the booking", "Booking"), 404: _NOT_FOUND},
          aliases=(f"/bookings/{_ID}",)),
    Route("DELETE", f"{BASE}/{_ID}", "cancel_booking", "Cancel a booking (idempotent)", cancel_booking,
          Access.WRITE, "bookings", params=(_ID_PARAM,),
          responses={200: ("the cancelled booking", "Booking"), 404: _NOT_FOUND},
          aliases=(f"/bookings/{_ID}",)),
)  # fmt: skip

_TIME: Final = {"type": "string", "format": "date-time"}
SCHEMAS: Final[dict[str, dict[str, object]]] = {
    "BookingRequest": {
        "type": "object",
        "required": ["start", "end"],
        "properties": {
            "uri": {"type": "string", "description": "sip:NAME@DOMAIN; generated when absent"},
            "start": _TIME,
            "end": _TIME,
            "pin": {"type": "string", "pattern": "^[0-9]{4,12}$"},
            "capacity": {"type": "integer", "minimum": 1},
            "invitees": {"type": "array", "items": {"type": "object"}},
            "downlink": {"type": "string"},
            "rekey": {"type": "string"},
            "allow_pin_in_uri": {"type": "boolean"},
            "dial_out": {"type": "boolean"},
            "subject": {"type": "string"},
            "audio_codecs": {
                "type": "array",
                "items": {"type": "string", "enum": list(SUPPORTED_CODECS)},
                "description": "the conference's audio codecs, preferred first; empty: the server's setting",
            },
        },
    },
    "Booking": {
        "type": "object",
        "required": ["id", "uri", "start", "end", "has_pin", "cancelled"],
        "properties": {
            "id": {"type": "string"},
            "uri": {"type": "string"},
            "start": _TIME,
            "end": _TIME,
            "has_pin": {"type": "boolean"},
            "cancelled": {"type": "boolean"},
            "audio_codecs": {"type": "array", "items": {"type": "string"}},
        },
        "additionalProperties": True,
    },
    "BookingList": {
        "type": "object",
        "required": ["bookings"],
        "properties": {"bookings": {"type": "array", "items": {"$ref": "#/components/schemas/Booking"}}},
    },
}
