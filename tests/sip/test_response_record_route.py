"""A response that forms a dialog carries the proxies' Record-Route back (RFC 3261 §12.1.1)."""

from __future__ import annotations

from imsconf.sip.headers import Headers
from imsconf.sip.message import Request, parse_message, validate
from imsconf.sip.util import make_response

_RR = ["<sip:127.0.0.1:5061;transport=tls;r2=on;lr>", "<sip:127.0.0.1:5060;r2=on;lr>"]


def _subscribe() -> Request:
    headers = Headers(
        [
            ("Via", "SIP/2.0/TLS 127.0.0.1:5061;branch=z9hG4bKa"),
            ("Via", "SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bKb"),
            ("Record-Route", _RR[0]),
            ("Record-Route", _RR[1]),
            ("From", "<sip:owner@127.0.0.1>;tag=1"),
            ("To", "<sip:conf-a-x@127.0.0.1>"),
            ("Call-ID", "c1"),
            ("CSeq", "1 SUBSCRIBE"),
            ("Max-Forwards", "70"),
        ]
    )
    return Request("SUBSCRIBE", "sip:conf-a-x@127.0.0.1", headers)


def test_2xx_and_provisional_copy_every_record_route_in_order() -> None:
    req = _subscribe()
    for status in (180, 200, 202):
        resp = make_response(req, status, to_tag="t")
        assert resp.headers.get_all("Record-Route") == _RR
        validate(parse_message(bytes(resp)))


def test_100_and_failures_copy_none() -> None:
    req = _subscribe()
    assert make_response(req, 100).headers.get_all("Record-Route") == []
    for status in (404, 486, 503):
        assert make_response(req, status, to_tag="t").headers.get_all("Record-Route") == []
