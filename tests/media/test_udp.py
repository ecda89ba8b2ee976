"""The asyncio adapter over real loopback sockets, with pylibsrtp phones written in the test."""

from __future__ import annotations

import asyncio
import random
import socket

import numpy as np
import pytest
from media_peer import Peer, goertzel, make_keys

from imsconf.media.control import LegPorts
from imsconf.media.dtmf import DtmfEvent, TelephoneEvent
from imsconf.media.engine import DtmfReceived, MediaEngine, MediaEvent
from imsconf.media.fastpath import extension_loaded
from imsconf.media.udp import local_media
from imsconf.sdp.direction import Direction
from peers import in_ci

FREQS = [440.0, 1000.0, 1700.0]


class UdpPhone:
    def __init__(self, loop: asyncio.AbstractEventLoop, peer: Peer) -> None:
        self.peer = peer
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.rtcp_packets = 0
        loop.add_reader(self.sock.fileno(), self._readable)
        self.loop = loop

    @property
    def addr(self) -> tuple[str, int]:
        host, port = self.sock.getsockname()
        return host, port

    def _readable(self) -> None:
        while True:
            try:
                data, _ = self.sock.recvfrom(2048)
            except BlockingIOError:
                return
            if 192 <= data[1] <= 223:
                self.rtcp_packets += 1
            else:
                self.peer.deliver(data)

    def close(self) -> None:
        self.loop.remove_reader(self.sock.fileno())
        self.sock.close()


async def scenario(c_path: bool) -> None:
    loop = asyncio.get_running_loop()
    base = random.Random().randrange(20000, 60000, 2)
    control, transport = local_media(MediaEngine(rtcp_interval=0.5), "127.0.0.1", base, base + 200)
    assert control.engine.c_path == c_path
    events: list[MediaEvent] = []
    control.set_event_sink(events.append)
    transport.start()
    phones: dict[str, UdpPhone] = {}
    ports: dict[str, LegPorts] = {}
    try:
        for i, freq in enumerate(FREQS):
            leg = f"p{i}"
            tx, rx = make_keys(), make_keys()
            phone = UdpPhone(loop, Peer(freq, send_keys=rx, recv_keys=tx))
            mux = i != 1  # p1 uses a separate RTCP port
            ports[leg] = control.allocate_leg("conf", leg, rtcp_mux=mux)
            assert ports[leg].host == "127.0.0.1" and ports[leg].rtp_port % 2 == 0
            assert (ports[leg].rtcp_port == ports[leg].rtp_port) == mux
            control.configure_leg(
                leg,
                remote_rtp=phone.addr,
                remote_rtcp=phone.addr if mux else None,
                codec_pt=0,
                codec_name="PCMU",
                dtmf_pt=101,
                tx_keys=tx,
                rx_keys=rx,
                direction=Direction.SENDRECV,
            )
            phones[leg] = phone
        stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        stranger.bind(("127.0.0.1", 0))
        t0 = loop.time()
        for n in range(75):  # 1.5 s of audio, paced on absolute deadlines
            await asyncio.sleep(max(0.0, t0 + n * 0.020 - loop.time()))
            for leg, phone in phones.items():
                phone.sock.sendto(phone.peer.next_packet(), ("127.0.0.1", ports[leg].rtp_port))
            stranger.sendto(b"\x80\x00" + bytes(180), ("127.0.0.1", ports["p0"].rtp_port))
        p0 = phones["p0"].peer
        # A forged packet (fails authentication) and a replayed one: dropped and counted.
        good = p0.next_packet()
        forged = bytearray(good)
        forged[30] ^= 0x40
        for pkt in (bytes(forged), good, good):
            phones["p0"].sock.sendto(pkt, ("127.0.0.1", ports["p0"].rtp_port))
            await asyncio.sleep(0.005)
        for d, end in ((160, False), (320, True), (320, True), (320, True)):
            pkt = p0.raw_packet(101, bytes(TelephoneEvent(7, end, 10, d)), ts=123456)
            phones["p0"].sock.sendto(pkt, ("127.0.0.1", ports["p0"].rtp_port))
        await asyncio.sleep(0.1)
        stranger.close()

        for i, leg in enumerate(phones):
            heard = phones[leg].peer.heard(20)
            assert goertzel(heard, FREQS[i]) < 100, f"{leg} hears itself"
            for j, f in enumerate(FREQS):
                if j != i:
                    assert goertzel(heard, f) > 2000, f"{leg} does not hear {f} Hz"
            assert phones[leg].rtcp_packets >= 1 or leg == "p1"  # p1 gets RTCP on its port + 1
            assert len(phones[leg].peer.received) >= 60
        # every leg's connected RTP socket is read by C on the C path, by Python otherwise
        assert int((control.engine.slots.fd2slot >= 0).sum()) == (3 if c_path else 0)
        st = control.leg_stats("p0")
        assert st.wrong_source == 75 and st.received >= 75
        assert st.decrypt_failed == 1 and st.replayed == 1
        assert transport.stats.ticks >= 70
        dtmf = [e.event for e in events if isinstance(e, DtmfReceived)]
        assert dtmf == [DtmfEvent("7", 20, 10, False), DtmfEvent("7", 40, 10, True)]
        control.release_leg("p1")
        control.release_conference("conf")
        assert list(control.engine.legs()) == []
    finally:
        for phone in phones.values():
            phone.close()
        transport.close()


@pytest.mark.parametrize("c_path", [True, False], ids=["c-path", "python-path"])
def test_three_srtp_phones_over_loopback(c_path: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same conference through the C per-packet path and through the Python one."""
    if c_path and not extension_loaded():
        if in_ci():
            pytest.fail("imsconf.media._fastpath was not built")
        pytest.skip("the C extension is not built here")
    monkeypatch.setenv("IMSCONF_FASTPATH", "1" if c_path else "0")
    asyncio.run(scenario(c_path))


async def mute_deaf_scenario(c_path: bool) -> None:
    loop = asyncio.get_running_loop()
    base = random.Random().randrange(20000, 60000, 2)
    control, transport = local_media(MediaEngine(), "127.0.0.1", base, base + 200)
    assert control.engine.c_path == c_path
    transport.start()
    phones: dict[str, UdpPhone] = {}
    ports: dict[str, LegPorts] = {}
    try:
        for i, freq in enumerate(FREQS):
            leg = f"p{i}"
            tx, rx = make_keys(), make_keys()
            phones[leg] = UdpPhone(loop, Peer(freq, send_keys=rx, recv_keys=tx))
            ports[leg] = control.allocate_leg("conf", leg, rtcp_mux=True)
            control.configure_leg(
                leg,
                remote_rtp=phones[leg].addr,
                remote_rtcp=phones[leg].addr,
                codec_pt=0,
                codec_name="PCMU",
                dtmf_pt=101,
                tx_keys=tx,
                rx_keys=rx,
            )

        def after(leg: str, mark: int) -> np.ndarray:
            return np.concatenate(phones[leg].peer.received[mark + 5 :])  # past the packets in flight

        async def talk(ticks: int, marks: dict[str, int] | None = None) -> None:
            """Send for ``ticks`` ticks, and on until each phone got 25 packets after its mark."""
            t0 = loop.time()
            n = 0
            while n < ticks or any(
                len(phones[leg].peer.received) < m + 25 for leg, m in (marks or {}).items()
            ):
                await asyncio.sleep(max(0.0, t0 + n * 0.020 - loop.time()))
                for leg, phone in phones.items():
                    phone.sock.sendto(phone.peer.next_packet(), ("127.0.0.1", ports[leg].rtp_port))
                n += 1
                assert n < 500

        await talk(40)
        assert goertzel(phones["p2"].peer.heard(20), FREQS[0]) > 2000  # p0 heard before
        control.set_leg_mix("p0", muted=True, deaf=False)
        control.set_leg_mix("p1", muted=False, deaf=True)
        marks = {leg: len(phone.peer.received) for leg, phone in phones.items()}
        await talk(40, marks)
        assert goertzel(after("p2", marks["p2"]), FREQS[0]) < 100, "the muted leg is still heard"
        assert goertzel(after("p2", marks["p2"]), FREQS[1]) > 2000
        assert not after("p1", marks["p1"]).any(), "the deaf leg hears something"
        assert int((control.engine.slots.fd2slot >= 0).sum()) == (3 if c_path else 0)
        st = control.mixer_stats()
        assert st.legs == 3 and st.conferences == 1 and st.ticks >= 70
        assert 0 < st.tick_seconds_buckets[-1] <= st.ticks and st.tick_seconds_sum > 0
        assert st.rtp_received >= 3 * 70 and st.rtp_sent >= 3 * 70
    finally:
        for phone in phones.values():
            phone.close()
        transport.close()


@pytest.mark.parametrize("c_path", [True, False], ids=["c-path", "python-path"])
def test_mute_and_deaf_over_loopback(c_path: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """Mute and deaf through the C batch send and the Python send, and the figures the adapter feeds."""
    if c_path and not extension_loaded():
        if in_ci():
            pytest.fail("imsconf.media._fastpath was not built")
        pytest.skip("the C extension is not built here")
    monkeypatch.setenv("IMSCONF_FASTPATH", "1" if c_path else "0")
    asyncio.run(mute_deaf_scenario(c_path))
