"""The focus's link to a separate mixer: the sans-I/O state machine (:mod:`imsconf.media.link`) with ``now``
passed in, and the asyncio adapter (``RemoteMediaControl.keep_connected``) on loopback with mutual TLS:
loss by a closed channel and by missed heartbeats, reconnection with backoff, a new mixer at the address."""

from __future__ import annotations

import asyncio
import json
import random
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from test_remote import FakeTransport, until

from imsconf.app.pki import client_ssl_context, ensure_dev_pki, issue_cert, server_ssl_context
from imsconf.media.engine import MediaEngine, MediaEngineError, MediaEvent
from imsconf.media.events import MixerLost, MixerReady
from imsconf.media.link import Backoff, Heartbeat, LinkAction, LinkState, MixerLink
from imsconf.media.mixer_server import MixerControlServer
from imsconf.media.remote import RemoteMediaControl

# ---- the state machine ------------------------------------------------------------------------------


def test_backoff_doubles_up_to_its_cap_and_resets() -> None:
    b = Backoff()
    assert [b.delay() for _ in range(7)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 5.0]
    b.reset()
    assert b.delay() == 0.5
    with pytest.raises(ValueError):
        Backoff(initial=0.0)
    with pytest.raises(ValueError):
        Heartbeat(interval=3.0, timeout=3.0)


def test_the_first_attempt_is_due_at_once_then_failures_back_off() -> None:
    link = MixerLink()
    assert link.state is LinkState.DOWN and link.next_deadline() == 0.0
    assert link.poll(100.0) == [LinkAction.CONNECT]
    link.attempting(100.0)
    assert link.state.value == "connecting" and link.next_deadline() is None and link.poll(200.0) == []
    waits = []
    t = 100.0
    for _ in range(6):
        waits.append(link.attempt_failed(t))
        assert link.poll(t + waits[-1] - 0.01) == []
        t += waits[-1]
        assert link.next_deadline() == t and link.poll(t) == [LinkAction.CONNECT]
        link.attempting(t)
    assert waits == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
    assert link.attempts == 6 and link.generation == 0


def test_up_pings_every_interval_and_hears_the_mixer() -> None:
    link = MixerLink(heartbeat=Heartbeat(interval=1.0, timeout=3.0))
    link.attempting(0.0)
    assert link.connected(10.0) == 1 and link.up and link.attempts == 0
    assert link.next_deadline() == 11.0
    assert link.poll(10.5) == []
    assert link.poll(11.0) == [LinkAction.PING]
    link.received(11.01)  # the pong
    assert link.poll(12.0) == [LinkAction.PING]
    link.received(12.02)
    assert link.next_deadline() == 13.0
    assert link.poll(14.9) == [LinkAction.PING]  # late pings, the mixer answered at 12.02: still up
    assert link.up


def test_a_silent_mixer_is_lost_within_the_heartbeat_timeout() -> None:
    link = MixerLink(heartbeat=Heartbeat(interval=1.0, timeout=3.0))
    link.attempting(0.0)
    link.connected(10.0)
    seen: list[tuple[float, list[LinkAction]]] = []
    t = 10.0
    while link.up:
        d = link.next_deadline()
        assert d is not None and d <= 13.0  # detection is bounded by the timeout
        t = d
        seen.append((t, link.poll(t)))
    assert seen[-1] == (13.0, [LinkAction.DROP])
    assert [a for _, acts in seen for a in acts].count(LinkAction.PING) == 2
    assert link.state is LinkState.DOWN and link.lost_at == 13.0
    assert link.next_deadline() == 13.5  # the backoff starts over at 0.5 s


def test_a_loss_backs_off_and_a_new_connection_resets_the_backoff() -> None:
    link = MixerLink()
    link.attempting(0.0)
    link.connected(1.0)
    assert link.lost(5.0) == 0.5 and link.lost_at == 5.0
    link.attempting(5.5)
    assert link.attempt_failed(5.6) == 1.0
    link.attempting(6.6)
    assert link.lost(6.7) == 2.0  # the channel closed before the hello: one more failed attempt
    link.attempting(8.7)
    assert link.connected(8.8) == 2 and link.attempts == 0
    assert link.lost(20.0) == 0.5


# ---- the adapter on loopback ------------------------------------------------------------------------


Body = Callable[[Path, ssl.SSLContext, ssl.SSLContext], Awaitable[None]]


def run(tmp_path: Path, body: Body) -> None:
    pki = ensure_dev_pki(tmp_path / "data", [])
    cert, key = issue_cert(pki, "focus", tmp_path / "focus", client=True)
    server_ctx = server_ssl_context(pki, require_client_cert=True)
    client_ctx = client_ssl_context(pki.ca_cert, cert, key)
    asyncio.run(asyncio.wait_for(body(tmp_path, server_ctx, client_ctx), 30))


async def start_mixer(ctx: ssl.SSLContext, port: int = 0) -> tuple[asyncio.Server, MixerControlServer, int]:
    mixer = MixerControlServer.build(MediaEngine(rng=random.Random(3)), FakeTransport())
    server = await asyncio.start_server(mixer.handle, "127.0.0.1", port, ssl=ctx, reuse_address=True)
    return server, mixer, int(server.sockets[0].getsockname()[1])


async def stop_mixer(server: asyncio.Server, mixer: MixerControlServer) -> None:
    server.close()
    await mixer.close()
    await server.wait_closed()


def test_a_restarted_mixer_is_found_again(tmp_path: Path) -> None:
    async def body(tmp: Path, server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext) -> None:
        server, mixer, port = await start_mixer(server_ctx)
        events: list[MediaEvent] = []
        remote = RemoteMediaControl(MixerLink(Backoff(0.05, 0.2)))
        remote.set_event_sink(events.append)
        try:
            await remote.connect("127.0.0.1", port, client_ctx)
            remote.keep_connected("127.0.0.1", port, client_ctx)
            assert remote.ready and remote.link.generation == 1
            remote.allocate_leg("c1", "c1.p1", True)
            await until(lambda: "c1.p1" in mixer.control.engine.legs(), "the leg on the mixer")

            await stop_mixer(server, mixer)  # the mixer goes away, closing its legs
            assert list(mixer.control.engine.legs()) == []
            await until(lambda: any(isinstance(e, MixerLost) for e in events), "the loss")
            assert not remote.ready
            with pytest.raises(MediaEngineError, match="not connected"):
                remote.allocate_leg("c1", "c1.p2", True)
            remote.update_leg("c1.p1", codec_pt=8)  # a leg of the lost mixer: nothing to tell anyone
            remote.set_floor_control("c1", True)  # kept for the next mixer

            server, mixer, _ = await start_mixer(server_ctx, port)  # a new mixer at the same address
            await until(lambda: remote.ready, "reconnected")
            assert isinstance(events[-1], MixerReady) and events[-1].generation == 2
            assert remote.link.generation == 2
            await until(
                lambda: mixer.control.engine.table.conf_settings("c1").floor, "floor control replayed"
            )
            ports = remote.allocate_leg("c1", "c1.p1", True)  # the same leg id, made again on the new one
            await until(lambda: "c1.p1" in mixer.control.engine.legs(), "the leg on the new mixer")
            assert ports.rtp_port > 0
            assert remote.errors == []
        finally:
            await remote.close()
            await stop_mixer(server, mixer)

    run(tmp_path, body)


def test_the_server_may_start_before_its_mixer(tmp_path: Path) -> None:
    async def body(tmp: Path, server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext) -> None:
        server, mixer, port = await start_mixer(server_ctx)
        await stop_mixer(server, mixer)  # a free port nobody listens on
        events: list[MediaEvent] = []
        remote = RemoteMediaControl(MixerLink(Backoff(0.05, 0.1)))
        remote.set_event_sink(events.append)
        with pytest.raises(ConnectionRefusedError):
            await remote.connect("127.0.0.1", port, client_ctx)
        remote.keep_connected("127.0.0.1", port, client_ctx)
        try:
            await asyncio.sleep(0.4)
            assert not remote.ready and remote.link.attempts >= 2 and events == []
            server, mixer, _ = await start_mixer(server_ctx, port)
            await until(lambda: remote.ready, "connected")
            assert events == [MixerReady(1)]
        finally:
            await remote.close()
            await stop_mixer(server, mixer)

    run(tmp_path, body)


def test_a_mixer_that_stops_answering_is_lost_by_heartbeat(tmp_path: Path) -> None:
    """A mixer that says hello and then nothing (hung, or a partition that keeps the TCP connection)."""

    async def body(tmp: Path, server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext) -> None:
        held: list[asyncio.StreamWriter] = []

        async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            held.append(writer)
            writer.write(json.dumps({"hello": {"host": "127.0.0.1", "version": 1}}).encode() + b"\n")
            writer.write(json.dumps({"pool": [[41000, 41001]]}).encode() + b"\n")
            while await reader.readline():  # reads the pings, never answers
                pass

        server = await asyncio.start_server(mute, "127.0.0.1", 0, ssl=server_ctx)
        port = int(server.sockets[0].getsockname()[1])
        events: list[MediaEvent] = []
        loop = asyncio.get_running_loop()
        remote = RemoteMediaControl(MixerLink(Backoff(5.0, 5.0), Heartbeat(0.1, 0.3)))
        remote.set_event_sink(events.append)
        try:
            await remote.connect("127.0.0.1", port, client_ctx)
            t0 = loop.time()
            remote.keep_connected("127.0.0.1", port, client_ctx)
            await until(lambda: any(isinstance(e, MixerLost) for e in events), "the loss", timeout=3)
            took = loop.time() - t0
            assert 0.25 <= took < 1.0, took
            lost = next(e for e in events if isinstance(e, MixerLost))
            assert "heartbeat" in lost.reason
            assert not remote.ready
        finally:
            await remote.close()
            for w in held:
                w.close()
            server.close()

    run(tmp_path, body)
