"""The server's Python allocator: ``imsconf serve`` re-executes itself once under glibc's malloc."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from imsconf.app import allocator
from imsconf.app.config import load_settings

REPO = Path(__file__).resolve().parents[2]


def test_malloc_is_the_default_and_pymalloc_can_be_chosen() -> None:
    assert load_settings(None, {}).python_allocator == "malloc"
    assert load_settings(None, {"python_allocator": "PyMalloc"}).python_allocator == "pymalloc"
    with pytest.raises(ValueError, match="python_allocator"):
        load_settings(None, {"python_allocator": "jemalloc"})


def test_reexec_only_when_malloc_is_wanted_and_not_chosen_yet(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, list[str], dict[str, str]]] = []

    def fake_execve(path: str, argv: list[str], env: dict[str, str]) -> None:
        calls.append((path, argv, env))

    monkeypatch.setattr(os, "execve", fake_execve)
    monkeypatch.delenv("PYTHONMALLOC", raising=False)
    allocator.reexec_for_allocator("pymalloc", ["serve"])
    assert calls == []
    allocator.reexec_for_allocator("malloc", ["serve", "--data-dir", "x"])
    assert len(calls) == 1
    path, argv, env = calls[0]
    assert path == sys.executable and argv == [
        sys.executable,
        "-m",
        "imsconf.cli",
        "serve",
        "--data-dir",
        "x",
    ]
    assert env["PYTHONMALLOC"] == "malloc"
    monkeypatch.setenv("PYTHONMALLOC", "pymalloc")  # an explicit environment wins (and ends the loop)
    allocator.reexec_for_allocator("malloc", ["serve"])
    assert len(calls) == 1


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_serve_command_runs_under_malloc_in_the_same_process(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONMALLOC"}
    cmd = [sys.executable, "-m", "imsconf.cli", "serve", "--data-dir", str(tmp_path / "var"),
           "--listen", f"udp:127.0.0.1:{_free_port()}", "--http", "off", "--auth", "none"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line or b"conference factory" in line:
                break
        environ = Path(f"/proc/{proc.pid}/environ").read_bytes().split(b"\0")
        assert b"PYTHONMALLOC=malloc" in environ  # the same PID, now under glibc's malloc
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
