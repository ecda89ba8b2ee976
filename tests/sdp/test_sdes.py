from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st
from samples import KEY80, KEY80_B64, KEY_GCM, KEY_GCM_B64

from imsconf.sdp import SUITES, CryptoAttribute, KeyParam, SdesError, UnsupportedSuiteError


def test_parse_baresip_line() -> None:
    c = CryptoAttribute.parse(f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY80_B64}")
    assert (c.tag, c.suite) == (1, "AES_CM_128_HMAC_SHA1_80")
    assert c.key_salt == KEY80
    assert c.master_key == KEY80[:16] and c.master_salt == KEY80[16:]
    assert c.to_sdp() == f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY80_B64}"


def test_gcm_28_bytes_rfc7714() -> None:
    c = CryptoAttribute.parse(f"3 AEAD_AES_128_GCM inline:{KEY_GCM_B64}")
    assert c.crypto_suite.key_salt_length == 28
    assert c.master_key == KEY_GCM[:16] and c.master_salt == KEY_GCM[16:]


def test_gcm_without_padding_is_accepted() -> None:
    c = CryptoAttribute.parse(f"3 AEAD_AES_128_GCM inline:{KEY_GCM_B64.rstrip('=')}")
    assert c.key_salt == KEY_GCM
    assert c.to_sdp().endswith("==")


def test_lifetime_mki_and_session_params() -> None:
    value = f"7 AES_CM_128_HMAC_SHA1_32 inline:{KEY80_B64}|2^20|1:4 KDR=1 UNENCRYPTED_SRTCP"
    c = CryptoAttribute.parse(value)
    assert c.keys[0].lifetime == 2**20 and c.keys[0].mki == (1, 4)
    assert c.session_params == ("KDR=1", "UNENCRYPTED_SRTCP")
    assert c.to_sdp() == value
    assert (
        CryptoAttribute.parse(f"7 AES_CM_128_HMAC_SHA1_32 inline:{KEY80_B64}|1000").keys[0].lifetime == 1000
    )


def test_several_keys_need_mki() -> None:
    two = f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY80_B64}|2^20|1:4;inline:{KEY80_B64}|2^20|2:4"
    assert len(CryptoAttribute.parse(two).keys) == 2
    with pytest.raises(SdesError, match="MKI"):
        CryptoAttribute.parse(f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY80_B64};inline:{KEY80_B64}")


@pytest.mark.parametrize(
    "value",
    [
        "",
        "1",
        "x AES_CM_128_HMAC_SHA1_80 inline:AAAA",
        "1234567890 AES_CM_128_HMAC_SHA1_80 inline:" + KEY80_B64,
        "1 AES_CM_128_HMAC_SHA1_80 inline:" + base64.b64encode(bytes(29)).decode(),
        "1 AES_CM_128_HMAC_SHA1_80 inline:" + KEY_GCM_B64,
        "1 AEAD_AES_128_GCM inline:" + KEY80_B64,
        "1 AES_CM_128_HMAC_SHA1_80 inline:!!!!",
        "1 AES_CM_128_HMAC_SHA1_80 inline:A",
        "1 AES_CM_128_HMAC_SHA1_80 inline:" + KEY80_B64 + "|2^49",
        "1 AES_CM_128_HMAC_SHA1_80 inline:" + KEY80_B64 + "|2^999",
        "1 AES_CM_128_HMAC_SHA1_80 inline:" + KEY80_B64 + "|0",
        "1 AES_CM_128_HMAC_SHA1_80 inline:" + KEY80_B64 + "|1:0",
        "1 AES_CM_128_HMAC_SHA1_80 inline:" + KEY80_B64 + "|256:1",
        "1 AES_CM_128_HMAC_SHA1_80 inline:" + KEY80_B64 + "|x",
    ],
)
def test_bad_crypto_lines(value: str) -> None:
    with pytest.raises(SdesError):
        CryptoAttribute.parse(value)


def test_unknown_suite_and_method_are_distinguishable() -> None:
    with pytest.raises(UnsupportedSuiteError):
        CryptoAttribute.parse("1 F8_128_HMAC_SHA1_80 inline:" + KEY80_B64)
    with pytest.raises(UnsupportedSuiteError):
        CryptoAttribute.parse("1 AES_CM_128_HMAC_SHA1_80 mikey:AAAA")


def test_repr_and_str_never_show_the_key() -> None:
    c = CryptoAttribute.from_key(1, "AES_CM_128_HMAC_SHA1_80", bytearray(KEY80), lifetime=2**31)
    for text in (repr(c), str(c), f"{c}", repr(c.keys[0]), repr(c.to_attribute()), repr([c])):
        assert KEY80_B64 not in text
        assert "redacted" in text
    assert KEY80_B64 in c.to_sdp()
    assert c.to_attribute().value == c.to_sdp()
    assert c.to_sdp().endswith("|2^31")


def test_construction_validates_lengths() -> None:
    with pytest.raises(ValueError, match="28 bytes"):
        CryptoAttribute.from_key(1, "AEAD_AES_128_GCM", KEY80)
    with pytest.raises(ValueError, match="unsupported"):
        CryptoAttribute.from_key(1, "NULL", KEY80)
    with pytest.raises(ValueError):
        KeyParam(KEY80, mki=(300, 1))


suites = st.sampled_from(sorted(SUITES))


@st.composite
def crypto_attributes(draw: st.DrawFn) -> CryptoAttribute:
    suite = SUITES[draw(suites)]
    n = draw(st.integers(1, 3))
    mki_len = draw(st.integers(1, 4))
    mkis = draw(st.lists(st.integers(0, 256**mki_len - 1), min_size=n, max_size=n, unique=True))
    keys = tuple(
        KeyParam(
            draw(st.binary(min_size=suite.key_salt_length, max_size=suite.key_salt_length)),
            draw(st.none() | st.integers(1, suite.max_lifetime)),
            (mkis[i], mki_len) if n > 1 or draw(st.booleans()) else None,
        )
        for i in range(n)
    )
    params = tuple(draw(st.lists(st.sampled_from(["KDR=1", "WSH=64", "UNENCRYPTED_SRTP"]), max_size=2)))
    return CryptoAttribute(draw(st.integers(0, 999_999_999)), suite.name, keys, params)


@given(crypto_attributes())
def test_round_trip(c: CryptoAttribute) -> None:
    assert CryptoAttribute.parse(c.to_sdp()) == c


@given(st.text(max_size=120))
def test_random_text_raises_only_sdes_error(value: str) -> None:
    try:
        CryptoAttribute.parse(value)
    except SdesError:
        pass


@given(crypto_attributes(), st.integers(0, 200), st.text(min_size=1, max_size=3))
def test_mutated_lines_raise_only_sdes_error(c: CryptoAttribute, pos: int, junk: str) -> None:
    text = c.to_sdp()
    pos %= len(text)
    try:
        CryptoAttribute.parse(text[:pos] + junk + text[pos + 1 :])
    except SdesError:
        pass
