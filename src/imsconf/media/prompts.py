"""Announcements the mixer plays to a leg (lobby, PIN collection): generated in code, no files, no network.

Every prompt is 8 kHz 16-bit mono PCM, padded to whole 20 ms frames and pre-encoded for both G.711 laws
at import time, so playing one costs a list lookup per tick. The built-in prompts are distinctive tone
patterns:

============== ===================================================================================
name           sound
============== ===================================================================================
``enter-pin``  two short rising beeps (660 Hz, 880 Hz), then a 1.6 s pause (meant to be looped)
``wrong-pin``  a low buzz (a 150 Hz square-ish tone, 0.6 s), then 0.4 s of silence
``welcome``    a rising three-note chime (C5, E5, G5), each note decaying
``goodbye``    the same chime falling (G5, E5, C5)
``beep``       one 1 kHz beep of 150 ms (e.g. "PIN accepted" or a join tone)
``one-minute-  three short 1.2 kHz pips, then a longer low one (the booked window closes in a
left``         minute)
============== ===================================================================================

Spoken prompts are optional: :func:`spoken_prompt` renders text with ``espeak-ng`` when that program is
installed (a deployment may run it at build time) and registers the result; nothing requires it.
:func:`register_prompt` adds any other 8 kHz PCM announcement under a name.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .g711 import alaw_encode, ulaw_encode
from .mixer import FRAME_SAMPLES

__all__ = ["PROMPTS", "RATE", "Prompt", "get_prompt", "register_prompt", "spoken_prompt"]

RATE = 8000
FloatArray = npt.NDArray[np.float64]
Int16Array = npt.NDArray[np.int16]


@dataclass(frozen=True, slots=True)
class Prompt:
    name: str
    pcm: Int16Array  # whole frames of 8 kHz int16
    frames: tuple[tuple[bytes, ...], tuple[bytes, ...]]  # 160-byte frames per codec id (0 PCMU, 1 PCMA)

    @property
    def duration(self) -> float:
        return len(self.pcm) / RATE


def _note(
    freq: float, dur: float, amp: float = 7000.0, decay: float = 0.0, square: bool = False
) -> FloatArray:
    t = np.arange(round(dur * RATE)) / RATE
    wave = np.sin(2 * np.pi * freq * t)
    if square:  # odd harmonics: a buzz
        wave = wave + np.sin(6 * np.pi * freq * t) / 3 + np.sin(10 * np.pi * freq * t) / 5
    env = np.exp(-decay * t) if decay else np.ones_like(t)
    ramp = min(len(t) // 2, int(0.005 * RATE))  # 5 ms fades: no clicks
    if ramp:
        env[:ramp] *= np.linspace(0.0, 1.0, ramp)
        env[-ramp:] *= np.linspace(1.0, 0.0, ramp)
    out: FloatArray = amp * wave * env
    return out


def _gap(dur: float) -> FloatArray:
    return np.zeros(round(dur * RATE))


def register_prompt(name: str, pcm: npt.NDArray[np.generic]) -> Prompt:
    """Register (or replace) the prompt ``name`` from 8 kHz mono samples (int16, or floats in int16
    units); it is padded with silence to whole 20 ms frames."""
    if not name:
        raise ValueError("a prompt needs a name")
    samples = np.clip(np.round(np.asarray(pcm, dtype=np.float64)), -32768, 32767).astype(np.int16)
    if samples.ndim != 1 or len(samples) == 0:
        raise ValueError("a prompt is a non-empty mono sample array")
    pad = (-len(samples)) % FRAME_SAMPLES
    samples = np.concatenate([samples, np.zeros(pad, dtype=np.int16)])
    samples.flags.writeable = False
    frames = tuple(
        tuple(enc(samples[i : i + FRAME_SAMPLES]) for i in range(0, len(samples), FRAME_SAMPLES))
        for enc in (ulaw_encode, alaw_encode)
    )
    prompt = Prompt(name, samples, (frames[0], frames[1]))
    PROMPTS[name] = prompt
    return prompt


def get_prompt(name: str) -> Prompt:
    try:
        return PROMPTS[name]
    except KeyError:
        raise KeyError(f"no prompt {name!r} (known: {', '.join(sorted(PROMPTS))})") from None


def spoken_prompt(name: str, text: str, voice: str = "en", timeout: float = 20.0) -> Prompt | None:
    """Render ``text`` with espeak-ng (if installed) and register it as ``name``; ``None`` without it."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        return None
    try:
        res = subprocess.run(
            [exe, "-v", voice, "--stdout", text], capture_output=True, timeout=timeout, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    wav = res.stdout
    if len(wav) < 44 or wav[:4] != b"RIFF":
        return None
    rate = int.from_bytes(wav[24:28], "little")
    data = np.frombuffer(wav[44 : 44 + ((len(wav) - 44) // 2) * 2], dtype="<i2").astype(np.float64)
    if rate != RATE and len(data):  # linear resampling is enough for a telephone band announcement
        n = int(len(data) * RATE / rate)
        data = np.interp(np.arange(n) * rate / RATE, np.arange(len(data)), data)
    return register_prompt(name, data)


PROMPTS: dict[str, Prompt] = {}

register_prompt("enter-pin", np.concatenate([_note(660, 0.12), _gap(0.08), _note(880, 0.12), _gap(1.6)]))
register_prompt("wrong-pin", np.concatenate([_note(150, 0.6, amp=5000, square=True), _gap(0.4)]))
register_prompt(
    "welcome",
    np.concatenate([_note(523.25, 0.2, decay=6), _note(659.25, 0.2, decay=6), _note(783.99, 0.35, decay=5)]),
)
register_prompt(
    "goodbye",
    np.concatenate([_note(783.99, 0.2, decay=6), _note(659.25, 0.2, decay=6), _note(523.25, 0.35, decay=5)]),
)
register_prompt("beep", np.concatenate([_note(1000, 0.15), _gap(0.05)]))
register_prompt(
    "one-minute-left",
    np.concatenate(
        [
            *(np.concatenate([_note(1200, 0.1), _gap(0.1)]) for _ in range(3)),
            _note(600, 0.4, decay=3),
            _gap(0.2),
        ]
    ),
)
