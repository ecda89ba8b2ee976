from __future__ import annotations

import numpy as np
from media_peer import goertzel, tone

from imsconf.media.g711 import ULAW_ENCODE, ulaw_decode, ulaw_encode
from imsconf.media.mixer import Mixer, decode_batch, encode_rows

FREQS = [400.0, 1000.0, 1700.0, 2300.0, 3100.0]


def frames_for(freqs: list[float], amp: float = 6000.0) -> np.ndarray:
    return np.stack([tone(f, 160, amp=amp) for f in freqs]).astype(np.int32)


def test_n_minus_one_excludes_own_signal() -> None:
    frames = frames_for(FREQS[:3])
    res = Mixer(k=3).mix(frames, np.zeros(3, np.intp), 1)
    assert sorted(res.speakers.tolist()) == [0, 1, 2]
    for row, mix in zip(res.speakers.tolist(), res.speaker_mix, strict=True):
        own = goertzel(mix, FREQS[row])
        others = [goertzel(mix, FREQS[o]) for o in range(3) if o != row]
        assert own < 1.0 and all(o > 5000 for o in others)
    for f in FREQS[:3]:
        assert goertzel(res.common[0], f) > 5000


def test_k_loudest_and_listeners_never_hear_themselves() -> None:
    amps = [9000, 200, 7000, 100, 8000]
    frames = np.stack([tone(f, 160, amp=a) for f, a in zip(FREQS, amps, strict=True)]).astype(np.int32)
    res = Mixer(k=3).mix(frames, np.zeros(5, np.intp), 1)
    assert sorted(res.speakers.tolist()) == [0, 2, 4]
    # quiet participants 1 and 3 get the common mix, which does not contain them
    assert goertzel(res.common[0], FREQS[1]) < 1.0 and goertzel(res.common[0], FREQS[3]) < 1.0


def test_many_conferences_in_one_call_stay_apart() -> None:
    conf = np.array([0, 0, 1, 1, 1, 2], np.intp)
    freqs = [400.0, 1000.0, 1700.0, 2300.0, 3100.0, 700.0]
    frames = frames_for(freqs)
    res = Mixer(k=2).mix(frames, conf, 3)
    assert res.common.shape == (3, 160)
    assert goertzel(res.common[0], 400) > 5000 and goertzel(res.common[0], 1700) < 1.0
    assert goertzel(res.common[2], 700) > 5000 and goertzel(res.common[2], 400) < 1.0
    assert len([c for c in res.speaker_conf.tolist() if c == 1]) == 2  # K = 2 of 3
    lone = res.speakers.tolist().index(5)
    assert np.all(res.speaker_mix[lone] == 0)  # alone in its conference: hears nothing


def test_silence_is_not_a_speaker_and_hysteresis_holds() -> None:
    frames = np.zeros((3, 160), np.int32)
    frames[0] = tone(400, 160, amp=1000)
    frames[1] = tone(1000, 160, amp=1100)
    res = Mixer(k=1).mix(frames, np.zeros(3, np.intp), 1)
    assert res.speakers.tolist() == [1]
    res2 = Mixer(k=1).mix(frames, np.zeros(3, np.intp), 1, prev_speaker=np.array([True, False, False]))
    assert res2.speakers.tolist() == [0]


def test_saturates_to_int16() -> None:
    frames = np.full((3, 160), 30000, np.int32)
    res = Mixer(k=3).mix(frames, np.zeros(3, np.intp), 1)
    assert res.common.dtype == np.int16 and int(res.common.max()) == 32767
    frames = -frames
    assert int(Mixer(k=3).mix(frames, np.zeros(3, np.intp), 1).common.min()) == -32768


def test_empty_tick() -> None:
    res = Mixer().mix(np.zeros((0, 160), np.int32), np.zeros(0, np.intp), 2)
    assert res.common.shape == (2, 160) and not res.common.any() and len(res.speakers) == 0


def test_decode_and_encode_batches() -> None:
    a, b = ulaw_encode(tone(400, 160)), ulaw_encode(tone(1000, 160))
    dec = decode_batch(a + b)
    assert dec.shape == (2, 160) and np.array_equal(dec[1], ulaw_decode(b))
    mixed = decode_batch(a + a, np.array([0, 1], np.intp))
    assert not np.array_equal(mixed[0], mixed[1])  # row 1 read as A-law
    rows = dec.astype(np.int16)
    assert encode_rows(rows, ULAW_ENCODE) == [a, b]
