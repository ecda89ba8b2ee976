"""The conference directory over both backends (claim, heartbeat, expiry; the claim race on PostgreSQL)
and a PostgreSQL restart under an open store (StoreUnavailable at once, then the store reconnects)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from imsconf.store.directory import ConferenceDirectory, LocalDirectory
from imsconf.store.errors import StoreUnavailable
from pg import PgCluster

URI = "sip:weekly@example.com"


def pg_directory(cluster: PgCluster, dsn: str, timeout: float = 30.0) -> ConferenceDirectory:
    from imsconf.store.directory_pg import PgDirectory
    from imsconf.store.pg import PgDatabase, read_password

    return PgDirectory(PgDatabase(dsn, read_password(cluster.password_file)), timeout)


@pytest.fixture(params=["local", "postgresql"])
def directory(request: pytest.FixtureRequest) -> Iterator[ConferenceDirectory]:
    d: ConferenceDirectory
    if request.param == "local":
        d = LocalDirectory(30.0)
    else:
        cluster: PgCluster = request.getfixturevalue("pg_cluster")
        d = pg_directory(cluster, cluster.create_database())
    yield d
    d.close()


def test_claim_lookup_release(directory: ConferenceDirectory) -> None:
    assert directory.claim(URI, "node-a", 100.0) == "node-a"
    assert directory.claim("sips:weekly@example.com", "node-b", 101.0) == "node-a"  # same room
    assert directory.claim(URI, "node-a", 102.0) == "node-a"  # its own: kept (and refreshed)
    assert directory.lookup(URI, 103.0) == "node-a"
    directory.release(URI, "node-b")  # not the holder: nothing
    assert directory.lookup(URI, 103.0) == "node-a"
    directory.release(URI, "node-a")
    assert directory.lookup(URI, 103.0) is None
    assert directory.claim(URI, "node-b", 104.0) == "node-b"
    with pytest.raises(ValueError):
        directory.claim("not a uri", "node-a", 105.0)


def test_heartbeat_keeps_and_expiry_frees(directory: ConferenceDirectory) -> None:
    directory.claim(URI, "node-a", 100.0)
    directory.claim("sip:daily@example.com", "node-a", 100.0)
    directory.claim("sip:other@example.com", "node-b", 100.0)
    assert directory.heartbeat("node-a", 125.0) == 2
    # node-b fell silent: past the timeout its row is free for a claim and gone after expire()
    assert directory.lookup("sip:other@example.com", 131.0) is None
    assert directory.lookup(URI, 131.0) == "node-a"
    expired = directory.expire(131.0)
    assert [(e.uri_key, e.node_id) for e in expired] == [("other@example.com", "node-b")]
    assert [e.uri_key for e in directory.entries()] == ["daily@example.com", "weekly@example.com"]
    # node-a dies too: another node takes its URI over without waiting for expire()
    assert directory.claim(URI, "node-c", 156.0) == "node-c"
    assert directory.heartbeat("node-a", 157.0) == 1  # the daily room it still has


def test_takeover_from_a_dead_node_takes_only_its_fresh_row(directory: ConferenceDirectory) -> None:
    """The front saw node-a die: a claim naming it takes its row at once, heartbeat fresh or not; a row of
    a node not named (or a free URI) is claimed as usual."""
    directory.claim(URI, "node-a", 100.0)
    directory.claim("sip:daily@example.com", "node-c", 100.0)
    assert directory.claim(URI, "node-b", 101.0) == "node-a"  # fresh: no plain claim takes it
    assert directory.claim(URI, "node-b", 101.0, takeover_from="node-a") == "node-b"
    assert directory.lookup(URI, 101.0) == "node-b"
    # a second takeover naming node-a (another caller's) finds node-b: nothing changes
    assert directory.claim(URI, "node-d", 102.0, takeover_from="node-a") == "node-b"
    # node-c is not the one named: its row stays
    assert directory.claim("sip:daily@example.com", "node-b", 102.0, takeover_from="node-a") == "node-c"
    # nothing held: the takeover is a plain claim
    assert directory.claim("sip:free@example.com", "node-b", 102.0, takeover_from="node-a") == "node-b"
    assert directory.heartbeat("node-a", 103.0) == 0  # the dead node's heartbeat (if any) holds nothing


def test_pg_claim_race_has_one_winner(pg_cluster: PgCluster, pg_dsn: str) -> None:
    """Eight nodes, each on its own connection, claim one booked URI at the same instant: one wins and
    every claim reports that winner."""
    nodes = [pg_directory(pg_cluster, pg_dsn) for _ in range(8)]
    gate = threading.Barrier(len(nodes))
    answers: dict[str, str] = {}

    def claim(i: int) -> None:
        gate.wait()
        answers[f"node-{i}"] = nodes[i].claim(URI, f"node-{i}", 1000.0)

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(len(nodes))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        winners = set(answers.values())
        assert len(answers) == len(nodes) and len(winners) == 1
        (winner,) = winners
        assert winner in answers and nodes[0].lookup(URI, 1000.0) == winner
        assert [e.node_id for e in nodes[0].entries()] == [winner]
    finally:
        for n in nodes:
            n.close()


def test_pg_restart_and_outage(pg_cluster: PgCluster, pg_dsn: str) -> None:
    """A restart of PostgreSQL under an open store: the next call after it succeeds (reconnect); while it
    is down a call fails with StoreUnavailable quickly."""
    directory = pg_directory(pg_cluster, pg_dsn)
    try:
        assert directory.claim(URI, "node-a", 100.0) == "node-a"
        pg_cluster.restart()
        # the old connection was terminated: the first call may see that (StoreUnavailable) or not
        try:
            directory.lookup(URI, 101.0)
        except StoreUnavailable:
            pass
        assert directory.lookup(URI, 101.0) == "node-a"
        pg_cluster.stop_now()
        for _ in range(2):  # the broken connection, then the refused reconnect
            began = time.monotonic()
            with pytest.raises(StoreUnavailable):
                directory.lookup(URI, 102.0)
            assert time.monotonic() - began < 5.0
        pg_cluster.start()
        assert directory.lookup(URI, 103.0) == "node-a"
    finally:
        directory.close()
