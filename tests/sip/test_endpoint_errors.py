"""Answers the endpoint makes itself to requests it cannot parse: they follow RFC 3581 like any other."""

from __future__ import annotations

from imsconf.sip.endpoint import EndpointConfig, NullApplication, SipEndpoint
from imsconf.sip.headers import Via
from imsconf.sip.message import Response, parse_message
from imsconf.sip.peer import Peer

SOURCE = Peer("udp", "192.0.2.7", 40123)  # the NAT's public side: not what the Via says


def _request(version: str = "SIP/2.0", extra: str = "") -> bytes:
    return (
        f"OPTIONS sip:focus@example.net {version}\r\n"
        "Via: SIP/2.0/UDP 10.0.0.5:5070;branch=z9hG4bK-err1;rport\r\n"
        "From: <sip:alice@example.net>;tag=a1\r\n"
        "To: <sip:focus@example.net>\r\n"
        "Call-ID: err-1@10.0.0.5\r\n"
        "CSeq: 1 OPTIONS\r\n"
        f"{extra}"
        "Max-Forwards: 70\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def _answer(data: bytes) -> tuple[Response, Peer]:
    ep = SipEndpoint(EndpointConfig(local={"udp": ("198.18.0.1", 5060)}), NullApplication())
    ep.receive_datagram(data, SOURCE, 1.0)
    out = ep.take_outbox()
    assert len(out) == 1
    msg = parse_message(out[0][0])
    assert isinstance(msg, Response)
    return msg, out[0][1]


def test_a_505_goes_to_the_source_port_with_rport_filled() -> None:
    resp, dest = _answer(_request(version="SIP/7.0"))
    assert resp.status == 505
    assert (dest.host, dest.port) == (SOURCE.host, SOURCE.port)
    via = Via.parse(resp.headers.get("Via") or "")
    assert via.params.get("rport") == str(SOURCE.port)
    assert via.params.get("received") == SOURCE.host


def test_a_400_for_a_bad_header_goes_to_the_source_port() -> None:
    resp, dest = _answer(_request(extra="CSeq: x OPTIONS\r\n"))
    assert resp.status == 400
    assert (dest.host, dest.port) == (SOURCE.host, SOURCE.port)


def test_without_rport_the_answer_goes_to_the_received_address_and_the_via_port() -> None:
    data = _request(version="SIP/7.0").replace(b";rport", b"")
    resp, dest = _answer(data)
    assert resp.status == 505
    assert (dest.host, dest.port) == (SOURCE.host, 5070)  # RFC 3261 §18.2.2: received, sent-by port
