from __future__ import annotations

import itertools
import random
from collections.abc import Sequence

import numpy as np
import pytest
from media_peer import Peer, deliver, goertzel, make_keys

from imsconf.media.dtmf import DtmfEvent, TelephoneEvent
from imsconf.media.engine import (
    DtmfReceived,
    InboundKeyConfirmed,
    LegConfig,
    MediaEngine,
    MediaEngineError,
    RtcpReport,
    SourceLatched,
)
from imsconf.media.rtp import ReceiverReport, ReportBlock, SenderReport, parse_rtcp, serialize_rtcp
from imsconf.media.srtp import SrtpKeys, SrtpReceiver, SrtpSender
from imsconf.sdp.direction import Direction

T = 0.020
FREQS = [440.0, 1000.0, 1700.0]


class Conf:
    """An engine with legs and matching in-memory phones."""

    def __init__(
        self, freqs: Sequence[float | None], conference: str = "c1", suite: str = "AES_CM_128_HMAC_SHA1_80"
    ):
        self.engine = MediaEngine(rng=random.Random(5), allow_plain_rtp=True)
        self.peers: dict[str, Peer] = {}
        self.addr: dict[str, tuple[str, int]] = {}
        self.port: dict[str, int] = {}
        self.keys: dict[str, tuple[SrtpKeys, SrtpKeys]] = {}
        self.now = 0.0
        self.sending: set[str] = set()
        self.rtcp_seen: dict[str, list[bytes]] = {}
        for f in freqs:
            self.add(f, conference, suite)

    def add(self, freq: float | None, conference: str, suite: str = "AES_CM_128_HMAC_SHA1_80") -> str:
        n = len(self.peers)
        leg = f"leg{n}"
        port = 30000 + 2 * n
        addr = ("192.0.2.1", 6000 + 2 * n)
        tx, rx = make_keys(suite), make_keys(suite)  # mixer->phone, phone->mixer
        self.engine.add_leg(leg, conference, port, port, rtcp_mux=True)
        self.engine.configure_leg(leg, LegConfig(addr, None, 0, "PCMU", 101), tx, rx, self.now)
        self.peers[leg] = Peer(freq, send_keys=rx, recv_keys=tx)
        self.addr[leg], self.port[leg], self.keys[leg] = addr, port, (tx, rx)
        self.rtcp_seen[leg] = []
        if freq is not None:
            self.sending.add(leg)
        return leg

    def run(self, ticks: int) -> None:
        by_port = {p: leg for leg, p in self.port.items()}
        for _ in range(ticks):
            for leg in sorted(self.sending):
                deliver(self.engine, self.port[leg], self.peers[leg].next_packet(), self.addr[leg], self.now)
            for port, data, dst in self.engine.tick(self.now):
                leg = by_port[port]
                assert dst == self.addr[leg]
                if 192 <= data[1] <= 223:
                    self.rtcp_seen[leg].append(data)
                else:
                    self.peers[leg].deliver(data)
            self.now += T

    def hears(self, leg: str, freq: float, last: int = 20) -> float:
        return goertzel(self.peers[leg].heard(last), freq)


def test_three_legs_hear_the_other_two_and_not_themselves() -> None:
    conf = Conf([*FREQS, None])  # three talkers and one listener
    conf.run(60)
    for i, leg in enumerate(["leg0", "leg1", "leg2"]):
        assert conf.hears(leg, FREQS[i]) < 60, "a participant hears itself"
        for j, f in enumerate(FREQS):
            if j != i:
                assert conf.hears(leg, f) > 3000
    for f in FREQS:
        assert conf.hears("leg3", f) > 3000
    ssrcs = [next(iter(p.received_ssrcs)) for p in conf.peers.values()]
    assert all(len(p.received_ssrcs) == 1 for p in conf.peers.values()) and len(set(ssrcs)) == 4
    st = conf.engine.leg_stats("leg0")
    assert st.sent == 60 and st.received == 60 and st.decrypt_failed == 0 and st.late == 0


@pytest.mark.parametrize("suite", ["AES_CM_128_HMAC_SHA1_32", "AEAD_AES_128_GCM"])
def test_other_suites_end_to_end(suite: str) -> None:
    conf = Conf(FREQS[:2], suite=suite)
    conf.run(30)
    assert conf.hears("leg0", FREQS[1]) > 3000 and conf.hears("leg0", FREQS[0]) < 60


def test_outgoing_headers_are_continuous() -> None:
    conf = Conf(FREQS[:2])
    seen: list[tuple[int, int, bool]] = []
    rx = SrtpReceiver(conf.keys["leg0"][0])
    for _ in range(5):
        for port, data, _dst in conf.engine.tick(conf.now):
            if port == conf.port["leg0"]:
                plain = rx.unprotect(data)
                seen.append(
                    (int.from_bytes(plain[2:4], "big"), int.from_bytes(plain[4:8], "big"), plain[1] >= 128)
                )
        conf.now += T
    assert [s[2] for s in seen] == [True, False, False, False, False]
    for a, b in itertools.pairwise(seen):
        assert (b[0] - a[0]) % 65536 == 1 and (b[1] - a[1]) % 2**32 == 160


def test_wrong_source_is_ignored_and_counted() -> None:
    conf = Conf(FREQS[:2])
    conf.run(10)
    intruder = Peer(3000.0, send_keys=conf.keys["leg0"][1], recv_keys=None)
    for _ in range(20):
        deliver(conf.engine, conf.port["leg0"], intruder.next_packet(), ("192.0.2.99", 6000), conf.now)
        deliver(conf.engine, conf.port["leg0"], intruder.next_packet(), ("192.0.2.1", 7777), conf.now)
    conf.run(20)
    assert conf.engine.leg_stats("leg0").wrong_source == 40
    assert conf.hears("leg1", 3000.0) < 60


def test_replay_and_forgery_are_dropped_and_counted() -> None:
    conf = Conf(FREQS[:2])
    pkt = conf.peers["leg0"].next_packet()
    deliver(conf.engine, conf.port["leg0"], pkt, conf.addr["leg0"], 0.0)
    deliver(conf.engine, conf.port["leg0"], pkt, conf.addr["leg0"], 0.0)
    forged = bytearray(conf.peers["leg0"].next_packet())
    forged[40] ^= 0xFF
    deliver(conf.engine, conf.port["leg0"], bytes(forged), conf.addr["leg0"], 0.0)
    other_key = Peer(500.0, send_keys=make_keys(), recv_keys=None)
    deliver(conf.engine, conf.port["leg0"], other_key.next_packet(), conf.addr["leg0"], 0.0)
    st = conf.engine.leg_stats("leg0")
    assert (st.received, st.replayed, st.decrypt_failed) == (1, 1, 2)
    deliver(conf.engine, 55555, b"junk", ("192.0.2.1", 1), 0.0)
    assert conf.engine.unknown_port == 1


def test_a_leg_that_stops_does_not_stall_the_others() -> None:
    conf = Conf(FREQS)
    conf.run(30)
    conf.sending.discard("leg2")
    before = {leg: len(p.received) for leg, p in conf.peers.items()}
    conf.run(40)
    for leg, p in conf.peers.items():
        assert len(p.received) == before[leg] + 40  # one packet per tick, every tick
    assert conf.hears("leg0", FREQS[1]) > 3000 and conf.hears("leg0", FREQS[2]) < 60
    assert conf.hears("leg2", FREQS[0]) > 3000  # the silent one still hears the conference
    assert conf.engine.leg_stats("leg2").concealed == 5


def test_hold_and_listen_only() -> None:
    conf = Conf(FREQS)
    conf.run(10)
    conf.engine.update_leg("leg1", direction=Direction.RECVONLY)  # leg1 put the conference on hold
    conf.engine.update_leg("leg2", direction=Direction.SENDONLY)  # leg2 listens only
    n1 = len(conf.peers["leg1"].received)
    conf.run(30)
    assert len(conf.peers["leg1"].received) == n1  # nothing sent to a held leg
    assert conf.hears("leg0", FREQS[1]) < 60 and conf.hears("leg0", FREQS[2]) < 60
    assert conf.hears("leg2", FREQS[0]) > 3000
    conf.engine.update_leg("leg1", direction=Direction.SENDRECV)  # resume
    conf.run(20)
    assert conf.hears("leg0", FREQS[1]) > 3000 and len(conf.peers["leg1"].received) > n1


def test_conferences_are_isolated() -> None:
    conf = Conf(FREQS[:2], conference="a")
    conf.add(1700.0, "b")
    conf.add(2500.0, "b")
    conf.run(30)
    assert conf.hears("leg0", 1000.0) > 3000 and conf.hears("leg0", 1700.0) < 60
    assert conf.hears("leg2", 2500.0) > 3000 and conf.hears("leg2", 440.0) < 60
    assert sorted(conf.engine.remove_conference("b")) == ["leg2", "leg3"]
    assert sorted(conf.engine.legs()) == ["leg0", "leg1"]


def test_dtmf_is_surfaced_once() -> None:
    conf = Conf(FREQS[:2])
    peer = conf.peers["leg0"]
    ts = 777
    for d in (160, 320, 480):
        deliver(
            conf.engine,
            conf.port["leg0"],
            peer.raw_packet(101, bytes(TelephoneEvent(11, False, 10, d)), ts=ts),
            conf.addr["leg0"],
            0,
        )
    for _ in range(3):
        deliver(
            conf.engine,
            conf.port["leg0"],
            peer.raw_packet(101, bytes(TelephoneEvent(11, True, 10, 640)), ts=ts),
            conf.addr["leg0"],
            0,
        )
    events = [e for e in conf.engine.events() if isinstance(e, DtmfReceived)]
    assert [e.event for e in events] == [DtmfEvent("#", 20, 10, False), DtmfEvent("#", 80, 10, True)]
    assert events[0].leg_id == "leg0" and events[0].conference_id == "c1"


def test_inbound_rekey_loses_no_audio() -> None:
    conf = Conf(FREQS[:2])
    conf.run(20)
    new = make_keys("AEAD_AES_128_GCM")
    conf.engine.update_leg("leg0", rx_keys=new)
    conf.run(5)  # the phone still sends under the old key
    conf.peers["leg0"].tx = SrtpSender(new)  # the phone switches (same SSRC here)
    conf.run(20)
    st = conf.engine.leg_stats("leg0")
    assert st.decrypt_failed == 0 and st.concealed == 0 and st.received == 45
    assert InboundKeyConfirmed("leg0") in conf.engine.events()
    assert conf.hears("leg1", FREQS[0], last=20) > 3000


def test_outbound_rekey_starts_a_new_ssrc() -> None:
    conf = Conf(FREQS[:2])
    conf.run(5)
    old_ssrc = conf.engine.leg_stats("leg0").ssrc
    new = make_keys()
    conf.engine.update_leg("leg0", tx_keys=new)
    conf.peers["leg0"].rx = SrtpReceiver(new)
    conf.run(5)
    assert conf.engine.leg_stats("leg0").ssrc != old_ssrc
    assert len(conf.peers["leg0"].received_ssrcs) == 2


def test_latching_once_on_first_authenticated_packet() -> None:
    conf = Conf([])
    eng = conf.engine
    tx, rx = make_keys(), make_keys()
    eng.add_leg("nat", "c1", 31000, 31000, True)
    eng.configure_leg("nat", LegConfig(("192.0.2.50", 4000), None, 0, "PCMU", None, latch=True), tx, rx)
    phone = Peer(440.0, send_keys=rx, recv_keys=tx)
    stranger = Peer(440.0, send_keys=make_keys(), recv_keys=None)
    deliver(eng, 31000, stranger.next_packet(), ("198.51.100.1", 1234), 0.0)  # fails auth: no latch
    deliver(eng, 31000, phone.next_packet(), ("198.51.100.7", 5555), 0.0)  # authenticates: latch
    deliver(eng, 31000, phone.next_packet(), ("192.0.2.50", 4000), 0.0)  # the SDP address is now wrong
    st = eng.leg_stats("nat")
    assert (st.decrypt_failed, st.received, st.wrong_source) == (1, 1, 1)
    assert SourceLatched("nat", False, ("198.51.100.7", 5555)) in eng.events()
    assert all(dst == ("198.51.100.7", 5555) for port, _d, dst in eng.tick(0.0) if port == 31000)


def test_rtcp_sender_report_and_receiver_feedback() -> None:
    conf = Conf(FREQS[:2])
    conf.run(400)  # 8 s: at least one report per leg
    assert conf.rtcp_seen["leg0"]
    rx = SrtpReceiver(conf.keys["leg0"][0])
    packets = parse_rtcp(rx.unprotect_rtcp(conf.rtcp_seen["leg0"][0]))
    sr = packets[0]
    assert isinstance(sr, SenderReport) and sr.ssrc == conf.engine.leg_stats("leg0").ssrc
    assert sr.reports and sr.reports[0].ssrc == conf.peers["leg0"].ssrc and sr.reports[0].cumulative_lost == 0
    # the phone reports about our stream, under SRTCP
    blk = ReportBlock(sr.ssrc, 0, 0, 1000, 3)
    rr = SrtpSender(conf.keys["leg0"][1]).protect_rtcp(
        serialize_rtcp([ReceiverReport(conf.peers["leg0"].ssrc, (blk,))])
    )
    deliver(conf.engine, conf.port["leg0"], rr, conf.addr["leg0"], conf.now)
    assert RtcpReport("leg0", blk) in conf.engine.events()
    assert conf.engine.leg_stats("leg0").rtcp_received == 1


def test_plain_rtp_only_when_allowed() -> None:
    eng = MediaEngine()
    eng.add_leg("x", "c", 1000, 1001, False)
    cfg = LegConfig(("192.0.2.1", 5000), None, 0, "PCMU", 101)
    with pytest.raises(MediaEngineError):
        eng.configure_leg("x", cfg, None, None)
    plain = MediaEngine(allow_plain_rtp=True, rng=random.Random(1))
    plain.add_leg("x", "c", 1000, 1001, False)
    plain.configure_leg("x", cfg, None, None)
    plain.add_leg("y", "c", 1002, 1003, False)
    plain.configure_leg("y", LegConfig(("192.0.2.2", 5000), None, 8, "PCMA", None), None, None)
    a, b = Peer(440.0, None, None), Peer(1000.0, None, None, pt=8)
    from media_peer import tone

    from imsconf.media.g711 import alaw_decode, alaw_encode

    got = []
    for k in range(20):
        deliver(plain, 1000, a.next_packet(), ("192.0.2.1", 5000), k * T)
        rtp = b.raw_packet(8, alaw_encode(tone(1000.0, 160, start=k * 160)))
        deliver(plain, 1002, rtp, ("192.0.2.2", 5000), k * T)
        for port, data, dst in plain.tick(k * T):
            if port == 1002 and dst == ("192.0.2.2", 5000):
                got.append(alaw_decode(data[12:]))
            assert port != 1003 or dst == ("192.0.2.2", 5001)
    heard = np.concatenate(got[-10:])
    assert goertzel(heard, 440.0) > 3000 and goertzel(heard, 1000.0) < 60


def test_control_errors() -> None:
    eng = MediaEngine()
    eng.add_leg("x", "c", 1000, 1000, True)
    with pytest.raises(MediaEngineError):
        eng.add_leg("x", "c", 1002, 1002, True)
    with pytest.raises(MediaEngineError):
        eng.add_leg("y", "c", 1000, 1000, True)
    with pytest.raises(MediaEngineError):
        eng.update_leg("x", direction=Direction.INACTIVE)  # not configured
    with pytest.raises(MediaEngineError):
        eng.remove_leg("nope")
    with pytest.raises(ValueError):
        LegConfig(("192.0.2.1", 1), None, 72, "PCMU", None)  # collides with RTCP under rtcp-mux
    with pytest.raises(ValueError):
        LegConfig(("192.0.2.1", 1), None, 0, "G729", None)
    deliver(eng, 1000, b"\x80\x00" + bytes(170), ("192.0.2.1", 1), 0.0)
    assert eng.leg_stats("x").unconfigured == 1


def test_engine_is_a_front_over_one_table_and_composed_parts() -> None:
    """The engine owns one leg table; each part holds that same table and inherits from no other part."""
    from imsconf.media.egress import Egress
    from imsconf.media.group_downlink import GroupDownlink
    from imsconf.media.ingress import Ingress
    from imsconf.media.legs import LegTable
    from imsconf.media.lobby import Lobby
    from imsconf.media.mixdown import Mixdown

    eng = MediaEngine()
    assert not isinstance(eng, LegTable)
    parts: list[tuple[object, type, LegTable]] = [
        (eng.ingress, Ingress, eng.ingress.table),
        (eng.egress, Egress, eng.egress.table),
        (eng.mixdown, Mixdown, eng.mixdown.table),
        (eng.group_part, GroupDownlink, eng.group_part.table),
        (eng.lobby_part, Lobby, eng.lobby_part.table),
    ]
    for part, kind, table in parts:
        assert type(part) is kind and kind.__mro__ == (kind, object)
        assert table is eng.table
    assert eng.ingress.group is eng.group_part and eng.egress.group is eng.group_part
    assert eng.mixdown.egress is eng.egress and eng.mixdown.prompts is eng.lobby_part
    assert eng.egress.rtp_batch is eng.table.slots
