"""The MSRP session state machine: responses, reports, chunk reassembly, transaction deadlines."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from imsconf.im.msrp import ByteRange, Frame, MsrpParser, MsrpUri, render
from imsconf.im.msrp_session import (
    MessageReceived,
    MsrpSession,
    ReportReceived,
    SendDone,
    SendFailed,
    SessionClosed,
)

LOCAL = MsrpUri("msrps", "127.0.0.1", 2855, "focus1234", "tcp")
PEER = MsrpUri("msrps", "127.0.0.1", 40000, "peer5678", "tcp")


def send(
    body: bytes,
    *,
    tid: str = "tid00001",
    mid: str = "m1",
    brange: ByteRange | None = None,
    flag: str = "$",
    to: MsrpUri = LOCAL,
    extra: tuple[tuple[str, str], ...] = (),
) -> bytes:
    brange = brange or ByteRange(1, len(body), len(body))
    headers = (
        ("To-Path", str(to)),
        ("From-Path", str(PEER)),
        ("Message-ID", mid),
        ("Byte-Range", str(brange)),
        *extra,
        ("Content-Type", "text/plain"),
    )
    return render(Frame(tid, method="SEND", headers=headers, body=body, flag=flag))


def parsed(session: MsrpSession) -> list[Frame]:
    parser = MsrpParser()
    return [f for data in session.outputs() for f in parser.feed(data)]


def test_send_is_answered_and_delivered() -> None:
    s = MsrpSession(LOCAL)
    s.receive(send(b"hello"), 0.0)
    [resp] = parsed(s)
    assert (resp.tid, resp.status) == ("tid00001", 200)
    assert resp.to_path == (PEER,) and resp.from_path == (LOCAL,)
    assert s.events() == [MessageReceived("m1", "text/plain", b"hello", False, "yes")]
    assert s.remote == (PEER,)


def test_wrong_session_id_gets_481() -> None:
    s = MsrpSession(LOCAL)
    other = MsrpUri("msrps", "127.0.0.1", 2855, "guessed", "tcp")
    s.receive(send(b"hi", to=other), 0.0)
    [resp] = parsed(s)
    assert resp.status == 481
    assert s.events() == []


def test_failure_report_no_and_partial() -> None:
    s = MsrpSession(LOCAL, max_message=4)
    s.receive(send(b"ok", extra=(("Failure-Report", "no"),)), 0.0)
    s.receive(send(b"ok", tid="tid00002", mid="m2", extra=(("Failure-Report", "partial"),)), 0.0)
    assert parsed(s) == []
    s.receive(send(b"too long", tid="tid00003", mid="m3", extra=(("Failure-Report", "partial"),)), 0.0)
    [resp] = parsed(s)
    assert resp.status == 413
    assert [e.message_id for e in s.events() if isinstance(e, MessageReceived)] == ["m1", "m2"]


def test_success_report_is_sent_for_the_whole_message() -> None:
    s = MsrpSession(LOCAL)
    s.receive(send(b"hello", extra=(("Success-Report", "yes"),)), 0.0)
    resp, report = parsed(s)
    assert resp.status == 200
    assert report.method == "REPORT" and report.message_id == "m1"
    assert report.byte_range == ByteRange(1, 5, 5)
    assert report.status_header is not None and report.status_header.code == 200


@given(st.binary(min_size=1, max_size=3000), st.data())
def test_chunks_in_any_cut_are_reassembled(body: bytes, data: st.DataObject) -> None:
    cuts = sorted(
        set(data.draw(st.lists(st.integers(1, len(body) - 1), max_size=6)) if len(body) > 1 else [])
    )
    bounds = [0, *cuts, len(body)]
    total = data.draw(st.sampled_from([len(body), None]))
    wire = b""
    for n, (a, b) in enumerate(itertools.pairwise(bounds)):
        last = b == len(body)
        wire += send(
            body[a:b], tid=f"tid{n:05d}", brange=ByteRange(a + 1, b, total), flag="$" if last else "+"
        )
    s = MsrpSession(LOCAL)
    step = data.draw(st.integers(1, 500))
    for i in range(0, len(wire), step):
        s.receive(wire[i : i + step], 0.0)
    assert s.events() == [MessageReceived("m1", "text/plain", body, False, "yes")]
    assert all(f.status == 200 for f in parsed(s))


def test_message_over_the_cap_is_refused_and_dropped() -> None:
    s = MsrpSession(LOCAL, max_message=10)
    s.receive(send(b"12345678", brange=ByteRange(1, 8, None), flag="+"), 0.0)
    s.receive(send(b"12345678", tid="tid00002", brange=ByteRange(9, 16, None), flag="+"), 0.0)
    s.receive(send(b"12", tid="tid00003", brange=ByteRange(17, 18, 18)), 0.0)
    assert [f.status for f in parsed(s)] == [200, 413, 413]
    assert s.events() == []


def test_aborted_message_is_dropped() -> None:
    s = MsrpSession(LOCAL)
    s.receive(send(b"abc", brange=ByteRange(1, 3, None), flag="+"), 0.0)
    s.receive(send(b"", tid="tid00002", brange=ByteRange(4, 3, None), flag="#"), 0.0)
    assert [f.status for f in parsed(s)] == [200, 200]
    assert s.events() == []


def test_report_received_gets_no_response() -> None:
    s = MsrpSession(LOCAL, (PEER,))
    headers = (
        ("To-Path", str(LOCAL)),
        ("From-Path", str(PEER)),
        ("Message-ID", "x1"),
        ("Byte-Range", "1-5/5"),
        ("Status", "000 200 OK"),
    )
    s.receive(render(Frame("rep00001", method="REPORT", headers=headers)), 0.0)
    assert parsed(s) == []
    [ev] = s.events()
    assert isinstance(ev, ReportReceived) and ev.status.code == 200 and ev.message_id == "x1"


def test_unknown_method_gets_501_and_garbage_closes() -> None:
    s = MsrpSession(LOCAL)
    headers = (("To-Path", str(LOCAL)), ("From-Path", str(PEER)))
    s.receive(render(Frame("tid00001", method="FOO", headers=headers)), 0.0)
    assert [f.status for f in parsed(s)] == [501]
    s.receive(b"GET / HTTP/1.1\r\n", 0.0)
    assert s.closed and isinstance(s.events()[-1], SessionClosed)


def test_sending_chunks_and_their_responses() -> None:
    s = MsrpSession(LOCAL, (PEER,), chunk_size=4)
    mid = s.send_message("message/cpim", b"0123456789", 1.0)
    chunks = parsed(s)
    assert [c.byte_range for c in chunks] == [ByteRange(1, 4, 10), ByteRange(5, 8, 10), ByteRange(9, 10, 10)]
    assert [c.flag for c in chunks] == ["+", "+", "$"]
    assert b"".join(c.body or b"" for c in chunks) == b"0123456789"
    assert s.next_deadline() == 31.0
    for c in chunks:
        s.receive(
            render(
                Frame(
                    c.tid,
                    status=200,
                    comment="OK",
                    headers=(("To-Path", str(LOCAL)), ("From-Path", str(PEER))),
                )
            ),
            2.0,
        )
    assert s.events() == [SendDone(mid)]
    assert s.next_deadline() is None


def test_failure_response_and_timeout() -> None:
    s = MsrpSession(LOCAL, (PEER,))
    mid = s.send_message("text/plain", b"x", 0.0)
    [c] = parsed(s)
    s.receive(
        render(
            Frame(
                c.tid,
                status=413,
                comment="Too Large",
                headers=(("To-Path", str(LOCAL)), ("From-Path", str(PEER))),
            )
        ),
        1.0,
    )
    assert s.events() == [SendFailed(mid, 413, "Too Large")]
    mid2 = s.send_message("text/plain", b"y", 5.0)
    s.handle_timer(34.9)
    assert s.events() == []
    s.handle_timer(35.0)
    assert s.events() == [SendFailed(mid2, 408, "Request Timeout")]


def test_content_type_outside_accept_types_gets_415() -> None:
    s = MsrpSession(LOCAL, accept_types=("message/cpim", "text/plain"))
    headers = (
        ("To-Path", str(LOCAL)),
        ("From-Path", str(PEER)),
        ("Message-ID", "m9"),
        ("Byte-Range", "1-3/3"),
        ("Content-Type", "image/png"),
    )
    s.receive(render(Frame("tid00009", method="SEND", headers=headers, body=b"png")), 0.0)
    s.receive(send(b"text"), 0.0)
    assert [f.status for f in parsed(s)] == [415, 200]
    assert [e.message_id for e in s.events() if isinstance(e, MessageReceived)] == ["m1"]
