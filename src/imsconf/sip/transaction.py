"""The SIP transaction layer (RFC 3261 §17, RFC 6026): owns every client and server transaction.

Sans-I/O.  The adapter feeds parsed messages with :meth:`TransactionLayer.receive`, the TU sends through
:meth:`~TransactionLayer.send_request` / :meth:`~TransactionLayer.send_response`, and both drain
:meth:`~TransactionLayer.next_event` in order: :class:`.events.Transmit` goes to the transport, the rest to
the TU.  Time only ever comes in as ``now``; re-arm one timer at :meth:`~TransactionLayer.next_deadline`
and call :meth:`~TransactionLayer.handle_timer` when it fires.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque

from .errors import LocalProtocolError, SipParseError
from .events import (
    AckReceived,
    Address,
    CancelReceived,
    MessageDiscarded,
    RequestReceived,
    StrayResponse,
    TransactionEvent,
    TransactionKey,
    Transmit,
    check_transport,
)
from .message import Request, Response, validate
from .timers import TimerConfig
from .transaction_client import (
    INVITE_CLIENT_TABLE,
    NON_INVITE_CLIENT_TABLE,
    Action,
    ClientTransaction,
    InviteClientTransaction,
    NonInviteClientTransaction,
    State,
    Stimulus,
    Table,
    client_key,
)
from .transaction_server import (
    INVITE_SERVER_TABLE,
    NON_INVITE_SERVER_TABLE,
    InviteServerTransaction,
    NonInviteServerTransaction,
    ServerTransaction,
    cancelled_key,
    server_key,
)
from .util import is_reliable, make_response, response_destination, stamp_received

__all__ = [
    "TABLES",
    "Action",
    "ClientTransaction",
    "InviteClientTransaction",
    "InviteServerTransaction",
    "NonInviteClientTransaction",
    "NonInviteServerTransaction",
    "ServerTransaction",
    "State",
    "Stimulus",
    "TransactionLayer",
    "render_table",
    "render_tables",
]

Transaction = ClientTransaction | ServerTransaction

TABLES: dict[str, Table] = {
    "INVITE client (RFC 3261 fig. 5, RFC 6026 fig. 3)": INVITE_CLIENT_TABLE,
    "non-INVITE client (RFC 3261 fig. 6)": NON_INVITE_CLIENT_TABLE,
    "INVITE server (RFC 3261 fig. 7, RFC 6026 fig. 5)": INVITE_SERVER_TABLE,
    "non-INVITE server (RFC 3261 fig. 8)": NON_INVITE_SERVER_TABLE,
}


class TransactionLayer:
    """Every transaction of one SIP endpoint, matched per RFC 3261 §17.1.3 and §17.2.3.

    *auto_trying*: answer each new INVITE with ``100 Trying`` at once (§17.2.1 asks for it within 200 ms
    unless the TU answers sooner).
    """

    def __init__(self, config: TimerConfig | None = None, *, auto_trying: bool = True) -> None:
        self.config = config or TimerConfig()
        self.auto_trying = auto_trying
        self._events: deque[TransactionEvent] = deque()
        self._clients: dict[TransactionKey, ClientTransaction] = {}
        self._servers: dict[TransactionKey, ServerTransaction] = {}
        # (deadline, seq, transaction); an entry is stale when the transaction's deadline moved or it was
        # forgotten.  Keeps next_deadline/handle_timer O(log n) with thousands of lingering transactions
        # (Timer J keeps every UDP non-INVITE server transaction for 64*T1).
        self._heap: list[tuple[float, int, Transaction]] = []
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self._clients) + len(self._servers)

    # ---- outputs ----------------------------------------------------------------------------------

    def next_event(self) -> TransactionEvent | None:
        """The next output, in the order produced, or None."""
        return self._events.popleft() if self._events else None

    def events(self) -> list[TransactionEvent]:
        """Drain every pending output."""
        out = list(self._events)
        self._events.clear()
        return out

    def next_deadline(self) -> float | None:
        heap = self._heap
        while heap:
            deadline, _, tx = heap[0]
            if self._live(tx) and tx.next_deadline() == deadline:
                return deadline
            heapq.heappop(heap)
        return None

    def handle_timer(self, now: float) -> None:
        """Advance every transaction with a due timer; forget the terminated ones."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            deadline, _, tx = heapq.heappop(heap)
            if not self._live(tx) or tx.next_deadline() != deadline:
                continue  # stale entry
            tx.scheduled = None
            tx.handle_timer(now)
            self._forget_if_done(tx)

    def _live(self, tx: Transaction) -> bool:
        table: dict[TransactionKey, ClientTransaction] | dict[TransactionKey, ServerTransaction]
        table = self._clients if isinstance(tx, ClientTransaction) else self._servers
        return table.get(tx.key) is tx

    # ---- lookups ----------------------------------------------------------------------------------

    def client(self, key: TransactionKey) -> ClientTransaction | None:
        return self._clients.get(key)

    def server(self, key: TransactionKey) -> ServerTransaction | None:
        return self._servers.get(key)

    # ---- from the TU ------------------------------------------------------------------------------

    def send_request(
        self, request: Request, transport: str, destination: Address, now: float
    ) -> ClientTransaction:
        """Start a client transaction for *request* (which carries a top Via with a fresh z9hG4bK branch:
        :func:`.util.new_via`).  ACK is not sent this way: use :meth:`send_stateless`."""
        tx: ClientTransaction
        if request.method == "INVITE":
            tx = InviteClientTransaction(request, transport, destination, self.config, self._events)
        else:
            tx = NonInviteClientTransaction(request, transport, destination, self.config, self._events)
        if tx.key in self._clients:
            raise LocalProtocolError(f"a client transaction with branch {tx.key.branch} already exists")
        self._clients[tx.key] = tx
        tx.start(now)
        self._forget_if_done(tx)
        return tx

    def send_response(self, key: TransactionKey, response: Response, now: float) -> None:
        """Answer through server transaction *key* (from RequestReceived/CancelReceived)."""
        tx = self._servers.get(key)
        if tx is None:
            raise LocalProtocolError(f"no server transaction {key}")
        tx.send_response(response, now)
        tx.release_request()  # answered: only the response is needed for the rest of its life
        self._forget_if_done(tx)

    def abandon(self, key: TransactionKey, now: float) -> None:
        """Terminate an INVITE client transaction stuck in Proceeding (§9.1, 64*T1 after our CANCEL got no
        487).  Raises LocalProtocolError for an unknown key or any other transaction/state."""
        tx = self._clients.get(key)
        if tx is None:
            raise LocalProtocolError(f"no client transaction {key}")
        tx.abandon(now)
        self._forget_if_done(tx)

    def send_stateless(self, message: Request | Response, transport: str, destination: Address) -> None:
        """Transmit outside any transaction: the ACK for a 2xx, or a 2xx retransmitted by the TU after the
        INVITE server transaction is gone."""
        self._events.append(Transmit(message, transport, destination))

    def transport_error(self, key: TransactionKey, now: float) -> None:
        """The adapter could not deliver a message of transaction *key* (ICMP error, connect failure...)."""
        tx: Transaction | None = self._clients.get(key) or self._servers.get(key)
        if tx is None:
            return
        tx.transport_error(now)
        self._forget_if_done(tx)

    # ---- from the network -------------------------------------------------------------------------

    def receive(
        self, msg: Request | Response, source: Address, transport: str, now: float, *, validated: bool = False
    ) -> None:
        """Feed a parsed message that arrived from *source* over *transport* (``"UDP"``, ``"TLS"``...).

        *validated*: the caller already ran :func:`.message.validate` on it (and answered failures)."""
        check_transport(transport)
        try:
            if not validated:
                validate(msg)
        except SipParseError as exc:
            if isinstance(msg, Request):
                self._reject(msg, exc, source, transport)
            else:
                self._events.append(MessageDiscarded(exc.reason, source, transport))
            return
        if isinstance(msg, Request):
            self._receive_request(msg, source, transport, now)
        else:
            self._receive_response(msg, source, transport, now)

    def _receive_request(self, req: Request, source: Address, transport: str, now: float) -> None:
        req = stamp_received(req, source[0], source[1])
        key = server_key(req)
        existing = self._servers.get(key)
        if existing is not None:
            existing.receive(req, now)
            self._forget_if_done(existing)
            return
        if req.method == "ACK":
            self._events.append(AckReceived(req, source, transport))
            return
        tx: ServerTransaction
        if req.method == "INVITE":
            tx = InviteServerTransaction(req, transport, source, self.config, self._events, key=key)
        else:
            tx = NonInviteServerTransaction(req, transport, source, self.config, self._events, key=key)
        self._servers[tx.key] = tx
        if req.method == "CANCEL":
            target = cancelled_key(req)
            found = target if target in self._servers else None
            self._events.append(CancelReceived(tx.key, req, found, source, transport))
        else:
            self._events.append(RequestReceived(tx.key, req, source, transport))
        if req.method == "INVITE" and self.auto_trying:
            tx.send_response(make_response(req, 100), now)
        self._forget_if_done(tx)

    def _receive_response(self, resp: Response, source: Address, transport: str, now: float) -> None:
        if len(resp.headers.get_all("Via")) != 1:
            # RFC 3261 §8.1.3.3: a UA discards a response with more than one Via
            self._events.append(MessageDiscarded("response with more than one Via", source, transport))
            return
        branch = resp.top_via.branch
        tx = self._clients.get(client_key(branch, resp.cseq.method)) if branch else None
        if tx is None:
            self._events.append(StrayResponse(resp, source, transport))
            return
        tx.receive(resp, now)
        self._forget_if_done(tx)

    def _reject(self, req: Request, exc: SipParseError, source: Address, transport: str) -> None:
        """Answer a malformed request statelessly with the error's status, when it can be answered."""
        self._events.append(MessageDiscarded(exc.reason, source, transport))
        if req.method == "ACK":
            return
        try:
            stamped = stamp_received(req, source[0], source[1])
            resp = make_response(stamped, exc.status_hint)
            dest = source if is_reliable(transport) else response_destination(stamped, transport)
        except (SipParseError, LocalProtocolError):
            return
        self._events.append(Transmit(resp, transport, dest))

    def _forget_if_done(self, tx: Transaction) -> None:
        """After any change to *tx*: drop it when terminated, else (re)schedule its next deadline."""
        if not tx.terminated:
            deadline = tx.next_deadline()
            if deadline != tx.scheduled:
                # an entry for an unchanged deadline is already in the heap (another would only be popped as a
                # duplicate): one entry, and one GC-tracked tuple, per deadline change
                tx.scheduled = deadline
                if deadline is not None:
                    heapq.heappush(self._heap, (deadline, next(self._seq), tx))
            return
        if isinstance(tx, ClientTransaction):
            self._clients.pop(tx.key, None)
        else:
            self._servers.pop(tx.key, None)


# ---- rendering the tables ---------------------------------------------------------------------------


def render_table(name: str, table: Table) -> str:
    """One machine as text: ``State --stimulus--> Next: actions`` per row."""
    lines = [name, "=" * len(name)]
    for state, row in table.items():
        if not row:
            lines.append(f"{state}  (final)")
            continue
        for stimulus, tr in row.items():
            steps = ", ".join(str(s) for s in tr.steps) or ("absorb" if tr.target is state else "-")
            lines.append(f"{state:<11} --{stimulus:-<16}--> {tr.target:<11} {steps}")
    return "\n".join(lines)


def render_tables() -> str:
    return "\n\n".join(render_table(name, table) for name, table in TABLES.items()) + "\n"
