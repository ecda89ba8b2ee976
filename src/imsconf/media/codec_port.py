"""The mixer's seam to non-G.711 audio codecs: :class:`Codec` (one stream's encoder and decoder),
:class:`CodecFactory` (makes one from the negotiated name, RTP clock and format parameters), and the
one codec the engine carries itself, L16 (RFC 3551 §4.5.11: 16-bit linear PCM in network order) at
16 kHz, a real payload format that needs no library.

G.711 (PCMU, PCMA) never goes through this seam: the engine mixes it with its own tables and its C path.
A :class:`Codec` (the seam of :mod:`imsconf.media.codecs`) decodes a whole 20 ms frame at its
``sample_rate`` and conceals a lost one with its own loss concealment (``decode(None)``); a frame it
cannot decode comes back concealed (or raises :class:`CodecError`), which the tick counts and conceals.
:func:`negotiated_codec` is the factory over :mod:`imsconf.media.codecs` that the runtime gives the engine.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import numpy as np
import numpy.typing as npt

from imsconf.sdp.codecs import SUPPORTED, CodecChoice, amr_format, opus_format
from imsconf.sdp.offer_answer import Codec as SdpCodec

from .codecs import Codec, CodecError, make_codec

__all__ = ["L16", "Codec", "CodecError", "CodecFactory", "builtin_codec", "negotiated_codec"]

Int16Array = npt.NDArray[np.int16]
_CANONICAL = {n.upper(): n for n in SUPPORTED}


class CodecFactory(Protocol):
    """Makes a :class:`Codec` for a negotiated format; raises :class:`CodecError` for one it lacks."""

    def __call__(self, name: str, clock_rate: int, params: Mapping[str, str]) -> Codec: ...


class L16:
    """L16 at 16 kHz, mono: 640 octets per 20 ms. Loss concealment repeats the last frame at a falling
    gain, then silence; a payload of another length is corrupt."""

    __slots__ = ("_last", "_misses")
    name = "L16"
    clock_rate = 16000
    sample_rate = 16000
    frame_samples = 320
    timestamp_step = 320
    _FADE = (1.0, 0.8, 0.6, 0.4, 0.2)

    def __init__(self) -> None:
        self._last = np.zeros(self.frame_samples, dtype=np.int16)
        self._misses = 0

    def encode(self, pcm: Int16Array) -> bytes:
        return pcm.astype(">i2").tobytes()

    def decode(self, payload: bytes | None) -> tuple[Int16Array, bool]:
        if payload is None:
            m = self._misses
            self._misses = m + 1
            gain = self._FADE[m] if m < len(self._FADE) else 0.0
            return (self._last * gain).astype(np.int16), True
        if len(payload) != 2 * self.frame_samples:
            raise CodecError(f"L16 frame of {len(payload)} octets")
        pcm = np.frombuffer(payload, dtype=">i2").astype(np.int16)
        self._last = pcm
        self._misses = 0
        return pcm, False


def builtin_codec(name: str, clock_rate: int, params: Mapping[str, str]) -> Codec:
    """The engine's default :class:`CodecFactory`: L16/16000 (mono) only."""
    if name.upper() == "L16" and clock_rate == 16000 and params.get("channels", "1") == "1":
        return L16()
    raise CodecError(f"no codec {name}/{clock_rate}")


def negotiated_codec(name: str, clock_rate: int, params: Mapping[str, str]) -> Codec:
    """A :class:`CodecFactory` over :mod:`imsconf.media.codecs` (AMR, AMR-WB, Opus, G.722) and L16: the
    codec object for a leg's negotiated ``a=rtpmap`` name and clock and its ``a=fmtp`` parameters."""
    canonical = _CANONICAL.get(name.upper())
    if canonical is None:
        return builtin_codec(name, clock_rate, params)
    rtp_clock, channels, _pt = SUPPORTED[canonical]
    if clock_rate != rtp_clock:
        raise CodecError(f"{canonical} runs at a {rtp_clock} Hz clock, not {clock_rate}")
    p = dict(params)
    amr = amr_format(p, wide=canonical == "AMR-WB") if canonical in ("AMR", "AMR-WB") else None
    opus = opus_format(p) if canonical == "opus" else None
    return make_codec(CodecChoice(SdpCodec(canonical, 96, rtp_clock, channels), amr, opus))
