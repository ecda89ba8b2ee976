"""Where the focus sends requests: in-dialog targets and dial-out addresses.  Pure.

In-dialog requests follow the dialog (its connection, else its route set and remote target). Requests the
focus starts out of dialog go to their target's host, or, with an outbound proxy (the S-CSCF of an IMS
network), to the proxy, which is then their first Route, a loose route (RFC 3261 §16.12, ``;lr``).
"""

from __future__ import annotations

from dataclasses import dataclass

from imsconf.sip.dialog import Dialog
from imsconf.sip.errors import SipParseError
from imsconf.sip.peer import Peer
from imsconf.sip.uri import SipUri
from imsconf.sip.util import default_port

__all__ = ["OutOfDialogRoute", "dialog_destination", "out_of_dialog_route", "uri_destination"]

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


@dataclass(frozen=True, slots=True)
class OutOfDialogRoute:
    """Where a request the focus originates out of dialog goes, and the Route it carries (None: none)."""

    destination: Peer
    route: str | None = None


def out_of_dialog_route(
    target: SipUri, default_transport: str, outbound_proxy: str | None
) -> OutOfDialogRoute:
    """The first hop of an out-of-dialog request to *target*: the outbound proxy when one is set (as a loose
    route: ``;lr`` is added when the setting lacks it), else the target's host."""
    if outbound_proxy is None:
        return OutOfDialogRoute(uri_destination(target, default_transport))
    if target.scheme == "sips":
        default_transport = "tls"  # a sips: target is reached over TLS on every hop
    proxy = SipUri.parse(outbound_proxy.strip().strip("<>"))
    if "lr" not in proxy.params:
        proxy = proxy.with_params(lr=None)
    return OutOfDialogRoute(uri_destination(proxy, default_transport), f"<{proxy}>")
