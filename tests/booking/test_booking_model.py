"""Booking validation: every invalid field named, all errors collected; PIN hashing; URIs; policy."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from booking_cases import DOMAIN, END, FACTORY, INVALID, NOW, START, valid_request

from imsconf.booking.model import (
    Booking,
    BookingError,
    DownlinkMode,
    InvalidBooking,
    Invitee,
    InviteeRole,
    RekeyPolicy,
    WindowState,
    booking_from_request,
    booking_to_json,
    codecs_text,
    conference_key,
    generate_conference_uri,
    hash_pin,
    parse_codecs,
    parse_rekey,
    parse_time,
    pin_from_uri,
    rekey_text,
    verify_pin_hash,
)


def build(req: dict[str, Any]) -> Booking:
    return booking_from_request(req, domain=DOMAIN, now=NOW, reserved_users=(FACTORY,))


def test_valid_request_builds_the_booking() -> None:
    b = build(valid_request())
    assert b.uri == "sip:weekly@example.com"
    assert (b.start, b.end, b.created_at) == (START, END, NOW)
    assert b.capacity == 5
    assert b.invitees == (
        Invitee("sip:alice@example.com", InviteeRole.CHAIR),
        Invitee("sips:bob@example.com", InviteeRole.MODERATOR),
        Invitee("tel:+49-30-1234567", InviteeRole.PARTICIPANT),
    )
    assert b.downlink is DownlinkMode.PER_PARTICIPANT
    assert b.rekey == RekeyPolicy(True, True, 30)
    assert b.allow_pin_in_uri and b.dial_out and not b.cancelled
    assert b.subject == "Weekly sync"
    assert b.overrun == 15 and b.closes_at == END + timedelta(minutes=15)
    assert b.has_pin and b.pin_hash is not None and "0123" not in b.pin_hash
    assert b.verify_pin("0123") and not b.verify_pin("0124") and not b.verify_pin("123")


def test_minimal_request_gets_defaults_and_a_generated_uri() -> None:
    b = build({"start": "2027-03-01T13:00:00+01:00", "end": "2027-03-01T14:30:00.999+01:00"})
    assert b.uri.startswith("sip:conf-") and b.uri.endswith("@example.com")
    assert b.start == datetime(2027, 3, 1, 12, 0, tzinfo=UTC)
    assert b.end == datetime(2027, 3, 1, 13, 30, tzinfo=UTC)  # whole seconds, UTC
    assert b.capacity == 10 and b.invitees == () and not b.has_pin
    assert b.downlink is DownlinkMode.GROUP and rekey_text(b.rekey) == "both"
    assert b.verify_pin("anything")  # no PIN: nothing to check
    assert b.overrun == 0 and b.closes_at == b.end and booking_to_json(b)["overrun"] == 0


@pytest.mark.parametrize(
    ("changes", "field", "fragment"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID]
)
def test_invalid_field_is_named(changes: dict[str, Any], field: str, fragment: str) -> None:
    with pytest.raises(InvalidBooking) as info:
        build(valid_request(**changes))
    matching = [e for e in info.value.errors if e.field == field]
    assert matching, f"no error on {field}: {info.value.errors}"
    assert any(fragment in e.reason for e in matching), matching
    # only the broken field is reported (no collateral noise)
    assert {e.field for e in info.value.errors} == {field}, info.value.errors


def test_every_error_is_collected() -> None:
    req = valid_request(
        uri="http://x", start="soon", pin="1", capacity=0, downlink="x", rekey="x", subject=7, colour=1
    )
    with pytest.raises(InvalidBooking) as info:
        build(req)
    assert set(info.value.fields) >= {
        "uri",
        "start",
        "pin",
        "capacity",
        "downlink",
        "rekey",
        "subject",
        "colour",
    }
    assert "start: " in str(info.value)


def test_audio_codecs_in_our_spelling_and_order_empty_means_the_setting() -> None:
    b = build(valid_request(audio_codecs=["g722", "PCMU", "amr-wb"]))
    assert b.audio_codecs == ("G722", "PCMU", "AMR-WB")
    assert booking_to_json(b)["audio_codecs"] == ["G722", "PCMU", "AMR-WB"]
    assert build(valid_request()).audio_codecs == ()
    assert build(valid_request(audio_codecs=[])).audio_codecs == ()
    assert build(valid_request(audio_codecs=None)).audio_codecs == ()
    assert booking_to_json(build(valid_request()))["audio_codecs"] == []
    assert parse_codecs(codecs_text(b.audio_codecs)) == b.audio_codecs and parse_codecs("") == ()


def test_request_must_be_an_object() -> None:
    with pytest.raises(InvalidBooking) as info:
        booking_from_request(["x"], domain=DOMAIN, now=NOW)  # type: ignore[arg-type]
    assert info.value.fields == ("body",)


def test_json_never_shows_the_pin() -> None:
    b = build(valid_request(pin="987654"))
    doc = booking_to_json(b)
    assert doc["has_pin"] is True
    assert "pin" not in doc and "pin_hash" not in doc
    assert "987654" not in repr(b) and str(b.pin_hash) not in repr(b)
    assert doc["invitees"][0] == {"uri": "sip:alice@example.com", "role": "chair"}
    assert doc["start"] == "2027-03-01T13:00:00Z" and doc["rekey"] == "interval:30"


CTOR_BAD: list[tuple[str, dict[str, Any], str]] = [
    ("id", {"id": "UPPER_case!"}, "id"),
    ("uri", {"uri": "sip:weekly@example.com;x=1"}, "uri"),
    ("start-naive", {"start": datetime(2027, 3, 1, 13)}, "start"),
    ("end-not-datetime", {"end": "2027-03-01T14:00:00Z"}, "end"),
    ("window", {"end": START}, "end"),
    ("window-long", {"end": START + timedelta(days=8)}, "end"),
    ("created", {"created_at": datetime(2027, 1, 1)}, "created_at"),
    ("capacity", {"capacity": 0}, "capacity"),
    ("invitees-list", {"invitees": ["sip:a@x"]}, "invitees"),
    ("invitees-capacity", {"capacity": 1, "invitees": (Invitee("sip:a@x"), Invitee("sip:b@x"))}, "invitees"),
    ("downlink", {"downlink": "both"}, "downlink"),
    ("rekey", {"rekey": "sometimes"}, "rekey"),
    ("allow_pin_in_uri", {"allow_pin_in_uri": 1}, "allow_pin_in_uri"),
    ("dial_out", {"dial_out": None}, "dial_out"),
    ("overrun", {"overrun": 241}, "overrun"),
    ("cancelled", {"cancelled": "no"}, "cancelled"),
    ("audio_codecs", {"audio_codecs": ("iLBC",)}, "audio_codecs"),
    ("subject", {"subject": "\x00"}, "subject"),
    ("pin_hash", {"pin_hash": "1234"}, "pin"),
]


@pytest.mark.parametrize(("changes", "field"), [c[1:] for c in CTOR_BAD], ids=[c[0] for c in CTOR_BAD])
def test_constructor_checks_invariants(changes: dict[str, Any], field: str) -> None:
    good = build(valid_request())
    with pytest.raises(InvalidBooking) as info:
        dataclasses.replace(good, **changes)
    assert field in info.value.fields


def test_constructor_normalizes_to_utc_whole_seconds() -> None:
    good = build(valid_request())
    cet = timezone_plus(1)
    b = dataclasses.replace(good, start=datetime(2027, 3, 1, 14, 0, 0, 500, tzinfo=cet))
    assert b.start == datetime(2027, 3, 1, 13, 0, tzinfo=UTC) and b.start.tzinfo is UTC


def timezone_plus(hours: int) -> Any:
    from datetime import timezone

    return timezone(timedelta(hours=hours))


def test_invitee_checks() -> None:
    with pytest.raises(ValueError):
        Invitee("mailto:a@x")
    with pytest.raises(ValueError):
        Invitee("sip:a@x", "boss")  # type: ignore[arg-type]
    assert Invitee("SIP:a@x", "moderator").role is InviteeRole.MODERATOR  # type: ignore[arg-type]


def test_pin_hash_is_salted_and_verified() -> None:
    h1, h2 = hash_pin("4711"), hash_pin("4711")
    assert h1 != h2 and h1.startswith("scrypt$") and "4711" not in h1
    assert verify_pin_hash(h1, "4711") and verify_pin_hash(h2, "4711")
    assert not verify_pin_hash(h1, "4712")
    assert not verify_pin_hash(h1, "47110")
    assert not verify_pin_hash(h1, "")
    assert not verify_pin_hash(h1, "47 1")
    assert not verify_pin_hash("scrypt$1$1$1$xx$yy", "4711")
    assert not verify_pin_hash("plain:4711", "4711")
    with pytest.raises(ValueError):
        hash_pin("12")


def test_rekey_policy_text_round_trip() -> None:
    for text in ("on-join", "on-leave", "both", "never", "interval:30"):
        assert rekey_text(parse_rekey(text)) == text
    assert parse_rekey("interval:45s").interval == 45
    assert parse_rekey(" BOTH ") == RekeyPolicy.both()
    with pytest.raises(ValueError):
        RekeyPolicy(False, True, 10)
    for text in ("interval:0.5", "interval:500ms", "none", "on-join,on-leave"):  # server-setting forms
        with pytest.raises(ValueError):
            parse_rekey(text)


def test_generated_uris_are_unguessable() -> None:
    uris = {generate_conference_uri("example.com") for _ in range(2000)}
    assert len(uris) == 2000
    for uri in list(uris)[:20]:
        user = uri.removeprefix("sip:").split("@")[0]
        token = user.removeprefix("conf-")
        assert len(token) * 5 >= 80 and token.isalnum() and token == token.lower()
    assert generate_conference_uri("::1").endswith("@[::1]")


def test_conference_key_and_pin_parameter() -> None:
    assert conference_key("sip:weekly@Example.COM") == "weekly@example.com"
    assert conference_key("sips:weekly@example.com:5061;transport=tls") == "weekly@example.com"
    with pytest.raises(ValueError):
        conference_key("tel:+123")
    with pytest.raises(ValueError):
        conference_key("sip:example.com")
    assert pin_from_uri("sip:weekly@example.com;pin=0042") == "0042"
    assert pin_from_uri("sip:weekly@example.com;pin=42") is None
    assert pin_from_uri("sip:weekly@example.com") is None
    assert pin_from_uri("not a uri") is None


def test_overrun_bounds_and_json() -> None:
    assert build(valid_request(overrun=0)).closes_at == END
    longest = build(valid_request(overrun=240))
    assert longest.closes_at == END + timedelta(hours=4)
    assert booking_to_json(longest)["overrun"] == 240
    assert build(valid_request(overrun=None)).overrun == 0  # null: the default
    with pytest.raises(InvalidBooking) as info:
        build(valid_request(overrun=-5, capacity=0, invitees=[], dial_out=False))
    assert info.value.fields == ("capacity", "overrun")  # each wrong field named, in request order


def test_state_at() -> None:
    b = build(valid_request())
    assert b.state_at(START - timedelta(seconds=1)) is WindowState.EARLY
    assert b.state_at(START) is WindowState.OPEN
    assert b.state_at(END - timedelta(seconds=1)) is WindowState.OPEN
    assert b.state_at(END) is WindowState.ENDED
    assert dataclasses.replace(b, cancelled=True).state_at(START) is WindowState.CANCELLED
    assert str(WindowState.OPEN) == "open" and WindowState("open") is WindowState.OPEN


def test_parse_time() -> None:
    assert parse_time("2027-03-01T12:00:00z") == NOW
    assert parse_time("2027-03-01T13:00:00+01:00") == NOW
    for bad in ("", "x" * 50, "2027-13-01T00:00:00Z", "2027-03-01T12:00:00"):
        with pytest.raises(ValueError):
            parse_time(bad)


def test_booking_error_value_semantics() -> None:
    assert BookingError("a", "b") == BookingError("a", "b")
    assert len({BookingError("a", "b"), BookingError("a", "b")}) == 1
    assert BookingError("a", "b").as_json() == {"field": "a", "reason": "b"}
