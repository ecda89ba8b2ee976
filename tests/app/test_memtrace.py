"""The opt-in memory reports of a running server (imsconf.app.memtrace)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from imsconf.app.memtrace import MemTrace, install_memtrace


def test_off_without_the_variable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("IMSCONF_TRACEMALLOC", raising=False)
    loop = asyncio.new_event_loop()
    try:
        assert install_memtrace(loop, tmp_path) is None
    finally:
        loop.close()
    assert not (tmp_path / "memtrace").exists()


def test_reports_name_the_arenas_and_the_objects_made_since_the_first(tmp_path: Path) -> None:
    trace = MemTrace(tmp_path / "memtrace")
    first = trace.report().read_text()
    assert "arenas allocated current" in first and "glibc" in first
    kept = [bytearray(b"x" * 10) for _ in range(2000)]  # made between the two reports, still alive
    second = trace.report().read_text()
    assert "objects alive now that were not at report 1" in second
    assert "bytearray" in second and "arenas allocated current" in second
    assert len(kept) == 2000
