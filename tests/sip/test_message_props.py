"""Property tests of the SIP message codec.

(a) Every message the core can build survives ``parse_message(bytes(m)) == m``, whole or fed to the stream
    framer in arbitrary chunks.
(b) No input, random or mutated from a valid message, makes a parser raise anything but SipParseError.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imsconf.sip.errors import SipParseError
from imsconf.sip.headers import COMPACT, LIST_HEADERS, CSeq, Headers, Via, parse_auth_params
from imsconf.sip.message import Request, Response, StreamFramer, parse_head, parse_message, validate
from imsconf.sip.uri import NameAddr, SipUri

Message = Request | Response

# IMSCONF_FUZZ_SCALE=20 (for instance) runs a longer campaign without editing the file.
_SCALE = max(1, int(os.environ.get("IMSCONF_FUZZ_SCALE", "1")))
PROPS = settings(max_examples=300 * _SCALE, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FUZZ = settings(max_examples=500 * _SCALE, deadline=None, suppress_health_check=[HealthCheck.too_slow])

VECTORS = sorted((Path(__file__).resolve().parents[1] / "data" / "rfc4475").glob("*.dat"))
SEEDS = [p.read_bytes() for p in VECTORS]

# ---- building blocks ----------------------------------------------------------------------------------

TOKEN_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~"
tokens = st.text(TOKEN_CHARS, min_size=1, max_size=12)
lower_tokens = st.text("abcdefghijklmnopqrstuvwxyz0123456789-.!%*_+`'~", min_size=1, max_size=10)

methods = st.one_of(
    st.sampled_from(["INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "SUBSCRIBE", "NOTIFY", "INFO"]),
    tokens,
)

escape = st.integers(0, 255).map(lambda b: f"%{b:02X}")
user_parts = st.lists(
    st.one_of(st.sampled_from("abcXYZ019-_.!~*'()&=+$,;?/"), escape), min_size=1, max_size=10
).map("".join)
password_parts = st.lists(st.one_of(st.sampled_from("abcXYZ019-_.!~*'()&=+$,"), escape), max_size=8).map(
    "".join
)
labels = st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=8)
hostnames = st.lists(labels, min_size=1, max_size=4).map(".".join)
ipv4 = st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: ".".join(map(str, t)))
ipv6 = st.lists(st.integers(0, 0xFFFF).map(lambda n: f"{n:x}"), min_size=8, max_size=8).map(
    lambda g: "[" + ":".join(g) + "]"
)
hosts = st.one_of(hostnames, ipv4, ipv6)
uri_params = st.dictionaries(lower_tokens, st.one_of(st.none(), tokens), max_size=4)
uri_headers = st.one_of(
    st.none(),
    st.lists(st.tuples(tokens, st.text(TOKEN_CHARS + "%", max_size=6)), min_size=1, max_size=3).map(
        lambda kv: "&".join(f"{k}={v}" for k, v in kv)
    ),
)


@st.composite
def sip_uris(draw: st.DrawFn, *, with_headers: bool = True) -> SipUri:
    user = draw(st.one_of(st.none(), user_parts))
    password = draw(st.one_of(st.none(), password_parts)) if user is not None else None
    return SipUri(
        scheme=draw(st.sampled_from(["sip", "sips"])),
        user=user,
        password=password,
        host=draw(hosts),
        port=draw(st.one_of(st.none(), st.integers(0, 65535))),
        params=draw(uri_params),
        headers=draw(uri_headers) if with_headers else None,
    )


other_uris = st.builds(
    lambda scheme, rest: SipUri(scheme=scheme, opaque=rest),
    st.sampled_from(["tel", "urn", "mailto", "x-custom+scheme.1"]),
    st.text(TOKEN_CHARS + ":/@;=?&", min_size=1, max_size=20),
)
any_uris = st.one_of(sip_uris(), other_uris)

# header values: no CR/LF (the serializer refuses them), no surrogates, no outer SP/HTAB (the parser strips)
safe_chars = st.characters(codec="utf-8", exclude_characters="\r\n")
qdtext = st.text(st.characters(codec="utf-8", exclude_characters='\r\n"\\'), max_size=10)
quoted_strings = st.lists(
    st.one_of(qdtext, st.characters(codec="utf-8", exclude_characters="\r\n").map("\\".__add__)),
    max_size=4,
).map(lambda parts: '"' + "".join(parts) + '"')
plain = st.text(st.characters(codec="utf-8", exclude_characters='\r\n",'), max_size=15)


def _strip(v: str) -> str:
    return v.strip(" \t")


# one element of a list header: commas only inside quoted strings, balanced quotes
list_elements = st.lists(st.one_of(plain, quoted_strings), max_size=4).map("".join).map(str.strip)
free_values = st.one_of(st.text(safe_chars, max_size=40), list_elements).map(_strip)

known_names = st.sampled_from(
    ["Via", "From", "To", "Call-ID", "CSeq", "Contact", "Route", "Record-Route", "Max-Forwards", "Subject",
     "Supported", "Require", "Allow", "Date", "Authorization", "WWW-Authenticate", "Event", "Accept"]
)  # fmt: skip
compact_names = st.sampled_from(sorted(set(COMPACT) - {"l"}))
random_case = st.tuples(known_names, st.randoms(use_true_random=False)).map(
    lambda t: "".join(c.upper() if t[1].random() < 0.5 else c.lower() for c in t[0])
)
header_names = st.one_of(known_names, compact_names, random_case, tokens).filter(
    lambda n: n.lower() not in ("content-length", "l")
)


@st.composite
def header_lists(draw: st.DrawFn) -> Headers:
    h = Headers()
    for name in draw(st.lists(header_names, max_size=12)):
        h.add(name, "")  # canonicalise first, to know whether the header is a list
        cname = h.items[-1][0]
        value = draw(list_elements if cname.lower() in LIST_HEADERS else free_values)
        h.items[-1] = (cname, value)
    return h


bodies = st.binary(max_size=300)
versions = st.one_of(
    st.just("SIP/2.0"), st.tuples(st.integers(0, 99), st.integers(0, 99)).map("SIP/{0[0]}.{0[1]}".format)
)


@st.composite
def requests(draw: st.DrawFn) -> Request:
    return Request(draw(methods), str(draw(any_uris)), draw(header_lists()), draw(bodies), draw(versions))


@st.composite
def responses(draw: st.DrawFn) -> Response:
    reason = _strip(draw(st.text(safe_chars, max_size=30)))
    return Response(draw(st.integers(100, 699)), reason, draw(header_lists()), draw(bodies), draw(versions))


messages = st.one_of(requests(), responses())


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


# ---- (a) round trips ----------------------------------------------------------------------------------


@PROPS
@given(messages)
def test_round_trip_datagram(m: Message) -> None:
    data = bytes(m)
    assert parse_message(data) == m
    assert parse_message(data, datagram=False) == m


@PROPS
@given(messages, st.lists(st.integers(0, 10_000), max_size=20), st.sampled_from([b"", b"\r\n\r\n", b"\r\n"]))
def test_round_trip_stream_chunks(m: Message, cuts: list[int], keepalive: bytes) -> None:
    data = bytes(m)
    stream = keepalive + data + data
    framer = StreamFramer()
    items: list[object] = []
    for chunk in chunked(stream, cuts):
        items += framer.feed(chunk)
    marker = {b"": [], b"\r\n\r\n": [StreamFramer.PING], b"\r\n": [StreamFramer.PONG]}[keepalive]
    expected: list[object] = list(marker)
    assert items == [*expected, m, m]
    assert framer.buffered == 0


@PROPS
@given(sip_uris())
def test_sip_uri_round_trip(u: SipUri) -> None:
    parsed = SipUri.parse(str(u))
    assert parsed == u
    assert parsed.equivalent(u)
    assert str(parsed) == str(u)


@PROPS
@given(
    sip_uris(with_headers=False),
    st.one_of(st.none(), tokens.map(lambda t: t + " x"), quoted_strings),
    st.dictionaries(lower_tokens, st.one_of(st.none(), tokens, quoted_strings), max_size=3),
)
def test_name_addr_round_trip(u: SipUri, display: str | None, params: dict[str, str | None]) -> None:
    n = NameAddr(u, display, params)
    assert NameAddr.parse(str(n)) == n


@PROPS
@given(
    st.sampled_from(["UDP", "TCP", "TLS", "SCTP", "WS", "WSS"]),
    hosts,
    st.one_of(st.none(), st.integers(0, 65535)),
    uri_params,
)
def test_via_round_trip(transport: str, host: str, port: int | None, params: dict[str, str | None]) -> None:
    v = Via(transport, host, port, params)
    assert Via.parse(str(v)) == v


# ---- (b) only SipParseError ---------------------------------------------------------------------------


def exercise(data: bytes) -> None:
    """Run every entry point on *data*; anything but SipParseError escapes and fails the test."""
    for datagram in (True, False):
        try:
            m = parse_message(data, datagram=datagram)
        except SipParseError:
            continue
        try:
            validate(m)
        except SipParseError:
            pass
        for attr in ("cseq", "from_", "to", "top_via", "call_id", "request_uri"):
            try:
                getattr(m, attr)
            except (SipParseError, AttributeError):
                pass
        for name in ("Via", "Contact", "Route", "Record-Route", "From", "To"):
            for value in m.headers.get_all(name):
                try:
                    Via.parse(value) if name == "Via" else NameAddr.parse(value)
                except SipParseError:
                    pass
        # a parsed message re-serializes, and re-parses to itself (or is too large once expanded)
        again = bytes(m)
        try:
            assert parse_message(again, datagram=datagram) == m
        except SipParseError as exc:
            assert exc.status_hint == 513
    try:
        parse_head(data)
    except SipParseError:
        pass
    framer = StreamFramer()
    try:
        for i in range(0, len(data), 7):
            framer.feed(data[i : i + 7])
    except SipParseError:
        pass


def mutate(data: bytes, ops: list[tuple[int, int, bytes]]) -> bytes:
    buf = bytearray(data)
    for kind, pos, blob in ops:
        at = pos % (len(buf) + 1)
        if kind == 0:  # overwrite
            buf[at : at + len(blob)] = blob
        elif kind == 1:  # insert
            buf[at:at] = blob
        elif kind == 2:  # delete
            del buf[at : at + len(blob) + 1]
        else:  # duplicate a slice
            buf[at:at] = buf[at : at + 40]
    return bytes(buf)


interesting = st.sampled_from(
    [b"\r\n", b"\n", b"\r", b"\r\n ", b"\r\n\r\n", b":", b";", b",", b'"', b"\\", b"<", b">", b"@", b"%",
     b"\x00", b"\xff", b"\xc3", b"\xd9\xa2", b"\xc2\xb2", b" ", b"\t", b"=", b"?", b"[", b"]", b"sip:",
     b"SIP/2.0", b"Content-Length: ", b"l: 99999999999\r\n", b"9" * 40, b"-1", b"Via: ", b"CSeq: ",
     b"\xe2\x80\xa8"]
)  # fmt: skip
ops = st.lists(
    st.tuples(
        st.integers(0, 3), st.integers(0, 5000), st.one_of(interesting, st.binary(min_size=1, max_size=4))
    ),
    min_size=1,
    max_size=6,
)


@FUZZ
@given(st.binary(max_size=600))
def test_random_bytes_only_raise_sip_parse_error(data: bytes) -> None:
    exercise(data)


@FUZZ
@given(st.sampled_from(SEEDS), ops)
def test_mutated_torture_messages_only_raise_sip_parse_error(
    seed: bytes, mutation: list[tuple[int, int, bytes]]
) -> None:
    exercise(mutate(seed, mutation))


@FUZZ
@given(messages, ops)
def test_mutated_built_messages_only_raise_sip_parse_error(
    m: Message, mutation: list[tuple[int, int, bytes]]
) -> None:
    exercise(mutate(bytes(m), mutation))


uriish = st.text(
    st.one_of(st.sampled_from("sipSIP:@;=?&%<>[]\"', \t.-_0123456789abc/\\+*!~"), st.characters()),
    max_size=60,
)


@FUZZ
@given(st.one_of(uriish, st.builds(str, any_uris).map(lambda s: s + "x"), st.text(max_size=40)))
def test_text_parsers_only_raise_sip_parse_error(text: str) -> None:
    for parse in (SipUri.parse, NameAddr.parse, Via.parse, CSeq.parse, parse_auth_params):
        try:
            parse(text)
        except SipParseError:
            pass


@FUZZ
@given(
    any_uris,
    st.lists(st.tuples(st.integers(0, 200), st.sampled_from(list(':@;=?&%<>[] ,"\\\x00é٣'))), max_size=4),
)
def test_mutated_uris_only_raise_sip_parse_error(u: SipUri, edits: list[tuple[int, str]]) -> None:
    text = str(u)
    for pos, ch in edits:
        at = pos % (len(text) + 1)
        text = text[:at] + ch + text[at:]
    for parse in (SipUri.parse, NameAddr.parse):
        try:
            parsed = parse(text)
        except SipParseError:
            continue
        str(parsed)
        if isinstance(parsed, SipUri):
            parsed.equivalent(u)
            parsed.unescaped_params  # noqa: B018
            parsed.header_fields  # noqa: B018
