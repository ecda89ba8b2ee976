from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from samples import BARESIP_OFFER, KEY80, KEY80_B64, KEY_GCM, SIPP_OFFER, crlf

from imsconf.sdp import (
    AnswerPolicy,
    Attribute,
    Codec,
    CryptoAttribute,
    Direction,
    Endpoint,
    MediaDescription,
    OfferAnswerError,
    SessionDescription,
    build_answer,
    build_offer,
    decide_answer,
    is_hold,
    parse_answer,
)

parse = SessionDescription.parse
SECURE = AnswerPolicy()
PLAIN_OK = AnswerPolicy(allow_plain_rtp=True, require_srtp=False, secure_signalling=False)
OUR_KEY = bytes(range(200, 230))


def offer(media: str, session: str = "c=IN IP4 192.0.2.10", attrs: str = "") -> SessionDescription:
    text = f"v=0\no=- 1 1 IN IP4 192.0.2.10\ns=-\n{session}\nt=0 0\n{attrs}\n{media}"
    return parse(crlf("\n".join(line for line in text.splitlines() if line.strip())))


def test_baresip_offer_is_accepted_with_its_first_suite() -> None:
    d = decide_answer(parse(BARESIP_OFFER), SECURE)
    assert d.mline_index == 0 and d.proto == "RTP/SAVP"
    assert d.codec == Codec("PCMU", 0, 8000)
    assert d.telephone_event == 101 and d.telephone_event_fmtp == "0-15"
    assert d.remote_rtp == Endpoint("127.0.0.1", 10000)
    assert d.remote_rtcp == Endpoint("127.0.0.1", 10001)
    assert not d.rtcp_mux and not d.on_hold
    assert (d.remote_direction, d.local_direction) == (Direction.SENDRECV, Direction.SENDRECV)
    assert d.srtp is not None and d.secure
    assert (d.srtp.tag, d.srtp.suite) == (1, "AES_CM_128_HMAC_SHA1_80")
    assert d.srtp.remote.key_salt == KEY80
    assert d.rejected == ()


def test_suite_choice_follows_the_offer_among_supported() -> None:
    gcm_only = AnswerPolicy(srtp_suites=("AEAD_AES_128_GCM",))
    d = decide_answer(parse(BARESIP_OFFER), gcm_only)
    assert d.srtp is not None and (d.srtp.tag, d.srtp.suite) == (3, "AEAD_AES_128_GCM")
    assert d.srtp.remote.key_salt == KEY_GCM


def test_build_answer_for_baresip() -> None:
    o = parse(BARESIP_OFFER)
    d = decide_answer(o, SECURE)
    ours = CryptoAttribute.from_key(1, "AES_CM_128_HMAC_SHA1_80", OUR_KEY)
    a = build_answer(o, d, "192.0.2.1", 20000, 20001, ours, session_id=42, version=1)
    assert parse(bytes(a)) == a
    text = bytes(a).decode()
    assert "m=audio 20000 RTP/SAVP 0 101\r\n" in text
    assert "a=rtpmap:0 PCMU/8000\r\n" in text
    assert "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n" in text
    assert "a=rtcp:20001\r\n" in text
    assert f"a=crypto:{ours.to_sdp()}\r\n" in text
    assert KEY80_B64 not in text  # we never echo the remote key
    assert text.endswith("a=sendrecv\r\n")
    assert a.origin.session_id == 42 and a.connection is not None and a.connection.address == "192.0.2.1"


def test_build_answer_checks_our_crypto() -> None:
    o = parse(BARESIP_OFFER)
    d = decide_answer(o, SECURE)
    with pytest.raises(ValueError):
        build_answer(o, d, "192.0.2.1", 20000, 20001, None, 1, 1)
    wrong_tag = CryptoAttribute.from_key(2, "AES_CM_128_HMAC_SHA1_80", OUR_KEY)
    with pytest.raises(ValueError, match="tag"):
        build_answer(o, d, "192.0.2.1", 20000, 20001, wrong_tag, 1, 1)
    plain = decide_answer(parse(SIPP_OFFER), PLAIN_OK)
    with pytest.raises(ValueError):
        build_answer(parse(SIPP_OFFER), plain, "192.0.2.1", 20000, None, wrong_tag, 1, 1)


def test_sipp_plain_offer_refused_488_when_srtp_required() -> None:
    with pytest.raises(OfferAnswerError) as info:
        decide_answer(parse(SIPP_OFFER), SECURE)
    assert info.value.status == 488 and "plain RTP" in info.value.reason
    # allow_plain_rtp alone is not enough while require_srtp holds
    with pytest.raises(OfferAnswerError):
        decide_answer(parse(SIPP_OFFER), AnswerPolicy(allow_plain_rtp=True))


def test_sipp_plain_offer_accepted_when_allowed() -> None:
    o = parse(SIPP_OFFER)
    d = decide_answer(o, PLAIN_OK)
    assert d.srtp is None and d.codec.payload_type == 0 and d.telephone_event is None
    assert d.remote_rtp == Endpoint("127.0.0.1", 6000)
    a = build_answer(o, d, "127.0.0.1", 30000, None, None, 7, 7)
    assert a.media[0].proto == "RTP/AVP" and a.media[0].formats == ("0",)
    assert not a.media[0].has_attribute("rtcp")


def test_sdes_over_insecure_signalling() -> None:
    insecure = AnswerPolicy(secure_signalling=False)
    with pytest.raises(OfferAnswerError) as info:
        decide_answer(parse(BARESIP_OFFER), insecure)
    assert info.value.status == 488 and "insecure" in info.value.reason
    allowed = AnswerPolicy(secure_signalling=False, allow_sdes_over_insecure=True)
    assert decide_answer(parse(BARESIP_OFFER), allowed).srtp is not None


def test_other_media_lines_rejected_in_order() -> None:
    o = offer(
        "m=video 5000 RTP/SAVP 96\na=rtpmap:96 H264/90000\n"
        f"m=audio 4000 RTP/SAVP 8\na=crypto:5 AES_CM_128_HMAC_SHA1_32 inline:{KEY80_B64}\n"
        "m=application 5060 TCP/BFCP *\n"
        "m=audio 4002 RTP/SAVP 0\n"
    )
    d = decide_answer(o, SECURE)
    assert d.mline_index == 1 and d.codec.name == "PCMA" and d.rejected == (0, 2, 3)
    ours = CryptoAttribute.from_key(5, "AES_CM_128_HMAC_SHA1_32", OUR_KEY)
    a = build_answer(o, d, "192.0.2.1", 20000, 20001, ours, 1, 1)
    assert [(m.media, m.port, m.proto) for m in a.media] == [
        ("video", 0, "RTP/SAVP"),
        ("audio", 20000, "RTP/SAVP"),
        ("application", 0, "TCP/BFCP"),
        ("audio", 0, "RTP/SAVP"),
    ]
    assert a.media[2].formats == ("*",)
    assert parse(bytes(a)) == a


def test_first_unacceptable_audio_line_is_skipped_for_a_later_one() -> None:
    o = offer(
        "m=audio 4000 RTP/AVP 0\n"
        f"m=audio 4002 RTP/SAVP 0\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{KEY80_B64}\n"
    )
    d = decide_answer(o, SECURE)
    assert d.mline_index == 1 and d.rejected == (0,)


@pytest.mark.parametrize(
    ("media", "status", "fragment"),
    [
        ("m=audio 4000 RTP/SAVP 18\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" + KEY80_B64, 488, "codec"),
        ("m=audio 4000 RTP/SAVP 0", 488, "without a=crypto"),
        ("m=audio 4000 RTP/SAVP 0\na=crypto:1 F8_128_HMAC_SHA1_80 inline:" + KEY80_B64, 488, "F8_128"),
        ("m=audio 4000 RTP/SAVP 0\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:AAAA", 488, "a=crypto"),
        (
            "m=audio 4000 RTP/SAVP 0\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:"
            + KEY80_B64
            + " UNENCRYPTED_SRTP",
            488,
            "a=crypto",
        ),
        ("m=audio 4000 UDP/TLS/RTP/SAVP 0\na=fingerprint:sha-256 AA", 488, "DTLS"),
        (
            "m=audio 4000 RTP/SAVP 0\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" + KEY80_B64 + "\na=rtcp:x",
            400,
            "rtcp",
        ),
        ("m=audio 0 RTP/SAVP 0", 488, "port 0"),
        ("m=video 4000 RTP/SAVP 96", 488, "no audio"),
        ("m=audio 4000 udp 0", 488, "transport"),
    ],
)
def test_unacceptable_offers(media: str, status: int, fragment: str) -> None:
    with pytest.raises(OfferAnswerError) as info:
        decide_answer(offer(media), SECURE)
    assert info.value.status == status
    assert fragment in info.value.reason


def test_no_connection_is_400_and_multicast_488() -> None:
    media = "m=audio 4000 RTP/SAVP 0\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" + KEY80_B64
    with pytest.raises(OfferAnswerError) as info:
        decide_answer(offer(media, session="b=AS:1"), SECURE)
    assert info.value.status == 400
    with pytest.raises(OfferAnswerError, match="multicast"):
        decide_answer(offer(media, session="c=IN IP4 233.252.0.1/64"), SECURE)
    with pytest.raises(OfferAnswerError, match="multicast"):
        decide_answer(offer(media, session="c=IN IP4 239.0.0.1"), SECURE)


def test_media_level_connection_wins_and_ipv6() -> None:
    media = (
        "m=audio 4000 RTP/SAVP 0\nc=IN IP6 2001:db8::5\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:"
        + KEY80_B64
    )
    d = decide_answer(offer(media), SECURE)
    assert d.remote_rtp == Endpoint("2001:db8::5", 4000)
    a = (
        build_answer(
            offer(media),
            d,
            "2001:db8::1",
            20000,
            20001,
            CryptoAttribute.from_key(1, d.srtp.suite, OUR_KEY),
            1,
            1,
        )
        if d.srtp
        else None
    )
    assert a is not None and a.origin.addrtype == "IP6" and a.connection is not None
    assert a.connection.addrtype == "IP6"


def test_dynamic_payload_type_pcma_and_echoed_dtmf_pt() -> None:
    media = (
        "m=audio 4000 RTP/SAVP 96 97 120\na=rtpmap:96 opus/48000/2\na=rtpmap:97 PCMA/8000\n"
        "a=rtpmap:120 telephone-event/8000\na=ptime:30\n"
        "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" + KEY80_B64
    )
    d = decide_answer(offer(media), SECURE)
    assert d.codec == Codec("PCMA", 97, 8000) and d.telephone_event == 120 and d.telephone_event_fmtp is None
    assert d.ptime == 30
    no_dtmf = decide_answer(offer(media), AnswerPolicy(dtmf=False))
    assert no_dtmf.telephone_event is None


def test_rtcp_attribute_and_mux() -> None:
    base = "m=audio 4000 RTP/SAVP 0\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" + KEY80_B64
    d = decide_answer(offer(base + "\na=rtcp:4444 IN IP4 192.0.2.99"), SECURE)
    assert d.remote_rtcp == Endpoint("192.0.2.99", 4444)
    d = decide_answer(offer(base + "\na=rtcp:4444"), SECURE)
    assert d.remote_rtcp == Endpoint("192.0.2.10", 4444)
    d = decide_answer(offer(base + "\na=rtcp-mux"), SECURE)
    assert d.rtcp_mux and d.remote_rtcp == d.remote_rtp
    a = (
        build_answer(
            offer(base), d, "h", 1000, 1001, CryptoAttribute.from_key(1, d.srtp.suite, OUR_KEY), 1, 1
        )
        if d.srtp
        else None
    )
    assert a is not None and a.media[0].has_attribute("rtcp-mux") and not a.media[0].has_attribute("rtcp")
    d = decide_answer(offer(base + "\na=rtcp-mux"), AnswerPolicy(rtcp_mux=False))
    assert not d.rtcp_mux and d.remote_rtcp.port == 4001


@pytest.mark.parametrize(
    ("extra", "session_conn", "remote", "local", "hold"),
    [
        ("a=sendonly", "c=IN IP4 192.0.2.10", Direction.SENDONLY, Direction.RECVONLY, True),
        ("a=inactive", "c=IN IP4 192.0.2.10", Direction.INACTIVE, Direction.INACTIVE, True),
        ("a=recvonly", "c=IN IP4 192.0.2.10", Direction.RECVONLY, Direction.SENDONLY, False),
        ("a=sendrecv", "c=IN IP4 0.0.0.0", Direction.SENDONLY, Direction.RECVONLY, True),
        ("a=sendrecv", "c=IN IP4 192.0.2.10", Direction.SENDRECV, Direction.SENDRECV, False),
    ],
)
def test_hold_and_resume(
    extra: str, session_conn: str, remote: Direction, local: Direction, hold: bool
) -> None:
    media = f"m=audio 4000 RTP/SAVP 0\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{KEY80_B64}\n{extra}"
    o = offer(media, session_conn)
    d = decide_answer(o, SECURE)
    assert (d.remote_direction, d.local_direction, d.on_hold) == (remote, local, hold)
    assert is_hold(o) is hold
    a = (
        build_answer(
            o, d, "192.0.2.1", 20000, 20001, CryptoAttribute.from_key(1, d.srtp.suite, OUR_KEY), 1, 2
        )
        if d.srtp
        else None
    )
    assert a is not None and a.media[0].get_attribute(local.value) == ""


def test_session_level_direction_applies() -> None:
    o = offer(
        f"m=audio 4000 RTP/SAVP 0\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{KEY80_B64}",
        "c=IN IP4 192.0.2.10",
        "a=sendonly",
    )
    assert decide_answer(o, SECURE).on_hold


def test_best_effort_srtp_on_avp() -> None:
    o = offer(f"m=audio 4000 RTP/AVP 0\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{KEY80_B64}")
    d = decide_answer(o, SECURE)
    assert d.srtp is not None and d.proto == "RTP/AVP"
    # over plain signalling with plain RTP allowed, the keys are ignored and plain RTP is used
    assert decide_answer(o, PLAIN_OK).srtp is None


def test_direction_algebra() -> None:
    for d in Direction:
        assert d.reverse().reverse() is d
        assert d.intersect(Direction.SENDRECV) is d
        assert d.intersect(Direction.INACTIVE) is Direction.INACTIVE


# ---------------------------------------------------------------------------------------------- our offers


def our_offer(version: int = 1, key: bytes = OUR_KEY, **kw: object) -> SessionDescription:
    crypto = [
        CryptoAttribute.from_key(1, "AES_CM_128_HMAC_SHA1_80", key),
        CryptoAttribute.from_key(2, "AEAD_AES_128_GCM", KEY_GCM),
    ]
    return build_offer("192.0.2.1", 20000, 99, version, local_rtcp_port=20001, crypto=crypto, **kw)  # type: ignore[arg-type]


def test_build_offer_shape() -> None:
    o = our_offer()
    assert parse(bytes(o)) == o
    (m,) = o.media
    assert m.proto == "RTP/SAVP" and m.formats == ("0", "8", "101")
    assert m.get_attributes("crypto")[0].startswith("1 AES_CM_128_HMAC_SHA1_80 inline:")
    assert build_offer("h", 1000, 1, 1).media[0].proto == "RTP/AVP"
    assert build_offer("h", 1000, 1, 1, codecs=("G722",), telephone_event=None).media[0].formats == ("9",)
    with pytest.raises(ValueError):
        build_offer("h", 1000, 1, 1, codecs=("G729",))


def test_offer_answer_pair_talks_to_itself() -> None:
    """Our offer, answered by our own answerer, read back by parse_answer."""
    offer_sd = our_offer()
    d = decide_answer(parse(bytes(offer_sd)), SECURE)
    assert d.srtp is not None and d.srtp.remote.key_salt == OUR_KEY
    remote_key = CryptoAttribute.from_key(d.srtp.tag, d.srtp.suite, KEY80)
    answer_sd = build_answer(offer_sd, d, "198.51.100.7", 40000, 40001, remote_key, 5, 1)
    result = parse_answer(offer_sd, parse(bytes(answer_sd)))
    assert result.codec == Codec("PCMU", 0, 8000) and result.telephone_event == 101
    assert result.remote_rtp == Endpoint("198.51.100.7", 40000)
    assert result.remote_rtcp == Endpoint("198.51.100.7", 40001)
    assert result.srtp is not None and result.srtp.remote.key_salt == KEY80 and result.srtp.tag == 1
    assert result.local_direction is Direction.SENDRECV


def test_reinvite_with_new_key_is_recognised() -> None:
    first = decide_answer(our_offer(1), SECURE)
    second = decide_answer(our_offer(2, key=bytes(30)), SECURE)
    assert first.srtp is not None and second.srtp is not None
    assert first.srtp.remote.key_salt != second.srtp.remote.key_salt


def test_hold_offer_from_us() -> None:
    o = our_offer(direction=Direction.SENDONLY)
    assert is_hold(o)
    d = decide_answer(o, SECURE)
    assert d.local_direction is Direction.RECVONLY
    answer = (
        build_answer(o, d, "h", 1000, 1001, CryptoAttribute.from_key(1, d.srtp.suite, KEY80), 1, 1)
        if d.srtp
        else None
    )
    assert answer is not None
    r = parse_answer(o, answer)
    assert r.remote_direction is Direction.RECVONLY and r.local_direction is Direction.SENDONLY


def _answer(media: str) -> SessionDescription:
    return parse(crlf(f"v=0\no=- 5 1 IN IP4 198.51.100.7\ns=-\nc=IN IP4 198.51.100.7\nt=0 0\n{media}"))


@pytest.mark.parametrize(
    ("media", "status", "fragment"),
    [
        ("", 400, "media sections"),
        ("m=video 4000 RTP/SAVP 0", 400, "not audio"),
        ("m=audio 0 RTP/SAVP 0", 488, "rejected"),
        ("m=audio 4000 RTP/AVP 0", 488, "transport"),
        ("m=audio 4000 RTP/SAVP 0", 488, "exactly one"),
        (
            "m=audio 4000 RTP/SAVP 0\na=crypto:9 AES_CM_128_HMAC_SHA1_80 inline:" + KEY80_B64,
            488,
            "not offered",
        ),
        ("m=audio 4000 RTP/SAVP 0\na=crypto:1 AEAD_AES_128_GCM inline:" + KEY80_B64, 488, "bad a=crypto"),
        ("m=audio 4000 RTP/SAVP 18\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" + KEY80_B64, 488, "codec"),
    ],
)
def test_bad_answers(media: str, status: int, fragment: str) -> None:
    with pytest.raises(OfferAnswerError) as info:
        parse_answer(our_offer(), _answer(media))
    assert info.value.status == status and fragment in info.value.reason


def test_answer_crypto_when_none_offered() -> None:
    plain = build_offer("h", 1000, 1, 1)
    with pytest.raises(OfferAnswerError, match="offered none"):
        parse_answer(
            plain, _answer(f"m=audio 4000 RTP/AVP 0\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{KEY80_B64}")
        )
    assert parse_answer(plain, _answer("m=audio 4000 RTP/AVP 8")).codec.name == "PCMA"


def test_policy_validation() -> None:
    with pytest.raises(ValueError):
        AnswerPolicy(codecs=("G729",))
    with pytest.raises(ValueError):
        AnswerPolicy(codecs=())
    with pytest.raises(ValueError):
        AnswerPolicy(srtp_suites=("NULL",))


# ---------------------------------------------------------------------------------------------- hypothesis

lines = st.sampled_from(
    [
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:96 PCMA/8000",
        "a=rtpmap:101 telephone-event/8000",
        "a=rtcp-mux",
        "a=rtcp:5001",
        "a=rtcp:bad",
        "a=sendonly",
        "a=inactive",
        "a=ptime:20",
        f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{KEY80_B64}",
        "a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:AAAA",
        "a=crypto:x",
        "c=IN IP4 0.0.0.0",
        "c=IN IP6 ::1",
        "c=IN IP4 224.0.0.1",
    ]
)
mlines = st.builds(
    lambda kind, port, proto, fmts: f"m={kind} {port} {proto} {fmts}",
    st.sampled_from(["audio", "video", "application"]),
    st.sampled_from([0, 4000, 65535]),
    st.sampled_from(["RTP/AVP", "RTP/SAVP", "RTP/SAVPF", "UDP/TLS/RTP/SAVP", "TCP/BFCP"]),
    st.sampled_from(["0", "8 101", "96 101", "18", "*"]),
)


@st.composite
def offers(draw: st.DrawFn) -> SessionDescription | None:
    sections = []
    for _ in range(draw(st.integers(0, 3))):
        head = draw(mlines)
        conn = draw(st.sampled_from(["", "c=IN IP4 192.0.2.5"]))
        body = sorted(draw(st.lists(lines, max_size=5)), key=lambda x: not x.startswith("c="))
        sections.append("\n".join([head, conn, *body]))
    session_conn = draw(st.sampled_from(["", "c=IN IP4 192.0.2.9"]))
    text = "\n".join(["v=0", "o=- 1 1 IN IP4 h", "s=-", session_conn, "t=0 0", *sections])
    try:
        return parse(crlf("\n".join(line for line in text.splitlines() if line.strip())))
    except Exception:
        return None


@given(offers(), st.booleans(), st.booleans(), st.booleans())
def test_decide_answer_raises_only_offer_answer_error(
    o: SessionDescription | None, plain: bool, secure: bool, insecure_sdes: bool
) -> None:
    if o is None:
        return
    policy = AnswerPolicy(
        allow_plain_rtp=plain,
        require_srtp=not plain,
        secure_signalling=secure,
        allow_sdes_over_insecure=insecure_sdes,
    )
    try:
        d = decide_answer(o, policy)
    except OfferAnswerError as exc:
        assert exc.status in (400, 488)
        return
    assert d.srtp is not None or policy.plain_rtp_allowed
    ours = CryptoAttribute.from_key(d.srtp.tag, d.srtp.suite, OUR_KEY) if d.srtp else None
    a = build_answer(o, d, "192.0.2.1", 20000, 20001, ours, 1, 1)
    assert len(a.media) == len(o.media)
    assert [m.port == 0 for m in a.media] == [i != d.mline_index for i in range(len(o.media))]
    assert parse(bytes(a)) == a
    _ = MediaDescription, Attribute
