"""Group downlink in the 16 kHz mix, sans-I/O: one common stream per listener codec group of an epoch (its
own SSRC, one encode and one protect per tick, the same bytes to every listener of the group, all under
the epoch key), speakers on their private streams, and the moves between the 8 kHz and the 16 kHz mix
of the PCMU listeners (same stream: no gap, no demotion)."""

from __future__ import annotations

import itertools
import random

import numpy as np
from media_peer import make_keys

from imsconf.keys.policy import DownlinkMode
from imsconf.media.codec_port import Codec, negotiated_codec
from imsconf.media.engine import LegConfig, MediaEngine
from imsconf.media.g711 import ulaw_decode, ulaw_encode
from imsconf.media.rtp import pack_rtp_header, parse_rtp_fast
from imsconf.media.srtp import SrtpKeys, SrtpReceiver, SrtpSender

T = 0.020
OPUS = ("opus", 48000, 111)
G722 = ("G722", 8000, 9)
PCMU = ("PCMU", 8000, 0)


def amp(x: np.ndarray, freq: float, rate: int) -> float:
    v = x.astype(np.float64)
    k = np.exp(-2j * np.pi * freq * np.arange(len(v)) / rate)
    return float(2 * abs(np.dot(v, k)) / len(v))


def tone(freq: float, rate: int, n: int, start: int) -> np.ndarray:
    t = (np.arange(n) + start) / rate
    return (8000.0 * np.sin(2 * np.pi * freq * t)).astype(np.int16)


class Phone:
    """An SRTP phone on one codec: sends a tone (or nothing), keeps the RTP it gets per tick."""

    def __init__(self, name: str, port: int, codec: tuple[str, int, int], freq: float | None) -> None:
        self.name, self.port, self.freq = name, port, freq
        self.codec_name, self.clock, self.pt = codec
        self.addr = ("192.0.2.9", port + 10000)
        self.own_rx, self.send_keys = make_keys(), make_keys()  # our key for it, its key for us
        self.tx = SrtpSender(self.send_keys)
        self.enc: Codec | None = None
        if self.codec_name != "PCMU":
            self.enc = negotiated_codec(self.codec_name, self.clock, {})
        self.n = 0
        self.got: list[bytes] = []  # this tick's datagrams

    @property
    def config(self) -> LegConfig:
        return LegConfig(self.addr, None, self.pt, self.codec_name, 101, codec_clock=self.clock)

    def packet(self) -> bytes:
        assert self.freq is not None
        if self.enc is None:
            payload = ulaw_encode(tone(self.freq, 8000, 160, 160 * self.n))
        else:
            rate = self.enc.sample_rate
            payload = self.enc.encode(tone(self.freq, rate, rate // 50, rate // 50 * self.n))
        rtp = pack_rtp_header(self.pt, self.n, self.clock // 50 * self.n, 0x5000 + self.port) + payload
        self.n += 1
        return self.tx.protect(rtp)


class Room:
    def __init__(self) -> None:
        self.engine = MediaEngine(rng=random.Random(5))
        self.phones: dict[str, Phone] = {}
        self.now = 0.0
        self.log: list[dict[str, list[bytes]]] = []

    def add(self, name: str, codec: tuple[str, int, int], freq: float | None = None) -> Phone:
        p = Phone(name, 32000 + 2 * len(self.phones), codec, freq)
        self.engine.add_leg(name, "c", p.port, p.port, True)
        self.engine.configure_leg(name, p.config, p.own_rx, p.send_keys, self.now)
        self.phones[name] = p
        return p

    def remove(self, name: str) -> None:
        self.engine.remove_leg(name)
        del self.phones[name]

    def run(self, ticks: int) -> None:
        by_port = {p.port: p for p in self.phones.values()}
        for _ in range(ticks):
            batch = [(p.port, p.packet(), p.addr) for p in self.phones.values() if p.freq is not None]
            if batch:
                self.engine.receive_batch(self.now, batch)
            got: dict[str, list[bytes]] = {name: [] for name in self.phones}
            for port, data, _dst in self.engine.tick(self.now):
                if not 192 <= data[1] <= 223:
                    got[by_port[port].name].append(data)
            self.log.append(got)
            self.now += T


def ssrc_of(data: bytes) -> int:
    return int.from_bytes(data[8:12], "big")


def seq_of(data: bytes) -> int:
    return int.from_bytes(data[2:4], "big")


def heard(room: Room, name: str, key: SrtpKeys, ticks: slice) -> np.ndarray:
    """What ``name`` heard over ``ticks`` (one packet each), decrypted with ``key`` and decoded."""
    p = room.phones[name]
    rx = SrtpReceiver(key)
    dec = None if p.enc is None else negotiated_codec(p.codec_name, p.clock, {})
    out = []
    for got in room.log[ticks]:
        assert len(got[name]) == 1, (name, got[name])
        payload = parse_rtp_fast(rx.unprotect(got[name][0]))[5]
        out.append(ulaw_decode(payload) if dec is None else np.asarray(dec.decode(payload)[0]))
    return np.concatenate(out)


def wide_room() -> tuple[Room, SrtpKeys]:
    """An Opus talker (1 kHz) and a PCMU talker (500 Hz); listeners on Opus (two), G.722 and PCMU, all
    on epoch 1 of the conference's group key."""
    room = Room()
    room.add("w", OPUS, 1000.0)
    room.add("n", PCMU, 500.0)
    for name, codec in (("o1", OPUS), ("o2", OPUS), ("g", G722), ("u", PCMU)):
        room.add(name, codec)
    room.engine.set_downlink_mode("c", DownlinkMode.GROUP)
    key = make_keys()
    room.engine.add_group_epoch("c", 1, key, 0x2222_0001)
    for name in ("o1", "o2", "g", "u"):
        room.engine.set_listener_stream(name, 1)
    return room, key


def test_each_listener_codec_group_gets_one_common_stream_under_the_group_key() -> None:
    room, key = wide_room()
    room.run(40)
    for got in room.log[1:]:
        assert got["o1"] == got["o2"]  # the same ciphertext: encoded and protected once for both
        assert len({ssrc_of(got[n][0]) for n in ("o1", "g", "u")}) == 3  # one stream per codec group
        assert ssrc_of(got["u"][0]) == 0x2222_0001  # PCMU/0: the epoch's own stream
    ssrcs = {ssrc_of(room.log[-1][n][0]) for n in ("o1", "g", "u")}
    talkers = {ssrc_of(room.log[-1][n][0]) for n in ("w", "n")}
    assert not ssrcs & talkers
    for name, rate in (("o1", 16000), ("o2", 16000), ("g", 16000), ("u", 8000)):
        x = heard(room, name, key, slice(-20, None))
        assert amp(x, 1000.0, rate) > 1500 and amp(x, 500.0, rate) > 1500, name
    # Three common packets (Opus, G.722, PCMU) and the two talkers' own: 5 protects, not 6.
    assert room.engine.tick_protects == 5
    st = room.engine.group_epoch_stats("c", 1)
    assert st.listeners == 4 and st.packets_encrypted == 3 * 40 and st.packets_sent == 4 * 40


def test_protects_per_tick_group_streams_against_own_keys() -> None:
    rooms = []
    for group in (True, False):
        room = Room()
        room.add("w", OPUS, 1000.0)
        for i in range(10):
            room.add(f"o{i}", OPUS)
            room.add(f"g{i}", G722)
        if group:
            room.engine.set_downlink_mode("c", DownlinkMode.GROUP)
            room.engine.add_group_epoch("c", 1, make_keys(), 0x3333_0001)
            for i in range(10):
                room.engine.set_listener_stream(f"o{i}", 1)
                room.engine.set_listener_stream(f"g{i}", 1)
        room.run(5)
        rooms.append(room.engine.tick_protects)
    assert rooms == [1 + 2, 1 + 20]


def test_a_speaking_group_listener_hears_its_n_minus_1_on_its_private_stream() -> None:
    room, key = wide_room()
    room.phones["o1"].freq = 2000.0  # o1 starts talking
    room.run(40)
    got = room.log[-1]
    assert got["o1"] != got["o2"] and ssrc_of(got["o1"][0]) != ssrc_of(got["o2"][0])
    mine = heard(room, "o1", key, slice(-20, None))  # the epoch key protects the private stream too
    theirs = heard(room, "o2", key, slice(-20, None))
    assert amp(mine, 2000.0, 16000) < 300 and amp(mine, 1000.0, 16000) > 1500
    assert amp(theirs, 2000.0, 16000) > 1500


def test_pcmu_listeners_keep_their_group_stream_across_the_8_and_16_khz_mix() -> None:
    """A PCMU-only conference on the group stream; an Opus phone joins (16 kHz mix), then leaves (8 kHz
    again): the PCMU listener gets one packet per tick throughout, on the epoch's SSRC, consecutive
    sequence numbers, always decrypted by the group key and hearing the PCMU talker."""
    room = Room()
    room.add("n", PCMU, 500.0)
    room.add("u", PCMU)
    room.engine.set_downlink_mode("c", DownlinkMode.GROUP)
    key = make_keys()
    room.engine.add_group_epoch("c", 1, key, 0x4444_0001)
    room.engine.set_listener_stream("u", 1)
    room.run(20)
    room.add("w", OPUS, 1000.0)
    room.run(30)
    room.remove("w")
    room.run(30)
    packets = [got["u"] for got in room.log]
    assert all(len(p) == 1 for p in packets)
    assert {ssrc_of(p[0]) for p in packets} == {0x4444_0001}
    seqs = [seq_of(p[0]) for p in packets]
    assert all((b - a) & 0xFFFF == 1 for a, b in itertools.pairwise(seqs))
    during = heard(room, "u", key, slice(30, 50))
    after = heard(room, "u", key, slice(60, 80))
    assert amp(during, 1000.0, 8000) > 1500 and amp(during, 500.0, 8000) > 1500
    assert amp(after, 500.0, 8000) > 1500 and amp(after, 1000.0, 8000) < 100
    assert room.engine.leg_stats("u").group_sent == 80


def test_retiring_the_epoch_drops_every_codec_groups_stream() -> None:
    room, key = wide_room()
    room.run(5)
    group_ssrcs = {ssrc_of(room.log[-1][n][0]) for n in ("o1", "g", "u")}
    room.engine.add_group_epoch("c", 2, make_keys(), 0x2222_0002)
    for name in ("o1", "o2", "g", "u"):
        room.engine.set_listener_stream(name, 2)
    room.engine.retire_group_epoch("c", 1)
    room.run(5)
    now = {ssrc_of(room.log[-1][n][0]) for n in ("o1", "g", "u")}
    assert len(now) == 3 and not now & group_ssrcs  # new SSRCs for every group in the new epoch
    assert room.engine.group_epochs("c") == [2]
    with np.testing.assert_raises(Exception):
        SrtpReceiver(key).unprotect(room.log[-1]["o1"][0])


def test_receiver_reports_on_a_codec_groups_stream_are_the_epochs_evidence() -> None:
    """A G.722 listener's report naming its codec group's stream confirms the epoch; one with heavy loss
    on that stream (it stayed on the common stream) says it is failing."""
    from imsconf.media.engine import GroupStreamConfirmed, GroupStreamFailing
    from imsconf.media.rtp import ReceiverReport, ReportBlock, serialize_rtcp

    def report(room: Room, name: str, ssrc: int, lost: int) -> None:
        p = room.phones[name]
        block = ReportBlock(ssrc, lost, 0, 0, 0, 0, 0)
        pkt = p.tx.protect_rtcp(serialize_rtcp([ReceiverReport(0x5000 + p.port, (block,))]))
        room.engine.receive_batch(room.now, [(p.port, pkt, p.addr)])

    room, _key = wide_room()
    room.run(60)
    room.engine.events()
    g_ssrc = ssrc_of(room.log[-1]["g"][0])
    report(room, "g", g_ssrc, 0)
    o_ssrc = ssrc_of(room.log[-1]["o1"][0])
    report(room, "o1", o_ssrc, 240)
    events = room.engine.events()
    assert GroupStreamConfirmed("g", 1) in events
    assert any(isinstance(ev, GroupStreamFailing) and ev.leg_id == "o1" for ev in events)


def test_a_listener_changing_codec_moves_to_that_codec_groups_stream() -> None:
    """The G.722 listener's phone moves to PCMU (a re-INVITE): from the next tick it gets the PCMU
    listener's packet, byte for byte, still on the epoch."""
    room, key = wide_room()
    room.run(5)
    g = room.phones["g"]
    g.codec_name, g.clock, g.pt, g.enc = PCMU[0], PCMU[1], PCMU[2], None
    room.engine.configure_leg("g", g.config, g.own_rx, g.send_keys, room.now)
    room.run(10)
    assert all(got["g"] == got["u"] for got in room.log[-9:])
    assert ssrc_of(room.log[-1]["g"][0]) == 0x2222_0001
    assert room.engine.leg_stats("g").group_epoch == 1
    x = heard(room, "g", key, slice(-8, None))
    assert amp(x, 500.0, 8000) > 1500
