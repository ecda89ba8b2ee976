"""Settings: defaults, listen parsing, TOML then overrides, errors that name the key."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from imsconf.app.config import Listen, Settings, load_settings, parse_hostport, parse_listen


def test_defaults() -> None:
    s = Settings()
    assert s.domain == "localhost"
    assert s.listen == (
        Listen("udp", "127.0.0.1", 5060),
        Listen("tcp", "127.0.0.1", 5060),
        Listen("tls", "127.0.0.1", 5061),
    )
    assert s.data_dir == Path("./var")
    assert s.auth == "digest"
    assert s.realm == "localhost"
    assert s.factory_user == "conference-factory"
    assert s.factory_uri == "sip:conference-factory@localhost"
    assert s.require_tls_for_sdes is True
    assert s.allow_plain_rtp is False
    assert s.allow_sdes_over_udp is False
    assert s.rtp_port_range == (20000, 29999)
    assert s.media_host == "127.0.0.1"
    assert s.log_level == "info"
    assert s.http == "127.0.0.1:8080" and s.http_address == ("127.0.0.1", 8080)  # on by default
    assert s.http_tls is False and s.http_allow_plain is False


def test_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        Settings().domain = "x"  # type: ignore[misc]


def test_realm_follows_domain_unless_set() -> None:
    assert Settings(domain="example.com").realm == "example.com"
    assert Settings(domain="example.com", realm="ims.example.com").realm == "ims.example.com"
    assert Settings(domain="example.com").factory_uri == "sip:conference-factory@example.com"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("tls:127.0.0.1:5061", Listen("tls", "127.0.0.1", 5061)),
        ("udp:0.0.0.0:5060", Listen("udp", "0.0.0.0", 5060)),
        ("TCP:example.com:5070", Listen("tcp", "example.com", 5070)),
        ("udp:[::1]:5060", Listen("udp", "::1", 5060)),
        ("tls:[::]:5061", Listen("tls", "::", 5061)),
        ("udp:127.0.0.1", Listen("udp", "127.0.0.1", 5060)),
        ("tls:[2001:db8::1]", Listen("tls", "2001:db8::1", 5061)),
    ],
)
def test_parse_listen(text: str, expected: Listen) -> None:
    assert parse_listen(text) == expected


def test_listen_str_round_trips() -> None:
    for text in ("udp:[::1]:5060", "tls:127.0.0.1:5061", "tcp:example.com:5060"):
        assert str(parse_listen(text)) == text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("127.0.0.1:5060", "transport"),
        ("sctp:127.0.0.1:5060", "transport"),
        ("udp:::1:5060", "brackets"),
        ("udp:[::1:5060", "']'"),
        ("udp:[not-ip]:5060", "IPv6"),
        ("udp:[::1]5060", "':PORT'"),
        ("udp:127.0.0.1:0", "port"),
        ("udp:127.0.0.1:70000", "port"),
        ("udp:127.0.0.1:http", "port"),
        ("udp::5060", "empty host"),
        ("udp:bad_host!:5060", "host name"),
    ],
)
def test_parse_listen_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=None) as ei:
        parse_listen(text)
    assert message in str(ei.value)
    assert text in str(ei.value)


def test_parse_hostport() -> None:
    assert parse_hostport("127.0.0.1:8080") == ("127.0.0.1", 8080)
    assert parse_hostport("[::1]:8080") == ("::1", 8080)
    assert parse_hostport("localhost", 80) == ("localhost", 80)
    with pytest.raises(ValueError, match="missing ':PORT'"):
        parse_hostport("localhost")


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "imsconf.toml"
    p.write_text(text)
    return p


def test_load_without_file_gives_defaults() -> None:
    assert load_settings(None, {}) == Settings()


def test_load_toml(tmp_path: Path) -> None:
    cfg = write(
        tmp_path,
        """
domain = "conf.example.com"
listen = ["udp:0.0.0.0:5060", "tls:[::]:5061"]
data_dir = "state"
auth = "none"
factory_user = "factory"
allow_plain_rtp = true
rtp_port_range = [30000, 30999]
media_host = "192.0.2.10"
log_level = "DEBUG"
http = "127.0.0.1:8080"
""",
    )
    s = load_settings(cfg, {})
    assert s.domain == "conf.example.com" and s.realm == "conf.example.com"
    assert s.listen == (Listen("udp", "0.0.0.0", 5060), Listen("tls", "::", 5061))
    assert s.data_dir == tmp_path.resolve() / "state"  # relative to the config file
    assert s.auth == "none"
    assert s.factory_uri == "sip:factory@conf.example.com"
    assert s.allow_plain_rtp is True
    assert s.rtp_port_range == (30000, 30999)
    assert s.media_host == "192.0.2.10"
    assert s.log_level == "debug"
    assert s.http_address == ("127.0.0.1", 8080)


def test_overrides_win_over_file(tmp_path: Path) -> None:
    cfg = write(tmp_path, 'domain = "a.example"\nlisten = ["udp:127.0.0.1:5060"]\nlog_level = "warning"\n')
    s = load_settings(
        cfg,
        {
            "domain": "b.example",
            "listen": ["tls:127.0.0.1:5071"],
            "log_level": None,  # not given on the command line
            "allow_sdes_over_udp": "yes",
            "rtp_port_range": "40000-40099",
            "data_dir": "rel",
        },
    )
    assert s.domain == "b.example" and s.realm == "b.example"
    assert s.listen == (Listen("tls", "127.0.0.1", 5071),)
    assert s.log_level == "warning"
    assert s.allow_sdes_over_udp is True
    assert s.rtp_port_range == (40000, 40099)
    assert s.data_dir == Path("rel")


def test_unknown_key_in_file_is_named(tmp_path: Path) -> None:
    cfg = write(tmp_path, 'domain = "x.example"\nlisen = ["udp:127.0.0.1:5060"]\n')
    with pytest.raises(ValueError, match="unknown setting 'lisen'"):
        load_settings(cfg, {})


def test_unknown_table_is_named(tmp_path: Path) -> None:
    cfg = write(tmp_path, "[media]\nhost = 'x'\n")
    with pytest.raises(ValueError, match="'media'"):
        load_settings(cfg, {})


def test_unknown_override_is_named() -> None:
    with pytest.raises(ValueError, match="unknown setting 'colour'"):
        load_settings(None, {"colour": "blue"})


def test_invalid_toml(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="invalid TOML"):
        load_settings(write(tmp_path, "domain = \n"), {})


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("auth", "basic", "auth"),
        ("allow_plain_rtp", "maybe", "allow_plain_rtp"),
        ("rtp_port_range", [30000], "rtp_port_range"),
        ("rtp_port_range", [2000, 1000], "rtp_port_range"),
        ("rtp_port_range", [80, 1000], "rtp_port_range"),
        ("log_level", "loud", "log_level"),
        ("listen", [], "listen"),
        ("listen", 5060, "listen"),
        ("http", "nohost", "http"),
        ("domain", "bad domain", "domain"),
        ("factory_user", "a b", "factory_user"),
        ("realm", 'a"b', "realm"),
        ("media_host", 7, "media_host"),
    ],
)
def test_bad_values_name_the_key(key: str, value: object, message: str) -> None:
    with pytest.raises(ValueError) as ei:
        load_settings(None, {key: value})
    assert message in str(ei.value)


def test_bad_value_in_file_names_file_and_key(tmp_path: Path) -> None:
    cfg = write(tmp_path, "allow_plain_rtp = 'sure'\n")
    with pytest.raises(ValueError) as ei:
        load_settings(cfg, {})
    assert str(cfg) in str(ei.value) and "allow_plain_rtp" in str(ei.value)


def test_ipv6_domain_factory_uri() -> None:
    assert Settings(domain="::1").factory_uri == "sip:conference-factory@[::1]"


def test_media_realtime_priority(tmp_path: Path) -> None:
    assert Settings().media_realtime_priority == 0  # ordinary scheduling unless asked
    assert load_settings(write(tmp_path, "media_realtime_priority = 10\n"), {}).media_realtime_priority == 10
    for bad in ("100", "-1", "true", '"high"'):
        with pytest.raises(ValueError, match="media_realtime_priority"):
            load_settings(write(tmp_path, f"media_realtime_priority = {bad}\n"), {})


def test_http_off_and_the_plain_http_rule(tmp_path: Path) -> None:
    assert load_settings(None, {"http": "off"}).http is None
    assert load_settings(write(tmp_path, 'http = "off"\n'), {}).http_address is None
    assert load_settings(None, {"http": "[::1]:9000"}).http_address == ("::1", 9000)
    for address in ("0.0.0.0:8080", "192.0.2.1:8080", "example.com:8080"):
        with pytest.raises(ValueError, match="http_allow_plain"):
            load_settings(None, {"http": address})
        assert load_settings(None, {"http": address, "http_allow_plain": True}).http == address
        assert load_settings(None, {"http": address, "http_tls": "true"}).http_tls is True


def test_message_settings_reach_the_focus(tmp_path: Path) -> None:
    from imsconf.app.server import build_focus

    s = load_settings(write(tmp_path, "allow_insecure_messages = true\nmax_message_bytes = 1024\n"), {})
    assert (s.allow_insecure_messages, s.max_message_bytes) == (True, 1024)
    assert (Settings().allow_insecure_messages, Settings().max_message_bytes) == (False, 8192)
    focus, _ = build_focus(s)
    assert focus.config.allow_insecure_messages is True and focus.config.max_message_bytes == 1024
    for bad in (0, 70000, "many", True):
        with pytest.raises(ValueError, match="max_message_bytes"):
            load_settings(None, {"max_message_bytes": bad})
    with pytest.raises(ValueError, match="allow_insecure_messages"):
        load_settings(None, {"allow_insecure_messages": "perhaps"})


def test_mixers_a_number_or_auto(tmp_path: Path) -> None:
    import os

    assert Settings().mixers is None and Settings().mixer_count == 0
    cfg = tmp_path / "c.toml"
    cfg.write_text("mixers = 2\n")
    assert load_settings(cfg, {}).mixer_count == 2
    cfg.write_text('mixers = "auto"\n')
    assert load_settings(cfg, {}).mixer_count == len(os.sched_getaffinity(0))
    assert load_settings(None, {"mixers": "3"}).mixers == 3
    for bad in ("0x", "many", -1, True):
        with pytest.raises(ValueError, match="mixers"):
            load_settings(None, {"mixers": bad})
    with pytest.raises(ValueError, match="exclude each other"):
        Settings(mixers=2, mixer="127.0.0.1:7100")
    with pytest.raises(ValueError, match="too small"):
        Settings(mixers=4, rtp_port_range=(20000, 20020))


def test_audio_codecs(tmp_path: Path) -> None:
    assert Settings().audio_codecs == ("AMR-WB", "opus", "G722", "PCMU", "PCMA")
    s = load_settings(write(tmp_path, 'audio_codecs = ["g722", "OPUS", "pcmu"]\n'), {})
    assert s.audio_codecs == ("G722", "opus", "PCMU")  # names as sdp.codecs spells them
    assert load_settings(None, {"audio_codecs": "amr-wb,PCMA"}).audio_codecs == ("AMR-WB", "PCMA")
    for bad in ('audio_codecs = ["G729"]\n', "audio_codecs = []\n", 'audio_codecs = ["PCMU", "pcmu"]\n'):
        with pytest.raises(ValueError, match="audio_codecs"):
            load_settings(write(tmp_path, bad), {})


def test_pin_lobby_settings_and_their_bounds(tmp_path: Path) -> None:
    assert (Settings().pin_timeout_seconds, Settings().pin_attempts) == (10.0, 3)
    cfg = tmp_path / "imsconf.toml"
    cfg.write_text("pin_timeout_seconds = 4.5\npin_attempts = 5\n")
    s = load_settings(cfg, {})
    assert (s.pin_timeout_seconds, s.pin_attempts) == (4.5, 5)
    for bad in (
        "pin_timeout_seconds = 0.2",
        "pin_timeout_seconds = nan",
        "pin_attempts = 0",
        "pin_attempts = 11",
    ):
        with pytest.raises(ValueError, match=bad.split()[0]):
            load_settings(write(tmp_path, bad + "\n"), {})
    with pytest.raises(ValueError, match="pin_attempts"):
        Settings(pin_attempts=11)
