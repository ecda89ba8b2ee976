"""Server transactions (RFC 3261 §17.2, RFC 6026 Accepted state) and server-side matching (§17.2.3)."""

from __future__ import annotations

from collections import deque

from .errors import LocalProtocolError
from .events import AckReceived, Address, TransactionEvent, TransactionKey
from .headers import Via
from .message import Request, Response
from .timers import TimerConfig
from .timers import TimerName as T
from .transaction_client import (
    Action,
    Interval,
    Start,
    State,
    Stimulus,
    Stop,
    Table,
    TableMachine,
    _t,
)
from .util import MAGIC_COOKIE, default_port, is_reliable, response_destination

S, X, A = State, Stimulus, Action

# RFC 3261 Figure 7 as amended by RFC 6026 Figure 5.
INVITE_SERVER_TABLE: Table = {
    S.PROCEEDING: {
        X.RECV_REQUEST: _t(S.PROCEEDING, A.RESEND_RESPONSE),
        X.SEND_1XX: _t(S.PROCEEDING, A.SEND_RESPONSE),
        X.SEND_2XX: _t(S.ACCEPTED, A.SEND_RESPONSE, Start(T.L)),
        X.SEND_FAILURE: _t(S.COMPLETED, A.SEND_RESPONSE, Start(T.G), Start(T.H)),
        X.TRANSPORT_ERROR: _t(S.TERMINATED, A.REPORT_TRANSPORT_ERROR),
    },
    S.COMPLETED: {
        X.RECV_REQUEST: _t(S.COMPLETED, A.RESEND_RESPONSE),
        X.TIMER_G: _t(S.COMPLETED, A.RESEND_RESPONSE, Start(T.G, Interval.DOUBLE)),
        X.RECV_ACK: _t(S.CONFIRMED, Stop(T.G), Stop(T.H), Start(T.I)),
        X.TIMER_H: _t(S.TERMINATED, A.REPORT_TIMEOUT),
        X.TRANSPORT_ERROR: _t(S.TERMINATED, A.REPORT_TRANSPORT_ERROR),
    },
    S.CONFIRMED: {
        X.RECV_REQUEST: _t(S.CONFIRMED),
        X.RECV_ACK: _t(S.CONFIRMED),
        X.TIMER_I: _t(S.TERMINATED),
    },
    S.ACCEPTED: {
        X.RECV_REQUEST: _t(S.ACCEPTED),
        X.RECV_ACK: _t(S.ACCEPTED, A.PASS_ACK),
        X.SEND_2XX: _t(S.ACCEPTED, A.SEND_RESPONSE),
        X.TIMER_L: _t(S.TERMINATED),
    },
    S.TERMINATED: {},
}

# RFC 3261 Figure 8.
NON_INVITE_SERVER_TABLE: Table = {
    S.TRYING: {
        X.RECV_REQUEST: _t(S.TRYING),
        X.SEND_1XX: _t(S.PROCEEDING, A.SEND_RESPONSE),
        X.SEND_2XX: _t(S.COMPLETED, A.SEND_RESPONSE, Start(T.J)),
        X.SEND_FAILURE: _t(S.COMPLETED, A.SEND_RESPONSE, Start(T.J)),
    },
    S.PROCEEDING: {
        X.RECV_REQUEST: _t(S.PROCEEDING, A.RESEND_RESPONSE),
        X.SEND_1XX: _t(S.PROCEEDING, A.SEND_RESPONSE),
        X.SEND_2XX: _t(S.COMPLETED, A.SEND_RESPONSE, Start(T.J)),
        X.SEND_FAILURE: _t(S.COMPLETED, A.SEND_RESPONSE, Start(T.J)),
        X.TRANSPORT_ERROR: _t(S.TERMINATED, A.REPORT_TRANSPORT_ERROR),
    },
    S.COMPLETED: {
        X.RECV_REQUEST: _t(S.COMPLETED, A.RESEND_RESPONSE),
        X.TIMER_J: _t(S.TERMINATED),
        X.TRANSPORT_ERROR: _t(S.TERMINATED, A.REPORT_TRANSPORT_ERROR),
    },
    S.TERMINATED: {},
}


def sent_by(request: Request) -> str:
    """``host:port`` of the top Via with the default port filled in (for matching, §17.2.3)."""
    return via_sent_by(request.top_via)


def via_sent_by(via: Via) -> str:
    return f"{via.host}:{via.port if via.port is not None else default_port(via.transport)}"


def server_key(request: Request) -> TransactionKey:
    """The server transaction a request belongs to (RFC 3261 §17.2.3); ACK maps to its INVITE.

    Without the magic cookie (RFC 2543 peers) the key is built from Call-ID, From tag, CSeq number, the
    whole top Via and the Request-URI.  The To tag is left out so that an ACK (which carries the tag of our
    response) finds its INVITE; a CANCEL maps to its own key and :func:`cancelled_key` finds the INVITE.
    """
    via = request.top_via
    method = "INVITE" if request.method == "ACK" else request.method
    branch = via.branch
    if branch and branch.startswith(MAGIC_COOKIE):
        return TransactionKey(branch, method, via_sent_by(via))
    params = {k: v for k, v in via.params.items() if k not in ("received", "rport")}
    legacy = "|".join(
        [
            "rfc2543",
            request.call_id,
            request.from_.tag or "",
            str(request.cseq.number),
            f"{via.transport} {via.host}:{via.port} {sorted(params.items(), key=lambda kv: kv[0])}",
            request.uri,
        ]
    )
    return TransactionKey(legacy, method, via_sent_by(via))


def cancelled_key(cancel: Request) -> TransactionKey:
    """The INVITE server transaction a CANCEL targets (RFC 3261 §9.2)."""
    key = server_key(cancel)
    return TransactionKey(key.branch, "INVITE", key.sent_by)


def _send_stimulus(status: int) -> Stimulus:
    if status < 200:
        return Stimulus.SEND_1XX
    return Stimulus.SEND_2XX if status < 300 else Stimulus.SEND_FAILURE


class ServerTransaction(TableMachine):
    """Common part of the two server transactions.

    *source* is the address the request came from.  Responses go back to it on a reliable transport (the same
    connection) and to the §18.2.2/RFC 3581 address computed from the top Via on UDP.  The request should
    already carry ``received``/``rport`` (:func:`.util.stamp_received`; the layer does it).
    """

    def __init__(
        self,
        request: Request,
        transport: str,
        source: Address,
        config: TimerConfig | None = None,
        outbox: deque[TransactionEvent] | None = None,
        *,
        key: TransactionKey | None = None,
    ) -> None:
        if request.method == "ACK":
            raise LocalProtocolError("an ACK creates no server transaction")
        destination = source if is_reliable(transport) else response_destination(request, transport)
        if key is None:
            key = server_key(request)
        super().__init__(key, transport, destination, config or TimerConfig(), outbox)
        self._request: Request | None = request
        self.source = source
        self.last_response: Response | None = None
        # what every response must match (send_response), read once from the request
        self.method = request.method
        self._cseq_number = request.cseq.number
        self._branch = request.top_via.branch

    @property
    def request(self) -> Request:
        """The request; raises LocalProtocolError after :meth:`release_request`."""
        if self._request is None:
            raise LocalProtocolError(f"the {self.method} was answered and its request released")
        return self._request

    def release_request(self) -> None:
        """Let the request go once the final response is out: a UDP server transaction lingers 32 s after
        it (RFC 3261 Timers J and L) and needs only its key, its timers and that response to absorb and
        answer retransmissions; keeping every parsed request of a load that long made most of the load's
        memory (docs/decisions/0012-memory-after-load.md).  The transaction layer calls it."""
        if self.has_final_response:
            self._request = None

    @property
    def has_final_response(self) -> bool:
        """Whether the TU already answered 200-699 (on CANCEL: send 487 only when this is False)."""
        return self.last_response is not None and self.last_response.status >= 200

    def receive(self, request: Request, now: float) -> bool:
        """Feed a retransmission of the request (or an ACK, for INVITE).  Returns whether it was expected."""
        stimulus = Stimulus.RECV_ACK if request.method == "ACK" else Stimulus.RECV_REQUEST
        done = self._step(stimulus, now, request)
        self.handle_timer(now)
        return done

    def send_response(self, response: Response, now: float) -> None:
        """Send a response from the TU.  Raises LocalProtocolError if the state forbids it (e.g. a second
        final response) or if the response does not answer this transaction's request."""
        cseq = response.cseq
        if cseq.number != self._cseq_number or cseq.method != self.method:
            raise LocalProtocolError("response CSeq does not match the request")
        if response.top_via.branch != self._branch:
            raise LocalProtocolError("response branch differs from the request's (util.make_response)")
        self._step(_send_stimulus(response.status), now, response)
        self.handle_timer(now)

    def _act_specific(self, action: Action, now: float, message: Request | Response | None) -> None:
        if action is Action.SEND_RESPONSE:
            assert isinstance(message, Response)
            self.last_response = message
            self._send(message)
        elif action is Action.RESEND_RESPONSE:
            if self.last_response is not None:
                self._send(self.last_response, retransmission=True)
        elif action is Action.PASS_ACK:
            assert isinstance(message, Request)
            self.outbox.append(AckReceived(message, self.source, self.transport, self.key))


class InviteServerTransaction(ServerTransaction):
    TABLE = INVITE_SERVER_TABLE
    INITIAL = State.PROCEEDING
    NAME = "INVITE server"

    def __init__(
        self,
        request: Request,
        transport: str,
        source: Address,
        config: TimerConfig | None = None,
        outbox: deque[TransactionEvent] | None = None,
        *,
        key: TransactionKey | None = None,
    ) -> None:
        if request.method != "INVITE":
            raise LocalProtocolError("InviteServerTransaction needs an INVITE")
        super().__init__(request, transport, source, config, outbox, key=key)


class NonInviteServerTransaction(ServerTransaction):
    TABLE = NON_INVITE_SERVER_TABLE
    INITIAL = State.TRYING
    NAME = "non-INVITE server"

    def __init__(
        self,
        request: Request,
        transport: str,
        source: Address,
        config: TimerConfig | None = None,
        outbox: deque[TransactionEvent] | None = None,
        *,
        key: TransactionKey | None = None,
    ) -> None:
        if request.method in ("INVITE", "ACK"):
            raise LocalProtocolError("NonInviteServerTransaction needs a request other than INVITE/ACK")
        super().__init__(request, transport, source, config, outbox, key=key)
