"""RFC 3862 Common Presence and Instant Messaging (CPIM) message format: ``message/cpim``.

A CPIM message is three parts::

    message headers        From, To, DateTime, Subject, NS, ... (UTF-8, case-sensitive names)
    CRLF
    MIME headers           of the encapsulated content: Content-Type, ... (case-insensitive names)
    CRLF
    body                   octets

Message header grammar (RFC 3862 §3.1)::

    Header       = Header-name ":" *( ";" Parameter ) SP Header-value CRLF
    Header-name  = [ Name-prefix "." ] Name
    Name         = 1*Name-char

Message header names are case-sensitive (RFC 3862 §3.2: "From" is not "from"); the MIME headers of the
encapsulated content follow RFC 2045, whose names are not.  Message headers are not folded (RFC 3862 §3.1
has no continuation lines); MIME headers may be, and are unfolded.  Leniency: bare LF is read as a line end
(rendering always uses CRLF); whitespace after the colon is skipped.

Every fault is a :class:`CpimError` (a ``ValueError``) with the reason, so a relay can answer 400 with it;
nothing else escapes :func:`parse_cpim`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from imsconf.sip.errors import SipParseError
from imsconf.sip.uri import NameAddr

MAX_HEADERS = 64
"""Most header lines in either header section."""
MAX_LINE = 998
"""Longest header line in octets (RFC 5322's line limit)."""

_NAME_CHARS = r"[A-Za-z0-9!#$%&'*+\-^_`|~]+"
# Header-name = [ Name-prefix "." ] Name ; Name-prefix = Name
_HEADER_NAME_RE = re.compile(rf"{_NAME_CHARS}(?:\.{_NAME_CHARS})?\Z", re.ASCII)
# RFC 5322 field-name = 1*ftext ; ftext = %d33-57 / %d59-126 (any printable but ':')
_MIME_NAME_RE = re.compile(r"[\x21-\x39\x3b-\x7e]+\Z", re.ASCII)
# type "/" subtype, each an RFC 2045 token, then parameters
_MIME_TOKEN = r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+"
_CONTENT_TYPE_RE = re.compile(rf"{_MIME_TOKEN}/{_MIME_TOKEN}\s*(?:;.*)?\Z", re.ASCII | re.DOTALL)
# RFC 3339 date-time (RFC 3862 §5.4 DateTime)
_DATETIME_RE = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?(?:[Zz]|[+-][0-9]{2}:[0-9]{2})\Z",
    re.ASCII,
)
# C0 controls but HTAB, and DEL: not allowed in a header value (CR and LF end the line)
_CONTROL_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_SINGLE = ("From", "DateTime")
"""Message headers that may appear at most once."""
_NAMED = frozenset(("From", "To", "DateTime", "Subject", "NS"))


class CpimError(ValueError):
    """A ``message/cpim`` body that is not RFC 3862 (the text says what is wrong)."""


@dataclass(frozen=True, slots=True)
class CpimMessage:
    """One CPIM message.  Addresses are name-addr text (``"Alice" <sip:alice@example.com>``).

    ``subject`` is the first Subject header (later ones, e.g. in other languages, stay in
    ``other_headers``); ``ns`` the NS declarations; ``other_headers`` every other message header in order
    (cc, Require, prefixed extension headers).  ``content_type`` is the encapsulated content's type with its
    parameters; ``content_headers`` its other MIME headers.
    """

    from_: str
    to: tuple[str, ...]
    datetime: str | None
    subject: str | None
    ns: tuple[str, ...]
    other_headers: tuple[tuple[str, str], ...]
    content_type: str
    content_headers: tuple[tuple[str, str], ...]
    body: bytes


def parse_cpim(data: bytes) -> CpimMessage:
    """Parse a ``message/cpim`` body; :class:`CpimError` on any fault."""
    pos, message_lines = _header_block(data, 0, "message")
    pos, content_lines = _header_block(data, pos, "content")
    from_: str | None = None
    to: list[str] = []
    datetime: str | None = None
    subject: str | None = None
    ns: list[str] = []
    other: list[tuple[str, str]] = []
    for raw in message_lines:
        name, value = _message_header(raw)
        if name in _SINGLE and (from_ if name == "From" else datetime) is not None:
            raise CpimError(f"more than one {name} header")
        if name == "From":
            from_ = _address(value, name)
        elif name == "To":
            to.append(_address(value, name))
        elif name == "DateTime":
            if not _DATETIME_RE.match(value):
                raise CpimError(f"DateTime is not an RFC 3339 date-time: {value[:40]!r}")
            datetime = value
        elif name == "Subject" and subject is None:
            subject = value
        elif name == "NS":
            ns.append(value)
        else:
            other.append((name, value))
    if from_ is None:
        raise CpimError("no From header")
    content_type: str | None = None
    content_headers: list[tuple[str, str]] = []
    for name, value in _mime_headers(content_lines):
        if name.lower() == "content-type":
            if content_type is not None:
                raise CpimError("more than one Content-Type in the encapsulated content")
            if not _CONTENT_TYPE_RE.match(value):
                raise CpimError(f"bad Content-Type in the encapsulated content: {value[:40]!r}")
            content_type = value
        else:
            content_headers.append((name, value))
    if content_type is None:
        raise CpimError("the encapsulated content has no Content-Type")
    return CpimMessage(
        from_=from_,
        to=tuple(to),
        datetime=datetime,
        subject=subject,
        ns=tuple(ns),
        other_headers=tuple(other),
        content_type=content_type,
        content_headers=tuple(content_headers),
        body=data[pos:],
    )


def render_cpim(msg: CpimMessage) -> bytes:
    """The ``message/cpim`` body of *msg* (CRLF line ends); :class:`CpimError` if a field cannot be sent."""
    lines: list[str] = [_line("From", msg.from_)]
    lines += [_line("To", t) for t in msg.to]
    if msg.datetime is not None:
        lines.append(_line("DateTime", msg.datetime))
    if msg.subject is not None:
        lines.append(_line("Subject", msg.subject))
    lines += [_line("NS", n) for n in msg.ns]
    lines += [_line(n, v) for n, v in msg.other_headers]
    content = [_line("Content-Type", msg.content_type)] + [_line(n, v) for n, v in msg.content_headers]
    head = "\r\n".join(lines) + "\r\n\r\n" + "\r\n".join(content) + "\r\n\r\n"
    return head.encode("utf-8") + msg.body


def _line(name: str, value: str) -> str:
    if _CONTROL_RE.search(value):
        raise CpimError(f"line break or control character in the {name} header")
    return f"{name}:{value}" if value.startswith(";") else f"{name}: {value}"


def _header_block(data: bytes, pos: int, what: str) -> tuple[int, list[bytes]]:
    """The header lines from *pos* up to the empty line, and the position after it."""
    lines: list[bytes] = []
    while True:
        end = data.find(b"\n", pos)
        if end < 0:
            raise CpimError(f"the {what} headers do not end with an empty line")
        line = data[pos : end - 1] if end > pos and data[end - 1] == 0x0D else data[pos:end]
        pos = end + 1
        if not line:
            if not lines:
                raise CpimError(f"no {what} headers")
            return pos, lines
        if len(line) > MAX_LINE:
            raise CpimError(f"a {what} header line is longer than {MAX_LINE} octets")
        if len(lines) >= MAX_HEADERS:
            raise CpimError(f"more than {MAX_HEADERS} {what} headers")
        lines.append(line)


def _message_header(raw: bytes) -> tuple[str, str]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise CpimError("a message header is not UTF-8") from None
    name, colon, value = text.partition(":")
    if not colon:
        raise CpimError(f"message header without ':': {text[:40]!r}")
    if not _HEADER_NAME_RE.match(name):
        raise CpimError(f"bad message header name: {name[:40]!r}")
    value = value.strip(" \t")
    if not value:
        raise CpimError(f"empty {name} header")
    if _CONTROL_RE.search(value):
        raise CpimError(f"control character in the {name} header")
    return name, value


def _mime_headers(lines: list[bytes]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for raw in lines:
        try:
            text = raw.decode("ascii")
        except UnicodeDecodeError:
            raise CpimError("a MIME header of the encapsulated content is not ASCII") from None
        if text[0] in " \t":
            if not out:
                raise CpimError("continuation line before the first MIME header")
            name, value = out[-1]
            out[-1] = (name, (value + " " + text.strip(" \t")).strip())
            continue
        name, colon, value = text.partition(":")
        if not colon or not _MIME_NAME_RE.match(name):
            raise CpimError(f"bad MIME header in the encapsulated content: {text[:40]!r}")
        out.append((name, value.strip(" \t")))
    for name, value in out:
        if not value:
            raise CpimError(f"empty {name} header in the encapsulated content")
        if _CONTROL_RE.search(value):
            raise CpimError(f"control character in the {name} header")
    return out


def _address(value: str, name: str) -> str:
    """*value* if it is ``[Formal-name] <URI>`` (RFC 3862 §3.3)."""
    try:
        addr = NameAddr.parse(value)
    except SipParseError as exc:
        raise CpimError(f"bad {name} address: {exc}") from None
    if addr.params:
        raise CpimError(f"parameters after the {name} address")
    if "<" not in value:
        raise CpimError(f"the {name} address is not in <...>")
    return value
