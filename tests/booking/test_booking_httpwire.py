"""The HTTP/1.1 request-head parser: strict framing, caps; no input escapes as anything but HttpError."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imsconf.booking.httpwire import MAX_HEAD, HttpError, RequestHead, parse_request_head, render_response


def test_parses_a_post() -> None:
    head = parse_request_head(
        b"POST /bookings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 12\r\nAuthorization:  Bearer abc \r\n\r\n"
    )
    assert (head.method, head.path, head.query, head.version) == ("POST", "/bookings", "", "HTTP/1.1")
    assert head.content_length == 12
    assert head.get("authorization") == "Bearer abc"
    assert head.get("Content-Type") == "application/json"
    assert head.keep_alive


def test_query_and_connection_handling() -> None:
    head = parse_request_head(b"GET /bookings?active_at=2027-01-01T00:00:00Z HTTP/1.1\r\nHost: x\r\n"
                              b"Connection: close\r\n\r\n")  # fmt: skip
    assert head.path == "/bookings" and head.query == "active_at=2027-01-01T00:00:00Z"
    assert not head.keep_alive
    old = parse_request_head(b"GET / HTTP/1.0\r\n\r\n")  # HTTP/1.0 needs no Host
    assert not old.keep_alive
    assert parse_request_head(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive
    assert parse_request_head(b"\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n").path == "/"  # leading CRLF ignored
    same = parse_request_head(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n")
    assert same.content_length == 5


BAD: list[tuple[str, bytes, int]] = [
    ("empty", b"", 400),
    ("no-version", b"GET /\r\n\r\n", 400),
    ("two-spaces", b"GET  / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("bad-method", b"G(T / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("bad-version", b"GET / HTTX/1.1\r\nHost: x\r\n\r\n", 400),
    ("http2", b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505),
    ("absolute-form", b"GET http://x/ HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("asterisk", b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("space-in-target", b"GET /a b HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("bad-escape", b"GET /%zz HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("long-target", b"GET /" + b"a" * 3000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 431),
    ("bare-lf", b"GET / HTTP/1.1\nHost: x\r\n\r\n", 400),
    ("bare-cr", b"GET / HTTP/1.1\r\nHost: x\ry: z\r\n\r\n", 400),
    ("obs-fold", b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n", 400),
    ("space-before-colon", b"GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400),
    ("no-colon", b"GET / HTTP/1.1\r\nHost x\r\n\r\n", 400),
    ("nul-in-value", b"GET / HTTP/1.1\r\nHost: x\x00y\r\n\r\n", 400),
    ("del-in-value", b"GET / HTTP/1.1\r\nHost: x\x7f\r\n\r\n", 400),
    ("no-host", b"GET / HTTP/1.1\r\n\r\n", 400),
    ("two-hosts", b"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", 400),
    ("transfer-encoding", b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", 501),
    (
        "conflicting-length",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        400,
    ),
    ("list-length", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1, 2\r\n\r\n", 400),
    ("negative-length", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400),
    ("hex-length", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0x10\r\n\r\n", 400),
    ("huge-length", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999\r\n\r\n", 400),
    ("too-many-headers", b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-A: b\r\n" * 70 + b"\r\n", 431),
    ("too-large", b"GET / HTTP/1.1\r\nHost: x\r\nX-A: " + b"b" * MAX_HEAD + b"\r\n\r\n", 431),
]


@pytest.mark.parametrize(("data", "status"), [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_rejects(data: bytes, status: int) -> None:
    with pytest.raises(HttpError) as info:
        parse_request_head(data)
    assert info.value.status == status
    assert info.value.close


def test_repeated_single_header_is_an_error() -> None:
    head = parse_request_head(b"GET / HTTP/1.1\r\nHost: x\r\nAuthorization: a\r\nAuthorization: b\r\n\r\n")
    with pytest.raises(HttpError):
        head.get("authorization")


def test_render_response() -> None:
    raw = render_response(201, {"id": "x"}, headers=[("Location", "/bookings/x")], close=True, date="D")
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "HTTP/1.1 201 Created"
    assert "Content-Type: application/json" in lines and "Connection: close" in lines
    assert "Location: /bookings/x" in lines and "Cache-Control: no-store" in lines
    assert f"Content-Length: {len(body)}" in lines and body == b'{"id":"x"}\n'
    empty = render_response(204, None)
    assert empty.startswith(b"HTTP/1.1 204 No Content\r\n")
    assert b"\r\nContent-Type:" not in empty and b"\r\nContent-Length:" not in empty


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=2048))
def test_random_bytes_only_raise_http_error(data: bytes) -> None:
    try:
        head = parse_request_head(data)
    except HttpError as exc:
        assert exc.status in (400, 431, 501, 505)
    else:
        assert isinstance(head, RequestHead)


_line = st.text(st.characters(min_codepoint=0, max_codepoint=255), max_size=60)


@settings(max_examples=500, deadline=None)
@given(
    st.sampled_from(["GET", "POST", "DELETE", "G T", ""]),
    _line,
    st.sampled_from(["HTTP/1.1", "HTTP/1.0", "HTTP/9.9", "http/1.1"]),
    st.lists(st.tuples(_line, _line), max_size=8),
)
def test_structured_garbage_only_raises_http_error(
    method: str, target: str, version: str, fields: list[tuple[str, str]]
) -> None:
    raw = f"{method} {target} {version}\r\n" + "".join(f"{n}: {v}\r\n" for n, v in fields) + "\r\n"
    try:
        head = parse_request_head(raw.encode("latin-1"))
    except HttpError as exc:
        assert 400 <= exc.status < 600
    else:
        assert head.target.startswith("/")
