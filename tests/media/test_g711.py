from __future__ import annotations

import warnings

import numpy as np
import pytest

from imsconf.media import g711

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop


@pytest.mark.parametrize("code", range(256))
def test_decode_matches_audioop_every_code(code: int) -> None:
    b = bytes([code])
    assert g711.ulaw_decode(b)[0] == int.from_bytes(audioop.ulaw2lin(b, 2), "little", signed=True)
    assert g711.alaw_decode(b)[0] == int.from_bytes(audioop.alaw2lin(b, 2), "little", signed=True)


def test_encode_matches_audioop_all_int16() -> None:
    x = np.arange(-32768, 32768, dtype=np.int16)
    assert g711.ulaw_encode(x) == audioop.lin2ulaw(x.tobytes(), 2)
    assert g711.alaw_encode(x) == audioop.lin2alaw(x.tobytes(), 2)


def test_encode_matches_audioop_random_frames() -> None:
    rng = np.random.default_rng(1)
    for _ in range(50):
        x = rng.integers(-32768, 32768, size=160, dtype=np.int16)
        assert g711.ulaw_encode(x) == audioop.lin2ulaw(x.tobytes(), 2)
        assert g711.alaw_encode(x) == audioop.lin2alaw(x.tobytes(), 2)


def test_round_trip_codes_are_stable() -> None:
    codes = bytes(range(256))
    assert g711.ulaw_encode(g711.ulaw_decode(codes)) == audioop.lin2ulaw(audioop.ulaw2lin(codes, 2), 2)
    assert g711.alaw_encode(g711.alaw_decode(codes)) == codes


def test_codec_lookup() -> None:
    assert g711.codec_by_name("pcmu").static_pt == 0
    assert g711.codec_by_name("PCMA").silence == audioop.lin2alaw(b"\0\0", 2)[0]
    with pytest.raises(ValueError):
        g711.codec_by_name("opus")


def test_tables_are_read_only() -> None:
    with pytest.raises(ValueError):
        g711.ULAW_ENCODE[0] = 1
