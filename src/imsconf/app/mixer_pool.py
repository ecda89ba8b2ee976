"""``mixers = N | "auto"``: the server starts N ``imsconf mixer`` processes beside the focus and drives them
as one :class:`~imsconf.media.pool.MixerPool`.

Each child listens on its own loopback control port (mutual TLS with certificates of the dev PKI in
``DATA_DIR/pki``: the mixer's certificate is made here once, before the children start), owns its own
slice of ``rtp_port_range`` and, when the server may run on several cores, is pinned to one of them with
``os.sched_setaffinity`` (``pinned=false`` in the log when the kernel refuses).  Its output goes to
``DATA_DIR/mixers/mixer-<i>.log``.  A child that exits is started again after a capped backoff (0.5 s
doubling up to 5 s, reset once a child has run for :data:`STEADY` seconds), on the same port and
slice, so its :class:`~imsconf.media.remote.RemoteMediaControl` reconnects to it; the children get
``SIGKILL`` if the server itself dies (``PR_SET_PDEATHSIG``) and ``SIGTERM`` (then ``SIGKILL``) when it
stops.  docs/decisions/0019-mixer-pool.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import socket
import ssl
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from imsconf.media.link import Backoff
from imsconf.media.pool import MixerPool
from imsconf.media.remote import RemoteMediaControl

from .config import Settings
from .mixer import focus_client_context, mixer_server_context
from .pki import ensure_dev_pki

__all__ = ["STEADY", "MixerChild", "SpawnedMixers", "port_slices", "start_mixers"]

log = logging.getLogger("imsconf.mixer")

LOOPBACK = "127.0.0.1"
STEADY = 10.0  # a child that ran this long resets the restart backoff
STOP_SECONDS = 0.8  # SIGTERM, then SIGKILL after this long


def port_slices(lo: int, hi: int, n: int) -> list[tuple[int, int]]:
    """``lo..hi`` cut into *n* consecutive slices of the same even size (the rest of the range unused)."""
    size = ((hi - lo + 1) // n) & ~1
    return [(lo + i * size, lo + (i + 1) * size - 1) for i in range(n)]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


@dataclass
class MixerChild:
    """One ``imsconf mixer`` child: its command, where it listens, its core, its process."""

    index: int
    port: int
    ports: tuple[int, int]
    cpu: int | None
    argv: list[str]
    log_path: Path
    proc: asyncio.subprocess.Process | None = None
    restarts: int = 0
    backoff: Backoff = field(default_factory=Backoff)

    @property
    def name(self) -> str:
        return f"mixer-{self.index}"

    @property
    def pid(self) -> int | None:
        return None if self.proc is None or self.proc.returncode is not None else self.proc.pid

    async def spawn(self) -> None:
        out: IO[bytes] = self.log_path.open("ab")
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *self.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                preexec_fn=_die_with_parent,
            )
        finally:
            out.close()
        pinned = False
        if self.cpu is not None:
            try:
                os.sched_setaffinity(self.proc.pid, {self.cpu})
                pinned = True
            except OSError:
                pass
        log.info(
            "event=mixer_started mixer=%s pid=%d control=%s:%d rtp=%d-%d cpu=%s pinned=%s",
            self.name,
            self.proc.pid,
            LOOPBACK,
            self.port,
            *self.ports,
            self.cpu,
            str(pinned).lower(),
        )


class SpawnedMixers:
    """The children, their control channels and the pool over them; :meth:`close` stops everything."""

    def __init__(self, children: list[MixerChild], members: list[RemoteMediaControl]) -> None:
        self.children = children
        self.members = members
        self.pool = MixerPool(members, [c.name for c in children])
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    @property
    def pids(self) -> list[int]:
        return [pid for c in self.children if (pid := c.pid) is not None]

    async def start(self, ctx: ssl.SSLContext) -> None:
        loop = asyncio.get_running_loop()
        for child, member in zip(self.children, self.members, strict=True):
            await child.spawn()
            self._tasks.append(loop.create_task(self._supervise(child)))
            member.keep_connected(LOOPBACK, child.port, ctx)

    async def wait_ready(self, timeout: float) -> bool:
        """Wait until a member is connected (at most *timeout* seconds); whether one is."""
        waits = [asyncio.ensure_future(m.connected.wait()) for m in self.members]
        try:
            await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
        return self.pool.ready

    async def _supervise(self, child: MixerChild) -> None:
        loop = asyncio.get_running_loop()
        while not self._stopping:
            proc = child.proc
            assert proc is not None
            started = loop.time()
            code = await proc.wait()
            if self._stopping:
                return
            if loop.time() - started >= STEADY:
                child.backoff.reset()
            delay = child.backoff.delay()
            log.warning(
                "event=mixer_exited mixer=%s pid=%d status=%s restart_in=%.1f",
                child.name,
                proc.pid,
                code,
                delay,
            )
            await asyncio.sleep(delay)
            if self._stopping:
                return
            child.restarts += 1
            try:
                await child.spawn()
            except OSError as exc:
                log.error("event=mixer_spawn_failed mixer=%s error=%s", child.name, exc.__class__.__name__)
                child.proc = proc  # waits on the dead one again: the next delay follows at once

    async def close(self) -> None:
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        for member in self.members:
            await member.close()
        procs = [c.proc for c in self.children if c.proc is not None and c.proc.returncode is None]
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        if procs:
            _done, pending = await asyncio.wait(
                [asyncio.ensure_future(p.wait()) for p in procs], timeout=STOP_SECONDS
            )
            for fut in pending:
                fut.cancel()
        for proc in procs:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(proc.wait(), 0.5)
        log.info("event=mixers_stopped count=%d", len(self.children))


def _child_config(settings: Settings, directory: Path) -> Path:
    path = directory / "mixer.toml"
    path.write_text(
        f"domain = {settings.domain!r}\n"
        f"allow_plain_rtp = {str(settings.allow_plain_rtp).lower()}\n"
        f"media_realtime_priority = {settings.media_realtime_priority}\n"
    )
    return path


async def start_mixers(settings: Settings) -> SpawnedMixers:
    """Start ``settings.mixer_count`` children and the pool over them (not waiting for them)."""
    count = settings.mixer_count
    data_dir = Path(settings.data_dir).resolve()
    pki = ensure_dev_pki(data_dir, [settings.domain])
    mixer_server_context(pki, LOOPBACK)  # the mixers' certificate, made once here, not by each child
    ctx = focus_client_context(pki)
    assert isinstance(ctx, ssl.SSLContext)
    directory = data_dir / "mixers"
    directory.mkdir(parents=True, exist_ok=True)
    config = _child_config(settings, directory)
    cpus = sorted(os.sched_getaffinity(0))
    children: list[MixerChild] = []
    for i, (lo, hi) in enumerate(port_slices(*settings.rtp_port_range, count)):
        port = _free_port()
        argv = [
            sys.executable,
            "-m",
            "imsconf.cli",
            "mixer",
            "--config",
            str(config),
            "--data-dir",
            str(data_dir),
            "--listen",
            f"{LOOPBACK}:{port}",
            "--media-host",
            settings.media_host,
            "--rtp-port-range",
            f"{lo}-{hi}",
            "--log-level",
            settings.log_level,
        ]
        cpu = cpus[i % len(cpus)] if len(cpus) > 1 else None
        children.append(MixerChild(i, port, (lo, hi), cpu, argv, directory / f"mixer-{i}.log"))
    spawned = SpawnedMixers(children, [RemoteMediaControl() for _ in children])
    await spawned.start(ctx)
    return spawned
