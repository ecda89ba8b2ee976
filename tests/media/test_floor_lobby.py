"""Floor-controlled audio, lobby and prompts, sans-I/O with a fake clock."""

from __future__ import annotations

import numpy as np
import pytest
from media_peer import deliver, goertzel
from test_group import F, Room, decode

from imsconf.keys.policy import DownlinkMode
from imsconf.media.dtmf import DtmfEvent, TelephoneEvent
from imsconf.media.engine import DtmfReceived, MediaEngineError, PromptFinished
from imsconf.media.g711 import alaw_decode, ulaw_decode
from imsconf.media.prompts import PROMPTS, RATE, register_prompt, spoken_prompt
from imsconf.media.srtp import SrtpReceiver


class Phones:
    """Decrypt what each leg of a Room received, per tick."""

    def __init__(self, room: Room) -> None:
        self.room = room
        self.rx = {leg: SrtpReceiver(keys[0]) for leg, keys in room.keys.items()}
        self.pos = 0
        self.frames: dict[str, list[np.ndarray]] = {leg: [] for leg in room.peers}

    def collect(self) -> None:
        for got in self.room.log[self.pos :]:
            for leg, packets in got.items():
                for data in packets:
                    self.frames[leg].append(decode(self.rx[leg], data)[1])
        self.pos = len(self.room.log)

    def hears(self, leg: str, freq: float, last: int = 20) -> float:
        self.collect()
        return goertzel(np.concatenate(self.frames[leg][-last:]), freq)


def three_talkers_and_a_listener() -> tuple[Room, Phones]:
    room = Room()
    for i in range(3):
        room.add(f"t{i}", F[i])
    room.add("l", None)
    return room, Phones(room)


def test_floor_control_mixes_only_the_holders() -> None:
    room, ph = three_talkers_and_a_listener()
    eng = room.engine
    eng.set_floor_control("c1", True)  # nobody holds the floor yet: nobody is heard
    room.run(20)
    assert all(ph.hears("l", f, last=10) < 60 for f in F[:3])
    eng.set_floor_holders("c1", frozenset({"t1"}))
    room.run(30)
    assert ph.hears("l", F[1]) > 3000 and ph.hears("l", F[0]) < 60 and ph.hears("l", F[2]) < 60
    assert ph.hears("t0", F[1]) > 3000 and ph.hears("t0", F[2]) < 60  # non-holders hear the holder
    assert ph.hears("t1", F[1]) < 60 and ph.hears("t1", F[0]) < 60  # the holder hears neither itself nor them
    eng.set_floor_holders("c1", frozenset({"t0", "t2"}))  # the floor moves
    room.run(30)
    assert ph.hears("l", F[0]) > 3000 and ph.hears("l", F[2]) > 3000 and ph.hears("l", F[1]) < 60
    assert ph.hears("t0", F[2]) > 3000 and ph.hears("t0", F[0]) < 60
    eng.set_floor_control("c1", False)  # open floor: everyone again
    room.run(30)
    assert all(ph.hears("l", f) > 3000 for f in F[:3])


def test_lobby_leg_hears_the_prompt_not_the_conference_and_is_not_heard() -> None:
    room, ph = three_talkers_and_a_listener()
    room.talking["t2"] = False  # two talkers: room among the K=3 speakers once the guest is admitted
    eng = room.engine
    room.add("guest", F[3])  # talks (its tone must not reach the conference)
    ph.rx["guest"] = SrtpReceiver(room.keys["guest"][0])
    ph.frames["guest"] = []
    eng.set_lobby("guest", True)
    eng.play_prompt("guest", "enter-pin")  # looped
    prompt = PROMPTS["enter-pin"]
    n = len(prompt.frames[0])
    room.run(n + 10)
    ph.collect()
    got = ph.frames["guest"]
    want = [ulaw_decode(f) for f in prompt.frames[0]]
    assert len(got) == n + 10
    for i, frame in enumerate(got):  # exactly the prompt, looping, nothing of the conference
        assert np.array_equal(frame, want[i % n]), f"tick {i}"
    assert ph.hears("l", F[3], last=n) < 60 and ph.hears("t0", F[3], last=n) < 60  # not heard
    st = eng.leg_stats("guest")
    assert st.lobby and st.prompt == "enter-pin"
    # DTMF from the lobby still reaches the focus
    peer = room.peers["guest"]
    deliver(
        eng,
        room.port["guest"],
        peer.raw_packet(101, bytes(TelephoneEvent(1, True, 10, 800))),
        room.addr["guest"],
        room.now,
    )
    ev = [e for e in eng.events() if isinstance(e, DtmfReceived)]
    assert ev and ev[0].leg_id == "guest" and ev[0].event == DtmfEvent("1", 100, 10, True)
    # silence in the lobby without a prompt
    eng.play_prompt("guest", None)
    room.run(5)
    ph.collect()
    assert all(not ph.frames["guest"][-i].any() for i in range(1, 6))
    # admitted: hears the conference, is heard
    eng.set_lobby("guest", False)
    room.run(30)
    assert ph.hears("guest", F[0]) > 3000 and ph.hears("l", F[3]) > 3000
    assert not eng.leg_stats("guest").lobby


def test_one_shot_prompt_finishes_and_returns_to_the_conference() -> None:
    room, ph = three_talkers_and_a_listener()
    eng = room.engine
    room.run(10)
    eng.play_prompt("l", "welcome", loop=False)
    n = len(PROMPTS["welcome"].frames[0])
    room.run(n)
    assert eng.events().count(PromptFinished("l", "welcome")) == 0
    ph.collect()
    assert ph.hears("l", 523.25, last=n) > 500 and ph.hears("l", F[0], last=n) < 60
    room.run(1)
    assert PromptFinished("l", "welcome") in eng.events()
    room.run(20)
    assert ph.hears("l", F[0]) > 3000 and eng.leg_stats("l").prompt is None
    with pytest.raises(MediaEngineError):
        eng.play_prompt("l", "no-such-prompt")


def test_prompt_for_a_group_listener_goes_on_its_private_stream() -> None:
    room = Room()
    room.add("t0", F[0])
    room.add("l0", None)
    room.add("l1", None)
    eng = room.engine
    eng.set_downlink_mode("c1", DownlinkMode.GROUP)
    from media_peer import make_keys

    key = make_keys()
    eng.add_group_epoch("c1", 1, key, 0x5555_0001)
    eng.set_listener_stream("l0", 1, speaker_ssrc=0x5555_0002)
    eng.set_listener_stream("l1", 1)
    eng.play_prompt("l0", "beep", loop=True)
    room.run(10)
    rx = SrtpReceiver(key)
    got = [decode(rx, tick["l0"][0]) for tick in room.log]
    assert {s for s, _ in got} == {0x5555_0002}
    assert goertzel(np.concatenate([pcm for _, pcm in got]), 1000.0) > 1000
    assert int.from_bytes(room.log[-1]["l1"][0][8:12], "big") == 0x5555_0001


def test_prompts_are_distinct_whole_frames_in_both_laws() -> None:
    for name in ("enter-pin", "wrong-pin", "welcome", "goodbye", "beep", "one-minute-left"):
        p = PROMPTS[name]
        assert len(p.pcm) % 160 == 0 and len(p.frames[0]) == len(p.frames[1]) == len(p.pcm) // 160
        assert all(len(f) == 160 for f in p.frames[0] + p.frames[1])
        pcmu = np.concatenate([ulaw_decode(f) for f in p.frames[0]])
        pcma = np.concatenate([alaw_decode(f) for f in p.frames[1]])
        assert np.abs(pcmu.astype(int) - p.pcm).max() < 600 and np.abs(pcma.astype(int) - p.pcm).max() < 600
    welcome, goodbye = PROMPTS["welcome"].pcm, PROMPTS["goodbye"].pcm
    assert goertzel(welcome[: RATE // 5], 523.25) > 1000 and goertzel(goodbye[: RATE // 5], 783.99) > 1000
    assert goertzel(PROMPTS["wrong-pin"].pcm[: RATE // 2], 150.0) > 1000
    assert goertzel(PROMPTS["one-minute-left"].pcm[: RATE // 10], 1200.0) > 1000
    custom = register_prompt("test-tone", np.full(100, 1000, dtype=np.int16))
    assert len(custom.frames[0]) == 1 and PROMPTS["test-tone"] is custom
    spoken = spoken_prompt("test-spoken", "one two")  # only when espeak-ng is installed
    assert spoken is None or spoken.duration > 0.2
