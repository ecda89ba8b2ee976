"""Where the focus sends requests: in-dialog targets and dial-out addresses.  Pure.

In-dialog requests follow the dialog (its connection, else its route set and remote target). Requests the
focus starts out of dialog go to their target's host, or, with an outbound proxy (the S-CSCF of an IMS
network), to the proxy, which is then their first Route, a loose route (RFC 3261 §16.12, ``;lr``).

A dial-out target that is an address of record registered here (the registrar of a standalone server,
given to the focus as a :class:`Locator`) is reached at its best binding: the Contact becomes the
Request-URI and the binding's Path the route set (RFC 3327 §5.4).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from imsconf.sip.dialog import Dialog
from imsconf.sip.errors import SipParseError
from imsconf.sip.peer import Peer
from imsconf.sip.uri import NameAddr, SipUri
from imsconf.sip.util import default_port

__all__ = [
    "DialRoute",
    "Locator",
    "OutOfDialogRoute",
    "Registered",
    "dial_route",
    "dialog_destination",
    "out_of_dialog_route",
    "registered_route",
    "uri_destination",
]


class Registered(Protocol):
    """One registered contact of an address of record, as the focus needs it to reach the user."""

    @property
    def uri(self) -> SipUri:
        """The Contact URI: the Request-URI towards this binding."""
        ...

    @property
    def path(self) -> tuple[str, ...]:
        """The Path the REGISTER collected (name-addrs, first hop first): the route set."""
        ...

    @property
    def flow(self) -> Peer:
        """Where the REGISTER came from: its transport, and the stream connection when it had one."""
        ...


class Locator(Protocol):
    """The location service: the live bindings of an address of record (``sip:user@host``), best first."""

    def lookup(self, aor: str, now: float) -> Sequence[Registered]: ...


@dataclass(frozen=True, slots=True)
class DialRoute:
    """How a dial-out INVITE is addressed: its Request-URI, its Route headers and the next hop."""

    request_uri: str
    routes: tuple[str, ...]
    dest: Peer


def registered_route(binding: Registered) -> DialRoute:
    """Towards a binding: to the first Path hop, else to the Contact, over the transport it registered
    on (its ``;transport`` or ``sips:`` win).  The registration's stream connection is reused when that
    hop is the address the REGISTER came from, or when the Contact asks for it (``;ob``, RFC 5626);
    otherwise a connection to the hop is used (RFC 3261 §18.1)."""
    flow = binding.flow
    hop = binding.uri
    if binding.path:
        try:
            hop = NameAddr.parse(binding.path[0]).uri
        except SipParseError:
            hop = binding.uri
    dest = uri_destination(hop, flow.transport)
    same_flow = (dest.host, dest.port) == (flow.host, flow.port) or "ob" in binding.uri.unescaped_params
    if dest.reliable and dest.transport == flow.transport and flow.conn is not None and same_flow:
        dest = Peer(dest.transport, dest.host, dest.port, flow.conn)
    return DialRoute(str(binding.uri), binding.path, dest)


def dial_route(target: SipUri, transport: str, locator: Locator | None, now: float) -> DialRoute:
    """A dial-out to *target*: its best registered binding when *target* is an AoR with bindings (a URI
    with a port or ``maddr`` names a host to go to, not an AoR), else the URI's own host."""
    if locator is not None and target.user and target.port is None and "maddr" not in target.unescaped_params:
        found = locator.lookup(target.aor, now)
        if found:
            return registered_route(found[0])
    return DialRoute(str(target), (), uri_destination(target, transport))


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
