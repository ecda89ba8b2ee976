"""Dial-in from the runtime's in-memory booking index: no store query on the loop; a refusal first waits
for one re-read of the bookings (a booking another process made moments ago)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from helpers import DOMAIN, FOCUS_HOST, Harness, sdp_offer
from test_planned import T0

from imsconf.app.booking_index import BookingIndex
from imsconf.booking.model import Booking, WindowState
from imsconf.booking.store import BookingStore
from imsconf.focus.planned import PlannedOptions, Refreshed
from imsconf.keys.policy import DownlinkMode
from imsconf.sip.message import Response


def _booking(uri: str = f"sip:weekly@{DOMAIN}", **kw: object) -> Booking:
    return Booking(
        id="b00000001",
        uri=uri,
        start=T0,
        end=T0 + timedelta(hours=1),
        created_at=T0 - timedelta(days=1),
        capacity=5,
        downlink=DownlinkMode.PER_PARTICIPANT,
        **kw,  # type: ignore[arg-type]
    )


def test_index_answers_like_the_store(tmp_path: Path) -> None:
    store = BookingStore(tmp_path / "b.db")
    store.create(_booking())
    index = BookingIndex(store.list(include_cancelled=True))
    for uri in (f"sip:weekly@{DOMAIN}", f"sip:weekly@{DOMAIN};pin=1", f"sip:other@{DOMAIN}", "tel:+1"):
        for at in (T0 - timedelta(minutes=1), T0 + timedelta(minutes=5), T0 + timedelta(hours=2)):
            assert index.window_status(uri, at) == store.window_status(uri, at), (uri, at)
    store.cancel("b00000001", T0)
    index.replace(store.list(include_cancelled=True))
    assert index.window_status(f"sip:weekly@{DOMAIN}", T0)[1] is WindowState.CANCELLED


def test_a_refusal_waits_for_one_refresh_and_finds_a_new_booking() -> None:
    index = BookingIndex()
    pending: list[Callable[[Refreshed], None]] = []
    h = Harness(planned=PlannedOptions(index, wall=lambda: T0 + timedelta(minutes=5), refresh=pending.append))
    alice = h.ua("alice")
    sent = h.send(alice, alice.invite(f"sip:weekly@{FOCUS_HOST}", sdp_offer()))
    assert [m for m, _ in sent if isinstance(m, Response) and m.status >= 200] == []  # not answered yet
    assert len(pending) == 1
    index.replace([_booking()])  # the re-read found it
    pending.pop()(Refreshed.current())
    resp = h.final(h.advance(0))
    assert resp.status == 200


def test_after_the_refresh_an_unknown_uri_is_404() -> None:
    pending: list[Callable[[Refreshed], None]] = []
    h = Harness(planned=PlannedOptions(BookingIndex(), refresh=pending.append))
    alice = h.ua("alice")
    h.send(alice, alice.invite(f"sip:nobody@{FOCUS_HOST}", sdp_offer()))
    pending.pop()(Refreshed.current())
    resp = h.final(h.advance(0))
    assert resp.status == 404 and pending == []


def test_an_unreachable_store_is_503_with_retry_after_and_a_known_booking_still_joins() -> None:
    """The re-read failed (the store is down): the index cannot say the URI is unknown, so the caller is
    asked to retry later; a booking the index holds open joins from memory, and once a re-read succeeds
    an unknown URI is a 404 again."""
    index = BookingIndex([_booking()])
    pending: list[Callable[[Refreshed], None]] = []
    h = Harness(planned=PlannedOptions(index, wall=lambda: T0 + timedelta(minutes=5), refresh=pending.append))
    alice, bob = h.ua("alice"), h.ua("bob")
    h.send(alice, alice.invite(f"sip:later@{FOCUS_HOST}", sdp_offer()))
    pending.pop()(Refreshed.unavailable(5))
    resp = h.final(h.advance(0))
    assert resp.status == 503 and resp.headers.get("Retry-After") == "5"
    joined = h.send(bob, bob.invite(f"sip:weekly@{FOCUS_HOST}", sdp_offer()))
    assert pending == [] and h.final(joined).status == 200
    h.send(alice, alice.invite(f"sip:later@{FOCUS_HOST}", sdp_offer()))
    pending.pop()(Refreshed.current())
    assert h.final(h.advance(0)).status == 404


def test_open_or_starting_lists_current_and_soon_windows_by_start() -> None:
    hour = timedelta(hours=1)

    def at(name: str, start: timedelta, **kw: object) -> Booking:
        return replace(_booking(f"sip:{name}@{DOMAIN}"), id=f"b{name}0000", start=T0 + start,
                       end=T0 + start + hour, **kw)  # type: ignore[arg-type]  # fmt: skip

    past, now_open, soon, later = (
        at("past", -3 * hour),
        at("open", 0 * hour),
        at("soon", 2 * hour),
        at("later", 5 * hour),
    )
    gone = at("gone", 0 * hour, cancelled=True)
    index = BookingIndex([later, gone, soon, past, now_open])
    half = T0 + timedelta(minutes=30)
    assert index.open_or_starting(half, 2 * hour) == [now_open, soon]
    assert index.open_or_starting(half, timedelta(0)) == [now_open]
    assert index.open_or_starting(T0 + hour, timedelta(0)) == []  # the window is [start, end)
    assert index.open_or_starting(T0 - hour, 10 * hour) == [now_open, soon, later]
    index.replace([])
    assert index.open_or_starting(half, 2 * hour) == []
