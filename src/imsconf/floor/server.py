"""A sans-I/O BFCP floor control server for one conference (RFC 8855 over TCP/TLS, version 1).

Driven like every imsconf protocol core: the adapter calls ``receive(conn_id, data, now)`` with octets from a
connection, then drains ``outputs()`` (octets to write), ``connections_to_close()`` and ``events()``
(``FloorGranted``/``FloorReleased``/``FloorRevoked`` for the focus and the mixer).  ``next_deadline()`` /
``handle_timer(now)`` close connections the focus never bound to a user.

Security model: a connection speaks for exactly one BFCP user, bound by the focus with
``bind(conn_id, user_id)`` once it knows which SIP participant opened it (e.g. by the TLS certificate
fingerprint of RFC 8856).  Messages from an unbound connection, or carrying another user id in the header,
are answered with Error 5 (Unauthorized Operation).  Only a floor's chair may send ChairAction for it or
request it on someone else's behalf (BENEFICIARY-ID).

Floor policies: ``chair`` (requests stay Pending until the chair accepts, grants or denies them) and
``auto`` (granted first come first served, by PRIORITY then arrival, up to ``max_holders``).  A request for
several floors is granted floor by floor but ends as a whole: denying or revoking one floor ends all of them.

Over a reliable transport, messages the server sends on its own (FloorRequestStatus and FloorStatus
notifications) carry Transaction ID 0 and expect no acknowledgement (RFC 8855 §8); responses echo the
request's conference, transaction and user ids.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from .attributes import (
    Attribute,
    BeneficiaryId,
    BeneficiaryInformation,
    FloorId,
    FloorRequestId,
    FloorRequestInformation,
    FloorRequestStatus,
    OverallRequestStatus,
    ParticipantProvidedInfo,
    Priority,
    RequestedByInformation,
    RequestStatus,
    StatusInfo,
    SupportedAttributes,
    SupportedPrimitives,
    UserDisplayName,
    UserUri,
)
from .codec import DEFAULT_MAX_MESSAGE_SIZE, BfcpFramer, Message, error_for, error_response
from .constants import AttributeType, ErrorCodeValue, Primitive, PriorityLevel, RequestState
from .errors import BfcpDecodeError
from .events import FloorEvent, FloorGranted, FloorReleased, FloorRevoked

__all__ = [
    "CHAIR_TRANSITIONS",
    "SUPPORTED_ATTRIBUTES",
    "SUPPORTED_PRIMITIVES",
    "FloorConfig",
    "FloorControlServer",
    "Policy",
]

S = RequestState
E = ErrorCodeValue

CHAIR_TRANSITIONS: frozenset[tuple[RequestState, RequestState]] = frozenset(
    {
        (S.PENDING, S.ACCEPTED),
        (S.PENDING, S.GRANTED),
        (S.PENDING, S.DENIED),
        (S.ACCEPTED, S.GRANTED),
        (S.ACCEPTED, S.DENIED),
        (S.GRANTED, S.REVOKED),
    }
)
"""(current, requested) per-floor states a ChairAction may ask for; anything else is refused (Error 14)."""

SUPPORTED_PRIMITIVES: tuple[Primitive, ...] = tuple(
    p for p in Primitive if p not in (Primitive.FLOOR_REQUEST_STATUS_ACK, Primitive.FLOOR_STATUS_ACK)
)
"""Announced in HelloAck: everything but the two acknowledgements that only exist over UDP."""
SUPPORTED_ATTRIBUTES: tuple[AttributeType, ...] = tuple(AttributeType)

MAX_FLOORS_PER_REQUEST = 16
MAX_REQUESTS = 1024
MAX_TEXT = 64  # octets of display name / URI / participant text echoed inside FLOOR-REQUEST-INFORMATION


class Policy(StrEnum):
    CHAIR = "chair"
    AUTO = "auto"


@dataclass(frozen=True, slots=True)
class FloorConfig:
    """One floor of the conference (e.g. 1 = audio, 2 = presentation)."""

    floor_id: int
    policy: Policy = Policy.AUTO
    max_holders: int = 1
    chair_id: int | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.floor_id <= 0xFFFF:
            raise ValueError("floor id is 16 bits")
        if self.max_holders < 1:
            raise ValueError("max_holders must be at least 1")
        if self.chair_id is not None and not 0 <= self.chair_id <= 0xFFFF:
            raise ValueError("chair id is 16 bits")


@dataclass(slots=True)
class _User:
    display_name: str | None = None
    uri: str | None = None


@dataclass(slots=True)
class _Conn:
    conn_id: int
    framer: BfcpFramer
    made_at: float
    user_id: int | None = None
    subscriptions: set[int] = field(default_factory=set)
    closing: bool = False


@dataclass(slots=True)
class _Request:
    frid: int
    beneficiary: int
    requested_by: int
    priority: PriorityLevel
    seq: int
    states: dict[int, RequestState]
    participant_info: str | None = None
    status_info: str | None = None
    granted_at: dict[int, int] = field(default_factory=dict)
    last_view: object = None

    @property
    def ended(self) -> bool:
        return all(s.is_terminal for s in self.states.values())

    def overall(self) -> RequestState:
        states = set(self.states.values())
        if all(s.is_terminal for s in states):
            for s in (S.REVOKED, S.DENIED, S.RELEASED):
                if s in states:
                    return s
            return S.CANCELLED
        if states == {S.GRANTED}:
            return S.GRANTED
        return S.PENDING if S.PENDING in states else S.ACCEPTED


def _clip(text: str | None) -> str | None:
    if not text:
        return None
    return text.encode("utf-8")[:MAX_TEXT].decode("utf-8", "ignore") or None


class FloorControlServer:
    """Floor control for one conference; see the module docstring for the driving interface."""

    def __init__(
        self,
        conference_id: int,
        floors: Iterable[FloorConfig],
        *,
        bind_timeout: float = 30.0,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
    ) -> None:
        if not 0 <= conference_id <= 0xFFFFFFFF:
            raise ValueError("conference id is 32 bits")
        self.conference_id = conference_id
        self.bind_timeout = bind_timeout
        self.max_message_size = max_message_size
        self._floors: dict[int, FloorConfig] = {}
        for f in floors:
            if f.floor_id in self._floors:
                raise ValueError(f"floor {f.floor_id} configured twice")
            self._floors[f.floor_id] = f
        self._users: dict[int, _User] = {}
        self._conns: dict[int, _Conn] = {}
        self._user_conn: dict[int, int] = {}
        self._requests: dict[int, _Request] = {}
        self._floor_views: dict[int, object] = {}
        self._next_frid = 1
        self._seq = 0
        self._out: list[tuple[int, bytes]] = []
        self._close: list[int] = []
        self._events: list[FloorEvent] = []

    # --- the focus's side ------------------------------------------------------------------------------

    @property
    def floors(self) -> Mapping[int, FloorConfig]:
        return MappingProxyType(self._floors)

    def add_user(self, user_id: int, *, display_name: str | None = None, uri: str | None = None) -> None:
        """Make ``user_id`` known (a participant that has not connected yet can be a beneficiary)."""
        if not 0 <= user_id <= 0xFFFF:
            raise ValueError("user id is 16 bits")
        self._users[user_id] = _User(_clip(display_name), _clip(uri))

    def bind(
        self, conn_id: int, user_id: int, *, display_name: str | None = None, uri: str | None = None
    ) -> None:
        """Bind a connection to a SIP participant's BFCP user; that user's older connection closes."""
        if user_id not in self._users or display_name is not None or uri is not None:
            self.add_user(user_id, display_name=display_name, uri=uri)
        conn = self._conn(conn_id, 0.0)
        if conn.user_id is not None and conn.user_id != user_id:
            raise ValueError(f"connection {conn_id} is already bound to user {conn.user_id}")
        old = self._user_conn.get(user_id)
        if old is not None and old != conn_id:
            self._request_close(old)
            self._conns[old].user_id = None
        conn.user_id = user_id
        self._user_conn[user_id] = conn_id

    def remove_user(self, user_id: int) -> None:
        """The participant left the conference: its requests end and its connection closes."""
        conn_id = self._user_conn.pop(user_id, None)
        if conn_id is not None:
            self._conns[conn_id].user_id = None
            self._request_close(conn_id)
        self._end_user_requests(user_id)
        self._users.pop(user_id, None)
        self._flush()

    def set_chair(self, floor_id: int, user_id: int | None) -> None:
        f = self._floors[floor_id]
        self._floors[floor_id] = FloorConfig(f.floor_id, f.policy, f.max_holders, user_id)

    def holders(self, floor_id: int) -> set[int]:
        """User ids currently granted ``floor_id``."""
        return {r.beneficiary for r in self._holding(floor_id)}

    def events(self) -> list[FloorEvent]:
        out, self._events = self._events, []
        return out

    # --- the adapter's side ----------------------------------------------------------------------------

    def connection_made(self, conn_id: int, now: float) -> None:
        self._conn(conn_id, now)

    def connection_lost(self, conn_id: int) -> None:
        conn = self._conns.pop(conn_id, None)
        if conn is None or conn.user_id is None:
            return
        if self._user_conn.get(conn.user_id) == conn_id:
            del self._user_conn[conn.user_id]
            self._end_user_requests(conn.user_id)
            self._flush()

    def receive(self, conn_id: int, data: bytes, now: float) -> None:
        conn = self._conn(conn_id, now)
        if conn.closing:
            return
        conn.framer.receive(data)
        while not conn.closing:
            try:
                msg = conn.framer.next_message()
            except BfcpDecodeError as err:
                if err.primitive != Primitive.ERROR:
                    reply = error_response(err, conference_id=self.conference_id, user_id=conn.user_id or 0)
                    self._out.append((conn_id, bytes(reply)))
                if err.fatal:
                    self._request_close(conn_id)
                continue
            if msg is None:
                break
            self._handle(conn, msg)
            self._flush()

    def outputs(self) -> list[tuple[int, bytes]]:
        out, self._out = self._out, []
        return out

    def connections_to_close(self) -> list[int]:
        """Connections to close once the octets from ``outputs()`` are written."""
        out, self._close = self._close, []
        return out

    def next_deadline(self) -> float | None:
        """When the oldest connection still not bound must be closed (None: no timer needed)."""
        unbound = [c.made_at for c in self._conns.values() if c.user_id is None and not c.closing]
        return min(unbound) + self.bind_timeout if unbound else None

    def handle_timer(self, now: float) -> None:
        for conn in self._conns.values():
            if conn.user_id is None and not conn.closing and now >= conn.made_at + self.bind_timeout:
                self._request_close(conn.conn_id)

    # --- internals -------------------------------------------------------------------------------------

    def _conn(self, conn_id: int, now: float) -> _Conn:
        conn = self._conns.get(conn_id)
        if conn is None:
            conn = _Conn(conn_id, BfcpFramer(self.max_message_size), now)
            self._conns[conn_id] = conn
        return conn

    def _request_close(self, conn_id: int) -> None:
        conn = self._conns.get(conn_id)
        if conn is not None and not conn.closing:
            conn.closing = True
            conn.subscriptions.clear()
            self._close.append(conn_id)

    def _send(self, conn_id: int, msg: Message) -> None:
        self._out.append((conn_id, bytes(msg)))

    def _reply(
        self, conn: _Conn, request: Message, primitive: Primitive, attrs: Iterable[Attribute] = ()
    ) -> None:
        self._send(
            conn.conn_id,
            Message(primitive, request.conference_id, request.transaction_id, request.user_id, tuple(attrs)),
        )

    def _error(self, conn: _Conn, request: Message, code: ErrorCodeValue, info: str) -> None:
        self._send(conn.conn_id, error_for(request, code, info))

    def _notify(self, conn_id: int, primitive: Primitive, attrs: Iterable[Attribute]) -> None:
        conn = self._conns.get(conn_id)
        if conn is None or conn.closing or conn.user_id is None:
            return
        self._send(conn_id, Message(primitive, self.conference_id, 0, conn.user_id, tuple(attrs)))

    def _is_chair(self, user_id: int, floor_ids: Iterable[int]) -> bool:
        return all(self._floors[f].chair_id == user_id for f in floor_ids)

    def _is_any_chair(self, user_id: int) -> bool:
        return any(f.chair_id == user_id for f in self._floors.values())

    # floor state ------------------------------------------------------------------------------------------

    def _active(self) -> list[_Request]:
        return [r for r in self._requests.values() if not r.ended]

    def _holding(self, floor_id: int) -> list[_Request]:
        held = [r for r in self._active() if r.states.get(floor_id) == S.GRANTED]
        return sorted(held, key=lambda r: r.granted_at[floor_id])

    def _queue(self, floor_id: int) -> list[_Request]:
        queued = [r for r in self._active() if r.states.get(floor_id) in (S.PENDING, S.ACCEPTED)]
        return sorted(queued, key=lambda r: (r.states[floor_id] != S.ACCEPTED, -r.priority, r.seq))

    def _queue_position(self, r: _Request, floor_id: int) -> int:
        if r.states[floor_id] not in (S.PENDING, S.ACCEPTED):
            return 0
        return min(self._queue(floor_id).index(r) + 1, 255)

    def _set_state(self, r: _Request, floor_id: int, new: RequestState) -> None:
        old = r.states[floor_id]
        r.states[floor_id] = new
        if new == S.GRANTED and old != S.GRANTED:
            self._seq += 1
            r.granted_at[floor_id] = self._seq
            self._events.append(FloorGranted(floor_id, r.beneficiary, r.frid))
        elif old == S.GRANTED and new == S.RELEASED:
            self._events.append(FloorReleased(floor_id, r.beneficiary, r.frid))
        elif old == S.GRANTED and new == S.REVOKED:
            self._events.append(FloorRevoked(floor_id, r.beneficiary, r.frid))

    def _end(self, r: _Request, if_granted: RequestState, otherwise: RequestState) -> None:
        for floor_id, state in list(r.states.items()):
            if not state.is_terminal:
                self._set_state(r, floor_id, if_granted if state == S.GRANTED else otherwise)

    def _end_user_requests(self, user_id: int) -> None:
        for r in self._active():
            if r.beneficiary == user_id:
                self._end(r, S.RELEASED, S.CANCELLED)
        self._promote()

    def _promote(self) -> None:
        """Auto floors: grant queued requests while there is room."""
        for f in self._floors.values():
            if f.policy != Policy.AUTO:
                continue
            queue = self._queue(f.floor_id)
            room = f.max_holders - len(self._holding(f.floor_id))
            for r in queue[: max(room, 0)]:
                self._set_state(r, f.floor_id, S.GRANTED)

    # views and notifications --------------------------------------------------------------------------

    def _request_view(self, r: _Request) -> object:
        per_floor = tuple((f, s, self._queue_position(r, f)) for f, s in r.states.items())
        return (per_floor, r.overall(), r.status_info)

    def _fri(self, r: _Request) -> FloorRequestInformation:
        statuses = tuple(
            FloorRequestStatus(f, RequestStatus(s, self._queue_position(r, f))) for f, s in r.states.items()
        )
        single = len(r.states) == 1
        qpos = self._queue_position(r, next(iter(r.states))) if single else 0
        user = self._users.get(r.beneficiary, _User())
        requested_by = RequestedByInformation(r.requested_by) if r.requested_by != r.beneficiary else None
        for rich in (True, False):
            try:
                return FloorRequestInformation(
                    r.frid,
                    statuses,
                    OverallRequestStatus(
                        r.frid,
                        RequestStatus(r.overall(), qpos),
                        StatusInfo(r.status_info) if rich and r.status_info else None,
                    ),
                    BeneficiaryInformation(
                        r.beneficiary,
                        UserDisplayName(user.display_name) if rich and user.display_name else None,
                        UserUri(user.uri) if rich and user.uri else None,
                    ),
                    requested_by,
                    Priority(r.priority),
                    ParticipantProvidedInfo(r.participant_info) if rich and r.participant_info else None,
                )
            except ValueError:
                if not rich:
                    raise
        raise AssertionError("unreachable")

    def _floor_status_attrs(self, floor_id: int) -> list[Attribute]:
        attrs: list[Attribute] = [FloorId(floor_id)]
        attrs += [self._fri(r) for r in self._holding(floor_id) + self._queue(floor_id)]
        return attrs

    def _floor_view(self, floor_id: int) -> object:
        return tuple((r.frid, self._request_view(r)) for r in self._holding(floor_id) + self._queue(floor_id))

    def _flush(self) -> None:
        """Send FloorRequestStatus for every request whose state moved and FloorStatus for every floor."""
        for r in list(self._requests.values()):
            view = self._request_view(r)
            if view != r.last_view:
                r.last_view = view
                fri = self._fri(r)
                for user_id in dict.fromkeys((r.requested_by, r.beneficiary)):
                    conn_id = self._user_conn.get(user_id)
                    if conn_id is not None:
                        self._notify(conn_id, Primitive.FLOOR_REQUEST_STATUS, (fri,))
            if r.ended:
                del self._requests[r.frid]
        for floor_id in self._floors:
            view = self._floor_view(floor_id)
            if view != self._floor_views.get(floor_id, ()):
                self._floor_views[floor_id] = view
                attrs = self._floor_status_attrs(floor_id)
                for conn in list(self._conns.values()):
                    if floor_id in conn.subscriptions:
                        self._notify(conn.conn_id, Primitive.FLOOR_STATUS, attrs)

    def _respond_status(self, conn: _Conn, request: Message, r: _Request) -> None:
        """The FloorRequestStatus response; marks the state as told so ``_flush`` only tells the others."""
        self._reply(conn, request, Primitive.FLOOR_REQUEST_STATUS, (self._fri(r),))
        r.last_view = self._request_view(r)
        other = r.beneficiary if conn.user_id == r.requested_by else r.requested_by
        other_conn = self._user_conn.get(other)
        if other != conn.user_id and other_conn is not None:
            self._notify(other_conn, Primitive.FLOOR_REQUEST_STATUS, (self._fri(r),))

    # dispatch -----------------------------------------------------------------------------------------

    def _handle(self, conn: _Conn, msg: Message) -> None:
        if msg.primitive in _IGNORED:
            return
        if conn.user_id is None:
            self._error(conn, msg, E.UNAUTHORIZED_OPERATION, "connection not bound to a BFCP user")
        elif msg.conference_id != self.conference_id:
            self._error(conn, msg, E.CONFERENCE_DOES_NOT_EXIST, f"no conference {msg.conference_id}")
        elif msg.user_id != conn.user_id:
            self._error(conn, msg, E.UNAUTHORIZED_OPERATION, "user id does not match this connection")
        elif msg.primitive not in _HANDLERS:
            self._error(conn, msg, E.UNKNOWN_PRIMITIVE, f"{msg.primitive.name} is not sent to a server")
        else:
            _HANDLERS[msg.primitive](self, conn, conn.user_id, msg)

    def _on_hello(self, conn: _Conn, user: int, msg: Message) -> None:
        self._reply(
            conn,
            msg,
            Primitive.HELLO_ACK,
            (SupportedPrimitives(SUPPORTED_PRIMITIVES), SupportedAttributes(SUPPORTED_ATTRIBUTES)),
        )

    def _on_goodbye(self, conn: _Conn, user: int, msg: Message) -> None:
        self._reply(conn, msg, Primitive.GOODBYE_ACK)
        self._request_close(conn.conn_id)
        if self._user_conn.get(user) == conn.conn_id:
            del self._user_conn[user]
            conn.user_id = None
            self._end_user_requests(user)

    def _on_floor_request(self, conn: _Conn, user: int, msg: Message) -> None:
        floor_ids = list(dict.fromkeys(a.value for a in msg.get_all(FloorId)))
        ben = msg.get(BeneficiaryId)
        beneficiary = user if ben is None else ben.value
        unknown = [f for f in floor_ids if f not in self._floors]
        if unknown:
            return self._error(conn, msg, E.INVALID_FLOOR_ID, f"no floor {unknown[0]}")
        if len(floor_ids) > MAX_FLOORS_PER_REQUEST or len(self._requests) >= MAX_REQUESTS:
            return self._error(conn, msg, E.GENERIC_ERROR, "too many floor requests")
        if beneficiary != user and not self._is_chair(user, floor_ids):
            return self._error(
                conn, msg, E.UNAUTHORIZED_OPERATION, "only the chair may request for another user"
            )
        if beneficiary not in self._users:
            return self._error(conn, msg, E.USER_DOES_NOT_EXIST, f"no user {beneficiary}")
        for r in self._active():
            if r.beneficiary == beneficiary and any(f in r.states for f in floor_ids):
                return self._error(
                    conn, msg, E.MAX_FLOOR_REQUESTS_REACHED, "a request for this floor is ongoing"
                )
        prio = msg.get(Priority)
        ppi = msg.get(ParticipantProvidedInfo)
        self._seq += 1
        r = _Request(
            self._allocate_frid(),
            beneficiary,
            user,
            PriorityLevel.NORMAL if prio is None else prio.level,
            self._seq,
            {f: S.PENDING for f in floor_ids},
            participant_info=_clip(ppi.text) if ppi else None,
        )
        self._requests[r.frid] = r
        self._promote()
        self._respond_status(conn, msg, r)

    def _allocate_frid(self) -> int:
        while self._next_frid in self._requests or self._next_frid == 0:
            self._next_frid = (self._next_frid + 1) & 0xFFFF
        frid = self._next_frid
        self._next_frid = (frid + 1) & 0xFFFF
        return frid

    def _find(self, conn: _Conn, msg: Message) -> _Request | None:
        frid = msg.get(FloorRequestId)
        r = self._requests.get(frid.value) if frid is not None else None
        if r is None or r.ended:
            self._error(conn, msg, E.FLOOR_REQUEST_ID_DOES_NOT_EXIST, "no such floor request")
            return None
        return r

    def _on_floor_release(self, conn: _Conn, user: int, msg: Message) -> None:
        r = self._find(conn, msg)
        if r is None:
            return
        if user not in (r.requested_by, r.beneficiary):
            return self._error(conn, msg, E.UNAUTHORIZED_OPERATION, "not your floor request")
        self._end(r, S.RELEASED, S.CANCELLED)
        self._promote()
        self._respond_status(conn, msg, r)

    def _on_floor_request_query(self, conn: _Conn, user: int, msg: Message) -> None:
        r = self._find(conn, msg)
        if r is None:
            return
        if user not in (r.requested_by, r.beneficiary) and not self._is_any_chair(user):
            return self._error(conn, msg, E.UNAUTHORIZED_OPERATION, "not your floor request")
        self._reply(conn, msg, Primitive.FLOOR_REQUEST_STATUS, (self._fri(r),))

    def _on_user_query(self, conn: _Conn, user: int, msg: Message) -> None:
        ben = msg.get(BeneficiaryId)
        target = user if ben is None else ben.value
        if target != user and not self._is_any_chair(user):
            return self._error(conn, msg, E.UNAUTHORIZED_OPERATION, "only a chair may query another user")
        info = self._users.get(target)
        if info is None:
            return self._error(conn, msg, E.USER_DOES_NOT_EXIST, f"no user {target}")
        attrs: list[Attribute] = []
        if ben is not None:
            attrs.append(
                BeneficiaryInformation(
                    target,
                    UserDisplayName(info.display_name) if info.display_name else None,
                    UserUri(info.uri) if info.uri else None,
                )
            )
        attrs += [self._fri(r) for r in self._active() if r.beneficiary == target]
        self._reply(conn, msg, Primitive.USER_STATUS, attrs)

    def _on_floor_query(self, conn: _Conn, user: int, msg: Message) -> None:
        floor_ids = list(dict.fromkeys(a.value for a in msg.get_all(FloorId)))
        unknown = [f for f in floor_ids if f not in self._floors]
        if unknown:
            return self._error(conn, msg, E.INVALID_FLOOR_ID, f"no floor {unknown[0]}")
        conn.subscriptions = set(floor_ids)
        if not floor_ids:
            return self._reply(conn, msg, Primitive.FLOOR_STATUS)
        self._reply(conn, msg, Primitive.FLOOR_STATUS, self._floor_status_attrs(floor_ids[0]))
        for floor_id in floor_ids[1:]:
            self._notify(conn.conn_id, Primitive.FLOOR_STATUS, self._floor_status_attrs(floor_id))

    def _on_chair_action(self, conn: _Conn, user: int, msg: Message) -> None:
        fri = msg.get(FloorRequestInformation)
        assert fri is not None  # the codec enforces the grammar
        floor_ids = fri.floor_ids
        unknown = [f for f in floor_ids if f not in self._floors]
        if unknown:
            return self._error(conn, msg, E.INVALID_FLOOR_ID, f"no floor {unknown[0]}")
        if not self._is_chair(user, floor_ids):
            return self._error(conn, msg, E.UNAUTHORIZED_OPERATION, "not the chair of this floor")
        r = self._requests.get(fri.floor_request_id)
        if r is None or r.ended:
            return self._error(conn, msg, E.FLOOR_REQUEST_ID_DOES_NOT_EXIST, "no such floor request")
        overall = fri.overall_request_status
        plan: dict[int, RequestState] = {}
        info: str | None = overall.status_info.text if overall and overall.status_info else None
        for frs in fri.floor_request_statuses:
            status = frs.request_status or (overall.request_status if overall else None)
            if frs.floor_id not in r.states:
                return self._error(
                    conn, msg, E.INVALID_FLOOR_ID, f"floor {frs.floor_id} is not in that request"
                )
            if status is None:
                return self._error(conn, msg, E.UNABLE_TO_PARSE_MESSAGE, "no REQUEST-STATUS for a floor")
            if (r.states[frs.floor_id], status.state) not in CHAIR_TRANSITIONS:
                return self._error(
                    conn,
                    msg,
                    E.GENERIC_ERROR,
                    f"cannot go from {r.states[frs.floor_id].name} to {status.state.name}",
                )
            plan[frs.floor_id] = status.state
            if frs.status_info is not None:
                info = frs.status_info.text
        for floor_id, state in plan.items():
            if state == S.GRANTED and len(self._holding(floor_id)) >= self._floors[floor_id].max_holders:
                return self._error(conn, msg, E.GENERIC_ERROR, f"floor {floor_id} has no room")
        if info is not None:
            r.status_info = _clip(info)
        if any(s in (S.DENIED, S.REVOKED) for s in plan.values()):
            self._end(r, S.REVOKED, S.DENIED)
        else:
            for floor_id, state in plan.items():
                self._set_state(r, floor_id, state)
        self._promote()
        self._reply(conn, msg, Primitive.CHAIR_ACTION_ACK)


_IGNORED = frozenset(
    {
        Primitive.ERROR,
        Primitive.HELLO_ACK,
        Primitive.GOODBYE_ACK,
        Primitive.FLOOR_REQUEST_STATUS_ACK,
        Primitive.FLOOR_STATUS_ACK,
    }
)
"""Answers and acknowledgements a server never replies to (acks only matter over UDP)."""

_HANDLERS = {
    Primitive.HELLO: FloorControlServer._on_hello,
    Primitive.GOODBYE: FloorControlServer._on_goodbye,
    Primitive.FLOOR_REQUEST: FloorControlServer._on_floor_request,
    Primitive.FLOOR_RELEASE: FloorControlServer._on_floor_release,
    Primitive.FLOOR_REQUEST_QUERY: FloorControlServer._on_floor_request_query,
    Primitive.USER_QUERY: FloorControlServer._on_user_query,
    Primitive.FLOOR_QUERY: FloorControlServer._on_floor_query,
    Primitive.CHAIR_ACTION: FloorControlServer._on_chair_action,
}
