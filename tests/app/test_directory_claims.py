"""The runtime's side of the conference directory (app/directory.py): claims in worker threads with the
result handed back on the loop, the directory down (ClaimFailed), heartbeats, expiry, failed releases
retried, and two nodes' adapters racing for one booked URI on PostgreSQL."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from imsconf.app.config import Settings
from imsconf.app.directory import DirectoryClaims, open_claims
from imsconf.focus.claims import ClaimFailed, ClaimLost, ClaimRequest, ClaimResult, ClaimWon
from imsconf.store.directory import DirectoryEntry, LocalDirectory
from imsconf.store.errors import StoreUnavailable
from pg import PgCluster

URI = "sip:weekly@example.com"


class FlakyDirectory(LocalDirectory):
    """A LocalDirectory that can be switched off (StoreUnavailable) and records the calling threads."""

    def __init__(self) -> None:
        super().__init__(30.0)
        self.down = False
        self.threads: set[int] = set()

    def _check(self) -> None:
        self.threads.add(threading.get_ident())
        if self.down:
            raise StoreUnavailable("down")

    def claim(self, uri: str, node_id: str, now: float, *, takeover_from: str | None = None) -> str:
        self._check()
        return super().claim(uri, node_id, now, takeover_from=takeover_from)

    def release(self, uri: str, node_id: str) -> None:
        self._check()
        super().release(uri, node_id)

    def heartbeat(self, node_id: str, now: float) -> int:
        self._check()
        return super().heartbeat(node_id, now)

    def expire(self, now: float) -> list[DirectoryEntry]:
        self._check()
        return super().expire(now)


async def _claim(claims: DirectoryClaims, uri: str = URI, takeover_from: str | None = None) -> ClaimResult:
    loop = asyncio.get_running_loop()
    got: asyncio.Future[ClaimResult] = loop.create_future()

    def done(result: ClaimResult) -> None:
        assert threading.get_ident() == threading.main_thread().ident  # back on the loop's thread
        got.set_result(result)

    claims.claim(ClaimRequest(uri, takeover_from), done)
    return await asyncio.wait_for(got, 5)


def test_claim_won_lost_and_unavailable_off_the_loop() -> None:
    async def scenario() -> None:
        now = [1000.0]
        d = FlakyDirectory()
        a = DirectoryClaims(d, "a", clock=lambda: now[0])
        b = DirectoryClaims(d, "b", clock=lambda: now[0], retry_after=9)
        assert await _claim(a) == ClaimWon()
        assert await _claim(b) == ClaimLost("a")
        assert threading.main_thread().ident not in d.threads  # the directory ran in worker threads
        d.down = True
        assert await _claim(b) == ClaimFailed(9)
        # a release while the store is down is retried at the next heartbeat (or a's beat would keep it)
        a.release(URI)
        await asyncio.sleep(0.05)
        assert d.lookup(URI, now[0]) == "a"
        d.down = False
        await a.beat()
        assert d.lookup(URI, now[0]) is None
        assert await _claim(b) == ClaimWon()
        await a.close()
        await b.close()

    asyncio.run(scenario())


def test_takeover_of_a_dead_nodes_fresh_claim() -> None:
    """The front named "a" as down: "b" takes a's fresh row at once; a plain claim would not."""

    async def scenario() -> None:
        now = [1000.0]
        d = FlakyDirectory()
        a = DirectoryClaims(d, "a", clock=lambda: now[0])
        b = DirectoryClaims(d, "b", clock=lambda: now[0])
        assert await _claim(a) == ClaimWon()
        assert await _claim(b) == ClaimLost("a")
        assert await _claim(b, takeover_from="x") == ClaimLost("a")  # a node not holding it: nothing
        assert await _claim(b, takeover_from="a") == ClaimWon()
        assert d.lookup(URI, now[0]) == "b"
        await a.close()  # a's release at close leaves b's row alone
        assert d.lookup(URI, now[0]) == "b"
        await b.close()
        assert d.lookup(URI, now[0]) is None

    asyncio.run(scenario())


def test_heartbeat_keeps_rows_and_expires_dead_nodes() -> None:
    async def scenario() -> None:
        now = [1000.0]
        d = FlakyDirectory()
        a = DirectoryClaims(d, "a", clock=lambda: now[0], interval=0.02)
        assert a.interval == 0.02 and DirectoryClaims(d, "x").interval == 10.0  # a third of the timeout
        d.claim(URI, "a", now[0])
        d.claim("sip:other@example.com", "dead", now[0])
        now[0] += 25
        a.start()
        await asyncio.sleep(0.1)
        now[0] += 10  # "dead" silent for 35 s, "a" refreshed 10 s ago
        await asyncio.sleep(0.1)
        assert [(e.uri_key, e.node_id) for e in d.entries()] == [("weekly@example.com", "a")]
        d.down = True  # a failed beat is logged; the loop goes on
        await asyncio.sleep(0.1)
        d.down = False
        await a.close()

    asyncio.run(scenario())


def test_close_gives_back_the_uris_still_held() -> None:
    async def scenario() -> None:
        d = FlakyDirectory()
        a = DirectoryClaims(d, "a", clock=lambda: 1000.0)
        assert await _claim(a) == ClaimWon()
        assert await _claim(a, "sip:daily@example.com") == ClaimWon()
        a.release("sip:daily@example.com")
        for _ in range(100):  # the release runs in a worker thread
            if len(d.entries()) == 1:
                break
            await asyncio.sleep(0.01)
        await DirectoryClaims(d, "b", clock=lambda: 1000.0).close()  # holds nothing: nothing given back
        assert len(d.entries()) == 1
        await a.close()
        assert d.entries() == []

    asyncio.run(scenario())


def test_open_claims_is_none_for_a_single_node(tmp_path: Path) -> None:
    assert open_claims(Settings(data_dir=tmp_path)) is None
    assert open_claims(Settings(data_dir=tmp_path, node_id="a")) is None  # SQLite: nobody to race


@pytest.mark.timeout(60)
def test_two_nodes_race_for_one_booked_uri_on_postgresql(pg_cluster: PgCluster, pg_dsn: str) -> None:
    """Two nodes' adapters, each with its own PgDirectory, claim one URI at once: one wins, the other is
    told that winner."""
    from imsconf.store.directory_pg import PgDirectory
    from imsconf.store.pg import PgDatabase, read_password

    async def scenario() -> None:
        nodes = {
            n: DirectoryClaims(
                PgDirectory(PgDatabase(pg_dsn, read_password(pg_cluster.password_file))),
                n,
                owns_directory=True,
            )
            for n in ("a", "b")
        }
        results = await asyncio.gather(*(_claim(c) for c in nodes.values()))
        winners = [n for n, r in zip(nodes, results, strict=True) if r == ClaimWon()]
        assert len(winners) == 1, results
        (loser,) = [r for r in results if r != ClaimWon()]
        assert loser == ClaimLost(winners[0])
        for c in nodes.values():
            await c.close()

    asyncio.run(scenario())
