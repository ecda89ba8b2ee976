"""JSON renderings: UTC times with Z, the event body."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone

from imsconf.focus.admin import OperatorEvent
from imsconf.web.events import EventQueue, render
from imsconf.web.views import iso


def test_iso_is_utc_with_z() -> None:
    assert iso(datetime(2027, 3, 1, 12, 0, 0, tzinfo=UTC)) == "2027-03-01T12:00:00Z"
    plus2 = timezone(timedelta(hours=2))
    assert iso(datetime(2027, 3, 1, 14, 0, 0, tzinfo=plus2)) == "2027-03-01T12:00:00Z"
    assert iso(datetime(2027, 3, 1, 12, 0, 0, 250000, tzinfo=UTC)) == "2027-03-01T12:00:00.250Z"


def test_render_one_event() -> None:
    event = OperatorEvent("key-epoch", "c1", None, {"epoch": 3})
    data = b'{"conference":"c1","participant":null,"data":{"epoch":3}}'
    assert render(event) == b"event: key-epoch\ndata: " + data + b"\n\n"


def test_event_queue_overflows_once_and_for_all() -> None:
    async def scenario() -> tuple[bool, OperatorEvent | None]:
        queue = EventQueue(size=2)
        for i in range(3):
            queue.put(OperatorEvent("key-epoch", "c1", None, {"epoch": i}))
        return queue.overflowed, await queue.get(0.01)

    assert asyncio.run(scenario()) == (True, None)
