from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imsconf.media.dtmf import DtmfError, DtmfEvent, DtmfReceiver, TelephoneEvent, parse_telephone_event


def te(event: int, end: bool, duration: int, volume: int = 10) -> bytes:
    return bytes(TelephoneEvent(event, end, volume, duration))


def test_parse() -> None:
    assert parse_telephone_event(bytes.fromhex("058a0320")) == TelephoneEvent(5, True, 10, 800)
    with pytest.raises(DtmfError):
        parse_telephone_event(b"\x05\x8a\x03")


@given(st.binary(max_size=8))
def test_random_payloads_raise_only_dtmf_error(data: bytes) -> None:
    rx = DtmfReceiver()
    try:
        rx.feed(data, 0, 0.0)
    except DtmfError:
        pass


def test_one_key_press_gives_one_start_and_one_end() -> None:
    rx = DtmfReceiver()
    ts = 12345
    events = []
    for i, d in enumerate((160, 320, 480, 640)):
        events += rx.feed(te(1, False, d), ts, i * 0.02)
    for i in range(3):  # the end packet, sent three times
        events += rx.feed(te(1, True, 800), ts, 0.1 + i * 0.02)
    assert events == [DtmfEvent("1", 20, 10, end=False), DtmfEvent("1", 100, 10, end=True)]
    assert rx.duplicates == 2 and not rx.active


def test_digits_and_specials() -> None:
    rx = DtmfReceiver()
    out = []
    for n, code in enumerate((10, 11, 12, 16)):
        out += rx.feed(te(code, True, 400), 1000 + n * 2000, n)
    assert [e.digit for e in out] == ["*", "#", "A", "flash"]
    assert rx.feed(te(200, True, 400), 99999, 9.0) == [] and rx.ignored == 1


def test_lost_end_packets_end_at_next_event_or_timeout() -> None:
    rx = DtmfReceiver(timeout=0.5)
    rx.feed(te(3, False, 160), 1000, 0.0)
    out = rx.feed(te(4, False, 160), 5000, 0.3)
    assert out == [DtmfEvent("3", 20, 10, True), DtmfEvent("4", 20, 10, False)]
    assert rx.poll(0.5) == []
    assert rx.poll(0.81) == [DtmfEvent("4", 20, 10, True)]
    assert rx.poll(2.0) == []


def test_straggler_from_older_event_ignored() -> None:
    rx = DtmfReceiver()
    rx.feed(te(3, True, 800), 5000, 0.0)
    assert rx.feed(te(2, True, 800), 1000, 0.1) == []
