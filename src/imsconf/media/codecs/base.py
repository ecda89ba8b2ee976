"""The seam every voice codec implements (``Codec``), its error, and the PCM type.

A codec object is stateful and belongs to one direction of one stream: an encoder's and a decoder's
history (prediction, concealment, DTX) are per stream, so a leg holds its own pair.  PCM is mono int16
at ``sample_rate``; one frame is ``frame_samples`` samples (20 ms); the RTP timestamp advances by
``clock_rate`` times 20 ms per frame, which differs from the sample count for G.722 (RFC 3551 §4.5.2: clock
8000, sampled at 16 kHz) and Opus (RFC 7587: clock 48000 whatever the internal rate).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import numpy.typing as npt

__all__ = ["FRAME_MS", "Codec", "CodecError", "Pcm", "as_pcm", "check_frame"]

Pcm = npt.NDArray[np.int16]
FRAME_MS = 20


class CodecError(Exception):
    """A payload or a PCM frame a codec cannot take (the only exception a codec raises on purpose)."""


class Codec(Protocol):
    @property
    def name(self) -> str:
        """The RTP encoding name (``a=rtpmap``), e.g. ``AMR-WB``."""
        ...

    @property
    def clock_rate(self) -> int:
        """The RTP timestamp clock."""
        ...

    @property
    def sample_rate(self) -> int:
        """The rate of the PCM that ``encode`` takes and ``decode`` returns."""
        ...

    @property
    def frame_samples(self) -> int:
        """Samples per 20 ms frame at ``sample_rate``."""
        ...

    @property
    def timestamp_step(self) -> int:
        """RTP timestamp units per 20 ms frame."""
        ...

    def encode(self, pcm: Pcm) -> bytes:
        """One RTP payload for one frame; ``b""`` when discontinuous transmission sends nothing."""
        ...

    def decode(self, payload: bytes | None) -> tuple[Pcm, bool]:
        """The PCM of one RTP payload (``None``: the packet was lost) and whether it was concealed.

        Never raises on the payload's content: garbage gives a concealed frame.  A payload that carries
        several frames (AMR) gives all of them, concatenated.
        """
        ...


def as_pcm(data: bytes) -> Pcm:
    """A library's int16 output as a writable PCM array."""
    return np.frombuffer(data, dtype=np.int16).copy()


def check_frame(pcm: Pcm, samples: int, name: str) -> bytes:
    """The bytes of one frame of exactly ``samples`` int16 samples, or ``CodecError``."""
    if pcm.dtype != np.int16 or pcm.ndim != 1 or pcm.shape[0] != samples:
        raise CodecError(f"{name} encodes frames of {samples} int16 samples, got {pcm.dtype} {pcm.shape}")
    return pcm.tobytes()
