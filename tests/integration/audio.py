"""Tone generation and spectrum checks for real-phone media tests.

``write_tone_wav`` makes the source file for baresip's ``aufile`` (which needs a 16-bit wav whose sample rate
and channel count equal ``ausrc_srate``/``ausrc_channels``, and hangs the call up at end of file: make it
long). ``read_wav`` reads what baresip's ``sndfile`` module recorded (any rate, channels mixed down, 16-bit
PCM or float, tolerating a header whose sizes were never finalised). ``tone_levels`` measures a few
frequencies against the recording's noise floor, ``assert_hears`` turns that into a test verdict
with a readable message.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

__all__ = [
    "NOISE_FLOOR",
    "ToneLevels",
    "assert_hears",
    "read_wav",
    "tone_levels",
    "write_tone_wav",
    "write_wav",
]

NOISE_FLOOR = "floor"  # key of the noise floor in a ToneLevels mapping

FloatArray = npt.NDArray[np.float64]


def write_wav(path: Path, samples: FloatArray, rate: int, channels: int = 1) -> Path:
    """Write *samples* (float, -1..1, mono) as a 16-bit PCM wav, duplicated over *channels*."""
    pcm = np.clip(np.round(samples * 32767.0), -32768, 32767).astype("<i2")
    if channels > 1:
        pcm = np.repeat(pcm[:, None], channels, axis=1).reshape(-1)
    data = pcm.tobytes()
    header = b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVE"
    header += b"fmt " + struct.pack("<IHHIIHH", 16, 1, channels, rate, rate * channels * 2, channels * 2, 16)
    header += b"data" + struct.pack("<I", len(data))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header + data)
    return path


def write_tone_wav(
    path: Path,
    freq: float,
    *,
    seconds: float = 90.0,
    rate: int = 8000,
    channels: int = 1,
    amplitude: float = 0.25,
) -> Path:
    """A pure sine of *freq* Hz, 16-bit.

    Amplitude 0.25 (-12 dBFS) leaves headroom for a mixer summing two tones."""
    n = int(seconds * rate)
    t = np.arange(n, dtype=np.float64) / rate
    return write_wav(path, amplitude * np.sin(2.0 * math.pi * freq * t), rate, channels)


def read_wav(path: Path) -> tuple[FloatArray, int]:
    """(mono float samples in -1..1, sample rate). Accepts PCM 8/16/24/32-bit, float32/64 and EXTENSIBLE wavs.

    A wav still being written (libsndfile fills the sizes in on close) has a zero or too large data size: the
    rest of the file is then taken as data.
    """
    raw = path.read_bytes()
    if len(raw) < 12 or raw[:4] != b"RIFF" or raw[8:12] != b"WAVE":
        raise ValueError(f"{path}: not a RIFF/WAVE file ({len(raw)} bytes)")
    pos = 12
    fmt: tuple[int, int, int, int] | None = None
    data: bytes | None = None
    while pos + 8 <= len(raw):
        cid = raw[pos : pos + 4]
        size = struct.unpack_from("<I", raw, pos + 4)[0]
        body_start = pos + 8
        if cid == b"fmt ":
            tag, ch, rate, _bps, _align, bits = struct.unpack_from("<HHIIHH", raw, body_start)
            if (
                tag == 0xFFFE and size >= 40
            ):  # WAVE_FORMAT_EXTENSIBLE: the real tag starts the sub-format GUID
                tag = struct.unpack_from("<H", raw, body_start + 24)[0]
            fmt = (tag, ch, rate, bits)
        elif cid == b"data":
            end = body_start + size
            if size == 0 or size == 0xFFFFFFFF or end > len(raw):
                end = len(raw)
            data = raw[body_start:end]
            break
        pos = body_start + size + (size & 1)
    if fmt is None or data is None:
        raise ValueError(f"{path}: no fmt/data chunk")
    tag, ch, rate, bits = fmt
    width = bits // 8
    frame = width * ch
    data = data[: len(data) - len(data) % frame] if frame else b""
    if tag == 1 and bits == 16:
        x = np.frombuffer(data, dtype="<i2").astype(np.float64) / 32768.0
    elif tag == 1 and bits == 32:
        x = np.frombuffer(data, dtype="<i4").astype(np.float64) / 2147483648.0
    elif tag == 1 and bits == 8:
        x = (np.frombuffer(data, dtype=np.uint8).astype(np.float64) - 128.0) / 128.0
    elif tag == 1 and bits == 24:
        b = np.frombuffer(data, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        v = np.where(v >= 1 << 23, v - (1 << 24), v)
        x = v.astype(np.float64) / float(1 << 23)
    elif tag == 3 and bits == 32:
        x = np.frombuffer(data, dtype="<f4").astype(np.float64)
    elif tag == 3 and bits == 64:
        x = np.frombuffer(data, dtype="<f8").astype(np.float64)
    else:
        raise ValueError(f"{path}: unsupported wav format tag={tag} bits={bits}")
    if ch > 1:
        x = x.reshape(-1, ch).mean(axis=1)
    return x, rate


@dataclass(frozen=True)
class ToneLevels:
    """Levels in dB relative to full scale of the tones asked for, plus the median noise floor."""

    levels: Mapping[float, float]
    floor: float
    seconds: float  # length of the analysed part
    rate: int
    rms_db: float

    def __getitem__(self, freq: float) -> float:
        return self.levels[freq]

    def describe(self) -> str:
        tones = ", ".join(f"{f:g} Hz: {v:.1f} dB" for f, v in sorted(self.levels.items()))
        return (
            f"{tones}; noise floor {self.floor:.1f} dB; rms {self.rms_db:.1f} dBFS; "
            f"{self.seconds:.2f} s analysed at {self.rate} Hz"
        )


def _db(p: float) -> float:
    return 10.0 * math.log10(max(p, 1e-20))


def spectrum_levels(
    x: FloatArray, rate: int, freqs: Iterable[float], *, band_hz: float = 8.0
) -> tuple[dict[float, float], float]:
    """Peak power (dB re a full-scale sine) within +-band_hz of each frequency, and the median bin power in
    100..3400 Hz (the noise floor)."""
    n = len(x)
    win = np.hanning(n)
    spec = np.fft.rfft(x * win)
    # normalise so that a full-scale sine reads 0 dB at its bin
    power = (np.abs(spec) / (win.sum() / 2.0)) ** 2
    bins = np.fft.rfftfreq(n, 1.0 / rate)
    out: dict[float, float] = {}
    for f in freqs:
        sel = (bins >= f - band_hz) & (bins <= f + band_hz)
        out[f] = _db(float(power[sel].max())) if sel.any() else -200.0
    band = (bins >= 100.0) & (bins <= min(3400.0, rate / 2.0 - 1.0))
    floor = _db(float(np.median(power[band]))) if band.any() else -200.0
    return out, floor


def tone_levels(
    wav_path: Path,
    freqs: Sequence[float],
    skip_seconds: float = 2.0,
    *,
    max_seconds: float | None = None,
    last_seconds: float | None = None,
    drop_last_seconds: float = 0.0,
) -> ToneLevels:
    """Levels of *freqs* in the recording at *wav_path*.

    The first *skip_seconds* (call setup, jitter buffer fill) are ignored, at most *max_seconds* after that
    are analysed. With *last_seconds*, the window is counted from the end instead: the *last_seconds* before
    the final *drop_last_seconds* (for a recording whose end is known, e.g. the hang-up, better than its
    start)."""
    x, rate = read_wav(wav_path)
    if last_seconds is not None:
        end = max(0, len(x) - int(drop_last_seconds * rate))
        x = x[max(0, end - int(last_seconds * rate)) : end]
    else:
        x = x[int(skip_seconds * rate) :]
        if max_seconds is not None:
            x = x[: int(max_seconds * rate)]
    if len(x) < rate // 2:
        raise AssertionError(
            f"{wav_path}: only {len(x) / rate:.2f} s of audio to analyse "
            f"({wav_path.stat().st_size} bytes, {rate} Hz)"
        )
    rms = float(np.sqrt(np.mean(x**2)))
    levels, floor = spectrum_levels(x, rate, freqs)
    return ToneLevels(levels, floor, len(x) / rate, rate, 20.0 * math.log10(max(rms, 1e-10)))


def assert_hears(
    levels: ToneLevels,
    present: Sequence[float],
    absent: Sequence[float] = (),
    *,
    margin_db: float = 20.0,
    who: str = "",
) -> None:
    """Every *present* tone is >= margin_db above the noise floor, and the weakest present tone is
    >= margin_db above every *absent* tone (with nothing present, absent tones must stay near the floor)."""
    problems: list[str] = []
    for f in present:
        if levels[f] < levels.floor + margin_db:
            problems.append(
                f"{f:g} Hz should be heard but is only {levels[f] - levels.floor:.1f} dB above the floor"
            )
    if present and absent:
        weakest = min(levels[f] for f in present)
        for f in absent:
            if weakest - levels[f] < margin_db:
                problems.append(
                    f"{f:g} Hz should NOT be heard but is only {weakest - levels[f]:.1f} dB below "
                    f"the weakest present tone (need {margin_db:g} dB)"
                )
    elif absent:
        for f in absent:
            if levels[f] > levels.floor + margin_db:
                problems.append(
                    f"{f:g} Hz should NOT be heard but is {levels[f] - levels.floor:.1f} dB above floor"
                )
    if problems:
        prefix = f"{who}: " if who else ""
        raise AssertionError(prefix + "; ".join(problems) + f" [{levels.describe()}]")


def pcmu_encode(samples: FloatArray) -> bytes:
    """G.711 mu-law encoding of float samples (-1..1), for known-plaintext payloads in self-tests."""
    bias = 0x84
    clip = 32635
    s = np.clip(np.round(samples * 32767.0), -32768, 32767).astype(np.int32)
    sign = np.where(s < 0, 0x80, 0)
    mag = np.minimum(np.abs(s), clip) + bias
    exponent = np.floor(np.log2(mag)).astype(np.int32) - 7
    exponent = np.clip(exponent, 0, 7)
    mantissa = (mag >> (exponent + 3)) & 0x0F
    out = ~(sign | (exponent << 4) | mantissa) & 0xFF
    return bytes(out.astype(np.uint8).tobytes())


def pcmu_decode(data: bytes) -> FloatArray:
    """G.711 mu-law bytes -> float samples (-1..1)."""
    u = ~np.frombuffer(data, dtype=np.uint8).astype(np.int32) & 0xFF
    sign = u & 0x80
    exponent = (u >> 4) & 0x07
    mantissa = u & 0x0F
    mag = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return np.where(sign != 0, -mag, mag).astype(np.float64) / 32768.0
