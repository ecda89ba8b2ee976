"""Outputs of the SIP transaction layer: what to transmit, and what to tell the transaction user (TU).

Every output is a frozen, slotted dataclass validated at construction.  The adapter drains them in order
(``TransactionLayer.next_event()``): :class:`Transmit` goes to the transport, everything else to the TU.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import LocalProtocolError
from .message import Request, Response
from .timers import TimerName

Address = tuple[str, int]

TRANSPORTS = frozenset({"UDP", "TCP", "TLS", "SCTP", "TLS-SCTP", "WS", "WSS"})
RELIABLE_TRANSPORTS = frozenset({"TCP", "TLS", "SCTP", "TLS-SCTP", "WS", "WSS"})


def check_transport(transport: str) -> None:
    if transport not in TRANSPORTS:
        raise LocalProtocolError(f"unknown transport {transport!r} (expected upper-case, e.g. 'UDP')")


def check_address(address: Address) -> None:
    host, port = address
    if not host or not 0 < port < 65536:
        raise LocalProtocolError(f"bad address {address!r}")


@dataclass(frozen=True, slots=True)
class TransactionKey:
    """Identity of a transaction.

    Client transactions (RFC 3261 §17.1.3): ``branch`` + ``method`` (``sent_by`` is empty).
    Server transactions (§17.2.3): ``branch`` + ``sent_by`` + ``method``, where ACK uses ``INVITE``.
    Requests from RFC 2543 peers (branch without the ``z9hG4bK`` cookie) get a synthetic ``branch``
    starting with ``"rfc2543|"`` built from Call-ID, From tag, CSeq number, top Via and Request-URI.
    """

    branch: str
    method: str
    sent_by: str = ""

    def __post_init__(self) -> None:
        if not self.branch or not self.method:
            raise LocalProtocolError("a transaction key needs a branch and a method")


# ---- to the transport -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Transmit:
    """Send *message* (``bytes(message)``) over *transport* to *destination*.

    For a server transaction on a reliable transport *destination* is the peer address of the connection the
    request came in on (reuse it; if it is gone, open one to that address, RFC 3261 §18.2.2).  For UDP it is
    the address computed by §18.2.2 + RFC 3581 (received/rport/maddr).  ``key`` is None for stateless sends.
    """

    message: Request | Response
    transport: str
    destination: Address
    key: TransactionKey | None = None
    retransmission: bool = False

    def __post_init__(self) -> None:
        check_transport(self.transport)
        check_address(self.destination)


# ---- to the transaction user ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RequestReceived:
    """A new request (not ACK, not CANCEL) created server transaction *key*; answer it via the layer."""

    key: TransactionKey
    request: Request
    source: Address
    transport: str


@dataclass(frozen=True, slots=True)
class CancelReceived:
    """A new CANCEL (server transaction *key*).  ``invite_key`` is the INVITE server transaction it cancels,
    or None (then answer the CANCEL with 481).  Otherwise answer 200 to the CANCEL and, if the INVITE has no
    final response yet, 487 to the INVITE (RFC 3261 §9.2)."""

    key: TransactionKey
    request: Request
    invite_key: TransactionKey | None
    source: Address
    transport: str


@dataclass(frozen=True, slots=True)
class AckReceived:
    """An ACK for a 2xx (end to end, RFC 3261 §13.3.1.4), for the dialog layer.

    ``key`` is the INVITE server transaction in the Accepted state that matched it, or None when the ACK
    matched no transaction (the usual case: an ACK for a 2xx has its own branch)."""

    request: Request
    source: Address
    transport: str
    key: TransactionKey | None = None


@dataclass(frozen=True, slots=True)
class ResponseReceived:
    """A response for client transaction *key* (every 2xx of an INVITE is passed up, RFC 6026)."""

    key: TransactionKey
    response: Response


@dataclass(frozen=True, slots=True)
class StrayResponse:
    """A response that matched no client transaction.  A 2xx to INVITE must reach the dialog layer, which
    re-sends its ACK (RFC 3261 §13.2.2.4); any other one may be dropped."""

    response: Response
    source: Address
    transport: str


@dataclass(frozen=True, slots=True)
class TransactionTimeout:
    """Timer B or F (client: no final response) or Timer H (INVITE server: no ACK) fired."""

    key: TransactionKey
    timer: TimerName


@dataclass(frozen=True, slots=True)
class TransportFailure:
    """The transport reported a failure for this transaction (RFC 3261 §17.1.4, §17.2.4)."""

    key: TransactionKey


@dataclass(frozen=True, slots=True)
class TransactionTerminated:
    """The transaction reached Terminated and was forgotten by the layer."""

    key: TransactionKey


@dataclass(frozen=True, slots=True)
class MessageDiscarded:
    """An incoming message was dropped (malformed, or a response the UA must ignore); for logs/metrics."""

    reason: str
    source: Address
    transport: str


TuEvent = (
    RequestReceived
    | CancelReceived
    | AckReceived
    | ResponseReceived
    | StrayResponse
    | TransactionTimeout
    | TransportFailure
    | TransactionTerminated
    | MessageDiscarded
)
TransactionEvent = Transmit | TuEvent
