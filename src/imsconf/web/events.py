"""``GET /api/v1/events``: the operator events as Server-Sent Events (either token).

Each :class:`imsconf.focus.admin.OperatorEvent` is one ``event: <kind>`` + ``data: <json>`` message; a
``: keep-alive`` comment goes out when nothing else has for ``keepalive_seconds``.  Each client has a
bounded queue: a client that does not read (its queue full, or one write not taken within the request
timeout) is dropped, so a stalled client never costs unbounded memory.  The subscription
(``ConferenceAdmin.watch``) ends when the client goes.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Final

from aiohttp import web

from imsconf.focus.admin import OperatorEvent

from .deps import admin_of, deps_of
from .errors import no_query
from .routes import Access, Route
from .views import event_json

__all__ = ["QUEUE_SIZE", "ROUTES", "SCHEMAS", "EventQueue"]

log = logging.getLogger("imsconf.web.events")

QUEUE_SIZE: Final = 256  # events one client may have waiting
_POLL: Final = 1.0  # seconds between two looks at whether the client is still there


class EventQueue:
    """One client's events, at most *size*; past that it overflows once and for all."""

    def __init__(self, size: int = QUEUE_SIZE) -> None:
        self._queue: asyncio.Queue[OperatorEvent] = asyncio.Queue(size)
        self.overflowed = False
        self._wake = asyncio.Event()

    def put(self, event: OperatorEvent) -> None:
        if self.overflowed:
            return
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self.overflowed = True
            self._wake.set()

    async def get(self, timeout: float) -> OperatorEvent | None:
        """The next event; None after *timeout* seconds without one, or at once after an overflow."""
        if self.overflowed:
            return None
        if not self._queue.empty():
            return self._queue.get_nowait()
        getter = asyncio.ensure_future(self._queue.get())
        waker = asyncio.ensure_future(self._wake.wait())
        try:
            done, _ = await asyncio.wait(
                (getter, waker), timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            waker.cancel()
            if not getter.done():
                getter.cancel()
        if getter in done and not getter.cancelled():
            return getter.result()
        return None


def render(event: OperatorEvent) -> bytes:
    data = json.dumps(event_json(event), separators=(",", ":"), ensure_ascii=False)
    return f"event: {event.kind}\ndata: {data}\n\n".encode()


async def _pump(
    request: web.Request, response: web.StreamResponse, queue: EventQueue, keepalive: float, timeout: float
) -> None:
    loop = asyncio.get_running_loop()
    last = loop.time()
    while not queue.overflowed:
        transport = request.transport
        if transport is None or transport.is_closing():
            return
        event = await queue.get(min(_POLL, keepalive))
        if event is not None:
            chunk = render(event)
        elif loop.time() - last >= keepalive:
            chunk = b": keep-alive\n\n"
        else:
            continue
        try:
            async with asyncio.timeout(timeout):
                await response.write(chunk)
        except TimeoutError:
            log.info("event=http_events_dropped reason=write_stalled")
            return
        last = loop.time()
    log.info("event=http_events_dropped reason=queue_full")


async def stream_events(request: web.Request) -> web.StreamResponse:
    admin = admin_of(request)
    no_query(request)
    deps = deps_of(request)
    queue = EventQueue()
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    )
    unsubscribe = admin.watch(queue.put)
    try:
        await response.prepare(request)
        await response.write(b": connected\n\n")
        await _pump(request, response, queue, deps.keepalive_seconds, deps.request_timeout)
    except ConnectionError:
        pass  # the client went away
    finally:
        unsubscribe()
    response.force_close()
    return response


ROUTES: Final = (
    Route("GET", "/api/v1/events", "stream_events", "Operator events (Server-Sent Events)", stream_events,
          Access.READ, "conferences", responses={200: ("an event stream: event: KIND, data: JSON", "Event")},
          content_type="text/event-stream"),
)  # fmt: skip

SCHEMAS: Final[dict[str, dict[str, object]]] = {
    "Event": {
        "type": "object",
        "description": "the data line of one event; the event line names its kind",
        "properties": {
            "conference": {"type": "string"},
            "participant": {"type": ["string", "null"]},
            "data": {"type": "object"},
        },
    },
}
