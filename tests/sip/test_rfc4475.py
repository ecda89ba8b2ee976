"""RFC 4475 (SIP torture test messages), one test per message.

Valid messages (§3.1.1) must parse and validate, with their tricky values decoded right.  Invalid ones
(§3.1.2) must raise SipParseError carrying the status a server answers with.  Where the RFC calls a message
acceptable, or leaves the decision to the transaction or application layer (§3.2, §3.3, §3.4), it must parse
cleanly and expose the facts those layers need.  A garbled response is never answered: it only has to raise.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from imsconf.sip.errors import SipParseError
from imsconf.sip.headers import CSeq, Via, parse_auth_params
from imsconf.sip.message import Request, Response, StreamFramer, parse_message, validate
from imsconf.sip.uri import NameAddr, SipUri

VECTORS = Path(__file__).resolve().parents[1] / "data" / "rfc4475"

SDP_BODY = (
    b"v=0\r\no=mhandley 29739 7272939 IN IP4 192.0.2.%s\r\ns=-\r\nc=IN IP4 192.0.2.%s\r\nt=0 0\r\n"
    b"m=audio 49217 RTP/AVP 0 12\r\nm=video 3227 RTP/AVP 31\r\na=rtpmap:31 LPC\r\n"
)


def raw(name: str) -> bytes:
    return (VECTORS / f"{name}.dat").read_bytes()


def request(name: str) -> Request:
    """Parse and validate a message that must be accepted as a request."""
    msg = parse_message(raw(name))
    assert isinstance(msg, Request)
    validate(msg)
    return msg


def response(name: str) -> Response:
    msg = parse_message(raw(name))
    assert isinstance(msg, Response)
    validate(msg)
    return msg


def rejected(name: str) -> SipParseError:
    """The SipParseError raised by parsing then validating *name* (whichever step refuses it)."""
    with pytest.raises(SipParseError) as info:
        validate(parse_message(raw(name)))
    return info.value


def vias(msg: Request | Response) -> list[Via]:
    return [Via.parse(v) for v in msg.headers.get_all("Via")]


def contacts(msg: Request | Response) -> list[NameAddr]:
    return [NameAddr.parse(v) for v in msg.headers.get_all("Contact")]


def assert_round_trip(msg: Request | Response) -> None:
    assert parse_message(bytes(msg)) == msg


def test_every_vector_has_a_test() -> None:
    names = {p.stem for p in VECTORS.glob("*.dat")}
    tested = {n.removeprefix("test_rfc4475_") for n in globals() if n.startswith("test_rfc4475_")}
    assert len(names) == 49
    assert names == tested


# ---- 3.1.1 valid messages --------------------------------------------------------------------------


def test_rfc4475_wsinv() -> None:
    """§3.1.1.1: folding, odd whitespace, case-mixed and compact names, empty and unknown headers."""
    m = request("wsinv")
    assert m.method == "INVITE"
    assert m.request_uri.params == {"unknownparam": None}
    to = m.to
    assert to.uri.user == "vivekg" and to.uri.host == "chair-dnrc.example.com"
    assert to.display is None and to.tag == "1918181833n"
    frm = m.from_
    assert frm.display_unquoted == 'J Rosenberg \\"'
    assert frm.tag == "98asjd8"
    assert m.headers.get("Max-Forwards") == "0068"
    assert m.cseq == CSeq(9, "INVITE")
    assert m.call_id == "wsinv.ndaksdj@192.0.2.1"
    assert m.headers.get("Subject") == ""  # "s :" : compact form, empty value
    assert m.headers.get("NewFangledHeader") == "newfangled value continued newfangled value"
    assert m.headers.get("UnknownHeaderWithUnusualValue") == ";;,,;;,;"
    route = NameAddr.parse(m.headers.get_all("Route")[0])
    assert route.uri.params == {"lr": None, "unknownwith": "value", "unknown-no-value": None}
    v = vias(m)
    assert [(x.transport, x.host, x.branch) for x in v] == [
        ("UDP", "192.0.2.2", "390skdjuw"),
        ("TCP", "spindle.example.com", "z9hG4bK9ikj8"),
        ("UDP", "192.168.255.111", "z9hG4bK30239"),
    ]
    assert all(x.protocol == "SIP/2.0" for x in v)
    (contact,) = contacts(m)
    assert contact.display_unquoted == 'Quoted string ""'
    assert contact.params == {"newparam": "newvalue", "secondparam": None, "q": "0.33"}
    assert m.headers.get("Content-Type") == "application/sdp"
    assert len(m.body) == 150 and m.body.startswith(b"v=0\r\n") and m.body.endswith(b"a=rtpmap:31 LPC\r\n")
    assert_round_trip(m)


def test_rfc4475_intmeth() -> None:
    """§3.1.1.2: every token character in a method, a URI user part full of reserved characters."""
    m = request("intmeth")
    method = "!interesting-Method0123456789_*+`.%indeed'~"
    assert m.method == method
    assert m.cseq == CSeq(139122385, method)
    ruri = m.request_uri
    assert ruri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert ruri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    assert ruri.host == "example.com"
    to = m.to
    assert to.display_unquoted == "BEL:\x07 NUL:\x00 DEL:\x7f"
    assert to.uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    frm = m.from_
    assert frm.display == "token1~` token2'+_ token3*%!.-"
    assert (
        frm.params["fromparam''~+*_!.-%"] == '"\u0440\u0430\u0431\u043e\u0442\u0430\u044e\u0449\u0438\u0439"'
    )
    assert frm.tag == "_token~1'+`*%!-."
    assert m.call_id == "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
    assert m.headers.get("extensionHeader-!.%*+_`'~") == "\ufeff\u5927\u505c\u96fb"
    assert vias(m)[0].branch == "z9hG4bK-.!%66*_+`'~"
    assert m.body == b""
    assert_round_trip(m)


def test_rfc4475_esc01() -> None:
    """§3.1.1.3: %-escapes in user parts and URI parameters, compared after unescaping."""
    m = request("esc01")
    ruri = m.request_uri
    assert ruri.user_unescaped == "sips:user@example.com" and ruri.host == "example.net"
    assert m.to.uri.user_unescaped == "user"
    assert m.to.uri.equivalent(SipUri.parse("sip:user@example.com"))
    assert m.from_.uri.user_unescaped == "I have spaces"
    (contact,) = contacts(m)
    assert contact.uri.user_unescaped == "caller"
    assert contact.uri.unescaped_params == {"lr": None, "name": "value%41"}
    assert m.headers.get("Content-Type") == "application/sdp"  # "C:" is not a compact form, but case folds
    assert m.call_id == "esc01.239409asdfakjkn23onasd0-3234"  # "i:"
    assert len(m.body) == 150


def test_rfc4475_escnull() -> None:
    """§3.1.1.4: %00 in user parts is data, not a terminator."""
    m = request("escnull")
    assert m.to.uri.user == "null-%00-null"
    assert m.to.uri.user_unescaped == "null-\x00-null"
    assert m.from_.uri.user_unescaped == "null-\x00-null"
    assert [c.uri.user_unescaped for c in contacts(m)] == ["\x00", "\x00\x00"]
    assert m.body == b""


def test_rfc4475_esc02() -> None:
    """§3.1.1.5: '%' that is not an escape; method names and header names are never unescaped."""
    m = request("esc02")
    assert m.method == "RE%47IST%45R"  # an unknown method (the application answers 501), not REGISTER
    assert m.cseq.method == "RE%47IST%45R"
    assert m.to.display_unquoted == "%Z%45"
    assert m.from_.display_unquoted == "%Z%45"
    assert vias(m)[0].branch == "z9hG4bK209%fzsnel234"
    assert [c.uri.host for c in contacts(m)] == ["host1.example.com", "host3.example.com"]
    assert m.headers.get("C%6Fntact") == "<sip:alias2@host2.example.com>"  # an extension header


def test_rfc4475_lwsdisp() -> None:
    """§3.1.1.6: no LWS between a token display name and '<'."""
    m = request("lwsdisp")
    assert m.from_.display == "caller"
    assert m.from_.uri.user == "caller"
    assert m.from_.tag == "323"


def test_rfc4475_longreq() -> None:
    """§3.1.1.7: very long values, 34 Via values under every spelling of Via."""
    m = request("longreq")
    to = m.to
    assert to.display_unquoted == "I have a user name of " + "extreme" * 10 + " proportion"
    assert to.uri.port == 6000
    assert to.uri.params == {
        "unknownparam1": "very" + "long" * 20 + "value",
        "longparam" + "name" * 25: "shortvalue",
        "very" + "long" * 25 + "parameternamewithnovalue": None,
    }
    frm = m.from_
    assert frm.uri.user == "amazinglylongcallername" * 5
    assert frm.tag == "12" + "982" * 50 + "424"
    assert frm.params["unknownheaderparam" + "name" * 20] == "unknowheaderparam" + "value" * 15
    assert frm.params["unknownvaluelessparam" + "nameparam" * 9 + "name"] is None
    assert m.call_id == "longreq.one" + "really" * 20 + "longcallid"
    assert len(m.call_id) == 141
    (long_name,) = [n for n, _ in m.headers if n.startswith("Unknown-")]
    assert long_name.lower() == ("Unknown-" + "Long" * 20 + "-Name").lower()
    long_value = m.headers.get(long_name) or ""
    assert len(long_name) + 2 + len(long_value) == 401
    assert long_value.endswith("-parameter-name = unknown-" + "long" * 20 + "-parameter-value")
    v = vias(m)
    assert len(v) == 34
    assert [x.host for x in v[:33]] == [f"sip{n}.example.com" for n in range(33, 0, -1)]
    assert v[33].received == "192.0.2.5"
    assert v[33].branch == "very" + "long" * 50 + "branchvalue"
    (contact,) = contacts(m)
    assert contact.uri.user == "amazinglylongcallername" * 5
    assert len(m.body) == 150


def test_rfc4475_dblreq() -> None:
    """§3.1.1.8: octets after Content-Length in a datagram are discarded, the first request survives."""
    m = request("dblreq")
    assert m.method == "REGISTER"
    assert m.call_id == "dblreq.0ha0isndaksdj99sdfafnl3lk233412"
    assert m.body == b""
    # On a stream the trailing octets are a CRLF (pong) and a pipelined INVITE, whose body is one octet longer
    # than its Content-Length (the RFC's "m =video"): the leftover "C" CRLF CRLF is a framing error there.
    data = raw("dblreq")
    framer = StreamFramer()
    items = framer.feed(data[:-5])
    assert [i if isinstance(i, str) else getattr(i, "method", None) for i in items] == [
        "REGISTER",
        "pong",
        "INVITE",
    ]
    assert isinstance(items[2], Request) and len(items[2].body) == 150
    with pytest.raises(SipParseError):
        framer.feed(data[-5:])


def test_rfc4475_semiuri() -> None:
    """§3.1.1.9: ';' in a user part is user data, not a URI parameter."""
    m = request("semiuri")
    ruri = m.request_uri
    assert ruri.user == "user;par=u%40example.net"
    assert ruri.host == "example.com"
    assert ruri.params == {}
    assert m.headers.tokens("Accept") == [
        "application/sdp",
        "application/pkcs7-mime",
        "multipart/mixed",
        "multipart/signed",
        "message/sip",
        "message/sipfrag",
    ]


def test_rfc4475_transports() -> None:
    """§3.1.1.10: known and unknown transports in Via."""
    m = request("transports")
    assert [(v.transport, v.host) for v in vias(m)] == [
        ("UDP", "t1.example.com"),
        ("SCTP", "t2.example.com"),
        ("TLS", "t3.example.com"),
        ("UNKNOWN", "t4.example.com"),
        ("TCP", "t5.example.com"),
    ]
    assert m.call_id == "transports.kijh4akdnaqjkwendsasfdj"


def test_rfc4475_mpart01() -> None:
    """§3.1.1.11: a multipart body with binary octets (including CRLF CRLF) is carried untouched."""
    data = raw("mpart01")
    m = request("mpart01")
    assert m.method == "MESSAGE"
    assert m.headers.get("Content-Type") == "multipart/mixed;boundary=7a9cbec02ceef655"
    assert len(m.body) == 553
    assert m.body == data[data.index(b"\r\n\r\n") + 4 :][:553]
    assert m.body.startswith(b"--7a9cbec02ceef655\r\nContent-Type: text/plain\r\n")
    assert m.body.rstrip(b"\r\n").endswith(b"--7a9cbec02ceef655--")
    assert (m.headers.get("Identity") or "").startswith("r5mwreLuyDRYBi/0TiPwEsY3rEVsk")
    assert vias(m)[0].rport_requested and vias(m)[0].rport is None
    assert_round_trip(m)


def test_rfc4475_unreason() -> None:
    """§3.1.1.12: a reason phrase with '=', '*' and UTF-8."""
    m = response("unreason")
    assert m.status == 200
    assert m.reason == (
        "= 2**3 * 5**2 \u043d\u043e \u0441\u0442\u043e \u0434\u0435\u0432\u044f\u043d\u043e\u0441\u0442\u043e"
        " \u0434\u0435\u0432\u044f\u0442\u044c - \u043f\u0440\u043e\u0441\u0442\u043e\u0435"
    )
    assert len(m.body) == 154
    assert_round_trip(m)


def test_rfc4475_noreason() -> None:
    """§3.1.1.13: an empty reason phrase."""
    m = response("noreason")
    assert m.status == 100
    assert m.reason == ""
    assert m.cseq == CSeq(35, "INVITE")
    assert_round_trip(m)


# ---- 3.1.2 invalid messages ------------------------------------------------------------------------


def test_rfc4475_badinv01() -> None:
    """§3.1.2.1: empty Via and Contact parameters (";;,;,," / ";;;;"): 400."""
    err = rejected("badinv01")
    assert err.status_hint == 400
    assert isinstance(err.partial, Request) and err.partial.call_id.startswith("badinv01")


def test_rfc4475_clerr() -> None:
    """§3.1.2.2: Content-Length larger than the datagram: 400 on UDP."""
    with pytest.raises(SipParseError) as info:
        parse_message(raw("clerr"))
    assert info.value.status_hint == 400
    assert isinstance(info.value.partial, Request)
    # on a stream the framer simply waits for the rest of the body
    framer = StreamFramer()
    assert framer.feed(raw("clerr")) == []


def test_rfc4475_ncl() -> None:
    """§3.1.2.3: negative Content-Length: 400."""
    with pytest.raises(SipParseError) as info:
        parse_message(raw("ncl"))
    assert info.value.status_hint == 400
    assert isinstance(info.value.partial, Request)


def test_rfc4475_scalar02() -> None:
    """§3.1.2.4: CSeq, Max-Forwards, Expires and contact expires past their ranges: 400."""
    err = rejected("scalar02")
    assert err.status_hint == 400
    m = parse_message(raw("scalar02"))
    with pytest.raises(SipParseError):
        m.cseq  # noqa: B018
    # Max-Forwards 300 alone is also refused
    m.headers.set("CSeq", "1 REGISTER")
    with pytest.raises(SipParseError, match="Max-Forwards") as info:
        validate(m)
    assert info.value.status_hint == 400


def test_rfc4475_scalarlg() -> None:
    """§3.1.2.5: a response with overlarge CSeq, Retry-After and warn-code: dropped, so it must raise."""
    m = parse_message(raw("scalarlg"))
    assert isinstance(m, Response) and m.status == 503
    with pytest.raises(SipParseError):
        validate(m)


def test_rfc4475_quotbal() -> None:
    """§3.1.2.6: unterminated quoted display name: 400."""
    err = rejected("quotbal")
    assert err.status_hint == 400
    with pytest.raises(SipParseError):
        NameAddr.parse('"Mr. J. User <sip:j.user@example.com>')


def test_rfc4475_ltgtruri() -> None:
    """§3.1.2.7: Request-URI in <>: 400."""
    err = rejected("ltgtruri")
    assert err.status_hint == 400
    assert isinstance(err.partial, Request) and err.partial.call_id == "ltgtruri.1@192.0.2.5"


def test_rfc4475_lwsruri() -> None:
    """§3.1.2.8: LWS inside the Request-URI: 400."""
    with pytest.raises(SipParseError) as info:
        parse_message(raw("lwsruri"))
    assert info.value.status_hint == 400
    # the headers are still read, so that the 400 can be addressed back
    assert (
        isinstance(info.value.partial, Request)
        and info.value.partial.call_id == "lwsruri.asdfasdoeoi2323-asdfwrn23-asd834rk423"
    )


def test_rfc4475_lwsstart() -> None:
    """§3.1.2.9: several SP between Request-Line elements: 400."""
    with pytest.raises(SipParseError) as info:
        parse_message(raw("lwsstart"))
    assert info.value.status_hint == 400
    # the headers are still read, so that the 400 can be addressed back
    assert (
        isinstance(info.value.partial, Request)
        and info.value.partial.call_id == "lwsstart.dfknq234oi243099adsdfnawe3@example.com"
    )


def test_rfc4475_trws() -> None:
    """§3.1.2.10: SP after the SIP version: 400."""
    with pytest.raises(SipParseError) as info:
        parse_message(raw("trws"))
    assert info.value.status_hint == 400
    # the headers are still read, so that the 400 can be addressed back
    assert (
        isinstance(info.value.partial, Request)
        and info.value.partial.call_id == "trws.oicu34958239neffasdhr2345r"
    )


def test_rfc4475_escruri() -> None:
    """§3.1.2.11: escaped headers in the Request-URI: 400."""
    err = rejected("escruri")
    assert err.status_hint == 400
    assert "Request-URI" in err.reason


def test_rfc4475_baddate() -> None:
    """§3.1.2.12: a Date with an invalid time zone must not cause a 400; the core ignores Date."""
    m = request("baddate")
    assert m.headers.get("Date") == "Fri, 01 Jan 2010 16:00:00 EST"
    assert len(m.body) == 150


def test_rfc4475_regbadct() -> None:
    """§3.1.2.13: an addr-spec Contact with '?headers' and no <>: unambiguous here, so <> is inferred."""
    m = request("regbadct")
    (contact,) = contacts(m)
    assert contact.uri.user == "user" and contact.uri.host == "example.com"
    assert contact.uri.headers == "Route=%3Csip:sip.example.com%3E"
    assert contact.uri.header_fields == [("Route", "<sip:sip.example.com>")]
    assert contact.params == {}
    # written back in the name-addr form it should have had
    assert str(contact) == "<sip:user@example.com?Route=%3Csip:sip.example.com%3E>"


def test_rfc4475_badaspec() -> None:
    """§3.1.2.14: spaces inside <...> around the addr-spec: 400 (the RFC allows this strict answer)."""
    err = rejected("badaspec")
    assert err.status_hint == 400
    with pytest.raises(SipParseError):
        NameAddr.parse('"Watson, Thomas" < sip:t.watson@example.org >')
    # the quoted display names with commas are fine
    m = parse_message(raw("badaspec"))
    assert m.from_.display_unquoted == "Bell, Alexander"


def test_rfc4475_baddn() -> None:
    """§3.1.2.15: a non-token, unquoted display name ("Bell, Alexander"): 400."""
    err = rejected("baddn")
    assert err.status_hint == 400


def test_rfc4475_badvers() -> None:
    """§3.1.2.16: SIP/7.0: 505 Version Not Supported."""
    m = parse_message(raw("badvers"))
    assert m.version == "SIP/7.0"
    with pytest.raises(SipParseError) as info:
        validate(m)
    assert info.value.status_hint == 505
    assert info.value.partial is m


def test_rfc4475_mismatch01() -> None:
    """§3.1.2.17: OPTIONS with CSeq method INVITE: 400."""
    err = rejected("mismatch01")
    assert err.status_hint == 400


def test_rfc4475_mismatch02() -> None:
    """§3.1.2.18: unknown method with a mismatched CSeq: 501 (the RFC prefers it to 400)."""
    err = rejected("mismatch02")
    assert err.status_hint == 501
    assert isinstance(err.partial, Request) and err.partial.method == "NEWMETHOD"


def test_rfc4475_bigcode() -> None:
    """§3.1.2.19: a response code of 4294967301 (not 429 + reason): the response is dropped."""
    with pytest.raises(SipParseError) as info:
        parse_message(raw("bigcode"))
    assert info.value.partial is None


# ---- 3.2 transaction layer -------------------------------------------------------------------------


def test_rfc4475_badbranch() -> None:
    """§3.2.1: branch is only the magic cookie: not RFC 3261-unique, the transaction layer must cope."""
    m = request("badbranch")
    assert vias(m)[0].branch == "z9hG4bK"


# ---- 3.3 application layer -------------------------------------------------------------------------


def test_rfc4475_insuf() -> None:
    """§3.3.1: no To, From, Call-ID or Max-Forwards: 400."""
    err = rejected("insuf")
    assert err.status_hint == 400
    assert isinstance(err.partial, Request) and err.partial.cseq == CSeq(193942, "INVITE")


def test_rfc4475_unkscm() -> None:
    """§3.3.2: an unknown Request-URI scheme parses; the application answers 416."""
    m = request("unkscm")
    ruri = m.request_uri
    assert ruri.scheme == "nobodyknowsthisscheme"
    assert ruri.opaque == "totallyopaquecontent"
    assert ruri.host == ""


def test_rfc4475_novelsc() -> None:
    """§3.3.3: a registered but atypical scheme (soap.beep) parses; 416 is the application's call."""
    m = request("novelsc")
    assert m.request_uri.scheme == "soap.beep"
    assert m.request_uri.opaque == "//192.0.2.103:3002"


def test_rfc4475_unksm2() -> None:
    """§3.3.4: non-SIP schemes in To, From and Contact parse."""
    m = request("unksm2")
    assert m.to.uri.scheme == "isbn" and m.to.uri.opaque == "2983792873"
    assert m.from_.uri.scheme == "http" and m.from_.tag == "3234233"
    assert contacts(m)[0].uri.scheme == "name"


def test_rfc4475_bext01() -> None:
    """§3.3.5: unknown Require and Proxy-Require option tags are exposed for a 420."""
    m = request("bext01")
    assert m.headers.tokens("Require") == ["nothingsupportsthis", "nothingsupportsthiseither"]
    assert m.headers.tokens("Proxy-Require") == ["noproxiessupportthis", "nordoanyproxiessupportthis"]
    assert vias(m)[0].transport == "TLS"


def test_rfc4475_invut() -> None:
    """§3.3.6: an unknown Content-Type parses; the application answers 415."""
    m = request("invut")
    assert m.headers.get("Content-Type") == "application/unknownformat"
    assert m.body == b'<audio>\r\n <pcmu port="443"/>\r\n</audio>\r\n'


def test_rfc4475_regaut01() -> None:
    """§3.3.7: an unknown authorization scheme parses; the registrar challenges (401)."""
    m = request("regaut01")
    scheme, params = parse_auth_params(m.headers.get("Authorization") or "")
    assert scheme == "nooneknowsthisscheme"
    assert params == {"opaque-data": "here"}
    assert m.body == b""


def test_rfc4475_multi01() -> None:
    """§3.3.8: two CSeq, Call-ID, To, From and Max-Forwards values: 400."""
    err = rejected("multi01")
    assert err.status_hint == 400
    assert "more than one" in err.reason


def test_rfc4475_mcl01() -> None:
    """§3.3.9: two different Content-Length values: the body cannot be delimited: 400."""
    with pytest.raises(SipParseError) as info:
        parse_message(raw("mcl01"))
    assert info.value.status_hint == 400
    assert isinstance(info.value.partial, Request)
    with pytest.raises(SipParseError):
        StreamFramer().feed(raw("mcl01"))


def test_rfc4475_bcast() -> None:
    """§3.3.10: a 200 OK whose second Via is the broadcast address parses; no transaction will match."""
    m = response("bcast")
    assert m.status == 200
    assert [v.host for v in vias(m)] == ["192.0.2.198", "255.255.255.255"]
    assert len(m.body) == 154


def test_rfc4475_zeromf() -> None:
    """§3.3.11: Max-Forwards 0 parses; a UAS answers the OPTIONS (a proxy would answer 483)."""
    m = request("zeromf")
    assert m.headers.get("Max-Forwards") == "0"
    assert m.method == "OPTIONS"


def test_rfc4475_cparam01() -> None:
    """§3.3.12: addr-spec Contact: ';unknownparam' is a header parameter, not a URI parameter."""
    m = request("cparam01")
    (contact,) = contacts(m)
    assert contact.params == {"unknownparam": None}
    assert contact.uri.params == {}
    assert contact.uri.user == "+19725552222"


def test_rfc4475_cparam02() -> None:
    """§3.3.13: name-addr Contact: ';unknownparam' inside <> is a URI parameter."""
    m = request("cparam02")
    (contact,) = contacts(m)
    assert contact.params == {}
    assert contact.uri.params == {"unknownparam": None}


def test_rfc4475_regescrt() -> None:
    """§3.3.14: an escaped Route header in a Contact URI, properly in <>: parses."""
    m = request("regescrt")
    (contact,) = contacts(m)
    assert contact.uri.header_fields == [("Route", "<sip:sip.example.com>")]
    assert m.body == b""


def test_rfc4475_sdp01() -> None:
    """§3.3.15: Accept lists only an unknown type; the UAS decides (406 or answer in SDP anyway)."""
    m = request("sdp01")
    assert m.headers.tokens("Accept") == ["text/nobodyknowsthis"]
    assert m.headers.get("Content-Type") == "application/sdp"
    assert m.body == SDP_BODY.replace(b"%s", b"5")


# ---- 3.4 backward compatibility --------------------------------------------------------------------


def test_rfc4475_inv2543() -> None:
    """§3.4.1: RFC 2543 syntax: no Max-Forwards, no branch, no From tag, no Content-Length on UDP."""
    m = request("inv2543")
    assert "Max-Forwards" not in m.headers
    assert vias(m)[0].branch is None
    assert m.from_.tag is None
    assert m.from_.uri.params == {"user": "phone"}
    assert m.to.params == {"user": "phone"}  # addr-spec: the parameter belongs to the header
    assert m.body.startswith(b"v=0\r\n") and m.body.endswith(b"m=audio 49217 RTP/AVP 0\r\n")
    with pytest.raises(SipParseError) as info:
        parse_message(raw("inv2543"), datagram=False)
    assert info.value.status_hint == 400
