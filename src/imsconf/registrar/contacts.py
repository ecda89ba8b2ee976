"""What a REGISTER asks for, read from its headers: the Contact list (or ``*``), the expiry of each
contact, its q-value and the Path (RFC 3261 §10.2, §10.3 steps 6-7, §20.10, §20.19; RFC 3327).  Pure.

A fault raises :class:`RegisterError` with the status and a reason phrase naming the header or parameter.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from imsconf.sip.errors import SipParseError
from imsconf.sip.headers import Headers
from imsconf.sip.uri import NameAddr, SipUri, split_quoted

__all__ = [
    "MAX_DELTA_SECONDS",
    "ContactRequest",
    "RegisterError",
    "format_q",
    "parse_contacts",
    "parse_delta_seconds",
    "parse_path",
    "parse_q",
]

# RFC 3261 §20.19 (Expires) and §10.2.1.1: a larger delta-seconds value is taken as 2**32 - 1
MAX_DELTA_SECONDS = 2**32 - 1
_DIGITS_RE = re.compile(r"[0-9]{1,40}", re.ASCII)
# qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )   (RFC 3261 §25.1)
_Q_RE = re.compile(r"(?:0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?)", re.ASCII)


class RegisterError(Exception):
    """A REGISTER that cannot be carried out: *status*, a reason phrase, extra response headers."""

    def __init__(self, status: int, reason: str, headers: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason
        self.headers = headers


def _bad(what: str) -> RegisterError:
    return RegisterError(400, f"Bad Request ({what})")


def parse_delta_seconds(text: str, what: str) -> int:
    """``delta-seconds`` (1*DIGIT), capped at :data:`MAX_DELTA_SECONDS`; a 400 naming *what* otherwise."""
    value = text.strip()
    if not _DIGITS_RE.fullmatch(value):
        raise _bad(f"bad {what}")
    return min(int(value), MAX_DELTA_SECONDS)


def parse_q(text: str | None) -> int:
    """A q-value as thousandths (``"0.5"`` -> 500); ``None`` (no ``q`` parameter) is 1000."""
    if text is None:
        return 1000
    value = text.strip()
    if not _Q_RE.fullmatch(value):
        raise _bad("bad q parameter in Contact")
    whole, _, frac = value.partition(".")
    return int(whole) * 1000 + int((frac + "000")[:3])


def format_q(q: int) -> str:
    """Thousandths back to a qvalue: 1000 -> ``"1"``, 500 -> ``"0.5"``, 125 -> ``"0.125"``."""
    if q >= 1000:
        return "1"
    return ("0." + f"{q:03d}".rstrip("0")) if q else "0"


@dataclass(frozen=True, slots=True)
class ContactRequest:
    """One Contact of a REGISTER: its URI, the ``expires`` parameter (None: not given) and q."""

    uri: SipUri
    text: str  # the URI as it was written (the 200 lists it so)
    expires: int | None
    q: int
    q_given: bool


def parse_contacts(headers: Headers) -> list[ContactRequest] | None:
    """The Contacts of a REGISTER; ``None`` for ``Contact: *``; ``[]`` for none (a query)."""
    values = [v for v in headers.get_all("Contact") if v.strip()]
    if "*" in (v.strip() for v in values):
        if len(values) != 1:
            raise _bad("Contact: * must be the only Contact")
        return None
    out: list[ContactRequest] = []
    for value in values:
        try:
            addr = NameAddr.parse(value)
        except SipParseError as exc:
            raise _bad(f"bad Contact: {exc.reason[:60]}") from None
        uri = addr.uri
        if uri.scheme not in ("sip", "sips") or not uri.host:
            raise _bad("Contact: only sip and sips URIs can be registered")
        raw_expires = addr.params.get("expires", "")
        expires = None
        if "expires" in addr.params:
            if raw_expires is None:
                raise _bad("bad expires parameter in Contact")
            expires = parse_delta_seconds(raw_expires, "expires parameter in Contact")
        q_text = addr.params.get("q")
        if "q" in addr.params and q_text is None:
            raise _bad("bad q parameter in Contact")
        out.append(ContactRequest(uri, str(uri), expires, parse_q(q_text), "q" in addr.params))
    return out


def parse_path(headers: Headers) -> tuple[str, ...]:
    """The Path entries, in order, each a ``<sip:...>`` name-addr (RFC 3327 §4); 400 for a bad one."""
    out: list[str] = []
    for value in headers.get_all("Path"):
        for item in split_quoted(value, ","):
            item = item.strip()
            if not item:
                continue
            try:
                addr = NameAddr.parse(item)
            except SipParseError:
                raise _bad("bad Path") from None
            if addr.uri.scheme not in ("sip", "sips"):
                raise _bad("bad Path")
            out.append(str(addr))
    return tuple(out)
