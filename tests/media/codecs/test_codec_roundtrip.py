"""Encode → decode round trips of a tone through every codec keep the tone.

Measure: after 10 frames of warm-up, the windowed spectrum's peak must be the tone's bin (±5 Hz) and
the tone-to-noise ratio (power within ±30 Hz of the peak against everything else) above a floor.
Measured on Debian 12's libraries (1 kHz tone at -10 dBFS): AMR-WB 23.85 kbit/s 36.5 dB, AMR 12.2
39.4 dB, Opus 24 kbit/s 29.5 dB, G.722 47.4 dB, PCMU 37.1 dB; the floors leave about 5 dB of margin.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from imsconf.media.codecs.amr import Amr, AmrSettings
from imsconf.media.codecs.base import Codec, CodecError, Pcm
from imsconf.media.codecs.g711 import G711
from imsconf.media.codecs.g722 import G722
from imsconf.media.codecs.opus import Opus

FRAMES = 50
WARMUP = 10


def tone(freq: float, rate: int, samples: int, amplitude: float = 10000.0) -> Pcm:
    t = np.arange(samples) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def round_trip(codec: Codec, pcm: Pcm) -> Pcm:
    n = codec.frame_samples
    out = []
    for i in range(len(pcm) // n):
        payload = codec.encode(pcm[i * n : (i + 1) * n])
        frame, concealed = codec.decode(payload)
        assert not concealed
        assert frame.shape == (n,) and frame.dtype == np.int16
        out.append(frame)
    return np.concatenate(out)


def spectrum_peak(pcm: Pcm, rate: int) -> tuple[float, float, float]:
    """(peak frequency, tone-to-noise ratio in dB, RMS) of the decoded signal after the warm-up."""
    y = pcm.astype(np.float64)
    power = np.abs(np.fft.rfft(y * np.hanning(len(y)))) ** 2
    freqs = np.fft.rfftfreq(len(y), 1 / rate)
    k = int(np.argmax(power))
    band = np.abs(freqs - freqs[k]) <= 30
    tnr = 10 * np.log10(power[band].sum() / max(power[~band].sum(), 1e-9))
    return float(freqs[k]), float(tnr), float(np.sqrt(np.mean(y**2)))


CASES: list[tuple[str, Callable[[], Codec], float]] = [
    ("AMR-WB bandwidth-efficient", lambda: Amr(AmrSettings(wide=True)), 30.0),
    ("AMR-WB octet-aligned", lambda: Amr(AmrSettings(wide=True, octet_aligned=True)), 30.0),
    ("AMR", lambda: Amr(AmrSettings(wide=False)), 34.0),
    ("opus", Opus, 24.0),
    ("G722", G722, 40.0),
    ("PCMU", lambda: G711("PCMU"), 32.0),
    ("PCMA", lambda: G711("PCMA"), 32.0),
]


@pytest.mark.parametrize(("label", "make", "floor_db"), CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("freq", [440.0, 1000.0])
def test_tone_survives(label: str, make: Callable[[], Codec], floor_db: float, freq: float) -> None:
    codec = make()
    n = codec.frame_samples
    out = round_trip(codec, tone(freq, codec.sample_rate, n * FRAMES))[n * WARMUP :]
    peak, tnr, rms = spectrum_peak(out, codec.sample_rate)
    assert abs(peak - freq) <= 5.0, (label, peak)
    assert tnr >= floor_db, (label, tnr)
    assert rms > 0.5 * 10000 / np.sqrt(2), (label, rms)


def _band_limit_to_8k(pcm16k: Pcm) -> Pcm:
    """Ideal low-pass at 4 kHz and decimation by 2 (a test-only resampler: FFT brick wall)."""
    spec = np.fft.rfft(pcm16k.astype(np.float64))
    freqs = np.fft.rfftfreq(len(pcm16k), 1 / 16000)
    spec[freqs >= 4000] = 0
    return np.fft.irfft(spec, len(pcm16k))[::2].round().astype(np.int16)


def test_g722_passes_6khz_and_pcmu_does_not() -> None:
    src = tone(6000.0, 16000, 320 * FRAMES)
    g722 = G722()
    out = round_trip(g722, src)[320 * WARMUP :]
    peak, tnr, rms = spectrum_peak(out, 16000)
    assert abs(peak - 6000) <= 5 and tnr >= 20.0 and rms > 0.8 * 10000 / np.sqrt(2)
    pcmu = G711("PCMU")
    narrow = round_trip(pcmu, _band_limit_to_8k(src))[160 * WARMUP :]
    assert float(np.sqrt(np.mean(narrow.astype(np.float64) ** 2))) < 10.0  # the 6 kHz tone is gone


def test_opus_at_48k_internal_rate() -> None:
    from imsconf.media.codecs.opus import OpusSettings

    codec = Opus(OpusSettings(sample_rate=48000, max_playback_rate=48000, bitrate=32000))
    assert codec.frame_samples == 960 and codec.timestamp_step == 960
    out = round_trip(codec, tone(1000.0, 48000, 960 * FRAMES))[960 * WARMUP :]
    peak, _, _ = spectrum_peak(out, 48000)
    assert abs(peak - 1000) <= 5


@pytest.mark.parametrize("make", [lambda: Amr(), Opus, G722, lambda: G711("PCMU")])
def test_wrong_frame_size_is_a_codec_error(make: Callable[[], Codec]) -> None:
    codec = make()
    with pytest.raises(CodecError):
        codec.encode(np.zeros(codec.frame_samples + 1, dtype=np.int16))
    with pytest.raises(CodecError):
        codec.encode(np.zeros(codec.frame_samples, dtype=np.float32))


@pytest.mark.parametrize("make", [lambda: Amr(), lambda: Amr(AmrSettings(wide=False)), Opus, G722])
def test_loss_is_concealed_from_history(make: Callable[[], Codec]) -> None:
    """A lost frame after speech decodes to a concealed frame with energy (not silence), flagged."""
    codec = make()
    n = codec.frame_samples
    src = tone(440.0, codec.sample_rate, n * 20)
    round_trip(codec, src)
    frame, concealed = codec.decode(None)
    assert concealed and frame.shape == (n,)
    assert float(np.sqrt(np.mean(frame.astype(np.float64) ** 2))) > 100.0


def test_timestamp_steps() -> None:
    assert (G722().clock_rate, G722().timestamp_step, G722().frame_samples) == (8000, 160, 320)
    assert (Opus().clock_rate, Opus().timestamp_step, Opus().frame_samples) == (48000, 960, 320)
    assert (Amr().clock_rate, Amr().timestamp_step) == (16000, 320)
    assert (G711("PCMA").clock_rate, G711("PCMA").timestamp_step) == (8000, 160)
