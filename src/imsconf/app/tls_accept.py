"""The TLS server side of the focus's media-plane streams (TCP/TLS/MSRP, TCP/TLS/BFCP) on pyOpenSSL.

RFC 4975 §14.4 (and RFC 8856 for BFCP) lets a client authenticate with a self-signed certificate whose
fingerprint it put in its SDP ``a=fingerprint``: the handshake must accept any client certificate, and the
focus then compares the certificate with the SDP. The standard library cannot accept a certificate without
verifying its chain, so this module runs OpenSSL through pyOpenSSL on memory BIOs under an
:class:`asyncio.Protocol` over a plain TCP connection (docs/decisions/0020-pyopenssl-tls.md):

* :class:`TlsServer`: TLS 1.2 or later, the server certificate and key, ``VERIFY_PEER`` with a verify
  callback that lets every client certificate through (whether its chain verified against the conference
  CA is read after the handshake); ``handshake_timeout`` seconds for a connection to finish its handshake.
* :meth:`TlsServer.wrap` puts an application protocol (the MSRP or BFCP connection) behind TLS: that
  protocol's ``connection_made`` comes after the handshake, with a transport whose ``write`` encrypts,
  whose ``close`` sends close_notify, and whose ``get_extra_info("tls_peer")`` is a :class:`TlsPeer` (the
  client certificate's DER or None, and whether it chained to the CA); :func:`tls_peer` reads it.
  ``data_received`` gets the decrypted octets. A failed handshake, garbage instead of a ClientHello or
  a handshake over its time closes the TCP connection; the application never sees it.

Logs name the peer and the OpenSSL reason only; no key material, no certificate.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from OpenSSL import SSL
from OpenSSL import _util as _openssl  # the library pyOpenSSL binds: one verify callback of our own

__all__ = ["TlsPeer", "TlsServer", "tls_peer"]

log = logging.getLogger("imsconf.tls")

_READ = 65536
# TLS 1.2 suites with forward secrecy and AEAD only (TLS 1.3 suites are OpenSSL's defaults)
_CIPHERS_TLS12 = b"ECDHE+AESGCM:ECDHE+CHACHA20"


@dataclass(frozen=True, slots=True)
class TlsPeer:
    """What the handshake learnt of the client."""

    certificate: bytes | None  # the client certificate (DER), or None when it sent none
    chain_verified: bool  # that certificate chains to the conference CA (False without one)


def tls_peer(transport: asyncio.BaseTransport) -> TlsPeer | None:
    """The TLS peer of a transport given by :meth:`TlsServer.wrap`; None for a plain connection."""
    peer = transport.get_extra_info("tls_peer")
    return peer if isinstance(peer, TlsPeer) else None


# The verify callback is a ctypes closure, not pyOpenSSL's ``set_verify(mode, callback)``: that one is a
# cffi ``ffi.callback``, which needs memory both writable and executable and so fails to be made under the
# unit's MemoryDenyWriteExecute (the kernel's PR_SET_MDWE); ctypes closures come from libffi's static
# trampolines. It lets every certificate through; what verification found stays in the connection's
# verify result (``SSL_get_verify_result``: X509_V_OK only when no step of the chain failed).
_VERIFY_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_void_p)
_ACCEPT_ANY = _VERIFY_CALLBACK(lambda preverify_ok, store_ctx: 1)


def _request_any_client_certificate(ctx: SSL.Context) -> None:
    """VERIFY_PEER (the server asks for a certificate) with :data:`_ACCEPT_ANY` as the verify callback."""
    ctx.set_verify(SSL.VERIFY_PEER)  # pyOpenSSL's own state: verification on, no Python callback
    address = ctypes.cast(_ACCEPT_ANY, ctypes.c_void_p).value
    _openssl.lib.SSL_CTX_set_verify(
        ctx._context, SSL.VERIFY_PEER, _openssl.ffi.cast("int (*)(int, X509_STORE_CTX *)", address)
    )


def _chain_verified(conn: SSL.Connection) -> bool:
    """The peer's chain verified against the trusted CA (read after the handshake)."""
    return bool(_openssl.lib.SSL_get_verify_result(conn._ssl) == _openssl.lib.X509_V_OK)


class TlsServer:
    """A TLS server context for the media-plane listeners; see the module docstring."""

    def __init__(self, cert: Path, key: Path, ca: Path, *, handshake_timeout: float = 10.0) -> None:
        ctx = SSL.Context(SSL.TLS_SERVER_METHOD)
        ctx.set_min_proto_version(SSL.TLS1_2_VERSION)
        ctx.set_options(SSL.OP_NO_COMPRESSION | SSL.OP_NO_RENEGOTIATION)
        ctx.set_cipher_list(_CIPHERS_TLS12)
        ctx.use_certificate_chain_file(str(cert))
        ctx.use_privatekey_file(str(key))
        ctx.check_privatekey()
        ctx.load_verify_locations(str(ca))
        _request_any_client_certificate(ctx)
        ctx.set_session_id(b"imsconf-media")  # resumption with client certificates needs a context id
        self.context = ctx
        self.handshake_timeout = handshake_timeout
        leaf = x509.load_pem_x509_certificates(cert.read_bytes())[0]
        self.certificate_der = leaf.public_bytes(Encoding.DER)  # for a=fingerprint

    def wrap(self, inner: asyncio.Protocol) -> asyncio.Protocol:
        """The protocol for a new TCP connection: TLS, then *inner* over it."""
        return _TlsProtocol(self, inner)


class _TlsTransport(asyncio.Transport):
    """The application's side of a TLS connection."""

    def __init__(self, tls: _TlsProtocol, extra: dict[str, Any]) -> None:
        super().__init__(extra)
        self._tls = tls

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._tls.send(bytes(data))

    def close(self) -> None:
        self._tls.close()

    def abort(self) -> None:
        self._tls.abort()

    def is_closing(self) -> bool:
        return self._tls.closing

    def can_write_eof(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return self._tls.tcp_buffer_size()

    def pause_reading(self) -> None:
        self._tls.pause_reading()

    def resume_reading(self) -> None:
        self._tls.resume_reading()


class _TlsProtocol(asyncio.Protocol):
    """One TLS connection over a TCP transport: the handshake, then records both ways."""

    def __init__(self, server: TlsServer, inner: asyncio.Protocol) -> None:
        self._server = server
        self._inner = inner
        self._conn = SSL.Connection(server.context, None)
        self._conn.set_accept_state()
        self._tcp: asyncio.Transport | None = None
        self._app: _TlsTransport | None = None  # set when the handshake is done
        self._timer: asyncio.TimerHandle | None = None
        self._peer = "?"
        self.closing = False

    # ---- the TCP side ----------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._tcp = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and len(peer) >= 2:
            self._peer = f"{peer[0]}:{peer[1]}"
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self._server.handshake_timeout, self._handshake_expired)

    def data_received(self, data: bytes) -> None:
        if self._tcp is None or self.closing:
            return
        self._conn.bio_write(data)
        if self._app is None and not self._handshake():
            return
        self._read_records()

    def eof_received(self) -> bool | None:
        return None  # a TCP FIN without close_notify: the connection is closed

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self._cancel_timer()
        if self._app is not None:
            self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self._app is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._app is not None:
            self._inner.resume_writing()

    # ---- the application side --------------------------------------------------------------------------
    def send(self, data: bytes) -> None:
        if self.closing or not data:
            return
        try:
            self._conn.sendall(data)
        except SSL.Error as exc:
            self._fail("send", exc)
            return
        self._flush()

    def close(self) -> None:
        """close_notify, then the TCP connection closes once its buffer is written."""
        if self.closing or self._tcp is None:
            return
        self.closing = True
        try:
            self._conn.shutdown()
        except SSL.Error:
            pass
        self._flush()
        self._tcp.close()

    def abort(self) -> None:
        self.closing = True
        if self._tcp is not None:
            self._tcp.abort()

    def tcp_buffer_size(self) -> int:
        return self._tcp.get_write_buffer_size() if self._tcp is not None else 0

    def pause_reading(self) -> None:
        if self._tcp is not None:
            self._tcp.pause_reading()

    def resume_reading(self) -> None:
        if self._tcp is not None:
            self._tcp.resume_reading()

    # ---- internals -------------------------------------------------------------------------------------
    def _handshake(self) -> bool:
        """Go on with the handshake; True once it is done (the application then has the connection)."""
        try:
            self._conn.do_handshake()
        except SSL.WantReadError:
            self._flush()
            return False
        except SSL.Error as exc:
            self._fail("handshake", exc)
            return False
        self._flush()
        self._cancel_timer()
        assert self._tcp is not None
        der: bytes | None = None
        cert = self._conn.get_peer_certificate(as_cryptography=True)
        if cert is not None:
            der = cert.public_bytes(Encoding.DER)
        peer = TlsPeer(der, der is not None and _chain_verified(self._conn))
        extra = {
            "peername": self._tcp.get_extra_info("peername"),
            "sockname": self._tcp.get_extra_info("sockname"),
            "tls_peer": peer,
            "tls_version": self._conn.get_protocol_version_name(),
            "cipher": self._conn.get_cipher_name(),
        }
        self._app = _TlsTransport(self, extra)
        log.debug(
            "event=tls_accepted peer=%s version=%s client_cert=%s chain_verified=%s",
            self._peer,
            extra["tls_version"],
            der is not None,
            peer.chain_verified,
        )
        self._inner.connection_made(self._app)
        return not self.closing

    def _read_records(self) -> None:
        chunks: list[bytes] = []
        peer_closed = False
        while True:
            try:
                chunks.append(self._conn.recv(_READ))
            except SSL.WantReadError:
                break
            except SSL.ZeroReturnError:  # the peer's close_notify
                peer_closed = True
                break
            except SSL.Error as exc:
                if chunks:
                    self._inner.data_received(b"".join(chunks))
                self._fail("read", exc)
                return
        if chunks and not self.closing:
            self._inner.data_received(b"".join(chunks))
        if peer_closed:
            self.close()
        else:
            self._flush()  # e.g. TLS 1.3 session tickets, key updates

    def _flush(self) -> None:
        if self._tcp is None or self._tcp.is_closing():
            return
        out: list[bytes] = []
        while True:
            try:
                chunk = self._conn.bio_read(_READ)
            except SSL.WantReadError:
                break
            out.append(chunk)
            if len(chunk) < _READ:  # a memory BIO gives all it has: it is empty now
                break
        if out:
            self._tcp.write(b"".join(out))

    def _fail(self, stage: str, exc: SSL.Error) -> None:
        log.info("event=tls_failed peer=%s stage=%s reason=%s", self._peer, stage, _reason(exc))
        self.closing = True
        self._cancel_timer()
        if self._tcp is not None:
            self._flush()  # the alert OpenSSL left, if any
            self._tcp.close()

    def _handshake_expired(self) -> None:
        self._timer = None
        if self._app is None and self._tcp is not None:
            log.info("event=tls_failed peer=%s stage=handshake reason=timeout", self._peer)
            self.abort()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def _reason(exc: SSL.Error) -> str:
    """OpenSSL's reason strings (library, function, reason): no data of the connection."""
    parts = []
    for item in exc.args[0] if exc.args and isinstance(exc.args[0], list) else ():
        if isinstance(item, tuple) and item:
            parts.append(str(item[-1]))
    return ",".join(parts) or type(exc).__name__
