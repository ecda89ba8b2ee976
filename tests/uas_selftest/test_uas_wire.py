"""Unit tests of the test UA's own wire code: SIP messages, SDP/crypto, RTP/G.711/RFC 4733, analysis."""

from __future__ import annotations

import base64
import hashlib

import numpy as np
import pytest

from uas.analysis import arrival_gap_ms, decode_dtmf, gaps, tone_gap_ms, tone_present, try_decrypt
from uas.rtp import (
    RxKeyRing,
    build_dtmf_payload,
    build_rtcp_report,
    build_rtp,
    parse_dtmf_payload,
    parse_rtp,
    srtp_session,
    ulaw_decode,
    ulaw_encode,
)
from uas.sdp import Crypto, answer_direction, build_sdp, parse_sdp
from uas.sipmsg import (
    NameAddr,
    SipUri,
    choose_challenge,
    digest_credentials,
    frame_stream,
    parse_auth_params,
    parse_message,
)


def test_parse_compact_and_multi_valued_headers() -> None:
    raw = (
        b"INVITE sip:bob@127.0.0.1:5070 SIP/2.0\r\n"
        b"v: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKa, SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKb\r\n"
        b'f: "A, B" <sip:a@x>;tag=1\r\nt: <sip:bob@x>\r\ni: cid@x\r\nCSeq: 7 INVITE\r\n'
        b"Record-Route: <sip:p1;lr>, <sip:p2;lr>\r\nl: 3\r\n\r\nabcEXTRA"
    )
    m = parse_message(raw)
    assert m.method == "INVITE" and m.branch == "z9hG4bKa" and m.cseq == (7, "INVITE")
    assert len(m.get_all("Via")) == 2 and m.get_all("Record-Route") == ["<sip:p1;lr>", "<sip:p2;lr>"]
    assert m.from_tag == "1" and m.to_tag is None and m.call_id == "cid@x" and m.body == b"abc"
    again = parse_message(m.to_bytes())
    assert again.headers == m.headers


def test_stream_framing_keeps_partial_message() -> None:
    one = b"OPTIONS sip:x SIP/2.0\r\nContent-Length: 2\r\n\r\nhi"
    msgs, rest = frame_stream(b"\r\n" + one + one[:10])
    assert msgs == [one] and rest == one[:10]


def test_refer_to_with_embedded_replaces_round_trip() -> None:
    na = NameAddr.parse(
        "<sip:bob@127.0.0.1:5070;transport=tls?Replaces=abc%40host%3Bto-tag%3D1%3Bfrom-tag%3D2>"
    )
    uri = SipUri.parse(na.uri)
    assert uri.headers == {"Replaces": "abc@host;to-tag=1;from-tag=2"}
    assert uri.params == {"transport": "tls"} and uri.port == 5070
    assert str(SipUri.parse(str(uri))) == str(uri)


@pytest.mark.parametrize("alg", ["SHA-256", "MD5"])
def test_digest_client_matches_rfc_formula(alg: str) -> None:
    chal = f'Digest realm="r", nonce="n1", qop="auth", algorithm={alg}, opaque="o"'
    value = digest_credentials(chal, "INVITE", "sip:x@y", "alice", "pw")
    _, p = parse_auth_params(value)

    def h(text: str) -> str:
        return (hashlib.sha256 if alg == "SHA-256" else hashlib.md5)(text.encode()).hexdigest()

    ha1, ha2 = h("alice:r:pw"), h("INVITE:sip:x@y")
    assert p["response"] == h(f"{ha1}:n1:{p['nc']}:{p['cnonce']}:auth:{ha2}") and p["opaque"] == "o"
    picked = choose_challenge([chal.replace(alg, "MD5"), chal.replace(alg, "SHA-256")])
    assert picked is not None and "algorithm=SHA-256" in picked


def test_sdp_round_trip_and_crypto() -> None:
    c = Crypto.generate()
    body = build_sdp(
        "127.0.0.1", 40000, session_id="1", version=2, crypto=c, rtcp_port=40001, direction="sendonly"
    )
    sdp = parse_sdp(body)
    assert sdp.proto == "RTP/SAVP" and sdp.payload_types == [0, 101] and sdp.telephone_event_pt == 101
    assert sdp.cryptos == [c] and sdp.rtcp_port == 40001 and sdp.direction == "sendonly"
    assert "key_salt" not in repr(c)  # keys stay out of logs and assertion messages
    assert Crypto.parse("1 AES_CM_128_HMAC_SHA1_80 inline:" + base64.b64encode(b"x" * 29).decode()) is None
    assert answer_direction("sendonly") == "recvonly" and answer_direction("inactive") == "inactive"


def test_g711_and_rtp_and_dtmf_payloads() -> None:
    x = (np.sin(np.arange(800) * 2 * np.pi * 440 / 8000) * 12000).astype(np.int16)
    y = ulaw_decode(ulaw_encode(x))
    assert np.max(np.abs(y.astype(int) - x)) < 400
    pkt = parse_rtp(build_rtp(0, 65535, 7, 0xDEADBEEF, b"abc", marker=True))
    assert pkt is not None and (pkt.seq, pkt.ts, pkt.ssrc, pkt.marker, pkt.payload) == (
        65535,
        7,
        0xDEADBEEF,
        True,
        b"abc",
    )
    assert parse_dtmf_payload(build_dtmf_payload("#", True, 10, 800)) == ("#", True, 10, 800)
    pkts = [
        build_rtp(
            101, i, 1000 if i < 3 else 2000, 1, build_dtmf_payload("5" if i < 3 else "*", False, 10, 160)
        )
        for i in range(5)
    ]
    assert decode_dtmf(pkts) == "5*"
    rr = build_rtcp_report(1, [], "x")
    assert rr[1] == 201 and len(rr) % 4 == 0


def test_tone_and_gap_helpers() -> None:
    n = np.arange(8000)
    x = (np.sin(2 * np.pi * 440 * n / 8000) * 0.5 * 32767).astype(np.int16)
    assert tone_present(x, 440) == pytest.approx(-6.0, abs=0.5)
    assert tone_present(x, 1000) < -60
    holed = x.copy()
    holed[4000:4800] = 0  # 100 ms hole
    assert 90 <= tone_gap_ms(holed, 440) <= 110 and tone_gap_ms(x, 440) == 0
    assert gaps([0.0, 0.02, 0.04, 0.12]) == pytest.approx(80) == arrival_gap_ms([0.0, 0.02, 0.04, 0.12])
    assert gaps(holed, 440) == tone_gap_ms(holed, 440)


def test_key_ring_switches_on_first_authenticated_packet_and_keeps_old_key() -> None:
    old, new = Crypto.generate(), Crypto.generate()
    tx_old, tx_new = srtp_session(old, outbound=True), srtp_session(new, outbound=True)
    ring = RxKeyRing(old)
    p1 = tx_old.protect(build_rtp(0, 1, 160, 5, b"\xff" * 160))
    assert ring.unprotect(p1, rtcp=False) is not None
    assert ring.offer(new) and not ring.offer(new)
    late_old = tx_old.protect(build_rtp(0, 2, 320, 5, b"\xff" * 160))
    assert ring.unprotect(late_old, rtcp=False) is not None and not ring.switches  # still old
    p_new = tx_new.protect(build_rtp(0, 1, 160, 6, b"\xff" * 160))
    assert ring.unprotect(p_new, rtcp=False) is not None
    assert len(ring.switches) == 1 and ring.current == new and ring.switches[0].ssrc == 6
    straggler = tx_old.protect(build_rtp(0, 3, 480, 5, b"\xff" * 160))
    assert ring.unprotect(straggler, rtcp=False) is not None  # previous key kept for stragglers
    assert try_decrypt([p1, late_old, straggler], old.b64) == 3 and try_decrypt([p_new], old.b64) == 0


def test_key_ring_back_to_an_older_key_and_two_pending_keys() -> None:
    k1, k2, k3 = Crypto.generate(), Crypto.generate(), Crypto.generate()
    tx = {k: srtp_session(k, outbound=True) for k in (k1, k2, k3)}
    ring = RxKeyRing(k1)
    seq = iter(range(1, 100))

    def pkt(k: Crypto, ssrc: int) -> bytes:
        n = next(seq)
        return tx[k].protect(build_rtp(0, n, n * 160, ssrc, b"\xff" * 160))

    assert ring.unprotect(pkt(k1, 1), rtcp=False) is not None
    assert ring.offer(k2) and ring.offer(k3)  # two rekeys before any packet under k2
    assert ring.unprotect(pkt(k3, 3), rtcp=False) is not None and ring.current == k3
    assert ring.pending == [] and [s.crypto for s in ring.switches] == [k3]
    assert ring.offer(k1)  # moved back to the old key: pending again, switch recorded on first packet
    assert ring.unprotect(pkt(k1, 1), rtcp=False) is not None
    assert ring.current == k1 and [s.crypto for s in ring.switches] == [k3, k1]
    assert ring.unprotect(pkt(k2, 2), rtcp=False) is None  # k2 was dropped when k3 took over


def test_in_dialog_requests_follow_the_route_set() -> None:
    from uas import Dialog, UserAgent

    ua = UserAgent("alice", transport="tcp", port=5999)
    try:
        routes = ["<sip:127.0.0.1:5080;lr;transport=tcp>", "<sip:p2.example.org;lr>"]
        target = "sip:bob@192.0.2.9:5070;transport=tcp"
        d = Dialog(
            ua, "cid", "lt", ua.aor, "sip:bob@x", remote_tag="rt", remote_target=target, route_set=routes
        )
        bye = d.request("BYE")
        assert bye.uri == "sip:bob@192.0.2.9:5070;transport=tcp"  # loose routing: R-URI = remote target
        assert bye.get_all("Route") == d.route_set and d.next_hop() == ("127.0.0.1", 5080)
        assert bye.to_tag == "rt" and bye.from_tag == "lt" and bye.cseq[1] == "BYE"
        assert bye.get(
            "Via",
        ).startswith("SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bK")  # type: ignore[union-attr]
        ack = d.request("ACK", cseq=7)
        assert ack.cseq == (7, "ACK") and d.local_cseq == bye.cseq[0]  # ACK does not consume a CSeq
        d.route_set = []
        assert d.next_hop() == ("192.0.2.9", 5070)
    finally:
        ua.transport.loop.close()
