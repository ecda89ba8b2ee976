"""``imsconf cdr export``: CSV and JSON, windows, kinds, bad input."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta
from pathlib import Path

import pytest

from imsconf.cli import main
from imsconf.usage.store import UsageStore
from usage_records import T0, conference, leg


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    with UsageStore.open(tmp_path) as store:
        store.append(
            [leg(T0, pid="p1"), leg(T0 + timedelta(hours=1), pid="p2")],
            [conference(T0 + timedelta(hours=1))],
        )
    return tmp_path


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["cdr", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_csv_legs_in_a_window(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(
        capsys, "--data-dir", str(data_dir), "export", "--since", "2030-06-01T08:00:00Z",
        "--until", "2030-06-01T09:30:00+00:00",
    )  # fmt: skip
    assert code == 0
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0][:4] == ["conference_id", "conference_uri", "participant_id", "identity"]
    assert len(rows) == 2
    row = dict(zip(rows[0], rows[1], strict=True))
    assert row["participant_id"] == "p1" and row["left"] == "2030-06-01T09:00:00.000000+00:00"
    assert row["duration"] == "60.0" and row["privacy"] == "false" and row["loss"] == "0.01"


def test_json_conferences_and_default_window(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(
        capsys, "--data-dir", str(data_dir), "export", "--format", "json", "--kind", "conferences"
    )
    assert code == 0
    doc = json.loads(out)
    assert [c["reason"] for c in doc["conferences"]] == ["last-left"]
    assert doc["conferences"][0]["duration"] == 600.0
    code, out, _ = _run(capsys, "export", "--format", "json", "--data-dir", str(data_dir))
    assert [r["participant_id"] for r in json.loads(out)["legs"]] == ["p1", "p2"]


def test_empty_store_gives_a_header_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "--data-dir", str(tmp_path), "export", "--kind", "conferences")
    assert code == 0 and out.splitlines() == [
        "conference_id,conference_uri,owner,created,ended,duration,reason,participants,planned"
    ]


@pytest.mark.parametrize(
    "args", [["--since", "yesterday"], ["--since", "2030-06-01T09:00:00"], ["--since", "2030-06-02T00:00Z",
             "--until", "2030-06-01T00:00Z"]],
)  # fmt: skip
def test_bad_window_is_exit_2(data_dir: Path, capsys: pytest.CaptureFixture[str], args: list[str]) -> None:
    code, out, err = _run(capsys, "--data-dir", str(data_dir), "export", *args)
    assert code == 2 and out == "" and err.startswith("imsconf: ")


def test_unreadable_store_is_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "usage.sqlite3").write_bytes(b"garbage" * 200)
    code, _, err = _run(capsys, "--data-dir", str(tmp_path), "export")
    assert code == 1 and "usage database" in err
