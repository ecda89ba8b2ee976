"""``imsconf mixer``: the MRFP in its own process, controlled by the focus over mutual TLS."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import signal
import ssl
import sys
from pathlib import Path

from imsconf.media.engine import MediaEngine
from imsconf.media.remote import RemoteMediaControl
from imsconf.media.udp import UdpMediaTransport

from .config import Settings, parse_hostport
from .heap import realtime_priority, settle_heap
from .pki import PkiPaths, client_ssl_context, ensure_dev_pki, issue_cert, server_ssl_context

log = logging.getLogger("imsconf.mixer")

DEFAULT_MIXER = "127.0.0.1:7100"


def ensure_cert(
    pki: PkiPaths, name: str, *, client: bool, hostnames: list[str] | None = None
) -> tuple[Path, Path]:
    """The certificate *name* issued by the conference CA, made on first use and never replaced."""
    cert, key = pki.directory / f"{name}.pem", pki.directory / f"{name}.key"
    if cert.exists() and key.exists():
        return cert, key
    return issue_cert(pki, name, pki.directory, client=client, hostnames=hostnames)


def mixer_server_context(pki: PkiPaths, host: str) -> object:
    cert, key = ensure_cert(pki, "mixer", client=False, hostnames=sorted({host, "localhost", "127.0.0.1"}))
    paths = dataclasses.replace(pki, server_cert=cert, server_key=key)
    return server_ssl_context(paths, require_client_cert=True)


def focus_client_context(pki: PkiPaths) -> object:
    cert, key = ensure_cert(pki, "focus", client=True)
    return client_ssl_context(pki.ca_cert, cert, key)


async def connect_mixer(settings: Settings, timeout: float = 5.0) -> RemoteMediaControl:
    """The focus side: the channel to the mixer named by ``settings.mixer``, kept up from now on.

    The server may start before its mixer: when the first attempt is refused or times out, the server logs
    that it waits (``event=mixer_waiting``) and the channel keeps trying (``RemoteMediaControl``:
    backoff 0.5 s doubling to 5 s); until then new calls get 503 with Retry-After.  A mixer that fails the
    TLS handshake (not from the conference CA) stops the start: ``ssl.SSLError`` is raised."""
    assert settings.mixer is not None
    host, port = parse_hostport(settings.mixer, what="mixer")
    pki = ensure_dev_pki(Path(settings.data_dir), [settings.domain])
    ctx = focus_client_context(pki)
    assert isinstance(ctx, ssl.SSLContext)
    control = RemoteMediaControl()
    try:
        await control.connect(host, port, ctx, timeout)
    except ssl.SSLError:
        raise
    except (OSError, TimeoutError) as exc:
        log.warning(
            "event=mixer_waiting mixer=%s error=%s ready=false (the server starts; calls get 503 until the "
            "mixer is connected)",
            settings.mixer,
            exc.__class__.__name__,
        )
    control.keep_connected(host, port, ctx, timeout)
    return control


async def run_mixer(settings: Settings, listen: str | None = None) -> int:
    from imsconf.media.mixer_server import MixerControlServer

    host, port = parse_hostport(listen or settings.mixer or DEFAULT_MIXER, what="mixer")
    data_dir = Path(settings.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    pki = ensure_dev_pki(data_dir, [settings.domain])
    ctx = mixer_server_context(pki, host)
    engine = MediaEngine(allow_plain_rtp=settings.allow_plain_rtp)
    lo, hi = settings.rtp_port_range
    transport = UdpMediaTransport(engine, settings.media_host, lo, hi)
    mixer = MixerControlServer.build(engine, transport)
    transport.start()
    try:
        server = await asyncio.start_server(mixer.handle, host, port, ssl=ctx, limit=65536)
    except OSError as exc:
        print(f"imsconf mixer: cannot listen on {host}:{port}: {exc}", file=sys.stderr)
        return 1
    bound = server.sockets[0].getsockname()
    print(f"mixer listening tls {bound[0]}:{bound[1]} (mutual TLS, conference CA)", flush=True)
    print(f"media {settings.media_host} udp {lo}-{hi}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    settle_heap()
    realtime_priority(settings.media_realtime_priority)
    await stop.wait()
    log.info("event=mixer_stopping")
    server.close()  # no new focus connections
    await mixer.close()  # the focus connections end, their legs are released
    transport.close()
    with contextlib.suppress(TimeoutError, OSError):
        await asyncio.wait_for(server.wait_closed(), 1.0)
    log.info("event=mixer_stopped")
    return 0
