from __future__ import annotations

import base64
import pickle

import pytest
from media_peer import make_keys

from imsconf.media.rtp import pack_rtp_header
from imsconf.media.srtp import (
    SUITES,
    NullReceiver,
    NullSender,
    SrtpError,
    SrtpKeys,
    SrtpReceiver,
    SrtpSender,
)


def rtp(seq: int, ssrc: int = 0x1234, payload: bytes = b"\xff" * 160) -> bytes:
    return pack_rtp_header(0, seq, seq * 160, ssrc) + payload


@pytest.mark.parametrize("suite", sorted(SUITES))
def test_protect_unprotect_round_trip(suite: str) -> None:
    keys = make_keys(suite)
    tx, rx = SrtpSender(keys), SrtpReceiver(keys)
    for seq in range(5):
        pkt = tx.protect(rtp(seq))
        assert len(pkt) == 172 + SUITES[suite].overhead
        assert pkt[12:] != rtp(seq)[12:]  # encrypted
        assert rx.unprotect(pkt) == rtp(seq)
    rtcp = bytes.fromhex("80c90001") + b"\x00\x00\x12\x34"
    assert rx.unprotect_rtcp(tx.protect_rtcp(rtcp)) == rtcp


@pytest.mark.parametrize("suite", sorted(SUITES))
def test_auth_failure_and_replay_are_classified(suite: str) -> None:
    keys = make_keys(suite)
    tx, rx = SrtpSender(keys), SrtpReceiver(keys)
    good = tx.protect(rtp(1))
    rx.unprotect(good)
    with pytest.raises(SrtpError) as replay:
        rx.unprotect(good)
    assert replay.value.kind == "replay"
    bad = bytearray(tx.protect(rtp(2)))
    bad[30] ^= 0x01
    with pytest.raises(SrtpError) as auth:
        rx.unprotect(bytes(bad))
    assert auth.value.kind == "auth"
    with pytest.raises(SrtpError) as other_key:
        SrtpReceiver(make_keys(suite)).unprotect(tx.protect(rtp(3)))
    assert other_key.value.kind == "auth"
    with pytest.raises(SrtpError):
        rx.unprotect(b"\x80\x00")


def test_key_lengths_are_checked() -> None:
    with pytest.raises(ValueError):
        SrtpKeys("AES_CM_128_HMAC_SHA1_80", bytes(15), bytes(14))
    with pytest.raises(ValueError):
        SrtpKeys("AES_CM_128_HMAC_SHA1_80", bytes(16), bytes(12))
    with pytest.raises(ValueError):
        SrtpKeys("AEAD_AES_128_GCM", bytes(16), bytes(14))
    with pytest.raises(ValueError):
        SrtpKeys("F8_128_HMAC_SHA1_80", bytes(16), bytes(14))
    SrtpKeys("AEAD_AES_128_GCM", bytes(16), bytes(12))


def test_repr_never_shows_key_and_wipe_zeroes() -> None:
    key, salt = bytes(range(1, 17)), bytes(range(100, 114))
    keys = SrtpKeys("AES_CM_128_HMAC_SHA1_80", key, salt)
    inner_key = keys._key  # the bytearray itself, to see it zeroed
    for text in (repr(keys), str(keys), f"{keys}", repr([keys])):
        assert key.hex() not in text and "\\x01\\x02" not in text and str(list(key)) not in text
        assert "AES_CM_128_HMAC_SHA1_80" in text
    with pytest.raises(TypeError):
        pickle.dumps(keys)
    keys.wipe()
    assert keys.wiped and inner_key == bytearray(16)
    with pytest.raises(ValueError):
        SrtpSender(keys)


def test_from_inline() -> None:
    raw = bytes(range(30))
    keys = SrtpKeys.from_inline("AES_CM_128_HMAC_SHA1_32", base64.b64encode(raw).decode())
    assert keys.key_salt() == raw
    with pytest.raises(ValueError):
        SrtpKeys.from_inline("AES_CM_128_HMAC_SHA1_32", base64.b64encode(raw[:20]).decode())
    with pytest.raises(ValueError):
        SrtpKeys.from_inline("AES_CM_128_HMAC_SHA1_32", "!!!")


def test_sessions_survive_wiping_the_keys() -> None:
    keys = make_keys()
    tx, rx = SrtpSender(keys), SrtpReceiver(keys.copy())
    keys.wipe()
    assert rx.unprotect(tx.protect(rtp(9))) == rtp(9)


def test_inbound_rekey_keeps_old_key_until_new_one_decrypts() -> None:
    old, new = make_keys(), make_keys("AEAD_AES_128_GCM")
    old_tx, new_tx = SrtpSender(old), SrtpSender(new)
    rx = SrtpReceiver(old)
    assert rx.unprotect(old_tx.protect(rtp(1))) == rtp(1)
    rx.rekey(new)
    assert rx.rekey_pending
    # old-key packets still in flight keep playing
    assert rx.unprotect(old_tx.protect(rtp(2))) == rtp(2)
    # the first new-key packet (the peer uses a new SSRC) promotes the new key
    assert rx.unprotect(new_tx.protect(rtp(3, ssrc=0x9999))) == rtp(3, ssrc=0x9999)
    assert not rx.rekey_pending and rx.suite == "AEAD_AES_128_GCM"
    with pytest.raises(SrtpError) as exc:
        rx.unprotect(old_tx.protect(rtp(4)))
    assert exc.value.kind == "auth"


def test_null_variant_passes_through() -> None:
    assert NullSender().protect(b"abc") == b"abc" and NullSender().protect_rtcp(b"x") == b"x"
    assert NullReceiver().unprotect(b"abc") == b"abc" and NullReceiver().unprotect_rtcp(b"x") == b"x"
