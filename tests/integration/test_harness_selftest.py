"""Self-tests of the real-phone harness: tone/spectrum analysis and SRTP detection on synthetic data, then
two real baresip phones calling each other directly over TLS with mandatory SDES-SRTP (no imsconf server)."""

from __future__ import annotations

import math
import os
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from audio import assert_hears, pcmu_decode, pcmu_encode, read_wav, tone_levels, write_tone_wav, write_wav
from baresip import BaresipPhone, make_test_pki
from capture import (
    Capture,
    UdpPacket,
    analyse_media,
    assert_srtp_only,
    baresip_clear_rtcp_quirk,
    byte_entropy,
    read_pcap,
    write_pcap,
)

from peers import require_peer

# ------------------------------------------------------------------------------------------ audio analysis


def _two_tones(
    tmp: Path, f1: float, f2: float, *, rate: int = 8000, channels: int = 1, noise: float = 0.0
) -> Path:
    t = np.arange(rate * 4) / rate
    x = 0.2 * np.sin(2 * math.pi * f1 * t) + 0.2 * np.sin(2 * math.pi * f2 * t)
    x += noise * np.random.default_rng(1).standard_normal(len(t))
    return write_wav(tmp / f"mix-{f1}-{f2}-{rate}-{channels}.wav", x, rate, channels)


def test_tone_levels_finds_the_two_tones_and_not_the_third(tmp_path: Path) -> None:
    wav = _two_tones(tmp_path, 440, 970, noise=0.01)
    lv = tone_levels(wav, [440, 620, 970], skip_seconds=1.0)
    assert_hears(lv, present=[440, 970], absent=[620])
    with pytest.raises(AssertionError, match="620 Hz should be heard"):
        assert_hears(lv, present=[440, 620], absent=[970])
    with pytest.raises(AssertionError, match="970 Hz should NOT be heard"):
        assert_hears(lv, present=[440], absent=[970])


@pytest.mark.parametrize(("rate", "channels"), [(8000, 1), (16000, 1), (48000, 2)])
def test_tone_levels_any_rate_and_channel_count(tmp_path: Path, rate: int, channels: int) -> None:
    lv = tone_levels(_two_tones(tmp_path, 620, 970, rate=rate, channels=channels), [440, 620, 970], 0.5)
    assert lv.rate == rate
    assert_hears(lv, present=[620, 970], absent=[440])


def test_silence_or_noise_hears_nothing(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    wav = write_wav(tmp_path / "noise.wav", 0.05 * rng.standard_normal(8000 * 3), 8000)
    lv = tone_levels(wav, [440, 620], 0.5)
    with pytest.raises(AssertionError, match="should be heard"):
        assert_hears(lv, present=[440])
    assert_hears(lv, present=[], absent=[440, 620])


def test_read_wav_tolerates_an_unfinished_header_and_float(tmp_path: Path) -> None:
    wav = write_tone_wav(tmp_path / "t.wav", 440, seconds=2)
    raw = bytearray(wav.read_bytes())
    raw[40:44] = b"\x00\x00\x00\x00"  # data size not yet written, as while libsndfile is still recording
    broken = tmp_path / "open.wav"
    broken.write_bytes(bytes(raw))
    x, rate = read_wav(broken)
    assert rate == 8000 and len(x) == 16000
    f = (np.sin(2 * math.pi * 440 * np.arange(8000) / 8000) * 0.5).astype("<f4").tobytes()
    hdr = b"RIFF" + struct.pack("<I", 36 + len(f)) + b"WAVE"
    hdr += (
        b"fmt " + struct.pack("<IHHIIHH", 16, 3, 1, 8000, 32000, 4, 32) + b"data" + struct.pack("<I", len(f))
    )
    (tmp_path / "f.wav").write_bytes(hdr + f)
    assert_hears(tone_levels(tmp_path / "f.wav", [440, 620], 0.0), present=[440], absent=[620])


def test_tone_wav_is_what_aufile_wants(tmp_path: Path) -> None:
    wav = write_tone_wav(tmp_path / "t.wav", 620, seconds=3)
    raw = wav.read_bytes()
    tag, ch, rate, _, _, bits = struct.unpack_from("<HHIIHH", raw, 20)
    assert (tag, ch, rate, bits) == (1, 1, 8000, 16)
    assert len(raw) == 44 + 3 * 8000 * 2


def test_pcmu_round_trip() -> None:
    x = 0.3 * np.sin(2 * math.pi * 440 * np.arange(800) / 8000)
    y = pcmu_decode(pcmu_encode(x))
    assert float(np.max(np.abs(x - y))) < 0.01
    assert pcmu_encode(np.zeros(4)) == b"\xff" * 4


# ------------------------------------------------------------------------------------------ SRTP detection


def _rtp(seq: int, ssrc: int, payload: bytes, pt: int = 0) -> bytes:
    return struct.pack("!BBHII", 0x80, pt, seq, seq * 160, ssrc) + payload


def _stream(payloads: list[bytes], sport: int = 40000, dport: int = 41000) -> list[UdpPacket]:
    return [
        UdpPacket(1000 + i * 0.02, "127.0.0.1", sport, "127.0.0.1", dport, _rtp(i, 0x1234, p))
        for i, p in enumerate(payloads)
    ]


def test_clear_pcmu_tone_is_detected(tmp_path: Path) -> None:
    x = 0.25 * np.sin(2 * math.pi * 440 * np.arange(160 * 200) / 8000)
    clear = pcmu_encode(x)
    pkts = _stream([clear[i : i + 160] for i in range(0, len(clear), 160)])
    rep = analyse_media(read_pcap(write_pcap(tmp_path / "clear.pcap", pkts)))
    assert rep.rtp_packets == 200
    with pytest.raises(AssertionError) as ei:
        assert_srtp_only(rep, tones=[440])
    msg = str(ei.value)
    assert "clear G.711 frame size" in msg and "entropy" in msg and "carries tones" in msg
    # even disguised with a fake 10-byte tag the clear audio shows through
    pkts = _stream([clear[i : i + 160] + os.urandom(10) for i in range(0, len(clear), 160)])
    with pytest.raises(AssertionError, match="entropy"):
        assert_srtp_only(analyse_media(pkts), tones=[440])


def test_random_payload_passes_and_rtcp_is_classified(tmp_path: Path) -> None:
    pkts = _stream([os.urandom(170) for _ in range(200)])
    srtcp = struct.pack("!BBHI", 0x81, 200, 6, 0x1234) + os.urandom(20) + b"\x80\x00\x00\x01" + os.urandom(10)
    pkts.append(UdpPacket(2000, "127.0.0.1", 40001, "127.0.0.1", 41001, srtcp))
    rep = analyse_media(read_pcap(write_pcap(tmp_path / "srtp.pcap", pkts)))
    assert len(rep.rtcp) == 1 and rep.rtp_packets == 200
    assert byte_entropy(b"".join(rep.rtp[next(iter(rep.rtp))].payloads)) > 7.9
    assert_srtp_only(rep, tones=[440, 620, 970])
    # a plain RTCP receiver report from anyone is refused; baresip's APP PING only from a phone's range
    rr = struct.pack("!BBHI", 0x80, 201, 1, 0x1234)
    ping = struct.pack("!BBHI", 0x80, 204, 3, 0x1234) + b"PINGPONG"
    assert baresip_clear_rtcp_quirk(ping) == "APP PING" and baresip_clear_rtcp_quirk(rr) is None
    for extra in (rr, ping):
        rep2 = analyse_media([*pkts, UdpPacket(3000, "127.0.0.1", 50001, "127.0.0.1", 41001, extra)])
        with pytest.raises(AssertionError, match="parses as plain RTCP"):
            assert_srtp_only(rep2)
    assert_srtp_only(
        analyse_media([*pkts, UdpPacket(3000, "127.0.0.1", 50001, "127.0.0.1", 41001, ping)]),
        baresip_rtcp_from=[(50000, 50019)],
    )


def test_no_media_is_not_a_pass() -> None:
    with pytest.raises(AssertionError, match="expected >= 1 RTP streams"):
        assert_srtp_only(analyse_media([]))


# ----------------------------------------------------------------------------------------- two real phones


@pytest.fixture
def phones(tmp_path: Path) -> Iterator[tuple[BaresipPhone, BaresipPhone]]:
    require_peer("baresip")
    pki = make_test_pki(tmp_path / "pki")
    tones = {f: write_tone_wav(tmp_path / f"{f}.wav", f, seconds=90) for f in (440, 660)}
    a = BaresipPhone(
        "alice", tmp_path / "alice", tone_wav=tones[440], ca_pem=pki.ca, cert_combined_pem=pki.combined
    )
    b = BaresipPhone(
        "bob", tmp_path / "bob", tone_wav=tones[660], ca_pem=pki.ca, cert_combined_pem=pki.combined
    )
    try:
        yield a, b
    finally:
        a.stop()
        b.stop()


@pytest.mark.peer
@pytest.mark.timeout(60)
def test_two_baresip_phones_talk_srtp_over_tls(
    phones: tuple[BaresipPhone, BaresipPhone], tmp_path: Path
) -> None:
    require_peer("dumpcap")
    a, b = phones
    cap = Capture(tmp_path / "media.pcap", [a.rtp_ports, b.rtp_ports]).start()
    try:
        a.start()
        b.start()
        a.dial(b.uri)
        ev_a = a.wait_event("CALL_ESTABLISHED", 10, fail_on=("CALL_CLOSED",))
        b.wait_event("CALL_ESTABLISHED", 10, fail_on=("CALL_CLOSED",))
        for p in (a, b):
            menc = p.wait_event("CALL_MENC", 5)
            assert "AES_CM_128_HMAC_SHA1_80" in str(menc.get("param")), menc
        assert ev_a["direction"] == "outgoing"
        time.sleep(5.0)
        a.hangup()
        closed = b.wait_event("CALL_CLOSED", 5)
        a.wait_event("CALL_CLOSED", 5)
    finally:
        a.stop()
        b.stop()
        cap.stop()
    # a BYE from the peer shows up as this reason text in baresip 1.0.0
    assert closed["param"] == "Connection reset by peer", closed

    for phone, own, other in ((a, 440, 660), (b, 660, 440)):
        decs = phone.dec_wavs()
        assert len(decs) == 1, f"{phone.name}: recordings {decs}\n{phone.log_tail()}"
        lv = tone_levels(decs[0], [440, 660], skip_seconds=1.0)
        assert lv.seconds > 3.0, lv.describe()
        assert_hears(lv, present=[other], absent=[own], who=phone.name)
        sent = tone_levels(phone.enc_wavs()[0], [440, 660], skip_seconds=1.0)
        assert_hears(sent, present=[own], absent=[other], who=f"{phone.name} (sent)")

    rep = analyse_media(read_pcap(cap.pcap))
    assert_srtp_only(rep, tones=[440, 660], min_streams=2, min_packets_per_stream=150,
                     baresip_rtcp_from=[a.rtp_ports, b.rtp_ports], where="baresip<->baresip")  # fmt: skip
    # every stream is PCMU with the 10-byte HMAC-SHA1-80 tag: 160 + 10
    for st in rep.rtp.values():
        assert set(st.sizes) == {170} and set(st.payload_types) == {0}, st.describe()
