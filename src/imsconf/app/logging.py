"""Logging: one event per line on stderr, ``key=value`` style, with secrets redacted.

A line looks like::

    ts=2024-05-01T12:00:00.123Z level=info logger=imsconf.focus event="participant joined" user=alice

Fields are passed as keyword arguments of :class:`EventLogger` methods (``log.info("joined", user=u)``)
or as ``extra={"fields": {...}}`` on a plain :mod:`logging` call.

Redaction happens twice, in :class:`RedactingFilter` (so that every handler it guards sees clean records)
and again over the finished line in :class:`KeyValueFormatter` (tracebacks included):

* a field whose name is key-ish (``key``, ``password``, ``ha1``, ``inline``, ``secret``, ``token``...,
  matched per ``_``/``-`` separated word and as a suffix) is printed as ``[REDACTED]``, whatever its value;
* in any text, SDES key parameters (``inline:<base64>``, RFC 4568 §9.2), MIKEY blobs, Digest ``response``
  / ``cnonce`` values, ``password=`` / ``secret=``-style pairs and PEM private keys are cut out.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import sys
from collections.abc import Mapping
from typing import Any, TextIO

__all__ = [
    "REDACTED",
    "EventLogger",
    "KeyValueFormatter",
    "RedactingFilter",
    "get_logger",
    "is_secret_name",
    "redact_text",
    "setup_logging",
]

REDACTED = "[REDACTED]"

_SECRET_WORDS = frozenset(
    {
        "key", "keys", "password", "passwd", "pwd", "passphrase", "ha1", "inline", "secret", "secrets",
        "token", "salt", "credential", "credentials", "authorization", "cookie", "privkey", "mikey", "psk",
        "crypto",
    }
)  # fmt: skip
_SECRET_SUFFIXES = ("key", "secret", "password", "passwd", "token", "ha1")

_TEXT_RULES: list[tuple[re.Pattern[str], str]] = [
    # PEM private keys (any type)
    (
        re.compile(r"-----BEGIN ([A-Z ]*)PRIVATE KEY-----.*?(-----END \1PRIVATE KEY-----|\Z)", re.S),
        REDACTED,
    ),
    # RFC 4568 key-params: inline:<key||salt>[|lifetime][|MKI:len], also after '|' or ';' separators
    (re.compile(r"(?i)(inline:)[^\s;\"',]+"), r"\1" + REDACTED),
    # RFC 4567 MIKEY in SDP
    (re.compile(r"(?i)(a=key-mgmt:\s*mikey\s+)\S+"), r"\1" + REDACTED),
    # Digest parameters that allow an offline guess of the password
    # (quoted, or a bare hex digest: "response=200" stays readable)
    (
        re.compile(r'(?i)\b(response|cnonce|rspauth)(\s*=\s*)("[^"]*"|[0-9a-f]{32,}\b)'),
        r"\1\2" + REDACTED,
    ),
    # "password=...", "secret: ...", "ha1=...", "srtp_key=..." in free text
    (
        re.compile(
            r"(?i)\b([\w-]*(?:password|passwd|secret|ha1|token|key))(\s*[=:]\s*)(\"[^\"]*\"|'[^']*'|[^\s,;]+)"
        ),
        r"\1\2" + REDACTED,
    ),
]


def is_secret_name(name: str) -> bool:
    """True for field names that may hold key material or credentials (over-redacting is fine)."""
    low = name.lower()
    words = [w for w in re.split(r"[^a-z0-9]+", low) if w]
    return any(w in _SECRET_WORDS for w in words) or low.endswith(_SECRET_SUFFIXES)


def redact_text(text: str) -> str:
    """Cut key material and credentials out of free text."""
    for pattern, repl in _TEXT_RULES:
        text = pattern.sub(repl, text)
    return text


def _redact_value(name: str, value: object) -> object:
    if is_secret_name(name):
        return REDACTED
    if isinstance(value, bytes | bytearray | memoryview):
        return f"<{len(value)} bytes>"  # raw bytes are never printed: they may be keys
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {str(k): _redact_value(str(k), v) for k, v in value.items()}
    return value


class RedactingFilter(logging.Filter):
    """Rewrites records in place: message rendered and scrubbed, secret-named fields replaced."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not hide the event; keep the raw text
            message = str(record.msg)
        record.msg = redact_text(message)
        record.args = None
        fields = getattr(record, "fields", None)
        if isinstance(fields, Mapping):
            record.fields = {str(k): _redact_value(str(k), v) for k, v in fields.items()}
        return True


_BARE = re.compile(r"[A-Za-z0-9_.:/@+\-\[\]]+")


def _format_value(value: object) -> str:
    text = (
        value if isinstance(value, str) else repr(value) if not isinstance(value, int | float) else str(value)
    )
    if _BARE.fullmatch(text):
        return text
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    return f'"{escaped}"'


_FIELD_NAME = re.compile(r"[^A-Za-z0-9_.-]")


class KeyValueFormatter(logging.Formatter):
    """``ts=... level=... logger=... event="..." k=v ...`` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        ts = dt.datetime.fromtimestamp(record.created, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        try:
            message = record.getMessage()
        except Exception:
            message = str(record.msg)
        parts = [
            f"ts={ts}",
            f"level={record.levelname.lower()}",
            f"logger={_format_value(record.name)}",
            # messages already written as "event=name k=v ..." (the sans-I/O cores log so) stay as they are
            message if message.startswith("event=") else f"event={_format_value(message)}",
        ]
        fields = getattr(record, "fields", None)
        if isinstance(fields, Mapping):
            for k, v in fields.items():
                name = _FIELD_NAME.sub("_", str(k)) or "_"
                parts.append(f"{name}={_format_value(_redact_value(name, v))}")
        if record.exc_info:
            parts.append(f"exc={_format_value(self.formatException(record.exc_info))}")
        elif record.exc_text:
            parts.append(f"exc={_format_value(record.exc_text)}")
        return redact_text(" ".join(parts))


class EventLogger:
    """``log.info("event text", field=value, ...)`` over a standard logger."""

    __slots__ = ("logger",)

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger

    def log(self, level: int, event: str, /, exc_info: bool = False, **fields: Any) -> None:
        if self.logger.isEnabledFor(level):
            self.logger.log(level, "%s", event, exc_info=exc_info, extra={"fields": fields}, stacklevel=3)

    def debug(self, event: str, /, **fields: Any) -> None:
        self.log(logging.DEBUG, event, **fields)

    def info(self, event: str, /, **fields: Any) -> None:
        self.log(logging.INFO, event, **fields)

    def warning(self, event: str, /, **fields: Any) -> None:
        self.log(logging.WARNING, event, **fields)

    def error(self, event: str, /, **fields: Any) -> None:
        self.log(logging.ERROR, event, **fields)

    def exception(self, event: str, /, **fields: Any) -> None:
        self.log(logging.ERROR, event, exc_info=True, **fields)


def get_logger(name: str) -> EventLogger:
    return EventLogger(logging.getLogger(name))


_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}


class _ImsconfHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Marker class so that setup_logging replaces its own handler and nobody else's."""


def setup_logging(level: str | int = "info", stream: TextIO | None = None) -> logging.Handler:
    """Install the key=value, redacting handler on the root logger (idempotent) and set *level*."""
    if isinstance(level, str):
        if level.lower() not in _LEVELS:
            raise ValueError(f"unknown log level {level!r}; use one of {', '.join(_LEVELS)}")
        level = _LEVELS[level.lower()]
    root = logging.getLogger()
    for h in list(root.handlers):
        if isinstance(h, _ImsconfHandler):
            root.removeHandler(h)
    handler = _ImsconfHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(KeyValueFormatter())
    handler.addFilter(RedactingFilter())
    root.addHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(True)
    return handler
