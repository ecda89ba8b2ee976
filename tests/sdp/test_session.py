from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from samples import BARESIP_OFFER, SIPP_OFFER, crlf

from imsconf.sdp import (
    Attribute,
    Bandwidth,
    Connection,
    MediaDescription,
    Origin,
    Repeat,
    SdpParseError,
    SessionDescription,
    Timing,
    ZoneAdjustment,
)
from imsconf.sdp.session import MAX_SDP_SIZE

parse = SessionDescription.parse


@pytest.mark.parametrize("body", [BARESIP_OFFER, SIPP_OFFER])
def test_peer_offers_round_trip_byte_exact(body: bytes) -> None:
    sd = parse(body)
    assert bytes(sd) == body
    assert parse(bytes(sd)) == sd


def test_baresip_offer_fields() -> None:
    sd = parse(BARESIP_OFFER)
    assert sd.origin == Origin("-", 1441271342, 3375293862, "127.0.0.1")
    assert sd.connection == Connection("127.0.0.1")
    assert sd.get_attribute("tool") == "baresip 1.0.0"
    (audio,) = sd.media
    assert (audio.media, audio.port, audio.proto, audio.formats) == ("audio", 10000, "RTP/SAVP", ("0", "101"))
    assert audio.bandwidths == (Bandwidth("AS", 64),)
    assert audio.get_attribute("sendrecv") == ""
    assert audio.has_attribute("RTCP-RSIZE")
    assert len(audio.get_attributes("crypto")) == 3
    assert audio.get_attribute("nope") is None


def test_full_session_level_round_trip() -> None:
    body = crlf("""
    v=0
    o=jdoe 3724394400 3724394405 IN IP4 198.51.100.1
    s=Call to John Smith
    i=SDP Offer #1
    u=http://www.jdoe.example.com/home.html
    e=Jane Doe <jane@jdoe.example.com>
    p=+1 617 555-6011
    c=IN IP4 198.51.100.1
    b=CT:128
    t=3724394400 3724398000
    r=7d 1h 0 25h
    t=0 0
    z=2882844526 -1h 2898848070 0
    k=prompt
    a=recvonly
    m=audio 49170 RTP/AVP 0
    i=voice
    c=IN IP4 233.252.0.1/127/3
    b=AS:64
    k=clear:x
    a=rtpmap:0 PCMU/8000
    m=video 51372/2 RTP/AVP 99
    c=IN IP6 ff00::db8:0:101/3
    a=rtpmap:99 h263-1998/90000
    """)
    sd = parse(body)
    assert bytes(sd) == body
    assert sd.timings[0].repeats == (Repeat("7d", "1h", ("0", "25h")),)
    assert sd.zones == (ZoneAdjustment(2882844526, "-1h"), ZoneAdjustment(2898848070, "0"))
    assert sd.media[0].connections == (Connection("233.252.0.1", ttl=127, count=3),)
    assert sd.media[1].connections == (Connection("ff00::db8:0:101", addrtype="IP6", count=3),)
    assert sd.media[1].port_count == 2
    assert sd.emails == ("Jane Doe <jane@jdoe.example.com>",)


def test_lenient_lf_only_missing_t_and_trailing_blank_lines() -> None:
    body = b"v=0\no=- 1 1 IN IP4 10.0.0.1\ns=\nm=audio 5 RTP/AVP\n\n\n"
    sd = parse(body)
    assert sd.timings == () and sd.name == "" and sd.media[0].formats == ()
    assert parse(bytes(sd)) == sd


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"", "empty"),
        (b"o=- 1 1 IN IP4 a\r\n", "v=0"),
        (b"v=1\r\n", "v=0"),
        (b"v=0\r\ns=x\r\n", "missing o="),
        (b"v=0\r\no=- 1 1 IN IP4 a\r\nt=0 0\r\n", "missing s="),
        (b"v=0\r\no=- 1 1 IN IP4 a\r\ns=x\r\nt=0 0\r\nc=IN IP4 a\r\n", "out of order"),
        (b"v=0\r\no=- 1 1 IN IP4 a\r\no=- 1 1 IN IP4 a\r\ns=x\r\n", "only once"),
        (b"v=0\r\no=- x 1 IN IP4 a\r\ns=x\r\n", "malformed o="),
        (b"v=0\r\no=- 1 1 IN IP4 a\r\ns=x\r\nx=1\r\n", "unknown"),
        (b"v=0\r\no=- 1 1 IN IP4 a\r\ns=x\r\nr=1 1 1\r\n", "r= must follow"),
        (b"v=0\r\no=- 1 1 IN IP4 a\r\ns=x\r\nthis is no line\r\n", "not <type>=<value>"),
        (b"v=0\r\no=- 1 1 IN IP4 a\r\ns=x\r\nm=audio 99999 RTP/AVP 0\r\n", "out of range"),
        (b"v=0\r\no=- 1 1 IN IP4 a\r\ns=x\r\nm=audio x RTP/AVP 0\r\n", "malformed m="),
        (b"v=0\r\no=- 1 1 IN IP4 a\r\ns=x\r\nm=audio 1 RTP/AVP 0\r\na=x\r\nc=IN IP4 a\r\n", "out of order"),
        (b"v=0\r\no=- 1 1 IN IP4 a\r\ns=x\r\nm=audio 1 RTP/AVP 0\r\nt=0 0\r\n", "not allowed"),
        (b"v=0\r\no=- 1 1 IN IP4 a\r\ns=x\r\nc=IN IP6 ::1/3/4\r\n", "TTL"),
        (b"v=0\r\no=- 1 1 IN IP4 a\r\ns=x\r\nc=IN IP4 a/1/0\r\n", "range"),
        (b"v=0\r\no=- 1 1 IN IP4 a\r\ns=x\r\nb=AS\r\n", "malformed b="),
        (b"v=0\r\no=- 1 1 IN IP4 a\r\ns=x\r\nt=0\r\n", "malformed t="),
        (b"v=0\r\no=- 1 1 IN IP4 a\r\ns=x\r\nt=0 0\r\nz=1\r\n", "malformed z="),
        (b"v=0\r\no=- 1 1 IN IP4 a\r\ns=x\r\ne=\r\n", "empty e="),
        (b"v=0\r\no=- 1 1 IN IP4 a\r\ns=x\r\na=:x\r\n", "malformed a="),
        (b"v=0\r\no=- 1 1 IN IP4 a\r\ns=\xff\r\n", "UTF-8"),
        (b"v=0\r\no=- 1 1 IN IP4 a\r\ns=a\rb\r\n", "not <type>=<value>"),
    ],
)
def test_broken_sdp_is_a_clear_400(body: bytes, fragment: str) -> None:
    with pytest.raises(SdpParseError) as info:
        parse(body)
    assert fragment in info.value.reason
    assert info.value.status_hint == 400


def test_size_caps_answer_413() -> None:
    with pytest.raises(SdpParseError) as info:
        parse(b"v=0\r\n" + b"a" * MAX_SDP_SIZE)
    assert info.value.status_hint == 413
    many = b"v=0\r\no=- 1 1 IN IP4 a\r\ns=x\r\n" + b"a=x\r\n" * 2000
    with pytest.raises(SdpParseError) as info:
        parse(many)
    assert info.value.status_hint == 413
    media = b"v=0\r\no=- 1 1 IN IP4 a\r\ns=x\r\n" + b"m=audio 0 RTP/AVP 0\r\n" * 65
    with pytest.raises(SdpParseError, match="media sections"):
        parse(media)


def test_construction_validates() -> None:
    with pytest.raises(ValueError):
        Attribute("bad name")
    with pytest.raises(ValueError):
        Attribute("x", "a\r\nm=evil")
    with pytest.raises(ValueError):
        MediaDescription("audio", 70000, "RTP/AVP", ("0",))
    with pytest.raises(ValueError):
        Origin("a b", 1, 1, "h")
    with pytest.raises(ValueError):
        Connection("10.0.0.1", count=2)
    with pytest.raises(ValueError):
        SessionDescription(Origin("-", 1, 1, "h"), name="x\ny")


def test_crypto_attribute_repr_is_redacted() -> None:
    sd = parse(BARESIP_OFFER)
    text = repr(sd)
    assert "inline:<redacted>" in text
    from samples import KEY80_B64

    assert KEY80_B64 not in text


def test_hold_connection_helpers() -> None:
    assert Connection("0.0.0.0").is_unspecified
    assert not Connection("127.0.0.1").is_unspecified


# ---------------------------------------------------------------------------------------------- hypothesis

token = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!", min_size=1, max_size=8
)
text = st.text(st.characters(exclude_characters="\r\n\x00", exclude_categories=["Cs"]), max_size=20)
nonempty_text = text.filter(bool)
nows = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789.:-", min_size=1, max_size=12)
ip4 = st.ip_addresses(v=4).map(str)
ip6 = st.ip_addresses(v=6).map(str)
typed = st.builds(lambda n, u: f"{n}{u}", st.integers(0, 10**6), st.sampled_from(["", "d", "h", "m", "s"]))

connections = st.one_of(
    st.builds(Connection, ip4),
    st.builds(Connection, ip4, ttl=st.integers(0, 255), count=st.none() | st.integers(1, 9)),
    st.builds(lambda a, c: Connection(a, addrtype="IP6", count=c), ip6, st.none() | st.integers(1, 9)),
    st.builds(Connection, nows),
)
attributes = st.builds(Attribute, token, st.none() | text)
bandwidths = st.builds(Bandwidth, token, st.integers(0, 10**9))
timings = st.builds(
    Timing,
    st.integers(0, 2**40),
    st.integers(0, 2**40),
    st.lists(
        st.builds(Repeat, typed, typed, st.lists(typed, min_size=1, max_size=3).map(tuple)), max_size=2
    ).map(tuple),
)
zones = st.lists(
    st.builds(
        ZoneAdjustment,
        st.integers(0, 2**40),
        st.builds(lambda s, t: s + t, st.sampled_from(["", "-"]), typed),
    ),
    max_size=3,
).map(tuple)
media = st.builds(
    MediaDescription,
    token,
    st.integers(0, 65535),
    st.lists(token, min_size=1, max_size=3).map("/".join),
    st.lists(token, max_size=5).map(tuple),
    port_count=st.none() | st.integers(1, 4),
    information=st.none() | text,
    connections=st.lists(connections, max_size=2).map(tuple),
    bandwidths=st.lists(bandwidths, max_size=2).map(tuple),
    key=st.none() | text,
    attributes=st.lists(attributes, max_size=6).map(tuple),
)
descriptions = st.builds(
    SessionDescription,
    st.builds(Origin, nows, st.integers(0, 2**64), st.integers(0, 2**64), nows, nows, nows),
    name=text,
    information=st.none() | text,
    uri=st.none() | nonempty_text,
    emails=st.lists(nonempty_text, max_size=2).map(tuple),
    phones=st.lists(nonempty_text, max_size=2).map(tuple),
    connection=st.none() | connections,
    bandwidths=st.lists(bandwidths, max_size=2).map(tuple),
    timings=st.lists(timings, max_size=2).map(tuple),
    zones=zones,
    key=st.none() | text,
    attributes=st.lists(attributes, max_size=4).map(tuple),
    media=st.lists(media, max_size=4).map(tuple),
)


@given(descriptions)
@settings(max_examples=300)
def test_round_trip_of_generated_descriptions(sd: SessionDescription) -> None:
    assert parse(bytes(sd)) == sd


@given(st.binary(max_size=400))
def test_random_bytes_raise_only_sdp_parse_error(data: bytes) -> None:
    try:
        parse(data)
    except SdpParseError:
        pass


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    base = bytearray(draw(st.sampled_from([BARESIP_OFFER, SIPP_OFFER])))
    for _ in range(draw(st.integers(1, 8))):
        op = draw(st.sampled_from(["flip", "delete", "insert"]))
        pos = draw(st.integers(0, len(base) - 1))
        if op == "flip":
            base[pos] = draw(st.integers(0, 255))
        elif op == "delete":
            del base[pos : pos + draw(st.integers(1, 10))]
        else:
            base[pos:pos] = draw(
                st.sampled_from([b"\r\n", b"=", b" ", b"/", b":", b"m=audio 1 RTP/AVP 0\r\n", b"\x00"])
            )
        if not base:
            break
    return bytes(base)


@given(mutated())
@settings(max_examples=300)
def test_mutated_offers_raise_only_sdp_parse_error(data: bytes) -> None:
    try:
        sd = parse(data)
    except SdpParseError:
        return
    assert parse(bytes(sd)) == sd
