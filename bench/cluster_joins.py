"""Conference joins per second through Kamailio (contrib/kamailio) to one node and to two nodes.

Starts the cluster of tests/integration/cluster.py on loopback (Kamailio, nodes on 127.0.0.2/.3, SIPp over
UDP to the front, TLS from the front to the nodes), creates one conference per node with a SIPp owner, then
for each rate runs one SIPp joiner per conference (INVITE→200→ACK, then BYE) for the given seconds, and
prints the joins per second carried, failures and the CPU seconds of every process (Kamailio: all its
processes; each node) per 1,000 joins carried in all (so a node's figure for its own joins is twice that with
two nodes).  Security relaxed for SIPp: ``auth none``, ``allow_plain_rtp``.

Usage: ``python bench/cluster_joins.py [--rates 20,50,100] [--seconds 10] [--nodes 1,2]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests" / "integration"), str(REPO / "tests")]
from cluster import Cluster  # noqa: E402

SCEN = REPO / "tests" / "integration" / "scenarios"
CLK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK


def tree_cpu(root: int) -> float:
    """CPU seconds of *root* and its children (Kamailio's workers)."""
    total = cpu_seconds(root)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (FileNotFoundError, ProcessLookupError, IndexError):
                continue
            if ppid == root:
                total += cpu_seconds(int(entry.name))
    return total


def owners(sipp: str, cl: Cluster, work: Path) -> tuple[list[subprocess.Popen[bytes]], dict[str, str]]:
    """SIPp owners until every node hosts one conference: node id -> conference user part."""
    procs: list[subprocess.Popen[bytes]] = []
    confs: dict[str, str] = {}
    for i in range(4 * len(cl.nodes)):
        conf_file = work / f"conf{len(cl.nodes)}-{i}.txt"
        conf_file.unlink(missing_ok=True)
        procs.append(subprocess.Popen(
            [sipp, f"127.0.0.1:{cl.front_port}", "-sf", str(SCEN / "conf_create.xml"), "-key", "conf_file",
             str(conf_file), "-d", "36000000", "-m", "1", "-i", "127.0.0.1", "-p", "0", "-nostdin"],
            cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        ))  # fmt: skip
        for _ in range(200):
            if conf_file.exists() and conf_file.read_text().strip():
                break
            time.sleep(0.05)
        conf = conf_file.read_text().strip()
        confs.setdefault(conf.split("-", 2)[1], conf)
        if len(confs) == len(cl.nodes):
            break
    return procs, confs


def joiner(
    sipp: str, cl: Cluster, conf: str, rate: int, seconds: float, work: Path
) -> subprocess.Popen[bytes]:
    work.mkdir(parents=True, exist_ok=True)
    calls = max(1, int(rate * seconds))
    cmd = [sipp, f"127.0.0.1:{cl.front_port}", "-sf", str(SCEN / "conf_join_leave.xml"), "-key", "conf", conf,
           "-d", "0", "-i", "127.0.0.1", "-p", "0", "-r", str(rate), "-m", str(calls), "-nostdin",
           "-timeout", f"{int(seconds * 4 + 10)}s", "-l", "100000", "-trace_stat", "-fd", "1",
           "-stf", str(work / "stat.csv")]  # fmt: skip
    (work / "stat.csv").unlink(missing_ok=True)
    return subprocess.Popen(cmd, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def counts(work: Path, calls: int) -> tuple[int, int]:
    text = (work / "stat.csv").read_text() if (work / "stat.csv").exists() else ""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    ok = failed = 0
    if len(lines) >= 2:
        row = dict(zip(lines[0].split(";"), lines[-1].split(";"), strict=False))
        ok = int(row.get("SuccessfulCall(C)", "0") or 0)
        failed = int(row.get("FailedCall(C)", "0") or 0)
    return ok, failed + max(0, calls - ok - failed)


def bench(n_nodes: int, rates: list[int], seconds: float, sipp: str, work: Path) -> None:
    ids = ("a", "b")[:n_nodes]
    cl = Cluster(work / f"cl{n_nodes}", node_ids=ids, node_config="allow_plain_rtp = true\n")
    cl.start()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        assert cl.kamailio is not None
        procs, confs = owners(sipp, cl, work)
        print(f"\n== {n_nodes} node(s) behind Kamailio: one conference per node, one SIPp joiner each")
        head = f"{'rate/conf':>9} {'joins/s':>8} {'ok':>6} {'failed':>6} {'kamailio CPU s/1000':>20}"
        print(head + "".join(f" {'node ' + n + ' CPU s/1000':>20}" for n in ids))
        for rate in rates:
            k0 = tree_cpu(cl.kamailio.pid)
            n0 = {n.node_id: cpu_seconds(n.proc.pid) for n in cl.nodes if n.proc is not None}
            t0 = time.monotonic()
            runs = [
                (joiner(sipp, cl, confs[i], rate, seconds, work / f"j{n_nodes}-{i}-{rate}"), i) for i in ids
            ]
            for p, _ in runs:
                p.wait()
            wall = time.monotonic() - t0
            ok = failed = 0
            for _, i in runs:
                o, f = counts(work / f"j{n_nodes}-{i}-{rate}", max(1, int(rate * seconds)))
                ok, failed = ok + o, failed + f
            k = (tree_cpu(cl.kamailio.pid) - k0) / max(ok, 1) * 1000
            row = f"{rate:>9} {ok / wall:>8.0f} {ok:>6} {failed:>6} {k:>20.3f}"
            for n in cl.nodes:
                assert n.proc is not None
                row += f" {(cpu_seconds(n.proc.pid) - n0[n.node_id]) / max(ok, 1) * 1000:>20.3f}"
            print(row, flush=True)
            if failed:
                break
    finally:
        for p in procs:
            p.send_signal(signal.SIGINT)
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
        cl.stop()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rates", default="20,50,100", help="joins per second per conference, stepped")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--nodes", default="1,2")
    args = ap.parse_args()
    sipp = shutil.which("sipp")
    if sipp is None or shutil.which("kamailio") is None:
        sys.exit("sipp and kamailio are needed (scripts/install-test-deps.sh)")
    with tempfile.TemporaryDirectory(prefix="cluster-bench-") as tmp:
        for n in (int(x) for x in args.nodes.split(",")):
            bench(n, [int(r) for r in args.rates.split(",")], args.seconds, sipp, Path(tmp))


if __name__ == "__main__":
    main()
