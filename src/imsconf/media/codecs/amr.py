"""AMR (narrowband, 8 kHz) and AMR-WB (16 kHz) in RTP, RFC 4867: both payload layouts, one frame per
packet sent, any number of frames received.

The libraries read and write the storage format of RFC 4867 §5 (a header octet ``0 FT Q 0 0`` and the
speech bits in the same order as in the payload, octet-padded); this module turns that into payloads:

- octet-aligned (§4.4): ``CMR(4) R(4)``, one ToC octet per frame ``F FT(4) Q P P``, each frame's speech
  bits padded to an octet;
- bandwidth-efficient (§4.3): ``CMR(4)``, 6-bit ToC entries ``F FT(4) Q``, the speech bits of all frames
  back to back, the whole padded to an octet.

CMR (codec mode request) 15 means "no request".  A peer's CMR lowers our mode to the highest mode of the
mode-set not above it; ``mode-change-period`` and ``mode-change-neighbor`` are obeyed on the way there.
SID frames (comfort noise) are decoded; NO_DATA entries continue the comfort noise; a lost or corrupt
frame is concealed by the decoder.  With DTX, a frame the encoder does not send gives ``b""``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .. import _codecs
from .base import FRAME_MS, CodecError, Pcm, as_pcm, check_frame

__all__ = ["AMR_NB_BITS", "AMR_WB_BITS", "Amr", "AmrSettings", "pack_payload", "unpack_payload"]

# Speech bits per frame type (RFC 4867 §3.6 and 3GPP TS 26.201 / 26.101); SID is FT 9 (WB) / 8 (NB).
AMR_WB_BITS: tuple[int, ...] = (132, 177, 253, 285, 317, 365, 397, 461, 477, 40)
AMR_NB_BITS: tuple[int, ...] = (95, 103, 118, 134, 148, 159, 204, 244, 39)
NO_DATA = 15
SPEECH_LOST = 14  # AMR-WB only
NO_REQUEST = 15
MAX_FRAMES = 16  # more ToC entries than this in one packet is taken as garbage


@dataclass(frozen=True, slots=True)
class Frame:
    """One ToC entry and its speech bits (``data``: the bits left-aligned, octet-padded)."""

    ft: int
    q: bool
    data: bytes


def _bits(wide: bool, ft: int) -> int:
    table = AMR_WB_BITS if wide else AMR_NB_BITS
    if ft < len(table):
        return table[ft]
    if ft == NO_DATA or (wide and ft == SPEECH_LOST):
        return 0
    raise CodecError(f"AMR{'-WB' if wide else ''} frame type {ft} is reserved")


def pack_payload(wide: bool, octet_aligned: bool, cmr: int, frames: Sequence[Frame]) -> bytes:
    """An RFC 4867 payload (no interleaving, no CRC) of ``frames``, in either layout."""
    if not frames:
        raise CodecError("an AMR payload has at least one ToC entry")
    if octet_aligned:
        out = bytearray([(cmr & 0x0F) << 4])
        for i, f in enumerate(frames):
            more = i < len(frames) - 1
            out.append((more << 7) | (f.ft << 3) | (f.q << 2))
        for f in frames:
            out += f.data[: (_bits(wide, f.ft) + 7) // 8]
        return bytes(out)
    acc, n = cmr & 0x0F, 4
    for i, f in enumerate(frames):
        more = i < len(frames) - 1
        acc = (acc << 6) | (more << 5) | (f.ft << 1) | f.q
        n += 6
    for f in frames:
        nbits = _bits(wide, f.ft)
        if nbits:
            whole = int.from_bytes(f.data[: (nbits + 7) // 8].ljust((nbits + 7) // 8, b"\0"), "big")
            acc = (acc << nbits) | (whole >> ((-nbits) % 8))
            n += nbits
    pad = (-n) % 8
    return (acc << pad).to_bytes((n + pad) // 8, "big")


def unpack_payload(wide: bool, octet_aligned: bool, payload: bytes) -> tuple[int, list[Frame]]:
    """CMR and frames of an RFC 4867 payload; ``CodecError`` for anything malformed."""
    if not payload:
        raise CodecError("empty AMR payload")
    if octet_aligned:
        cmr = payload[0] >> 4
        toc: list[tuple[int, bool]] = []
        pos = 1
        while True:
            if pos >= len(payload) or len(toc) >= MAX_FRAMES:
                raise CodecError("AMR ToC runs past the payload")
            b = payload[pos]
            pos += 1
            toc.append(((b >> 3) & 0x0F, bool(b & 0x04)))
            if not b & 0x80:
                break
        frames = []
        for ft, q in toc:
            size = (_bits(wide, ft) + 7) // 8
            if pos + size > len(payload):
                raise CodecError("AMR frame runs past the payload")
            frames.append(Frame(ft, q, payload[pos : pos + size]))
            pos += size
        if pos != len(payload):
            raise CodecError(f"{len(payload) - pos} octets after the last AMR frame")
        return cmr, frames
    total = len(payload) * 8
    acc = int.from_bytes(payload, "big")

    def take(start: int, count: int) -> int:
        if start + count > total:
            raise CodecError("AMR payload too short for its ToC")
        return (acc >> (total - start - count)) & ((1 << count) - 1)

    cmr = take(0, 4)
    pos = 4
    entries: list[tuple[int, bool]] = []
    while True:
        if len(entries) >= MAX_FRAMES:
            raise CodecError("too many AMR ToC entries")
        e = take(pos, 6)
        pos += 6
        entries.append(((e >> 1) & 0x0F, bool(e & 1)))
        if not e & 0x20:
            break
    frames = []
    for ft, q in entries:
        nbits = _bits(wide, ft)
        bits = take(pos, nbits) if nbits else 0
        pos += nbits
        pad = (-nbits) % 8
        frames.append(Frame(ft, q, (bits << pad).to_bytes((nbits + pad) // 8, "big")))
    if total - pos >= 8:
        raise CodecError("more than the padding after the last AMR frame")
    return cmr, frames


@dataclass(frozen=True, slots=True)
class AmrSettings:
    """The payload format and mode rules negotiated in SDP (RFC 4867 §8.1)."""

    wide: bool = True
    octet_aligned: bool = False
    mode_set: tuple[int, ...] = field(default_factory=tuple)  # empty: every mode
    mode_change_period: int = 1
    mode_change_neighbor: bool = False
    dtx: bool = False


class Amr:
    """An AMR or AMR-WB stream: vo-amrwbenc / opencore-amrnb encoder, opencore decoder."""

    def __init__(self, settings: AmrSettings | None = None) -> None:
        s = settings or AmrSettings()
        top = 8 if s.wide else 7
        modes = tuple(sorted(set(s.mode_set))) or tuple(range(top + 1))
        if any(not 0 <= m <= top for m in modes):
            raise CodecError(f"mode-set {s.mode_set} has a mode outside 0-{top}")
        self.settings = s
        self.modes = modes
        self.name = "AMR-WB" if s.wide else "AMR"
        self.sample_rate = self.clock_rate = 16000 if s.wide else 8000
        self.frame_samples = self.timestamp_step = self.sample_rate * FRAME_MS // 1000
        self.mode = modes[-1]  # the highest mode allowed, until the peer asks for less
        self.requested = NO_REQUEST
        self._frames_since_change = 0
        if s.wide:
            self._enc: _codecs.AmrWbEncoder | _codecs.AmrNbEncoder = _codecs.AmrWbEncoder(dtx=s.dtx)
            self._dec: _codecs.AmrWbDecoder | _codecs.AmrNbDecoder = _codecs.AmrWbDecoder()
        else:
            self._enc = _codecs.AmrNbEncoder(dtx=s.dtx)
            self._dec = _codecs.AmrNbDecoder()

    def _target_mode(self) -> int:
        if self.requested == NO_REQUEST or self.requested > self.modes[-1]:
            return self.modes[-1]
        below = [m for m in self.modes if m <= self.requested]
        return below[-1] if below else self.modes[0]

    def _step_mode(self) -> None:
        self._frames_since_change += 1
        target = self._target_mode()
        if target == self.mode or self._frames_since_change < self.settings.mode_change_period:
            return
        if self.settings.mode_change_neighbor:
            i = self.modes.index(self.mode) if self.mode in self.modes else 0
            target = self.modes[i + 1] if target > self.mode else self.modes[max(i - 1, 0)]
        self.mode = target
        self._frames_since_change = 0

    def encode(self, pcm: Pcm) -> bytes:
        self._step_mode()
        try:
            stored = self._enc.encode(check_frame(pcm, self.frame_samples, self.name), self.mode)
        except RuntimeError as exc:
            raise CodecError(str(exc)) from None
        ft, q = (stored[0] >> 3) & 0x0F, bool(stored[0] & 0x04)
        if ft == NO_DATA:
            return b""
        s = self.settings
        return pack_payload(s.wide, s.octet_aligned, NO_REQUEST, [Frame(ft, q, stored[1:])])

    def decode(self, payload: bytes | None) -> tuple[Pcm, bool]:
        if payload is None:
            return self._one(None)
        try:
            cmr, frames = unpack_payload(self.settings.wide, self.settings.octet_aligned, payload)
        except CodecError:
            return self._one(None)
        if cmr != NO_REQUEST:
            self.requested = cmr
        outs, concealed = [], False
        for f in frames:
            pcm, c = self._one(bytes([(f.ft << 3) | (f.q << 2)]) + f.data)
            outs.append(pcm)
            concealed |= c
        return (outs[0] if len(outs) == 1 else np.concatenate(outs)), concealed

    def _one(self, stored: bytes | None) -> tuple[Pcm, bool]:
        data, concealed = self._dec.decode(stored)
        return as_pcm(data), concealed
