"""Caps on inbound SIP TCP/TLS connections (per source, in all), over real loopback sockets."""

from __future__ import annotations

import asyncio
import logging
import resource
from pathlib import Path

import pytest
from transport_helpers import Recorder, Runner, both_loops, connect, options, state, wait_for

from imsconf.app.pki import client_ssl_context, ensure_dev_pki, server_ssl_context
from imsconf.transport.limits import Admission, StreamLimits, default_max_connections, source_key
from imsconf.transport.manager import TransportManager


@both_loops
def test_per_source_cap_refuses_at_once_and_logs_once(run: Runner, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="imsconf.transport")

    async def scenario() -> None:
        mgr = TransportManager(Recorder(), limits=StreamLimits(max_per_source=5, max_total=100))
        _, port = await mgr.listen("tcp", "127.0.0.1", 0)
        clients = [await connect(port) for _ in range(8)]
        await wait_for(lambda: mgr.counters.get("stream_refused_per_source", 0) == 3)
        await wait_for(lambda: mgr.open_streams == 5)
        await asyncio.sleep(0.05)
        assert [state(c) for c in clients] == ["open"] * 5 + ["closed"] * 3
        assert mgr.counters["stream_accepted"] == 5
        assert mgr.admission.by_source("127.0.0.1") == 5
        refusals = [r for r in caplog.records if "stream_connection_refused" in r.getMessage()]
        assert len(refusals) == 1  # one line per source per interval, however many were refused
        assert "src=127.0.0.1 reason=per_source" in refusals[0].getMessage()
        # a place freed is a place taken again
        clients[0].close()
        await wait_for(lambda: mgr.open_streams == 4)
        again = await connect(port)
        await wait_for(lambda: mgr.open_streams == 5)
        assert state(again) == "open" and mgr.counters["stream_refused_per_source"] == 3
        # another source is counted on its own
        other = await connect(port, source="127.0.0.2")
        await wait_for(lambda: mgr.open_streams == 6)
        assert state(other) == "open"
        for c in [*clients, again, other]:
            c.close()
        await wait_for(lambda: mgr.open_streams == 0 and mgr.admission.total == 0)
        await mgr.close()

    run(scenario())


@both_loops
def test_global_cap_counts_every_source(run: Runner) -> None:
    async def scenario() -> None:
        mgr = TransportManager(Recorder(), limits=StreamLimits(max_per_source=64, max_total=4))
        _, port = await mgr.listen("tcp", "127.0.0.1", 0)
        clients = []
        for source in ("127.0.0.1", "127.0.0.2", "127.0.0.3"):
            clients += [await connect(port, source) for _ in range(2)]
        await wait_for(lambda: mgr.counters.get("stream_refused_total", 0) == 2 and mgr.open_streams == 4)
        await asyncio.sleep(0.05)
        assert [state(c) for c in clients] == ["open"] * 4 + ["closed"] * 2
        # an admitted connection still carries SIP
        clients[0].send(options())
        rec = mgr.receiver
        assert isinstance(rec, Recorder)
        await wait_for(lambda: len(rec.messages) == 1)
        for c in clients:
            c.close()
        await mgr.close()

    run(scenario())


@both_loops
def test_tls_cap_applies_before_the_handshake(run: Runner, tmp_path: Path) -> None:
    """A connection that never starts its TLS handshake holds its place; the next one from that source
    is refused without any TLS work."""
    pki = ensure_dev_pki(tmp_path, ["127.0.0.1"])

    async def scenario() -> None:
        rec = Recorder()
        mgr = TransportManager(
            rec, server_ssl=server_ssl_context(pki), limits=StreamLimits(max_per_source=2, max_total=100)
        )
        _, port = await mgr.listen("tls", "127.0.0.1", 0)
        silent = [await connect(port) for _ in range(2)]  # TCP only, no ClientHello
        await wait_for(lambda: mgr.admission.by_source("127.0.0.1") == 2)
        refused = await connect(port)
        await wait_for(lambda: mgr.counters.get("stream_refused_per_source", 0) == 1)
        await asyncio.sleep(0.05)
        assert state(refused) == "closed" and [state(s) for s in silent] == ["open", "open"]
        assert mgr.open_streams == 0  # handshakes pending: no SIP connection yet
        silent[0].close()  # the server's handshake fails, the place is freed
        await wait_for(lambda: mgr.admission.by_source("127.0.0.1") == 1)
        _reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=client_ssl_context(pki.ca_cert), server_hostname="127.0.0.1"
        )
        writer.write(options())
        await wait_for(lambda: len(rec.messages) == 1)
        assert rec.messages[0][1].transport == "tls" and mgr.open_streams == 1
        writer.close()
        silent[1].close()
        refused.close()
        await wait_for(lambda: mgr.admission.total == 0)
        await mgr.close()

    run(scenario())


def test_default_global_cap_follows_rlimit_nofile() -> None:
    assert default_max_connections(1024) == 320  # (1024 - 64 reserved) / 3
    assert default_max_connections(65536) == 21824
    assert default_max_connections(100) == 16  # a floor
    assert default_max_connections(resource.RLIM_INFINITY) == int(((1 << 20) - 64) / 3)
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    assert StreamLimits().total() == default_max_connections(soft)
    assert StreamLimits(max_total=10).total() == 10


def test_default_limits() -> None:
    limits = StreamLimits()
    assert (limits.max_per_source, limits.max_total) == (64, 0)
    assert (limits.idle_unused, limits.idle_used) == (32.0, 300.0)
    with pytest.raises(ValueError):
        StreamLimits(max_per_source=0)
    with pytest.raises(ValueError):
        StreamLimits(idle_used=0)


def test_source_key() -> None:
    assert source_key("192.0.2.7") == "192.0.2.7"
    assert source_key("2001:db8:1:2:aaaa::1") == source_key("2001:db8:1:2:bbbb::9") == "2001:db8:1:2::/64"
    assert source_key("2001:db8:1:3::1") != source_key("2001:db8:1:2::1")
    assert source_key("::ffff:192.0.2.7") == "192.0.2.7"


def test_admission_counts_and_log_interval(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="imsconf.transport")
    a = Admission(max_per_source=2, max_total=4, log_interval=60.0)
    assert a.admit("a", 0.0) is None and a.admit("a", 0.0) is None
    assert [a.admit("a", t) for t in (1.0, 2.0, 3.0)] == ["per_source"] * 3
    assert a.admit(None, 3.0) is None  # one we open: no per-source count
    assert a.admit("b", 4.0) is None and a.total == 4
    assert a.admit("c", 5.0) == "total"
    a.release("b")
    assert a.admit("a", 62.0) == "per_source"  # the interval is over: logged, with the two held back
    assert a.admit("c", 63.0) is None and a.by_source("c") == 1
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 3
    assert "src=a reason=per_source refused=1 open_from_src=2" in messages[0]
    assert "src=* reason=total refused=1" in messages[1]
    assert "src=a reason=per_source refused=3" in messages[2]
    a.release("a")
    a.release(None)
    assert a.by_source("a") == 1 and a.total == 2


@both_loops
def test_a_flood_from_one_source_holds_only_its_share(run: Runner) -> None:
    """300 idle connections from one address with the default cap: 64 held, 236 closed at once."""

    async def scenario() -> None:
        mgr = TransportManager(Recorder())
        _, port = await mgr.listen("tcp", "127.0.0.1", 0)
        clients = [await connect(port) for _ in range(300)]
        await wait_for(lambda: mgr.counters.get("stream_refused_per_source", 0) == 236)
        await wait_for(lambda: mgr.open_streams == 64)
        assert mgr.admission.total == 64 and mgr.counters["stream_accepted"] == 64
        for c in clients:
            c.close()
        await wait_for(lambda: mgr.admission.total == 0)
        await mgr.close()

    run(scenario())
