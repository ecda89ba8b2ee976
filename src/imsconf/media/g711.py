"""G.711 µ-law (PCMU) and A-law (PCMA), ITU-T G.711, as numpy lookup tables built at import.

Decode tables have 256 entries; encode tables have 65,536 entries indexed by the int16 sample viewed as
uint16, so a whole frame (or a whole tick's worth of frames) is one gather. The tables are computed here
from the G.711 segment rules and are bit-exact with the stdlib ``audioop`` module (tested).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = [
    "ALAW_DECODE",
    "ALAW_ENCODE",
    "CODECS",
    "ULAW_DECODE",
    "ULAW_ENCODE",
    "G711Codec",
    "alaw_decode",
    "alaw_encode",
    "codec_by_name",
    "ulaw_decode",
    "ulaw_encode",
]

Int16Array = npt.NDArray[np.int16]
UInt8Array = npt.NDArray[np.uint8]

_ALL_INT16 = np.arange(-32768, 32768, dtype=np.int32)  # index i+32768 holds sample i
# Segment end points (G.711 tables): µ-law works on 14-bit magnitudes, A-law on 13-bit.
_SEG_UEND = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF], dtype=np.int32)
_SEG_AEND = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF], dtype=np.int32)


def _ulaw_encode_all(x: npt.NDArray[np.int32]) -> UInt8Array:
    v = x >> 2  # 14-bit, arithmetic shift
    neg = v < 0
    mag = np.where(neg, -v, v)
    mask = np.where(neg, 0x7F, 0xFF)
    mag = np.minimum(mag, 8159) + 0x21  # clip, then add the bias (0x84 >> 2)
    seg = np.searchsorted(_SEG_UEND, mag, side="left")  # first segment whose end >= mag
    code = (seg << 4) | ((mag >> (seg + 1)) & 0x0F)
    code = np.where(seg >= 8, 0x7F, code)
    return (code ^ mask).astype(np.uint8)


def _alaw_encode_all(x: npt.NDArray[np.int32]) -> UInt8Array:
    v = x >> 3  # 13-bit
    pos = v >= 0
    mask = np.where(pos, 0xD5, 0x55)
    mag = np.where(pos, v, -v - 1)
    seg = np.searchsorted(_SEG_AEND, mag, side="left")
    shift = np.where(seg < 2, 1, seg)
    code = (seg << 4) | ((mag >> shift) & 0x0F)
    code = np.where(seg >= 8, 0x7F, code)
    return (code ^ mask).astype(np.uint8)


def _ulaw_decode_all() -> Int16Array:
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    t = (((u & 0x0F) << 3) + 0x84) << ((u & 0x70) >> 4)
    return np.where(u & 0x80, 0x84 - t, t - 0x84).astype(np.int16)


def _alaw_decode_all() -> Int16Array:
    a = np.arange(256, dtype=np.int32) ^ 0x55
    seg = (a & 0x70) >> 4
    t = (a & 0x0F) << 4
    t = np.where(seg == 0, t + 8, t + 0x108)
    t = np.where(seg > 1, t << np.maximum(seg - 1, 0), t)
    return np.where(a & 0x80, t, -t).astype(np.int16)


def _by_uint16(table_by_int: UInt8Array) -> UInt8Array:
    """Reorder a table indexed by sample+32768 to be indexed by the sample's uint16 bit pattern."""
    return np.ascontiguousarray(np.roll(table_by_int, -32768))


ULAW_DECODE: Final[Int16Array] = _ulaw_decode_all()
ALAW_DECODE: Final[Int16Array] = _alaw_decode_all()
ULAW_ENCODE: Final[UInt8Array] = _by_uint16(_ulaw_encode_all(_ALL_INT16))
ALAW_ENCODE: Final[UInt8Array] = _by_uint16(_alaw_encode_all(_ALL_INT16))
for _t in (ULAW_DECODE, ALAW_DECODE, ULAW_ENCODE, ALAW_ENCODE):
    _t.flags.writeable = False


def ulaw_decode(payload: bytes) -> Int16Array:
    return ULAW_DECODE[np.frombuffer(payload, dtype=np.uint8)]


def alaw_decode(payload: bytes) -> Int16Array:
    return ALAW_DECODE[np.frombuffer(payload, dtype=np.uint8)]


def ulaw_encode(samples: Int16Array) -> bytes:
    return ULAW_ENCODE[np.asarray(samples, dtype=np.int16).view(np.uint16)].tobytes()


def alaw_encode(samples: Int16Array) -> bytes:
    return ALAW_ENCODE[np.asarray(samples, dtype=np.int16).view(np.uint16)].tobytes()


@dataclass(frozen=True, slots=True)
class G711Codec:
    """A G.711 variant: its RTP name, static payload type, and tables."""

    name: str  # "PCMU" or "PCMA"
    static_pt: int
    decode_table: Int16Array
    encode_table: UInt8Array
    clock_rate: int = 8000

    @property
    def silence(self) -> int:
        """The code of a zero sample."""
        return int(self.encode_table[0])


CODECS: Final[dict[str, G711Codec]] = {
    "PCMU": G711Codec("PCMU", 0, ULAW_DECODE, ULAW_ENCODE),
    "PCMA": G711Codec("PCMA", 8, ALAW_DECODE, ALAW_ENCODE),
}


def codec_by_name(name: str) -> G711Codec:
    """The codec for an SDP ``a=rtpmap`` encoding name (case-insensitive)."""
    try:
        return CODECS[name.upper()]
    except KeyError:
        raise ValueError(f"unsupported codec {name!r} (PCMU and PCMA only)") from None
