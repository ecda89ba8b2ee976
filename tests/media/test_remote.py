"""The new control operations over the real mutual-TLS JSON-lines channel (RemoteMediaControl ->
MixerControlServer) on loopback, with certificates from the dev CA."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from media_peer import Peer, deliver, make_keys

from imsconf.app.pki import client_ssl_context, ensure_dev_pki, issue_cert, server_ssl_context
from imsconf.keys.policy import DownlinkMode
from imsconf.media.control import NullPortAllocator
from imsconf.media.engine import (
    GroupStreamConfirmed,
    GroupStreamFailing,
    MediaEngine,
    MediaEngineError,
    MediaEvent,
    PromptFinished,
    SpeakingChanged,
)
from imsconf.media.mixer_server import MixerControlServer
from imsconf.media.remote import RemoteMediaControl
from imsconf.media.rtp import ReceiverReport, ReportBlock, serialize_rtcp
from imsconf.media.srtp import SrtpReceiver, SrtpSender


class FakeTransport(NullPortAllocator):
    """The PortAllocator + clock the mixer side needs (no sockets: the engine is driven by hand)."""

    def __init__(self) -> None:
        super().__init__(host="127.0.0.1", first=42000)
        self.after_tick: Callable[[], None] | None = None

    def now(self) -> float:
        return 0.0


async def until(cond: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while True:
        try:
            if cond():
                return
        except MediaEngineError:  # the command that creates the leg has not arrived yet
            pass
        if loop.time() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


def run(
    tmp_path: Path,
    body: Callable[[RemoteMediaControl, MixerControlServer], Awaitable[None]],
    heartbeat: bool = False,
) -> None:
    pki = ensure_dev_pki(tmp_path / "data", [])
    cert, key = issue_cert(pki, "focus", tmp_path / "focus", client=True)
    server_ctx = server_ssl_context(pki, require_client_cert=True)
    client_ctx = client_ssl_context(pki.ca_cert, cert, key)

    async def main() -> None:
        engine = MediaEngine(rng=random.Random(11))
        transport = FakeTransport()
        mixer = MixerControlServer.build(engine, transport)
        server = await asyncio.start_server(mixer.handle, "127.0.0.1", 0, ssl=server_ctx)
        port = server.sockets[0].getsockname()[1]
        remote = RemoteMediaControl()
        try:
            await remote.connect("127.0.0.1", port, client_ctx)
            if heartbeat:  # pings every second (their answers carry the mixer's figures)
                remote.keep_connected("127.0.0.1", port, client_ctx)
            await body(remote, mixer)
        finally:
            await remote.close()
            server.close()
            await server.wait_closed()

    asyncio.run(main())


def test_every_new_operation_round_trips(tmp_path: Path) -> None:
    async def body(remote: RemoteMediaControl, mixer: MixerControlServer) -> None:
        eng = mixer.control.engine
        got: list[MediaEvent] = []
        remote.set_event_sink(got.append)
        for leg in ("a", "b"):
            remote.allocate_leg("c1", leg, rtcp_mux=True)
        tx, rx = make_keys(), make_keys()
        remote.configure_leg(
            "a",
            remote_rtp=("127.0.0.1", 5000),
            remote_rtcp=None,
            codec_pt=0,
            codec_name="PCMU",
            dtmf_pt=101,
            tx_keys=tx,
            rx_keys=rx,
        )
        remote.configure_leg(
            "b",
            remote_rtp=("127.0.0.1", 5002),
            remote_rtcp=None,
            codec_pt=0,
            codec_name="PCMU",
            dtmf_pt=None,
            tx_keys=make_keys(),
            rx_keys=make_keys(),
        )
        remote.set_downlink_mode("c1", DownlinkMode.GROUP)
        group_key = make_keys()
        remote.add_group_epoch("c1", 1, group_key, 0x7000_0001)
        remote.add_group_epoch("c1", 2, make_keys(), 0x7000_0002, codec_name="PCMU", codec_pt=0)
        remote.set_listener_stream("a", 1, speaker_ssrc=0x7000_0101, keep_own=True)
        await until(lambda: eng.leg_stats("a").group_epoch == 1, "set_listener_stream")
        assert eng.downlink_mode("c1") is DownlinkMode.GROUP and eng.group_epochs("c1") == [1, 2]
        assert not group_key.wiped  # the focus's copy is the focus's business
        a = eng.leg_map["a"].group
        assert a is not None and a.pssrc == 0x7000_0101 and a.keep_own
        # the mixer executes with the key it was sent: the common stream decrypts with it
        out = eng.tick(0.0)
        from imsconf.media.srtp import SrtpReceiver

        common = [d for p, d, _ in out if p == eng.leg_ports("a")[0] and d[8:12] == bytes.fromhex("70000001")]
        assert len(common) == 1 and SrtpReceiver(group_key).unprotect(common[0])

        remote.retire_group_epoch("c1", 1)
        await until(lambda: eng.group_epochs("c1") == [2], "retire_group_epoch")
        assert eng.leg_stats("a").group_epoch is None
        remote.set_listener_stream("a", 2)
        remote.set_listener_stream("b", 2)
        await until(lambda: eng.leg_stats("b").group_epoch == 2, "set_listener_stream 2")
        remote.set_listener_stream("b", None)
        await until(lambda: eng.leg_stats("b").group_epoch is None, "set_listener_stream None")

        remote.set_floor_control("c1", True)
        remote.set_floor_holders("c1", frozenset({"b"}))
        await until(lambda: eng.conf_map["c1"].holders == frozenset({"b"}), "set_floor_holders")
        assert eng.conf_map["c1"].floor and not eng.leg_map["a"].mixes_in and eng.leg_map["b"].mixes_in

        remote.set_lobby("a", True)
        remote.play_prompt("a", "beep", loop=False)
        await until(lambda: eng.leg_stats("a").prompt == "beep", "play_prompt")
        assert eng.leg_stats("a").lobby
        # events come back: the prompt ends, a receiver report confirms epoch 2 for a
        remote.set_listener_stream("a", 2)
        await until(lambda: eng.leg_stats("a").group_epoch == 2, "back on epoch 2")
        for i in range(12):
            eng.tick(0.02 * (i + 1))
        rr = SrtpSender(rx).protect_rtcp(
            serialize_rtcp([ReceiverReport(1234, (ReportBlock(0x7000_0002, 0, 0, 9, 1),))])
        )
        deliver(eng, eng.leg_ports("a")[0], rr, ("127.0.0.1", 5000), 0.3)
        mixer.control.deliver_events()
        await until(lambda: len(got) >= 2, "events")
        assert PromptFinished("a", "beep") in got and GroupStreamConfirmed("a", 2) in got
        # and GroupStreamFailing crosses too
        mixer._on_event(GroupStreamFailing("b", 2, 0.5, "loss"))
        await until(lambda: GroupStreamFailing("b", 2, 0.5, "loss") in got, "failing event")

        remote.play_prompt("a", None)
        remote.set_lobby("a", False)
        await until(lambda: not eng.leg_stats("a").lobby, "set_lobby False")
        assert eng.leg_stats("a").prompt is None

        # errors come back on the channel, the stream keeps going
        remote.retire_group_epoch("c1", 99)
        remote.add_group_epoch("c1", 3, make_keys(), 0x7000_0002)  # SSRC reuse
        await until(lambda: len(remote.errors) == 2, "errors")
        assert [e["op"] for e in remote.errors] == ["retire_group_epoch", "add_group_epoch"]
        assert "never reused" in remote.errors[1]["error"]

        remote.release_conference("c1")
        await until(lambda: "c1" not in eng.conf_map and not list(eng.legs()), "release_conference")

    run(tmp_path, body)


def test_bad_mode_is_refused_locally(tmp_path: Path) -> None:
    async def body(remote: RemoteMediaControl, mixer: MixerControlServer) -> None:
        with pytest.raises(MediaEngineError):
            remote.set_downlink_mode("c1", "mixed")  # type: ignore[arg-type]

    run(tmp_path, body)


def test_a_vanished_focus_takes_its_group_keys_with_it(tmp_path: Path) -> None:
    async def body(remote: RemoteMediaControl, mixer: MixerControlServer) -> None:
        eng = mixer.control.engine
        remote.set_downlink_mode("c9", DownlinkMode.GROUP)
        remote.add_group_epoch("c9", 1, make_keys(), 0x7100_0001)
        await until(lambda: eng.group_epochs("c9") == [1], "add_group_epoch")
        await remote.close()
        await until(lambda: "c9" not in eng.conf_map, "conference state dropped on disconnect")

    run(tmp_path, body)


def test_mute_deaf_speaking_and_figures_cross_the_channel(tmp_path: Path) -> None:
    async def body(remote: RemoteMediaControl, mixer: MixerControlServer) -> None:
        eng = mixer.control.engine
        got: list[MediaEvent] = []
        remote.set_event_sink(got.append)
        peers: dict[str, Peer] = {}
        send_keys = {}
        for i, (leg, freq) in enumerate((("a", 400.0), ("b", 1000.0), ("c", 1600.0))):
            remote.allocate_leg("c1", leg, rtcp_mux=True)
            tx, rx = make_keys(), make_keys()
            remote.configure_leg(
                leg,
                remote_rtp=("127.0.0.1", 5000 + 2 * i),
                remote_rtcp=None,
                codec_pt=0,
                codec_name="PCMU",
                dtmf_pt=None,
                tx_keys=tx,
                rx_keys=rx,
            )
            peers[leg] = Peer(freq, send_keys=rx, recv_keys=tx)
            send_keys[leg] = rx
        remote.set_leg_mix("a", muted=True, deaf=True)
        remote.set_leg_mix("a", muted=True, deaf=True)  # idempotent
        await until(lambda: eng.leg_stats("a").muted and eng.leg_stats("a").deaf, "set_leg_mix")
        now = 0.0
        for _ in range(10):
            for i, (leg, peer) in enumerate(peers.items()):
                deliver(eng, eng.leg_ports(leg)[0], peer.next_packet(), ("127.0.0.1", 5000 + 2 * i), now)
            eng.tick(now)
            now += 0.02
        mixer.control.deliver_events()
        await until(lambda: len(got) >= 2, "speaking events")
        assert sorted((e.leg_id, e.speaking) for e in got if isinstance(e, SpeakingChanged)) == [
            ("b", True),
            ("c", True),
        ]  # the muted leg never speaks
        assert SpeakingChanged("b", "c1", True) in got
        # the leg's RTCP figures, asked of the mixer
        ssrc = eng.leg_stats("a").ssrc
        rr = SrtpSender(send_keys["a"]).protect_rtcp(
            serialize_rtcp([ReceiverReport(peers["a"].ssrc, (ReportBlock(ssrc, 128, 1, 9, 40),))])
        )
        deliver(eng, eng.leg_ports("a")[0], rr, ("127.0.0.1", 5000), now)
        with pytest.raises(MediaEngineError):
            remote.leg_stats("a")  # nothing answered yet: the call asks
        await until(lambda: remote.leg_stats("a").rtcp_loss == 0.5, "leg_stats over the channel")
        st = remote.leg_stats("a")
        assert st.muted and st.deaf and st.rtcp_jitter_ms == 5.0 and st.received == 10
        # the mixer's figures come with its heartbeat answers
        await until(lambda: remote.mixer_stats().legs == 3, "mixer_stats", timeout=4.0)
        ms = remote.mixer_stats()
        assert ms.conferences == 1 and ms.ticks == 10 and ms.rtp_received == 30 and ms.rtp_sent == 30
        remote.set_leg_mix("a", muted=False, deaf=False)
        await until(lambda: not eng.leg_stats("a").muted, "unmute")
        remote.release_leg("a")
        with pytest.raises(MediaEngineError):
            remote.leg_stats("a")

    run(tmp_path, body, heartbeat=True)


def test_a_wideband_codec_crosses_the_channel(tmp_path: Path) -> None:
    """The negotiated codec (name, RTP clock, fmtp parameters, payload type) reaches the separate mixer's
    leg, on configure and on update."""

    async def body(remote: RemoteMediaControl, mixer: MixerControlServer) -> None:
        eng = mixer.control.engine
        remote.allocate_leg("c2", "w", rtcp_mux=True)
        params = (("mode-set", "0,1,2"), ("octet-align", "1"))
        remote.configure_leg(
            "w",
            remote_rtp=("127.0.0.1", 5004),
            remote_rtcp=None,
            codec_pt=97,
            codec_name="AMR-WB",
            dtmf_pt=102,
            tx_keys=make_keys(),
            rx_keys=make_keys(),
            codec_clock=16000,
            codec_params=params,
        )
        await until(lambda: "w" in mixer.control._configs, "configure_leg")
        cfg = mixer.control._configs["w"]
        assert (cfg.codec_name, cfg.codec_clock, cfg.codec_params, cfg.codec_pt) == (
            "AMR-WB",
            16000,
            params,
            97,
        )
        assert eng.leg_map["w"].wb is not None and eng.leg_map["w"].clock == 16000
        remote.update_leg(
            "w", codec_pt=96, codec_name="opus", codec_clock=48000, codec_params=(), dtmf_pt=103
        )
        await until(lambda: mixer.control._configs["w"].codec_name == "opus", "update_leg")
        cfg = mixer.control._configs["w"]
        assert (cfg.codec_clock, cfg.codec_params, cfg.codec_pt, cfg.dtmf_pt) == (48000, (), 96, 103)
        remote.update_leg("w", direction=None)  # no codec fields: the codec stays
        remote.update_leg("w", codec_pt=9, codec_name="G722", codec_clock=8000, codec_params=())
        await until(lambda: mixer.control._configs["w"].codec_name == "G722", "update_leg G722")
        assert not remote.errors

    run(tmp_path, body)


def test_group_streams_of_the_16khz_mix_over_the_channel(tmp_path: Path) -> None:
    """The separate mixer puts Opus listeners and a PCMU listener of a conference mixed at 16 kHz on the
    epoch the focus sends over the channel: one common stream per codec group, under the group key."""

    async def body(remote: RemoteMediaControl, mixer: MixerControlServer) -> None:
        eng = mixer.control.engine
        legs = {"o1": ("opus", 48000, 111), "o2": ("opus", 48000, 111), "u": ("PCMU", 8000, 0)}
        addr = {}
        for i, (leg, (name, clock, pt)) in enumerate(legs.items()):
            remote.allocate_leg("c3", leg, rtcp_mux=True)
            addr[leg] = ("127.0.0.1", 5100 + 2 * i)
            remote.configure_leg(
                leg,
                remote_rtp=addr[leg],
                remote_rtcp=None,
                codec_pt=pt,
                codec_name=name,
                dtmf_pt=101,
                tx_keys=make_keys(),
                rx_keys=make_keys(),
                codec_clock=clock,
                codec_params=(),
            )
        remote.set_downlink_mode("c3", DownlinkMode.GROUP)
        group_key = make_keys()
        remote.add_group_epoch("c3", 1, group_key, 0x7200_0001)
        for leg in legs:
            remote.set_listener_stream(leg, 1)
        await until(lambda: all(eng.leg_stats(leg).group_epoch == 1 for leg in legs), "listeners")
        for now in (0.0, 0.02):
            got = {dst: data for _port, data, dst in eng.tick(now) if not 192 <= data[1] <= 223}
        assert got[addr["o1"]] == got[addr["o2"]] != got[addr["u"]]
        ssrcs = {int.from_bytes(got[addr[leg]][8:12], "big") for leg in ("o1", "u")}
        assert 0x7200_0001 in ssrcs and len(ssrcs) == 2
        rx = SrtpReceiver(group_key)
        assert rx.unprotect(got[addr["o1"]])[1] & 0x7F == 111
        assert rx.unprotect(got[addr["u"]])[1] & 0x7F == 0
        assert not remote.errors

    run(tmp_path, body)
