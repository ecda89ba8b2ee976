"""``imsconf book`` as a user runs it: a subprocess, JSON out, exit 2 naming the field."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from imsconf.booking.store import DB_NAME

REPO = Path(__file__).resolve().parents[2]
SOON = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)


def iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def book(data_dir: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    return subprocess.run(
        [sys.executable, "-m", "imsconf.cli", "book", "--data-dir", str(data_dir), *args],
        input=stdin, capture_output=True, text=True, env=env, cwd=REPO, timeout=60,
    )  # fmt: skip


def window(hours: int = 0) -> list[str]:
    return ["--start", iso(SOON + timedelta(hours=hours)), "--end", iso(SOON + timedelta(hours=hours + 1))]


def created(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert proc.returncode == 0, proc.stderr
    doc: dict[str, Any] = json.loads(proc.stdout)
    return doc


def test_create_show_list_cancel(tmp_path: Path) -> None:
    b = created(book(
        tmp_path, "create", "--uri", "sip:weekly@localhost", *window(), "--pin-stdin", "--capacity", "3",
        "--invite", "sip:alice@example.com:chair", "--invite", "tel:+4930123456",
        "--invite", "sip:bob@x.org:5070",
        "--downlink", "per-participant", "--rekey", "on-leave", "--allow-pin-in-uri", "--dial-out",
        "--overrun", "20", "--subject", "Weekly", stdin="246810\n",
    ))  # fmt: skip
    assert b["uri"] == "sip:weekly@localhost" and b["has_pin"] and b["capacity"] == 3
    assert b["invitees"] == [
        {"uri": "sip:alice@example.com", "role": "chair"},
        {"uri": "tel:+4930123456", "role": "participant"},
        {"uri": "sip:bob@x.org:5070", "role": "participant"},
    ]
    assert (b["downlink"], b["rekey"], b["dial_out"], b["overrun"], b["subject"]) == (
        "per-participant",
        "on-leave",
        True,
        20,
        "Weekly",
    )
    assert "246810" not in json.dumps(b)
    assert created(book(tmp_path, "show", b["id"])) == b
    assert [x["id"] for x in created(book(tmp_path, "list"))["bookings"]] == [b["id"]]
    active = created(book(tmp_path, "list", "--active-at", iso(SOON + timedelta(minutes=5))))["bookings"]
    assert [x["id"] for x in active] == [b["id"]]
    assert created(book(tmp_path, "list", "--active-at", iso(SOON - timedelta(minutes=5))))["bookings"] == []
    assert created(book(tmp_path, "cancel", b["id"]))["cancelled"] is True
    assert created(book(tmp_path, "list"))["bookings"] == []
    assert len(created(book(tmp_path, "list", "--all"))["bookings"]) == 1
    assert b"246810" not in b"".join(p.read_bytes() for p in tmp_path.glob(DB_NAME + "*"))


def test_generated_uri_and_pin_flag(tmp_path: Path) -> None:
    b = created(book(tmp_path, "create", *window(), "--pin", "1234"))
    assert b["uri"].startswith("sip:conf-") and b["uri"].endswith("@localhost") and b["has_pin"]
    assert b["overrun"] == 0 and b["audio_codecs"] == []


def test_audio_codecs_option_and_listing(tmp_path: Path) -> None:
    b = created(book(tmp_path, "create", *window(), "--audio-codecs", "g722, PCMU"))
    assert b["audio_codecs"] == ["G722", "PCMU"]
    assert [x["audio_codecs"] for x in created(book(tmp_path, "list"))["bookings"]] == [["G722", "PCMU"]]


@pytest.mark.parametrize(
    ("args", "fields"),
    [
        ([], ["start", "end"]),
        (["--start", "tomorrow", "--end", "2020-01-01T00:00:00"], ["start", "end"]),
        ([*window(), "--capacity", "ten"], ["capacity"]),
        ([*window(), "--capacity", "0"], ["capacity"]),
        ([*window(), "--pin", "12"], ["pin"]),
        ([*window(), "--uri", "sip:weekly@elsewhere.org"], ["uri"]),
        ([*window(), "--uri", "sip:conference-factory@localhost"], ["uri"]),
        ([*window(), "--invite", "mailto:a@b:chair"], ["invitees[0].uri"]),
        ([*window(), "--invite", "sip:a@b:owner"], ["invitees[0].uri"]),
        ([*window(), "--downlink", "mixed", "--rekey", "often"], ["downlink", "rekey"]),
        ([*window(), "--allow-pin-in-uri"], ["allow_pin_in_uri"]),
        ([*window(), "--dial-out"], ["dial_out"]),
        ([*window(), "--overrun", "241"], ["overrun"]),
        ([*window(), "--audio-codecs", "G722,G729"], ["audio_codecs"]),
        ([*window(), "--overrun", "soon", "--capacity", "0"], ["capacity", "overrun"]),
        (["--start", iso(SOON), "--end", iso(SOON + timedelta(days=8))], ["end"]),
    ],
)
def test_invalid_input_exits_2_naming_fields(tmp_path: Path, args: list[str], fields: list[str]) -> None:
    proc = book(tmp_path, "create", *args)
    assert proc.returncode == 2, proc.stdout
    assert proc.stdout == ""
    named = [
        line.split(": ")[2]
        for line in proc.stderr.splitlines()
        if line.startswith("imsconf: invalid booking:")
    ]
    assert named == fields, proc.stderr


def test_conflict_not_found_and_bad_active_at(tmp_path: Path) -> None:
    created(book(tmp_path, "create", "--uri", "sip:weekly@localhost", *window()))
    proc = book(tmp_path, "create", "--uri", "sips:weekly@localhost", *window())
    assert proc.returncode == 2 and "invalid booking: uri: already booked" in proc.stderr
    created(book(tmp_path, "create", "--uri", "sip:weekly@localhost", *window(1)))  # adjacent window: fine
    for cmd in ("show", "cancel"):
        proc = book(tmp_path, cmd, "nosuchbooking")
        assert proc.returncode == 1 and "no booking" in proc.stderr
    proc = book(tmp_path, "list", "--active-at", "noon")
    assert proc.returncode == 2 and "--active-at" in proc.stderr


def test_config_file_domain(tmp_path: Path) -> None:
    cfg = tmp_path / "imsconf.toml"
    cfg.write_text('domain = "example.org"\ndata_dir = "var"\n')
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    proc = subprocess.run(
        [sys.executable, "-m", "imsconf.cli", "book", "--config", str(cfg), "create", *window()],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=60,
    )  # fmt: skip
    assert created(proc)["uri"].endswith("@example.org")
    assert (tmp_path / "var" / DB_NAME).exists()
