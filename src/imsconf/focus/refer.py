"""REFER to the focus (RFC 4579 §5.5, RFC 3515): what the ``Refer-To`` asks for.  Pure.

``Refer-To: <sip:bob@example.com>`` (or ``;method=INVITE``) asks the focus to invite bob into the
conference; ``Refer-To: <sip:bob@example.com;method=BYE>`` asks it to remove bob.  Anything else is
refused.  ``Referred-By`` (RFC 3892) is kept and copied into the INVITE the focus sends.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from imsconf.sip.errors import SipParseError
from imsconf.sip.message import Request
from imsconf.sip.uri import NameAddr, SipUri

from .threeparty import ThreePartyError, replaces_from_uri_headers

__all__ = ["ReferAction", "ReferError", "ReferTarget", "parse_refer", "referred_by"]


class ReferError(Exception):
    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


class ReferAction(Enum):
    INVITE = "INVITE"
    BYE = "BYE"


@dataclass(frozen=True, slots=True)
class ReferTarget:
    action: ReferAction
    uri: SipUri  # without the method parameter and headers: what the focus INVITEs
    display: str | None = None
    replaces: str | None = None  # 3PTY: the Replaces embedded in Refer-To (RFC 3891), for our INVITE

    @property
    def aor(self) -> str:
        return self.uri.aor


def parse_refer(req: Request) -> ReferTarget:
    """The one ``Refer-To`` of a REFER; ``ReferError`` 400 when missing, repeated or unusable."""
    values = req.headers.get_all("Refer-To")
    if len(values) != 1:
        raise ReferError("a REFER needs exactly one Refer-To")
    try:
        addr = NameAddr.parse(values[0])
    except SipParseError as exc:
        raise ReferError(f"bad Refer-To: {exc.reason[:60]}") from None
    uri = addr.uri
    if uri.scheme not in ("sip", "sips") or uri.user is None:
        raise ReferError("Refer-To must name a SIP user")
    method = (uri.unescaped_params.get("method") or "INVITE").upper()
    try:
        action = ReferAction(method)
    except ValueError:
        raise ReferError(f"the focus does not carry out {method[:16]} for others", 403) from None
    replaces = None
    if uri.headers is not None:  # only a Replaces (three-party merge, .threeparty) is accepted
        if action is not ReferAction.INVITE:
            raise ReferError("headers in Refer-To are not supported", 403)
        try:
            replaces = str(replaces_from_uri_headers(uri.headers))
        except ThreePartyError as exc:
            raise ReferError(exc.reason, exc.status) from None
    params = {k: v for k, v in uri.params.items() if k.lower() != "method"}
    clean = SipUri(uri.scheme, uri.user, None, uri.host, uri.port, params)
    return ReferTarget(action, clean, addr.display_unquoted, replaces)


def referred_by(req: Request, requester: str) -> str:
    """The Referred-By value for the INVITE: the REFER's own (RFC 3892 §3), else the requester's AoR."""
    value = req.headers.get("Referred-By")
    if value is not None:
        try:
            NameAddr.parse(value)
            return value.strip()
        except SipParseError:
            pass
    return f"<{requester}>"


def referred_by_uri(value: str | None) -> str | None:
    """The URI of a Referred-By value (shown in joining-info/by), or None."""
    if not value:
        return None
    try:
        return str(NameAddr.parse(value).uri)
    except SipParseError:
        return None
