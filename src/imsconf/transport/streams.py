"""One SIP TCP/TLS connection as an asyncio protocol, and the non-blocking accept loop of a listener.

Bytes in are framed (RFC 3261 §18.3) and handed to the core's :class:`Receiver`; RFC 5626 §3.5.1 pings
get their pong here.  What the connection means for the caps and the idle reaper is the owner's
(:class:`StreamOwner`, the transport manager) business.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
from collections.abc import Callable
from typing import Protocol

from imsconf.sip.errors import SipParseError
from imsconf.sip.message import MAX_MESSAGE_SIZE, Request, Response, StreamFramer
from imsconf.sip.peer import Peer

log = logging.getLogger("imsconf.transport")

ACCEPT_BATCH = 64  # connections taken per readiness event, so a SYN flood cannot starve the loop
ACCEPT_RETRY_DELAY = 1.0  # out of descriptors: stop accepting for this long
_RESOURCE_ERRNOS = frozenset([errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM])


class Receiver:
    """What the transport calls into (implemented by the SIP endpoint)."""

    def receive_datagram(self, data: bytes, peer: Peer) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def receive_message(self, msg: Request | Response, peer: Peer) -> None:  # pragma: no cover
        raise NotImplementedError

    def receive_stream_error(self, error: SipParseError, peer: Peer) -> None:  # pragma: no cover
        raise NotImplementedError

    def connect_failed(self, peer: Peer) -> None:  # pragma: no cover - optional
        return None


class StreamOwner(Protocol):
    """What a :class:`StreamConnection` reports to (the transport manager)."""

    receiver: Receiver

    def count(self, name: str, n: int = 1) -> None: ...

    def next_conn_id(self) -> int: ...

    def stream_opened(self, conn: StreamConnection) -> None: ...

    def stream_closed(self, conn: StreamConnection) -> None: ...

    def stream_activity(self, conn: StreamConnection, *, message: bool) -> None: ...


class StreamConnection(asyncio.Protocol):
    """*source*: the admission key an inbound connection was counted under (None for one we opened)."""

    def __init__(self, owner: StreamOwner, kind: str, *, source: str | None = None, outbound: bool = False):
        self.owner = owner
        self.kind = kind
        self.source = source
        self.outbound = outbound
        self.admitted = False  # holds a place in the caps (the owner releases it once)
        self.made = False
        self.conn_id = owner.next_conn_id()
        self.framer = StreamFramer(MAX_MESSAGE_SIZE)
        self.transport: asyncio.Transport | None = None
        self.peer: Peer | None = None
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports are not subclasses
        addr = transport.get_extra_info("peername")
        local = transport.get_extra_info("sockname")
        self.peer = Peer(self.kind, addr[0], addr[1], self.conn_id, (local[0], local[1]))
        self.made = True
        self.owner.stream_opened(self)

    def data_received(self, data: bytes) -> None:
        assert self.peer is not None
        framer = self.framer
        owner = self.owner
        try:
            framer.receive(data)
            while (item := framer.next_item()) is not None:
                if item == StreamFramer.PING:
                    self.write(b"\r\n")  # RFC 5626 §3.5.1 pong
                    owner.stream_activity(self, message=False)
                elif item == StreamFramer.PONG:
                    owner.stream_activity(self, message=False)
                elif isinstance(item, Request | Response):
                    owner.stream_activity(self, message=True)
                    try:
                        owner.receiver.receive_message(item, self.peer)
                    except Exception:
                        log.exception("event=core_error transport=%s", self.kind)
        except SipParseError as exc:
            # messages framed before the garbage were delivered; the byte stream cannot be resynchronised
            owner.count("stream_framing_error")
            with contextlib.suppress(Exception):
                owner.receiver.receive_stream_error(exc, self.peer)
            self.close()

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.owner.stream_closed(self)
        if not self.closed.done():
            self.closed.set_result(None)


class StreamListener:
    """A listening TCP socket accepted on readiness; each new socket goes to *on_accept*.

    Accepting here (rather than in ``loop.create_server``) lets the caps refuse a connection before any
    TLS handshake work is spent on it.
    """

    def __init__(
        self,
        sock: socket.socket,
        on_accept: Callable[[socket.socket, tuple[str, int]], None],
        count: Callable[[str], None],
    ) -> None:
        self.sock = sock
        self.on_accept = on_accept
        self.count = count
        self._loop = asyncio.get_running_loop()
        self._paused: asyncio.TimerHandle | None = None
        self._loop.add_reader(sock.fileno(), self._readable)

    def _readable(self) -> None:
        for _ in range(ACCEPT_BATCH):
            try:
                conn, addr = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno not in _RESOURCE_ERRNOS:
                    continue  # ECONNABORTED and the like: that connection is gone
                self.count("accept_out_of_resources")
                log.warning(
                    "event=accept_paused error=%s delay=%.1f", exc.__class__.__name__, ACCEPT_RETRY_DELAY
                )
                self._loop.remove_reader(self.sock.fileno())
                self._paused = self._loop.call_later(ACCEPT_RETRY_DELAY, self._resume)
                return
            self.on_accept(conn, (addr[0], addr[1]))

    def _resume(self) -> None:
        self._paused = None
        self._loop.add_reader(self.sock.fileno(), self._readable)

    def close(self) -> None:
        if self._paused is not None:
            self._paused.cancel()
            self._paused = None
        elif self.sock.fileno() >= 0:
            self._loop.remove_reader(self.sock.fileno())
        self.sock.close()
