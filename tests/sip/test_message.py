"""Unit tests of the SIP message model: headers, URIs, typed views, parsing, serializing, stream framing."""

from __future__ import annotations

import pytest

from imsconf.sip.errors import LocalProtocolError, SipParseError
from imsconf.sip.headers import (
    COMPACT,
    CSeq,
    Headers,
    Via,
    canonical_name,
    parse_auth_params,
    split_header_value,
    unquote_string,
)
from imsconf.sip.message import (
    MAX_HEADER_BLOCK,
    MAX_HEADER_LINES,
    MAX_MESSAGE_SIZE,
    Request,
    Response,
    StreamFramer,
    parse_head,
    parse_message,
    validate,
)
from imsconf.sip.uri import NameAddr, SipUri, parse_params, split_quoted

BASE = (
    "OPTIONS sip:conf@example.com SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-1\r\n"
    "From: <sip:alice@example.com>;tag=a1\r\n"
    "To: <sip:conf@example.com>\r\n"
    "Call-ID: c1@192.0.2.1\r\n"
    "CSeq: 1 OPTIONS\r\n"
    "Max-Forwards: 70\r\n"
)


def msg_bytes(extra: str = "", body: bytes = b"", *, base: str = BASE, clen: bool = True) -> bytes:
    head = base + extra
    if clen:
        head += f"Content-Length: {len(body)}\r\n"
    return (head + "\r\n").encode() + body


def request(extra: str = "", body: bytes = b"") -> Request:
    m = parse_message(msg_bytes(extra, body))
    assert isinstance(m, Request)
    return m


# ---- header names ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("compact", "full"), sorted(COMPACT.items()))
def test_compact_forms_canonicalise(compact: str, full: str) -> None:
    assert canonical_name(compact) == full
    assert canonical_name(compact.upper()) == full


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("call-id", "Call-ID"),
        ("CALL-ID", "Call-ID"),
        ("cseq", "CSeq"),
        ("www-authenticate", "WWW-Authenticate"),
        ("max-FORWARDS", "Max-Forwards"),
        # extension headers get one spelling too, so that lookups are exact comparisons
        ("X-Custom-Thing", "X-Custom-Thing"),
        ("x-custom-thing", "X-Custom-Thing"),
        ("X-CUSTOM-THING", "X-Custom-Thing"),
    ],
)
def test_canonical_name(name: str, expected: str) -> None:
    assert canonical_name(name) == expected


def test_compact_and_case_insensitive_headers_in_a_message() -> None:
    data = (
        b"INVITE sip:conf@example.com SIP/2.0\r\n"
        b"v: SIP/2.0/TCP h.example.com;branch=z9hG4bK-x\r\n"
        b"f: <sip:a@example.com>;tag=1\r\n"
        b"t: sip:conf@example.com\r\n"
        b"i: abc\r\n"
        b"cSeQ: 2 INVITE\r\n"
        b"m: <sip:a@192.0.2.1>\r\n"
        b"k: timer, 100rel\r\n"
        b"c: application/sdp\r\n"
        b"s: hello\r\n"
        b"x-Extension: 1\r\n"
        b"l: 4\r\n\r\nbody"
    )
    m = parse_message(data, datagram=False)
    validate(m)
    assert [n for n, _ in m.headers] == [
        "Via", "From", "To", "Call-ID", "CSeq", "Contact", "Supported", "Supported", "Content-Type",
        "Subject", "X-Extension",
    ]  # fmt: skip
    assert m.headers.get("CALL-ID") == m.headers.get("i") == "abc"
    assert m.headers.tokens("supported") == ["timer", "100rel"]
    assert m.body == b"body"
    # the serializer writes full names and a fresh Content-Length
    out = bytes(m)
    assert b"\r\nCall-ID: abc\r\n" in out and out.endswith(b"Content-Length: 4\r\n\r\nbody")


# ---- list headers ------------------------------------------------------------------------------------


def test_via_list_on_one_line_and_several() -> None:
    m = request(
        "Via: SIP/2.0/TCP b.example.com;branch=z9hG4bK-2, SIP/2.0/UDP c.example.com;branch=z9hG4bK-3\r\n"
        "v: SIP/2.0/UDP d.example.com\r\n"
    )
    hosts = [Via.parse(v).host for v in m.headers.get_all("Via")]
    assert hosts == ["192.0.2.1", "b.example.com", "c.example.com", "d.example.com"]
    assert m.top_via.host == "192.0.2.1"


def test_contact_list_with_quoted_commas() -> None:
    m = request('Contact: "Doe, John" <sip:j@a.example>;q=0.5, <sip:k@b.example;x=1,2>, sip:l@c.example\r\n')
    contacts = [NameAddr.parse(c) for c in m.headers.get_all("Contact")]
    assert [c.display_unquoted for c in contacts] == ["Doe, John", None, None]
    assert contacts[0].params == {"q": "0.5"}
    assert contacts[1].uri.params == {"x": "1,2"}
    assert str(contacts[2].uri) == "sip:l@c.example"


def test_route_list() -> None:
    m = request(
        "Route: <sip:p1.example.com;lr>,<sip:p2.example.com;lr>\r\nRoute: <sip:p3.example.com;lr>\r\n"
    )
    assert [NameAddr.parse(r).uri.host for r in m.headers.get_all("Route")] == [
        "p1.example.com",
        "p2.example.com",
        "p3.example.com",
    ]


def test_non_list_headers_keep_their_commas() -> None:
    m = request(
        "Date: Sat, 13 Nov 2010 23:29:00 GMT\r\n"
        'Authorization: Digest username="a", realm="b"\r\n'
        "Subject: one, two\r\n"
    )
    assert m.headers.get("Date") == "Sat, 13 Nov 2010 23:29:00 GMT"
    assert m.headers.get_all("Authorization") == ['Digest username="a", realm="b"']
    assert m.headers.get("Subject") == "one, two"


def test_split_header_value_edges() -> None:
    assert split_header_value("Contact", " * ") == ["*"]
    assert split_header_value("Supported", "") == [""]
    assert split_header_value("Require", "a,,b, ") == ["a", "b"]
    assert split_header_value("Subject", "a, b") == ["a, b"]
    with pytest.raises(SipParseError):
        split_header_value("Via", ",,,")
    with pytest.raises(SipParseError):
        split_header_value("Contact", '"unterminated <sip:a@b>')


def test_empty_list_header_is_kept() -> None:
    m = request("Supported:\r\n")
    assert m.headers.get_all("Supported") == [""]
    assert m.headers.tokens("Supported") == []
    assert parse_message(bytes(m)) == m


def test_split_quoted_and_parse_params() -> None:
    assert split_quoted('a,"b,c",<d,e>,f', ",") == ["a", '"b,c"', "<d,e>", "f"]
    assert split_quoted("<a,b>", ",", brackets=False) == ["<a", "b>"]
    assert split_quoted(r'"a\",b",c', ",") == [r'"a\",b"', "c"]
    with pytest.raises(SipParseError):
        split_quoted('"abc', ",")
    assert parse_params(";Lr;Transport=TCP ; q = 0.5") == {"lr": None, "transport": "TCP", "q": "0.5"}
    assert parse_params("") == {}
    for bad in (";;", ";a;;b", ";a b=c", ";=x"):
        with pytest.raises(SipParseError):
            parse_params(bad)


# ---- folding -----------------------------------------------------------------------------------------


def test_folded_headers() -> None:
    m = request("Subject: first\r\n  second\r\n\tthird\r\nX-Long:\r\n value\r\n")
    assert m.headers.get("Subject") == "first second third"
    assert m.headers.get("X-Long") == "value"


def test_folded_list_header_splits_after_unfolding() -> None:
    m = request("Require: a,\r\n b,\r\n\tc\r\n")
    assert m.headers.tokens("Require") == ["a", "b", "c"]


def test_bare_lf_line_endings_are_tolerated() -> None:
    data = msg_bytes(body=b"x\r\n\r\ny").replace(b"\r\n", b"\n", BASE.count("\r\n") + 1)
    data = data.replace(b"Content-Length: 5\r\n\r\n", b"Content-Length: 5\n\n")
    m = parse_message(data)
    assert m.headers.get("Call-ID") == "c1@192.0.2.1"
    assert m.body == b"x\r\n\r\ny"


# ---- Headers API -------------------------------------------------------------------------------------


def test_headers_api() -> None:
    h = Headers.of([("v", "SIP/2.0/UDP a"), ("call-id", "x"), ("Via", "SIP/2.0/UDP b")])
    assert h.items == [("Via", "SIP/2.0/UDP a"), ("Call-ID", "x"), ("Via", "SIP/2.0/UDP b")]
    assert len(h) == 3 and list(h) == h.items
    assert "CALL-ID" in h and "i" in h and "Route" not in h and 42 not in h
    assert h.get("Route") is None and h.get_all("Route") == []
    assert h.get_all("VIA") == ["SIP/2.0/UDP a", "SIP/2.0/UDP b"]
    h.prepend("v", "SIP/2.0/UDP top")
    assert h.get("Via") == "SIP/2.0/UDP top"
    c = h.copy()
    h.set("via", "SIP/2.0/UDP only")
    assert h.get_all("Via") == ["SIP/2.0/UDP only"]
    assert h.items[0] == ("Via", "SIP/2.0/UDP only")  # kept at the first position
    assert len(c.get_all("Via")) == 3  # the copy is independent
    h.set("Max-Forwards", "70")
    assert h.items[-1] == ("Max-Forwards", "70")
    h.remove("VIA")
    assert "Via" not in h
    h.add("Require", " Timer ")
    h.add("Require", "")
    assert h.tokens("require") == ["timer"]
    assert Headers() == Headers([])
    assert Headers.of([("i", "x")]) == Headers([("Call-ID", "x")])


# ---- URIs ---------------------------------------------------------------------------------------------


def test_sip_uri_parse_and_str() -> None:
    u = SipUri.parse("sips:alice:secret@Atlanta.Example.COM:5061;transport=tcp;lr?subject=x&priority=urgent")
    assert u.scheme == "sips"
    assert (u.user, u.password, u.host, u.port) == ("alice", "secret", "atlanta.example.com", 5061)
    assert u.params == {"transport": "tcp", "lr": None}
    assert u.headers == "subject=x&priority=urgent"
    assert u.header_fields == [("subject", "x"), ("priority", "urgent")]
    assert str(u) == "sips:alice:secret@atlanta.example.com:5061;transport=tcp;lr?subject=x&priority=urgent"
    assert SipUri.parse(str(u)) == u
    v6 = SipUri.parse("sip:[2001:db8::1]:5070;maddr=239.255.255.1")
    assert (v6.host, v6.port, v6.user) == ("[2001:db8::1]", 5070, None)
    assert str(v6) == "sip:[2001:db8::1]:5070;maddr=239.255.255.1"
    tel = SipUri.parse("TEL:+1-201-555-0123")
    assert (tel.scheme, tel.opaque, str(tel)) == ("tel", "+1-201-555-0123", "tel:+1-201-555-0123")
    assert SipUri.parse("sip:%61lice@h").user_unescaped == "alice"
    assert SipUri.parse("sip:%61lice@h").aor == "sip:alice@h"
    assert SipUri.parse("sip:h;x=1").aor == "sip:h"
    assert SipUri.parse("sip:a@h").with_params(transport="tls").params == {"transport": "tls"}


@pytest.mark.parametrize(
    "text",
    [
        "",
        "alice@example.com",
        "sip:",
        "sip:alice@",
        "sip:@example.com",
        "sip:alice@exa mple.com",
        "sip:alice@example.com:",
        "sip:alice@example.com:65536",
        "sip:alice@example.com:5x",
        "sip:alice@example.com:\u0665",  # an Arabic-Indic digit is not a DIGIT
        "sip:alice@[::1",
        "sip:alice@[::1]x",
        "sip:alice@exa_mple.com",
        "sip:al ice@example.com",
        "sip:al<ice@example.com",
        "sip:a:pa@ss@example.com",
        "sip:caf\u00e9@example.com",
        "sip:alice@example.com;;",
        "tel:",
        "sip:a@b\x00",
    ],
)
def test_sip_uri_rejects(text: str) -> None:
    with pytest.raises(SipParseError):
        SipUri.parse(text)


# RFC 3261 §19.1.4: the equivalent and non-equivalent pairs given in the section.
EQUIVALENT = [
    ("sip:%61lice@atlanta.com;transport=TCP", "sip:alice@AtLanTa.CoM;Transport=tcp"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com;security=on"),
    (
        "sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
        "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com",
    ),
    (
        "sip:alice@atlanta.com?subject=project%20x&priority=urgent",
        "sip:alice@atlanta.com?priority=urgent&subject=project%20x",
    ),
]
NOT_EQUIVALENT = [
    ("SIP:ALICE@AtLanTa.CoM;Transport=udp", "sip:alice@AtLanTa.CoM;Transport=UDP"),  # different usernames
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"),  # can resolve to different ports and transports
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp"),  # can resolve to different transports
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com:6000;transport=tcp"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com?Subject=next%20meeting"),  # different header component
    ("sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4"),  # even if one resolves to the other
    ("sip:carol@chicago.com;security=on", "sip:carol@chicago.com;security=off"),  # intransitivity
    ("sip:alice@atlanta.com", "sips:alice@atlanta.com"),
    ("sip:alice@atlanta.com", "sip:alice@atlanta.com;maddr=239.255.255.1"),
    ("sip:alice@atlanta.com", "sip:alice@atlanta.com;user=phone"),
    ("sip:alice:a@atlanta.com", "sip:alice:b@atlanta.com"),
    ("tel:+1", "tel:+2"),
]


@pytest.mark.parametrize(("a", "b"), EQUIVALENT)
def test_uri_equivalent(a: str, b: str) -> None:
    ua, ub = SipUri.parse(a), SipUri.parse(b)
    assert ua.equivalent(ub) and ub.equivalent(ua)


@pytest.mark.parametrize(("a", "b"), NOT_EQUIVALENT)
def test_uri_not_equivalent(a: str, b: str) -> None:
    ua, ub = SipUri.parse(a), SipUri.parse(b)
    assert not ua.equivalent(ub) and not ub.equivalent(ua)


def test_uri_equality_and_hash_include_params() -> None:
    a, b = SipUri.parse("sip:a@h;x=1"), SipUri.parse("sip:a@h;x=2")
    assert a != b and a == SipUri.parse("sip:a@h;x=1")
    assert hash(a) == hash(SipUri.parse("sip:a@h;x=1"))
    assert len({NameAddr.parse("<sip:a@h>;tag=1"), NameAddr.parse("<sip:a@h>;tag=1")}) == 1


# ---- name-addr -----------------------------------------------------------------------------------------


def test_name_addr_forms() -> None:
    n = NameAddr.parse('"Alice \\"A\\" Smith" <sip:alice@example.com;transport=tcp>;tag=88sja8x;q=0.1')
    assert n.display == '"Alice \\"A\\" Smith"'
    assert n.display_unquoted == 'Alice "A" Smith'
    assert n.uri.params == {"transport": "tcp"}
    assert n.tag == "88sja8x" and n.params["q"] == "0.1"
    assert str(n) == '"Alice \\"A\\" Smith" <sip:alice@example.com;transport=tcp>;tag=88sja8x;q=0.1'
    assert NameAddr.parse(str(n)) == n
    t = NameAddr.parse("Bob Smith<sip:bob@example.com>")
    assert t.display == "Bob Smith" and t.tag is None
    assert t.with_tag("x1").tag == "x1" and t.tag is None
    a = NameAddr.parse("sip:carol@example.com;tag=5 ")
    assert a.display is None and a.tag == "5" and a.uri.params == {}
    assert str(a) == "<sip:carol@example.com>;tag=5"
    assert NameAddr.parse("<sip:x@y>").display_unquoted is None


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        '"unterminated <sip:a@b>',
        '"quoted" sip:a@b',
        "Bell, Alexander <sip:a@b>",
        "<sip:a@b",
        "<sip:a@b> junk",
        "< sip:a@b >",
        "sip:a @b",
        "sip:a@b,sip:c@d",
    ],
)
def test_name_addr_rejects(text: str) -> None:
    with pytest.raises(SipParseError):
        NameAddr.parse(text)


def test_name_addr_addr_spec_with_headers_is_accepted() -> None:
    # RFC 4475 §3.1.2.13 leniency: <> inferred when unambiguous
    n = NameAddr.parse("sip:u@example.com?Subject=hi;expires=60")
    assert n.uri.headers == "Subject=hi" and n.params == {"expires": "60"}


# ---- Via, CSeq, auth ----------------------------------------------------------------------------------


def test_via_parse() -> None:
    v = Via.parse("SIP/2.0/UDP 192.0.2.1:5060;rport=5070;received=198.51.100.7;branch=z9hG4bK776asdhds")
    assert (v.protocol, v.transport, v.host, v.port) == ("SIP/2.0", "UDP", "192.0.2.1", 5060)
    assert v.branch == "z9hG4bK776asdhds"
    assert v.received == "198.51.100.7"
    assert v.rport == 5070 and v.rport_requested
    assert str(v) == "SIP/2.0/UDP 192.0.2.1:5060;rport=5070;received=198.51.100.7;branch=z9hG4bK776asdhds"
    assert Via.parse(str(v)) == v
    w = Via.parse("sip / 2.0 / tls [2001:DB8::9] ; rport ; branch=z9hG4bK-1")
    assert (w.protocol, w.transport, w.host, w.port) == ("SIP/2.0", "TLS", "[2001:db8::9]", None)
    assert w.rport_requested and w.rport is None and w.received is None
    assert Via.parse("SIP/2.0/WSS x.invalid;rport=99999").rport is None
    assert Via.parse("SIP/2.0/TCP h").branch is None


@pytest.mark.parametrize(
    "text",
    [
        "",
        "SIP/2.0 h",
        "SIP/2.0/UDP",
        "SIP/2.0/UDP h:99999",
        "SIP/2.0/UDP h:\u0665",
        "SIP/2.0/UDP h;;",
        "SIP/2.0/UDP h junk",
        "SIP/2.0/UDP h\n;branch=x",
    ],
)
def test_via_rejects(text: str) -> None:
    with pytest.raises(SipParseError):
        Via.parse(text)


def test_cseq() -> None:
    assert CSeq.parse(" 0009 \t INVITE ") == CSeq(9, "INVITE")
    assert str(CSeq(2**31 - 1, "BYE")) == "2147483647 BYE"
    for bad in (
        "",
        "1",
        "INVITE",
        "1 IN VITE",
        "-1 INVITE",
        "2147483648 INVITE",
        "1" * 5000 + " A",
        "\u0661 A",
    ):
        with pytest.raises(SipParseError):
            CSeq.parse(bad)


def test_parse_auth_params() -> None:
    scheme, params = parse_auth_params(
        'Digest username="bob", realm="biloxi.com", nonce="dcd98b, 7102dd2f0e8b1d0c600", '
        'uri="sip:bob@biloxi.com", qop=auth, nc=00000001, cnonce="0a4f113b", '
        'response="6629fae49393a05397450978507c4ef1", opaque="5ccc\\"069c"'
    )
    assert scheme == "digest"
    assert params["username"] == "bob"
    assert params["nonce"] == "dcd98b, 7102dd2f0e8b1d0c600"
    assert params["qop"] == "auth" and params["nc"] == "00000001"
    assert params["opaque"] == '5ccc"069c'
    assert parse_auth_params("NTLM") == ("ntlm", {})
    assert parse_auth_params("Digest\tREALM=x") == ("digest", {"realm": "x"})
    for bad in ("", 'Digest a="b', "Digest a", 'Digest ="b"', 'Digest a="b"c"', "<x> a=b"):
        with pytest.raises(SipParseError):
            parse_auth_params(bad)
    assert unquote_string(r'"a\\b\"c"') == 'a\\b"c'


# ---- parse / serialize ----------------------------------------------------------------------------------


def test_round_trip_and_content_length_is_framing() -> None:
    m = request(body=b"hello")
    assert "Content-Length" not in m.headers
    assert parse_message(bytes(m)) == m
    m.body = b"longer body"
    m.headers.add("Content-Length", "3")  # ignored: the serializer writes the real length
    out = bytes(m)
    assert out.count(b"Content-Length") == 1 and b"Content-Length: 11\r\n\r\nlonger body" in out
    r = Response(180, "Ringing", Headers.of([("Via", "SIP/2.0/UDP h"), ("To", "<sip:a@b>;tag=2")]))
    assert bytes(r).startswith(b"SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP h\r\n")
    assert parse_message(bytes(r)) == r
    assert not r.is_request and m.is_request


@pytest.mark.parametrize(
    "msg",
    [
        Request("OPTIONS", "sip:a@b", Headers([("Subject", "x\r\nVia: injected")])),
        Request("OPTIONS", "sip:a@b", Headers([("Bad Name", "x")])),
        Request("OPTIONS", "sip:a@b\r\n"),
        Response(200, "OK\nX: y"),
    ],
)
def test_serializer_refuses_injection(msg: Request | Response) -> None:
    with pytest.raises(LocalProtocolError):
        bytes(msg)


def test_datagram_without_content_length_takes_the_rest() -> None:
    m = parse_message(msg_bytes(body=b"abc", clen=False))
    assert m.body == b"abc"
    with pytest.raises(SipParseError) as info:
        parse_message(msg_bytes(body=b"abc", clen=False), datagram=False)
    assert info.value.status_hint == 400 and isinstance(info.value.partial, Request)


def test_leading_crlf_and_extra_octets() -> None:
    m = parse_message(b"\r\n\r\n" + msg_bytes(body=b"ab") + b"trailing junk")
    assert m.body == b"ab"


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"", 400),
        (b"\r\n\r\n", 400),
        (b"OPTIONS sip:a@b SIP/2.0\r\nVia: x\r\n", 400),  # no blank line
        (b"OPTIONS sip:a@b\r\n\r\n", 400),
        (b"OPTIONS sip:a@b SIP/2.0 \r\n\r\n", 400),
        (b"OPTIONS sip:caf\xc3\xa9@b SIP/2.0\r\n\r\n", 400),
        (b"OPTIONS sip:a@b SIP/\xd9\xa2.0\r\n\r\n", 400),
        (b"SIP/2.0 99 Too low\r\n\r\n", 400),
        (b"SIP/2.0 700 Too high\r\n\r\n", 400),
        (b"SIP/2.0 2000 OK\r\n\r\n", 400),
        (b"SIP/2.0 20 OK\r\n\r\n", 400),
        (b"SIP/2.0 200 OK\rX\r\n\r\n", 400),
        (msg_bytes("no colon here\r\n"), 400),
        (msg_bytes("Subject: a\rb\r\n"), 400),  # a lone CR
        (msg_bytes("Content-Length: \u00b2\r\n", clen=False), 400),
        (msg_bytes("Content-Length: -1\r\n", clen=False), 400),
        (msg_bytes("Content-Length: 0\r\nContent-Length: " + "9" * 5000 + "\r\n", clen=False), 513),
        (msg_bytes("Content-Length: 1234567890\r\n", clen=False), 513),
        (msg_bytes("Content-Length: 10\r\n", b"abc", clen=False), 400),
        (msg_bytes("X: y\r\n" * (MAX_HEADER_LINES + 1)), 513),
        (msg_bytes("X: " + "y" * MAX_HEADER_BLOCK + "\r\n"), 513),
        (b"OPTIONS sip:a@b SIP/2.0\r\n\r\n" + b"x" * MAX_MESSAGE_SIZE, 513),
        (msg_bytes("Via: ,,,\r\n"), 400),
    ],
)
def test_parse_errors(data: bytes, status: int) -> None:
    with pytest.raises(SipParseError) as info:
        parse_message(data)
    assert info.value.status_hint == status


def test_malformed_request_line_keeps_a_partial_to_answer() -> None:
    data = msg_bytes(base=BASE.replace("OPTIONS sip:conf@example.com SIP/2.0", "OPTIONS  sip:a@b SIP/2.0 "))
    with pytest.raises(SipParseError) as info:
        parse_message(data)
    partial = info.value.partial
    assert isinstance(partial, Request) and partial.method == "OPTIONS" and partial.call_id == "c1@192.0.2.1"
    # broken headers too: the partial keeps what came before them
    with pytest.raises(SipParseError) as info:
        parse_message(data.replace(b"CSeq: 1 OPTIONS", b"CSeq 1 OPTIONS"))
    assert isinstance(info.value.partial, Request) and "Call-ID" in info.value.partial.headers
    for start in (b"OPTIONS sip:a@b", b"<bad> sip:a@b SIP/2.0", b"OPTIONS sip:a@b HTTP/1.1"):
        with pytest.raises(SipParseError) as info:
            parse_message(start + b"\r\nCall-ID: x\r\n\r\n")
        assert info.value.partial is None


def test_content_length_leading_zeros_and_duplicates() -> None:
    m = parse_message(msg_bytes("Content-Length: 003\r\nl: 3\r\n", b"abc", clen=False))
    assert m.body == b"abc"


def test_status_line_forms() -> None:
    r = parse_message(b"SIP/2.0 200\r\n\r\n")
    assert isinstance(r, Response) and (r.status, r.reason) == (200, "")
    r = parse_message(b"SIP/2.0 404  Not  Found \r\n\r\n")
    assert isinstance(r, Response) and r.reason == " Not  Found "


def test_parse_head_returns_content_length() -> None:
    m, clen = parse_head(b"SIP/2.0 100 Trying\r\nl: 12")
    assert isinstance(m, Response) and clen == 12
    m, clen = parse_head(b"BYE sip:a@b SIP/2.0")
    assert isinstance(m, Request) and clen is None


def test_non_utf8_header_bytes_round_trip() -> None:
    data = msg_bytes("X-Raw: @@\r\n").replace(b"@@", b"\xff\xfe")
    m = parse_message(data)
    assert m.headers.get("X-Raw") == "\udcff\udcfe"
    assert parse_message(bytes(m)) == m
    assert b"X-Raw: \xff\xfe\r\n" in bytes(m)


# ---- validate ------------------------------------------------------------------------------------------


def test_validate_accepts_a_plain_request() -> None:
    validate(request("Contact: *\r\n"))
    validate(parse_message(msg_bytes(base=BASE.replace("Max-Forwards: 70", "Max-Forwards: 0255"))))


@pytest.mark.parametrize(
    ("replace", "extra", "status"),
    [
        ("Max-Forwards: 70", "", None),
        ("Max-Forwards: 70", "Max-Forwards: 256", 400),
        ("Max-Forwards: 70", "Max-Forwards: abc", 400),
        ("Max-Forwards: 70", "Max-Forwards: \u0661", 400),
        ("Max-Forwards: 70", "Max-Forwards: " + "1" * 5000, 400),
        ("Call-ID: c1@192.0.2.1", "Call-ID: ", 400),
        ("Call-ID: c1@192.0.2.1", "", 400),
        ("CSeq: 1 OPTIONS", "CSeq: 1 INVITE", 400),
        ("CSeq: 1 OPTIONS", "CSeq: 1 options", 400),
        ("OPTIONS sip:conf@example.com SIP/2.0", "FOO sip:conf@example.com SIP/2.0", 501),
        ("OPTIONS sip:conf@example.com SIP/2.0", "OPTIONS sip:conf@example.com?x=y SIP/2.0", 400),
        ("OPTIONS sip:conf@example.com SIP/2.0", "OPTIONS sip:conf@ SIP/2.0", 400),
        ("OPTIONS sip:conf@example.com SIP/2.0", "OPTIONS sip:conf@example.com SIP/3.0", 505),
        ("To: <sip:conf@example.com>", "To: <sip:conf@example.com>\r\nt: <sip:x@y>", 400),
        ("Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-1", "Via: nonsense", 400),
        ("Max-Forwards: 70", "Via: SIP/2.0/UDP ok, garbage", 400),
        ("Max-Forwards: 70", "Contact: <sip:a@b>, Bell, Alexander <sip:c@d>", 400),
        ("Max-Forwards: 70", "Contact: *", None),
    ],
)
def test_validate(replace: str, extra: str, status: int | None) -> None:
    base = BASE.replace(replace + "\r\n", extra + "\r\n" if extra else "")
    m = parse_message(msg_bytes(base=base))
    if status is None:
        validate(m)
        return
    with pytest.raises(SipParseError) as info:
        validate(m)
    assert info.value.status_hint == status
    assert info.value.partial is m


def test_validate_response() -> None:
    r = parse_message(msg_bytes(base=BASE.replace("OPTIONS sip:conf@example.com SIP/2.0", "SIP/2.0 200 OK")))
    validate(r)
    assert isinstance(r, Response) and r.cseq.method == "OPTIONS" and r.to.uri.user == "conf"
    assert r.call_id == "c1@192.0.2.1" and r.from_.tag == "a1" and r.top_via.branch == "z9hG4bK-1"


# ---- stream framing -------------------------------------------------------------------------------------


def test_stream_byte_by_byte() -> None:
    data = msg_bytes(body=b"v=0\r\n\r\n")
    framer = StreamFramer()
    items: list[object] = []
    for i in range(len(data)):
        items += framer.feed(data[i : i + 1])
        if i < len(data) - 1:
            assert items == []
    assert items == [parse_message(data)]
    assert framer.buffered == 0


def test_stream_pipelined_messages_in_one_chunk() -> None:
    one, two = msg_bytes(body=b"a"), msg_bytes(body=b"bc")
    framer = StreamFramer()
    items = framer.feed(one + two + one[:10])
    assert items == [parse_message(one), parse_message(two)]
    assert framer.buffered == 10
    assert framer.feed(one[10:]) == [parse_message(one)]


def test_stream_keepalives() -> None:
    framer = StreamFramer()
    assert framer.feed(b"\r\n\r\n") == [StreamFramer.PING]
    assert framer.feed(b"\r\n") == []  # could still become a ping
    assert framer.feed(b"\r") == []
    assert framer.feed(b"\n") == [StreamFramer.PING]
    assert framer.feed(b"\r\n") == []
    one = msg_bytes()
    assert framer.feed(one) == [StreamFramer.PONG, parse_message(one)]
    assert framer.feed(b"\r\n\r\n\r\n\r\n") == [StreamFramer.PING, StreamFramer.PING]
    assert framer.feed(b"\r\n" + one) == [StreamFramer.PONG, parse_message(one)]
    # byte by byte, a ping is still one ping
    f2 = StreamFramer()
    assert [x for b in b"\r\n\r\n" for x in f2.feed(bytes([b]))] == [StreamFramer.PING]


def test_stream_oversize_is_513() -> None:
    framer = StreamFramer(max_size=1000)
    with pytest.raises(SipParseError) as info:
        framer.feed(msg_bytes(body=b"x" * 1000))
    assert info.value.status_hint == 513
    assert isinstance(info.value.partial, Request)


def test_stream_endless_head_is_513() -> None:
    framer = StreamFramer()
    framer.feed(b"OPTIONS sip:a@b SIP/2.0\r\n")
    with pytest.raises(SipParseError) as info:
        for _ in range(MAX_HEADER_BLOCK // 100 + 2):
            framer.feed(b"X-Pad: " + b"p" * 91 + b"\r\n")
    assert info.value.status_hint == 513


def test_stream_missing_content_length_is_400_and_sticky() -> None:
    framer = StreamFramer()
    with pytest.raises(SipParseError) as info:
        framer.feed(msg_bytes(clen=False))
    assert info.value.status_hint == 400
    assert isinstance(info.value.partial, Request)
    with pytest.raises(SipParseError):  # the stream cannot be resynchronised
        framer.feed(msg_bytes())


def test_stream_garbage_start_line() -> None:
    with pytest.raises(SipParseError) as info:
        StreamFramer().feed(b"HELLO WORLD\r\n\r\n")
    assert info.value.status_hint == 400 and info.value.partial is None


def test_stream_next_item_hands_out_messages_before_an_error() -> None:
    one = msg_bytes()
    framer = StreamFramer()
    framer.receive(one + b"\r\n" + one + b"GARBAGE\r\n\r\n")
    assert framer.next_item() == parse_message(one)
    assert framer.next_item() == StreamFramer.PONG
    assert framer.next_item() == parse_message(one)
    with pytest.raises(SipParseError):
        framer.next_item()
    with pytest.raises(SipParseError):
        framer.receive(one)
    assert framer.buffered == 0
    # feed() raises at once instead
    with pytest.raises(SipParseError):
        StreamFramer().feed(one + b"GARBAGE\r\n\r\n")
    f2 = StreamFramer()
    f2.receive(one[:20])
    assert f2.next_item() is None
    f2.receive(one[20:])
    assert f2.next_item() == parse_message(one)
    assert f2.next_item() is None
