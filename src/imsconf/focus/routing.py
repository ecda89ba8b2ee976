"""Where the focus sends requests: in-dialog targets and dial-out addresses.  Pure."""

from __future__ import annotations

from imsconf.sip.dialog import Dialog
from imsconf.sip.errors import SipParseError
from imsconf.sip.peer import Peer
from imsconf.sip.uri import SipUri
from imsconf.sip.util import default_port

__all__ = ["dialog_destination", "uri_destination"]

_TRANSPORTS = ("udp", "tcp", "tls")


def uri_destination(uri: SipUri, default_transport: str) -> Peer:
    """The next hop for a request to ``uri`` (RFC 3263 without DNS: the host as written).

    ``sips:`` always means TLS; otherwise ``;transport=`` or ``default_transport``.
    """
    if uri.scheme == "sips":
        transport = "tls"
    else:
        transport = (uri.unescaped_params.get("transport") or default_transport).lower()
        if transport not in _TRANSPORTS:
            transport = default_transport
    host = uri.unescaped_params.get("maddr") or uri.host
    port = uri.port or default_port(transport.upper())
    return Peer(transport, host.strip("[]"), port)


def dialog_destination(dialog: Dialog, peer: Peer) -> Peer:
    """Where an in-dialog request goes: the stream connection the dialog lives on, else its target.

    A dialog set up over TLS is never continued over anything weaker: when the target names another
    transport, TLS is used to its host.
    """
    if peer.reliable:
        return peer
    target, routes = dialog.target_and_routes()
    uri_text = routes[0] if routes else target
    if uri_text.startswith("<"):
        uri_text = uri_text[1 : uri_text.index(">")]
    try:
        uri = SipUri.parse(uri_text)
    except SipParseError:
        return peer
    dest = uri_destination(uri, peer.transport)
    if (dialog.secure or peer.secure) and dest.transport != "tls":
        return Peer("tls", dest.host, uri.port or default_port("TLS"))
    return dest
