"""``make cluster`` / ``make cluster-down`` (scripts/cluster.sh) as an operator runs them: PostgreSQL, two
nodes on 127.0.0.2 and 127.0.0.3 sharing it, Kamailio in front; a conference made at the front's factory;
``down`` stops exactly the processes ``up`` started (the PIDs in its files), PostgreSQL included."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from harness import free_port_pair, sipp_bg, sipp_errors, wait_file

from peers import require_peer

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.peer


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_cluster_up_shares_postgresql_takes_a_call_and_down_stops_everything(tmp_path: Path) -> None:
    require_peer("kamailio")
    require_peer("/usr/lib/postgresql/15/bin/initdb")
    # PostgreSQL runs as the postgres user when the tests run as root: the cluster's directory must be one
    # it can reach (pytest's tmp_path is private to root)
    base = Path(tempfile.mkdtemp(prefix="imsconf-cluster-"))
    base.chmod(0o755)
    front = free_port_pair()
    env = {
        **os.environ,
        "PY": sys.executable,
        "CLUSTER_DIR": str(base),
        "CLUSTER_PORT": str(front),
        "CLUSTER_INTERNAL_PORT": str(free_port_pair()),
        "CLUSTER_NODE_PORT": str(free_port_pair()),
        "CLUSTER_PG_PORT": str(free_port_pair()),
        "CLUSTER_AUTH": "none",
        "CLUSTER_NODE_CONFIG": "allow_plain_rtp = true",
    }
    script = str(REPO / "scripts" / "cluster.sh")
    up = subprocess.run(["bash", script, "up"], env=env, capture_output=True, text=True, timeout=120)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        assert f"sip:conference-factory@127.0.0.1:{front}" in up.stdout, up.stdout
        for node in ("a", "b"):
            log = (base / node / "server.log").read_text()
            assert re.search(
                r"event=stores_opened store=user=imsconf dbname=imsconf host=127\.0\.0\.1", log
            ), log
        conf_file = tmp_path / "conf.txt"
        owner = sipp_bg("conf_create.xml", front, "u1", tmp_path / "owner", "-key", "conf_file",
                        str(conf_file), "-d", "500")  # fmt: skip
        conf = wait_file(conf_file)
        assert re.fullmatch(r"conf-[ab]-\S+", conf), conf
        assert owner.wait(30) == 0, sipp_errors(tmp_path / "owner")
    finally:
        pids = [int(p.read_text()) for p in base.glob("*.pid")]
        postmaster = base / "pg" / "data" / "postmaster.pid"
        if postmaster.exists():
            pids.append(int(postmaster.read_text().splitlines()[0]))
        down = subprocess.run(["bash", script, "down"], env=env, capture_output=True, text=True, timeout=90)
    shutil.rmtree(base, ignore_errors=True)
    assert down.returncode == 0, down.stdout + down.stderr
    assert len(pids) == 4, pids  # two nodes, Kamailio, PostgreSQL
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [p for p in pids if _alive(p)], pids
