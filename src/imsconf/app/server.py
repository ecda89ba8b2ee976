"""The server runtime: settings → PKI, users, transports, SIP endpoint, application; signals; shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import signal
import ssl
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from imsconf.booking.http import BookingApi, start_http
from imsconf.booking.store import DB_NAME, BookingStore
from imsconf.floor.server import Policy
from imsconf.focus.core import Focus, FocusConfig
from imsconf.focus.planned import BookingSource, PlannedOptions
from imsconf.keys.policy import DownlinkMode, RekeyPolicy
from imsconf.media.control import MediaControl
from imsconf.media.engine import MediaEngine
from imsconf.media.remote import RemoteMediaControl
from imsconf.media.udp import UdpMediaTransport, local_media
from imsconf.sip.auth import DigestAuthenticator
from imsconf.sip.endpoint import Application, AuthThrottle, EndpointConfig, SipEndpoint
from imsconf.sip.errors import SipParseError
from imsconf.sip.identity import TrustedPeers
from imsconf.sip.message import Request, Response
from imsconf.sip.peer import Peer
from imsconf.sip.screening import Capabilities
from imsconf.transport.manager import Receiver, TransportManager

from .bfcp import FloorListeners, start_floor_listeners
from .booking_index import IndexedBookingStore, IndexRefresher
from .config import Settings
from .focus_wiring import FocusOptions, assemble_focus
from .heap import realtime_priority, settle_heap
from .mixer import connect_mixer
from .pins import ExecutorPinChecker
from .pki import PkiPaths, client_ssl_context, ensure_dev_pki, server_ssl_context
from .users import UserStore

log = logging.getLogger("imsconf.server")


class EndpointDriver(Receiver):
    """Feeds the sans-I/O endpoint from the transports and flushes what it wants sent; one timer."""

    def __init__(self, endpoint: SipEndpoint) -> None:
        self.endpoint = endpoint
        self.transports: TransportManager | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._loop = asyncio.get_running_loop()

    def now(self) -> float:
        return self._loop.time()

    def receive_datagram(self, data: bytes, peer: Peer) -> None:
        self.endpoint.receive_datagram(data, peer, self.now())
        self.flush()

    def receive_message(self, msg: Request | Response, peer: Peer) -> None:
        self.endpoint.receive_message(msg, peer, self.now())
        self.flush()

    def receive_stream_error(self, error: SipParseError, peer: Peer) -> None:
        self.endpoint.receive_stream_error(error, peer, self.now())
        self.flush()

    def connect_failed(self, peer: Peer) -> None:
        self.endpoint.connect_failed(peer, self.now())
        self.flush()

    def flush(self) -> None:
        assert self.transports is not None
        for data, peer in self.endpoint.take_outbox():
            self.transports.send(data, peer)
        self._rearm()

    def _rearm(self) -> None:
        deadline = self.endpoint.next_deadline()
        if deadline == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = deadline
        if deadline is not None:
            self._timer = self._loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        try:
            self.endpoint.handle_timer(self.now())
        except Exception:
            log.exception("event=timer_error")
        self.flush()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()


@dataclass
class Server:
    settings: Settings
    pki: PkiPaths
    endpoint: SipEndpoint
    driver: EndpointDriver
    transports: TransportManager
    media: UdpMediaTransport | None = None
    focus: Focus | None = None
    remote: RemoteMediaControl | None = None
    bound: list[tuple[str, str, int]] = field(default_factory=list)
    bookings: BookingStore | None = None
    http: BookingApi | None = None
    floor: FloorListeners | None = None  # BFCP (TCP/TLS) listeners of the focus
    refresher: IndexRefresher | None = None  # keeps the focus's booking index current

    async def close(self) -> None:
        if self.http is not None:
            await self.http.close()
        if self.refresher is not None:
            await self.refresher.close()
        if self.floor is not None:
            await self.floor.close()
        if self.bookings is not None:
            self.bookings.close()
        self.driver.close()
        if self.media is not None:
            self.media.close()
        if self.remote is not None:
            await self.remote.close()
        await self.transports.close()


def build_capabilities() -> Capabilities:
    return Capabilities(
        allow=(
            "INVITE",
            "ACK",
            "BYE",
            "CANCEL",
            "OPTIONS",
            "UPDATE",
            "INFO",
            "REFER",
            "SUBSCRIBE",
            "NOTIFY",
            "PRACK",
        ),
        supported=("timer", "recipient-list-invite", "norefersub", "100rel", "precondition"),
        accept=(
            "application/sdp",
            "application/resource-lists+xml",
            "multipart/mixed",
            "message/sipfrag",
        ),
    )


def build_focus(
    settings: Settings,
    control: MediaControl | None = None,
    *,
    bookings: BookingSource | None = None,
    refresh: Callable[[Callable[[], None]], None] | None = None,
    loop: asyncio.AbstractEventLoop | None = None,
    wake: Callable[[], None] | None = None,
    floor_wake: Callable[[], None] | None = None,
    wall_clock_offset: float = 0.0,
) -> tuple[Focus, UdpMediaTransport | None]:
    """The focus over the in-process mixer (default) or over *control* (a separate mixer process); with
    *bookings* it serves booked conferences (PIN checks off *loop*); *wake* is the runtime's flush,
    *floor_wake* the BFCP listeners' transmit."""
    media: UdpMediaTransport | None = None
    if control is None:
        engine = MediaEngine(allow_plain_rtp=settings.allow_plain_rtp)
        lo, hi = settings.rtp_port_range
        control, media = local_media(engine, settings.media_host, lo, hi)
    config = FocusConfig(
        domain=settings.domain,
        host=settings.focus_host,
        factory_user=settings.factory_user,
        allow_plain_rtp=settings.allow_plain_rtp,
        allow_sdes_over_insecure=settings.allow_sdes_over_udp,
        media_host=settings.media_host,
        allow_insecure_subscriptions=settings.allow_insecure_subscriptions,
        outbound_proxy=settings.outbound_proxy,
    )
    planned = None
    if bookings is not None:
        pins = ExecutorPinChecker(loop) if loop is not None else None
        planned = PlannedOptions(bookings, pins=pins, refresh=refresh)
    options = FocusOptions(
        planned=planned,
        downlink=DownlinkMode.parse(settings.downlink),
        rekey=RekeyPolicy.parse(settings.rekey),
        floor_policy=Policy(settings.bfcp_policy),
        floor_wake=floor_wake,
        wall_clock_offset=wall_clock_offset,
    )
    return assemble_focus(config, control, options, wake=wake), media


async def start_server(settings: Settings, app: Application | None = None) -> Server:
    data_dir = Path(settings.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    pki = ensure_dev_pki(data_dir, [settings.domain])
    authenticator: DigestAuthenticator | None = None
    if settings.auth == "digest":
        users = UserStore(data_dir / "users.json")
        authenticator = DigestAuthenticator(
            settings.realm, users.ha1, secrets.token_bytes(32), algorithms=settings.digest_algorithms
        )
    media: UdpMediaTransport | None = None
    focus: Focus | None = None
    remote: RemoteMediaControl | None = None
    loop = asyncio.get_running_loop()
    # booked conferences: dial-in works with or without --http; the focus reads an in-memory index
    bookings = IndexedBookingStore(data_dir / DB_NAME)
    bookings.publish_on(loop)
    refresher = IndexRefresher(bookings)
    driver: EndpointDriver | None = None

    floor_listeners: FloorListeners | None = None

    def wake() -> None:  # work for the focus that arrives without a SIP event (mixer, BFCP, PIN checks)
        if driver is not None:
            driver.flush()

    def floor_wake() -> None:  # BFCP messages the floors made outside a BFCP event
        if floor_listeners is not None:
            floor_listeners.transmit()

    if app is None:
        if settings.mixer is not None:
            remote = await connect_mixer(settings)
            log.info("event=mixer_connected mixer=%s", settings.mixer)
        focus, media = build_focus(
            settings,
            remote,
            bookings=bookings.index,
            refresh=refresher.refresh,
            loop=loop,
            wake=wake,
            floor_wake=floor_wake,
            wall_clock_offset=time.time() - loop.time(),  # the driver's clock is the loop's
        )
        app = focus
        if media is not None:
            media.start()
    throttle = AuthThrottle(max_failures=settings.auth_max_failures, block=settings.auth_block_seconds)
    trusted = TrustedPeers.parse(settings.trusted_peers)
    endpoint = SipEndpoint(
        EndpointConfig(caps=build_capabilities(), throttle=throttle, trusted=trusted), app, authenticator
    )
    driver = EndpointDriver(endpoint)
    transports = TransportManager(
        driver, server_ssl=server_ssl_context(pki), client_ssl=client_ssl_context(pki.ca_cert)
    )
    driver.transports = transports
    server = Server(settings, pki, endpoint, driver, transports, media, focus, remote)
    server.bookings = bookings
    server.refresher = refresher
    refresher.start()
    try:
        for listen in settings.listen:
            host, port = await transports.listen(listen.transport, listen.host, listen.port)
            endpoint.config.local.setdefault(listen.transport, (host, port))
            server.bound.append((listen.transport, host, port))
        if focus is not None and settings.bfcp_listen:
            server.floor = floor_listeners = await start_floor_listeners(
                focus.floor,
                settings.bfcp_listen,
                media_host=settings.media_host,
                cert=pki.server_cert,
                key=pki.server_key,
                ca=pki.ca_cert,
            )
            server.bound += server.floor.bound
        if settings.http is not None:
            server.http = await start_http(settings, server.bookings)
            server.bound.append(("http", *server.http.address))
    except OSError:
        await server.close()
        raise
    return server


async def run_server(settings: Settings) -> int:
    try:
        server = await start_server(settings)
    except (OSError, TimeoutError, ssl.SSLError) as exc:
        # cannot listen, or the separate mixer cannot be reached / refused our certificate
        print(f"imsconf: cannot start: {exc.__class__.__name__}: {exc}", file=sys.stderr)
        return 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    settle_heap()  # after the signal handlers: everything built so far lives as long as the process
    if settings.mixer is None:  # the mixer runs in this process
        realtime_priority(settings.media_realtime_priority)
    for transport, host, port in server.bound:
        shown = f"[{host}]" if ":" in host else host
        print(f"listening {transport} {shown}:{port}", flush=True)
    print(f"conference factory {settings.factory_uri}", flush=True)
    log.info("event=started domain=%s auth=%s", settings.domain, settings.auth)
    await stop.wait()
    log.info("event=stopping")
    try:
        await asyncio.wait_for(server.close(), 1.5)
    except TimeoutError:
        log.warning("event=shutdown_timeout")
    log.info("event=stopped counters=%s", dict(sorted(server.endpoint.counters.items())))
    return 0
