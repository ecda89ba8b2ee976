"""PCMU and PCMA (RFC 3551) behind the ``Codec`` seam, over the tables of ``imsconf.media.g711``."""

from __future__ import annotations

import numpy as np

from .. import g711
from .base import FRAME_MS, CodecError, Pcm, check_frame

__all__ = ["G711"]


class G711:
    """A G.711 stream at 8 kHz.  A lost or mis-sized payload decodes to the last frame, attenuated by
    half each time (the simplest waveform repetition; PCMU/PCMA carry no concealment of their own)."""

    sample_rate = 8000
    clock_rate = 8000
    frame_samples = 8000 * FRAME_MS // 1000
    timestamp_step = frame_samples

    def __init__(self, name: str) -> None:
        try:
            self._codec = g711.codec_by_name(name)
        except ValueError as exc:
            raise CodecError(str(exc)) from None
        self.name = self._codec.name
        self._last: Pcm = np.zeros(self.frame_samples, dtype=np.int16)

    def encode(self, pcm: Pcm) -> bytes:
        check_frame(pcm, self.frame_samples, self.name)
        return self._codec.encode_table[pcm.view(np.uint16)].tobytes()

    def decode(self, payload: bytes | None) -> tuple[Pcm, bool]:
        if payload is None or len(payload) != self.frame_samples:
            self._last = (self._last // 2).astype(np.int16)
            return self._last.copy(), True
        pcm = self._codec.decode_table[np.frombuffer(payload, dtype=np.uint8)]
        self._last = pcm
        return pcm.copy(), False
