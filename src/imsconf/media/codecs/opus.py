"""Opus (RFC 6716) in RTP (RFC 7587): mono, coded and decoded at 16 kHz by default, RTP clock 48000.

Loss: ``decode(None)`` is libopus's PLC; ``recover(next_payload)`` rebuilds the lost frame from the in-band
FEC (LBRR) of the packet after it, which is better than PLC when the sender used ``useinbandfec=1``.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import _codecs
from .base import FRAME_MS, CodecError, Pcm, as_pcm, check_frame

__all__ = ["Opus", "OpusSettings"]

RTP_CLOCK = 48000


@dataclass(frozen=True, slots=True)
class OpusSettings:
    """What the encoder is set to, from our wishes and the peer's fmtp (RFC 7587 §6.1)."""

    sample_rate: int = 16000  # 8000, 12000, 16000, 24000 or 48000
    bitrate: int = 24000
    fec: bool = True  # the peer's useinbandfec=1 (a receiver's wish: it can decode FEC)
    dtx: bool = False  # the peer's usedtx=1
    max_playback_rate: int = 16000  # the peer's maxplaybackrate, capped by our sample rate
    loss_percent: int = 10  # expected loss: how much of the bitrate the FEC may take
    # libopus's complexity 0-10: 5 costs about 100 µs per 20 ms frame at 16 kHz, 10 (the library's
    # default) 250 µs (docs/decisions/0016-codecs.md); Janus's AudioBridge encodes at 4 by default
    complexity: int = 5


class Opus:
    name = "opus"
    clock_rate = RTP_CLOCK
    timestamp_step = RTP_CLOCK * FRAME_MS // 1000

    def __init__(self, settings: OpusSettings | None = None) -> None:
        s = settings or OpusSettings()
        try:
            self._enc = _codecs.OpusEncoder(
                sample_rate=s.sample_rate,
                bitrate=s.bitrate,
                fec=s.fec,
                dtx=s.dtx,
                max_playback_rate=min(s.max_playback_rate, s.sample_rate),
                loss_percent=s.loss_percent,
                complexity=s.complexity,
            )
            self._dec = _codecs.OpusDecoder(sample_rate=s.sample_rate)
        except ValueError as exc:
            raise CodecError(f"opus: {exc}") from None
        self.settings = s
        self.sample_rate = s.sample_rate
        self.frame_samples = s.sample_rate * FRAME_MS // 1000

    def encode(self, pcm: Pcm) -> bytes:
        packet = self._enc.encode(check_frame(pcm, self.frame_samples, self.name))
        # With DTX, a packet of at most 2 octets is a silence frame and need not be sent (RFC 7587 §3.1.3).
        return b"" if self.settings.dtx and len(packet) <= 2 else packet

    def decode(self, payload: bytes | None) -> tuple[Pcm, bool]:
        data, concealed = self._dec.decode(payload, self.frame_samples)
        return as_pcm(data), concealed

    def recover(self, next_payload: bytes) -> Pcm:
        """The lost frame just before ``next_payload``, from its FEC (PLC where it carries none).

        Call it before ``decode(next_payload)``, in place of ``decode(None)``.
        """
        data, _ = self._dec.decode(next_payload, self.frame_samples, fec=True)
        return as_pcm(data)
