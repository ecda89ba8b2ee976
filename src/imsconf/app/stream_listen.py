"""The listeners of the focus's media-plane streams (MSRP, BFCP): one way to open them from the settings.

``msrp_listen`` and ``bfcp_listen`` items read the same (``"tls"``, ``"tcp"``, ``"tls:HOST:PORT"``; no
host: the media host and an ephemeral port); a listener bound to a wildcard address is advertised at the
media host. TLS listeners share one :class:`~imsconf.app.tls_accept.TlsServer` (the server certificate,
client certificates of any issuer, checked by the focus against ``a=fingerprint``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path

from .tls_accept import TlsServer

__all__ = ["AddListener", "open_stream_listeners", "serve_stream"]

# (bind host, port, advertised host, the TLS server or None for plain TCP) -> the bound port
AddListener = Callable[[str, int, str, TlsServer | None], Awaitable[int]]


async def open_stream_listeners(
    listen: Iterable[str],
    parse: Callable[[str], tuple[str, str | None, int]],
    add: AddListener,
    close: Callable[[], Awaitable[None]],
    *,
    media_host: str,
    cert: Path,
    key: Path,
    ca: Path,
) -> None:
    """Open each item of *listen* (as read by *parse*) through *add*; on a failure, *close* and raise."""
    tls: TlsServer | None = None
    try:
        for item in listen:
            transport, host, port = parse(item)
            bind = host or media_host
            advertise = media_host if bind in ("0.0.0.0", "::") else bind
            if transport == "tls":
                if tls is None:
                    tls = TlsServer(cert, key, ca)
                await add(bind, port, advertise, tls)
            else:
                await add(bind, port, advertise, None)
    except BaseException:
        await close()
        raise


async def serve_stream(
    factory: Callable[[], asyncio.Protocol], host: str, port: int, tls: TlsServer | None
) -> asyncio.Server:
    """A TCP server of *factory*'s connections, behind *tls* when given."""
    loop = asyncio.get_running_loop()
    if tls is None:
        return await loop.create_server(factory, host, port)
    return await loop.create_server(lambda: tls.wrap(factory()), host, port)
