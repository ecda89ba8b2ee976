"""Opening outbound TCP sockets, refusing a socket that connected to itself.

On loopback the kernel may pick the destination port as the source port when nothing listens on it;
the SYN then meets itself (TCP simultaneous open) and the socket is ESTABLISHED to itself.  Such a
socket reaches no peer and must never carry SIP: :func:`checked` closes it and raises
:class:`SelfConnectError`, a :class:`ConnectionRefusedError`, so the caller treats it as a refusal.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Protocol


class SelfConnectError(ConnectionRefusedError):
    """The socket's local and remote addresses are the same."""


class Connector(Protocol):
    """Opens a connected, non-blocking TCP socket to *host*:*port* (OSError when it cannot)."""

    async def __call__(self, host: str, port: int) -> socket.socket: ...


def is_self_connected(sock: socket.socket) -> bool:
    try:
        local = sock.getsockname()
        remote = sock.getpeername()
    except OSError:
        return False
    return bool(local[:2] == remote[:2])


def checked(sock: socket.socket) -> socket.socket:
    """*sock*, unless it is connected to itself: then it is closed and SelfConnectError raised."""
    if is_self_connected(sock):
        name = sock.getsockname()
        sock.close()
        raise SelfConnectError(f"socket connected to itself ({name[0]}:{name[1]})")
    return sock


async def open_tcp_socket(host: str, port: int) -> socket.socket:
    """The default :class:`Connector`: each address of *host* in turn."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    error: OSError = OSError(f"no address for {host}")
    for family, type_, proto, _name, addr in infos:
        sock = socket.socket(family, type_, proto)
        try:
            sock.setblocking(False)
            await loop.sock_connect(sock, addr)
        except OSError as exc:
            sock.close()
            error = exc
            continue
        except BaseException:  # cancelled (a timeout): the socket must not leak
            sock.close()
            raise
        return sock
    raise error
