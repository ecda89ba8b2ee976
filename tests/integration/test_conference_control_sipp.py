"""Conference control against the real server with SIPp (UDP and TCP): URI lists, REFER, removal, and the
conference event package (RFC 5366, RFC 4579, RFC 3515, RFC 4575).

Debian's SIPp has neither TLS nor SRTP, so the server runs with ``allow_plain_rtp`` and
``allow_sdes_over_udp`` (which also lets subscriptions arrive over plain signalling).  A full-state NOTIFY is
larger than 1300 bytes, so the server first tries TCP (RFC 3261 §18.1.1); a SIPp started with ``-t u1`` has
no TCP socket, and the server falls back to UDP for it.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from baresip import free_udp_range
from harness import ServerProcess, free_port_pair, run_sipp, sipp_bg, sipp_errors, wait_file
from lxml import etree

from imsconf.conference.eventinfo import apply_partial

pytestmark = pytest.mark.peer

# RTP ports chosen free at run time (fixed ranges collide with other servers on the machine)
_RTP = free_udp_range(200)
CONFIG = f"allow_plain_rtp = true\nallow_sdes_over_udp = true\nrtp_port_range = [{_RTP[0]}, {_RTP[1]}]\n"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    base = tmp_path_factory.mktemp("control")
    cfg = base / "imsconf.toml"
    cfg.write_text(CONFIG)
    srv = ServerProcess(base / "var", free_port_pair())
    srv.start("--config", str(cfg), auth="none")
    yield srv
    srv.stop()


def _wait(cond: object, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(cond) and cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _finish(proc: subprocess.Popen[bytes], workdir: Path, srv: ServerProcess, timeout: float = 30) -> None:
    try:
        rc = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError(f"sipp in {workdir.name} hung: {sipp_errors(workdir)}") from None
    assert rc == 0, f"{workdir.name}: {sipp_errors(workdir)}\n{srv.log()[-4000:]}"


def _free_udp_tcp_port() -> int:
    return free_port_pair()


def _tp(transport: str) -> str:
    return "udp" if transport == "u1" else "tcp"


def _create(
    srv: ServerProcess, transport: str, tmp: Path, stay_ms: int
) -> tuple[subprocess.Popen[bytes], str]:
    conf_file = tmp / "conf.txt"
    owner = sipp_bg("conf_create.xml", srv.port, transport, tmp / "owner",
                     "-key", "conf_file", str(conf_file), "-d", str(stay_ms))  # fmt: skip
    return owner, wait_file(conf_file)


def _joined(srv: ServerProcess, conf: str, n: int) -> None:
    _wait(lambda: srv.log().count(f"event=participant_joined conf=sip:{conf}@localhost") >= n, f"{n} joins")


@pytest.mark.parametrize("transport", ["u1", "t1"])
def test_uri_list_creation_invites_two_users(server: ServerProcess, transport: str, tmp_path: Path) -> None:
    ports = [_free_udp_tcp_port(), _free_udp_tcp_port()]
    while ports[1] == ports[0]:
        ports[1] = _free_udp_tcp_port()
    uas = [sipp_bg("conf_uas.xml", server.port, transport, tmp_path / f"uas{i}",
                    "-p", str(p), "-s", f"user{i}") for i, p in enumerate(ports)]  # fmt: skip
    time.sleep(0.3)  # the answerers listen
    tp = _tp(transport)
    users = [f"sip:user{i}@127.0.0.1:{p};transport={tp}" for i, p in enumerate(ports)]
    conf_file = tmp_path / "conf.txt"
    owner = sipp_bg("conf_urilist_create.xml", server.port, transport, tmp_path / "owner",
                     "-key", "user1", users[0], "-key", "user2", users[1],
                     "-key", "conf_file", str(conf_file), "-d", "2500")  # fmt: skip
    conf = wait_file(conf_file)
    _joined(server, conf, 3)
    _finish(owner, tmp_path / "owner", server)
    for i, p in enumerate(uas):
        _finish(p, tmp_path / f"uas{i}", server)
    log = server.log()
    assert log.count(f"event=dial_out conf=sip:{conf}@localhost") == 2
    assert f"event=conference_closed conf=sip:{conf}@localhost" in log
    assert "Traceback" not in log


@pytest.mark.parametrize("transport", ["u1", "t1"])
def test_refer_to_focus_invites_with_sipfrag_progress(
    server: ServerProcess, transport: str, tmp_path: Path
) -> None:
    port = _free_udp_tcp_port()
    uas = sipp_bg("conf_uas.xml", server.port, transport, tmp_path / "invitee", "-p", str(port),
                   "-s", "invitee", "-trace_msg")  # fmt: skip
    time.sleep(0.2)
    owner, conf = _create(server, transport, tmp_path, 3000)
    target = f"sip:invitee@127.0.0.1:{port};transport={_tp(transport)}"
    res = run_sipp("conf_refer.xml", f"127.0.0.1:{server.port}", transport=transport,
                   workdir=tmp_path / "refer",
                   extra=["-key", "conf", conf, "-key", "refer_from", "owner",
                          "-key", "refer_to", target])  # fmt: skip
    assert res.returncode == 0, sipp_errors(tmp_path / "refer") + server.log()[-3000:]
    _finish(owner, tmp_path / "owner", server)
    _finish(uas, tmp_path / "invitee", server)
    msgs = "".join(p.read_text(errors="replace") for p in (tmp_path / "invitee").glob("*_messages.log"))
    assert "Referred-By: <sip:owner@127.0.0.1>" in msgs


@pytest.mark.parametrize("transport", ["u1", "t1"])
def test_refer_bye_by_owner_and_by_participant(server: ServerProcess, transport: str, tmp_path: Path) -> None:
    owner, conf = _create(server, transport, tmp_path, 4000)
    member = sipp_bg(
        "conf_join_closed.xml", server.port, transport, tmp_path / "member", "-key", "conf", conf
    )
    _joined(server, conf, 2)
    # the member (a plain participant) may not remove the owner: 403
    res = run_sipp("conf_refer_forbidden.xml", f"127.0.0.1:{server.port}", transport=transport,
                   workdir=tmp_path / "forbidden",
                   extra=["-key", "conf", conf, "-key", "refer_from", "member1",
                          "-key", "refer_to", "sip:owner@127.0.0.1;method=BYE"])  # fmt: skip
    assert res.returncode == 0, sipp_errors(tmp_path / "forbidden") + server.log()[-3000:]
    # the owner removes the member: 202, sipfrag 100 then 200; the member gets the focus's BYE
    res = run_sipp("conf_refer.xml", f"127.0.0.1:{server.port}", transport=transport,
                   workdir=tmp_path / "remove",
                   extra=["-key", "conf", conf, "-key", "refer_from", "owner",
                          "-key", "refer_to", "sip:member1@127.0.0.1;method=BYE"])  # fmt: skip
    assert res.returncode == 0, sipp_errors(tmp_path / "remove") + server.log()[-3000:]
    _finish(member, tmp_path / "member", server)
    _finish(owner, tmp_path / "owner", server)
    log = server.log()
    assert "event=refer_refused" in log and "action=BYE status=403" in log
    assert f"event=refer_accepted conf=sip:{conf}@localhost by=sip:owner@127.0.0.1 action=BYE" in log


def _check_versions(path: Path, trace_dir: Path) -> None:
    # SIPp's <exec> forks a shell per line, so the file's order can race: compare as sorted lists, and
    # take the order from the message trace
    lines = sorted(
        (line.split() for line in path.read_text().splitlines() if line.strip()), key=lambda x: x[1]
    )
    msgs = "".join(p.read_text(errors="replace") for p in trace_dir.glob("*_messages.log"))
    bodies = [b.encode() for b in _notify_bodies(msgs)]
    assert len(bodies) == 12, len(bodies)
    roots = [etree.fromstring(b) for b in bodies]
    versions = [int(str(r.get("version"))) for r in roots]
    assert [r.get("state") for r in roots] == ["full"] + ["partial"] * 10 + ["full"]
    assert sorted(int(v) for v, _ in lines) == sorted(versions), lines
    # three joins (joined, media, connected) and one leave: ten changes, each version +1
    assert versions[:11] == list(range(versions[0], versions[0] + 11)), versions
    assert versions[11] == versions[10]  # the final NOTIFY: the same state, in full
    # applying the partials in order to the first full document gives the final full state
    local = bodies[0]
    for body in bodies[1:11]:
        local = apply_partial(local, body)

    def c14n(b: bytes) -> bytes:
        return bytes(etree.tostring(etree.fromstring(b), method="c14n"))

    assert c14n(local) == c14n(bodies[11])
    ns = "{urn:ietf:params:xml:ns:conference-info}"
    users = [u.get("entity") for u in etree.fromstring(local).iter(f"{ns}user")]
    assert users == ["sip:owner@127.0.0.1", "sip:member1@127.0.0.1"], users


def _notify_bodies(log: str) -> list[str]:
    out = []
    for chunk in log.split("<?xml")[1:]:
        end = chunk.find("</conference-info>")
        if end >= 0:
            out.append("<?xml" + chunk[: end + len("</conference-info>")])
    return out


@pytest.mark.parametrize("transport", ["u1", "t1"])
def test_subscription_full_then_partial_across_three_joins_and_a_leave(
    server: ServerProcess, transport: str, tmp_path: Path
) -> None:
    srv = server
    owner, conf = _create(srv, transport, tmp_path, 6000)
    versions, ready = tmp_path / "versions.txt", tmp_path / "ready.txt"
    sub = sipp_bg("conf_subscribe.xml", srv.port, transport, tmp_path / "sub", "-trace_msg",
                   "-key", "conf", conf, "-key", "sub_user", "owner",
                   "-key", "versions_file", str(versions), "-key", "ready_file", str(ready))  # fmt: skip
    wait_file(ready)
    # an outsider is refused
    res = run_sipp("conf_subscribe_forbidden.xml", f"127.0.0.1:{srv.port}", transport=transport,
                   workdir=tmp_path / "stranger", extra=["-key", "conf", conf])  # fmt: skip
    assert res.returncode == 0, sipp_errors(tmp_path / "stranger") + srv.log()[-3000:]
    members = []
    for i in range(2):
        members.append(sipp_bg("conf_join_closed.xml", srv.port, transport, tmp_path / f"m{i}",
                                "-key", "conf", conf))  # fmt: skip
        _joined(srv, conf, 2 + i)
    res = run_sipp("conf_join_leave.xml", f"127.0.0.1:{srv.port}", transport=transport,
                   workdir=tmp_path / "leaver", extra=["-key", "conf", conf, "-d", "300"])  # fmt: skip
    assert res.returncode == 0, sipp_errors(tmp_path / "leaver") + srv.log()[-3000:]
    _finish(owner, tmp_path / "owner", srv)
    for i, m in enumerate(members):
        _finish(m, tmp_path / f"m{i}", srv)
    _finish(sub, tmp_path / "sub", srv)
    _check_versions(versions, tmp_path / "sub")
    assert "Traceback" not in srv.log()
