"""The runtime's BFCP: the TCP and TLS listeners of the focus's floors and their TLS context.

The floors themselves (:class:`imsconf.focus.floor_feature.FocusFloor`) are sans-I/O; this module opens the
sockets, reads the certificate files and drives the floors through
:class:`imsconf.floor.transport.BfcpTransport`.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterable
from pathlib import Path

from imsconf.floor.sdp import PROTO_TCP, PROTO_TLS
from imsconf.floor.transport import BfcpTransport
from imsconf.focus.floor_feature import FocusFloor, certificate_fingerprint

from .config import parse_bfcp_listen

__all__ = ["FloorListeners", "bfcp_ssl_context", "start_floor_listeners"]


def _peer_cert(transport: asyncio.Transport) -> bytes | None:
    ssl_object = transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    return bytes(der) if der else None


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
        self.floor.peer_info(
            conn_id,
            tls=transport.get_extra_info("ssl_object") is not None,
            peer_cert=_peer_cert(transport),
            peer_host=_peer_host(transport),
        )

    async def add(
        self,
        proto: str,
        host: str,
        port: int,
        *,
        advertise: str,
        ssl_context: ssl.SSLContext | None = None,
        certificate_der: bytes | None = None,
    ) -> int:
        """Listen for ``proto`` and tell the focus to offer it at ``advertise``; returns the bound port."""
        fingerprint: tuple[str, str] | None = None
        if proto == PROTO_TLS:
            if ssl_context is None or certificate_der is None:
                raise ValueError("TCP/TLS/BFCP needs an SSL context and the server certificate")
            fingerprint = ("sha-256", certificate_fingerprint(certificate_der))
        bound = await self.adapter.start(host, port, ssl_context if proto == PROTO_TLS else None)
        self.bound.append(("bfcp-tls" if proto == PROTO_TLS else "bfcp-tcp", host, bound))
        self.floor.set_listener(proto, advertise, bound, fingerprint=fingerprint)
        return bound

    async def close(self) -> None:
        self._closed = True
        await self.adapter.close()


def bfcp_ssl_context(cert: Path, key: Path, ca: Path) -> tuple[ssl.SSLContext, bytes]:
    """The TLS server context for TCP/TLS/BFCP and the DER of its certificate (for ``a=fingerprint``).

    Clients may present a certificate (it is then matched against their ``a=fingerprint``); the standard
    library cannot accept a certificate without verifying its chain, so a client certificate must be issued
    by ``ca`` (the conference CA: ``imsconf`` issues them), a self-signed one fails the handshake.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    ctx.load_verify_locations(cafile=ca)
    ctx.verify_mode = ssl.CERT_OPTIONAL
    der = ssl.PEM_cert_to_DER_cert(cert.read_text())
    return ctx, der


async def start_floor_listeners(
    floor: FocusFloor,
    listen: Iterable[str],
    *,
    media_host: str,
    cert: Path,
    key: Path,
    ca: Path,
) -> FloorListeners:
    """The server runtime's BFCP: ``listen`` items as in the ``bfcp_listen`` setting (``"tcp"``, ``"tls"``,
    ``"tls:HOST:PORT"``; no host: the media host and an ephemeral port)."""
    listeners = FloorListeners(floor)
    try:
        for item in listen:
            transport, host, port = parse_bfcp_listen(item)
            bind = host or media_host
            advertise = media_host if bind in ("0.0.0.0", "::") else bind
            if transport == "tls":
                ctx, der = bfcp_ssl_context(cert, key, ca)
                await listeners.add(
                    PROTO_TLS, bind, port, advertise=advertise, ssl_context=ctx, certificate_der=der
                )
            else:
                await listeners.add(PROTO_TCP, bind, port, advertise=advertise)
    except BaseException:
        await listeners.close()
        raise
    return listeners
