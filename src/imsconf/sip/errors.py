"""Errors of the SIP core.  Each carries the status a server should answer with."""

from __future__ import annotations


class SipError(Exception):
    """Base class of every error raised on purpose by the SIP core."""


class SipParseError(SipError):
    """Input that is not a valid SIP message (remote error).

    ``status_hint`` is the response a server should send for a request (400, 413, 505, 513, ...);
    ``partial`` is whatever could be parsed (a Request or Response with headers), so that the answer
    can carry Via/From/To/Call-ID/CSeq; ``None`` when the start line itself was unreadable.
    """

    def __init__(self, reason: str, status_hint: int = 400, partial: object | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status_hint = status_hint
        self.partial = partial


class LocalProtocolError(SipError):
    """The local application asked the core to do something the protocol forbids (a bug upstream)."""
