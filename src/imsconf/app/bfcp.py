"""The runtime's BFCP: the TCP and TLS listeners of the focus's floors.

The floors themselves (:class:`imsconf.focus.floor_feature.FocusFloor`) are sans-I/O; this module opens the
sockets and drives the floors through :class:`imsconf.floor.transport.BfcpTransport`. TLS is
:class:`imsconf.app.tls_accept.TlsServer` (shared with MSRP): a client may present any certificate, the
floors match it against the ``a=fingerprint`` of its offer (RFC 8856 §4, a self-signed one included).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from pathlib import Path

from imsconf.floor.sdp import PROTO_TCP, PROTO_TLS
from imsconf.floor.transport import BfcpTransport
from imsconf.focus.floor_feature import FocusFloor, certificate_fingerprint

from .config import parse_bfcp_listen
from .stream_listen import open_stream_listeners
from .tls_accept import TlsServer, tls_peer

__all__ = ["FloorListeners", "start_floor_listeners"]


def _peer_host(transport: asyncio.Transport) -> str | None:
    peer = transport.get_extra_info("peername")
    return str(peer[0]) if isinstance(peer, tuple) and peer else None


class FloorListeners:
    """The running BFCP listeners of a focus (TCP and/or TLS): one adapter, so one connection-id space."""

    def __init__(self, floor: FocusFloor) -> None:
        self.floor = floor
        self.adapter = BfcpTransport(floor, on_connection=self._on_connection)
        self.bound: list[tuple[str, str, int]] = []  # ("bfcp-tcp" or "bfcp-tls", host, port)
        self._closed = False

    def transmit(self) -> None:
        """Send what the floors produced outside a BFCP event (the floors' ``wake``)."""
        if not self._closed:
            self.adapter.transmit()

    def _on_connection(self, conn_id: int, transport: asyncio.Transport) -> None:
        """Tell the floors whether a new connection is TLS, its client certificate and its host."""
        peer = tls_peer(transport)
        self.floor.peer_info(
            conn_id,
            tls=peer is not None,
            peer_cert=peer.certificate if peer is not None else None,
            peer_host=_peer_host(transport),
        )

    async def add(
        self, proto: str, host: str, port: int, *, advertise: str, tls: TlsServer | None = None
    ) -> int:
        """Listen for ``proto`` and tell the focus to offer it at ``advertise``; returns the bound port."""
        fingerprint: tuple[str, str] | None = None
        if proto == PROTO_TLS:
            if tls is None:
                raise ValueError("TCP/TLS/BFCP needs the TLS server")
            fingerprint = ("sha-256", certificate_fingerprint(tls.certificate_der))
            bound = await self.adapter.start(host, port, wrap=tls.wrap)
        else:
            bound = await self.adapter.start(host, port)
        self.bound.append(("bfcp-tls" if proto == PROTO_TLS else "bfcp-tcp", host, bound))
        self.floor.set_listener(proto, advertise, bound, fingerprint=fingerprint)
        return bound

    async def close(self) -> None:
        self._closed = True
        await self.adapter.close()


async def start_floor_listeners(
    floor: FocusFloor,
    listen: Iterable[str],
    *,
    media_host: str,
    cert: Path,
    key: Path,
    ca: Path,
) -> FloorListeners:
    """The server runtime's BFCP: ``listen`` items as in the ``bfcp_listen`` setting
    (:mod:`imsconf.app.stream_listen`)."""
    listeners = FloorListeners(floor)

    async def add(bind: str, port: int, advertise: str, tls: TlsServer | None) -> int:
        proto = PROTO_TLS if tls is not None else PROTO_TCP
        return await listeners.add(proto, bind, port, advertise=advertise, tls=tls)

    await open_stream_listeners(
        listen, parse_bfcp_listen, add, listeners.close, media_host=media_host, cert=cert, key=key, ca=ca
    )
    return listeners
