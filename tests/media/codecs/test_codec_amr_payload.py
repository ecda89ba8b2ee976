"""RFC 4867 payload layouts (§4.3 bandwidth-efficient, §4.4 octet-aligned) against bit strings built
here from the RFC's figures, and conversions between the two with the real encoder's frames."""

from __future__ import annotations

import random

import numpy as np
import pytest

from imsconf.media.codecs.amr import (
    AMR_NB_BITS,
    AMR_WB_BITS,
    NO_DATA,
    Amr,
    AmrSettings,
    Frame,
    pack_payload,
    unpack_payload,
)
from imsconf.media.codecs.base import CodecError


def bits_of(data: bytes, count: int) -> str:
    return "".join(f"{b:08b}" for b in data)[:count]


def speech(nbits: int, seed: int) -> bytes:
    rnd = random.Random(seed)
    raw = "".join(rnd.choice("01") for _ in range(nbits)) + "0" * ((-nbits) % 8)
    return int(raw, 2).to_bytes(len(raw) // 8, "big") if raw else b""


def to_bytes(bitstring: str) -> bytes:
    bitstring += "0" * ((-len(bitstring)) % 8)
    return int(bitstring, 2).to_bytes(len(bitstring) // 8, "big")


@pytest.mark.parametrize("wide", [True, False])
@pytest.mark.parametrize("ft", [0, 2, 7])
def test_bandwidth_efficient_layout(wide: bool, ft: int) -> None:
    table = AMR_WB_BITS if wide else AMR_NB_BITS
    frames = [Frame(ft, True, speech(table[ft], 1)), Frame(ft, False, speech(table[ft], 2))]
    # CMR(4) | F FT(4) Q | F FT(4) Q | speech 1 | speech 2 | padding
    expect = "0101" + "1" + f"{ft:04b}" + "1" + "0" + f"{ft:04b}" + "0"
    expect += bits_of(frames[0].data, table[ft]) + bits_of(frames[1].data, table[ft])
    payload = pack_payload(wide, False, 5, frames)
    assert payload == to_bytes(expect)
    assert unpack_payload(wide, False, payload) == (5, frames)


@pytest.mark.parametrize("wide", [True, False])
def test_octet_aligned_layout(wide: bool) -> None:
    table = AMR_WB_BITS if wide else AMR_NB_BITS
    frames = [Frame(1, True, speech(table[1], 3)), Frame(NO_DATA, True, b"")]
    payload = pack_payload(wide, True, 15, frames)
    # CMR(4) R(4) | F FT(4) Q P P per frame | each frame octet-padded
    assert payload[0] == 0xF0
    assert payload[1] == 0b1_0001_1_00
    assert payload[2] == 0b0_1111_1_00
    assert payload[3:] == frames[0].data and len(payload[3:]) == (table[1] + 7) // 8
    assert unpack_payload(wide, True, payload) == (15, frames)


def test_one_frame_23_85_sizes() -> None:
    """AMR-WB 23.85 kbit/s: 477 speech bits; 61 octets bandwidth-efficient, 62 octet-aligned."""
    enc = Amr(AmrSettings(wide=True))
    oa = Amr(AmrSettings(wide=True, octet_aligned=True))
    pcm = (3000 * np.sin(np.arange(320) / 5)).astype(np.int16)
    be_payload = enc.encode(pcm)
    oa_payload = oa.encode(pcm)
    assert len(be_payload) == 61 and be_payload[0] == 0xF4  # CMR 15, F=0, FT=8, Q=1 → 1111 0100 01..
    assert len(oa_payload) == 62 and oa_payload[:2] == b"\xf0\x44"


def test_layouts_convert_with_real_frames() -> None:
    """Decoding a bandwidth-efficient stream and its octet-aligned conversion gives the same PCM."""
    enc = Amr(AmrSettings(wide=True))
    dec_be = Amr(AmrSettings(wide=True))
    dec_oa = Amr(AmrSettings(wide=True, octet_aligned=True))
    t = np.arange(320 * 10) / 16000
    src = (8000 * np.sin(2 * np.pi * 700 * t)).astype(np.int16)
    for i in range(10):
        be = enc.encode(src[i * 320 : (i + 1) * 320])
        cmr, frames = unpack_payload(True, False, be)
        oa = pack_payload(True, True, cmr, frames)
        assert unpack_payload(True, True, oa) == (cmr, frames)
        a, ca = dec_be.decode(be)
        b, cb = dec_oa.decode(oa)
        assert not ca and not cb and np.array_equal(a, b)


def test_multi_frame_packet_decodes_all_frames() -> None:
    enc = Amr(AmrSettings(wide=True))
    pcm = np.zeros(320, dtype=np.int16)
    f1 = unpack_payload(True, False, enc.encode(pcm))[1]
    f2 = unpack_payload(True, False, enc.encode(pcm))[1]
    out, concealed = Amr().decode(pack_payload(True, False, 15, f1 + f2))
    assert out.shape == (640,) and not concealed


def test_cmr_lowers_our_mode_within_the_mode_set() -> None:
    peer = Amr(AmrSettings(wide=True))
    ours = Amr(AmrSettings(wide=True, mode_set=(0, 2, 4, 8)))
    assert ours.mode == 8
    silent = np.zeros(320, dtype=np.int16)
    ours.decode(pack_payload(True, False, 3, unpack_payload(True, False, peer.encode(silent))[1]))
    ours.encode(silent)
    assert ours.mode == 2  # the highest of the mode-set not above the requested 3


def test_mode_change_neighbor_and_period() -> None:
    ours = Amr(AmrSettings(wide=True, mode_set=(0, 2, 4, 8), mode_change_period=2, mode_change_neighbor=True))
    ours.requested = 0
    silent = np.zeros(320, dtype=np.int16)
    seen = []
    for _ in range(6):
        ours.encode(silent)
        seen.append(ours.mode)
    assert seen == [8, 4, 4, 2, 2, 0]


def test_malformed_payloads_are_codec_errors() -> None:
    with pytest.raises(CodecError):
        unpack_payload(True, True, b"")
    with pytest.raises(CodecError):
        unpack_payload(True, True, b"\xf0\x44")  # ToC says 23.85 but no speech
    with pytest.raises(CodecError):
        unpack_payload(True, False, b"\xf5")  # ToC entry cut
    with pytest.raises(CodecError):
        unpack_payload(True, True, b"\xf0" + bytes([12 << 3 | 4]))  # reserved frame type


def test_sid_frame_round_trip() -> None:
    """A SID frame (comfort noise, FT 9 for AMR-WB) packs to 40 bits and decodes without concealment."""
    sid = Frame(9, True, speech(40, 9))
    payload = pack_payload(True, False, 15, [sid])
    assert len(payload) == (4 + 6 + 40 + 7) // 8
    assert unpack_payload(True, False, payload) == (15, [sid])
    _, concealed = Amr().decode(payload)
    assert not concealed
