"""Client transactions (RFC 3261 §17.1 with the RFC 6026 Accepted state) and the table-driven machinery
shared with :mod:`.transaction_server`.

Every transition is a row of a table: ``(state, stimulus) -> (next state, actions)``.  Stimuli come from the
network (a received message), the TU (a response to send) or a timer.  A TU stimulus with no row is a bug
upstream: :class:`LocalProtocolError` is raised and nothing changes.  A network or timer stimulus with no
row is dropped (the network must never be able to raise).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar

from .errors import LocalProtocolError
from .events import (
    Address,
    ResponseReceived,
    TransactionEvent,
    TransactionKey,
    TransactionTerminated,
    TransactionTimeout,
    Transmit,
    TransportFailure,
    check_address,
    check_transport,
)
from .message import Request, Response
from .timers import RETRANSMIT_TIMERS, TimerConfig, TimerName, TimerSet
from .util import MAGIC_COOKIE, is_reliable, make_ack_for_non2xx


class State(StrEnum):
    CALLING = "Calling"
    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    CONFIRMED = "Confirmed"
    ACCEPTED = "Accepted"
    TERMINATED = "Terminated"


class Stimulus(StrEnum):
    START = "start"
    # from the network
    RECV_1XX = "recv 1xx"
    RECV_2XX = "recv 2xx"
    RECV_FAILURE = "recv 300-699"
    RECV_REQUEST = "recv request"  # a retransmission of the request that created a server transaction
    RECV_ACK = "recv ACK"
    TRANSPORT_ERROR = "transport error"
    # from the TU
    SEND_1XX = "TU 1xx"
    SEND_2XX = "TU 2xx"
    SEND_FAILURE = "TU 300-699"
    ABANDON = "TU abandon"  # RFC 3261 §9.1: no final response 64*T1 after a CANCEL
    # timers
    TIMER_A = "Timer A"
    TIMER_B = "Timer B"
    TIMER_D = "Timer D"
    TIMER_E = "Timer E"
    TIMER_F = "Timer F"
    TIMER_G = "Timer G"
    TIMER_H = "Timer H"
    TIMER_I = "Timer I"
    TIMER_J = "Timer J"
    TIMER_K = "Timer K"
    TIMER_L = "Timer L"
    TIMER_M = "Timer M"


TU_STIMULI = frozenset(
    {Stimulus.START, Stimulus.SEND_1XX, Stimulus.SEND_2XX, Stimulus.SEND_FAILURE, Stimulus.ABANDON}
)
TIMER_STIMULUS = {t: Stimulus(f"Timer {t.value}") for t in TimerName}


class Action(StrEnum):
    TRANSMIT_REQUEST = "send request"
    RETRANSMIT_REQUEST = "resend request"
    SEND_ACK = "send ACK"
    RESEND_ACK = "resend ACK"
    PASS_RESPONSE = "response to TU"
    SEND_RESPONSE = "send response"
    RESEND_RESPONSE = "resend last response"
    PASS_ACK = "ACK to TU"
    REPORT_TIMEOUT = "timeout to TU"
    REPORT_TRANSPORT_ERROR = "transport error to TU"


class Interval(StrEnum):
    INITIAL = "initial"  # the timer's RFC value (zero for D/I/J/K on a reliable transport)
    DOUBLE = "double"  # twice the previous interval, capped (Timer A uncapped)
    T2 = "T2"


@dataclass(frozen=True, slots=True)
class Start:
    timer: TimerName
    interval: Interval = Interval.INITIAL

    def __str__(self) -> str:
        return f"start {self.timer.value}" + (
            "" if self.interval is Interval.INITIAL else f"({self.interval})"
        )


@dataclass(frozen=True, slots=True)
class Stop:
    timer: TimerName

    def __str__(self) -> str:
        return f"stop {self.timer.value}"


Step = Action | Start | Stop


@dataclass(frozen=True, slots=True)
class Transition:
    target: State
    steps: tuple[Step, ...] = ()


Table = Mapping[State, Mapping[Stimulus, Transition]]

S, X, A, T = State, Stimulus, Action, TimerName


def _t(target: State, *steps: Step) -> Transition:
    return Transition(target, steps)


# RFC 3261 Figure 5 as amended by RFC 6026 Figure 3.
INVITE_CLIENT_TABLE: Table = {
    S.CALLING: {
        X.START: _t(S.CALLING, A.TRANSMIT_REQUEST, Start(T.A), Start(T.B)),
        X.TIMER_A: _t(S.CALLING, A.RETRANSMIT_REQUEST, Start(T.A, Interval.DOUBLE)),
        X.TIMER_B: _t(S.TERMINATED, A.REPORT_TIMEOUT),
        X.RECV_1XX: _t(S.PROCEEDING, Stop(T.A), Stop(T.B), A.PASS_RESPONSE),
        X.RECV_2XX: _t(S.ACCEPTED, Stop(T.A), Stop(T.B), A.PASS_RESPONSE, Start(T.M)),
        X.RECV_FAILURE: _t(S.COMPLETED, Stop(T.A), Stop(T.B), A.SEND_ACK, A.PASS_RESPONSE, Start(T.D)),
        X.TRANSPORT_ERROR: _t(S.TERMINATED, A.REPORT_TRANSPORT_ERROR),
    },
    S.PROCEEDING: {
        X.RECV_1XX: _t(S.PROCEEDING, A.PASS_RESPONSE),
        X.RECV_2XX: _t(S.ACCEPTED, A.PASS_RESPONSE, Start(T.M)),
        X.RECV_FAILURE: _t(S.COMPLETED, A.SEND_ACK, A.PASS_RESPONSE, Start(T.D)),
        X.TRANSPORT_ERROR: _t(S.TERMINATED, A.REPORT_TRANSPORT_ERROR),
        X.ABANDON: _t(S.TERMINATED),
    },
    S.COMPLETED: {
        X.RECV_FAILURE: _t(S.COMPLETED, A.RESEND_ACK),
        X.RECV_1XX: _t(S.COMPLETED),
        X.RECV_2XX: _t(S.COMPLETED),
        X.TIMER_D: _t(S.TERMINATED),
        X.TRANSPORT_ERROR: _t(S.TERMINATED, A.REPORT_TRANSPORT_ERROR),
    },
    S.ACCEPTED: {
        X.RECV_2XX: _t(S.ACCEPTED, A.PASS_RESPONSE),
        X.RECV_1XX: _t(S.ACCEPTED),
        X.RECV_FAILURE: _t(S.ACCEPTED),
        X.TIMER_M: _t(S.TERMINATED),
    },
    S.TERMINATED: {},
}

# RFC 3261 Figure 6.
NON_INVITE_CLIENT_TABLE: Table = {
    S.TRYING: {
        X.START: _t(S.TRYING, A.TRANSMIT_REQUEST, Start(T.E), Start(T.F)),
        X.TIMER_E: _t(S.TRYING, A.RETRANSMIT_REQUEST, Start(T.E, Interval.DOUBLE)),
        X.TIMER_F: _t(S.TERMINATED, A.REPORT_TIMEOUT),
        X.RECV_1XX: _t(S.PROCEEDING, A.PASS_RESPONSE),
        X.RECV_2XX: _t(S.COMPLETED, Stop(T.E), Stop(T.F), A.PASS_RESPONSE, Start(T.K)),
        X.RECV_FAILURE: _t(S.COMPLETED, Stop(T.E), Stop(T.F), A.PASS_RESPONSE, Start(T.K)),
        X.TRANSPORT_ERROR: _t(S.TERMINATED, A.REPORT_TRANSPORT_ERROR),
    },
    S.PROCEEDING: {
        X.TIMER_E: _t(S.PROCEEDING, A.RETRANSMIT_REQUEST, Start(T.E, Interval.T2)),
        X.TIMER_F: _t(S.TERMINATED, A.REPORT_TIMEOUT),
        X.RECV_1XX: _t(S.PROCEEDING, A.PASS_RESPONSE),
        X.RECV_2XX: _t(S.COMPLETED, Stop(T.E), Stop(T.F), A.PASS_RESPONSE, Start(T.K)),
        X.RECV_FAILURE: _t(S.COMPLETED, Stop(T.E), Stop(T.F), A.PASS_RESPONSE, Start(T.K)),
        X.TRANSPORT_ERROR: _t(S.TERMINATED, A.REPORT_TRANSPORT_ERROR),
    },
    S.COMPLETED: {
        X.RECV_1XX: _t(S.COMPLETED),
        X.RECV_2XX: _t(S.COMPLETED),
        X.RECV_FAILURE: _t(S.COMPLETED),
        X.TIMER_K: _t(S.TERMINATED),
    },
    S.TERMINATED: {},
}


class TableMachine:
    """A transaction driven by a table.  Outputs are appended to a shared ``outbox`` deque."""

    TABLE: ClassVar[Table]
    INITIAL: ClassVar[State]
    NAME: ClassVar[str]

    def __init__(
        self,
        key: TransactionKey,
        transport: str,
        destination: Address,
        config: TimerConfig,
        outbox: deque[TransactionEvent] | None,
    ) -> None:
        check_transport(transport)
        check_address(destination)
        self.key = key
        self.transport = transport
        self.destination = destination
        self.reliable = is_reliable(transport)
        self.config = config
        self.outbox: deque[TransactionEvent] = outbox if outbox is not None else deque()
        self._state = self.INITIAL
        self._timers = TimerSet()
        self.scheduled: float | None = None  # the deadline the layer's heap holds for this transaction

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.key.method} {self.key.branch} {self._state}>"

    @property
    def state(self) -> State:
        return self._state

    @property
    def terminated(self) -> bool:
        return self._state is State.TERMINATED

    def next_deadline(self) -> float | None:
        """The earliest running timer's deadline (absolute, on the caller's clock), or None."""
        return self._timers.next_deadline()

    def handle_timer(self, now: float) -> None:
        """Fire every timer due at *now* (earliest first)."""
        while (timer := self._timers.pop_due(now)) is not None:
            self._step(TIMER_STIMULUS[timer], now, None)

    def transport_error(self, now: float) -> None:
        """The transport failed to deliver a message of this transaction."""
        self._step(Stimulus.TRANSPORT_ERROR, now, None)
        self.handle_timer(now)

    def timer_deadline(self, timer: TimerName) -> float | None:
        return self._timers.deadlines.get(timer)

    # ---- the table interpreter --------------------------------------------------------------------

    def _step(self, stimulus: Stimulus, now: float, message: Request | Response | None) -> bool:
        transition = self.TABLE.get(self._state, {}).get(stimulus)
        if transition is None:
            if stimulus in TU_STIMULI:
                raise LocalProtocolError(
                    f"{self.NAME} transaction in state {self._state}: {stimulus} not allowed"
                )
            return False
        self._state = transition.target
        for step in transition.steps:
            if isinstance(step, Start):
                self._start(step, now)
            elif isinstance(step, Stop):
                self._timers.stop(step.timer)
            else:
                self._act(step, now, message, stimulus)
        if self._state is State.TERMINATED:
            self._timers.stop_all()
            self.outbox.append(TransactionTerminated(self.key))
        return True

    def _start(self, step: Start, now: float) -> None:
        timer = step.timer
        if timer in RETRANSMIT_TIMERS and self.reliable:
            return
        if step.interval is Interval.INITIAL:
            interval = self.config.initial(timer, self.reliable)
        elif step.interval is Interval.T2:
            interval = self.config.t2
        else:
            previous = self._timers.intervals.get(timer, self.config.initial(timer, self.reliable))
            interval = min(2 * previous, self.config.cap(timer))
        self._timers.start(timer, now, interval)

    def _act(self, action: Action, now: float, message: Request | Response | None, cause: Stimulus) -> None:
        if action is Action.REPORT_TIMEOUT:
            timer = next(t for t, s in TIMER_STIMULUS.items() if s is cause)
            self.outbox.append(TransactionTimeout(self.key, timer))
        elif action is Action.REPORT_TRANSPORT_ERROR:
            self.outbox.append(TransportFailure(self.key))
        else:
            self._act_specific(action, now, message)

    def _act_specific(self, action: Action, now: float, message: Request | Response | None) -> None:
        raise NotImplementedError(action)  # pragma: no cover

    def _send(self, message: Request | Response, retransmission: bool = False) -> None:
        self.outbox.append(Transmit(message, self.transport, self.destination, self.key, retransmission))


def response_stimulus(status: int) -> Stimulus:
    if status < 200:
        return Stimulus.RECV_1XX
    return Stimulus.RECV_2XX if status < 300 else Stimulus.RECV_FAILURE


def client_key(branch: str, method: str) -> TransactionKey:
    return TransactionKey(branch, "INVITE" if method == "ACK" else method)


class ClientTransaction(TableMachine):
    """Common part of the two client transactions.  Create, then call :meth:`start` once."""

    def __init__(
        self,
        request: Request,
        transport: str,
        destination: Address,
        config: TimerConfig | None = None,
        outbox: deque[TransactionEvent] | None = None,
    ) -> None:
        if request.method == "ACK":
            raise LocalProtocolError("ACK is sent without a client transaction")
        branch = request.top_via.branch
        if not branch or not branch.startswith(MAGIC_COOKIE):
            raise LocalProtocolError("a request we send needs a top Via with a z9hG4bK branch (util.new_via)")
        if request.cseq.method != request.method:
            raise LocalProtocolError("CSeq method differs from the request method")
        super().__init__(
            client_key(branch, request.method), transport, destination, config or TimerConfig(), outbox
        )
        self.request = request
        self.last_response: Response | None = None
        self._started = False

    def start(self, now: float) -> None:
        """Hand the request to the transport and start the timers (once)."""
        if self._started:
            raise LocalProtocolError("the client transaction was already started")
        self._step(Stimulus.START, now, None)
        self._started = True

    def abandon(self, now: float) -> None:
        """Give up on an INVITE stuck in Proceeding (RFC 3261 §9.1: the TU sent CANCEL and no final response
        came within 64*T1).  Allowed only for an INVITE client transaction in the Proceeding state."""
        self._step(Stimulus.ABANDON, now, None)

    def receive(self, response: Response, now: float) -> bool:
        """Feed a response that matched this transaction.  Returns whether a transition happened."""
        if response.cseq.method != self.key.method:
            return False
        done = self._step(response_stimulus(response.status), now, response)
        self.handle_timer(now)  # zero-length timers on reliable transports fire at once
        return done

    def _act_specific(self, action: Action, now: float, message: Request | Response | None) -> None:
        if action is Action.TRANSMIT_REQUEST:
            self._send(self.request)
        elif action is Action.RETRANSMIT_REQUEST:
            self._send(self.request, retransmission=True)
        elif action is Action.PASS_RESPONSE:
            assert isinstance(message, Response)
            self.last_response = message
            self.outbox.append(ResponseReceived(self.key, message))
        else:
            self._act_client(action, message)

    def _act_client(self, action: Action, message: Request | Response | None) -> None:
        raise NotImplementedError(action)  # pragma: no cover


class InviteClientTransaction(ClientTransaction):
    """INVITE client transaction: builds and re-sends the ACK for 300-699 itself (RFC 3261 §17.1.1.3);
    every 2xx goes to the TU, which sends the ACK for it (RFC 6026 Accepted state, Timer M)."""

    TABLE = INVITE_CLIENT_TABLE
    INITIAL = State.CALLING
    NAME = "INVITE client"

    def __init__(
        self,
        request: Request,
        transport: str,
        destination: Address,
        config: TimerConfig | None = None,
        outbox: deque[TransactionEvent] | None = None,
    ) -> None:
        if request.method != "INVITE":
            raise LocalProtocolError("InviteClientTransaction needs an INVITE")
        super().__init__(request, transport, destination, config, outbox)
        self.ack: Request | None = None

    def _act_client(self, action: Action, message: Request | Response | None) -> None:
        if action is Action.SEND_ACK:
            assert isinstance(message, Response)
            self.ack = make_ack_for_non2xx(self.request, message)
            self._send(self.ack)
        elif action is Action.RESEND_ACK and self.ack is not None:
            self._send(self.ack, retransmission=True)


class NonInviteClientTransaction(ClientTransaction):
    TABLE = NON_INVITE_CLIENT_TABLE
    INITIAL = State.TRYING
    NAME = "non-INVITE client"

    def __init__(
        self,
        request: Request,
        transport: str,
        destination: Address,
        config: TimerConfig | None = None,
        outbox: deque[TransactionEvent] | None = None,
    ) -> None:
        if request.method == "INVITE":
            raise LocalProtocolError("use InviteClientTransaction for INVITE")
        super().__init__(request, transport, destination, config, outbox)
