from __future__ import annotations

import random

import pytest
from media_peer import Peer, deliver, make_keys

from imsconf.media.control import LegPorts, LocalMediaControl, MediaControl, NullPortAllocator
from imsconf.media.dtmf import TelephoneEvent
from imsconf.media.engine import DtmfReceived, MediaEngine, MediaEngineError, MediaEvent
from imsconf.sdp.direction import Direction


class FakePorts(NullPortAllocator):
    def __init__(self) -> None:
        super().__init__(host="192.0.2.10", first=40000)
        self.open: set[int] = set()

    def open_ports(self, rtcp_mux: bool) -> tuple[int, int]:
        rtp, rtcp = super().open_ports(rtcp_mux)
        self.open |= {rtp, rtcp}
        return rtp, rtcp

    def close_ports(self, rtp_port: int, rtcp_port: int) -> None:
        self.open -= {rtp_port, rtcp_port}


def make() -> tuple[LocalMediaControl, FakePorts]:
    ports = FakePorts()
    return LocalMediaControl(MediaEngine(rng=random.Random(3)), ports), ports


def configure(ctl: LocalMediaControl, leg: str, port: int) -> Peer:
    tx, rx = make_keys(), make_keys()
    ctl.configure_leg(
        leg,
        remote_rtp=("192.0.2.1", port),
        remote_rtcp=None,
        codec_pt=0,
        codec_name="PCMU",
        dtmf_pt=101,
        tx_keys=tx,
        rx_keys=rx,
    )
    return Peer(440.0, send_keys=rx, recv_keys=tx)


def test_protocol_is_satisfied() -> None:
    ctl: MediaControl = make()[0]
    assert ctl is not None


def test_allocate_configure_release() -> None:
    ctl, ports = make()
    assert ctl.allocate_leg("c1", "a", rtcp_mux=True) == LegPorts("192.0.2.10", 40000, 40000)
    assert ctl.allocate_leg("c1", "b", rtcp_mux=False) == LegPorts("192.0.2.10", 40002, 40003)
    ctl.allocate_leg("c2", "c", rtcp_mux=True)
    with pytest.raises(MediaEngineError):
        ctl.allocate_leg("c1", "a", rtcp_mux=True)
    configure(ctl, "a", 5000)
    configure(ctl, "b", 5002)
    ctl.release_leg("a")
    assert ports.open == {40002, 40003, 40004}
    ctl.release_conference("c1")
    assert ports.open == {40004}
    ctl.release_conference("c2")
    assert ports.open == set()


def test_update_leg_changes_only_what_is_given() -> None:
    ctl, _ = make()
    ctl.allocate_leg("c1", "a", rtcp_mux=True)
    peer = configure(ctl, "a", 5000)
    ssrc = ctl.leg_stats("a").ssrc
    ctl.update_leg("a", direction=Direction.INACTIVE)
    assert ctl.engine.tick(0.0) == []  # on hold: nothing goes out
    ctl.update_leg("a", direction=Direction.SENDRECV, remote_rtp=("192.0.2.1", 6000))
    out = ctl.engine.tick(0.02)
    assert [dst for _p, _d, dst in out] == [("192.0.2.1", 6000)]
    deliver(ctl.engine, 40000, peer.next_packet(), ("192.0.2.1", 5000), 0.03)
    assert ctl.leg_stats("a").wrong_source == 1
    new_tx = make_keys()
    ctl.update_leg("a", tx_keys=new_tx)
    assert ctl.leg_stats("a").ssrc != ssrc
    with pytest.raises(MediaEngineError):
        ctl.update_leg("a", rx_keys=None)  # plain RTP is disabled by default
    with pytest.raises(MediaEngineError):
        ctl.update_leg("nope", direction=Direction.INACTIVE)


def test_events_reach_the_sink() -> None:
    ctl, _ = make()
    got: list[MediaEvent] = []
    ctl.set_event_sink(got.append)
    ctl.allocate_leg("c1", "a", rtcp_mux=True)
    peer = configure(ctl, "a", 5000)
    pkt = peer.raw_packet(101, bytes(TelephoneEvent(5, True, 10, 800)), ts=1)
    deliver(ctl.engine, 40000, pkt, ("192.0.2.1", 5000), 0.0)
    ctl.deliver_events()
    assert len(got) == 1 and isinstance(got[0], DtmfReceived) and got[0].event.digit == "5"
    ctl.deliver_events()
    assert len(got) == 1
    ctl.update_leg("a", dtmf_pt=None)
    deliver(
        ctl.engine,
        40000,
        peer.raw_packet(101, bytes(TelephoneEvent(5, True, 10, 800)), ts=9),
        ("192.0.2.1", 5000),
        0,
    )
    assert ctl.leg_stats("a").unknown_pt == 1
