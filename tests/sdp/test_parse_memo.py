"""SessionDescription.parse answers a body seen a moment ago from a bounded table of frozen values."""

from __future__ import annotations

import pytest

from imsconf.memo import clear_memos
from imsconf.sdp.errors import SdpParseError
from imsconf.sdp.session import PARSE_MEMO_MAX, SessionDescription

BODY = (
    b"v=0\r\no=member 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    b"m=audio 6000 RTP/AVP 8 0\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\n"
)


def test_the_same_body_gives_the_same_value_and_a_cleared_table_parses_again() -> None:
    clear_memos()
    first = SessionDescription.parse(BODY)
    assert SessionDescription.parse(bytes(bytearray(BODY))) is first  # equal bytes, another object
    assert first.media[0].port == 6000 and first.media[0].formats == ("8", "0")
    clear_memos()
    again = SessionDescription.parse(BODY)
    assert again is not first and again == first


def test_errors_are_not_kept() -> None:
    bad = BODY.replace(b"v=0", b"v=1")
    for _ in range(2):
        with pytest.raises(SdpParseError):
            SessionDescription.parse(bad)


def test_the_table_is_bounded() -> None:
    clear_memos()
    first = SessionDescription.parse(BODY)
    for port in range(PARSE_MEMO_MAX):  # as many other bodies as the table holds: it is dropped once
        parsed = SessionDescription.parse(BODY.replace(b"6000", str(7000 + 2 * port).encode()))
        assert parsed.media[0].port == 7000 + 2 * port
    assert SessionDescription.parse(BODY) is not first
    assert SessionDescription.parse(BODY) == first
