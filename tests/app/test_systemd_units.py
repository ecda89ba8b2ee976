"""The unit files in contrib/systemd: systemd-analyze accepts them, and they say what the runtime needs."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNITS = Path(__file__).resolve().parents[2] / "contrib" / "systemd"
INSTALLED = "/opt/imsconf/bin/imsconf"


def _directives(name: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in (UNITS / name).read_text().splitlines():
        if line and not line.startswith(("#", "[")) and "=" in line:
            key, value = line.split("=", 1)
            out.setdefault(key, []).append(value)
    return out


def test_server_unit_directives() -> None:
    d = _directives("imsconf.service")
    assert d["Type"] == ["notify"] and d["NotifyAccess"] == ["main"]
    assert d["Restart"] == ["on-failure"] and d["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert "WatchdogSec" in d
    assert d["ExecStart"][0].startswith(f"{INSTALLED} serve --config ")
    for unit in ("imsconf.service", "imsconf-mixer.service"):
        d = _directives(unit)
        assert d["ProtectSystem"] == ["strict"] and d["ReadWritePaths"] == ["/var/lib/imsconf"]
        assert d["NoNewPrivileges"] == ["true"] and d["PrivateTmp"] == ["true"]
        caps = {"CAP_SYS_NICE", "CAP_NET_BIND_SERVICE"}
        assert set(d["CapabilityBoundingSet"][0].split()) == caps
        assert set(d["AmbientCapabilities"][0].split()) == caps
        assert set(d["RestrictAddressFamilies"][0].split()) == {"AF_UNIX", "AF_INET", "AF_INET6"}
        assert d["LockPersonality"] == ["true"] and d["MemoryDenyWriteExecute"] == ["true"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verify(tmp_path: Path) -> None:
    """The units as they are, with ExecStart pointing at this interpreter's imsconf (verify wants the
    program to exist)."""
    program = Path(sys.executable).parent / "imsconf"
    if not program.exists():
        pytest.skip("no imsconf script next to the interpreter")
    units = [tmp_path / "imsconf.service", tmp_path / "imsconf-mixer.service"]
    for unit in units:
        unit.write_text((UNITS / unit.name).read_text().replace(INSTALLED, str(program)))
    res = subprocess.run(
        ["systemd-analyze", "verify", *map(str, units)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0 and res.stderr.strip() == "", res.stderr
