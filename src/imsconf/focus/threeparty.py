"""Three-party conference (TS 24.605 3PTY; RFC 4579 §5.5, RFC 3891): the ``Replaces`` a REFER carries.  Pure.

User A talks with B and with C (dialogs the focus is not part of), holds both, creates a conference at the
factory, then REFERs the focus::

    REFER sip:conf-X@focus          (in A's dialog with the focus, or out of dialog)
    Refer-To: <sip:B@host?Replaces=call-id%3Bto-tag%3Db-tag%3Bfrom-tag%3Da-tag>

The focus INVITEs B into the conference with ``Replaces: call-id;to-tag=b-tag;from-tag=a-tag`` and
``Require: replaces``; B accepts the new dialog in place of its dialog with A and ends that one (BYE).  The
tags are B's view of the A-B dialog (to-tag: B's local tag, from-tag: A's), exactly as A wrote them: the
focus checks the syntax, copies the value and never matches it against its own dialogs.

The Replaces value comes from a URI, %-decoded: it is checked strictly (tokens only, no CR/LF, no commas)
before it becomes a header of our INVITE, and no other embedded header is accepted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final
from urllib.parse import unquote

from imsconf.sip.headers import Headers

__all__ = ["Replaces", "ThreePartyError", "add_replaces", "replaces_from_uri_headers"]

# RFC 3261 §25.1: Call-ID = word [ "@" word ]; token for the tags
_WORD: Final = r"[A-Za-z0-9\-.!%*_+`'~()<>:\\\"/\[\]?{}]+"
_CALL_ID_RE: Final = re.compile(rf"{_WORD}(?:@{_WORD})?\Z", re.A)
_TOKEN_RE: Final = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+\Z", re.A)
MAX_REPLACES = 512


class ThreePartyError(ValueError):
    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


@dataclass(frozen=True, slots=True)
class Replaces:
    """RFC 3891 §6.1: ``callid;to-tag=..;from-tag=..[;early-only]``."""

    call_id: str
    to_tag: str
    from_tag: str
    early_only: bool = False

    def __str__(self) -> str:
        text = f"{self.call_id};to-tag={self.to_tag};from-tag={self.from_tag}"
        return text + (";early-only" if self.early_only else "")

    @classmethod
    def parse(cls, value: str) -> Replaces:
        """Raises :class:`ThreePartyError` (400) for anything but a well-formed value."""
        text = value.strip()
        if not text or len(text) > MAX_REPLACES or not text.isascii() or not text.isprintable():
            raise ThreePartyError("malformed Replaces")
        call_id, *params = (p.strip() for p in text.split(";"))
        if not _CALL_ID_RE.match(call_id):
            raise ThreePartyError("malformed Replaces call-id")
        tags: dict[str, str] = {}
        early_only = False
        for p in params:
            name, sep, val = p.partition("=")
            name = name.strip().lower()
            if name == "early-only" and not sep:
                early_only = True
                continue
            if name in ("to-tag", "from-tag") and sep and _TOKEN_RE.match(val.strip()):
                if name in tags:
                    raise ThreePartyError(f"Replaces repeats {name}")
                tags[name] = val.strip()
                continue
            if sep and _TOKEN_RE.match(name) and _TOKEN_RE.match(val.strip()):
                continue  # a generic parameter: ignored
            raise ThreePartyError("malformed Replaces parameter")
        if "to-tag" not in tags or "from-tag" not in tags:
            raise ThreePartyError("Replaces needs to-tag and from-tag")
        return cls(call_id, tags["to-tag"], tags["from-tag"], early_only)


def replaces_from_uri_headers(headers: str) -> Replaces:
    """The one ``Replaces`` among the headers of a Refer-To URI (``?Replaces=...``).

    Any other embedded header is refused with 403 (the focus copies nothing else into its INVITE);
    ``Require=replaces`` is tolerated (the INVITE carries it anyway).
    """
    found: Replaces | None = None
    for part in headers.split("&"):
        name, sep, raw = part.partition("=")
        name = unquote(name).strip().lower()
        value = unquote(raw)
        if name == "replaces" and sep:
            if found is not None:
                raise ThreePartyError("more than one Replaces in Refer-To")
            found = Replaces.parse(value)
        elif name == "require" and value.strip().lower() == "replaces":
            continue
        else:
            raise ThreePartyError("headers in Refer-To other than Replaces are not supported", 403)
    if found is None:
        raise ThreePartyError("Refer-To headers without Replaces are not supported", 403)
    return found


def add_replaces(h: Headers, replaces: str) -> None:
    """The headers of the focus's INVITE for a 3PTY merge (RFC 3891 §4: Require, so that a UA without
    Replaces refuses (420) rather than ringing as a second call)."""
    h.add("Replaces", replaces)
    h.add("Require", "replaces")
