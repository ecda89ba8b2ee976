"""Group downlink keying, sans-I/O: common listener streams per epoch, private speaker streams,
switches between epochs, retirement, SSRC discipline, receiver-report evidence, protect counts."""

from __future__ import annotations

import random
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from media_peer import Peer, deliver, goertzel, make_keys

from imsconf.keys.policy import DownlinkMode
from imsconf.media.egress import CollectingSink
from imsconf.media.engine import (
    GroupStreamConfirmed,
    GroupStreamFailing,
    LegConfig,
    MediaEngine,
    MediaEngineError,
    RtcpReport,
)
from imsconf.media.g711 import ulaw_decode
from imsconf.media.rtp import ReceiverReport, ReportBlock, parse_rtcp, parse_rtp_fast, serialize_rtcp
from imsconf.media.srtp import SrtpError, SrtpKeys, SrtpReceiver, SrtpSender

T = 0.020
# Whole numbers of cycles per 20 ms frame: one frame's Goertzel of one tone sees nothing of the others.
F = [400.0, 1000.0, 1600.0, 2200.0, 2800.0]


def ssrc_of(data: bytes) -> int:
    return int.from_bytes(data[8:12], "big")


class Room:
    """One engine, one conference, in-memory phones; records every datagram per leg per tick."""

    def __init__(self, k: int = 3, conference: str = "c1") -> None:
        self.engine = MediaEngine(k=k, rng=random.Random(7))
        self.conf = conference
        self.peers: dict[str, Peer] = {}
        self.port: dict[str, int] = {}
        self.addr: dict[str, tuple[str, int]] = {}
        self.keys: dict[str, tuple[SrtpKeys, SrtpKeys]] = {}
        self.talking: dict[str, bool] = {}
        self.now = 0.0
        self.log: list[dict[str, list[bytes]]] = []  # per tick: leg -> RTP datagrams
        self.rtcp: dict[str, list[bytes]] = {}
        self.rtcp_tx: dict[str, SrtpSender] = {}

    def add(self, leg: str, freq: float | None) -> str:
        n = len(self.peers)
        port, addr = 30000 + 2 * n, ("192.0.2.1", 6000 + 2 * n)
        tx, rx = make_keys(), make_keys()
        self.engine.add_leg(leg, self.conf, port, port, rtcp_mux=True)
        self.engine.configure_leg(leg, LegConfig(addr, None, 0, "PCMU", 101), tx, rx, self.now)
        self.peers[leg] = Peer(freq or 400.0, send_keys=rx, recv_keys=None)
        self.port[leg], self.addr[leg], self.keys[leg] = port, addr, (tx, rx)
        self.talking[leg] = freq is not None
        self.rtcp[leg] = []
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
            for port, data, dst in self.engine.tick(self.now):
                leg = by_port[port]
                assert dst == self.addr[leg]
                if 192 <= data[1] <= 223:
                    self.rtcp[leg].append(data)
                else:
                    got[leg].append(data)
            self.log.append(got)
            self.now += T

    def rr(self, leg: str, blocks: tuple[ReportBlock, ...]) -> None:
        """The phone of ``leg`` sends an SRTCP receiver report (under its own send key)."""
        peer = self.peers[leg]
        sender = self.rtcp_tx.setdefault(leg, SrtpSender(self.keys[leg][1]))  # one SRTCP index sequence
        pkt = sender.protect_rtcp(serialize_rtcp([ReceiverReport(peer.ssrc, blocks)]))
        deliver(self.engine, self.port[leg], pkt, self.addr[leg], self.now)


def decode(rx: SrtpReceiver, data: bytes) -> tuple[int, np.ndarray]:
    _pt, _m, _seq, _ts, ssrc, payload = parse_rtp_fast(rx.unprotect(data))
    return ssrc, ulaw_decode(payload)


def group_room(listeners: int = 3) -> tuple[Room, SrtpKeys, int]:
    room = Room()
    for i in range(3):
        room.add(f"t{i}", F[i])
    for i in range(listeners):
        room.add(f"l{i}", None)
    room.engine.set_downlink_mode("c1", DownlinkMode.GROUP)
    key = make_keys()
    room.engine.add_group_epoch("c1", 1, key, 0x1111_0001)
    for i in range(listeners):
        room.engine.set_listener_stream(f"l{i}", 1)
    return room, key, 0x1111_0001


def test_listeners_share_one_packet_per_tick_under_the_epoch_key() -> None:
    room, key, ssrc = group_room()
    room.run(30)
    for got in room.log:
        packets = [got[f"l{i}"] for i in range(3)]
        assert all(len(p) == 1 for p in packets)  # one packet per tick each
        assert packets[0][0] == packets[1][0] == packets[2][0]  # byte-identical
        assert ssrc_of(packets[0][0]) == ssrc
    rx = SrtpReceiver(key)
    heard = np.concatenate([decode(rx, got["l0"][0])[1] for got in room.log[-20:]])
    assert all(goertzel(heard, f) > 3000 for f in F[:3])
    own = SrtpReceiver(room.keys["l0"][0])  # the listener's own per-participant key
    with pytest.raises(SrtpError):
        own.unprotect(room.log[-1]["l0"][0])
    st = room.engine.group_epoch_stats("c1", 1)
    assert (st.listeners, st.packets_encrypted, st.packets_sent) == (3, 30, 90)
    assert room.engine.leg_stats("l0").group_epoch == 1 and room.engine.leg_stats("l0").group_sent == 30


def test_protect_calls_per_tick_by_downlink_mode() -> None:
    room, _key, _ = group_room(listeners=10)
    room.run(10)
    assert room.engine.tick_protects == 3 + 1  # three speakers on their own streams + one common packet
    assert room.engine.tick_sent == 13
    flat = Room()
    for i in range(3):
        flat.add(f"t{i}", F[i])
    for i in range(10):
        flat.add(f"l{i}", None)
    flat.run(10)
    assert flat.engine.tick_protects == 13


def test_speakers_never_hear_themselves_and_switch_streams_without_a_gap() -> None:
    room, key, ssrc = group_room()
    eng = room.engine
    eng.set_listener_stream("t0", 1, speaker_ssrc=0x2222_0001)  # a speaker assigned to the epoch too
    room.talking["t2"] = False  # two talkers: room for l0 among the K=3 speakers
    room.run(10)
    room.talking["l0"] = True  # l0 (on the epoch) starts talking, with its own tone F[3]
    room.peers["l0"].freq = F[3]
    room.run(30)
    room.talking["l0"] = False
    room.run(30)
    rx, rx_t0, rx_l1 = SrtpReceiver(key), SrtpReceiver(key), SrtpReceiver(key)  # one per phone
    l0_ssrcs = []
    for n, got in enumerate(room.log):
        assert len(got["l0"]) == 1, f"tick {n}: l0 got {len(got['l0'])} packets"
        assert len(got["l1"]) == 1 and ssrc_of(got["l1"][0]) == ssrc  # the others stay on the common stream
        s, pcm = decode(rx, got["l0"][0])
        l0_ssrcs.append(s)
        assert goertzel(pcm, F[3]) < 150, f"tick {n}: l0 hears itself"
        s0, pcm0 = decode(rx_t0, got["t0"][0])
        assert goertzel(pcm0, F[0]) < 150  # t0: its N-1 mix on its private stream (once audio flows)
        assert s0 == 0x2222_0001 or n < 4
    # l0 moved to its private stream while it spoke, and back to the common stream afterwards
    private = {s for s in l0_ssrcs if s != ssrc}
    assert len(private) == 1 and l0_ssrcs[5] == ssrc and l0_ssrcs[25] in private and l0_ssrcs[-1] == ssrc
    heard_by_l1 = np.concatenate([decode(rx_l1, got["l1"][0])[1] for got in room.log[20:40]])
    assert goertzel(heard_by_l1, F[3]) > 3000  # the others heard l0 on the common stream
    st = eng.group_epoch_stats("c1", 1)
    assert st.private_encrypted == st.private_sent > 60


def test_switching_listeners_to_a_new_epoch_loses_no_tick() -> None:
    room, key1, ssrc1 = group_room()
    eng = room.engine
    room.run(10)
    key2 = make_keys()
    eng.add_group_epoch("c1", 2, key2, 0x1111_0002)
    switch_at = {"l0": 12, "l1": 15, "l2": 18}
    for t in range(10, 30):
        for leg, at in switch_at.items():
            if t == at:
                eng.set_listener_stream(leg, 2)
        room.run(1)
    rx1, rx2 = SrtpReceiver(key1), SrtpReceiver(key2)
    for leg, at in switch_at.items():
        for t, got in enumerate(room.log):
            assert len(got[leg]) == 1, f"{leg} tick {t}"
            data = got[leg][0]
            if t < at:
                assert ssrc_of(data) == ssrc1
                rx1.unprotect(data) if leg == "l0" else None
            else:
                assert ssrc_of(data) == 0x1111_0002
                with pytest.raises(SrtpError):
                    SrtpReceiver(key1).unprotect(data)
    heard = np.concatenate([decode(rx2, got["l0"][0])[1] for got in room.log[-10:]])
    assert all(goertzel(heard, f) > 3000 for f in F[:3])
    # the common streams of two epochs never share an SSRC and carry their own sequences
    assert eng.group_epoch_stats("c1", 1).packets_encrypted == 18
    eng.retire_group_epoch("c1", 1)
    assert eng.group_epochs("c1") == [2]


def test_retire_wipes_and_falls_back_to_own_streams() -> None:
    room, _key, ssrc = group_room()
    eng = room.engine
    room.run(3)
    session = weakref.ref(eng.conf_map["c1"].epochs[1].tx._session)  # type: ignore[union-attr]
    eng.retire_group_epoch("c1", 1)
    assert session() is None  # the libsrtp context (the only copy of the epoch key) is gone
    with pytest.raises(MediaEngineError):
        eng.group_epoch_stats("c1", 1)
    with pytest.raises(MediaEngineError):
        eng.retire_group_epoch("c1", 1)
    with pytest.raises(MediaEngineError):
        eng.set_listener_stream("l0", 1)
    room.run(2)
    own = SrtpReceiver(room.keys["l0"][0])
    data = room.log[-1]["l0"][0]  # not deaf: back on its own key and SSRC
    assert ssrc_of(data) == eng.leg_stats("l0").ssrc and own.unprotect(data)
    assert eng.leg_stats("l0").group_epoch is None
    with pytest.raises(MediaEngineError):  # neither the epoch number nor its SSRC comes back
        eng.add_group_epoch("c1", 1, make_keys(), 0x1111_0009)
    with pytest.raises(MediaEngineError):
        eng.add_group_epoch("c1", 2, make_keys(), ssrc)


def test_ssrc_reuse_and_misuse_are_refused() -> None:
    room, _key, ssrc = group_room(listeners=1)
    eng = room.engine
    for bad in (ssrc, eng.leg_stats("t0").ssrc):
        with pytest.raises(MediaEngineError):
            eng.add_group_epoch("c1", 5, make_keys(), bad)
    with pytest.raises(MediaEngineError):
        eng.set_listener_stream("t1", 1, speaker_ssrc=ssrc)
    eng.set_listener_stream("t1", 1, speaker_ssrc=0x3333_0001)
    with pytest.raises(MediaEngineError):
        eng.set_listener_stream("t2", 1, speaker_ssrc=0x3333_0001)
    eng.set_listener_stream("t1", 1, keep_own=True)  # same epoch: keeps its private stream
    assert eng.leg_map["t1"].group.pssrc == 0x3333_0001  # type: ignore[union-attr]
    eng.set_listener_stream("t1", None)
    with pytest.raises(MediaEngineError):  # a private SSRC is burnt once used
        eng.set_listener_stream("t1", 1, speaker_ssrc=0x3333_0001)
    with pytest.raises(MediaEngineError):
        eng.add_group_epoch("other", 1, make_keys(), 0x4444_0001)  # per-participant conference
    eng.set_downlink_mode("c1", DownlinkMode.GROUP)
    eng.add_group_epoch("c1", 7, make_keys(), 0x4444_0002, codec_name="PCMA", codec_pt=8)
    with pytest.raises(MediaEngineError):  # a PCMU leg cannot share a PCMA stream
        eng.set_listener_stream("l0", 7)
    with pytest.raises(MediaEngineError):
        eng.set_downlink_mode("c1", "mixed")  # type: ignore[arg-type]
    eng.set_downlink_mode("c1", DownlinkMode.PER_PARTICIPANT)  # retires every epoch
    assert eng.group_epochs("c1") == [] and eng.leg_stats("l0").group_epoch is None


def test_receiver_reports_confirm_or_fail_the_group_stream() -> None:
    room, _key, ssrc = group_room()
    eng = room.engine
    room.run(10)
    eng.events()
    room.rr("l0", (ReportBlock(ssrc, 0, 0, 1000, 3),))
    room.rr("l0", (ReportBlock(ssrc, 1, 0, 1010, 3),))
    room.rr("l1", (ReportBlock(ssrc, 255, 400, 1000, 3),))
    room.rr("l2", (ReportBlock(0xDEAD, 0, 0, 1, 1),))  # about somebody else: no evidence
    assert [e for e in eng.events() if not isinstance(e, RtcpReport)] == [
        GroupStreamConfirmed("l0", 1),  # once, although two reports confirmed it
        GroupStreamFailing("l1", 1, 255 / 256, "loss"),
    ]
    assert eng.leg_stats("l0").rtcp_received == 2


def test_probation_sends_both_streams_and_absent_reports_fail() -> None:
    room, key, ssrc = group_room()
    eng = room.engine
    eng.set_listener_stream("l0", 1, keep_own=True)
    room.run(60)
    for got in room.log:
        assert sorted(ssrc_of(d) for d in got["l0"]) == sorted([ssrc, eng.leg_stats("l0").ssrc])
    eng.events()
    own = ReportBlock(eng.leg_stats("l0").ssrc, 0, 0, 100, 1)
    room.rr("l0", (own,))
    assert not [e for e in eng.events() if isinstance(e, GroupStreamFailing)]
    room.run(5)
    room.rr("l0", (own,))  # a second report that names only its own stream: it kept its old key
    assert [e for e in eng.events() if isinstance(e, GroupStreamFailing)] == [
        GroupStreamFailing("l0", 1, 1.0, "absent")
    ]
    eng.set_listener_stream("l0", 1, keep_own=False)  # settled (another listener, say): one stream again
    room.run(2)
    assert [ssrc_of(d) for d in room.log[-1]["l0"]] == [ssrc]
    SrtpReceiver(key).unprotect(room.log[-1]["l0"][0])


def test_listener_rtcp_goes_under_the_epoch_key_from_its_private_ssrc() -> None:
    room, key, _ssrc = group_room(listeners=1)
    room.talking["l0"] = True  # so that the report has a block about its uplink
    room.run(400)
    assert room.rtcp["l0"]
    rx = SrtpReceiver(key)
    packets = parse_rtcp(rx.unprotect_rtcp(room.rtcp["l0"][-1]))
    assert packets[0].ssrc == room.engine.leg_map["l0"].group.pssrc  # type: ignore[union-attr]


def test_direct_send_path_fans_out_the_same_bytes() -> None:
    room, key, ssrc = group_room(listeners=4)
    eng = room.engine
    eng.set_listener_stream("t0", 1)  # a speaker on the epoch: private stream while it speaks
    sent: dict[str, list[bytes]] = {leg: [] for leg in room.peers}

    def sender(leg: str) -> Callable[[Any], None]:
        return lambda data: sent[leg].append(bytes(data))

    for leg, port in room.port.items():
        eng.set_send(port, sender(leg))
    for _ in range(20):
        for leg, on in room.talking.items():
            if on:
                deliver(eng, room.port[leg], room.peers[leg].next_packet(), room.addr[leg], room.now)
        sink = CollectingSink()
        dropped, refused = eng.tick_send(room.now, sink)
        assert (dropped, refused) == (0, 0) and all(192 <= d[1] <= 223 for _p, d, _a in sink.datagrams)
        room.now += T
    assert all(len(v) == 20 for v in sent.values())
    for t in range(20):
        assert len({sent[f"l{i}"][t] for i in range(4)}) == 1 and ssrc_of(sent["l0"][t]) == ssrc
    rx = SrtpReceiver(key)
    private = [decode(rx, d) for d in sent["t0"][5:]]
    assert {s for s, _ in private} == {eng.leg_map["t0"].group.pssrc}  # type: ignore[union-attr]
    assert goertzel(np.concatenate([p for _, p in private]), F[0]) < 150
    assert eng.leg_stats("l0").group_sent == 20 and eng.leg_stats("t0").group_sent == 20
    assert eng.tick_protects == 2 + 1 + 1  # t1, t2 own streams; t0 private; one common packet
