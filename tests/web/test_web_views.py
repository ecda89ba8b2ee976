"""JSON renderings: UTC times with Z, the event body."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone
from importlib import resources

from imsconf.focus.admin import OperatorEvent
from imsconf.web.conferences import SCHEMAS
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


def test_render_a_message_relayed_event_and_the_chat_fields() -> None:
    event = OperatorEvent("message-relayed", "c1", None, {"count": 12})
    data = b'{"conference":"c1","participant":null,"data":{"count":12}}'
    assert render(event) == b"event: message-relayed\ndata: " + data + b"\n\n"


def test_the_schemas_document_the_chat_fields() -> None:
    props = SCHEMAS["Participant"]["properties"]
    assert isinstance(props, dict) and props["chat"]["type"] == "boolean"
    for name in ("Conference", "ConferenceSummary"):
        conf = SCHEMAS[name]["properties"]
        assert isinstance(conf, dict) and conf["messages"]["type"] == "integer"


def test_the_console_shows_chat_and_the_live_count_as_text_only() -> None:
    console = resources.files("imsconf.web") / "console"
    js = (console / "console.js").read_text()
    html = (console / "index.html").read_text()
    assert "<th>Chat</th>" in html and 'p.chat ? "yes" : ""' in js
    assert '"Messages"' in js and 'kind === "message-relayed"' in js
    assert "count.textContent = " in js and "innerHTML" not in js
