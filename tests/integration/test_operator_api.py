"""The operator plane end to end: a real ``imsconf serve`` with its HTTP listener, SIPp phones in a
conference, and every live-conference route driven over real HTTP.

The owner creates a conference and stays; it subscribes to the conference event package; two members
join.  Over the API: list and show (fields, ISO times), mute/unmute/deaf/undeaf (idempotent), ``imsconf conf
list`` and ``imsconf conf mute`` as a subprocess, kick (the member's SIPp answers the BYE, the subscriber
sees ``<disconnection-method>booted``), lock (a third INVITE gets ``403 Conference locked``), unlock, a
dial-out to a SIPp answerer (202, the answerer gets the INVITE), the errors (404, 400, 422, 401, 403),
``/api/v1/events``, ``/metrics``, ``DELETE`` (BYE to everyone), then one usage record per ended leg in
``/api/v1/cdrs``.  A second test kills the server with SIGKILL after one leg ended and finds its record
in ``imsconf cdr export`` and, after a restart, in the API.

SIPp has neither TLS nor SRTP: the server runs with ``allow_plain_rtp`` and ``allow_sdes_over_udp``.
"""

from __future__ import annotations

import functools
import http.client
import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from baresip import free_tcp_port, free_udp_range
from harness import REPO, ServerProcess, free_port_pair, sipp_bg, sipp_errors, wait_file
from prometheus_client.parser import text_string_to_metric_families

from peers import require_peer

pytestmark = [pytest.mark.peer, pytest.mark.timeout(150)]

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?Z$")
BASE = "/api/v1/conferences"


class Api:
    """Blocking HTTP calls to the server's operator plane."""

    def __init__(self, port: int, data_dir: Path) -> None:
        self.port = port
        self.token = (data_dir / "api-token").read_text().strip()
        self.viewer = (data_dir / "api-token-viewer").read_text().strip()

    def call(
        self, method: str, path: str, body: Any = None, *, token: str | None = "operator",
        raw: bytes | None = None,
    ) -> tuple[int, Any]:  # fmt: skip
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data, method=method)
        if token is not None:
            req.add_header("Authorization", f"Bearer {self.token if token == 'operator' else token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                status, payload, ctype = resp.status, resp.read(), resp.headers.get("Content-Type", "")
        except urllib.error.HTTPError as exc:
            status, payload, ctype = exc.code, exc.read(), exc.headers.get("Content-Type", "")
        if payload and ctype.startswith("application/json"):
            return status, json.loads(payload)
        return status, payload.decode(errors="replace")

    def ok(self, method: str, path: str, body: Any = None, status: int = 200) -> Any:
        got, payload = self.call(method, path, body)
        assert got == status, (method, path, got, payload)
        return payload

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        status, text = self.call("GET", "/metrics")
        assert status == 200, text
        out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
        return out


def metric_sum(metrics: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str) -> float:
    return sum(v for (n, _), v in metrics.items() if n == name)


def live_count(api: Api) -> int:
    return sum(int(c["participants"]) for c in api.ok("GET", BASE)["conferences"])


def has_live(api: Api, n: int) -> bool:
    return live_count(api) == n


def invites_2xx(metrics: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> float:
    key = ("imsconf_sip_requests_total", (("method", "INVITE"), ("response_class", "2xx")))
    return metrics.get(key, 0.0)


class EventStream:
    """``GET /api/v1/events`` read on a thread: the ``event:`` names and their data."""

    def __init__(self, api: Api) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self._conn = http.client.HTTPConnection("127.0.0.1", api.port, timeout=60)
        self._conn.request("GET", "/api/v1/events", headers={"Authorization": f"Bearer {api.viewer}"})
        self._resp = self._conn.getresponse()
        assert self._resp.status == 200
        assert self._resp.getheader("Content-Type", "").startswith("text/event-stream")
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        kind = ""
        try:
            for raw in self._resp:
                line = raw.decode().rstrip("\r\n")
                if line.startswith("event:"):
                    kind = line[6:].strip()
                elif line.startswith("data:") and kind:
                    self.events.append((kind, json.loads(line[5:])))
                    kind = ""
        # AttributeError: http.client's reader when close() shut the connection under it
        except (OSError, ValueError, AttributeError, http.client.HTTPException):
            return

    def kinds(self) -> list[str]:
        return [k for k, _ in self.events]

    def close(self) -> None:
        sock = self._conn.sock
        if sock is not None:
            sock.shutdown(socket.SHUT_RDWR)
        self._conn.close()


def until(cond: Callable[[], object], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def finished(proc: subprocess.Popen[bytes], workdir: Path, srv: ServerProcess, timeout: float = 20) -> None:
    try:
        rc = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError(f"SIPp in {workdir} did not finish: {sipp_errors(workdir)}") from None
    assert rc == 0, sipp_errors(workdir) + srv.log()[-3000:]


def conf_cli(srv: ServerProcess, http_port: int, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "imsconf.cli", "conf", "--data-dir", str(srv.data_dir),
         "--http", f"127.0.0.1:{http_port}", *args],
        cwd=REPO, capture_output=True, text=True, timeout=30,
    )  # fmt: skip


def plain_config(path: Path) -> Path:
    lo, hi = free_udp_range(80)
    path.write_text(f"allow_plain_rtp = true\nallow_sdes_over_udp = true\nrtp_port_range = [{lo}, {hi}]\n")
    return path


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[ServerProcess, Api]]:
    require_peer("sipp")
    srv = ServerProcess(tmp_path / "var", free_port_pair())
    http_port = free_tcp_port()
    srv.start("--config", str(plain_config(tmp_path / "imsconf.toml")), "--http", f"127.0.0.1:{http_port}",
              auth="none")  # fmt: skip
    try:
        yield srv, Api(http_port, srv.data_dir)
    finally:
        srv.stop()


def _free_udp_tcp_port() -> int:
    for _ in range(100):
        port = free_tcp_port()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            try:
                u.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port")


def test_every_live_conference_route_over_http(served: tuple[ServerProcess, Api], tmp_path: Path) -> None:
    srv, api = served
    procs: list[subprocess.Popen[bytes]] = []
    events = EventStream(api)
    try:
        assert api.call("GET", "/health/ready", token=None)[0] == 200
        before = api.metrics()
        # the owner creates the conference and stays; it subscribes; two members join
        conf_file = tmp_path / "conf.txt"
        owner = sipp_bg("conf_create_stay.xml", srv.port, "u1", tmp_path / "owner",
                        "-key", "conf_file", str(conf_file), timeout="90s")  # fmt: skip
        procs.append(owner)
        conf = wait_file(conf_file)
        ready = tmp_path / "sub-ready"
        sub = sipp_bg("conf_subscribe_booted.xml", srv.port, "u1", tmp_path / "sub", "-key", "conf", conf,
                      "-key", "sub_user", "owner1", "-key", "ready_file", str(ready), "-trace_msg",
                      timeout="90s")  # fmt: skip
        procs.append(sub)
        wait_file(ready)
        members = []
        for i in (1, 2):
            m = sipp_bg("conf_join_stay.xml", srv.port, "u1", tmp_path / f"m{i}", "-key", "conf", conf,
                        timeout="90s")  # fmt: skip
            procs.append(m)
            members.append(m)
            until(functools.partial(has_live, api, i + 1), f"member {i}")

        # list and show
        (summary,) = api.ok("GET", BASE)["conferences"]
        cid = summary["id"]
        assert summary["uri"] == f"sip:{conf}@localhost" and summary["participants"] == 3
        assert not summary["locked"] and summary["downlink"] in ("per-leg", "group")
        assert ISO.match(summary["created"]), summary
        assert summary["owner"] and "owner1" in summary["owner"]
        shown = api.ok("GET", f"{BASE}/{cid}")
        assert {k: v for k, v in shown.items() if k != "participants"} == {
            k: v for k, v in summary.items() if k != "participants"
        }
        people = shown["participants"]
        assert [p["role"] for p in people] == ["owner", "participant", "participant"]
        for p in people:
            assert ISO.match(p["joined"]), p
            assert p["transport"] == "udp" and p["codec"] == "PCMU" and p["key"] == "none", p
            assert p["srtp"] is None and not p["muted"] and not p["deaf"] and not p["on_hold"]
            assert set(p["rtcp"]) == {"loss", "jitter_ms"}
        owner_p, m1, m2 = people

        # metrics: the live participants, the INVITEs answered 2xx
        now = api.metrics()
        assert metric_sum(now, "imsconf_participants") == 3
        assert metric_sum(now, "imsconf_conferences") == 1
        assert invites_2xx(now) >= invites_2xx(before) + 3

        # mute/unmute/deaf/undeaf: 200 with the participant, idempotent
        path = f"{BASE}/{cid}/participants/{m1['id']}"
        for action, field, value in (("mute", "muted", True), ("mute", "muted", True),
                                     ("unmute", "muted", False), ("unmute", "muted", False),
                                     ("deaf", "deaf", True), ("deaf", "deaf", True),
                                     ("undeaf", "deaf", False), ("undeaf", "deaf", False)):  # fmt: skip
            got = api.ok("POST", f"{path}/{action}")
            assert got["id"] == m1["id"] and got[field] is value, (action, got)
            assert api.ok("GET", f"{BASE}/{cid}")["participants"][1][field] is value

        # imsconf conf against this server
        listed = conf_cli(srv, api.port, "list")
        assert listed.returncode == 0, listed.stderr
        assert cid in listed.stdout and "PARTICIPANTS" in listed.stdout
        muted = conf_cli(srv, api.port, "--json", "mute", cid, m2["id"])
        assert muted.returncode == 0, muted.stderr
        assert json.loads(muted.stdout)["muted"] is True
        assert api.ok("GET", f"{BASE}/{cid}")["participants"][2]["muted"] is True
        unknown = conf_cli(srv, api.port, "show", "no-such-conference")
        assert unknown.returncode == 1 and "404 no such conference" in unknown.stderr

        # errors
        assert api.call("GET", f"{BASE}/nope")[0] == 404
        assert api.call("POST", f"{BASE}/{cid}/participants/nope/mute")[0] == 404
        assert api.call("DELETE", f"{BASE}/{cid}/participants/nope")[0] == 404
        assert api.call("POST", f"{BASE}/nope/lock")[0] == 404
        status, err = api.call("POST", f"{BASE}/{cid}/participants", raw=b'{"uri": ')
        assert status == 400, err
        for bad in ("not a uri", "sip:", "http://example.com/"):
            status, err = api.call("POST", f"{BASE}/{cid}/participants", {"uri": bad})
            assert status == 422 and [e["field"] for e in err["errors"]] == ["uri"], (bad, err)
        status, err = api.call("POST", f"{BASE}/{cid}/participants", {"uri": 5, "x": 1})
        assert status == 422 and [e["field"] for e in err["errors"]] == ["uri", "x"], err
        assert api.call("GET", BASE, token=None)[0] == 401
        assert api.call("GET", BASE, token="x" * 43)[0] == 401
        assert api.call("GET", BASE, token=api.viewer)[0] == 200
        assert api.call("POST", f"{path}/mute", token=api.viewer)[0] == 403
        assert api.call("DELETE", f"{BASE}/{cid}", token=api.viewer)[0] == 403
        assert api.ok("GET", f"{BASE}/{cid}")["participants"][1]["muted"] is False

        # kick: the member answers the BYE, the subscriber sees "booted" and unsubscribes
        api.ok("DELETE", path, status=204)
        finished(members[0], tmp_path / "m1", srv)
        finished(sub, tmp_path / "sub", srv)
        until(lambda: len(api.ok("GET", f"{BASE}/{cid}")["participants"]) == 2, "the kick")

        # lock: a third INVITE gets 403 Conference locked; unlock
        assert api.ok("POST", f"{BASE}/{cid}/lock")["locked"] is True
        late = sipp_bg("conf_locked.xml", srv.port, "u1", tmp_path / "late", "-key", "conf", conf,
                       "-trace_msg")  # fmt: skip
        procs.append(late)
        finished(late, tmp_path / "late", srv)
        msgs = "".join(p.read_text(errors="replace") for p in (tmp_path / "late").glob("*_messages.log"))
        assert re.search(r"SIP/2.0 403 [^\r\n]*locked", msgs, re.IGNORECASE), msgs[-2000:]
        assert api.ok("POST", f"{BASE}/{cid}/unlock")["locked"] is False

        # dial-out to a SIPp answerer: 202, it takes the INVITE and joins
        uas_port = _free_udp_tcp_port()
        uas = sipp_bg("conf_uas.xml", srv.port, "u1", tmp_path / "uas", "-p", str(uas_port),
                      "-s", "invitee", "-trace_msg", timeout="90s")  # fmt: skip
        procs.append(uas)
        time.sleep(0.3)
        target = f"sip:invitee@127.0.0.1:{uas_port}"
        accepted = api.ok("POST", f"{BASE}/{cid}/participants", {"uri": target}, status=202)
        assert accepted == {"conference": cid, "uri": target, "status": "dialling"}
        until(lambda: len(api.ok("GET", f"{BASE}/{cid}")["participants"]) == 3, "the dial-out's join")
        invitee = api.ok("GET", f"{BASE}/{cid}")["participants"][2]
        assert invitee["uri"].startswith("sip:invitee@") and invitee["key"] == "sdes", invitee
        assert invitee["srtp"] == "AES_CM_128_HMAC_SHA1_80"
        assert metric_sum(api.metrics(), "imsconf_participants") == 3

        # end the conference: BYE to everyone
        api.ok("DELETE", f"{BASE}/{cid}", status=204)
        for proc, name in ((owner, "owner"), (members[1], "m2"), (uas, "uas")):
            finished(proc, tmp_path / name, srv)
        until(lambda: api.ok("GET", BASE)["conferences"] == [], "the conference's end")
        assert api.call("GET", f"{BASE}/{cid}")[0] == 404
        assert metric_sum(api.metrics(), "imsconf_participants") == 0

        # the event stream
        until(lambda: "conference-ended" in events.kinds(), "conference-ended on the event stream")
        kinds = events.kinds()
        for kind in ("conference-created", "participant-joined", "participant-left", "participant-muted",
                     "participant-deaf", "conference-locked"):  # fmt: skip
            assert kind in kinds, kinds
        muted_events = [d for k, d in events.events if k == "participant-muted"]
        assert muted_events[0] == {"conference": cid, "participant": m1["id"], "data": {"muted": True}}

        # one usage record per ended leg
        def legs() -> list[dict[str, Any]]:
            return [r for r in api.ok("GET", "/api/v1/cdrs")["legs"] if r["conference_id"] == cid]

        until(lambda: len(legs()) == 4, "four leg records")
        records = {r["participant_id"]: r for r in legs()}
        assert set(records) == {owner_p["id"], m1["id"], m2["id"], invitee["id"]}
        assert records[m1["id"]]["reason"] == "booted"
        for pid, r in records.items():
            assert ISO.match(r["joined"]) and ISO.match(r["left"]) and r["duration"] >= 0, r
            assert r["codec"] == "PCMU", r
            if pid == invitee["id"]:
                assert r["srtp_suite"] == "AES_CM_128_HMAC_SHA1_80" and r["key_mode"] == "sdes", r
            else:
                assert r["srtp_suite"] is None and r["key_mode"] == "none", r
            assert r["packets_sent"] >= 0 and r["packets_received"] >= 0, r
        assert records[owner_p["id"]]["packets_sent"] > 0  # the mixer sent it its mix (silence)
        (conf_record,) = [
            c for c in api.ok("GET", "/api/v1/cdrs")["conferences"] if c["conference_id"] == cid
        ]
        assert conf_record["participants"] >= 4
        assert "Traceback" not in srv.log()
    finally:
        events.close()
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def test_usage_records_survive_kill_9(tmp_path: Path) -> None:
    require_peer("sipp")
    srv = ServerProcess(tmp_path / "var", free_port_pair())
    http_port = free_tcp_port()
    cfg = plain_config(tmp_path / "imsconf.toml")
    srv.start("--config", str(cfg), "--http", f"127.0.0.1:{http_port}", auth="none")
    procs: list[subprocess.Popen[bytes]] = []
    try:
        api = Api(http_port, srv.data_dir)
        conf_file = tmp_path / "conf.txt"
        owner = sipp_bg("conf_create_stay.xml", srv.port, "u1", tmp_path / "owner",
                        "-key", "conf_file", str(conf_file), timeout="60s")  # fmt: skip
        procs.append(owner)
        conf = wait_file(conf_file)
        leaver = sipp_bg("conf_join_leave.xml", srv.port, "u1", tmp_path / "leaver", "-key", "conf", conf,
                         "-d", "500")  # fmt: skip
        procs.append(leaver)
        finished(leaver, tmp_path / "leaver", srv)
        (summary,) = api.ok("GET", BASE)["conferences"]
        assert summary["participants"] == 1
        time.sleep(0.5)  # the writer commits within 100 ms of a record
        srv.stop(signal.SIGKILL)
        assert srv.proc is not None and srv.proc.returncode == -signal.SIGKILL
        owner.kill()
        owner.wait()

        out = subprocess.run(
            [sys.executable, "-m", "imsconf.cli", "cdr", "export", "--format", "json",
             "--data-dir", str(srv.data_dir)],
            cwd=REPO, capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        (row,) = [r for r in json.loads(out.stdout)["legs"] if r["conference_id"] == summary["id"]]
        # conf_join_leave.xml offers PCMA then PCMU: the server's preference (audio_codecs) takes PCMU
        assert row["reason"] == "bye" and row["codec"] == "PCMU", row

        srv.start("--config", str(cfg), "--http", f"127.0.0.1:{http_port}", auth="none")
        api = Api(http_port, srv.data_dir)
        legs = [r for r in api.ok("GET", "/api/v1/cdrs")["legs"] if r["conference_id"] == summary["id"]]
        assert len(legs) == 1 and legs[0]["participant_id"] == row["participant_id"], legs
        assert legs[0]["reason"] == row["reason"]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        srv.stop()
