"""HD voice negotiation of the focus: AMR-WB, Opus and G.722 chosen by our preference
(FocusConfig.audio_codecs), fmtp rules (an unhonourable one falls back, or 488 naming it), telephone-event
at the codec's clock, and the negotiated codec carried to the mixer leg (name, clock, fmtp parameters,
payload type)."""

from __future__ import annotations

import base64
import random
from collections.abc import Sequence

import pytest
from helpers import FACTORY, SUITE, UA, Harness, RecordingMedia, answer_crypto, new_key
from test_keying import GroupMedia

from imsconf.focus.config import FocusConfig
from imsconf.focus.media_session import OFFER_CODECS, MediaSession, NegotiationError
from imsconf.media.control import LocalMediaControl, NullPortAllocator
from imsconf.media.engine import MediaEngine
from imsconf.sdp.errors import OfferAnswerError
from imsconf.sdp.offer_answer import AnswerPolicy, build_answer, decide_answer, parse_answer
from imsconf.sdp.sdes import CryptoAttribute
from imsconf.sdp.session import SessionDescription
from imsconf.sip.message import Request

HD = AnswerPolicy(codecs=OFFER_CODECS)
OPUS = ("96", ["a=rtpmap:96 opus/48000/2", "a=fmtp:96 useinbandfec=1; maxplaybackrate=24000"])
G722 = ("9", ["a=rtpmap:9 G722/8000"])
AMRWB = ("97", ["a=rtpmap:97 AMR-WB/16000", "a=fmtp:97 octet-align=1; mode-set=0,1,2"])
PCMU = ("0", ["a=rtpmap:0 PCMU/8000"])
TE8 = ("101", ["a=rtpmap:101 telephone-event/8000", "a=fmtp:101 0-15"])
TE16 = ("102", ["a=rtpmap:102 telephone-event/16000", "a=fmtp:102 0-16"])
TE48 = ("103", ["a=rtpmap:103 telephone-event/48000", "a=fmtp:103 0-15"])


def offer(*formats: tuple[str, list[str]], key: bytes | None = None, port: int = 4000) -> bytes:
    k = key if key is not None else new_key()
    lines = [
        "v=0",
        "o=- 77 1 IN IP4 192.0.2.9",
        "s=-",
        "c=IN IP4 192.0.2.9",
        "t=0 0",
        f"m=audio {port} RTP/SAVP {' '.join(pt for pt, _ in formats)}",
        *(line for _, attrs in formats for line in attrs),
        f"a=crypto:1 {SUITE} inline:{base64.b64encode(k).decode()}",
        "a=sendrecv",
    ]
    return ("\r\n".join(lines) + "\r\n").encode()


def parse(body: bytes) -> SessionDescription:
    return SessionDescription.parse(body)


# ---- the SDP decision ----------------------------------------------------------------------------------


def test_opus_only_offer_is_answered_with_opus_and_its_fmtp() -> None:
    d = decide_answer(parse(offer(OPUS, TE48)), HD)
    assert (d.codec.name, d.codec.payload_type, d.codec.clock_rate, d.codec.channels) == (
        "opus",
        96,
        48000,
        2,
    )
    assert d.telephone_event == 103
    assert ("maxplaybackrate", "24000") in d.codec_params and ("useinbandfec", "1") in d.codec_params
    key = CryptoAttribute.from_key(1, SUITE, new_key())
    m = build_answer(parse(offer(OPUS, TE48)), d, "198.18.0.1", 20000, None, key, 1, 1).media[0]
    assert m.formats == ("96", "103")
    assert list(m.get_attributes("rtpmap")) == ["96 opus/48000/2", "103 telephone-event/48000"]
    assert m.get_attributes("fmtp")[0].startswith("96 maxplaybackrate=16000")


def test_g722_only_offer() -> None:
    d = decide_answer(parse(offer(G722, TE8)), HD)
    assert (d.codec.name, d.codec.payload_type, d.codec.clock_rate) == ("G722", 9, 8000)
    assert d.telephone_event == 101 and d.codec_params == () and d.codec_fmtp is None


def test_static_g722_without_rtpmap() -> None:
    assert decide_answer(parse(offer(("9", []))), HD).codec.name == "G722"


def test_amr_wb_octet_aligned_offer() -> None:
    d = decide_answer(parse(offer(AMRWB, TE8, TE16)), HD)
    assert (d.codec.name, d.codec.payload_type, d.codec.clock_rate) == ("AMR-WB", 97, 16000)
    assert d.telephone_event == 102 and d.telephone_event_fmtp == "0-16"  # the 16 kHz one, not the 8 kHz
    assert dict(d.codec_params) == {"octet-align": "1", "mode-set": "0,1,2"}
    assert d.codec_fmtp is not None and "octet-align=1" in d.codec_fmtp and "mode-set=0,1,2" in d.codec_fmtp


def test_no_telephone_event_at_the_codec_clock_means_none() -> None:
    assert decide_answer(parse(offer(AMRWB, TE8)), HD).telephone_event is None


@pytest.mark.parametrize(
    ("formats", "chosen"),
    [
        ((PCMU, G722, OPUS, AMRWB), "AMR-WB"),
        ((PCMU, G722, OPUS), "opus"),
        ((OPUS, G722), "opus"),
        ((G722, PCMU), "G722"),
        ((PCMU, G722), "G722"),
        ((PCMU,), "PCMU"),
    ],
)
def test_our_preference_decides_whatever_the_offer_order(
    formats: tuple[tuple[str, list[str]], ...], chosen: str
) -> None:
    assert decide_answer(parse(offer(*formats)), HD).codec.name == chosen


def test_preference_setting_changes_the_choice() -> None:
    narrow = AnswerPolicy(codecs=("PCMU", "G722"))
    assert decide_answer(parse(offer(AMRWB, OPUS, G722, PCMU)), narrow).codec.name == "PCMU"
    assert decide_answer(parse(offer(AMRWB, G722)), narrow).codec.name == "G722"


def test_unhonourable_fmtp_falls_back_to_the_next_codec() -> None:
    crc = ("97", ["a=rtpmap:97 AMR-WB/16000", "a=fmtp:97 octet-align=1; crc=1"])
    assert decide_answer(parse(offer(crc, G722)), HD).codec.name == "G722"
    modes = ("97", ["a=rtpmap:97 AMR-WB/16000", "a=fmtp:97 mode-set=0,9"])
    assert decide_answer(parse(offer(modes, PCMU)), HD).codec.name == "PCMU"


def test_unhonourable_fmtp_alone_is_488_naming_it() -> None:
    crc = ("97", ["a=rtpmap:97 AMR-WB/16000", "a=fmtp:97 octet-align=1; crc=1"])
    with pytest.raises(OfferAnswerError) as info:
        decide_answer(parse(offer(crc)), HD)
    assert info.value.status == 488
    assert "AMR-WB (payload type 97): crc=1 is not supported" in info.value.reason


def test_opus_at_another_clock_is_not_opus() -> None:
    wrong = ("96", ["a=rtpmap:96 opus/16000/1"])
    with pytest.raises(OfferAnswerError, match="no acceptable codec"):
        decide_answer(parse(offer(wrong)), HD)


# ---- the focus: join, re-INVITE, dial-out ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("formats", "name", "clock", "pt"),
    [((OPUS, TE48), "opus", 48000, 96), ((G722, TE8), "G722", 8000, 9), ((AMRWB, TE16), "AMR-WB", 16000, 97)],
)
def test_join_with_a_wideband_only_offer_reaches_the_mixer_leg(
    formats: tuple[tuple[str, list[str]], ...], name: str, clock: int, pt: int
) -> None:
    h = Harness()
    alice = h.ua("alice")
    resp, _ = h.create(alice, offer(*formats))
    assert resp.status == 200
    m = parse(resp.body).media[0]
    assert m.formats[0] == str(pt)
    (leg,) = h.media.legs.values()
    assert (leg.codec_name, leg.codec_clock, leg.codec_pt) == (name, clock, pt)
    assert leg.dtmf_pt == int(formats[1][0])
    if name == "AMR-WB":
        assert dict(leg.codec_params)["octet-align"] == "1"


def test_join_with_only_unhonourable_formats_is_488_with_the_reason() -> None:
    h = Harness()
    alice = h.ua("alice")
    bad = ("97", ["a=rtpmap:97 AMR-WB/16000", "a=fmtp:97 interleaving=4"])
    resp = h.call(alice, FACTORY, offer(bad))
    assert resp.status == 488
    assert "interleaving" in (resp.headers.get("Warning") or resp.reason)


def test_g711_only_setting_refuses_opus() -> None:
    h = Harness(
        FocusConfig(domain="conf.example.com", media_host="198.18.0.1", audio_codecs=("PCMU", "PCMA"))
    )
    alice = h.ua("alice")
    assert h.call(alice, FACTORY, offer(OPUS)).status == 488


def test_reinvite_moves_the_leg_to_another_codec_with_its_clock() -> None:
    media = RecordingMedia()
    ms = MediaSession("c.1", "c")
    policy = HD
    ms.negotiate(offer(OPUS, TE48, key=bytes(30)), policy, media, host="198.18.0.1", initial=True)
    assert media.legs["c.1"].codec_clock == 48000
    ms.negotiate(offer(G722, TE8, key=bytes(30)), policy, media, host="198.18.0.1", initial=False)
    leg = media.legs["c.1"]
    assert (leg.codec_name, leg.codec_clock, leg.codec_pt, leg.codec_params, leg.dtmf_pt) == (
        "G722",
        8000,
        9,
        (),
        101,
    )


def test_dial_out_offers_our_preference_and_takes_the_answer() -> None:
    media = RecordingMedia()
    ms = MediaSession("c.2", "c")
    body = ms.offer(media, host="198.18.0.1", srtp=True, codecs=OFFER_CODECS)
    m = parse(body).media[0]
    maps = m.get_attributes("rtpmap")
    names = [v.split(" ", 1)[1] for v in maps]
    assert names[:5] == ["AMR-WB/16000", "opus/48000/2", "G722/8000", "PCMU/8000", "PCMA/8000"]
    assert {"telephone-event/16000", "telephone-event/48000", "telephone-event/8000"} <= set(names)
    # answered by our own answerer, which (a phone without AMR-WB) takes Opus
    d = decide_answer(parse(body), AnswerPolicy(codecs=("opus", "PCMU")))
    key = CryptoAttribute.from_key(1, SUITE, new_key())
    answer = build_answer(parse(body), d, "192.0.2.50", 41000, 41001, key, 9, 1)
    ms.accept_answer(bytes(answer), media)
    leg = media.legs["c.2"]
    assert (leg.codec_name, leg.codec_clock, leg.codec_pt) == ("opus", 48000, d.codec.payload_type)
    assert leg.dtmf_pt == d.telephone_event
    # what we offer again later (a new key, another mixer) is the codec agreed only
    again = parse(ms.answer).media[0]
    assert again.formats == (str(d.codec.payload_type), str(d.telephone_event))


def test_the_answerers_first_format_is_the_one_taken() -> None:
    ours = parse(MediaSession("c.3", "c").offer(RecordingMedia(), host="h", srtp=False, codecs=OFFER_CODECS))
    rtp_map = {v.split(" ", 1)[1]: v.split(" ", 1)[0] for v in ours.media[0].get_attributes("rtpmap")}
    g722, pcmu = rtp_map["G722/8000"], rtp_map["PCMU/8000"]
    text = (
        "v=0\r\no=- 1 1 IN IP4 192.0.2.8\r\ns=-\r\nc=IN IP4 192.0.2.8\r\nt=0 0\r\n"
        f"m=audio 5000 RTP/AVP {pcmu} {g722}\r\n"
    )
    assert parse_answer(ours, parse(text.encode())).codec.name == "PCMU"


def test_an_answer_with_a_codec_we_cannot_honour_is_refused() -> None:
    media = RecordingMedia()
    ms = MediaSession("c.4", "c")
    body = ms.offer(media, host="198.18.0.1", srtp=False, codecs=("AMR-WB",))
    pt = parse(body).media[0].formats[0]
    text = (
        "v=0\r\no=- 1 1 IN IP4 192.0.2.8\r\ns=-\r\nc=IN IP4 192.0.2.8\r\nt=0 0\r\n"
        f"m=audio 5000 RTP/AVP {pt}\r\na=rtpmap:{pt} AMR-WB/16000\r\na=fmtp:{pt} robust-sorting=1\r\n"
    )
    with pytest.raises(NegotiationError) as info:
        ms.accept_answer(text.encode(), media)
    assert info.value.status == 488 and "robust-sorting" in info.value.reason


def test_wideband_legs_in_the_real_engine() -> None:
    """The in-process engine takes what the focus negotiated: an Opus, a G.722, an AMR-WB and a PCMU leg."""
    engine = MediaEngine(rng=random.Random(3))
    control = LocalMediaControl(engine, NullPortAllocator("198.18.0.1"))
    h = Harness(control=control)
    alice = h.ua("alice")
    _, uri = h.create(alice, offer(OPUS, TE48))
    for user, formats in (("bob", (G722, TE8)), ("carol", (AMRWB, TE16)), ("dave", (PCMU, TE8))):
        h.join(h.ua(user), uri, offer(*formats))
    configs = sorted((c.codec_name, c.codec_clock) for c in control._configs.values())
    assert configs == [("AMR-WB", 16000), ("G722", 8000), ("PCMU", 8000), ("opus", 48000)]


PCMA = ("8", ["a=rtpmap:8 PCMA/8000"])


def _user(r: Request) -> str:
    return r.uri.split("@")[0].split(":")[1]


def _group_conference(
    members: Sequence[tuple[str, tuple[tuple[str, list[str]], ...]]],
) -> tuple[Harness, GroupMedia, dict[str, UA], dict[str, str], str]:
    """A group-keyed conference: each member (user, formats) calls in turn; each join re-keys everyone
    (on-join), every offer carries the new epoch's key, is answered and confirmed. Returns the harness,
    its media, the UAs and legs by user, and the conference URI."""
    from test_keying import _answer, _confirm, _leg, _reinvites, ua_keys

    h, media = _harness_group()
    h.focus.keying.trace = []
    uas: dict[str, UA] = {}
    legs: dict[str, str] = {}
    uri = FACTORY
    for epoch, (user, formats) in enumerate(members, start=1):
        ua = h.ua(user)
        ua_keys[user] = new_key()
        assert h.call(ua, uri, offer(*formats, key=ua_keys[user])).status == 200
        if uri == FACTORY:
            assert ua.remote_target is not None
            uri = ua.remote_target
        uas[user], legs[user] = ua, _leg(h, ua)
        invites = {_user(r): r for r in _reinvites(h.send(ua, ua.ack()))}
        assert sorted(invites) == sorted(uas), (user, sorted(invites))
        conf_id = h.focus.legs[legs[user]].conf_id
        key = media.epochs[(conf_id, epoch)][0]
        assert {answer_crypto(r.body).key_salt for r in invites.values()} == {key}
        for name, r in invites.items():
            _answer(h, uas[name], r)
        for name in uas:
            _confirm(h, legs[name], epoch)
    return h, media, uas, legs, uri


WIDE_MEMBERS: list[tuple[str, tuple[tuple[str, list[str]], ...]]] = [
    ("alice", (OPUS, TE48)),
    ("bob", (OPUS, TE48)),
    ("carol", (G722, TE8)),
    ("erin", (PCMU, TE8)),
]


def test_wideband_and_pcmu_listeners_of_a_16khz_conference_join_the_group() -> None:
    """Two Opus listeners, a G.722 and a PCMU one in a conference mixed at 16 kHz: each joins the group
    (the mixer has a stream per codec group under the epoch key), each join re-keys all of them, and a
    PCMA caller stays on its own key (no group stream for it, no re-INVITE to anybody)."""
    from test_keying import _reinvites

    from imsconf.conference.eventinfo import KeyScope

    h, media, _uas, legs, uri = _group_conference(WIDE_MEMBERS)
    conf_id = h.focus.legs[legs["alice"]].conf_id
    for user, leg_id in legs.items():
        assert h.focus.keying.scope(leg_id) is KeyScope.GROUP, user
        assert media.streams[leg_id] == (4, False), user
    assert h.focus.keying.wide(conf_id)
    assert h.focus.keying.wide_legs[conf_id] == {legs["alice"], legs["bob"], legs["carol"]}
    frank = h.ua("frank")
    assert h.call(frank, uri, offer(PCMA, TE8)).status == 200
    assert _reinvites(h.send(frank, frank.ack())) == []
    assert h.focus.keying.scope(next(k for k in h.focus.legs if k not in legs.values())) is (
        KeyScope.PER_PARTICIPANT
    )


def test_the_first_wideband_leg_keeps_the_pcmu_listeners_on_the_group() -> None:
    """Two PCMU listeners on the group key, then an Opus phone joins: the conference moves to the 16 kHz
    mix and the PCMU listeners stay on the group (the PCMU stream of the 16 kHz mix): the join re-keys the
    three of them with the group key (checked by the helper), nobody is sent back to its own key. When
    the Opus phone leaves, the leave re-keys the two, back in the 8 kHz mix and still on the group."""
    from test_keying import _answer, _reinvites

    from imsconf.conference.eventinfo import KeyScope

    pcmu = (PCMU, TE8)
    h, media, uas, legs, _uri = _group_conference([("alice", pcmu), ("bob", pcmu), ("dave", (OPUS, TE48))])
    trace = h.focus.keying.trace or []
    conf_id = h.focus.legs[legs["alice"]].conf_id
    assert [(t.what, t.detail) for t in trace if t.what in ("mix", "demote")] == [("mix", "16000")]
    assert all(h.focus.keying.scope(leg_id) is KeyScope.GROUP for leg_id in legs.values())
    sent = h.send(uas["dave"], uas["dave"].bye())
    left = {_user(r): r for r in _reinvites(sent)}
    assert sorted(left) == ["alice", "bob"]
    k4 = media.epochs[(conf_id, 4)][0]
    assert {answer_crypto(r.body).key_salt for r in left.values()} == {k4}
    for user, r in left.items():
        _answer(h, uas[user], r)
    assert not h.focus.keying.wide(conf_id)
    assert [(t.what, t.detail) for t in trace if t.what in ("mix", "demote")][-1] == ("mix", "8000")
    for user in ("alice", "bob"):
        assert media.streams[legs[user]][0] == 4
        assert h.focus.keying.scope(legs[user]) is KeyScope.GROUP


def _harness_group() -> tuple[Harness, GroupMedia]:
    from test_keying import _harness

    return _harness()


def test_the_operator_view_shows_each_participants_codec() -> None:
    h = Harness()
    alice, bob, carol = h.ua("alice"), h.ua("bob"), h.ua("carol")
    _, uri = h.create(alice, offer(AMRWB, TE16))
    h.join(bob, uri, offer(OPUS))
    h.join(carol, uri, offer(PCMU, G722))
    view = h.focus.operator.conference(h.conference(uri).conf_id)
    assert [(p.uri, p.codec) for p in view.participants] == [
        (alice.aor, "AMR-WB"),
        (bob.aor, "opus"),
        (carol.aor, "G722"),
    ]


def test_a_reinvite_to_a_wideband_codec_keeps_the_group_and_one_to_pcma_demotes() -> None:
    """A group listener's re-INVITE moves it to G.722: its conference is mixed at 16 kHz from then on and
    it hears the G.722 group stream: no key re-INVITE to anybody. Its next re-INVITE moves it to PCMA,
    which has no group stream: it alone is re-INVITEd back to its own key."""
    from test_keying import _reinvites, ua_keys

    from imsconf.conference.eventinfo import KeyScope

    pcmu = (PCMU, TE8)
    h, media, uas, legs, _uri = _group_conference([("alice", pcmu), ("bob", pcmu)])
    bob = uas["bob"]
    conf_id = h.focus.legs[legs["bob"]].conf_id
    sent = h.send(bob, bob.reinvite(offer(G722, TE8, key=ua_keys["bob"])))
    resp = h.final(sent)
    assert resp.status == 200 and media.legs[legs["bob"]].codec_name == "G722"
    sent += h.send(bob, bob.ack())
    sent += h.advance(0.001)
    assert _reinvites(sent) == []
    assert h.focus.keying.wide(conf_id)
    assert all(h.focus.keying.scope(leg_id) is KeyScope.GROUP for leg_id in legs.values())
    sent = h.send(bob, bob.reinvite(offer(PCMA, TE8, key=ua_keys["bob"])))
    assert h.final(sent).status == 200 and media.legs[legs["bob"]].codec_name == "PCMA"
    sent += h.send(bob, bob.ack())
    sent += h.advance(0.001)
    demoted = _reinvites(sent)
    assert [_user(r) for r in demoted] == ["bob"]
    assert answer_crypto(demoted[0].body).key_salt == media.legs[legs["bob"]].tx_key
    assert media.streams[legs["bob"]][0] is None and media.streams[legs["alice"]][0] == 2
    assert not h.focus.keying.wide(conf_id)
