"""Errors of the SDP layer.  Each carries the SIP status a server should answer with."""

from __future__ import annotations


class SdpError(Exception):
    """Base class of every error raised on purpose by the SDP layer."""


class SdpParseError(SdpError):
    """Bytes that are not a valid session description (remote error).

    ``status_hint`` is the SIP response to send for the request that carried the body (400 by default).
    """

    def __init__(self, reason: str, status_hint: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status_hint = status_hint


class SdesError(SdpParseError):
    """An ``a=crypto`` attribute (RFC 4568) that is malformed or carries bad key material."""


class UnsupportedSuiteError(SdesError):
    """A well-formed ``a=crypto`` line whose crypto-suite we do not implement (the answerer skips it)."""


class OfferAnswerError(SdpError):
    """An offer or answer we cannot accept (RFC 3264).

    ``status`` is the SIP response to send: 488 (Not Acceptable Here) when the description is valid but
    unacceptable, 400 when it is inconsistent (e.g. no connection address).
    """

    def __init__(self, reason: str, status: int = 488) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
