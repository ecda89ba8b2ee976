"""The SDP of an MSRP stream (imsconf.sdp.msrp)."""

from __future__ import annotations

import pytest

from imsconf.sdp.errors import SdpParseError
from imsconf.sdp.msrp import MessageMedia, answer_message_media, offered_message_index
from imsconf.sdp.session import SessionDescription

OFFER = (
    b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
    b"m=audio 4000 RTP/AVP 0\r\n"
    b"m=message 7394 TCP/MSRP *\r\na=accept-types:text/plain\r\na=path:msrp://192.0.2.1:7394/plain1;tcp\r\n"
    b"m=message 7395 TCP/TLS/MSRP *\r\na=accept-types:message/cpim text/plain\r\n"
    b"a=accept-wrapped-types:text/plain image/*\r\n"
    b"a=path:msrps://relay.example:2855/r1;tcp msrps://192.0.2.1:7395/s1;tcp\r\n"
    b"a=fingerprint:SHA-256 ab:cd:ef\r\n"
)


def test_offered_stream_is_read() -> None:
    sd = SessionDescription.parse(OFFER)
    assert offered_message_index(sd.media, allow_plain=False) == 2
    assert offered_message_index(sd.media, allow_plain=True) == 1
    mm = MessageMedia.from_media(sd.media[2])
    assert mm.uses_tls and mm.port == 7395
    assert mm.path == ("msrps://relay.example:2855/r1;tcp", "msrps://192.0.2.1:7395/s1;tcp")
    assert mm.accept_types == ("message/cpim", "text/plain")
    assert mm.accept_wrapped_types == ("text/plain", "image/*")
    assert mm.fingerprints == (("sha-256", "AB:CD:EF"),)
    assert mm.setup is None


@pytest.mark.parametrize(
    "section",
    [
        b"m=message 9 TCP/TLS/MSRP *\r\na=accept-types:text/plain\r\n",  # no path
        b"m=message 9 TCP/TLS/MSRP *\r\na=path:msrps://h:1/s;tcp\r\n",  # no accept-types
        b"m=message 9 TCP/TLS/MSRP *\r\na=accept-types:text/plain\r\na=path:msrp://h:1/s;tcp\r\n",
        b"m=message 9 TCP/TLS/MSRP *\r\na=accept-types:text/plain\r\na=path:http://h/s\r\n",
        b"m=message 9 TCP/TLS/MSRP *\r\na=accept-types:text/plain\r\na=path:msrps://h:1/s;tcp\r\n"
        b"a=fingerprint:sha-256\r\n",
        b"m=audio 9 RTP/AVP 0\r\n",
    ],
)
def test_unusable_sections(section: bytes) -> None:
    sd = SessionDescription.parse(b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\n" + section)
    with pytest.raises(SdpParseError):
        MessageMedia.from_media(sd.media[0])


def test_answer_section() -> None:
    m = answer_message_media(
        2855,
        "TCP/TLS/MSRP",
        "msrps://198.18.0.1:2855/abc;tcp",
        ("message/cpim", "text/plain"),
        ("*",),
        ("sha-256", "AA:BB"),
    )
    assert list(m.lines()) == [
        "m=message 2855 TCP/TLS/MSRP *",
        "a=accept-types:message/cpim text/plain",
        "a=accept-wrapped-types:*",
        "a=path:msrps://198.18.0.1:2855/abc;tcp",
        "a=fingerprint:sha-256 AA:BB",
    ]
    plain = answer_message_media(
        2856, "TCP/MSRP", "msrp://h:2856/x;tcp", ("text/plain",), (), ("sha-256", "AA")
    )
    assert not plain.has_attribute("fingerprint")  # a fingerprint is for TLS only
    assert MessageMedia.from_media(m).path == ("msrps://198.18.0.1:2855/abc;tcp",)
