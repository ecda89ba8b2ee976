"""RFC 3862 message/cpim: parse, render, round trip and fuzz."""

from __future__ import annotations

import dataclasses
import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imsconf.im.cpim import MAX_HEADERS, MAX_LINE, CpimError, CpimMessage, parse_cpim, render_cpim

RFC_EXAMPLE = (
    b"From: MR SANDERS <im:piglet@100akerwood.com>\r\n"
    b"To: Depressed Donkey <im:eeyore@100akerwood.com>\r\n"
    b"DateTime: 2000-12-13T13:40:00-08:00\r\n"
    b"Subject: the weather will be fine today\r\n"
    b"Subject:;lang=fr beau temps prevu pour aujourd'hui\r\n"
    b"NS: MyFeatures <mid:MessageFeatures@id.foo.com>\r\n"
    b"Require: MyFeatures.VitalMessageOption\r\n"
    b"MyFeatures.VitalMessageOption: Confirmation-requested\r\n"
    b"MyFeatures.WackyMessageOption: Use-silly-font\r\n"
    b"\r\n"
    b"Content-type: text/xml; charset=utf-8\r\n"
    b"Content-ID: <1234567890@foo.com>\r\n"
    b"\r\n"
    b"<body>\r\nHere is the text of my message.\r\n</body>"
)


def test_rfc_3862_example() -> None:
    msg = parse_cpim(RFC_EXAMPLE)
    assert msg.from_ == "MR SANDERS <im:piglet@100akerwood.com>"
    assert msg.to == ("Depressed Donkey <im:eeyore@100akerwood.com>",)
    assert msg.datetime == "2000-12-13T13:40:00-08:00"
    assert msg.subject == "the weather will be fine today"
    assert msg.ns == ("MyFeatures <mid:MessageFeatures@id.foo.com>",)
    assert msg.other_headers == (
        ("Subject", ";lang=fr beau temps prevu pour aujourd'hui"),
        ("Require", "MyFeatures.VitalMessageOption"),
        ("MyFeatures.VitalMessageOption", "Confirmation-requested"),
        ("MyFeatures.WackyMessageOption", "Use-silly-font"),
    )
    assert msg.content_type == "text/xml; charset=utf-8"
    assert msg.content_headers == (("Content-ID", "<1234567890@foo.com>"),)
    assert msg.body == b"<body>\r\nHere is the text of my message.\r\n</body>"
    assert parse_cpim(render_cpim(msg)) == msg


def test_render_simple() -> None:
    msg = CpimMessage(
        from_='"Alice" <sip:alice@example.com>',
        to=("<sip:conf@example.com>",),
        datetime="2026-01-01T00:00:00Z",
        subject=None,
        ns=(),
        other_headers=(),
        content_type="text/plain;charset=utf-8",
        content_headers=(),
        body="héllo".encode(),
    )
    assert render_cpim(msg) == (
        b'From: "Alice" <sip:alice@example.com>\r\nTo: <sip:conf@example.com>\r\n'
        b"DateTime: 2026-01-01T00:00:00Z\r\n\r\nContent-Type: text/plain;charset=utf-8\r\n\r\n"
        + "héllo".encode()
    )


def test_bare_lf_and_folded_mime_header() -> None:
    msg = parse_cpim(b"From: <sip:a@b>\n\nContent-Type: text/plain;\n charset=utf-8\n\nhi\n")
    assert msg.content_type == "text/plain; charset=utf-8"
    assert msg.body == b"hi\n"


def test_message_header_names_are_case_sensitive_mime_names_are_not() -> None:
    # "from" is an unknown extension header, not From: the message then has no From.
    with pytest.raises(CpimError, match="no From"):
        parse_cpim(b"from: <sip:a@b>\r\n\r\nContent-Type: text/plain\r\n\r\nx")
    msg = parse_cpim(b"From: <sip:a@b>\r\n\r\nCONTENT-TYPE: text/plain\r\n\r\nx")
    assert msg.content_type == "text/plain"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "do not end"),
        (b"\r\n\r\nContent-Type: text/plain\r\n\r\n", "no message headers"),
        (b"From: <sip:a@b>\r\n\r\n\r\n", "no content headers"),
        (b"From: <sip:a@b>\r\nContent-Type: text/plain\r\n\r\nx", "do not end"),
        (b"From\r\n\r\nContent-Type: text/plain\r\n\r\n", "without ':'"),
        (b"Fr om: <sip:a@b>\r\n\r\nContent-Type: text/plain\r\n\r\n", "bad message header name"),
        (b"From: sip:a@b\r\n\r\nContent-Type: text/plain\r\n\r\n", "not in <...>"),
        (b"From: <sip:a@b>;tag=1\r\n\r\nContent-Type: text/plain\r\n\r\n", "parameters"),
        (b"From: <sip:a@b>\r\nFrom: <sip:c@d>\r\n\r\nContent-Type: text/plain\r\n\r\n", "more than one From"),
        (b"From: <sip:a@b>\r\nDateTime: yesterday\r\n\r\nContent-Type: text/plain\r\n\r\n", "RFC 3339"),
        (b"From: <sip:a@b>\r\nTo: <bad uri>\r\n\r\nContent-Type: text/plain\r\n\r\n", "bad To address"),
        (b"From: <sip:a@b>\r\n\r\nContent-Length: 3\r\n\r\nx", "no Content-Type"),
        (b"From: <sip:a@b>\r\n\r\nContent-Type: plain\r\n\r\nx", "bad Content-Type"),
        (b"From: <sip:a@b>\r\nSubject: \xff\r\n\r\nContent-Type: text/plain\r\n\r\n", "not UTF-8"),
        (b"From: <sip:a@b>\r\nSubject:\r\n\r\nContent-Type: text/plain\r\n\r\n", "empty Subject"),
        (b"From: <sip:a@b>\r\n\r\n continued\r\n\r\n", "continuation"),
    ],
)
def test_faults_name_the_reason(data: bytes, reason: str) -> None:
    with pytest.raises(CpimError, match=reason):
        parse_cpim(data)


def test_caps_on_header_count_and_length() -> None:
    many = b"".join(b"X-H%d: v\r\n" % i for i in range(MAX_HEADERS))
    with pytest.raises(CpimError, match="more than"):
        parse_cpim(b"From: <sip:a@b>\r\n" + many + b"\r\nContent-Type: text/plain\r\n\r\n")
    long = b"Subject: " + b"x" * MAX_LINE + b"\r\n"
    with pytest.raises(CpimError, match="longer than"):
        parse_cpim(b"From: <sip:a@b>\r\n" + long + b"\r\nContent-Type: text/plain\r\n\r\n")


def test_render_refuses_line_breaks() -> None:
    msg = parse_cpim(b"From: <sip:a@b>\r\n\r\nContent-Type: text/plain\r\n\r\n")
    bad = dataclasses.replace(msg, subject="a\r\nFrom: <sip:evil@x>")
    with pytest.raises(CpimError, match="line break"):
        render_cpim(bad)


# ---- Hypothesis -------------------------------------------------------------------------------------------

_NAME_CHAR = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-^_`|~"
_names = st.text(_NAME_CHAR, min_size=1, max_size=12)
_ext_names = st.one_of(_names, st.tuples(_names, _names).map(".".join)).filter(
    lambda n: n not in ("From", "To", "DateTime", "Subject", "NS")
)
_users = st.text("abcdefghijklmnopqrstuvwxyz0123456789._-", min_size=1, max_size=10).filter(
    lambda u: u[0].isalnum()
)
_hosts = st.sampled_from(["example.com", "conf.example.org", "127.0.0.1", "[::1]"])
_uris = st.builds(lambda s, u, h: f"{s}:{u}@{h}", st.sampled_from(["sip", "sips", "im"]), _users, _hosts)
_displays = st.one_of(
    st.just(""),
    st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zl", "Zp")), max_size=12).map(
        lambda d: '"' + d.replace("\\", "\\\\").replace('"', '\\"') + '" '
    ),
)
_addresses = st.builds(lambda d, u: f"{d}<{u}>", _displays, _uris)
_values = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zl", "Zp", "Zs")), min_size=1, max_size=30
)
_datetimes = st.datetimes(timezones=st.just(datetime.UTC)).map(lambda d: d.isoformat().replace("+00:00", "Z"))
_ascii_values = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=30)
_mime_names = st.text(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.", min_size=1, max_size=16
).filter(lambda n: n.lower() != "content-type")
_content_types = st.sampled_from(
    ["text/plain", "text/plain;charset=utf-8", "application/im-iscomposing+xml", "text/html; charset=UTF-8"]
)

messages = st.builds(
    CpimMessage,
    from_=_addresses,
    to=st.lists(_addresses, max_size=3).map(tuple),
    datetime=st.one_of(st.none(), _datetimes),
    subject=st.one_of(st.none(), _values),
    ns=st.lists(st.builds(lambda n, u: f"{n} <{u}>", _names, _uris), max_size=2).map(tuple),
    other_headers=st.lists(st.tuples(_ext_names, _values), max_size=4).map(tuple),
    content_type=_content_types,
    content_headers=st.lists(st.tuples(_mime_names, _ascii_values), max_size=3).map(tuple),
    body=st.binary(max_size=200),
)


@given(messages)
@settings(max_examples=150, deadline=None)
def test_round_trip(msg: CpimMessage) -> None:
    assert parse_cpim(render_cpim(msg)) == msg


@given(st.binary(max_size=400))
@settings(max_examples=300, deadline=None)
def test_fuzz_only_cpim_error(data: bytes) -> None:
    try:
        parse_cpim(data)
    except CpimError:
        pass


@given(messages, st.data())
@settings(max_examples=150, deadline=None)
def test_fuzz_mutated_messages(msg: CpimMessage, data: st.DataObject) -> None:
    raw = bytearray(render_cpim(msg))
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(raw) - 1))
        op = data.draw(st.sampled_from(["flip", "delete", "insert"]))
        if op == "flip":
            raw[i] = data.draw(st.integers(0, 255))
        elif op == "delete":
            del raw[i]
        else:
            raw.insert(i, data.draw(st.sampled_from(b'\r\n:;<>" \t\x00\xff')))
        if not raw:
            break
    try:
        parsed = parse_cpim(bytes(raw))
    except CpimError:
        return
    # Anything accepted renders back to something that parses to the same value.
    assert parse_cpim(render_cpim(parsed)) == parsed
