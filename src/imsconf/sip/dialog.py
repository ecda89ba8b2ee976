"""SIP dialogs (RFC 3261 §12, §13.2.2.4, §13.3.1.4): state, in-dialog requests and a registry.

Sans-I/O and transaction-agnostic: a dialog builds requests and checks incoming ones; the caller sends them
through the transaction layer.  Requests built here have no Via: pass ``via=util.new_via(...)`` or prepend
one before :meth:`.transaction.TransactionLayer.send_request`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum

from .errors import LocalProtocolError, SipError, SipParseError
from .headers import CSeq, Headers
from .message import Request, Response
from .timers import TimerConfig
from .uri import NameAddr, SipUri
from .util import new_cseq

# Methods that create a dialog (RFC 3261 §12, RFC 6665 §4.1.2.2 for SUBSCRIBE/NOTIFY, RFC 3515 for REFER).
DIALOG_CREATING = frozenset({"INVITE", "SUBSCRIBE", "REFER", "NOTIFY"})
# Target refresh requests (RFC 3261 §12.2, RFC 3311 UPDATE, RFC 6665 §4.1.2.1 / §4.2.2 SUBSCRIBE / NOTIFY).
TARGET_REFRESH = frozenset({"INVITE", "UPDATE", "SUBSCRIBE", "NOTIFY"})
# URI parameters not allowed in a Request-URI (RFC 3261 §19.1.1 table 1); stripped for strict routing.
_NOT_IN_REQUEST_URI = ("method",)


class DialogState(StrEnum):
    EARLY = "early"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


class DialogReject(SipError):
    """An in-dialog request that must be refused; answer it with ``status`` (e.g. 500 for an old CSeq)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True, slots=True)
class DialogId:
    """(Call-ID, local tag, remote tag); a null remote tag (RFC 2543 peer) is the empty string."""

    call_id: str
    local_tag: str
    remote_tag: str

    def __post_init__(self) -> None:
        if not self.call_id or not self.local_tag:
            raise LocalProtocolError("a dialog id needs a Call-ID and a local tag")


def _untagged(addr: NameAddr) -> NameAddr:
    params = {k: v for k, v in addr.params.items() if k != "tag"}
    return NameAddr(addr.uri, addr.display, params)


def _contact_uri(msg: Request | Response) -> str | None:
    contacts = msg.headers.get_all("Contact")
    if not contacts or contacts[0].strip() == "*":
        return None
    return str(NameAddr.parse(contacts[0]).uri)


def _loose(route: str) -> bool:
    return "lr" in NameAddr.parse(route).uri.params


@dataclass(slots=True, eq=False)
class Dialog:
    """One dialog.  Create it with :meth:`from_uas` or :meth:`from_uac`; mutate only through its methods."""

    call_id: str
    local_tag: str
    remote_tag: str
    local_uri: NameAddr  # From (UAC) / To (UAS) without the tag
    remote_uri: NameAddr
    remote_target: str
    route_set: list[str] = field(default_factory=list)  # Route values, in the order we send them
    local_seq: int | None = None
    remote_seq: int | None = None
    secure: bool = False
    is_uac: bool = False
    state: DialogState = DialogState.CONFIRMED
    local_contact: str | None = None  # our Contact value for target refresh requests

    # ---- creation (§12.1) ------------------------------------------------------------------------

    @classmethod
    def from_uas(
        cls,
        request: Request,
        response: Response,
        *,
        local_contact: str | None = None,
        secure: bool | None = None,
    ) -> Dialog:
        """Dialog on the UAS side from a dialog-creating *request* we received and the 101-299 *response*
        (with our To tag) we send (§12.1.1).  *secure* defaults to "the Request-URI is sips:" (pass False for
        a sips: request that did not arrive over TLS)."""
        if request.method not in DIALOG_CREATING:
            raise LocalProtocolError(f"{request.method} does not create a dialog")
        if not 101 <= response.status <= 299:
            raise LocalProtocolError("only a 101-299 response creates a dialog")
        local_tag = response.to.tag
        if not local_tag:
            raise LocalProtocolError("the response that creates a dialog needs our To tag")
        target = _contact_uri(request)
        if target is None:
            raise DialogReject(400, "dialog-creating request without a Contact")
        return cls(
            call_id=request.call_id,
            local_tag=local_tag,
            remote_tag=request.from_.tag or "",
            local_uri=_untagged(response.to),
            remote_uri=_untagged(request.from_),
            remote_target=target,
            route_set=list(request.headers.get_all("Record-Route")),
            local_seq=None,
            remote_seq=request.cseq.number,
            secure=request.request_uri.scheme == "sips" if secure is None else secure,
            is_uac=False,
            state=DialogState.CONFIRMED if response.status >= 200 else DialogState.EARLY,
            local_contact=local_contact if local_contact is not None else response.headers.get("Contact"),
        )

    @classmethod
    def from_uac(cls, request: Request, response: Response, *, local_contact: str | None = None) -> Dialog:
        """Dialog on the UAC side from a *request* we sent and a 101-299 *response* with a To tag (§12.1.2).
        A 2xx from an RFC 2543 peer may lack the tag (null remote tag)."""
        if request.method not in DIALOG_CREATING:
            raise LocalProtocolError(f"{request.method} does not create a dialog")
        if not 101 <= response.status <= 299:
            raise LocalProtocolError("only a 101-299 response creates a dialog")
        local_tag = request.from_.tag
        if not local_tag:
            raise LocalProtocolError("our request has no From tag")
        remote_tag = response.to.tag
        if not remote_tag and response.status < 200:
            raise SipParseError("a provisional response without a To tag creates no dialog")
        target = _contact_uri(response)
        if target is None:
            raise SipParseError("dialog-creating response without a Contact")
        return cls(
            call_id=request.call_id,
            local_tag=local_tag,
            remote_tag=remote_tag or "",
            local_uri=_untagged(request.from_),
            remote_uri=_untagged(response.to),
            remote_target=target,
            route_set=list(reversed(response.headers.get_all("Record-Route"))),
            local_seq=request.cseq.number,
            remote_seq=None,
            secure=request.request_uri.scheme == "sips",
            is_uac=True,
            state=DialogState.CONFIRMED if response.status >= 200 else DialogState.EARLY,
            local_contact=local_contact if local_contact is not None else request.headers.get("Contact"),
        )

    @property
    def id(self) -> DialogId:
        return DialogId(self.call_id, self.local_tag, self.remote_tag)

    @property
    def terminated(self) -> bool:
        return self.state is DialogState.TERMINATED

    def terminate(self) -> None:
        self.state = DialogState.TERMINATED

    # ---- requests we send (§12.2.1) ---------------------------------------------------------------

    def target_and_routes(self) -> tuple[str, list[str]]:
        """Request-URI and Route values per §12.2.1.1 (loose routing, or strict when ``lr`` is absent)."""
        if not self.route_set:
            return self.remote_target, []
        first = self.route_set[0]
        if _loose(first):
            return self.remote_target, list(self.route_set)
        uri = NameAddr.parse(first).uri
        params = {k: v for k, v in uri.params.items() if k not in _NOT_IN_REQUEST_URI}
        stripped = SipUri(uri.scheme, uri.user, uri.password, uri.host, uri.port, params, None, uri.opaque)
        return str(stripped), [*self.route_set[1:], f"<{self.remote_target}>"]

    def create_request(
        self,
        method: str,
        *,
        via: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
    ) -> Request:
        """An in-dialog request with the next local CSeq (random start when empty, §12.2.1.1).

        The dialog's Contact is added to target refresh requests.  For ACK use :meth:`create_ack`; CANCEL is
        built from the INVITE (:func:`.util.make_cancel`).
        """
        if method in ("ACK", "CANCEL"):
            raise LocalProtocolError(f"{method} is not built with create_request")
        if self.state is DialogState.TERMINATED:
            raise LocalProtocolError("the dialog is terminated")
        seq = new_cseq() if self.local_seq is None else self.local_seq + 1
        req = self._build(method, seq, via, headers, body)
        if method in TARGET_REFRESH and self.local_contact and req.headers.get("Contact") is None:
            req.headers.add("Contact", self.local_contact)
        self.local_seq = seq
        return req

    def create_ack(
        self,
        invite_cseq: int,
        *,
        via: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
    ) -> Request:
        """The ACK for a 2xx to our INVITE with CSeq *invite_cseq* (§13.2.2.4): routed like any in-dialog
        request, CSeq number of the INVITE, fresh branch (pass *via*), credentials in *headers*."""
        if not self.is_uac:
            raise LocalProtocolError("only the UAC of a dialog ACKs a 2xx")
        return self._build("ACK", invite_cseq, via, headers, body)

    def _build(
        self, method: str, seq: int, via: str | None, headers: Iterable[tuple[str, str]], body: bytes
    ) -> Request:
        uri, routes = self.target_and_routes()
        h = Headers()
        if via is not None:
            h.add("Via", via)
        h.add("Max-Forwards", "70")
        for route in routes:
            h.add("Route", route)
        h.add("From", str(self.local_uri.with_tag(self.local_tag)))
        remote = self.remote_uri.with_tag(self.remote_tag) if self.remote_tag else self.remote_uri
        h.add("To", str(remote))
        h.add("Call-ID", self.call_id)
        h.add("CSeq", str(CSeq(seq, method)))
        for name, value in headers:
            h.add(name, value)
        return Request(method, uri, h, body)

    # ---- requests we receive (§12.2.2) ------------------------------------------------------------

    def receive_request(self, req: Request) -> None:
        """Check and apply an in-dialog request.  Raises :class:`DialogReject` (500 for a CSeq lower than the
        remote sequence number, 481 for a request of another dialog) and then changes nothing."""
        if (
            req.call_id != self.call_id
            or req.to.tag != self.local_tag
            or (req.from_.tag or "") != self.remote_tag
        ):
            raise DialogReject(481, "request does not belong to this dialog")
        if self.state is DialogState.TERMINATED:
            raise DialogReject(481, "dialog terminated")
        if req.method in ("ACK", "CANCEL"):
            return  # ACK carries the INVITE's CSeq; CANCEL is never in-dialog
        number = req.cseq.number
        if self.remote_seq is not None and number < self.remote_seq:
            raise DialogReject(500, "CSeq out of order")
        target = _contact_uri(req) if req.method in TARGET_REFRESH else None
        self.remote_seq = number
        if target is not None:
            self.remote_target = target

    def response_sent(self, response: Response) -> None:
        """UAS: track the dialog state with the responses we send to the dialog-creating request."""
        if self.is_uac or response.cseq.method not in DIALOG_CREATING:
            return
        if self.state is DialogState.EARLY:
            if 200 <= response.status < 300:
                self.state = DialogState.CONFIRMED
            elif response.status >= 300:
                self.state = DialogState.TERMINATED

    # ---- responses we receive (§12.2.1.2, §13.2.2.4) ---------------------------------------------

    def receive_response(self, response: Response) -> None:
        """UAC: apply a response to a request sent in this dialog (or to the request that created it).

        A 2xx confirms an early dialog and recomputes its route set; a 2xx to a target refresh updates the
        remote target; 481 and 408 terminate the dialog, and so does a non-2xx final answer on an early one.
        """
        method = response.cseq.method
        status = response.status
        if status in (408, 481):
            self.state = DialogState.TERMINATED
            return
        if self.state is DialogState.EARLY and method in DIALOG_CREATING:
            if status >= 300:
                self.state = DialogState.TERMINATED
                return
            if 200 <= status < 300 and self.is_uac:
                self.state = DialogState.CONFIRMED
                self.route_set = list(reversed(response.headers.get_all("Record-Route")))
        if 101 <= status < 300 and method in TARGET_REFRESH:
            target = _contact_uri(response)
            if target is not None:
                self.remote_target = target


class DialogRegistry:
    """Dialogs by id, matching incoming requests (To tag = ours) and responses (From tag = ours)."""

    def __init__(self) -> None:
        self._dialogs: dict[DialogId, Dialog] = {}

    def __len__(self) -> int:
        return len(self._dialogs)

    def __iter__(self) -> Iterator[Dialog]:
        return iter(list(self._dialogs.values()))

    def __contains__(self, dialog_id: object) -> bool:
        return dialog_id in self._dialogs

    def add(self, dialog: Dialog) -> None:
        if dialog.id in self._dialogs:
            raise LocalProtocolError(f"dialog {dialog.id} already registered")
        self._dialogs[dialog.id] = dialog

    def remove(self, dialog_id: DialogId) -> Dialog | None:
        return self._dialogs.pop(dialog_id, None)

    def get(self, dialog_id: DialogId) -> Dialog | None:
        return self._dialogs.get(dialog_id)

    def match_request(self, req: Request) -> Dialog | None:
        """The dialog of an incoming request (None when its To has no tag: out of dialog)."""
        local = req.to.tag
        if not local:
            return None
        return self._dialogs.get(DialogId(req.call_id, local, req.from_.tag or ""))

    def match_response(self, resp: Response) -> Dialog | None:
        """The dialog of an incoming response to a request we sent."""
        local = resp.from_.tag
        if not local:
            return None
        return self._dialogs.get(DialogId(resp.call_id, local, resp.to.tag or ""))

    def by_call(self, call_id: str, local_tag: str) -> list[Dialog]:
        """Every dialog (e.g. forked early dialogs) of one request we sent."""
        return [d for d in self._dialogs.values() if d.call_id == call_id and d.local_tag == local_tag]

    def prune(self) -> list[Dialog]:
        """Remove and return the terminated dialogs."""
        done = [d for d in self._dialogs.values() if d.terminated]
        for d in done:
            del self._dialogs[d.id]
        return done


# ---- UAS 2xx retransmission (§13.3.1.4) ------------------------------------------------------------


class AnswerState(StrEnum):
    WAITING = "waiting for ACK"
    ACKED = "acked"
    TIMED_OUT = "timed out"


@dataclass(slots=True)
class AnswerRetransmitter:
    """The UAS core's 2xx retransmission: every T1, doubling up to T2, until the ACK arrives; after 64*T1 the
    TU should send BYE (§13.3.1.4).  Nothing to do on a reliable transport but wait for the ACK.

    ``handle_timer(now)`` returns True when the 2xx must be sent again (through the INVITE server transaction,
    which is in the Accepted state for exactly 64*T1: ``TransactionLayer.send_response``).
    """

    started: float
    reliable: bool = False
    config: TimerConfig = field(default_factory=TimerConfig)
    state: AnswerState = AnswerState.WAITING
    _interval: float = field(init=False, default=0.0)
    _next: float | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self._interval = self.config.t1
        self._next = None if self.reliable else self.started + self._interval

    wait: float | None = None  # seconds to wait for the ACK when shorter than 64*T1 (:meth:`shorten`)

    @property
    def give_up_at(self) -> float:
        full = 64 * self.config.t1
        return self.started + (full if self.wait is None else min(full, self.wait))

    def shorten(self, wait: float) -> bool:
        """Wait at most *wait* seconds for the ACK (the UAS may give up early, §13.3.1.4): the focus does
        under overload. True when the give-up time moved earlier."""
        if self.state is not AnswerState.WAITING or (self.wait is not None and self.wait <= wait):
            return False
        before = self.give_up_at
        self.wait = wait
        return self.give_up_at < before

    def next_deadline(self) -> float | None:
        if self.state is not AnswerState.WAITING:
            return None
        return self.give_up_at if self._next is None else min(self._next, self.give_up_at)

    def ack_received(self) -> None:
        if self.state is AnswerState.WAITING:
            self.state = AnswerState.ACKED

    def handle_timer(self, now: float) -> bool:
        if self.state is not AnswerState.WAITING:
            return False
        if now >= self.give_up_at:
            self.state = AnswerState.TIMED_OUT
            return False
        if self._next is None or now < self._next:
            return False
        self._interval = min(2 * self._interval, self.config.t2)
        self._next = now + self._interval
        return True
