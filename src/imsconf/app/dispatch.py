"""The endpoint's one application when this server is also the registrar: REGISTER to the registrar,
everything else to the focus.

:class:`RegistrarService` is the registrar on the endpoint: it names this server in ``Service-Route``
(RFC 3608) for the transport the REGISTER came on, answers (with the ``Date`` the core, having no wall
clock, leaves out), and hands the changed bindings to the writer (:mod:`.registrations`).
:class:`SipDispatcher` implements :class:`imsconf.sip.endpoint.Application`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from email.utils import formatdate

from imsconf.registrar.bindings import AorChanged
from imsconf.registrar.core import Registrar
from imsconf.sip.endpoint import Application, IncomingRequest, SipEndpoint
from imsconf.sip.events import TransactionKey
from imsconf.sip.message import Request, Response
from imsconf.sip.peer import Peer
from imsconf.sip.util import make_response

__all__ = ["RegistrarService", "SipDispatcher", "service_route"]

Persist = Callable[[list[AorChanged]], None]


def _unspecified(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


def service_route(ep: SipEndpoint, req: Request, peer: Peer) -> str:
    """``<sip:HOST:PORT;transport=T;lr>`` (``sips:`` over TLS): this server as the request reached it —
    the local address of the connection or socket, the endpoint's address for the transport, or, behind a
    wildcard listener, the host the Request-URI names."""
    transport = peer.transport.lower()
    host, port = peer.local if peer.local is not None else ep.local_address(transport)
    if _unspecified(host):
        host = ep.local_address(transport)[0]
    if _unspecified(host):
        host = req.request_uri.host.strip("[]")
    shown = f"[{host}]" if ":" in host else host
    scheme = "sips" if transport == "tls" else "sip"
    return f"<{scheme}:{shown}:{port};transport={transport};lr>"


class RegistrarService:
    """The registrar core on the SIP endpoint; *persist* receives every change (write-behind).
    *unavailable* gives the Retry-After while the bindings store cannot take writes (None: it can): a
    REGISTER that would change bindings is then answered 503 (a query, without Contact, still is not)."""

    def __init__(
        self,
        registrar: Registrar,
        persist: Persist | None = None,
        unavailable: Callable[[], int | None] | None = None,
    ) -> None:
        self.registrar = registrar
        self._persist = persist
        self._unavailable = unavailable

    def on_register(self, ep: SipEndpoint, inc: IncomingRequest, now: float) -> None:
        req = inc.request
        retry_after = self._unavailable() if self._unavailable is not None else None
        if retry_after is not None and req.headers.get("Contact") is not None:
            resp = make_response(req, 503, "Service Unavailable", to_tag=ep.new_tag())
            resp.headers.add("Retry-After", str(retry_after))  # RFC 3261 §21.5.4
            ep.respond(inc.key, resp, now)
            return
        resp = self.registrar.register(
            req, inc.peer, inc.authenticated_user, now, service_route=service_route(ep, req, inc.peer)
        )
        if resp.status == 200:
            resp.headers.add("Date", formatdate(usegmt=True))  # RFC 3261 §10.3 step 8 (the wall clock)
        ep.respond(inc.key, resp, now)
        self._flush()

    def next_deadline(self) -> float | None:
        return self.registrar.next_deadline()

    def handle_timer(self, now: float) -> None:
        self.registrar.handle_timer(now)
        self._flush()

    def _flush(self) -> None:
        changes = self.registrar.take_changes()
        if changes and self._persist is not None:
            self._persist(changes)


class SipDispatcher:
    """REGISTER to the registrar, every other request (and everything about it) to *app*."""

    def __init__(self, app: Application, registrar: RegistrarService) -> None:
        self.app = app
        self.registrar = registrar

    def on_request(self, ep: SipEndpoint, req: IncomingRequest, now: float) -> None:
        if req.request.method == "REGISTER":
            self.registrar.on_register(ep, req, now)
        else:
            self.app.on_request(ep, req, now)

    def on_ack(self, ep: SipEndpoint, ack: Request, peer: Peer, now: float) -> None:
        self.app.on_ack(ep, ack, peer, now)

    def on_cancel(self, ep: SipEndpoint, invite_key: TransactionKey, now: float) -> None:
        self.app.on_cancel(ep, invite_key, now)

    def on_stray_response(self, ep: SipEndpoint, resp: Response, peer: Peer, now: float) -> None:
        self.app.on_stray_response(ep, resp, peer, now)

    def on_server_timeout(self, ep: SipEndpoint, key: TransactionKey, now: float) -> None:
        if key.method != "REGISTER":  # the registrar answers at once: nothing of its own can time out
            self.app.on_server_timeout(ep, key, now)

    def next_deadline(self) -> float | None:
        a, b = self.app.next_deadline(), self.registrar.next_deadline()
        return a if b is None else b if a is None else min(a, b)

    def handle_timer(self, ep: SipEndpoint, now: float) -> None:
        app_due = self.app.next_deadline()
        reg_due = self.registrar.next_deadline()
        if reg_due is not None and reg_due <= now:
            self.registrar.handle_timer(now)
        if app_due is not None and app_due <= now:
            self.app.handle_timer(ep, now)
