"""The booking HTTP/1.1 JSON API on asyncio streams (``imsconf serve --http HOST:PORT``).

Routes (all need ``Authorization: Bearer <token>``; the token is ``DATA_DIR/api-token``, mode 0600)::

    POST   /bookings        JSON body -> 201 + booking, Location: /bookings/{id}
    GET    /bookings        ?active_at=ISO&include_cancelled=true -> {"bookings": [...]}
    GET    /bookings/{id}   -> booking
    DELETE /bookings/{id}   -> the cancelled booking (idempotent)

Errors are JSON ``{"error": "...", "errors": [{"field": "start", "reason": "..."}]}``: 400 (malformed
request or JSON, bad query), 401 (no or wrong token), 404, 405 (with Allow), 408 (request not complete
within ``REQUEST_TIMEOUT``), 409 (URI already booked for an overlapping window), 413 (body over
``MAX_BODY``), 415 (not ``application/json``), 422 (one entry per invalid field), 431, 500 (logged; no
traceback ever leaves), 501, 503.

No web framework: the API is four routes and the parser is strict and capped (``httpwire``); one dependency
fewer to audit.  Plain HTTP, so it listens on loopback unless told otherwise (a warning is logged: the token
would cross the network in clear).  Store calls and PIN hashing run in worker threads (``asyncio.to_thread``).
At most ``MAX_CONNECTIONS`` connections, of which ``MAX_UNAUTHENTICATED`` that have not yet sent a request
with the token: a new connection beyond that closes the oldest of those, so idle or slow clients cannot
lock an authenticated client out (each still has ``REQUEST_TIMEOUT`` for its request).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import json
import logging
import os
import re
import secrets
import stat
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Protocol
from urllib.parse import parse_qsl

from .httpwire import MAX_BODY, MAX_HEAD, HttpError, RequestHead, parse_request_head, render_response
from .model import Booking, BookingError, InvalidBooking, booking_from_request, booking_to_json, parse_time
from .store import BookingConflict, BookingStore

__all__ = [
    "DEFAULT_HTTP",
    "TOKEN_FILE",
    "ApiTokenError",
    "BookingApi",
    "BookingSettings",
    "ensure_api_token",
    "start_http",
]

log = logging.getLogger("imsconf.booking.http")


class BookingSettings(Protocol):
    """What the booking API and ``imsconf book`` read from the server's settings (app.config.Settings)."""

    @property
    def domain(self) -> str: ...
    @property
    def data_dir(self) -> Path: ...
    @property
    def factory_user(self) -> str: ...
    @property
    def http_address(self) -> tuple[str, int] | None: ...


DEFAULT_HTTP: Final = ("127.0.0.1", 8080)
TOKEN_FILE: Final = "api-token"
REQUEST_TIMEOUT: Final = 10.0  # seconds to receive a whole request (head and body), idle time included
WRITE_TIMEOUT: Final = 10.0
MAX_CONNECTIONS: Final = 64
# connections that have not yet sent a request with the right token; beyond this the oldest of them is
# closed to admit the new one, so clients that hold a connection and send nothing (or a byte at a time)
# cannot keep an authenticated client out
MAX_UNAUTHENTICATED: Final = 16
MAX_REQUESTS_PER_CONNECTION: Final = 100
_ID_RE: Final = re.compile(r"[a-z0-9]{8,64}\Z", re.A)
_TRUE: Final = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


class ApiTokenError(OSError):
    """The token file is unusable (not a regular file, too short)."""


def ensure_api_token(data_dir: Path | str) -> str:
    """Read ``DATA_DIR/api-token``, creating it (256 random bits, mode 0600) on first start."""
    path = Path(data_dir) / TOKEN_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        pass
    else:
        token = secrets.token_urlsafe(32)
        try:
            os.write(fd, (token + "\n").encode("ascii"))
            os.fsync(fd)
        finally:
            os.close(fd)
        log.info("event=api_token_created path=%s", path)
        return token
    st = os.stat(path, follow_symlinks=False)
    if not stat.S_ISREG(st.st_mode):
        raise ApiTokenError(f"{path}: not a regular file")
    if st.st_mode & 0o077:
        log.warning("event=api_token_mode_fixed path=%s mode=%o", path, stat.S_IMODE(st.st_mode))
        os.chmod(path, 0o600)
    token = path.read_text(encoding="ascii", errors="replace").strip()
    if len(token) < 32 or not token.isprintable() or " " in token:
        raise ApiTokenError(f"{path}: the token must be at least 32 printable characters without spaces")
    return token


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: dict[str, Any] | None
    headers: tuple[tuple[str, str], ...] = ()
    close: bool = False


def _error_reply(exc: HttpError) -> Reply:
    return Reply(exc.status, exc.body(), exc.headers, exc.close)


class BookingApi:
    """Routes and connection handling; :func:`start_http` binds it to a listening socket."""

    def __init__(
        self,
        store: BookingStore,
        token: str,
        *,
        domain: str,
        reserved_users: tuple[str, ...] = (),
        clock: Callable[[], datetime] | None = None,
        request_timeout: float = REQUEST_TIMEOUT,
    ) -> None:
        self.store = store
        self.request_timeout = request_timeout
        self._token = token.encode("utf-8")
        self.domain = domain
        self.reserved_users = reserved_users
        self.clock: Callable[[], datetime] = clock or (lambda: datetime.now(UTC))
        self.server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        # the connections not yet authenticated, oldest first (a dict keeps insertion order)
        self._unauthenticated: dict[asyncio.StreamWriter, None] = {}

    # -- lifecycle --

    @property
    def address(self) -> tuple[str, int]:
        assert self.server is not None and self.server.sockets
        host, port = self.server.sockets[0].getsockname()[:2]
        return str(host), int(port)

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for writer in list(self._writers):
            writer.close()
        if self.server is not None:
            with contextlib.suppress(Exception):
                await self.server.wait_closed()

    # -- connections --

    async def handle_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        try:
            while len(self._unauthenticated) >= MAX_UNAUTHENTICATED:
                oldest = next(iter(self._unauthenticated))
                del self._unauthenticated[oldest]
                self._writers.discard(oldest)  # its place is free now; its handler ends on the close
                log.debug("event=http_unauthenticated_closed peer=%s", oldest.get_extra_info("peername"))
                oldest.close()
            if len(self._writers) >= MAX_CONNECTIONS:
                await self._send(
                    writer, Reply(503, {"error": "too many connections", "errors": []}, close=True)
                )
                return
            self._writers.add(writer)
            self._unauthenticated[writer] = None
            for _ in range(MAX_REQUESTS_PER_CONNECTION):
                try:
                    async with asyncio.timeout(self.request_timeout):
                        request = await self._read_request(reader)
                except TimeoutError:
                    await self._send(
                        writer, Reply(408, {"error": "request timeout", "errors": []}, close=True)
                    )
                    return
                except HttpError as exc:
                    log.info(
                        "event=http_bad_request peer=%s status=%d reason=%s", peer, exc.status, exc.reason
                    )
                    await self._send(writer, _error_reply(exc))
                    return
                if request is None:
                    return
                head, body = request
                if self._token_ok(head):
                    self._unauthenticated.pop(writer, None)
                reply = await self.respond(head, body)
                log.debug(
                    "event=http_request method=%s path=%s status=%d", head.method, head.path, reply.status
                )
                close = reply.close or not head.keep_alive
                await self._send(writer, Reply(reply.status, reply.body, reply.headers, close))
                if close:
                    return
        except (ConnectionError, TimeoutError, OSError):
            pass
        except Exception:  # a bug: log it, never show it
            log.exception("event=http_connection_error peer=%s", peer)
        finally:
            self._writers.discard(writer)
            self._unauthenticated.pop(writer, None)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _read_request(self, reader: asyncio.StreamReader) -> tuple[RequestHead, bytes] | None:
        try:
            raw = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            if not exc.partial.strip(b"\r\n"):
                return None  # the client closed between requests
            raise HttpError(400, "incomplete request head", close=True) from None
        except asyncio.LimitOverrunError:
            raise HttpError(431, "request head too large", close=True) from None
        head = parse_request_head(raw)
        if head.content_length > MAX_BODY:
            raise HttpError(413, f"body larger than {MAX_BODY} bytes", close=True)
        try:
            body = await reader.readexactly(head.content_length) if head.content_length else b""
        except asyncio.IncompleteReadError:
            raise HttpError(400, "body shorter than Content-Length", close=True) from None
        return head, body

    async def _send(self, writer: asyncio.StreamWriter, reply: Reply) -> None:
        if writer.is_closing():  # closed here (an unauthenticated connection made room for a new one)
            return
        writer.write(render_response(reply.status, reply.body, headers=reply.headers, close=reply.close))
        async with asyncio.timeout(WRITE_TIMEOUT):
            await writer.drain()

    # -- requests --

    async def respond(self, head: RequestHead, body: bytes) -> Reply:
        """The reply to one well-framed request.  Never raises: a bug is a logged 500."""
        try:
            self._authorize(head)
            return await self._route(head, body)
        except HttpError as exc:
            return _error_reply(exc)
        except Exception:
            log.exception("event=http_internal_error method=%s path=%s", head.method, head.path)
            return Reply(500, {"error": "internal error", "errors": []}, close=True)

    def _token_ok(self, head: RequestHead) -> bool:
        values = head.get_all("authorization")
        if len(values) != 1:
            return False
        scheme, _, credentials = values[0].partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            credentials.strip().encode("utf-8", "replace"), self._token
        )

    def _authorize(self, head: RequestHead) -> None:
        challenge = ("WWW-Authenticate", 'Bearer realm="imsconf"')
        if not head.get_all("authorization"):
            raise HttpError(401, "missing bearer token", headers=[challenge])
        if not self._token_ok(head):
            log.warning("event=http_unauthorized path=%s", head.path[:80])
            raise HttpError(
                401,
                "invalid bearer token",
                headers=[("WWW-Authenticate", 'Bearer realm="imsconf", error="invalid_token"')],
            )

    async def _route(self, head: RequestHead, body: bytes) -> Reply:
        path, method = head.path, head.method
        if path == "/bookings":
            if method == "GET":
                return await self._list(head)
            if method == "POST":
                self._no_query(head)
                return await self._create(head, body)
            raise HttpError(405, f"{method} not allowed on /bookings", headers=[("Allow", "GET, POST")])
        if path.startswith("/bookings/"):
            booking_id = path.removeprefix("/bookings/")
            if not _ID_RE.match(booking_id):
                raise HttpError(404, "no such booking")
            if method not in ("GET", "DELETE"):
                raise HttpError(405, f"{method} not allowed on a booking", headers=[("Allow", "GET, DELETE")])
            self._no_query(head)
            if method == "GET":
                found = await asyncio.to_thread(self.store.get, booking_id)
            else:
                found = await asyncio.to_thread(self.store.cancel, booking_id, self.clock())
                if found is not None:
                    log.info("event=booking_cancelled id=%s", booking_id)
            if found is None:
                raise HttpError(404, "no such booking")
            return Reply(200, booking_to_json(found))
        raise HttpError(404, "no such resource")

    @staticmethod
    def _no_query(head: RequestHead) -> None:
        if head.query:
            raise HttpError(400, "this resource takes no query parameters")

    async def _list(self, head: RequestHead) -> Reply:
        try:
            pairs = parse_qsl(head.query, keep_blank_values=True, strict_parsing=bool(head.query))
        except ValueError:
            raise HttpError(400, "malformed query string") from None
        errors: list[BookingError] = []
        seen: set[str] = set()
        active_at: datetime | None = None
        include_cancelled = False
        for name, value in pairs:
            if name in seen:
                errors.append(BookingError(name[:64], "repeated"))
                continue
            seen.add(name)
            if name == "active_at":
                try:
                    active_at = parse_time(value)
                except ValueError as exc:
                    errors.append(BookingError(name, str(exc)))
            elif name == "include_cancelled":
                if value.lower() not in _TRUE:
                    errors.append(BookingError(name, "must be true or false"))
                else:
                    include_cancelled = _TRUE[value.lower()]
            else:
                errors.append(BookingError(name[:64], "unknown query parameter"))
        if errors:
            raise HttpError(400, "invalid query", errors=errors)
        found = await asyncio.to_thread(self.store.list, active_at, include_cancelled)
        return Reply(200, {"bookings": [booking_to_json(b) for b in found]})

    async def _create(self, head: RequestHead, body: bytes) -> Reply:
        ctype = head.get("content-type") or ""
        media, _, params = ctype.partition(";")
        charset = params.strip().lower().replace(" ", "")
        if media.strip().lower() != "application/json" or charset not in (
            "",
            "charset=utf-8",
            'charset="utf-8"',
        ):
            raise HttpError(415, "Content-Type must be application/json")
        data = _decode_json(body)
        try:
            booking = await asyncio.to_thread(self._create_sync, data)
        except BookingConflict as exc:
            raise HttpError(409, "conference URI already booked", errors=exc.errors) from None
        except InvalidBooking as exc:
            raise HttpError(422, "invalid booking", errors=exc.errors) from None
        log.info("event=booking_created id=%s uri=%s", booking.id, booking.uri)
        return Reply(201, booking_to_json(booking), headers=(("Location", f"/bookings/{booking.id}"),))

    def _create_sync(self, data: dict[str, Any]) -> Booking:
        booking = booking_from_request(
            data, domain=self.domain, now=self.clock(), reserved_users=self.reserved_users
        )
        return self.store.create(booking)


def _decode_json(body: bytes) -> dict[str, Any]:
    def body_error(reason: str) -> HttpError:
        return HttpError(400, "malformed JSON body", errors=[BookingError("body", reason)])

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in pairs:
            if key in out:
                raise ValueError(f"duplicate key {key[:40]!r}")
            out[key] = value
        return out

    def no_constant(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    if not body:
        raise body_error("empty body: send a JSON object")
    try:
        text = body.decode("utf-8")
        data = json.loads(text, object_pairs_hook=no_duplicates, parse_constant=no_constant)
    except UnicodeDecodeError:
        raise body_error("not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise body_error(f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except ValueError as exc:
        raise body_error(str(exc)) from None
    except RecursionError:
        raise body_error("nested too deeply") from None
    if not isinstance(data, dict):
        raise body_error("must be a JSON object")
    return data


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def start_http(
    settings: BookingSettings,
    store: BookingStore,
    *,
    clock: Callable[[], datetime] | None = None,
    request_timeout: float = REQUEST_TIMEOUT,
) -> BookingApi:
    """Listen on ``settings.http`` (default 127.0.0.1:8080) and serve the booking API on *store*."""
    host, port = settings.http_address or DEFAULT_HTTP
    token = ensure_api_token(settings.data_dir)
    api = BookingApi(
        store,
        token,
        domain=settings.domain,
        reserved_users=(settings.factory_user,),
        clock=clock,
        request_timeout=request_timeout,
    )
    api.server = await asyncio.start_server(api.handle_connection, host, port, limit=MAX_HEAD)
    if not _is_loopback(host):
        log.warning(
            "event=http_not_loopback host=%s: the API token and bookings cross the network in clear", host
        )
    log.info(
        "event=http_listening address=%s:%d token_file=%s",
        host,
        api.address[1],
        Path(settings.data_dir) / TOKEN_FILE,
    )
    return api
