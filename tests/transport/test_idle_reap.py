"""Idle SIP TCP connections are closed: soon when they never carried a SIP message, later when they did;
RFC 5626 CRLF keep-alives count as activity, bytes of an unfinished message do not.  Real loopback sockets,
short times (the defaults are 32 s and 300 s)."""

from __future__ import annotations

import asyncio

from transport_helpers import Recorder, Runner, both_loops, closed_after, connect, options, state, wait_for

from imsconf.transport.limits import StreamLimits
from imsconf.transport.manager import TransportManager
from imsconf.transport.reaper import IdleReaper

UNUSED, USED = 0.3, 0.8
SLACK = 0.25  # one sweep interval (UNUSED / 8) plus scheduling on a busy machine


async def _manager() -> tuple[TransportManager, int]:
    mgr = TransportManager(Recorder(), limits=StreamLimits(idle_unused=UNUSED, idle_used=USED))
    _, port = await mgr.listen("tcp", "127.0.0.1", 0)
    return mgr, port


@both_loops
def test_never_used_connection_is_closed_after_the_unused_time(run: Runner) -> None:
    async def scenario() -> None:
        mgr, port = await _manager()
        quiet = await connect(port)
        slow = await connect(port)  # an unfinished message, a byte at a time: not activity

        async def trickle() -> None:
            for byte in b"OPTIONS sip:x SIP/2.0\r\nVia: ":
                slow.send(bytes([byte]))
                await asyncio.sleep(0.02)

        feeder = asyncio.get_running_loop().create_task(trickle())
        waited = await asyncio.gather(closed_after(quiet), closed_after(slow))
        feeder.cancel()
        assert all(UNUSED - 0.05 <= t <= UNUSED + SLACK for t in waited), waited
        assert mgr.reaper.reaped == 2 and mgr.open_streams == 0 and mgr.admission.total == 0
        quiet.close()
        slow.close()
        await mgr.close()

    run(scenario())


@both_loops
def test_used_connection_lives_the_longer_time_after_its_last_message(run: Runner) -> None:
    async def scenario() -> None:
        mgr, port = await _manager()
        c = await connect(port)
        await asyncio.sleep(UNUSED / 2)
        c.send(options(1))
        rec = mgr.receiver
        assert isinstance(rec, Recorder)
        await wait_for(lambda: len(rec.messages) == 1)
        await asyncio.sleep(UNUSED + SLACK)
        assert state(c) == "open"  # past the unused time: it carried a message
        c.send(options(2))  # the time restarts at each message
        await wait_for(lambda: len(rec.messages) == 2)
        t = await closed_after(c)
        assert USED - 0.05 <= t <= USED + SLACK, t
        c.close()
        await mgr.close()

    run(scenario())


@both_loops
def test_crlf_keepalives_keep_a_connection_open(run: Runner) -> None:
    async def scenario() -> None:
        mgr, port = await _manager()
        loop = asyncio.get_running_loop()
        used = await connect(port)
        used.send(options(1))
        unused = await connect(port)  # keep-alives alone keep an unused connection, within its own time
        for _ in range(8):  # 1.6 s: twice the used time, five times the unused time
            used.send(b"\r\n\r\n")
            unused.send(b"\r\n\r\n")
            assert await asyncio.wait_for(loop.sock_recv(used, 16), 1.0) == b"\r\n"  # RFC 5626 pong
            assert await asyncio.wait_for(loop.sock_recv(unused, 16), 1.0) == b"\r\n"
            await asyncio.sleep(0.2)
        assert mgr.open_streams == 2 and mgr.reaper.reaped == 0
        t_unused, t_used = await asyncio.gather(closed_after(unused), closed_after(used))
        assert UNUSED - 0.25 <= t_unused <= UNUSED + SLACK, t_unused  # the last ping was 0.2 s ago
        assert USED - 0.25 <= t_used <= USED + SLACK, t_used
        used.close()
        unused.close()
        await mgr.close()

    run(scenario())


class _Conn:
    def __init__(self, conn_id: int) -> None:
        self.conn_id = conn_id

    def close(self) -> None:  # pragma: no cover - the sweep hands connections back, it closes nothing
        raise AssertionError


def test_sweep_takes_only_the_expired_heads() -> None:
    async def scenario() -> None:  # the sweeps are called by hand, at chosen times; the timer never fires
        r = IdleReaper(unused=32.0, used=300.0)
        assert r.interval == 4.0  # with the defaults a connection is closed at most 4 s late
        a, b, c = _Conn(1), _Conn(2), _Conn(3)
        r.add(a, 0.0)
        r.add(b, 10.0)
        r.add(c, 0.0, used=True)
        assert r.sweep(31.9) == []
        assert r.sweep(32.0) == [a]
        r.message(b, 40.0)  # used from now on: 300 s after its last message
        assert r.sweep(100.0) == []
        r.keepalive(c, 200.0)
        assert r.sweep(339.9) == [] and r.sweep(340.0) == [b]
        assert r.sweep(499.9) == [] and r.sweep(500.0) == [c]
        assert len(r) == 0 and r.reaped == 3
        r.message(a, 600.0)  # activity on one being closed does not bring it back
        r.keepalive(b, 600.0)
        assert len(r) == 0
        r.stop()

    asyncio.run(scenario())
