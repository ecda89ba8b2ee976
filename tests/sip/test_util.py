"""Helpers: identifiers, response/CANCEL/ACK construction, Via received/rport (RFC 3581)."""

from __future__ import annotations

import pytest

from imsconf.sip.errors import LocalProtocolError
from imsconf.sip.headers import Headers, Via
from imsconf.sip.message import Request, Response, parse_message, validate
from imsconf.sip.util import (
    MAGIC_COOKIE,
    default_port,
    header_safe_text,
    is_reliable,
    make_ack_for_non2xx,
    make_cancel,
    make_response,
    new_branch,
    new_call_id,
    new_cseq,
    new_tag,
    new_via,
    reason_phrase,
    response_destination,
    stamp_received,
)


def invite(via: str = "SIP/2.0/UDP pc33.example.com:5060;branch=z9hG4bK776asdhds", **extra: str) -> Request:
    h = Headers()
    h.add("Via", via)
    h.add("Via", "SIP/2.0/UDP proxy.example.com;branch=z9hG4bKproxy1")
    h.add("Max-Forwards", "70")
    h.add("Route", "<sip:p1.example.com;lr>")
    h.add("To", "Bob <sip:bob@example.com>")
    h.add("From", "Alice <sip:alice@example.com>;tag=1928301774")
    h.add("Call-ID", "a84b4c76e66710@pc33.example.com")
    h.add("CSeq", "314159 INVITE")
    h.add("Contact", "<sip:alice@pc33.example.com>")
    for name, value in extra.items():
        h.add(name, value)
    return Request("INVITE", "sip:bob@example.com", h, b"v=0\r\n")


def test_identifiers_are_random_and_well_formed() -> None:
    branches = {new_branch() for _ in range(50)}
    assert len(branches) == 50
    assert all(b.startswith(MAGIC_COOKIE) and len(b) > len(MAGIC_COOKIE) + 16 for b in branches)
    assert len({new_tag() for _ in range(50)}) == 50
    assert new_call_id("host.example").endswith("@host.example")
    assert "@" not in new_call_id()
    assert all(1 <= new_cseq() <= 2**16 for _ in range(100))


def test_new_via_has_branch_and_empty_rport() -> None:
    via = Via.parse(new_via("tls", "192.0.2.1", 5061))
    assert via.transport == "TLS" and via.host == "192.0.2.1" and via.port == 5061
    assert via.branch is not None and via.branch.startswith(MAGIC_COOKIE)
    assert "rport" in via.params and via.params["rport"] is None
    assert Via.parse(new_via("UDP", "h", branch="z9hG4bKx")).branch == "z9hG4bKx"


def test_transport_helpers() -> None:
    assert is_reliable("tcp") and is_reliable("TLS") and not is_reliable("UDP")
    assert default_port("TLS") == 5061 and default_port("UDP") == 5060 and default_port("TCP") == 5060


def test_reason_phrases() -> None:
    assert reason_phrase(487) == "Request Terminated"
    assert reason_phrase(299) == "OK"  # class default
    assert reason_phrase(799 // 1) == "Unknown"


def test_make_response_copies_headers_per_8_2_6() -> None:
    req = invite()
    resp = make_response(req, 180, to_tag="xyz")
    assert resp.status == 180 and resp.reason == "Ringing"
    assert resp.headers.get_all("Via") == req.headers.get_all("Via")
    assert resp.from_ == req.from_
    assert resp.to.tag == "xyz"
    assert resp.call_id == req.call_id and resp.cseq == req.cseq
    assert resp.headers.get("Route") is None and resp.headers.get("Contact") is None
    assert resp.body == b""
    validate(parse_message(bytes(resp)))


def test_make_response_keeps_existing_to_tag_and_extras() -> None:
    req = invite()
    req.headers.set("To", "<sip:bob@example.com>;tag=existing")
    resp = make_response(
        req, 200, "Fine", to_tag="new", headers=Headers.of([("Contact", "<sip:x@y>")]), body=b"x"
    )
    assert resp.to.tag == "existing" and resp.reason == "Fine"
    assert resp.headers.get("Contact") == "<sip:x@y>" and resp.body == b"x"


def test_make_response_100_copies_timestamp_and_rejects_tag() -> None:
    req = invite(Timestamp="54")
    assert make_response(req, 100).headers.get("Timestamp") == "54"
    assert make_response(req, 200, to_tag="t").headers.get("Timestamp") is None
    with pytest.raises(LocalProtocolError):
        make_response(req, 100, to_tag="t")


@pytest.mark.parametrize("status", [99, 700])
def test_make_response_status_range(status: int) -> None:
    with pytest.raises(LocalProtocolError):
        make_response(invite(), status)


def test_make_response_refuses_ack_and_incomplete() -> None:
    ack = invite()
    ack.method = "ACK"
    with pytest.raises(LocalProtocolError):
        make_response(ack, 200)
    req = invite()
    req.headers.remove("Call-ID")
    with pytest.raises(LocalProtocolError):
        make_response(req, 400)


def test_make_cancel_per_9_1() -> None:
    req = invite()
    cancel = make_cancel(req)
    assert cancel.method == "CANCEL" and cancel.uri == req.uri
    assert cancel.headers.get_all("Via") == req.headers.get_all("Via")[:1]
    assert str(cancel.cseq) == "314159 CANCEL"
    assert cancel.headers.get_all("Route") == ["<sip:p1.example.com;lr>"]
    assert cancel.to == req.to and cancel.from_ == req.from_ and cancel.body == b""
    validate(parse_message(bytes(cancel)))
    with pytest.raises(LocalProtocolError):
        make_cancel(cancel)


def test_ack_for_non2xx_per_17_1_1_3() -> None:
    req = invite()
    resp = make_response(req, 486, to_tag="busy")
    ack = make_ack_for_non2xx(req, resp)
    assert ack.method == "ACK" and ack.uri == req.uri
    assert ack.headers.get_all("Via") == req.headers.get_all("Via")[:1]
    assert ack.to.tag == "busy"
    assert str(ack.cseq) == "314159 ACK"
    assert ack.headers.get_all("Route") == req.headers.get_all("Route")
    assert ack.headers.get("Max-Forwards") == "70"
    assert ack.headers.get("Contact") is None and ack.body == b""
    with pytest.raises(LocalProtocolError):
        make_ack_for_non2xx(req, make_response(req, 200, to_tag="x"))


def test_ack_gets_max_forwards_when_invite_had_none() -> None:
    req = invite()
    req.headers.remove("Max-Forwards")
    assert make_ack_for_non2xx(req, make_response(req, 404, to_tag="t")).headers.get("Max-Forwards") == "70"


# ---- RFC 3581 ----------------------------------------------------------------------------------------


def test_stamp_received_same_host_without_rport_is_untouched() -> None:
    req = invite("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKa")
    assert stamp_received(req, "192.0.2.1", 5060) is req


def test_stamp_received_adds_received_when_host_differs() -> None:
    req = invite("SIP/2.0/UDP pc33.example.com:5060;branch=z9hG4bKa")
    out = stamp_received(req, "192.0.2.9", 5060)
    assert out is not req
    via = out.top_via
    assert via.params["received"] == "192.0.2.9" and "rport" not in via.params
    assert req.top_via.params.get("received") is None  # original untouched
    assert out.headers.get_all("Via")[1] == req.headers.get_all("Via")[1]


def test_stamp_received_fills_empty_rport_even_for_same_host() -> None:
    # RFC 3581 §4: received is added even if identical to sent-by when rport was requested
    req = invite("SIP/2.0/UDP 192.0.2.1:5060;rport;branch=z9hG4bKa")
    via = stamp_received(req, "192.0.2.1", 40000).top_via
    assert via.params["rport"] == "40000" and via.params["received"] == "192.0.2.1"


def test_stamp_received_ipv6_and_existing_rport_value() -> None:
    req = invite("SIP/2.0/UDP [2001:db8::1]:5060;branch=z9hG4bKa")
    assert stamp_received(req, "2001:db8:0::1", 5060) is req  # same address, other spelling
    req = invite("SIP/2.0/UDP host.example;rport=1234;branch=z9hG4bKa")
    via = stamp_received(req, "2001:db8::7", 9).top_via
    assert via.params["rport"] == "1234" and via.params["received"] == "2001:db8::7"


def test_stamp_received_without_via() -> None:
    req = Request("OPTIONS", "sip:x@y")
    assert stamp_received(req, "1.2.3.4", 5) is req


def _resp(via: str) -> Response:
    return Response(200, "OK", Headers.of([("Via", via)]))


@pytest.mark.parametrize(
    ("via", "transport", "expected"),
    [
        ("SIP/2.0/UDP pc33.example.com;branch=z9hG4bKa", "UDP", ("pc33.example.com", 5060)),
        ("SIP/2.0/UDP pc33.example.com:5070;branch=z9hG4bKa", "UDP", ("pc33.example.com", 5070)),
        ("SIP/2.0/TLS pc33.example.com;branch=z9hG4bKa", "TLS", ("pc33.example.com", 5061)),
        ("SIP/2.0/UDP pc33.example.com;received=192.0.2.4;branch=z9hG4bKa", "UDP", ("192.0.2.4", 5060)),
        ("SIP/2.0/UDP pc33.example.com:5080;received=192.0.2.4", "UDP", ("192.0.2.4", 5080)),
        ("SIP/2.0/UDP 10.0.0.1:5060;rport=40000;received=192.0.2.4", "UDP", ("192.0.2.4", 40000)),
        ("SIP/2.0/UDP 10.0.0.1:5060;rport;received=192.0.2.4", "UDP", ("192.0.2.4", 5060)),
        ("SIP/2.0/UDP 10.0.0.1;maddr=239.1.1.1;received=192.0.2.4", "UDP", ("239.1.1.1", 5060)),
        ("SIP/2.0/UDP 10.0.0.1:5090;maddr=239.1.1.1;rport=4", "UDP", ("239.1.1.1", 5090)),
        ("SIP/2.0/UDP [2001:db8::1];received=2001:db8::9", "UDP", ("2001:db8::9", 5060)),
        ("SIP/2.0/UDP [2001:db8::1]:5062", "UDP", ("2001:db8::1", 5062)),
    ],
)
def test_response_destination_18_2_2(via: str, transport: str, expected: tuple[str, int]) -> None:
    assert response_destination(_resp(via), transport) == expected


def test_response_destination_after_stamping() -> None:
    req = invite("SIP/2.0/UDP 10.0.0.5:5060;rport;branch=z9hG4bKa")
    stamped = stamp_received(req, "198.51.100.7", 61000)
    assert response_destination(make_response(stamped, 200, to_tag="t"), "UDP") == ("198.51.100.7", 61000)


def test_response_destination_needs_via() -> None:
    with pytest.raises(LocalProtocolError):
        response_destination(Response(200, "OK"), "UDP")


def test_header_safe_text_keeps_only_printable_ascii() -> None:
    assert header_safe_text("bad\r\nVia: x\x00é") == "bad??Via: x??"
    assert header_safe_text("a\r\nb", replacement="") == "ab"
    assert header_safe_text("x" * 200) == "x" * 80
    assert header_safe_text("x" * 200, 100) == "x" * 100
    assert header_safe_text('say "hi" \\ now', quoted=True, replacement="") == "say hi  now"
