"""The runtime's MSRP: the TLS (and, when allowed, TCP) listeners of the focus's chat switch.

The switch (:class:`imsconf.focus.chat.FocusChat`) is sans-I/O; this module opens the sockets, gives each
accepted connection an id, tells the switch what it learnt of the peer (TLS or not, its certificate and
whether that chained to the conference CA, its host), feeds it the octets with the loop's clock, then
writes what it returns, closes what it names and re-arms one timer on its next deadline. Connections are
counted per source and in all under the caps of the SIP streams
(:class:`imsconf.transport.limits.Admission`); one beyond them is closed at once. TLS is
:class:`imsconf.app.tls_accept.TlsServer`, shared with BFCP: a client may present any certificate (a
self-signed one whose ``a=fingerprint`` it offered, RFC 4975 §14.4); the switch checks it. The answer
carries ``a=fingerprint`` only when the server certificate is self-signed (RFC 4975 §14.4)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterable
from pathlib import Path
from typing import cast

from cryptography import x509

from imsconf.focus.chat import FocusChat
from imsconf.focus.floor_feature import certificate_fingerprint
from imsconf.sdp.msrp import PROTO_MSRP, PROTO_MSRPS
from imsconf.transport.limits import Admission, StreamLimits, source_key

from .config import parse_msrp_listen
from .stream_listen import open_stream_listeners, serve_stream
from .tls_accept import TlsServer, tls_peer

__all__ = ["MsrpListeners", "self_signed", "start_msrp_listeners"]


def self_signed(der: bytes) -> bool:
    """The certificate names itself as its issuer (and so needs ``a=fingerprint`` in the answer)."""
    cert = x509.load_der_x509_certificate(der)
    return cert.issuer == cert.subject


class _Connection(asyncio.Protocol):
    def __init__(self, owner: MsrpListeners) -> None:
        self._owner = owner
        self._conn_id = -1

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._conn_id = self._owner.attach(cast(asyncio.Transport, transport))

    def data_received(self, data: bytes) -> None:
        self._owner.received(self._conn_id, data)

    def connection_lost(self, exc: Exception | None) -> None:
        self._owner.detach(self._conn_id)


class MsrpListeners:
    """The running MSRP listeners of a focus: one connection-id space for TLS and TCP."""

    def __init__(self, chat: FocusChat, admission: Admission | None = None) -> None:
        self.chat = chat
        self.admission = admission
        self._sources: dict[int, str] = {}  # conn id -> the source it is counted under
        self.bound: list[tuple[str, str, int]] = []  # ("msrp-tls" or "msrp-tcp", host, port)
        self._transports: dict[int, asyncio.Transport] = {}
        self._conn_ids = itertools.count(1)
        self._servers: list[asyncio.Server] = []
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    async def add(
        self,
        proto: str,
        host: str,
        port: int,
        *,
        advertise: str,
        tls: TlsServer | None = None,
    ) -> int:
        """Listen for ``proto`` and tell the switch to offer it at ``advertise``; returns the bound port."""
        fingerprint: tuple[str, str] | None = None
        if proto == PROTO_MSRPS:
            if tls is None:
                raise ValueError("TCP/TLS/MSRP needs the TLS server")
            if self_signed(tls.certificate_der):
                fingerprint = ("sha-256", certificate_fingerprint(tls.certificate_der))
        self._loop = asyncio.get_running_loop()
        server = await serve_stream(
            lambda: _Connection(self), host, port, tls if proto == PROTO_MSRPS else None
        )
        self._servers.append(server)
        bound = int(server.sockets[0].getsockname()[1])
        self.bound.append(("msrp-tls" if proto == PROTO_MSRPS else "msrp-tcp", host, bound))
        self.chat.set_listener(proto, advertise, bound, fingerprint=fingerprint)
        return bound

    def transmit(self) -> None:
        """Write what the switch produced (also its ``wake``: octets made outside an MSRP event)."""
        if self._closed:
            return
        for conn_id, data in self.chat.outputs():
            transport = self._transports.get(conn_id)
            if transport is not None and not transport.is_closing():
                transport.write(data)
        for conn_id in self.chat.connections_to_close():
            transport = self._transports.get(conn_id)
            if transport is not None:
                transport.close()
        self._arm_timer()

    def attach(self, transport: asyncio.Transport) -> int:
        """A new connection: its id, or -1 when it is over a cap (it is then closed)."""
        peer = transport.get_extra_info("peername")
        host = str(peer[0]) if isinstance(peer, tuple) and peer else None
        conn_id = next(self._conn_ids)
        if self.admission is not None:
            key = source_key(host) if host is not None else "?"
            if self.admission.admit(key, self._now()) is not None:
                transport.abort()
                return -1
            self._sources[conn_id] = key
        self._transports[conn_id] = transport
        self.chat.connection_made(conn_id, self._now())
        peer = tls_peer(transport)
        self.chat.peer_info(
            conn_id,
            tls=peer is not None,
            peer_cert=peer.certificate if peer is not None else None,
            peer_host=host,
            peer_cert_verified=peer is not None and peer.chain_verified,
        )
        self.transmit()
        return conn_id

    def received(self, conn_id: int, data: bytes) -> None:
        if conn_id not in self._transports:
            return
        self.chat.receive(conn_id, data, self._now())
        self.transmit()

    def detach(self, conn_id: int) -> None:
        if self._transports.pop(conn_id, None) is None:
            return
        key = self._sources.pop(conn_id, None)
        if self.admission is not None and key is not None:
            self.admission.release(key)
        self.chat.connection_lost(conn_id)
        self.transmit()

    async def close(self) -> None:
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        servers, self._servers = self._servers, []
        for server in servers:
            server.close()
        for transport in list(self._transports.values()):
            transport.close()
        for server in servers:
            await server.wait_closed()

    def _now(self) -> float:
        assert self._loop is not None
        return self._loop.time()

    def _arm_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        deadline = self.chat.next_deadline()
        if deadline is not None and self._loop is not None:
            self._timer = self._loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self.chat.handle_timer(self._now())
        self.transmit()


async def start_msrp_listeners(
    chat: FocusChat,
    listen: Iterable[str],
    *,
    media_host: str,
    cert: Path,
    key: Path,
    ca: Path,
    limits: StreamLimits | None = None,
) -> MsrpListeners:
    """The server runtime's MSRP: ``listen`` items as in the ``msrp_listen`` setting
    (:mod:`imsconf.app.stream_listen`); *limits*: the caps of the SIP streams, applied to MSRP
    connections (counted on their own)."""
    admission = Admission(limits.max_per_source, limits.total()) if limits is not None else None
    listeners = MsrpListeners(chat, admission)

    async def add(bind: str, port: int, advertise: str, tls: TlsServer | None) -> int:
        proto = PROTO_MSRPS if tls is not None else PROTO_MSRP
        return await listeners.add(proto, bind, port, advertise=advertise, tls=tls)

    await open_stream_listeners(
        listen, parse_msrp_listen, add, listeners.close, media_host=media_host, cert=cert, key=key, ca=ca
    )
    return listeners
