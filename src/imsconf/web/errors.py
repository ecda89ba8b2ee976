"""The API's one error shape and its JSON bodies.

Every error is ``{"error": "<what went wrong>", "errors": [{"field": "...", "reason": "..."}]}``: the list
names each wrong field of a body or query (a 422 or 400 lists them all at once), empty otherwise.  No
traceback or exception text ever leaves; an unexpected exception is a logged 500.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

from aiohttp import web

from imsconf.store.errors import RETRY_AFTER

__all__ = [
    "MAX_BODY",
    "ApiError",
    "FieldError",
    "FieldReason",
    "decode_json",
    "json_response",
    "no_query",
    "read_json",
    "store_unavailable",
]

MAX_BODY: Final = 64 * 1024  # bytes of a request body; beyond: 413


class FieldReason(Protocol):
    """One wrong field (``imsconf.booking.BookingError`` is one)."""

    @property
    def field(self) -> str: ...
    @property
    def reason(self) -> str: ...


@dataclass(frozen=True, slots=True)
class FieldError:
    field: str
    reason: str


class ApiError(Exception):
    """An answer to send instead of handling the request: status, a human reason, the wrong fields."""

    def __init__(
        self,
        status: int,
        reason: str,
        *,
        errors: Sequence[FieldReason] = (),
        headers: Mapping[str, str] | None = None,
        close: bool = False,
    ) -> None:
        super().__init__(f"{status} {reason}")
        self.close = close  # the connection cannot go on (a body left unread)
        self.status = status
        self.reason = reason
        self.errors = tuple(FieldError(e.field, e.reason) for e in errors)
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        return {"error": self.reason, "errors": [{"field": e.field, "reason": e.reason} for e in self.errors]}

    def response(self) -> web.Response:
        response = json_response(self.status, self.body(), headers=self.headers)
        if self.close:
            response.force_close()
        return response


def store_unavailable() -> ApiError:
    """The 503 of a request the store could not serve now (the database unreachable), with the
    Retry-After every store outage answers."""
    return ApiError(503, "store unavailable, try again later", headers={"Retry-After": str(RETRY_AFTER)})


def json_response(
    status: int, body: Mapping[str, Any] | None, *, headers: Mapping[str, str] | None = None
) -> web.Response:
    """A compact JSON response (``Content-Type: application/json``); no body for *body* None."""
    if body is None:
        return web.Response(status=status, headers=headers)
    payload = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8") + b"\n"
    return web.Response(status=status, body=payload, content_type="application/json", headers=headers)


def _body_error(reason: str) -> ApiError:
    return ApiError(400, "malformed JSON body", errors=[FieldError("body", reason)])


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key[:40]!r}")
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def decode_json(body: bytes) -> dict[str, Any]:
    """A JSON object from *body*: strict (no duplicate keys, no NaN/Infinity); ApiError 400 naming why."""
    if not body:
        raise _body_error("empty body: send a JSON object")
    try:
        text = body.decode("utf-8")
        data = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except UnicodeDecodeError:
        raise _body_error("not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise _body_error(f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except ValueError as exc:
        raise _body_error(str(exc)) from None
    except RecursionError:
        raise _body_error("nested too deeply") from None
    if not isinstance(data, dict):
        raise _body_error("must be a JSON object")
    return data


def _check_content_type(request: web.Request) -> None:
    values = request.headers.getall("Content-Type", [])
    if len(values) > 1:
        raise ApiError(400, "Content-Type header repeated")
    media, _, params = (values[0] if values else "").partition(";")
    charset = params.strip().lower().replace(" ", "")
    if media.strip().lower() != "application/json" or charset not in ("", "charset=utf-8", 'charset="utf-8"'):
        raise ApiError(415, "Content-Type must be application/json")


async def read_json(request: web.Request, timeout: float) -> dict[str, Any]:
    """The request's JSON object body: 415 for another media type, 413 beyond :data:`MAX_BODY`, 400 for
    anything that is not one strict JSON object, 408 when it has not arrived within *timeout* seconds."""
    _check_content_type(request)
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise ApiError(413, f"body larger than {MAX_BODY} bytes", close=True)
    try:
        async with asyncio.timeout(timeout):
            body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise ApiError(413, f"body larger than {MAX_BODY} bytes", close=True) from None
    except TimeoutError:
        raise ApiError(408, "request timeout", close=True) from None
    if request.content_length is not None and len(body) < request.content_length:
        raise ApiError(
            400, "malformed request", errors=[FieldError("body", "shorter than Content-Length")], close=True
        )
    return decode_json(body)


def no_query(request: web.Request) -> None:
    """400 when the request carries query parameters the resource does not take."""
    if request.query_string:
        raise ApiError(400, "this resource takes no query parameters")
