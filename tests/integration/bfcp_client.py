"""A small BFCP client (RFC 8855, version 1 over TCP/TLS) for tests, independent of ``imsconf.floor``.

It encodes and decodes the few primitives it needs with ``struct`` only, so the server's codec is checked
by a second implementation written from the RFC:

COMMON-HEADER: ``Ver(3)=1 R F Res(3) | Primitive(8) | Payload Length(16, in 4-octet words) |
Conference ID(32) | Transaction ID(16) | User ID(16)``.  Attributes: ``Type(7) M(1) | Length(8, header +
contents, no padding) | contents``, padded to a multiple of 4 octets.  Grouped attributes
(FLOOR-REQUEST-INFORMATION, FLOOR-REQUEST-STATUS, OVERALL-REQUEST-STATUS, ...) start with a 16-bit id and
carry attributes after it.
"""

from __future__ import annotations

import socket
import ssl
import struct
import time
from dataclasses import dataclass, field

# primitives (RFC 8855 §5.1 Table 1)
FLOOR_REQUEST, FLOOR_RELEASE, FLOOR_REQUEST_STATUS = 1, 2, 4
FLOOR_QUERY, FLOOR_STATUS, CHAIR_ACTION, CHAIR_ACTION_ACK = 7, 8, 9, 10
HELLO, HELLO_ACK, ERROR, GOODBYE, GOODBYE_ACK = 11, 12, 13, 16, 17
# attributes (§5.2 Table 2)
FLOOR_ID, FLOOR_REQUEST_ID, REQUEST_STATUS, ERROR_CODE = 2, 3, 5, 6
FLOOR_REQUEST_INFORMATION, FLOOR_REQUEST_STATUS_ATTR, OVERALL_REQUEST_STATUS = 15, 17, 18
GROUPED = {14, 15, 16, 17, 18}  # BENEFICIARY-/REQUESTED-BY-INFORMATION, FRI, FRS, ORS
# request states (§5.2.5)
PENDING, ACCEPTED, GRANTED, DENIED, CANCELLED, RELEASED, REVOKED = 1, 2, 3, 4, 5, 6, 7


def attr(kind: int, value: bytes, mandatory: bool = True) -> bytes:
    length = 2 + len(value)
    assert length <= 255
    raw = struct.pack("!BB", (kind << 1) | int(mandatory), length) + value
    return raw + b"\0" * (-len(raw) % 4)


def u16_attr(kind: int, value: int) -> bytes:
    return attr(kind, struct.pack("!H", value))


def request_status(state: int, queue_position: int = 0) -> bytes:
    return attr(REQUEST_STATUS, struct.pack("!BB", state, queue_position))


def message(
    primitive: int, conference_id: int, transaction_id: int, user_id: int, payload: bytes = b""
) -> bytes:
    assert len(payload) % 4 == 0
    header = struct.pack(
        "!BBHIHH", 1 << 5, primitive, len(payload) // 4, conference_id, transaction_id, user_id
    )
    return header + payload


@dataclass
class Attr:
    kind: int
    value: bytes
    children: list[Attr] = field(default_factory=list)

    def u16(self) -> int:
        return int(struct.unpack_from("!H", self.value)[0])

    def find(self, kind: int) -> Attr | None:
        return next((a for a in self.children if a.kind == kind), None)


def parse_attrs(data: bytes) -> list[Attr]:
    out: list[Attr] = []
    pos = 0
    while pos + 2 <= len(data):
        first, length = data[pos], data[pos + 1]
        if length < 2 or pos + length > len(data):
            raise ValueError(f"bad attribute length {length} at {pos}")
        kind = first >> 1
        value = data[pos + 2 : pos + length]
        a = Attr(kind, value)
        if kind in GROUPED:
            a.children = parse_attrs(value[2:])
        out.append(a)
        pos += length + (-length % 4)
    return out


@dataclass
class Msg:
    primitive: int
    conference_id: int
    transaction_id: int
    user_id: int
    attrs: list[Attr]

    def find(self, kind: int) -> Attr | None:
        return next((a for a in self.attrs if a.kind == kind), None)

    def request_state(self) -> tuple[int, int] | None:
        """(floor request id, overall state) of a FloorRequestStatus/FloorStatus's first FRI."""
        fri = self.find(FLOOR_REQUEST_INFORMATION)
        if fri is None:
            return None
        ors = fri.find(OVERALL_REQUEST_STATUS)
        rs = ors.find(REQUEST_STATUS) if ors is not None else None
        if rs is None:
            frs = fri.find(FLOOR_REQUEST_STATUS_ATTR)
            rs = frs.find(REQUEST_STATUS) if frs is not None else None
        return fri.u16(), (rs.value[0] if rs is not None else 0)

    def error_code(self) -> int | None:
        a = self.find(ERROR_CODE)
        return a.value[0] if a is not None else None


class BfcpClient:
    """Blocking client: connect, then ``hello()``, ``request_floor()``, ``chair_action()``..."""

    def __init__(
        self,
        host: str,
        port: int,
        conference_id: int,
        user_id: int,
        *,
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
    ) -> None:
        raw = socket.create_connection((host, port), timeout=5)
        self.sock: socket.socket = (
            ssl_context.wrap_socket(raw, server_hostname=server_hostname) if ssl_context is not None else raw
        )
        self.conference_id = conference_id
        self.user_id = user_id
        self._tid = 0
        self._buf = b""
        self.received: list[Msg] = []  # everything, in order
        self._unread: list[Msg] = []

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, primitive: int, payload: bytes = b"", *, user_id: int | None = None) -> int:
        self._tid = self._tid % 0xFFFF + 1
        uid = self.user_id if user_id is None else user_id
        self.sock.sendall(message(primitive, self.conference_id, self._tid, uid, payload))
        return self._tid

    def _read(self, timeout: float) -> Msg | None:
        deadline = time.monotonic() + timeout
        while True:
            if len(self._buf) >= 12:
                words = struct.unpack_from("!H", self._buf, 2)[0]
                size = 12 + 4 * words
                if len(self._buf) >= size:
                    first, prim, _, conf, tid, uid = struct.unpack_from("!BBHIHH", self._buf)
                    assert first >> 5 == 1, f"version {first >> 5}"
                    msg = Msg(prim, conf, tid, uid, parse_attrs(self._buf[12:size]))
                    self._buf = self._buf[size:]
                    self.received.append(msg)
                    return msg
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                return None
            if not chunk:
                raise ConnectionError("BFCP connection closed")
            self._buf += chunk

    def wait(self, predicate: object, timeout: float = 5.0) -> Msg:
        """The first message (already received or new) for which ``predicate(msg)`` is true."""
        assert callable(predicate)
        for i, m in enumerate(self._unread):
            if predicate(m):
                return self._unread.pop(i)
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            new = self._read(left)
            if new is None:
                break
            if predicate(new):
                return new
            self._unread.append(new)
        raise TimeoutError(
            f"no matching BFCP message; got {[(m.primitive, m.error_code()) for m in self.received]}"
        )

    def transact(self, primitive: int, payload: bytes = b"", **kw: int) -> Msg:
        tid = self.send(primitive, payload, **kw)
        return self.wait(lambda m: m.transaction_id == tid)

    def hello(self) -> Msg:
        return self.transact(HELLO)

    def request_floor(self, floor_id: int) -> int:
        """FloorRequest → the floor request id from the FloorRequestStatus response."""
        resp = self.transact(FLOOR_REQUEST, u16_attr(FLOOR_ID, floor_id))
        assert resp.primitive == FLOOR_REQUEST_STATUS, (resp.primitive, resp.error_code())
        state = resp.request_state()
        assert state is not None
        return state[0]

    def floor_query(self, floor_id: int) -> Msg:
        return self.transact(FLOOR_QUERY, u16_attr(FLOOR_ID, floor_id))

    def chair_action(self, floor_request_id: int, floor_id: int, state: int) -> Msg:
        frs = attr(FLOOR_REQUEST_STATUS_ATTR, struct.pack("!H", floor_id) + request_status(state))
        fri = attr(FLOOR_REQUEST_INFORMATION, struct.pack("!H", floor_request_id) + frs)
        return self.transact(CHAIR_ACTION, fri)

    def wait_state(self, floor_request_id: int, state: int, timeout: float = 5.0) -> Msg:
        """A FloorRequestStatus notification telling that request is now ``state``."""
        return self.wait(
            lambda m: m.primitive == FLOOR_REQUEST_STATUS and m.request_state() == (floor_request_id, state),
            timeout,
        )

    def goodbye(self) -> Msg:
        return self.transact(GOODBYE)
