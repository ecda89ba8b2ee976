"""RFC 8856 SDP helpers for BFCP streams."""

from __future__ import annotations

import pytest

from imsconf.floor.sdp import (
    BfcpMedia,
    ConnectionAttr,
    FloorCtrl,
    FloorIdAttr,
    Setup,
    answer_floorctrl,
    build_confid,
    build_fingerprint,
    build_floorctrl,
    build_floorid,
    build_media_line,
    build_userid,
    parse_bfcpver,
    parse_confid,
    parse_connection,
    parse_fingerprint,
    parse_floorctrl,
    parse_floorid,
    parse_media_line,
    parse_setup,
    parse_userid,
)
from imsconf.sdp.errors import SdpParseError
from imsconf.sdp.session import Origin, SessionDescription

OFFER = (
    "v=0\r\no=bob 1 1 IN IP4 192.0.2.2\r\ns=-\r\nc=IN IP4 192.0.2.2\r\nt=0 0\r\n"
    "m=application 9 TCP/TLS/BFCP *\r\na=setup:active\r\na=connection:new\r\n"
    "a=fingerprint:SHA-256 4a:ad:b9\r\na=floorctrl:c-only s-only\r\na=bfcpver:1\r\n"
)


def test_media_line() -> None:
    assert build_media_line(50000) == "m=application 50000 TCP/TLS/BFCP *"
    assert build_media_line(5070, tls=False) == "m=application 5070 TCP/BFCP *"
    assert parse_media_line("m=application 50000 tcp/tls/bfcp *") == (50000, "TCP/TLS/BFCP")
    assert parse_media_line("application 9 UDP/BFCP *") == (9, "UDP/BFCP")


@pytest.mark.parametrize(
    "bad", ["m=audio 5 TCP/BFCP *", "m=application 5 RTP/AVP 0", "m=application 70000 TCP/BFCP *", ""]
)
def test_bad_media_lines(bad: str) -> None:
    with pytest.raises(SdpParseError):
        parse_media_line(bad)


def test_floorctrl() -> None:
    assert parse_floorctrl("c-only s-only") == (FloorCtrl.C_ONLY, FloorCtrl.S_ONLY)
    assert build_floorctrl([FloorCtrl.C_S]) == "c-s"
    assert answer_floorctrl([FloorCtrl.C_S]) == FloorCtrl.S_ONLY
    assert answer_floorctrl([]) == FloorCtrl.S_ONLY  # absent = c-only
    assert answer_floorctrl([FloorCtrl.S_ONLY]) is None
    with pytest.raises(SdpParseError):
        parse_floorctrl("chair")


def test_ids() -> None:
    assert parse_confid(build_confid(4294967295)) == 4294967295
    assert parse_userid(build_userid(65535)) == 65535
    for bad in ("-1", "65536", "x", ""):
        with pytest.raises(SdpParseError):
            parse_userid(bad)


def test_floorid() -> None:
    assert parse_floorid("1 mstrm:10 11") == FloorIdAttr(1, ("10", "11"))
    assert parse_floorid("2 m-stream:3") == FloorIdAttr(2, ("3",))  # RFC 4583 spelling
    assert parse_floorid("3") == FloorIdAttr(3)
    assert build_floorid(1, ["10", "11"]) == "1 mstrm:10 11"
    assert build_floorid(4) == "4"
    for bad in ("", "x", "1 stream:2", "70000"):
        with pytest.raises(SdpParseError):
            parse_floorid(bad)


def test_setup_connection_fingerprint_version() -> None:
    assert parse_setup("actpass") == Setup.ACTPASS
    assert parse_connection("existing") == ConnectionAttr.EXISTING
    assert parse_fingerprint("SHA-256 4a:AD") == ("sha-256", "4A:AD")
    assert build_fingerprint("sha-256", b"\x4a\xad") == "sha-256 4A:AD"
    assert parse_bfcpver("1 2") == (1, 2)
    for fn, bad in (
        (parse_setup, "both"),
        (parse_connection, "old"),
        (parse_fingerprint, "sha-256 4g"),
        (parse_bfcpver, "0"),
    ):
        with pytest.raises(SdpParseError):
            fn(bad)


def test_bfcp_media_through_a_session_description() -> None:
    offer = SessionDescription.parse(OFFER.encode())
    media = BfcpMedia.from_media(offer.media[0])
    assert media.uses_tls and media.setup == Setup.ACTIVE and media.fingerprints == (("sha-256", "4A:AD:B9"),)
    assert media.floorctrl == (FloorCtrl.C_ONLY, FloorCtrl.S_ONLY) and media.versions == (1,)
    answer = BfcpMedia(
        50000,
        floorctrl=(FloorCtrl.S_ONLY,),
        conference_id=4321,
        user_id=7,
        floors=(FloorIdAttr(1, ("10",)), FloorIdAttr(2, ("11",))),
        setup=Setup.PASSIVE,
        connection=ConnectionAttr.NEW,
        fingerprints=(("sha-256", "AA:BB"),),
        versions=(1,),
    )
    sd = SessionDescription(Origin("imsconf", 1, 1, "192.0.2.1"), media=(answer.to_media(),))
    text = bytes(sd).decode()
    assert "m=application 50000 TCP/TLS/BFCP *\r\n" in text
    assert "a=floorid:1 mstrm:10\r\n" in text and "a=confid:4321\r\n" in text and "a=userid:7\r\n" in text
    assert BfcpMedia.from_media(SessionDescription.parse(bytes(sd)).media[0]) == answer
