"""``imsconf conf``: every subcommand through ``imsconf.cli.main`` against an in-process operator plane over
a fake ConferenceAdmin; tables and ``--json``; the exit codes (1 the server refused, with its reason; 2
the server unreachable or the token unreadable); HTTPS with the data directory's CA under ``http_tls``;
``imsconf --version``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from fake_admin import FakeAdmin, conference, participant
from imsconf import __version__
from imsconf.app.pki import ensure_dev_pki, server_ssl_context
from imsconf.cli import main
from imsconf.web.server import WebServer, start_web
from web_harness import ServedApi, with_deps


@pytest.fixture
def admin() -> FakeAdmin:
    return FakeAdmin(
        conference("weekly", participant("p1", "sip:alice@example.com", role="owner"),
                   participant("p2", "sips:bob@example.com", display="Bob", muted=True, speaking=True)),
        conference("empty"),
    )  # fmt: skip


@pytest.fixture
def api(tmp_path: Path, admin: FakeAdmin) -> Iterator[ServedApi]:
    a = ServedApi(tmp_path, with_deps(admin=admin))
    yield a
    a.close()


class Cli:
    """``imsconf conf --data-dir DIR --http 127.0.0.1:PORT ...`` in this process: exit code, out, err."""

    def __init__(self, api: ServedApi, data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.port = api.port
        self.data_dir = data_dir
        self.capsys = capsys

    def __call__(self, *args: str, data_dir: Path | None = None) -> tuple[int, str, str]:
        d = self.data_dir if data_dir is None else data_dir
        code = main(["conf", "--data-dir", str(d), "--http", f"127.0.0.1:{self.port}", *args])
        out, err = self.capsys.readouterr()
        return code, out, err


@pytest.fixture
def conf(api: ServedApi, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(api, tmp_path, capsys)  # ServedApi wrote the token files into tmp_path


def lines(text: str) -> list[list[str]]:
    return [line.split() for line in text.strip().splitlines()]


def test_list_table_and_json(conf: Cli, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = conf("list")
    assert code == 0 and err == ""
    head, weekly, empty = lines(out)
    assert head == ["ID", "URI", "OWNER", "PARTICIPANTS", "LOCKED", "CREATED"]
    assert weekly == ["weekly", "sip:weekly@example.com", "sip:alice@example.com", "2", "no",
                      "2027-03-01T12:00:00Z"]  # fmt: skip
    assert empty == ["empty", "sip:empty@example.com", "-", "0", "no", "2027-03-01T12:00:00Z"]
    code, out, _ = conf("--json", "list")
    assert code == 0
    data = json.loads(out)
    assert [c["id"] for c in data["conferences"]] == ["weekly", "empty"]
    assert data["conferences"][0]["participants"] == 2


def test_show_table_and_json(conf: Cli, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = conf("show", "weekly")
    assert code == 0
    first, second, head, alice, bob = out.strip().splitlines()
    assert first.split() == ["conference", "weekly", "sip:weekly@example.com"]
    assert second.split() == ["owner", "sip:alice@example.com", "created", "2027-03-01T12:00:00Z", "locked",
                              "no", "downlink", "per-leg", "key", "epoch", "-"]  # fmt: skip
    assert head.split() == ["ID", "URI", "ROLE", "TRANSPORT", "CODEC", "SRTP", "KEY", "STATE"]
    assert alice.split() == ["p1", "sip:alice@example.com", "owner", "tls", "PCMU", "AES_CM_128_HMAC_SHA1_80",
                             "sdes", "-"]  # fmt: skip
    assert bob.split()[-1] == "muted,speaking"
    code, out, _ = conf("--json", "show", "weekly")
    assert code == 0
    data = json.loads(out)
    assert [p["id"] for p in data["participants"]] == ["p1", "p2"] and data["locked"] is False


@pytest.mark.parametrize(
    ("command", "field", "value"),
    [("mute", "muted", True), ("unmute", "muted", False), ("deaf", "deaf", True), ("undeaf", "deaf", False)],
)
def test_participant_commands(
    conf: Cli, admin: FakeAdmin, capsys: pytest.CaptureFixture[str], command: str, field: str,
    value: bool,
) -> None:  # fmt: skip
    code, out, _ = conf(command, "weekly", "p1")
    assert code == 0
    head, row = lines(out)
    assert head == ["ID", "URI", "ROLE", "STATE"] and row[:3] == ["p1", "sip:alice@example.com", "owner"]
    assert row[3] == (field if value else "-")
    assert getattr(admin.confs["weekly"].participants[0], field) is value
    code, out, _ = conf("--json", command, "weekly", "p1")  # idempotent
    assert code == 0 and json.loads(out)[field] is value


def test_kick_lock_unlock_end_invite(conf: Cli, admin: FakeAdmin, capsys: pytest.CaptureFixture[str]) -> None:
    assert conf("kick", "weekly", "p2") == (0, "participant p2 removed\n", "")
    assert ("kick", "weekly", "p2") in admin.calls
    assert conf("lock", "weekly") == (0, "conference weekly locked\n", "")
    assert admin.confs["weekly"].locked
    code, out, _ = conf("--json", "unlock", "weekly")
    assert code == 0 and json.loads(out)["locked"] is False and not admin.confs["weekly"].locked
    assert conf("invite", "weekly", "sip:carol@example.com") == (
        0, "dialling sip:carol@example.com\n", ""
    )  # fmt: skip
    assert ("invite", "weekly", "sip:carol@example.com") in admin.calls
    code, out, _ = conf("--json", "invite", "weekly", "sips:dave@example.com")
    assert code == 0
    assert json.loads(out) == {"conference": "weekly", "uri": "sips:dave@example.com", "status": "dialling"}
    assert conf("end", "empty") == (0, "conference empty ended\n", "")
    assert "empty" not in admin.confs
    code, out, _ = conf("--json", "end", "weekly")
    assert code == 0 and json.loads(out) == {}


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (("show", "nope"), "404 no such conference"),
        (("mute", "nope", "p1"), "404 no such conference"),
        (("mute", "weekly", "p9"), "404 no such participant"),
        (("kick", "weekly", "p9"), "404 no such participant"),
        (("lock", "nope"), "404 no such conference"),
        (("end", "nope"), "404 no such conference"),
        (("invite", "weekly", "tel:+15551234"), "422 invalid dial-out target; uri: "),
    ],
)
def test_a_refusal_is_exit_1_with_the_reason(
    conf: Cli, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], reason: str
) -> None:
    code, out, err = conf(*args)
    assert code == 1 and out == ""
    assert err.startswith(f"imsconf: {reason}"), err


def test_server_down_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    api = ServedApi(tmp_path, with_deps(admin=FakeAdmin()))
    port = api.port
    api.close()
    code = main(["conf", "--data-dir", str(tmp_path), "--http", f"127.0.0.1:{port}", "list"])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert f"cannot reach the server at http://127.0.0.1:{port}" in err


def test_missing_token_file_is_exit_2(conf: Cli, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    code, out, err = conf("list", data_dir=empty)
    assert code == 2 and out == ""
    assert f"cannot read the API token {empty / 'api-token'}" in err


def test_wrong_token_is_exit_1(conf: Cli, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "api-token").write_text("x" * 43 + "\n")
    code, _, err = conf("list", data_dir=other)
    assert code == 1 and err.startswith("imsconf: 401 ")


def test_http_off_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["conf", "--data-dir", str(tmp_path), "--http", "off", "list"]) == 2
    assert "HTTP listener is off" in capsys.readouterr().err


def test_https_with_the_data_directory_ca(
    api: ServedApi, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    pki = ensure_dev_pki(tmp_path, [])
    tls: WebServer = api.call(start_web(api.deps, "127.0.0.1", 0, ssl_context=server_ssl_context(pki)))
    try:
        cfg = tmp_path / "imsconf.toml"
        cfg.write_text("http_tls = true\n")
        port = tls.address[1]
        argv = ["conf", "--config", str(cfg), "--data-dir", str(tmp_path), "--http", f"127.0.0.1:{port}"]
        assert main([*argv, "list"]) == 0
        assert "weekly" in capsys.readouterr().out
        # another CA: the certificate is not trusted, the server is not reached
        other = tmp_path / "other"
        ensure_dev_pki(other, [])
        (other / "api-token").write_text((tmp_path / "api-token").read_text())
        assert main([*argv[:4], str(other), *argv[5:], "list"]) == 2
        assert "cannot reach the server at https://127.0.0.1" in capsys.readouterr().err
        # no CA file at all
        bare = tmp_path / "bare"
        bare.mkdir()
        (bare / "api-token").write_text((tmp_path / "api-token").read_text())
        assert main([*argv[:4], str(bare), *argv[5:], "list"]) == 2
        assert "cannot read the CA certificate" in capsys.readouterr().err
    finally:
        api.call(tls.close())


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out == f"imsconf {__version__}\n"
