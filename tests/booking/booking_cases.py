"""Shared test data: a fixed clock, a valid request, and one invalid variant per field (model and HTTP)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

NOW = datetime(2027, 3, 1, 12, 0, 0, tzinfo=UTC)
DOMAIN = "example.com"
FACTORY = "conference-factory"


def iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


START = NOW + timedelta(hours=1)
END = NOW + timedelta(hours=2)


def valid_request(**changes: Any) -> dict[str, Any]:
    req: dict[str, Any] = {
        "uri": "sip:weekly@example.com",
        "start": iso(START),
        "end": iso(END),
        "pin": "0123",
        "capacity": 5,
        "invitees": [
            {"uri": "sip:alice@example.com", "role": "chair"},
            {"uri": "sips:bob@example.com", "role": "moderator"},
            {"uri": "tel:+49-30-1234567"},
        ],
        "downlink": "per-participant",
        "rekey": "interval:30",
        "allow_pin_in_uri": True,
        "dial_out": True,
        "overrun": 15,
        "subject": "Weekly sync",
    }
    for key, value in changes.items():
        if value is _DROP:
            req.pop(key, None)
        else:
            req[key] = value
    return req


_DROP = object()
DROP: Any = _DROP

# (case id, changes to the valid request, the field named in the error, a fragment of the reason)
INVALID: list[tuple[str, dict[str, Any], str, str]] = [
    ("uri-not-string", {"uri": 42}, "uri", "must be a string"),
    ("uri-empty", {"uri": ""}, "uri", "1 to 256"),
    ("uri-too-long", {"uri": "sip:" + "a" * 300 + "@example.com"}, "uri", "1 to 256"),
    ("uri-http", {"uri": "http://example.com/x"}, "uri", "sip: or sips:"),
    ("uri-garbage", {"uri": "weekly"}, "uri", "not a SIP URI"),
    ("uri-no-user", {"uri": "sip:example.com"}, "uri", "needs a user part"),
    ("uri-password", {"uri": "sip:weekly:secret@example.com"}, "uri", "plain sip:user@host"),
    ("uri-params", {"uri": "sip:weekly@example.com;transport=tcp"}, "uri", "plain sip:user@host"),
    ("uri-port", {"uri": "sip:weekly@example.com:5070"}, "uri", "plain sip:user@host"),
    ("uri-headers", {"uri": "sip:weekly@example.com?subject=x"}, "uri", "plain sip:user@host"),
    ("uri-escaped-user", {"uri": "sip:week%20ly@example.com"}, "uri", "user part must be"),
    ("uri-generated-prefix", {"uri": "sip:conf-abc@example.com"}, "uri", "reserved for generated"),
    ("uri-factory", {"uri": f"sip:{FACTORY}@example.com"}, "uri", "conference factory"),
    ("uri-other-domain", {"uri": "sip:weekly@elsewhere.org"}, "uri", "served domain"),
    ("start-missing", {"start": DROP}, "start", "is required"),
    ("start-null", {"start": None}, "start", "is required"),
    ("start-not-string", {"start": 1700000000}, "start", "ISO 8601"),
    ("start-garbage", {"start": "tomorrow"}, "start", "ISO 8601"),
    ("start-naive", {"start": "2027-03-01T13:00:00"}, "start", "UTC offset"),
    ("start-too-far", {"start": "2028-06-01T10:00:00Z", "end": "2028-06-01T11:00:00Z"}, "start", "366 days"),
    ("end-missing", {"end": DROP}, "end", "is required"),
    ("end-naive", {"end": "2027-03-01T14:00:00"}, "end", "UTC offset"),
    ("end-before-start", {"end": iso(START - timedelta(minutes=1))}, "end", "after start"),
    ("end-equals-start", {"end": iso(START)}, "end", "after start"),
    ("end-too-long", {"end": iso(START + timedelta(days=7, seconds=1))}, "end", "7 days"),
    (
        "end-in-past",
        {"start": iso(NOW - timedelta(hours=2)), "end": iso(NOW - timedelta(hours=1))},
        "end",
        "already ended",
    ),
    ("pin-number", {"pin": 1234}, "pin", "string of 4 to 12 digits"),
    ("pin-short", {"pin": "123"}, "pin", "4 to 12 digits"),
    ("pin-long", {"pin": "1234567890123"}, "pin", "4 to 12 digits"),
    ("pin-letters", {"pin": "12a4"}, "pin", "4 to 12 digits"),
    ("pin-unicode-digits", {"pin": "١٢٣٤"}, "pin", "4 to 12 digits"),
    ("capacity-zero", {"capacity": 0, "invitees": DROP, "dial_out": False}, "capacity", "1 to 1000"),
    ("capacity-huge", {"capacity": 1001}, "capacity", "1 to 1000"),
    ("capacity-string", {"capacity": "10"}, "capacity", "integer"),
    ("capacity-bool", {"capacity": True}, "capacity", "integer"),
    ("capacity-float", {"capacity": 2.5}, "capacity", "integer"),
    ("invitees-not-list", {"invitees": "sip:alice@example.com"}, "invitees", "must be a list"),
    ("invitees-item-number", {"invitees": [5]}, "invitees[0]", "must be an object"),
    ("invitees-uri-http", {"invitees": [{"uri": "http://x.org"}]}, "invitees[0].uri", "sip:, sips: or tel:"),
    ("invitees-uri-missing", {"invitees": [{"role": "chair"}]}, "invitees[0].uri", "URI string"),
    ("invitees-uri-no-user", {"invitees": [{"uri": "sip:example.com"}]}, "invitees[0].uri", "user part"),
    ("invitees-tel-bad", {"invitees": [{"uri": "tel:call-me"}]}, "invitees[0].uri", "tel URI"),
    ("invitees-role", {"invitees": [{"uri": "sip:a@x.org", "role": "boss"}]}, "invitees[0].role", "chair"),
    ("invitees-extra-key", {"invitees": [{"uri": "sip:a@x.org", "x": 1}]}, "invitees[0].x", "unknown field"),
    (
        "invitees-duplicate",
        {"invitees": [{"uri": "sip:a@x.org"}, {"uri": "sip:a@X.org;transport=tls"}]},
        "invitees[1].uri",
        "duplicate of invitees[0]",
    ),
    (
        "invitees-over-capacity",
        {"capacity": 1, "invitees": ["sip:a@x.org", "sip:b@x.org"]},
        "invitees",
        "exceed the capacity",
    ),
    ("downlink-unknown", {"downlink": "mixed"}, "downlink", "per-participant, group"),
    ("downlink-number", {"downlink": 1}, "downlink", "per-participant, group"),
    ("rekey-unknown", {"rekey": "sometimes"}, "rekey", "on-join, on-leave"),
    ("rekey-interval-zero", {"rekey": "interval:0"}, "rekey", "1 to 86400"),
    ("rekey-interval-huge", {"rekey": "interval:86401"}, "rekey", "1 to 86400"),
    ("rekey-interval-text", {"rekey": "interval:soon"}, "rekey", "whole number"),
    ("rekey-number", {"rekey": 30}, "rekey", "must be a string"),
    ("allow-pin-in-uri-string", {"allow_pin_in_uri": "yes"}, "allow_pin_in_uri", "true or false"),
    ("allow-pin-in-uri-without-pin", {"pin": DROP}, "allow_pin_in_uri", "no PIN"),
    ("dial-out-number", {"dial_out": 1}, "dial_out", "true or false"),
    ("dial-out-no-roster", {"invitees": []}, "dial_out", "roster is empty"),
    ("overrun-negative", {"overrun": -1}, "overrun", "0 to 240 minutes"),
    ("overrun-huge", {"overrun": 241}, "overrun", "0 to 240 minutes"),
    ("overrun-string", {"overrun": "15"}, "overrun", "whole number of minutes"),
    ("overrun-float", {"overrun": 1.5}, "overrun", "whole number of minutes"),
    ("overrun-bool", {"overrun": True}, "overrun", "whole number of minutes"),
    ("subject-number", {"subject": 5}, "subject", "must be a string"),
    ("subject-long", {"subject": "x" * 201}, "subject", "longer than 200"),
    ("subject-control", {"subject": "a\nb"}, "subject", "control characters"),
    ("codecs-unknown", {"audio_codecs": ["G722", "G729"]}, "audio_codecs", "unknown codec 'G729' (item 1)"),
    ("codecs-not-list", {"audio_codecs": "G722,PCMU"}, "audio_codecs", "must be a list of codec names"),
    ("codecs-item-number", {"audio_codecs": [9]}, "audio_codecs", "unknown codec 9"),
    ("codecs-twice", {"audio_codecs": ["PCMU", "pcmu"]}, "audio_codecs", "PCMU is named twice"),
    ("unknown-field", {"colour": "red"}, "colour", "unknown field"),
]
