"""Logging: one key=value line per event, and no key material or credential ever printed."""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator

import pytest

from imsconf.app.logging import REDACTED, get_logger, is_secret_name, redact_text, setup_logging

SDES_KEY = "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz"
CRYPTO_LINE = f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{SDES_KEY}|2^20|1:32"


@pytest.fixture(autouse=True)
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.captureWarnings(False)


@pytest.fixture
def stream() -> io.StringIO:
    buf = io.StringIO()
    setup_logging("debug", stream=buf)
    return buf


def lines(buf: io.StringIO) -> list[str]:
    return buf.getvalue().splitlines()


def test_one_line_key_value(stream: io.StringIO) -> None:
    get_logger("imsconf.focus").info("participant joined", user="alice", conf="sip:c1@x", count=3)
    (line,) = lines(stream)
    assert re.match(r"ts=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z level=info logger=imsconf\.focus ", line)
    assert 'event="participant joined"' in line
    assert "user=alice conf=sip:c1@x count=3" in line


def test_multiline_values_stay_on_one_line(stream: io.StringIO) -> None:
    get_logger("t").warning("bad\nmessage", body='v=0\r\no=- 1 1 IN IP4 "x"')
    (line,) = lines(stream)
    assert "\\n" in line and '\\"x\\"' in line


def test_sdes_inline_key_is_redacted_in_message(stream: io.StringIO) -> None:
    logging.getLogger("imsconf.sdp").info("sending offer: %s", "m=audio 4000 RTP/SAVP 0\r\n" + CRYPTO_LINE)
    out = stream.getvalue()
    assert SDES_KEY not in out
    assert "inline:" + REDACTED in out
    assert "AES_CM_128_HMAC_SHA1_80" in out  # the suite itself is useful and harmless


def test_sdes_inline_key_is_redacted_in_fields(stream: io.StringIO) -> None:
    get_logger("imsconf.sdp").debug("answer", sdp=CRYPTO_LINE, note=f"inline:{SDES_KEY}")
    assert SDES_KEY not in stream.getvalue()


@pytest.mark.parametrize(
    "name",
    ["key", "password", "ha1", "inline", "secret", "srtp_key", "master-key", "group_key_epoch", "token"],
)
def test_secret_named_fields_are_redacted(stream: io.StringIO, name: str) -> None:
    get_logger("t").info("event", **{name: "topsecretvalue"})
    out = stream.getvalue()
    assert "topsecretvalue" not in out
    assert REDACTED in out


def test_plain_logging_extra_fields_are_redacted(stream: io.StringIO) -> None:
    logging.getLogger("t").info("with extra", extra={"fields": {"password": "hunter2", "user": "bob"}})
    out = stream.getvalue()
    assert "hunter2" not in out and "user=bob" in out


def test_bytes_are_never_printed(stream: io.StringIO) -> None:
    get_logger("t").info("raw", material=b"\x01\x02secret-bytes")
    out = stream.getvalue()
    assert "secret-bytes" not in out and "<14 bytes>" in out


def test_digest_response_and_free_text_password(stream: io.StringIO) -> None:
    hdr = 'Digest username="alice", response="6629fae49393a05397450978507c4ef1", cnonce="0a4f113b"'
    logging.getLogger("t").info("auth %s; password=hunter2 ha1: abcdef", hdr)
    out = stream.getvalue()
    for secret in ("6629fae49393a05397450978507c4ef1", "0a4f113b", "hunter2", "abcdef"):
        assert secret not in out
    assert 'username="alice"' in out or 'username=\\"alice\\"' in out


def test_status_codes_named_response_stay_readable(stream: io.StringIO) -> None:
    get_logger("t").info("sent", status=200, text="response=200")
    assert "response=200" in stream.getvalue()


def test_exception_text_is_redacted(stream: io.StringIO) -> None:
    try:
        raise ValueError(f"could not parse {CRYPTO_LINE}")
    except ValueError:
        get_logger("t").exception("parse failed")
    out = stream.getvalue()
    assert SDES_KEY not in out
    assert len(lines(stream)) == 1 and "exc=" in out


def test_pem_private_key_is_redacted() -> None:
    text = "key:\n-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIB\n-----END EC PRIVATE KEY-----\nafter"
    out = redact_text(text)
    assert "MHcCAQEEIB" not in out and out.endswith("after")


def test_mikey_is_redacted() -> None:
    assert "AQAFgM0" not in redact_text("a=key-mgmt:mikey AQAFgM0XflABAAAAAAAAAAAAAAsA")


def test_is_secret_name() -> None:
    for name in ("key", "Password", "ha1", "inline", "secret", "api_token", "srtpkey", "crypto"):
        assert is_secret_name(name)
    for name in ("user", "conf", "status", "call_id", "ssrc", "monkeys_count"):
        assert not is_secret_name(name)


def test_levels_and_idempotent_setup() -> None:
    buf = io.StringIO()
    setup_logging("info", stream=io.StringIO())
    handler = setup_logging("warning", stream=buf)
    ours = [h for h in logging.getLogger().handlers if type(h).__name__ == "_ImsconfHandler"]
    assert ours == [handler]
    get_logger("t").info("hidden")
    get_logger("t").warning("shown")
    assert "hidden" not in buf.getvalue() and "shown" in buf.getvalue()
    with pytest.raises(ValueError):
        setup_logging("loud")
