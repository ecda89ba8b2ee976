"""A cluster on loopback: Kamailio (contrib/kamailio) in front of imsconf nodes on 127.0.0.2, 127.0.0.3, ...

Each node has its own data directory (SQLite) and the same dev PKI (one CA: phones check the front's
certificate, the front checks the nodes'). Every process is started here and stopped by its PID.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness import REPO, free_port_pair

from imsconf.app.pki import ensure_dev_pki
from peers import require_peer

RENDER = REPO / "contrib" / "kamailio" / "render.sh"


class PortTaken(RuntimeError):
    """Kamailio could not bind a port chosen free a moment before."""


def free_port_on(ip: str) -> int:
    """A TCP port free on *ip* (a loopback address)."""
    with socket.socket() as s:
        s.bind((ip, 0))
        return int(s.getsockname()[1])


def _stop(proc: subprocess.Popen[bytes] | None, sig: int = signal.SIGTERM, timeout: float = 5.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@dataclass
class Node:
    node_id: str
    ip: str
    port: int  # the node's SIP over TLS listener (the front's only way in)
    data_dir: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.data_dir / "server.log"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start(self, config: Path, timeout: float = 20.0) -> None:
        self.spawn(config)
        self.wait_ready(timeout)

    def spawn(self, config: Path) -> None:
        """Start the process; :meth:`wait_ready` waits for it (the nodes of a cluster start side by side)."""
        cmd = [sys.executable, "-m", "imsconf.cli", "serve", "--config", str(config),
               "--data-dir", str(self.data_dir), "--listen", f"tls:{self.ip}:{self.port}",
               "--auth", "none", "--http", "off"]  # fmt: skip
        err = open(self.log_path, "wb")  # noqa: SIM115 - kept open for the process lifetime
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, cwd=REPO,
                                     env=dict(os.environ, PYTHONUNBUFFERED="1"))  # fmt: skip
        assert self.proc.stdout is not None
        os.set_blocking(self.proc.stdout.fileno(), False)

    def wait_ready(self, timeout: float = 40.0) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        buf, deadline = b"", time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"node {self.node_id} exited: {self.log()}")
            buf += self.proc.stdout.read() or b""
            if b"conference factory" in buf:
                return
            time.sleep(0.05)
        _stop(self.proc)
        raise RuntimeError(f"node {self.node_id} did not start: {buf!r} {self.log()}")

    def kill(self) -> None:
        """kill -9: no BYEs, no goodbye to the front."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        _stop(self.proc)


@dataclass
class Cluster:
    base: Path
    node_ids: tuple[str, ...] = ("a", "b")
    node_config: str = ""  # more settings for every node (TOML lines)
    front_env: dict[str, str] = field(default_factory=dict)  # more settings for render.sh (the front)
    front_ip: str = "127.0.0.1"
    ping_interval: int = 1
    rtp_range: tuple[int, int] = (20000, 29999)  # split between the nodes
    front_port: int = 0  # UDP and TCP for phones; TLS on front_port + 1
    internal_port: int = 0  # the nodes' side of the front (TLS)
    nodes: list[Node] = field(default_factory=list)
    kamailio: subprocess.Popen[bytes] | None = None

    @property
    def front_tls_port(self) -> int:
        return self.front_port + 1

    @property
    def pki(self) -> Path:
        return self.base / "pki"

    @property
    def kamailio_log_path(self) -> Path:
        return self.base / "kamailio" / "kamailio.log"

    def kamailio_log(self) -> str:
        p = self.kamailio_log_path
        return p.read_text(errors="replace") if p.exists() else ""

    def node(self, node_id: str) -> Node:
        return next(n for n in self.nodes if n.node_id == node_id)

    def start(self) -> None:
        kamailio = require_peer("kamailio")
        self.base.mkdir(parents=True, exist_ok=True)
        ips = [f"127.0.0.{i + 2}" for i in range(len(self.node_ids))]
        ensure_dev_pki(self.base, ips)
        self.front_port = free_port_pair()
        self.internal_port = free_port_on(self.front_ip)
        try:
            for node_id, ip in zip(self.node_ids, ips, strict=True):
                node = Node(node_id, ip, free_port_on(ip), self.base / node_id)
                node.data_dir.mkdir(parents=True, exist_ok=True)
                shutil.copytree(self.pki, node.data_dir / "pki", dirs_exist_ok=True)
                config = node.data_dir / "imsconf.toml"
                config.write_text(self.node_toml(node))
                self.nodes.append(node)
                node.spawn(config)
            for node in self.nodes:
                node.wait_ready()
            for attempt in range(3):  # a port taken between the choice and Kamailio's bind: new ports
                try:
                    self.start_front(kamailio)
                    break
                except PortTaken:
                    if attempt == 2:
                        raise
                    self.front_port = free_port_pair()
        except BaseException:
            self.stop()
            raise

    def node_toml(self, node: Node) -> str:
        i = self.node_ids.index(node.node_id)
        share = (self.rtp_range[1] - self.rtp_range[0]) // len(self.node_ids)
        lo = self.rtp_range[0] + i * share
        return (
            f"rtp_port_range = [{lo}, {lo + share - 1}]\n"
            f'node_id = "{node.node_id}"\n'
            f'focus_host = "{self.front_ip}"\n'
            f'outbound_proxy = "sip:{self.front_ip}:{self.internal_port};transport=tls;lr"\n'
            f'media_host = "{node.ip}"\n'
            "sip_source_rate = 0\n"
            "bfcp_listen = []\nmsrp_listen = []\n"
            f"{self.node_config}"
        )

    def start_front(self, kamailio: str, timeout: float = 15.0) -> None:
        out = self.base / "kamailio"
        env = dict(
            os.environ,
            FRONT_IP=self.front_ip,
            FRONT_PLAIN="yes",  # SIPp has no TLS
            FRONT_PORT=str(self.front_port),
            FRONT_TLS_PORT=str(self.front_tls_port),
            INTERNAL_PORT=str(self.internal_port),
            TLS_CERT=str(self.pki / "server.pem"),
            TLS_KEY=str(self.pki / "server.key"),
            TLS_CA=str(self.pki / "ca.pem"),
            NODES=" ".join(f"{n.node_id}={n.ip}:{n.port}" for n in self.nodes),
            DS_PING_INTERVAL=str(self.ping_interval),
            LOG_LEVEL=os.environ.get("KAMAILIO_LOG_LEVEL", "2"),
            **self.front_env,
        )
        subprocess.run(["bash", str(RENDER), str(out)], env=env, check=True, capture_output=True)
        log = open(self.kamailio_log_path, "wb")  # noqa: SIM115 - kept open for the process lifetime
        self.kamailio = subprocess.Popen(
            [kamailio, "-f", str(out / "kamailio.cfg"), "-DD", "-E", "-w", str(out), "-m", "64", "-M", "8"],
            stdout=log, stderr=subprocess.STDOUT, cwd=out,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.kamailio.poll() is not None:
                if "Address already in use" in self.kamailio_log():
                    raise PortTaken(self.kamailio_log()[-3000:])
                raise RuntimeError(f"kamailio exited: {self.kamailio_log()[-3000:]}")
            try:
                with socket.create_connection((self.front_ip, self.front_tls_port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"kamailio did not listen: {self.kamailio_log()[-3000:]}")

    def logs(self) -> str:
        parts = [f"--- kamailio\n{self.kamailio_log()[-4000:]}"]
        parts += [f"--- node {n.node_id}\n{n.log()[-3000:]}" for n in self.nodes]
        return "\n".join(parts)

    def stop(self) -> None:
        _stop(self.kamailio)
        for node in self.nodes:
            node.stop()
