"""The UA core of the server (RFC 3261 §8.2): sans-I/O glue between the transaction layer and the application.

Bytes or parsed messages come in with a :class:`~.peer.Peer` and ``now``; what must be sent is collected
in :attr:`SipEndpoint.outbox` as ``(bytes, Peer)`` for the adapter to drain.  The endpoint screens every
new request (method, Max-Forwards, Require, content), answers OPTIONS, believes ``P-Asserted-Identity`` only
from its trusted peers (:mod:`.identity`, RFC 3325), challenges the other out-of-dialog requests with digest
authentication, and hands the rest to the :class:`Application`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from .auth import AuthResult, DigestAuthenticator
from .counters import RequestCounters
from .errors import LocalProtocolError, SipParseError
from .events import (
    AckReceived,
    CancelReceived,
    MessageDiscarded,
    RequestReceived,
    ResponseReceived,
    StrayResponse,
    TransactionKey,
    TransactionTerminated,
    TransactionTimeout,
    Transmit,
    TransportFailure,
)
from .headers import Headers, Via
from .identity import TrustedPeers, take_asserted_identity
from .message import UDP_MTU_LIMIT, Request, Response, parse_message, validate
from .overload import Admission, Verdict
from .peer import Peer
from .refusal import refusal, scan_new_request
from .screening import Capabilities, options_response, screen_request
from .tcp_refusals import TcpRefusals
from .transaction import TransactionLayer
from .transaction_server import server_key, via_sent_by
from .util import header_safe_text, make_response, new_branch, response_destination, stamp_received

log = logging.getLogger("imsconf.sip")

CHALLENGED_METHODS = frozenset(["INVITE", "SUBSCRIBE", "REFER", "MESSAGE", "PUBLISH"])

ResponseCallback = Callable[[Response, float], None]


@dataclass(frozen=True, slots=True)
class IncomingRequest:
    """A new request that passed the core's checks; answer it with :meth:`SipEndpoint.respond`."""

    key: TransactionKey
    request: Request
    peer: Peer
    authenticated_user: str | None = None  # digest username, when the request carried valid credentials
    # the AoR a trusted peer (an S-CSCF) asserted in P-Asserted-Identity (RFC 3325); never set for others
    asserted_identity: str | None = None

    @property
    def secure(self) -> bool:
        return self.peer.secure

    @property
    def identity(self) -> str | None:
        """The requester's authenticated AoR: the trusted peer's assertion, else the From when its user is
        the digest user; None when the request proves no identity."""
        if self.asserted_identity is not None:
            return self.asserted_identity
        from_uri = self.request.from_.uri
        if self.authenticated_user is not None and from_uri.user_unescaped == self.authenticated_user:
            return from_uri.aor
        return None


class Application(Protocol):
    """What the endpoint calls for requests that reach the application (the focus)."""

    def on_request(self, ep: SipEndpoint, req: IncomingRequest, now: float) -> None: ...

    def on_ack(self, ep: SipEndpoint, ack: Request, peer: Peer, now: float) -> None: ...

    def on_cancel(self, ep: SipEndpoint, invite_key: TransactionKey, now: float) -> None: ...

    def on_stray_response(self, ep: SipEndpoint, resp: Response, peer: Peer, now: float) -> None: ...

    def on_server_timeout(self, ep: SipEndpoint, key: TransactionKey, now: float) -> None: ...

    def next_deadline(self) -> float | None: ...

    def handle_timer(self, ep: SipEndpoint, now: float) -> None: ...


class NullApplication:
    """No conference service: every request that is not OPTIONS gets a plain answer."""

    def on_request(self, ep: SipEndpoint, req: IncomingRequest, now: float) -> None:
        if req.request.headers.get("To") and req.request.to.tag:
            ep.respond(req.key, make_response(req.request, 481), now)
        else:
            ep.respond(req.key, make_response(req.request, 404, to_tag=ep.new_tag()), now)

    def on_ack(self, ep: SipEndpoint, ack: Request, peer: Peer, now: float) -> None:
        return None

    def on_cancel(self, ep: SipEndpoint, invite_key: TransactionKey, now: float) -> None:
        return None

    def on_stray_response(self, ep: SipEndpoint, resp: Response, peer: Peer, now: float) -> None:
        return None

    def on_server_timeout(self, ep: SipEndpoint, key: TransactionKey, now: float) -> None:
        return None

    def next_deadline(self) -> float | None:
        return None

    def handle_timer(self, ep: SipEndpoint, now: float) -> None:
        return None


@dataclass(slots=True)
class _Pending:
    callback: ResponseCallback
    peer: Peer
    # a request moved from UDP to TCP for its size (RFC 3261 §18.1.1): what to send over UDP instead if
    # the TCP connection cannot be made (a UDP-only peer)
    fallback: tuple[Request, Peer] | None = None


@dataclass(slots=True)
class AuthThrottle:
    """Per source host: after *max_failures* wrong credentials within *window* seconds, refuse that host's
    authenticated requests for *block* seconds (against digest brute force).  Bounded memory."""

    max_failures: int = 5
    window: float = 60.0
    block: float = 60.0
    max_hosts: int = 10000
    _failures: dict[str, list[float]] = field(default_factory=dict)
    _blocked: dict[str, float] = field(default_factory=dict)
    _answered: set[str] = field(default_factory=set)  # blocked hosts that got their one 403

    def blocked(self, host: str, now: float) -> bool:
        until = self._blocked.get(host)
        if until is None:
            return False
        if now >= until:
            del self._blocked[host]
            self._answered.discard(host)
            return False
        return True

    def answer_blocked(self, host: str) -> bool:
        """True the first time a blocked host is refused (it gets one 403), False afterwards (dropped)."""
        if host in self._answered:
            return False
        if len(self._answered) >= self.max_hosts:
            self._answered.clear()
        self._answered.add(host)
        return True

    def failure(self, host: str, now: float) -> bool:
        """Record a failure; True when the host is now blocked."""
        times = [t for t in self._failures.get(host, ()) if now - t < self.window]
        times.append(now)
        if len(self._failures) >= self.max_hosts and host not in self._failures:
            self._failures.pop(next(iter(self._failures)))  # oldest entry first (insertion order)
        self._failures[host] = times
        if len(times) >= self.max_failures:
            self._failures.pop(host, None)
            if len(self._blocked) >= self.max_hosts:
                self._blocked.pop(next(iter(self._blocked)))
            self._blocked[host] = now + self.block
            return True
        return False

    def success(self, host: str) -> None:
        self._failures.pop(host, None)


@dataclass(slots=True)
class EndpointConfig:
    caps: Capabilities = field(default_factory=Capabilities)
    # local sent-by per transport ("udp", "tcp", "tls") -> (host, port), used in our Vias and Contacts
    local: dict[str, tuple[str, int]] = field(default_factory=dict)
    challenged_methods: frozenset[str] = CHALLENGED_METHODS
    throttle: AuthThrottle = field(default_factory=AuthThrottle)
    # UDP destinations that refused TCP for a large request: they get UDP directly for a while
    tcp_refusals: TcpRefusals = field(default_factory=TcpRefusals)
    # the call-rate budget and per-source limits on new requests (imsconf.sip.overload)
    admission: Admission = field(default_factory=Admission)
    # RFC 3325 trust domain: these peers' P-Asserted-Identity is believed and they get no digest challenge
    trusted: TrustedPeers = field(default_factory=TrustedPeers)


class SipEndpoint:
    def __init__(
        self,
        config: EndpointConfig,
        app: Application | None = None,
        authenticator: DigestAuthenticator | None = None,
        layer: TransactionLayer | None = None,
    ) -> None:
        self.config = config
        self.app: Application = app if app is not None else NullApplication()
        self.auth = authenticator
        # 100 Trying only when the application has not answered an INVITE by the time it returns
        # (RFC 3261 §17.2.1): the focus answers most INVITEs at once, and a 100 then is a wasted message
        self.layer = layer if layer is not None else TransactionLayer(auto_trying=False)
        self.outbox: list[tuple[bytes, Peer]] = []
        self.counters: dict[str, int] = {}
        self.requests = RequestCounters()  # final responses sent to incoming requests (the metrics)
        self._pending: dict[TransactionKey, _Pending] = {}
        self._conn_of: dict[tuple[str, str, int], int | None] = {}

    # ---- helpers ---------------------------------------------------------------------------------
    def count(self, name: str) -> None:
        self.counters[name] = self.counters.get(name, 0) + 1

    @staticmethod
    def new_tag() -> str:
        from .util import new_tag

        return new_tag()

    def take_outbox(self) -> list[tuple[bytes, Peer]]:
        out, self.outbox = self.outbox, []
        return out

    def next_deadline(self) -> float | None:
        a, b = self.layer.next_deadline(), self.app.next_deadline()
        return a if b is None else b if a is None else min(a, b)

    def handle_timer(self, now: float) -> None:
        self.layer.handle_timer(now)
        self._drain(now)
        deadline = self.app.next_deadline()
        if deadline is not None and deadline <= now:
            try:
                self.app.handle_timer(self, now)
            except Exception:
                log.exception("event=application_timer_error")
        self._drain(now)

    # ---- input -----------------------------------------------------------------------------------
    def receive_datagram(self, data: bytes, peer: Peer, now: float) -> bool:
        """One datagram in. True when it was dealt with without any state: a keep-alive, or a new request
        of a flooding source refused from a scan (:meth:`_refused`); no transaction and no deadline
        changed, so the runtime need not look at the timers again (and counts it as shed load)."""
        if not data.strip(b"\r\n\x00 "):
            self.count("keepalive")
            return True  # CRLF keep-alives over UDP are ignored
        admission = self.config.admission
        if (
            admission.flooding_sources
            and admission.flooding(peer.host, now)
            and self._refused(data, peer, now)
        ):
            return True
        try:
            msg = parse_message(data, datagram=True)
        except SipParseError as exc:
            self._parse_failure(exc, peer, now)
            return False
        self.receive_message(msg, peer, now)
        return False

    def receive_stream_error(self, error: SipParseError, peer: Peer, now: float) -> None:
        self._parse_failure(error, peer, now)

    def receive_message(self, msg: Request | Response, peer: Peer, now: float) -> None:
        self.count("rx_request" if isinstance(msg, Request) else "rx_response")
        try:
            validate(msg)  # here, so that the answer's reason phrase can name the fault
        except SipParseError as exc:
            if exc.partial is None:
                exc.partial = msg
            self._parse_failure(exc, peer, now)
            return
        if isinstance(msg, Request) and not self._admitted(msg, peer, now):
            return
        self._conn_of[(peer.transport.upper(), peer.host, peer.port)] = peer.conn
        self.layer.receive(msg, (peer.host, peer.port), peer.transport.upper(), now, validated=True)
        self._drain(now, peer)

    def _admitted(self, req: Request, peer: Peer, now: float) -> bool:
        """In-dialog requests, ACK, CANCEL and retransmissions always pass; new ones go to :meth:`_admit`."""
        if req.to.tag or req.method in ("ACK", "CANCEL") or self.layer.server(server_key(req)) is not None:
            return True
        return self._admit(req, peer, now)

    def _refused(self, data: bytes, peer: Peer, now: float) -> bool:
        """A datagram from a source marked flooding: a new out-of-dialog request is refused from the few
        fields its answer needs (:mod:`.refusal`), without a parse or a transaction (True); anything else,
        a retransmission of an admitted request among them, takes the full path (False)."""
        scanned = scan_new_request(data)
        if scanned is None:
            return False
        key = TransactionKey(scanned.top_via.branch or "", scanned.method, via_sent_by(scanned.top_via))
        if self.layer.server(key) is not None:
            return False
        admission = self.config.admission
        if admission.new_request(peer.host, scanned.method, now) is Verdict.ADMIT:
            return False  # the mark lapsed with this request (counted again on the full path: harmless)
        self.count("tx_source_busy_503")
        self.count("tx_quick_503")
        retry = (("Retry-After", str(admission.config.retry_after)),)
        out, (host, port) = refusal(
            scanned, peer.host, peer.port, "503 Service Unavailable", self.new_tag(), retry
        )
        self.requests.final_response(scanned.method, 503)
        self.outbox.append((out, Peer(peer.transport, host, port, None, peer.local)))
        return True

    def _admit(self, req: Request, peer: Peer, now: float) -> bool:
        """A new out-of-dialog request: under the limits (True), or answered here without a transaction
        (False): a source over its rate, a spent call budget or a blocked source costs no state."""
        admission = self.config.admission
        verdict = admission.new_request(peer.host, req.method, now)
        if verdict is not Verdict.ADMIT:
            self.count("tx_busy_503" if verdict is Verdict.BUSY else "tx_source_busy_503")
            if admission.log_due(f"{peer.host} {verdict.value}", now):  # a line per source and limit
                log.warning("event=overload src=%s limit=%s", peer.host, verdict.value)
            retry = (("Retry-After", str(admission.config.retry_after)),)
            self._answer_stateless(req, 503, "Service Unavailable", peer, retry)
            return False
        throttle = self.config.throttle
        if (
            self.auth is not None
            and req.method in self.config.challenged_methods
            and throttle.blocked(peer.host, now)
        ):
            self.count("auth_blocked")
            if throttle.answer_blocked(peer.host):  # once per block, statelessly: no retransmissions
                self._answer_stateless(req, 403, "Too Many Authentication Failures", peer)
            return False
        return True

    def _answer_stateless(
        self, req: Request, status: int, reason: str, peer: Peer, headers: tuple[tuple[str, str], ...] = ()
    ) -> None:
        """Answer *req* without a transaction: over its connection, or to its Via's address with
        received/rport (RFC 3581)."""
        try:
            stamped = stamp_received(req, peer.host, peer.port)
            dest = peer if peer.reliable else _dest_peer(response_destination(stamped, "UDP"), peer)
        except (SipParseError, LocalProtocolError, ValueError):
            return
        resp = make_response(
            stamped, status, reason, to_tag=self.new_tag(), headers=Headers.of(list(headers))
        )
        self.requests.final_response(req.method, status)
        self.outbox.append((bytes(resp), dest))

    def _parse_failure(self, exc: SipParseError, peer: Peer, now: float) -> None:
        partial = exc.partial
        if isinstance(partial, Request) and partial.method != "ACK":
            self.count("rx_malformed_request")
            log.info("event=malformed_request src=%s status=%d reason=%r", peer, exc.status_hint, exc.reason)
            try:  # received/rport as for any request (RFC 3581): the answer goes back where it came from
                partial = stamp_received(partial, peer.host, peer.port)
            except (SipParseError, ValueError):
                pass  # a Via too broken to stamp: answered to what it says, or not at all
            try:
                resp = make_response(partial, exc.status_hint, _reason(exc))
            except (SipParseError, LocalProtocolError, ValueError):
                # missing From/To/Call-ID (RFC 4475 §3.3.1): answer with what there is
                resp = Response(exc.status_hint, _reason(exc))
                for name in ("Via", "From", "To", "Call-ID", "CSeq"):
                    for value in partial.headers.get_all(name):
                        resp.headers.add(name, value)
            try:
                dest = peer if peer.reliable else _dest_peer(response_destination(partial, "UDP"), peer)
            except (SipParseError, LocalProtocolError, ValueError):
                return  # no Via to answer to over UDP: dropped
            self.requests.final_response(partial.method, resp.status)
            self.outbox.append((bytes(resp), dest))
        elif isinstance(partial, Response):
            self.count("rx_garbled_response")
            log.info("event=garbled_response_dropped src=%s reason=%r", peer, exc.reason)
        else:
            self.count("rx_garbage")
            log.info("event=unparseable_dropped src=%s reason=%r", peer, exc.reason)

    # ---- the TU: answering -----------------------------------------------------------------------
    def respond(self, key: TransactionKey, response: Response, now: float) -> None:
        _stamp_server(response, self.config.caps)
        self.layer.send_response(key, response, now)
        if response.status >= 200:
            self.requests.final_response(key.method, response.status)
        self._drain(now)

    def send_request(
        self,
        request: Request,
        dest: Peer,
        now: float,
        on_response: ResponseCallback | None = None,
        *,
        keep_via: bool = False,
        allow_tcp_switch: bool = True,
    ) -> TransactionKey:
        """Start a client transaction.  The top Via is set here (transport, our sent-by, a new branch)
        unless *keep_via* (a CANCEL must carry its INVITE's Via, RFC 3261 §9.1)."""
        fallback: tuple[Request, Peer] | None = None
        if not (keep_via and request.headers.get("Via")):
            chosen = self._choose_transport(request, dest, now) if allow_tcp_switch else dest
            if chosen.transport != dest.transport:
                fallback = (Request(request.method, request.uri, request.headers.copy(), request.body), dest)
            dest = chosen
            self._set_via(request, dest)
        tx = self.layer.send_request(request, dest.transport.upper(), (dest.host, dest.port), now)
        if on_response is not None or fallback is not None:
            self._pending[tx.key] = _Pending(on_response or _ignore, dest, fallback)
        self._conn_of.setdefault((dest.transport.upper(), dest.host, dest.port), dest.conn)
        self._drain(now)
        return tx.key

    def connect_failed(self, dest: Peer, now: float) -> None:
        """The transport could not open a connection to *dest*: fail the transactions waiting on it."""
        for key, pending in list(self._pending.items()):
            p = pending.peer
            if (p.transport, p.host, p.port) == (dest.transport, dest.host, dest.port):
                self.layer.transport_error(key, now)
        self._drain(now)

    def send_stateless(self, message: Request | Response, dest: Peer) -> None:
        """ACK for a 2xx, or a 2xx retransmission: no transaction."""
        if isinstance(message, Request) and message.method == "ACK" and not message.headers.get("Via"):
            self._set_via(message, dest)
        self.outbox.append((bytes(message), dest))

    def local_address(self, transport: str) -> tuple[str, int]:
        t = transport.lower()
        if t in self.config.local:
            return self.config.local[t]
        return next(iter(self.config.local.values()), ("127.0.0.1", 5060))

    def _choose_transport(self, request: Request, dest: Peer, now: float) -> Peer:
        if dest.transport == "udp" and "tcp" in self.config.local and len(bytes(request)) > UDP_MTU_LIMIT:
            if self.config.tcp_refusals.refused(dest.host, dest.port, now):
                # TCP was refused lately: UDP at once, larger than the MTU (RFC 3261 §18.1.1 allows it)
                self.count("udp_oversize_tcp_refused")
                return dest
            self.count("udp_to_tcp_switch")
            return Peer("tcp", dest.host, dest.port)
        return dest

    def _set_via(self, request: Request, dest: Peer) -> None:
        host, port = self.local_address(dest.transport)
        via = Via(dest.transport.upper(), host, port, {"branch": new_branch(), "rport": None})
        request.headers.remove("Via")
        request.headers.prepend("Via", str(via))

    # ---- draining the transaction layer -------------------------------------------------------------
    def _drain(self, now: float, origin: Peer | None = None) -> None:
        while (ev := self.layer.next_event()) is not None:
            if isinstance(ev, Transmit):
                self._transmit(ev, origin)
            elif isinstance(ev, RequestReceived):
                self._on_request(ev, now)
            elif isinstance(ev, ResponseReceived):
                pending = self._pending.get(ev.key)
                if pending is not None:
                    if ev.response.status >= 200 and ev.key.method != "INVITE":
                        del self._pending[ev.key]
                    pending.callback(ev.response, now)
            elif isinstance(ev, AckReceived):
                self.app.on_ack(self, ev.request, self._peer(ev.transport, ev.source), now)
            elif isinstance(ev, CancelReceived):
                self._on_cancel(ev, now)
            elif isinstance(ev, StrayResponse):
                self.count("rx_stray_response")
                self.app.on_stray_response(self, ev.response, self._peer(ev.transport, ev.source), now)
            elif isinstance(ev, TransactionTimeout | TransportFailure):
                pending = self._pending.pop(ev.key, None)
                if pending is not None and pending.fallback is not None and isinstance(ev, TransportFailure):
                    # the peer takes no TCP: send it over UDP after all (a fresh transaction)
                    req, udp_dest = pending.fallback
                    self.count("tcp_to_udp_fallback")
                    self.config.tcp_refusals.add(udp_dest.host, udp_dest.port, now)
                    self.send_request(req, udp_dest, now, pending.callback, allow_tcp_switch=False)
                elif pending is not None:
                    status = 408 if isinstance(ev, TransactionTimeout) else 503
                    pending.callback(_local_failure(status), now)
                elif isinstance(ev, TransactionTimeout):
                    self.app.on_server_timeout(self, ev.key, now)
            elif isinstance(ev, TransactionTerminated):
                self._pending.pop(ev.key, None)
            elif isinstance(ev, MessageDiscarded):
                self.count("rx_discarded")
                log.info("event=message_discarded src=%s:%d reason=%r", ev.source[0], ev.source[1], ev.reason)

    def _peer(self, transport: str, address: tuple[str, int]) -> Peer:
        conn = self._conn_of.get((transport, address[0], address[1]))
        return Peer(transport.lower(), address[0], address[1], conn)

    def _transmit(self, ev: Transmit, origin: Peer | None) -> None:
        peer = self._peer(ev.transport, ev.destination)
        if origin is not None and origin.local is not None and not peer.reliable:
            peer = Peer(peer.transport, peer.host, peer.port, None, origin.local)
        self.count("tx_retransmission" if ev.retransmission else "tx")
        self.outbox.append((bytes(ev.message), peer))

    def _on_request(self, ev: RequestReceived, now: float) -> None:
        req = ev.request
        peer = self._peer(ev.transport, ev.source)
        caps = self.config.caps
        reject = screen_request(req, caps)
        if reject is not None:
            self.count(f"tx_reject_{reject.status}")
            self.respond(ev.key, reject, now)
            return
        if req.method == "OPTIONS":
            self.respond(ev.key, options_response(req, caps), now)
            return
        trusted = self.config.trusted.trusts(peer)
        asserted, stripped = take_asserted_identity(req, trusted)
        if stripped:
            self.count("rx_untrusted_asserted_identity")
            log.info("event=asserted_identity_ignored src=%s reason=untrusted_peer", peer)
        user: str | None = None
        challenged = req.method in self.config.challenged_methods and not req.to.tag
        if self.auth is not None and challenged and not trusted:
            throttle = self.config.throttle  # a blocked host was refused before its transaction (_admit)
            result = self._authenticate(req, now)
            if not result.ok:
                self.count("auth_challenge" if not result.reason else "auth_failed")
                if result.reason:
                    log.info(
                        "event=auth_failed src=%s user=%s reason=%r", peer, result.username, result.reason
                    )
                    if not result.stale and throttle.failure(peer.host, now):
                        log.warning("event=auth_source_blocked src=%s seconds=%s", peer.host, throttle.block)
                hdrs = Headers.of(self.auth.challenge_headers(now, stale=result.stale))
                self.respond(ev.key, make_response(req, 401, to_tag=self.new_tag(), headers=hdrs), now)
                return
            user = result.username
            throttle.success(peer.host)
        try:
            self.app.on_request(self, IncomingRequest(ev.key, req, peer, user, asserted), now)
            if req.method == "INVITE" and not self.layer.auto_trying:
                tx = self.layer.server(ev.key)
                if tx is not None and tx.last_response is None:
                    self.respond(ev.key, make_response(req, 100), now)
        except Exception:
            # a bug in the application: answer 500 rather than leave the peer retransmitting
            log.exception("event=application_error method=%s", req.method)
            tx = self.layer.server(ev.key)
            if tx is not None and not tx.has_final_response:
                self.respond(
                    ev.key, make_response(req, 500, "Server Internal Error", to_tag=self.new_tag()), now
                )

    def _authenticate(self, req: Request, now: float) -> AuthResult:
        assert self.auth is not None
        value = self.auth.select_credentials(req.headers.get_all("Authorization"))
        if value is None:
            return AuthResult(False, reason="")
        return self.auth.verify(req.method, value, now, req.body, request_uri=None)

    def _on_cancel(self, ev: CancelReceived, now: float) -> None:
        if ev.invite_key is None:
            self.respond(ev.key, make_response(ev.request, 481), now)
            return
        self.respond(ev.key, make_response(ev.request, 200), now)
        self.app.on_cancel(self, ev.invite_key, now)


def _ignore(resp: Response, now: float) -> None:
    return None


def _reason(exc: SipParseError) -> str:
    """A reason phrase naming the fault, safe for a status line."""
    text = header_safe_text(exc.reason, 100)
    base = {400: "Bad Request", 505: "Version Not Supported", 513: "Message Too Large"}.get(exc.status_hint)
    return f"{base} ({text})" if base and text else (base or text or "Bad Request")


def _dest_peer(addr: tuple[str, int], origin: Peer) -> Peer:
    return Peer(origin.transport, addr[0], addr[1], None, origin.local)


def _local_failure(status: int) -> Response:
    reason = "Request Timeout" if status == 408 else "Service Unavailable"
    return Response(status, reason)


def _stamp_server(resp: Response, caps: Capabilities) -> None:
    if resp.headers.get("Server") is None:
        resp.headers.add("Server", caps.user_agent)
