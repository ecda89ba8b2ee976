"""HD voice codec negotiation (``imsconf.sdp.codecs``): our preference order, fmtp parsing, the formats
we cannot honour, telephone-event at the chosen clock, and offers/answers that parse again."""

from __future__ import annotations

import pytest

from imsconf.sdp.codecs import (
    PREFERENCE,
    AmrFormat,
    Unhonourable,
    amr_format,
    choose_audio_codec,
    offer_attributes,
    opus_format,
    parse_fmtp,
)
from imsconf.sdp.errors import OfferAnswerError
from imsconf.sdp.session import MediaDescription, SessionDescription


def audio(formats: str, *attrs: str) -> MediaDescription:
    lines = ["v=0", "o=- 1 1 IN IP4 127.0.0.1", "s=-", "c=IN IP4 127.0.0.1", "t=0 0"]
    lines.append(f"m=audio 4000 RTP/AVP {formats}")
    lines += [f"a={a}" for a in attrs]
    return SessionDescription.parse(("\r\n".join(lines) + "\r\n").encode()).media[0]


# What a VoLTE phone typically offers: AMR-WB in both layouts, AMR, telephone-event at 16k and 8k.
VOLTE = audio(
    "116 107 118 96 111 110",
    "rtpmap:116 AMR-WB/16000",
    "fmtp:116 mode-change-capability=2;max-red=0",
    "rtpmap:107 AMR-WB/16000",
    "fmtp:107 octet-align=1;mode-change-capability=2;max-red=0",
    "rtpmap:118 AMR/8000",
    "fmtp:118 mode-change-capability=2;max-red=0",
    "rtpmap:96 AMR/8000",
    "fmtp:96 octet-align=1",
    "rtpmap:111 telephone-event/16000",
    "fmtp:111 0-15",
    "rtpmap:110 telephone-event/8000",
    "fmtp:110 0-15",
)


def test_volte_offer_gets_amr_wb_bandwidth_efficient_and_te_16k() -> None:
    choice = choose_audio_codec(VOLTE)
    assert (choice.codec.name, choice.codec.payload_type, choice.codec.clock_rate) == ("AMR-WB", 116, 16000)
    assert choice.amr == AmrFormat(mode_change_capability=2)
    assert choice.telephone_event == 111 and choice.telephone_event_fmtp == "0-15"
    lines = [str(a) for a in choice.answer_attributes()]
    assert lines == [
        "rtpmap:116 AMR-WB/16000",
        "fmtp:116 mode-change-capability=2",
        "rtpmap:111 telephone-event/16000",
        "fmtp:111 0-15",
    ]
    assert choice.formats() == ("116", "111")


def test_our_preference_not_the_offer_order() -> None:
    m = audio("0 9 111 101", "rtpmap:111 opus/48000/2", "rtpmap:101 telephone-event/48000")
    choice = choose_audio_codec(m)
    assert choice.codec.name == "opus" and choice.codec.channels == 2
    assert choice.telephone_event == 101
    assert choose_audio_codec(m, ("G722", "PCMU")).codec.payload_type == 9
    assert choose_audio_codec(m, ("G722", "PCMU")).telephone_event is None  # te at 48000 only


def test_static_payload_types_without_rtpmap() -> None:
    choice = choose_audio_codec(audio("8 9 0"))
    assert (choice.codec.name, choice.codec.payload_type, choice.codec.clock_rate) == ("G722", 9, 8000)
    assert choose_audio_codec(audio("8 0")).codec.name == "PCMU"


def test_octet_aligned_is_kept_and_mode_set_echoed() -> None:
    m = audio("97", "rtpmap:97 AMR-WB/16000", "fmtp:97 octet-align=1; mode-set=0,1,2; mode-change-period=2")
    choice = choose_audio_codec(m)
    assert choice.amr == AmrFormat(True, (0, 1, 2), 2, False, 1)
    fmtp = [str(a) for a in choice.answer_attributes()][1]
    assert fmtp == "fmtp:97 octet-align=1; mode-set=0,1,2; mode-change-period=2; mode-change-capability=2"


def test_unhonourable_fmtp_falls_to_the_next_codec() -> None:
    m = audio("97 98 0", "rtpmap:97 AMR-WB/16000", "fmtp:97 crc=1", "rtpmap:98 AMR-WB/16000",
              "fmtp:98 interleaving=4")  # fmt: skip
    assert choose_audio_codec(m).codec.name == "PCMU"


def test_nothing_acceptable_is_a_488_naming_each_reason() -> None:
    m = audio("97 98", "rtpmap:97 AMR-WB/16000", "fmtp:97 robust-sorting=1", "rtpmap:98 AMR-WB/16000",
              "fmtp:98 mode-set=0,9")  # fmt: skip
    with pytest.raises(OfferAnswerError) as info:
        choose_audio_codec(m)
    assert info.value.status == 488
    assert "AMR-WB (payload type 97): robust-sorting=1 is not supported" in info.value.reason
    assert "AMR-WB (payload type 98): mode-set=0,9" in info.value.reason
    with pytest.raises(OfferAnswerError, match="offered formats: 18"):
        choose_audio_codec(audio("18"))


def test_wrong_clock_or_channels_are_not_matches() -> None:
    m = audio("96 97", "rtpmap:96 opus/48000", "rtpmap:97 AMR-WB/8000")
    with pytest.raises(OfferAnswerError):
        choose_audio_codec(m)


def test_opus_fmtp() -> None:
    m = audio("111", "rtpmap:111 opus/48000/2", "fmtp:111 useinbandfec=1; usedtx=1; maxplaybackrate=16000")
    choice = choose_audio_codec(m)
    assert choice.opus is not None and choice.opus.useinbandfec and choice.opus.usedtx
    assert choice.opus.maxplaybackrate == 16000
    fmtp = str(choice.answer_attributes()[1])
    assert fmtp == "fmtp:111 maxplaybackrate=16000; stereo=0; sprop-stereo=0; useinbandfec=1; usedtx=1"
    with pytest.raises(Unhonourable):
        opus_format({"maxplaybackrate": "fast"})


def test_parse_fmtp() -> None:
    assert parse_fmtp("Octet-Align=1;mode-set=0,2 ; x") == {"octet-align": "1", "mode-set": "0,2", "x": ""}
    assert parse_fmtp("") == {}
    with pytest.raises(Unhonourable):
        amr_format({"mode-set": "2,x"}, wide=True)
    assert amr_format({"mode-set": "7"}, wide=False).mode_set == (7,)
    with pytest.raises(Unhonourable):
        amr_format({"mode-set": "8"}, wide=False)


def test_offer_parses_back_and_is_chosen_from() -> None:
    formats, attrs = offer_attributes()
    assert formats == ("96", "97", "9", "0", "8", "98", "99", "100", "101")
    m = audio(" ".join(formats), *(str(a) for a in attrs))
    choice = choose_audio_codec(m)
    assert choice.codec.name == "AMR-WB" and choice.telephone_event == 99
    assert choose_audio_codec(m, ("opus",)).telephone_event == 100
    assert choose_audio_codec(m, ("PCMA",)).telephone_event == 101
    assert [choose_audio_codec(m, (n,)).codec.name for n in PREFERENCE] == list(PREFERENCE)
