"""Kamailio (contrib/kamailio) in front of two imsconf nodes on 127.0.0.2 and 127.0.0.3.

SIPp reaches the front over UDP (Debian's SIPp has no TLS); the front talks TLS to the nodes, so the nodes
need only ``allow_plain_rtp`` for SIPp's RTP. The factory is dispatched round-robin to a live node; every
request for a conference URI (conf-<node>-<id>) and every in-dialog request goes to the node the hint names.
A booked URI is claimed in the nodes' shared directory (PostgreSQL): a node that loses the claim redirects
(302, ``;node=<holder>``) and the front follows the redirect to the holder.
"""

from __future__ import annotations

import re
import secrets
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from audio import assert_hears, tone_levels, write_tone_wav
from baresip import BaresipPhone, free_udp_range
from cluster import Cluster, Node
from harness import free_port_pair, run_sipp, sipp_bg, sipp_errors, wait_file

from imsconf.booking.model import Booking
from imsconf.keys.policy import DownlinkMode
from imsconf.store.booking_pg import PgBookingStore
from imsconf.store.pg import PgDatabase
from peers import require_peer
from pg import PgCluster

pytestmark = pytest.mark.peer

_RTP = free_udp_range(400)


def _wait(cond: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    cl = Cluster(tmp_path_factory.mktemp("cluster"), node_config="allow_plain_rtp = true\n",
                 rtp_range=_RTP)  # fmt: skip
    cl.start()
    yield cl
    cl.stop()


def _finish(proc: subprocess.Popen[bytes], workdir: Path, cl: Cluster, timeout: float = 30) -> None:
    try:
        rc = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError(f"sipp in {workdir.name} hung: {sipp_errors(workdir)}\n{cl.logs()}") from None
    assert rc == 0, f"{workdir.name}: {sipp_errors(workdir)}\n{cl.logs()}"


def _create(cl: Cluster, tmp: Path, name: str, stay_ms: int) -> tuple[subprocess.Popen[bytes], str]:
    conf_file = tmp / f"{name}.txt"
    owner = sipp_bg("conf_create.xml", cl.front_port, "u1", tmp / name,
                    "-key", "conf_file", str(conf_file), "-d", str(stay_ms))  # fmt: skip
    return owner, wait_file(conf_file)


def _joins_at_least(node: Node, uri: str, n: int) -> Callable[[], bool]:
    return lambda: node.log().count(f"event=participant_joined conf={uri}") >= n


def _host(conf: str) -> str:
    """The node id in a conference URI's user part (conf-<node>-<random>)."""
    assert conf.startswith("conf-") and conf.count("-") >= 2, conf
    return conf.split("-", 2)[1]


def test_factory_dispatch_hint_routing_subscribe_refer(cluster: Cluster, tmp_path: Path) -> None:
    cl = cluster
    # conferences at the factory through the front: round-robin over the live nodes puts them on both (a
    # UDP retransmission may take a turn, so up to six)
    owners: dict[str, tuple[subprocess.Popen[bytes], str]] = {}
    for i in range(6):
        owner, conf = _create(cl, tmp_path, f"owner{i}", 15000)
        owners[f"owner{i}"] = (owner, conf)
        if {_host(c) for _, c in owners.values()} == {"a", "b"}:
            break
    assert {_host(c) for _, c in owners.values()} == {"a", "b"}, cl.logs()
    conf_b = next(c for _, c in owners.values() if _host(c) == "b")
    node_a, node_b = cl.node("a"), cl.node("b")
    uri_b = f"sip:{conf_b}@{cl.front_ip}"
    assert f"event=conference_created conf_uri={uri_b}" in node_b.log()

    # a subscriber, a member and a REFER for conference B all reach node B, whatever the dispatcher's turn
    versions, ready = tmp_path / "versions.txt", tmp_path / "ready.txt"
    sub = sipp_bg("conf_subscribe.xml", cl.front_port, "u1", tmp_path / "sub", "-trace_msg",
                  "-key", "conf", conf_b, "-key", "sub_user", "owner",
                  "-key", "versions_file", str(versions), "-key", "ready_file", str(ready))  # fmt: skip
    wait_file(ready)
    # three joins (two stay until the owner leaves, one leaves): the subscriber's ten partial NOTIFYs
    stayers = []
    for i in range(2):
        stayers.append(sipp_bg("conf_join_closed.xml", cl.front_port, "u1", tmp_path / f"stay{i}",
                               "-key", "conf", conf_b))  # fmt: skip
        _wait(_joins_at_least(cl.node("b"), uri_b, 2 + i), "a join")
    res = run_sipp("conf_join_leave.xml", f"127.0.0.1:{cl.front_port}", transport="u1",
                   workdir=tmp_path / "member", extra=["-key", "conf", conf_b, "-d", "300"])  # fmt: skip
    assert res.returncode == 0, sipp_errors(tmp_path / "member") + cl.logs()
    _finish(sub, tmp_path / "sub", cl)  # it unsubscribed after the ten and took the final NOTIFY

    # REFER to the focus: node B dials out through the front (its outbound_proxy) to a SIPp answerer
    port = free_port_pair()
    invitee = sipp_bg("conf_uas.xml", cl.front_port, "u1", tmp_path / "invitee", "-p", str(port),
                      "-s", "invitee", timeout="60s")  # fmt: skip
    time.sleep(0.2)
    target = f"sip:invitee@127.0.0.1:{port};transport=udp"
    res = run_sipp("conf_refer.xml", f"127.0.0.1:{cl.front_port}", transport="u1",
                   workdir=tmp_path / "refer",
                   extra=["-key", "conf", conf_b, "-key", "refer_from", "owner",
                          "-key", "refer_to", target])  # fmt: skip
    assert res.returncode == 0, sipp_errors(tmp_path / "refer") + cl.logs()

    for name, (proc, _) in owners.items():
        _finish(proc, tmp_path / name, cl)
    for i, proc in enumerate(stayers):
        _finish(proc, tmp_path / f"stay{i}", cl)  # the focus's BYE reached them through the front
    _finish(invitee, tmp_path / "invitee", cl)
    notifies = "".join(p.read_text(errors="replace") for p in (tmp_path / "sub").glob("*_messages.log"))
    assert notifies.count("NOTIFY sip:owner@") == 12, notifies[-3000:]  # full, ten partial, final
    # the full state, ten partial documents at +1 each, then the final full state with the last version
    seen = sorted(int(line.split()[0]) for line in versions.read_text().splitlines() if line.strip())
    assert seen == [*range(seen[0], seen[0] + 11), seen[0] + 10], seen
    log_k = cl.kamailio_log()
    for method in ("SUBSCRIBE", "INVITE", "REFER"):
        assert f"hint: {method} {conf_b} -> node b" in log_k
    assert "from node: INVITE sip:invitee@" in log_k
    assert conf_b not in node_a.log()  # nothing for B's conference went to A
    for node in cl.nodes:
        assert "Traceback" not in node.log()


def test_killed_node_marked_down_and_new_conferences_go_to_the_survivor(tmp_path: Path) -> None:
    cl = Cluster(tmp_path / "cl", node_config="allow_plain_rtp = true\n", rtp_range=_RTP)
    cl.start()
    try:
        cl.node("a").kill()
        t0 = time.monotonic()
        _wait(lambda: "node down: OPTIONS sip:127.0.0.2:" in cl.kamailio_log(), "node a marked down", 10)
        down_after = time.monotonic() - t0
        print(f"node a marked down {down_after:.2f} s after kill -9 (ping interval {cl.ping_interval} s)")
        # a probe sent on the dead connection before the front saw it close waits out tm's fr_timer (3 s)
        assert down_after < cl.ping_interval + 3 + 1.5, down_after
        for i in range(4):
            owner, conf = _create(cl, tmp_path, f"owner{i}", 200)
            assert _host(conf) == "b", cl.logs()
            _finish(owner, tmp_path / f"owner{i}", cl)
    finally:
        cl.stop()


def test_factory_invites_go_to_the_node_with_fewer_calls(tmp_path: Path) -> None:
    """Dispatch by call load: while one node hosts a long call, short factory calls one after another all
    go to the other node (round-robin would alternate). A second long call then goes to that other node;
    once the first long call has ended (its BYE passes the front) the short calls go to the first node."""
    cl = Cluster(tmp_path / "cl", node_config="allow_plain_rtp = true\n", rtp_range=_RTP)
    cl.start()
    longs: list[subprocess.Popen[bytes]] = []
    try:

        def shorts(tag: str) -> list[str]:
            hosts = []
            for i in range(3):
                owner, conf = _create(cl, tmp_path, f"{tag}{i}", 100)
                hosts.append(_host(conf))
                _finish(owner, tmp_path / f"{tag}{i}", cl)
            return hosts

        first, conf = _create(cl, tmp_path, "long1", 5000)
        longs.append(first)
        busy = _host(conf)
        hosts = shorts("short")
        assert busy not in hosts, (busy, hosts, cl.kamailio_log()[-3000:])
        second, conf = _create(cl, tmp_path, "long2", 20000)
        longs.append(second)
        assert _host(conf) != busy, cl.kamailio_log()[-3000:]
        _finish(first, tmp_path / "long1", cl)  # its BYE: the first node's load is 0 again
        hosts = shorts("after")
        assert set(hosts) == {busy}, (busy, hosts, cl.kamailio_log()[-3000:])
    except BaseException:
        print(cl.logs())
        raise
    finally:
        for proc in longs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        cl.stop()


_CONF_CREATED = re.compile(r"event=conference_created\b.*?\bconf_uri=sip:(?P<user>conf-[^@]+)@")
_SUITE = "AES_CM_128_HMAC_SHA1_80"


def _established(phone: BaresipPhone, timeout: float = 15.0) -> float:
    ev = phone.wait_event("CALL_ESTABLISHED", timeout, fail_on=("CALL_CLOSED",))
    menc = phone.wait_event("CALL_MENC", 3.0, fail_on=("CALL_CLOSED",))
    assert _SUITE in str(menc.get("param")), f"{phone.name}: media encryption {menc.get('param')!r}"
    return float(ev["_t"])


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_baresip_over_tls_and_srtp_through_the_front(tmp_path: Path) -> None:
    """Two phones on TLS + SDES-SRTP, only through the front: one creates at the factory, the other joins by
    the conference URI (hint routing); each hears the other's tone and not its own."""
    require_peer("baresip")
    cl = Cluster(tmp_path / "cl", rtp_range=_RTP)  # no relaxation: SRTP required, TLS on every hop
    cl.start()
    tones = {"alice": 440.0, "bob": 970.0}
    phones = [
        BaresipPhone(name, tmp_path / name,
                     tone_wav=write_tone_wav(tmp_path / f"{name}.wav", f, seconds=60),
                     ca_pem=cl.pki / "ca.pem", cert_combined_pem=cl.pki / "server-combined.pem")
        for name, f in tones.items()
    ]  # fmt: skip
    alice, bob = phones
    try:
        for p in phones:
            p.start()
        alice.dial(f"sip:conference-factory@127.0.0.1:{cl.front_tls_port}")
        t_alice = _established(alice)
        match = None
        for _ in range(100):
            match = next((m for n in cl.nodes if (m := _CONF_CREATED.search(n.log()))), None)
            if match:
                break
            time.sleep(0.05)
        assert match is not None, cl.logs()
        user = match.group("user")
        bob.dial(f"sip:{user}@127.0.0.1:{cl.front_tls_port}")
        t_bob = _established(bob)
        t_all = max(t_alice, t_bob)
        time.sleep(max(0.0, t_all + 6.0 - time.monotonic()))
        t_hangup = time.monotonic()
        alice.hangup()  # the owner leaves: the focus's BYE reaches bob through the front
        alice.wait_event("CALL_CLOSED", 5)
        bob.wait_event("CALL_CLOSED", 5)
        for p in phones:
            p.stop()
        window = t_hangup - t_all - 2.5
        freqs = sorted(tones.values())
        for p in phones:
            decs = p.dec_wavs()
            assert len(decs) == 1, f"{p.name}: {decs}"
            closed_at = float(p.wait_event("CALL_CLOSED", 0)["_t"])
            lv = tone_levels(
                decs[0], freqs, last_seconds=window, drop_last_seconds=closed_at - t_hangup + 0.5
            )
            own = tones[p.name]
            assert_hears(lv, present=[f for f in freqs if f != own], absent=[own], who=p.name)
        log_k = cl.kamailio_log()
        assert f"hint: INVITE {user} -> node {_host(user)}" in log_k, log_k[-3000:]
    except BaseException:
        for p in phones:
            print(f"--- {p.name}\n{p.log_tail(30)}")
        print(cl.logs())
        raise
    finally:
        for p in phones:
            p.stop()
        cl.stop()


def _book(pg_cluster: PgCluster, db: str, uri: str, booking_id: str = "b00000001", **kw: object) -> None:
    """A booking in the nodes' shared store (both read their bookings from it)."""
    now = datetime.now(UTC)
    store = PgBookingStore(PgDatabase(pg_cluster.dsn(db), pg_cluster.password))
    try:
        store.create(Booking(id=booking_id, uri=uri, start=now - timedelta(minutes=5),
                             end=now + timedelta(hours=1), created_at=now - timedelta(days=1),
                             capacity=10, **kw))  # type: ignore[arg-type]  # fmt: skip
    finally:
        store.close()


@pytest.mark.timeout(120)
def test_two_callers_of_one_booked_uri_on_two_nodes_meet_in_one_conference(
    tmp_path: Path, pg_cluster: PgCluster
) -> None:
    """Two callers dial the same booked URI at the same moment; the front dispatches one to each node. Both
    nodes claim the URI in the shared directory: the loser answers 302 toward the winner, the front
    follows it, and both callers are in the one conference on the winner."""
    db, store, directory = _pg_store(pg_cluster, secrets.token_hex(4))
    cl = Cluster(tmp_path / "cl", node_config="allow_plain_rtp = true\n" + store, rtp_range=_RTP,
                 front_env={"DIRECTORY_DB_URL": directory})  # fmt: skip
    booked = "sip:weekly@localhost"
    _book(pg_cluster, db, booked)
    _book(pg_cluster, db, "sip:daily@localhost", "b00000002")
    cl.start()
    try:
        callers = [
            sipp_bg("conf_join_leave.xml", cl.front_port, "u1", tmp_path / f"caller{i}",
                    "-key", "conf", "weekly", "-d", "4000")
            for i in range(2)
        ]  # fmt: skip
        uri = booked
        holder = None
        deadline = time.monotonic() + 15
        while holder is None and time.monotonic() < deadline:
            holder = next((n for n in cl.nodes if _joins_at_least(n, uri, 2)()), None)
            time.sleep(0.05)
        assert holder is not None, cl.logs()
        other = next(n for n in cl.nodes if n is not holder)
        # a third caller while the conference lives: the front finds the holder in the directory
        res = run_sipp("conf_join_leave.xml", f"127.0.0.1:{cl.front_port}", transport="u1",
                       workdir=tmp_path / "third", extra=["-key", "conf", "weekly", "-d", "200"])  # fmt: skip
        assert res.returncode == 0, sipp_errors(tmp_path / "third") + cl.logs()
        assert f"directory: INVITE weekly -> node {holder.node_id}" in cl.kamailio_log(), cl.logs()
        joined = re.findall(rf"event=participant_joined conf={uri} leg=([^ .]+)\.(p\d+)", holder.log())
        assert len(joined) == 3 and len({c for c, _ in joined}) == 1, joined  # one roster: p1, p2, p3
        for i, proc in enumerate(callers):
            _finish(proc, tmp_path / f"caller{i}", cl)
        log_k = cl.kamailio_log()
        dispatched = re.findall(r"dispatch: INVITE weekly -> sip:(127\.0\.0\.\d)", log_k)
        assert sorted(dispatched) == ["127.0.0.2", "127.0.0.3"], log_k[-3000:]  # one caller per node
        assert holder.log().count(f"event=conference_created conf_uri={uri}") == 1
        assert f"event=conference_created conf_uri={uri}" not in other.log()
        assert f"event=claim_redirect conf_uri={uri} node={holder.node_id}" in other.log(), other.log()
        assert f"redirect: INVITE weekly -> node {holder.node_id}" in log_k, log_k[-3000:]
        for node in cl.nodes:
            assert "Traceback" not in node.log()
        # both left: the conference ended and the holder gave the URI back
        _wait(lambda: f"event=claim_released conf_uri={uri}" in holder.log(), "the URI released")
        # the directory down: 503 with Retry-After, passed to the caller (no failover, no node marked down)
        pg_cluster.stop_now()
        try:
            res = run_sipp("planned_unavailable.xml", f"127.0.0.1:{cl.front_port}", transport="u1",
                           workdir=tmp_path / "unavailable", extra=["-key", "conf", "daily"])  # fmt: skip
            assert res.returncode == 0, sipp_errors(tmp_path / "unavailable") + cl.logs()
        finally:
            pg_cluster.start()
        log_k = cl.kamailio_log()
        assert "failover: INVITE daily" not in log_k and "node down" not in log_k, log_k[-3000:]
    except BaseException:
        print(cl.logs())
        raise
    finally:
        cl.stop()


def _pg_store(pg_cluster: PgCluster, name: str) -> tuple[str, str, str]:
    """A database of its own (the front reads it without the test's search_path): its name, the nodes'
    settings and the front's DIRECTORY_DB_URL."""
    db = "claims_" + name
    pg_cluster.admin(f"CREATE DATABASE {db}")
    store = f'store = "{pg_cluster.dsn(db)}"\nstore_password_file = "{pg_cluster.password_file}"\n'
    return db, store, f"postgres://imsconf:{pg_cluster.password}@127.0.0.1:{pg_cluster.port}/{db}"


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_baresip_callers_of_one_booked_uri_on_two_nodes_hear_each_other(
    tmp_path: Path, pg_cluster: PgCluster
) -> None:
    """Two phones on TLS + SDES-SRTP dial the same booked URI at once; the front dispatches one to each
    node, the node that loses the claim redirects, and each phone hears the other's tone, not its own."""
    require_peer("baresip")
    db, store, _ = _pg_store(pg_cluster, "baresip_" + secrets.token_hex(3))
    cl = Cluster(tmp_path / "cl", node_config=store, rtp_range=_RTP)
    _book(pg_cluster, db, "sip:weekly@localhost", downlink=DownlinkMode.PER_PARTICIPANT)
    cl.start()
    tones = {"alice": 440.0, "bob": 970.0}
    phones = [
        BaresipPhone(name, tmp_path / name,
                     tone_wav=write_tone_wav(tmp_path / f"{name}.wav", f, seconds=60),
                     ca_pem=cl.pki / "ca.pem", cert_combined_pem=cl.pki / "server-combined.pem")
        for name, f in tones.items()
    ]  # fmt: skip
    try:
        for p in phones:
            p.start()
        for p in phones:
            p.dial(f"sip:weekly@127.0.0.1:{cl.front_tls_port}")
        t_all = max(_established(p) for p in phones)
        holders = [n for n in cl.nodes if "event=conference_created conf_uri=sip:weekly@localhost" in n.log()]
        assert len(holders) == 1, cl.logs()
        assert holders[0].log().count("event=participant_joined conf=sip:weekly@localhost") == 2
        assert f"redirect: INVITE weekly -> node {holders[0].node_id}" in cl.kamailio_log(), cl.logs()
        time.sleep(max(0.0, t_all + 6.0 - time.monotonic()))
        t_hangup = time.monotonic()
        for p in phones:
            p.hangup()
        for p in phones:
            p.wait_event("CALL_CLOSED", 5)
            p.stop()
        window = t_hangup - t_all - 2.5
        freqs = sorted(tones.values())
        for p in phones:
            decs = p.dec_wavs()
            assert len(decs) == 1, f"{p.name}: {decs}"
            lv = tone_levels(decs[0], freqs, last_seconds=window, drop_last_seconds=1.0)
            own = tones[p.name]
            assert_hears(lv, present=[f for f in freqs if f != own], absent=[own], who=p.name)
    except BaseException:
        for p in phones:
            print(f"--- {p.name}\n{p.log_tail(30)}")
        print(cl.logs())
        raise
    finally:
        for p in phones:
            p.stop()
        cl.stop()


@pytest.mark.timeout(150)
def test_killed_holder_of_a_booked_conference_is_taken_over_by_the_survivor(
    tmp_path: Path, pg_cluster: PgCluster
) -> None:
    """A booked conference lives on one node; that node is killed (kill -9: its directory row stays fresh
    for up to 30 s). A new caller of the booked URI is sent by the front to the survivor with the takeover
    marker (the dispatcher sees the holder down), the survivor takes the claim over and the conference
    starts there; the booking, the users and the usage written before the kill are untouched."""
    from imsconf.store.directory_pg import PgDirectory
    from imsconf.store.usage_pg import PgUsageStore
    from imsconf.store.users_pg import PgUserStore

    db, store, directory = _pg_store(pg_cluster, "takeover_" + secrets.token_hex(3))
    # the nodes know the front's address: its takeover marker is believed
    trust = 'front_peers = ["127.0.0.1"]\n'
    cl = Cluster(tmp_path / "cl", rtp_range=_RTP, front_env={"DIRECTORY_DB_URL": directory},
                 node_config="allow_plain_rtp = true\n" + store + trust)  # fmt: skip
    uri = "sip:weekly@localhost"
    _book(pg_cluster, db, uri)
    _book(pg_cluster, db, "sip:daily@localhost", "b00000002")
    users = PgUserStore(PgDatabase(pg_cluster.dsn(db), pg_cluster.password))
    usage = PgUsageStore(PgDatabase(pg_cluster.dsn(db), pg_cluster.password))
    bookings = PgBookingStore(PgDatabase(pg_cluster.dsn(db), pg_cluster.password))
    users.add("alice", "secret-pw", "localhost")
    cl.start()
    stayer: subprocess.Popen[bytes] | None = None
    try:
        # a first conference, ended: its usage is in the store before the kill
        res = run_sipp("conf_join_leave.xml", f"127.0.0.1:{cl.front_port}", transport="u1",
                       workdir=tmp_path / "first", extra=["-key", "conf", "weekly", "-d", "300"])  # fmt: skip
        assert res.returncode == 0, sipp_errors(tmp_path / "first") + cl.logs()
        _wait(lambda: len(usage.records(None, None)[0]) >= 1, "the first call's usage in the store")
        before = usage.records(None, None)
        # the conference again, with a caller who stays: its holder is killed under it
        joins = {n.node_id: n.log().count(f"event=participant_joined conf={uri}") for n in cl.nodes}
        stayer = sipp_bg("conf_join_leave.xml", cl.front_port, "u1", tmp_path / "stayer",
                         "-key", "conf", "weekly", "-d", "60000", timeout="90s")  # fmt: skip
        holder = None
        deadline = time.monotonic() + 15
        while holder is None and time.monotonic() < deadline:
            holder = next((n for n in cl.nodes if _joins_at_least(n, uri, joins[n.node_id] + 1)()), None)
            time.sleep(0.05)
        assert holder is not None, cl.logs()
        survivor = next(n for n in cl.nodes if n is not holder)
        killed = time.monotonic()
        holder.kill()
        # callers retry until one is in: the time from the kill to that join is what is measured
        attempts = 0
        joined_at = None
        while joined_at is None and time.monotonic() - killed < 40:
            attempts += 1
            work = tmp_path / f"after{attempts}"
            res = run_sipp("conf_join_leave.xml", f"127.0.0.1:{cl.front_port}", transport="u1", timeout=10,
                           workdir=work, extra=["-key", "conf", "weekly", "-d", "200"])  # fmt: skip
            if res.returncode == 0:
                joined_at = time.monotonic()
            else:
                time.sleep(0.2)
        assert joined_at is not None, cl.logs()
        took = joined_at - killed
        print(f"kill -9 of node {holder.node_id} -> a caller in the conference on node {survivor.node_id}: "
              f"{took:.2f} s, {attempts} attempt(s)")  # fmt: skip
        assert took < 15, took
        slog, klog = survivor.log(), cl.kamailio_log()
        assert f"event=claim conf_uri={uri} holder={survivor.node_id}" in slog, slog[-3000:]
        assert f"taken_from={holder.node_id}" in slog, slog[-3000:]
        assert f"event=conference_created conf_uri={uri}" in slog, slog[-3000:]
        assert f"takeover: INVITE weekly from node {holder.node_id}" in klog, klog[-3000:]
        # once the dispatcher has marked the dead node down, the front does not even try it: another URI
        # it still holds (a fresh row, as if it had opened it just before the kill) is taken over too
        # (by its probe, or by the takeover above if the dispatcher picked the dead node for it first)
        down = (f"node down: OPTIONS sip:{holder.ip}:", f"node down: no answer from node {holder.node_id}")
        _wait(lambda: any(d in cl.kamailio_log() for d in down), "the holder marked down")
        dead_rows = PgDirectory(PgDatabase(pg_cluster.dsn(db), pg_cluster.password))
        try:
            assert dead_rows.claim("sip:daily@localhost", holder.node_id, time.time()) == holder.node_id
        finally:
            dead_rows.close()
        began = time.monotonic()
        res = run_sipp("conf_join_leave.xml", f"127.0.0.1:{cl.front_port}", transport="u1", timeout=10,
                       workdir=tmp_path / "daily", extra=["-key", "conf", "daily", "-d", "200"])  # fmt: skip
        assert res.returncode == 0, sipp_errors(tmp_path / "daily") + cl.logs()
        print(f"a URI of the node marked down: in the conference on node {survivor.node_id} "
              f"{time.monotonic() - began:.2f} s after the INVITE")  # fmt: skip
        klog = cl.kamailio_log()
        assert f"node down: INVITE daily not to node {holder.node_id}" in klog, klog[-3000:]
        assert f"takeover: INVITE daily from node {holder.node_id} -> sip:{survivor.ip}:" in klog, klog[
            -3000:
        ]
        assert "event=claim conf_uri=sip:daily@localhost holder=" + survivor.node_id in survivor.log()
        slog = survivor.log()
        # the stores: the booking, the user and the usage of before the kill as they were
        booking = bookings.get("b00000001")
        assert booking is not None and booking.uri == uri
        assert "alice" in users.list() and users.realm_of("alice") == "localhost"
        legs, confs = usage.records(None, None)
        assert legs[: len(before[0])] == before[0] and confs[: len(before[1])] == before[1]
        assert "Traceback" not in slog
    except BaseException:
        print(cl.logs())
        raise
    finally:
        if stayer is not None and stayer.poll() is None:
            stayer.kill()
            stayer.wait()
        cl.stop()
        for s in (users, usage, bookings):
            s.close()
