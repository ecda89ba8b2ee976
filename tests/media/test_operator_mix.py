"""Operator control on the media side, sans-I/O: mute and deaf per leg (with real tones and a Goertzel
detector), speaking events with their hysteresis, the mixer's figures and the RTCP figures per leg. Each
audio check runs through the C play-out path and through the Python one."""

from __future__ import annotations

import random
from collections.abc import Iterator

import numpy as np
import pytest
from media_peer import Peer, deliver, goertzel, make_keys

from imsconf.keys.policy import DownlinkMode
from imsconf.media.dtmf import DtmfEvent, TelephoneEvent
from imsconf.media.engine import (
    DtmfReceived,
    LegConfig,
    MediaEngine,
    MediaEngineError,
    MediaEvent,
    SpeakingChanged,
)
from imsconf.media.events import TICK_SECONDS_BOUNDS, MixerStats
from imsconf.media.fastpath import extension_loaded
from imsconf.media.g711 import ulaw_decode
from imsconf.media.rtp import ReceiverReport, ReportBlock, parse_rtp_fast, serialize_rtcp
from imsconf.media.srtp import SrtpKeys, SrtpReceiver, SrtpSender
from imsconf.sdp.direction import Direction
from peers import in_ci

T = 0.020
F = [400.0, 1000.0, 1600.0, 2200.0]  # whole cycles per 20 ms frame
SILENT = 60.0  # Goertzel amplitude below which a tone is absent
LOUD = 3000.0


@pytest.fixture(params=[True, False], ids=["c-path", "python-path"])
def c_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[bool]:
    on = bool(request.param)
    if on and not extension_loaded():
        if in_ci():
            pytest.fail("imsconf.media._fastpath was not built")
        pytest.skip("the C extension is not built here")
    monkeypatch.setenv("IMSCONF_FASTPATH", "1" if on else "0")
    yield on


class Room:
    """One engine, in-memory phones that decode what they get on their own key (or a group key)."""

    def __init__(self, conference: str = "c1") -> None:
        self.engine = MediaEngine(rng=random.Random(3), rtcp_interval=3600.0)
        self.conf = conference
        self.peers: dict[str, Peer] = {}
        self.port: dict[str, int] = {}
        self.addr: dict[str, tuple[str, int]] = {}
        self.keys: dict[str, tuple[SrtpKeys, SrtpKeys]] = {}
        self.talking: dict[str, bool] = {}
        self.rx: dict[str, SrtpReceiver] = {}
        self.now = 0.0
        self.log: list[dict[str, list[bytes]]] = []
        self.events: list[MediaEvent] = []
        self.pcm: dict[tuple[int, str], np.ndarray] = {}

    def add(self, leg: str, freq: float | None, conference: str | None = None) -> str:
        n = len(self.peers)
        port, addr = 30000 + 2 * n, ("192.0.2.1", 6000 + 2 * n)
        tx, rx = make_keys(), make_keys()
        self.engine.add_leg(leg, conference or self.conf, port, port, rtcp_mux=True)
        self.engine.configure_leg(leg, LegConfig(addr, None, 0, "PCMU", 101), tx, rx, self.now)
        self.peers[leg] = Peer(freq or 400.0, send_keys=rx, recv_keys=None)
        self.rx[leg] = SrtpReceiver(tx)
        self.port[leg], self.addr[leg], self.keys[leg] = port, addr, (tx, rx)
        self.talking[leg] = freq is not None
        return leg

    def run(self, ticks: int) -> None:
        by_port = {p: leg for leg, p in self.port.items()}
        for _ in range(ticks):
            for leg, on in self.talking.items():
                if on:
                    deliver(
                        self.engine, self.port[leg], self.peers[leg].next_packet(), self.addr[leg], self.now
                    )
            got: dict[str, list[bytes]] = {leg: [] for leg in self.peers}
            for port, data, _dst in self.engine.tick(self.now):
                if not 192 <= data[1] <= 223:
                    got[by_port[port]].append(data)
            self.log.append(got)
            self.events.extend(self.engine.events())
            self.now += T

    def heard(self, leg: str, last: int = 20, rx: SrtpReceiver | None = None) -> np.ndarray:
        """What the leg's phone decoded over the last ticks (its own key unless ``rx``)."""
        rx = rx or self.rx[leg]
        frames = []
        for n in range(max(0, len(self.log) - last), len(self.log)):
            got = self.log[n][leg]
            assert len(got) == 1, "one packet per tick"
            pcm = self.pcm.get((n, leg))
            if pcm is None:  # each packet is decrypted once (SRTP replay protection)
                pcm = self.pcm[(n, leg)] = ulaw_decode(parse_rtp_fast(rx.unprotect(got[0]))[5])
            frames.append(pcm)
        return np.concatenate(frames)

    def speaking(self) -> list[tuple[str, bool]]:
        return [(e.leg_id, e.speaking) for e in self.events if isinstance(e, SpeakingChanged)]


def test_a_muted_tone_leaves_the_others_mix_and_a_deaf_leg_hears_silence(c_path: bool) -> None:
    room = Room()
    for i in range(3):
        room.add(f"t{i}", F[i])
    assert room.engine.c_path == c_path
    room.run(20)
    assert goertzel(room.heard("t1"), F[0]) > LOUD and goertzel(room.heard("t2"), F[0]) > LOUD  # before
    room.engine.set_leg_mix("t0", muted=True, deaf=False)
    room.run(20)
    for other in ("t1", "t2"):
        assert goertzel(room.heard(other), F[0]) < SILENT, f"{other} still hears the muted leg"
    assert goertzel(room.heard("t1"), F[2]) > LOUD  # the others still hear each other
    assert goertzel(room.heard("t0"), F[1]) > LOUD  # the muted leg still hears the conference
    st = room.engine.leg_stats("t0")
    assert st.muted and not st.deaf and st.received == 40  # its packets still count
    room.engine.set_leg_mix("t0", muted=False, deaf=True)
    room.run(20)
    assert goertzel(room.heard("t1"), F[0]) > LOUD  # unmuted: heard again
    silence = room.heard("t0")  # deaf: one packet per tick, all silence
    assert len(silence) == 20 * 160 and not silence.any()
    room.engine.set_leg_mix("t0", muted=False, deaf=False)
    room.run(20)
    assert goertzel(room.heard("t0"), F[1]) > LOUD and goertzel(room.heard("t0"), F[2]) > LOUD


def test_mute_and_deaf_survive_updates_and_are_idempotent(c_path: bool) -> None:
    room = Room()
    for i in range(3):
        room.add(f"t{i}", F[i])
    eng = room.engine
    for _ in range(2):
        eng.set_leg_mix("t0", muted=True, deaf=True)
    eng.update_leg("t0", direction=Direction.SENDONLY)
    eng.update_leg("t0", direction=Direction.SENDRECV)  # a re-INVITE: hold and back
    tx, rx = room.keys["t0"]
    eng.configure_leg("t0", LegConfig(room.addr["t0"], None, 0, "PCMU", 101), tx, rx, room.now)
    room.rx["t0"] = SrtpReceiver(tx)
    room.run(20)
    assert goertzel(room.heard("t1"), F[0]) < SILENT
    assert not room.heard("t0").any()
    st = eng.leg_stats("t0")
    assert st.muted and st.deaf
    with pytest.raises(MediaEngineError):
        eng.set_leg_mix("nobody", muted=True, deaf=False)


def test_a_muted_legs_dtmf_still_arrives_and_a_deaf_leg_still_hears_prompts() -> None:
    room = Room()
    room.add("t0", F[0])
    room.add("t1", F[1])
    eng = room.engine
    eng.set_leg_mix("t0", muted=True, deaf=True)
    room.run(5)
    peer = room.peers["t0"]
    for d, end in ((160, False), (320, True), (320, True)):
        pkt = peer.raw_packet(101, bytes(TelephoneEvent(5, end, 10, d)), ts=4242)
        deliver(eng, room.port["t0"], pkt, room.addr["t0"], room.now)
    room.run(5)
    dtmf = [e.event for e in room.events if isinstance(e, DtmfReceived)]
    assert dtmf == [DtmfEvent("5", 20, 10, False), DtmfEvent("5", 40, 10, True)]
    eng.play_prompt("t0", "beep", loop=True)
    room.run(10)
    assert room.heard("t0", last=10).any()  # the prompt plays to a deaf leg
    eng.play_prompt("t0", None)
    room.run(5)
    assert not room.heard("t0", last=4).any()  # and silence again once it stops


def test_a_deaf_group_listener_gets_its_private_silent_stream() -> None:
    room = Room()
    for i in range(2):
        room.add(f"t{i}", F[i])
    for i in range(2):
        room.add(f"l{i}", None)
    eng = room.engine
    eng.set_downlink_mode("c1", DownlinkMode.GROUP)
    key = make_keys()
    eng.add_group_epoch("c1", 1, key, 0x1111_0001)
    for leg in ("l0", "l1", "t0"):
        eng.set_listener_stream(leg, 1)
    eng.set_leg_mix("l0", muted=False, deaf=True)
    eng.set_leg_mix("t0", muted=False, deaf=True)  # a deaf speaker on the epoch: one packet, silent
    room.run(20)
    rx_l0, rx_l1, rx_t0 = SrtpReceiver(key), SrtpReceiver(key), SrtpReceiver(key)
    for got in room.log:
        assert len(got["l0"]) == 1 and len(got["t0"]) == 1
        assert int.from_bytes(got["l1"][0][8:12], "big") == 0x1111_0001  # l1 on the common stream
        assert int.from_bytes(got["l0"][0][8:12], "big") != 0x1111_0001  # l0 on its private stream
    assert not room.heard("l0", rx=rx_l0).any() and not room.heard("t0", rx=rx_t0).any()
    assert goertzel(room.heard("l1", rx=rx_l1), F[0]) > LOUD
    eng.set_leg_mix("l0", muted=False, deaf=False)
    room.run(5)
    assert int.from_bytes(room.log[-1]["l0"][0][8:12], "big") == 0x1111_0001  # back on the common one


def test_speaking_changes_with_hysteresis_and_never_for_the_muted() -> None:
    room = Room()
    room.add("t0", F[0])
    room.add("t1", F[1])
    room.add("q", None)
    t0 = room.engine.leg_map["t0"]
    first_chosen = -1
    while not room.speaking():
        room.run(1)
        if first_chosen < 0 and t0.chosen_tick > 0:
            first_chosen = t0.chosen_tick
        assert len(room.log) < 10
    assert room.engine.ticks == first_chosen + 1  # chosen on two consecutive ticks
    assert sorted(room.speaking()) == [("t0", True), ("t1", True)]
    room.run(20)
    assert len(room.speaking()) == 2  # changes only, no event per tick
    room.talking["t1"] = False
    stopped = len(room.log)
    while room.speaking()[-1] != ("t1", False):
        room.run(1)
    assert 15 <= len(room.log) - stopped <= 25  # 300 ms after its last frame was played out
    assert len(room.speaking()) == 3
    room.engine.set_leg_mix("t0", muted=True, deaf=False)
    assert room.engine.events() == [SpeakingChanged("t0", "c1", False)]  # at once
    room.run(30)
    assert room.speaking()[-1] == ("t1", False)  # the muted leg never speaks again
    room.engine.set_leg_mix("t0", muted=False, deaf=False)
    room.run(10)
    assert room.speaking()[-1] == ("t0", True)
    ev = [e for e in room.events if isinstance(e, SpeakingChanged)][-1]
    assert ev.conference_id == "c1"


def test_the_quiet_time_is_300_ms() -> None:
    room = Room()
    room.add("t0", F[0])
    room.add("q", None)
    room.run(10)
    room.talking["t0"] = False
    while room.speaking()[-1] != ("t0", False):
        assert room.engine.ticks - room.engine.leg_map["t0"].chosen_tick < 15
        room.run(1)
        assert len(room.log) < 100
    assert room.engine.ticks - room.engine.leg_map["t0"].chosen_tick == 15  # 15 ticks of 20 ms unchosen


def test_mixer_stats_sum_live_and_released_legs() -> None:
    room = Room()
    room.add("t0", F[0])
    room.add("t1", F[1])
    room.add("x", F[2], conference="c2")
    eng = room.engine
    assert eng.mixer_stats() == MixerStats(legs=3, conferences=2)
    room.run(10)
    bad = bytearray(room.peers["t0"].next_packet())
    bad[20] ^= 1
    deliver(eng, room.port["t0"], bytes(bad), room.addr["t0"], room.now)
    eng.remove_leg("t1")
    room.talking.pop("t1")
    room.run(5)
    st = eng.mixer_stats()
    assert (st.legs, st.conferences, st.ticks) == (2, 2, 15)
    assert st.rtp_received == 15 + 10 + 15 and st.rtp_sent == 15 + 10 + 15  # t0, t1 (released), x
    assert st.srtp_auth_failures == 1 and st.srtp_replays == 0
    assert st.tick_seconds_buckets == (0,) * (len(TICK_SECONDS_BOUNDS) + 1)  # nothing measured here
    for seconds in (0.0001, 0.0015, 0.0015, 0.03, 0.5):
        eng.record_tick(seconds)
    eng.record_tick(0.004, late=3)
    st = eng.mixer_stats()
    assert st.tick_seconds_buckets == (1, 1, 3, 4, 4, 4, 5, 6)
    assert st.late_ticks == 3 and st.tick_seconds_sum == pytest.approx(0.5371)


def test_receiver_reports_give_loss_and_jitter_per_leg() -> None:
    room = Room()
    room.add("t0", F[0])
    room.add("t1", F[1])
    eng = room.engine
    room.run(3)
    st = eng.leg_stats("t0")
    assert st.rtcp_loss is None and st.rtcp_jitter_ms is None
    peer = room.peers["t0"]
    sender = SrtpSender(room.keys["t0"][1])
    block = ReportBlock(st.ssrc, 64, 3, 1000, 80)  # 64/256 lost, jitter 80 timestamp units
    rtcp = sender.protect_rtcp(serialize_rtcp([ReceiverReport(peer.ssrc, (block,))]))
    deliver(eng, room.port["t0"], rtcp, room.addr["t0"], room.now)
    st = eng.leg_stats("t0")
    assert st.rtcp_loss == 0.25 and st.rtcp_jitter_ms == 10.0


def scripted(
    monkeypatch: pytest.MonkeyPatch, c_path: bool
) -> tuple[list[np.ndarray], list[tuple[int, str, bool]]]:
    monkeypatch.setenv("IMSCONF_FASTPATH", "1" if c_path else "0")
    room = Room()
    for i in range(4):
        room.add(f"t{i}", F[i])
    room.add("q", None)
    assert room.engine.c_path == c_path
    speaking: list[tuple[int, str, bool]] = []
    script = {
        5: ("t0", True, False),
        15: ("t1", False, True),
        25: ("t0", False, False),
        35: ("t3", True, True),
    }
    for n in range(50):
        if n in script:
            leg, muted, deaf = script[n]
            room.engine.set_leg_mix(leg, muted=muted, deaf=deaf)
        if n == 30:
            room.talking["t2"] = False
        room.run(1)
        speaking += [(n, e.leg_id, e.speaking) for e in room.events if isinstance(e, SpeakingChanged)]
        room.events.clear()
    pcm = [room.heard(leg, last=50) for leg in sorted(room.peers)]
    return pcm, speaking


def test_mute_deaf_and_speaking_are_the_same_on_both_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    """Differential: the same script through the C play-out and the Python one, sample for sample."""
    if not extension_loaded():
        if in_ci():
            pytest.fail("imsconf.media._fastpath was not built")
        pytest.skip("the C extension is not built here")
    c_pcm, c_speaking = scripted(monkeypatch, True)
    py_pcm, py_speaking = scripted(monkeypatch, False)
    assert c_speaking == py_speaking and len(c_speaking) >= 6
    for c, py in zip(c_pcm, py_pcm, strict=True):
        assert np.array_equal(c, py)
