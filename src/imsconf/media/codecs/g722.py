"""G.722 at 64 kbit/s (RFC 3551 §4.5.2) through spandsp: 16 kHz audio, RTP clock 8000, 160 octets per
20 ms.  A lost payload is filled in by spandsp's packet loss concealment."""

from __future__ import annotations

from .. import _codecs
from .base import FRAME_MS, Pcm, as_pcm, check_frame

__all__ = ["G722"]


class G722:
    name = "G722"
    sample_rate = 16000
    clock_rate = 8000  # RFC 3551: the historical 8000, although sampled at 16 kHz
    frame_samples = 16000 * FRAME_MS // 1000
    timestamp_step = 8000 * FRAME_MS // 1000
    payload_bytes = frame_samples // 2

    def __init__(self) -> None:
        self._enc = _codecs.G722Encoder()
        self._dec = _codecs.G722Decoder(self.payload_bytes)

    def encode(self, pcm: Pcm) -> bytes:
        return self._enc.encode(check_frame(pcm, self.frame_samples, self.name))

    def decode(self, payload: bytes | None) -> tuple[Pcm, bool]:
        data, concealed = self._dec.decode(payload)
        return as_pcm(data), concealed
