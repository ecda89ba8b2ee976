"""MSRP framing: the incremental parser and the serialiser (RFC 4975 §7, §9)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imsconf.im.msrp import ByteRange, Frame, MsrpError, MsrpParser, MsrpUri, StatusHeader, render

RFC_SEND = (
    b"MSRP a786hjs2 SEND\r\n"
    b"To-Path: msrp://bob.example.com:8888/9di4eae923wzd;tcp\r\n"
    b"From-Path: msrp://alicepc.example.com:7777/iau39soe2843z;tcp\r\n"
    b"Message-ID: 87652491\r\n"
    b"Byte-Range: 1-25/25\r\n"
    b"Content-Type: text/plain\r\n"
    b"\r\n"
    b"Hey Bob, are you there?\r\n"
    b"-------a786hjs2$\r\n"
)
RFC_OK = (
    b"MSRP a786hjs2 200 OK\r\n"
    b"To-Path: msrp://alicepc.example.com:7777/iau39soe2843z;tcp\r\n"
    b"From-Path: msrp://bob.example.com:8888/9di4eae923wzd;tcp\r\n"
    b"-------a786hjs2$\r\n"
)

TID = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9.\-+%=]{3,31}\Z")
TOKEN = st.from_regex(r"\A[A-Za-z][A-Za-z0-9-]{0,15}\Z")
VALUE = st.from_regex(r"\A[!-~]([ -~]{0,40}[!-~])?\Z")


@st.composite
def frames(draw: st.DrawFn) -> Frame:
    tid = draw(TID)
    headers = [
        ("To-Path", "msrps://127.0.0.1:2855/" + draw(st.from_regex(r"\A[a-z0-9]{4,20}\Z")) + ";tcp"),
        ("From-Path", "msrps://10.0.0.1:4000/" + draw(st.from_regex(r"\A[a-z0-9]{4,20}\Z")) + ";tcp"),
    ]
    extra = draw(
        st.lists(st.tuples(TOKEN, VALUE).filter(lambda h: h[0].lower() != "content-type"), max_size=4)
    )
    headers += extra
    if draw(st.booleans()):
        status = draw(st.integers(100, 999))
        return Frame(
            tid, status=status, comment=draw(st.sampled_from(["", "OK", "Too Large"])), headers=tuple(headers)
        )
    body: bytes | None = draw(st.one_of(st.none(), st.binary(max_size=300)))
    if body is not None:
        if b"-------" + tid.encode() in b"\r\n" + body:
            body = body.replace(b"-", b"_")
        headers.append(("Content-Type", draw(st.sampled_from(["text/plain", "message/cpim"]))))
    flag = draw(st.sampled_from("$+#"))
    return Frame(
        tid,
        method=draw(st.sampled_from(["SEND", "REPORT", "AUTH"])),
        headers=tuple(headers),
        body=body,
        flag=flag,
    )


def test_rfc_example_parses() -> None:
    frames_ = MsrpParser().feed(RFC_SEND + RFC_OK)
    assert len(frames_) == 2
    send, ok = frames_
    assert send.method == "SEND" and send.tid == "a786hjs2" and send.flag == "$"
    assert send.body == b"Hey Bob, are you there?"
    assert send.to_path == (MsrpUri("msrp", "bob.example.com", 8888, "9di4eae923wzd", "tcp"),)
    assert send.from_path[0].session_id == "iau39soe2843z"
    assert send.message_id == "87652491"
    assert send.byte_range == ByteRange(1, 25, 25)
    assert send.content_type == "text/plain"
    assert not send.success_report and send.failure_report == "yes"
    assert ok.status == 200 and ok.comment == "OK" and ok.body is None
    assert render(ok) == RFC_OK
    assert render(send) == RFC_SEND


@given(st.lists(frames(), min_size=1, max_size=4), st.data())
def test_round_trip_with_arbitrary_chunk_boundaries(items: list[Frame], data: st.DataObject) -> None:
    wire = b"".join(render(f) for f in items)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=12)))
    parser = MsrpParser()
    got: list[Frame] = []
    last = 0
    for cut in [*cuts, len(wire)]:
        got += parser.feed(wire[last:cut])
        last = cut
    assert got == items
    assert parser.pending == 0


@given(st.binary(max_size=200), TID)
def test_end_line_like_text_in_the_body_is_body(noise: bytes, other: str) -> None:
    tid = "abcd1234"
    tricky = [
        b"-------" + tid.encode() + b"$",  # no CRLF before it
        b"\r\n-------" + other.encode() + b"$\r\n" if other != tid else b"",  # another transaction
        b"\r\n-------" + tid.encode() + b"x\r\n",  # not a flag
        b"\r\n-------" + tid.encode() + b"$x",  # no CRLF after the flag
        b"\r\n-------" + tid.encode() + b"9$\r\n",  # a longer id
    ]
    body = b"x".join(tricky) + noise.replace(b"-", b"_")
    frame = Frame(
        tid,
        method="SEND",
        headers=(
            ("To-Path", "msrp://a.example/s1234;tcp"),
            ("From-Path", "msrp://b.example/s5678;tcp"),
            ("Content-Type", "text/plain"),
        ),
        body=body,
    )
    wire = render(frame)
    parser = MsrpParser()
    got = [f for i in range(0, len(wire), 7) for f in parser.feed(wire[i : i + 7])]
    assert got == [frame]


def test_serialiser_refuses_its_own_end_line_in_the_body() -> None:
    with pytest.raises(ValueError):
        render(
            Frame(
                "abcd1234",
                method="SEND",
                headers=(("Content-Type", "text/plain"),),
                body=b"x\r\n-------abcd1234$\r\n",
            )
        )


def test_empty_body_and_no_body() -> None:
    headers = (("To-Path", "msrp://a.example/s1234;tcp"), ("From-Path", "msrp://b.example/s5678;tcp"))
    empty = Frame("abcd1234", method="SEND", headers=(*headers, ("Content-Type", "text/plain")), body=b"")
    none = Frame("abcd1235", method="SEND", headers=headers)
    assert MsrpParser().feed(render(empty) + render(none)) == [empty, none]


def test_byte_range_and_status_header() -> None:
    assert ByteRange.parse("1-*/*") == ByteRange(1, None, None)
    assert str(ByteRange(2049, 4096, 6000)) == "2049-4096/6000"
    assert ByteRange.parse("1-0/0") == ByteRange(1, 0, 0)
    for bad in ("0-5/5", "5-3/9", "1-10/5", "a-b/c", "1-2"):
        with pytest.raises(MsrpError):
            ByteRange.parse(bad)
    assert StatusHeader.parse("000 200 OK") == StatusHeader(200, "OK")
    assert str(StatusHeader(413, "Too Large")) == "000 413 Too Large"


def test_caps_on_header_and_chunk() -> None:
    parser = MsrpParser(max_header=200)
    with pytest.raises(MsrpError) as exc:
        parser.feed(b"MSRP abcd1234 SEND\r\nX: " + b"y" * 300)
    assert exc.value.status == 413
    with pytest.raises(MsrpError):  # the stream stays broken
        parser.feed(b"\r\n")
    parser = MsrpParser(max_chunk=100)
    head = b"MSRP abcd1234 SEND\r\nTo-Path: msrp://a/s;tcp\r\nContent-Type: text/plain\r\n\r\n"
    with pytest.raises(MsrpError) as exc:
        parser.feed(head + b"z" * 200)
    assert "chunk too large" in exc.value.reason


@pytest.mark.parametrize(
    "wire",
    [
        b"SIP/2.0 200 OK\r\n",
        b"MSRP ab SEND\r\n",  # transaction id too short
        b"MSRP abcd1234 send\r\n",
        b"MSRP abcd1234 SEND\r\nno colon\r\n",
        b"MSRP abcd1234 SEND\r\n-------zzzz9999$\r\n",
        b"MSRP abcd1234 SEND\r\n\r\n",  # a body without Content-Type
        b"MSRP abcd1234 SEND\r\n\xff: x\r\n",
    ],
)
def test_malformed_streams(wire: bytes) -> None:
    with pytest.raises(MsrpError):
        MsrpParser().feed(wire)


@given(st.lists(st.binary(max_size=64), max_size=8))
def test_fuzz_raw_octets_raise_only_msrp_error(pieces: list[bytes]) -> None:
    parser = MsrpParser(max_header=512, max_chunk=512)
    try:
        for piece in pieces:
            for frame in parser.feed(piece):
                _touch(frame)
    except MsrpError:
        pass


@given(frames(), st.data())
def test_fuzz_mutated_frames_raise_only_msrp_error(frame: Frame, data: st.DataObject) -> None:
    wire = bytearray(render(frame))
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(wire) - 1))
        wire[pos] = data.draw(st.integers(0, 255))
    try:
        for f in MsrpParser().feed(bytes(wire)):
            _touch(f)
    except MsrpError:
        pass


def _touch(frame: Frame) -> None:
    """Every accessor of a received frame fails with MsrpError only."""
    for get in (
        lambda: frame.to_path,
        lambda: frame.from_path,
        lambda: frame.byte_range,
        lambda: frame.failure_report,
        lambda: frame.status_header,
    ):
        try:
            get()
        except MsrpError:
            pass
    _ = frame.message_id, frame.success_report, frame.content_type


def test_uri() -> None:
    uri = MsrpUri.parse("msrps://[::1]:2855/abc-DEF_9;tcp")
    assert (uri.scheme, uri.host, uri.port, uri.session_id, uri.secure) == (
        "msrps",
        "[::1]",
        2855,
        "abc-DEF_9",
        True,
    )
    assert str(MsrpUri.parse("msrp://Host.Example/s1;TCP")) == "msrp://host.example/s1;tcp"
    for bad in ("http://x/s;tcp", "msrp://x/s", "msrp://x:99999/s;tcp"):
        with pytest.raises(MsrpError):
            MsrpUri.parse(bad)
