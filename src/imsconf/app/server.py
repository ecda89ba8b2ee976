"""The server runtime: settings → PKI, users, transports, SIP endpoint, application; signals; shutdown."""

from __future__ import annotations

import asyncio
import logging
import ssl
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry

from imsconf.booking.backend import BookingStorage
from imsconf.floor.server import Policy
from imsconf.focus.admin import ConferenceAdmin
from imsconf.focus.claims import Claimer
from imsconf.focus.config import FocusConfig
from imsconf.focus.core import Focus
from imsconf.focus.messaging import MESSAGE_TYPES
from imsconf.focus.planned import BookingSource, PlannedConfig, PlannedOptions, Refreshed
from imsconf.focus.routing import Locator
from imsconf.focus.windows import WindowOptions, WindowSource
from imsconf.keys.policy import DownlinkMode, RekeyPolicy
from imsconf.media.codecs import available as available_codecs
from imsconf.media.control import MediaControl
from imsconf.media.engine import MediaEngine
from imsconf.media.remote import RemoteMediaControl
from imsconf.media.udp import UdpMediaTransport, local_media
from imsconf.registrar.core import Registrar, RegistrarConfig
from imsconf.sip.endpoint import CHALLENGED_METHODS, Application, AuthThrottle, EndpointConfig, SipEndpoint
from imsconf.sip.errors import SipParseError
from imsconf.sip.identity import TrustedPeers
from imsconf.sip.message import Request, Response
from imsconf.sip.overload import Admission, OverloadConfig
from imsconf.sip.peer import Peer
from imsconf.sip.screening import Capabilities
from imsconf.store.users import UserBackend
from imsconf.transport.limits import StreamLimits
from imsconf.transport.manager import Receiver, TransportManager
from imsconf.usage.records import NullUsageSink, UsageSink

from .admin import FocusAdmin
from .bfcp import FloorListeners, start_floor_listeners
from .booking_index import IndexedBookingStore, IndexRefresher
from .config import Settings
from .directory import DirectoryClaims, open_claims
from .dispatch import RegistrarService, SipDispatcher
from .focus_wiring import FocusOptions, assemble_focus
from .heap import HeapKeeper, realtime_priority, release_heap, settle_heap
from .lifecycle import Lifecycle
from .loadwatch import LoadWatch
from .memtrace import install_memtrace
from .metrics import build_registry
from .mixer import connect_mixer
from .mixer_pool import SpawnedMixers, start_mixers
from .msrp import MsrpListeners, start_msrp_listeners
from .pins import ExecutorPinChecker
from .pki import PkiPaths, client_ssl_context, ensure_dev_pki, server_ssl_context
from .registrations import BindingWriter
from .reload import Reloader
from .stores import Stores, describe, open_stores
from .systemd import ServiceNotifier
from .usage import UsageWriter
from .users import authenticator_for

if TYPE_CHECKING:  # the web stack is imported when the operator plane is on (http): a second less per start
    from imsconf.web.server import WebServer
    from imsconf.web.usage import UsageReader

log = logging.getLogger("imsconf.server")

USAGE_CLOSE_SECONDS = 0.5  # what writing the queued usage records may add to the shutdown
MIXERS_READY_SECONDS = 15.0  # how long the start waits for the first of its own mixers before READY=1


def _heap_release(media: UdpMediaTransport | None) -> Callable[[], None]:
    """What the heap keeper does once a load has passed: the in-process mixer gives back the slot rows
    the load grew, then the heap is released (:func:`.heap.release_heap`)."""

    def release() -> None:
        if media is not None:
            media.engine.compact()
        release_heap()

    return release


class EndpointDriver(Receiver):
    """Feeds the sans-I/O endpoint from the transports and flushes what it wants sent; one timer."""

    def __init__(self, endpoint: SipEndpoint, *, release: Callable[[], None] = release_heap) -> None:
        self.endpoint = endpoint
        self.transports: TransportManager | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._loop = asyncio.get_running_loop()
        # transactions end on timers: each firing looks whether a load has passed
        self.heap = HeapKeeper(release)
        # the event loop's load for the call budget (imsconf.sip.overload), SIP work measured here
        self.load = LoadWatch(self._loop, endpoint.config.admission)

    def now(self) -> float:
        return self._loop.time()

    def receive_datagram(self, data: bytes, peer: Peer) -> None:
        started = time.thread_time()
        if self.endpoint.receive_datagram(data, peer, self.now()):
            # answered without state (a flooding source's refusal): no timer to look at, and its cost
            # is shed load, which a smaller call budget would not lower (imsconf.app.loadwatch)
            self._send_outbox()
            self.load.shed(time.thread_time() - started)
            return
        self.flush()
        self.load.spent(time.thread_time() - started)

    def receive_message(self, msg: Request | Response, peer: Peer) -> None:
        started = time.thread_time()
        self.endpoint.receive_message(msg, peer, self.now())
        self.flush()
        self.load.spent(time.thread_time() - started)

    def receive_stream_error(self, error: SipParseError, peer: Peer) -> None:
        self.endpoint.receive_stream_error(error, peer, self.now())
        self.flush()

    def connect_failed(self, peer: Peer) -> None:
        self.endpoint.connect_failed(peer, self.now())
        self.flush()

    def flush(self) -> None:
        self._send_outbox()
        self._rearm()

    def _send_outbox(self) -> None:
        assert self.transports is not None
        for data, peer in self.endpoint.take_outbox():
            self.transports.send(data, peer)

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
        started = time.thread_time()
        self._timer = None
        self._timer_at = None
        try:
            self.endpoint.handle_timer(self.now())
        except Exception:
            log.exception("event=timer_error")
        self.flush()
        self.heap.observe(len(self.endpoint.layer))
        self.load.spent(time.thread_time() - started)

    def close(self) -> None:
        self.load.close()
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
    mixers: SpawnedMixers | None = None  # the mixer processes this server started (settings.mixers)
    bound: list[tuple[str, str, int]] = field(default_factory=list)
    bookings: BookingStorage | None = None
    http: WebServer | None = None  # the operator plane: API, console, metrics, health
    floor: FloorListeners | None = None  # BFCP (TCP/TLS) listeners of the focus
    chat: MsrpListeners | None = None  # MSRP (TLS, TCP if allowed) listeners of the focus's chat switch
    refresher: IndexRefresher | None = None  # keeps the focus's booking index current
    registrar: Registrar | None = None  # when this server is the registrar (settings.registrar)
    registrations: BindingWriter | None = None  # the registrar's bindings on disk
    claims: DirectoryClaims | None = None  # booked URIs claimed in the cluster's directory (a cluster node)
    users: UserBackend | None = None  # read again on SIGHUP (its lookups re-read a changed file anyway)
    usage: UsageWriter | None = None  # the usage sink: records of ended legs/conferences to the store
    stores: Stores | None = None  # every store of this node (app.stores: SQLite files or PostgreSQL)
    metrics_registry: CollectorRegistry | None = None  # the Prometheus collectors (app.metrics)
    admin: FocusAdmin | None = None  # live conference control (imsconf.focus.admin.ConferenceAdmin)
    listening: bool = False  # every listener is up (start_server is through)
    stopping: bool = False  # the drain of a SIGTERM has begun

    @property
    def ready(self) -> bool:
        """Able to take new calls: the mixer runs in this process, or the separate one is connected, or
        at least one of the mixers this server started is."""
        if self.mixers is not None:
            return self.mixers.pool.ready
        return self.remote is None or self.remote.ready

    def serving(self) -> bool:
        """What ``/health/ready`` answers: every listener up, the mixer ready, not draining."""
        return self.listening and self.ready and not self.stopping

    async def close(self) -> None:
        if self.http is not None:
            await self.http.close()
        if self.refresher is not None:
            await self.refresher.close()
        if self.floor is not None:
            await self.floor.close()
        if self.chat is not None:
            await self.chat.close()
        if self.bookings is not None:
            self.bookings.close()
        self.driver.close()
        if self.registrations is not None:
            await self.registrations.close()
        if self.claims is not None:
            await self.claims.close()
        if self.usage is not None:
            await asyncio.to_thread(self.usage.close, USAGE_CLOSE_SECONDS)
        if self.stores is not None:  # bookings, bindings and usage were closed by their users above
            self.stores.users.close()
            self.stores.directory.close()
        if self.media is not None:
            self.media.close()
        if self.remote is not None:
            await self.remote.close()
        if self.mixers is not None:
            await self.mixers.close()
        await self.transports.close()


def build_capabilities(*, registrar: bool = False) -> Capabilities:
    """What the endpoint advertises; with *registrar* also REGISTER (and Path, RFC 3327)."""
    allow = (
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
        "MESSAGE",
    )
    supported = ("timer", "recipient-list-invite", "norefersub", "100rel", "precondition")
    return Capabilities(
        allow=(*allow, "REGISTER") if registrar else allow,
        supported=(*supported, "path") if registrar else supported,
        accept=(
            "application/sdp",
            "application/resource-lists+xml",
            "multipart/mixed",
            "message/sipfrag",
            *MESSAGE_TYPES,
        ),
    )


def build_focus(
    settings: Settings,
    control: MediaControl | None = None,
    *,
    bookings: BookingSource | None = None,
    windows: WindowSource | None = None,
    refresh: Callable[[Callable[[Refreshed], None]], None] | None = None,
    loop: asyncio.AbstractEventLoop | None = None,
    wake: Callable[[], None] | None = None,
    floor_wake: Callable[[], None] | None = None,
    chat_wake: Callable[[], None] | None = None,
    wall_clock_offset: float = 0.0,
    locator: Locator | None = None,
    usage: UsageSink | None = None,
    claims: Claimer | None = None,
) -> tuple[Focus, UdpMediaTransport | None]:
    """The focus over the in-process mixer (default) or over *control* (a separate mixer process); with
    *bookings* it serves booked conferences (PIN checks off *loop*), with *windows* too their windows
    (dial-out at the start, the close at the end); *wake* is the runtime's flush, *floor_wake* the BFCP
    listeners' transmit, *chat_wake* the MSRP listeners'; *locator* the registrar's bindings for dial-out;
    *usage* takes the usage records of ended legs and conferences; *claims* claims booked URIs."""
    media: UdpMediaTransport | None = None
    if control is None:
        engine = MediaEngine(allow_plain_rtp=settings.allow_plain_rtp)
        lo, hi = settings.rtp_port_range
        control, media = local_media(engine, settings.media_host, lo, hi)
    config = FocusConfig(
        domain=settings.domain,
        host=settings.focus_host,
        node_id=settings.node_id,
        factory_user=settings.factory_user,
        allow_plain_rtp=settings.allow_plain_rtp,
        allow_sdes_over_insecure=settings.allow_sdes_over_udp,
        media_host=settings.media_host,
        allow_insecure_subscriptions=settings.allow_insecure_subscriptions,
        outbound_proxy=settings.outbound_proxy,
        allow_insecure_messages=settings.allow_insecure_messages,
        max_message_bytes=settings.max_message_bytes,
        # the codecs this installation can run (G.711 always); none of the named ones: G.711
        audio_codecs=tuple(c for c in settings.audio_codecs if c in available_codecs()) or ("PCMU", "PCMA"),
        runnable_codecs=available_codecs(),
    )
    planned = None
    if bookings is not None:
        pins = ExecutorPinChecker(loop) if loop is not None else None
        front = TrustedPeers.parse(settings.front_peers)
        lobby = PlannedConfig(
            pin_timeout=settings.pin_timeout_seconds, max_pin_attempts=settings.pin_attempts
        )
        planned = PlannedOptions(
            bookings, pins=pins, refresh=refresh, claims=claims, front=front, config=lobby
        )
    options = FocusOptions(
        planned=planned,
        windows=WindowOptions(windows) if windows is not None else None,
        downlink=DownlinkMode.parse(settings.downlink),
        rekey=RekeyPolicy.parse(settings.rekey),
        floor_policy=Policy(settings.bfcp_policy),
        floor_wake=floor_wake,
        wall_clock_offset=wall_clock_offset,
        locator=locator,
        usage=usage if usage is not None else NullUsageSink(),
        chat_history=settings.chat_history,
        chat_max_message=settings.chat_max_message,
        allow_plain_msrp=settings.allow_plain_msrp,
        chat_wake=chat_wake,
    )
    return assemble_focus(config, control, options, wake=wake), media


def registrar_config(settings: Settings, *, authenticated: bool) -> RegistrarConfig:
    """The registrar's settings: it serves the domain (and the realm and listen hosts, which phones
    configured by address put in their AoRs)."""
    domains = {settings.domain.lower(), settings.realm.lower()}
    domains |= {listen.host.lower() for listen in settings.listen if listen.host not in ("0.0.0.0", "::")}
    return RegistrarConfig(
        domains=frozenset(domains),
        min_expires=settings.register_min_expires,
        max_expires=settings.register_max_expires,
        default_expires=settings.register_default_expires,
        max_bindings=settings.register_max_bindings,
        require_auth=authenticated,
    )


async def start_server(settings: Settings, app: Application | None = None) -> Server:
    data_dir = Path(settings.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    pki = ensure_dev_pki(data_dir, [settings.domain, *([settings.focus_host] if settings.focus_host else [])])
    loop = asyncio.get_running_loop()
    # every store by settings.store (one place decides the backend); a bad file or an unreachable
    # PostgreSQL stops the start early
    stores = await loop.run_in_executor(None, open_stores, settings)
    log.info("event=stores_opened store=%s", describe(settings))
    try:
        # booked conferences: dial-in works with or without --http; the focus reads an in-memory index
        bookings = await loop.run_in_executor(None, IndexedBookingStore, stores.bookings)
    except BaseException:
        stores.close()
        raise
    users = stores.users
    authenticator = authenticator_for(settings, users)
    # the usage sink (records of ended legs and conferences)
    usage = UsageWriter(stores.usage).start()
    media: UdpMediaTransport | None = None
    focus: Focus | None = None
    remote: RemoteMediaControl | None = None
    mixers: SpawnedMixers | None = None
    bookings.publish_on(loop)
    refresher = IndexRefresher(bookings)
    claims = open_claims(settings, stores.directory)  # a cluster node claims booked URIs in the directory
    driver: EndpointDriver | None = None

    floor_listeners: FloorListeners | None = None

    def wake() -> None:  # work for the focus that arrives without a SIP event (mixer, BFCP, PIN checks)
        if driver is not None:
            driver.flush()

    def floor_wake() -> None:  # BFCP messages the floors made outside a BFCP event
        if floor_listeners is not None:
            floor_listeners.transmit()

    chat_listeners: MsrpListeners | None = None

    def chat_wake() -> None:  # MSRP octets and closes the chat made outside an MSRP event
        if chat_listeners is not None:
            chat_listeners.transmit()

    registrar: Registrar | None = None
    registrations: BindingWriter | None = None
    if settings.registrar_enabled:
        registrations = BindingWriter(stores.bindings, loop)
        registrar = Registrar(
            registrar_config(settings, authenticated=authenticator is not None),
            await registrations.load(),
            now=loop.time(),
        )

    if app is None:
        if settings.mixer is not None:  # kept connected from here on; the start does not wait for it
            remote = await connect_mixer(settings)
        elif settings.mixers is not None:  # our own mixer processes; the start does not wait for them
            mixers = await start_mixers(settings)
        focus, media = build_focus(
            settings,
            mixers.pool if mixers is not None else remote,
            bookings=bookings.index,
            windows=bookings.index,
            refresh=refresher.refresh,
            loop=loop,
            wake=wake,
            floor_wake=floor_wake,
            chat_wake=chat_wake,
            wall_clock_offset=time.time() - loop.time(),  # the driver's clock is the loop's
            locator=registrar,
            usage=usage,
            claims=claims,
        )
        app = focus
        if media is not None:
            media.start()
    challenged = CHALLENGED_METHODS
    if registrar is not None and registrations is not None:
        app = SipDispatcher(app, RegistrarService(registrar, registrations.submit, registrations.unavailable))
        challenged = CHALLENGED_METHODS | {"REGISTER"}
    throttle = AuthThrottle(max_failures=settings.auth_max_failures, block=settings.auth_block_seconds)
    trusted = TrustedPeers.parse(settings.trusted_peers)
    admission = Admission(
        OverloadConfig(
            invite_rate=settings.sip_call_rate,
            invite_burst=max(1.0, settings.sip_call_rate / 2),
            source_rate=settings.sip_source_rate,
            # two seconds' worth: a caller under its rate that catches up after a stall (SIPp sends what
            # it owes at once; a starved loop takes a second or two of datagrams in one go) is not marked
            source_burst=max(1.0, 2 * settings.sip_source_rate),
            # a new source (or one whose mark lapsed) starts with a twentieth of that (a tenth of a second's
            # worth): a flood that starts is marked after a few dozen INVITEs, not after a burst of calls
            source_start=0.05,
            flood_hold=settings.sip_flood_hold,
            # a cut after two high windows in a row (one late timer is not a load), and a lag counts only
            # when the loop's thread ran for half the window (otherwise it waited for a core)
            cut_after=2,
            starved_cpu=0.5,
            # a cut may take the budget down to a fortieth of its ceiling (20/s of the default 800/s): a
            # loop that is saturated must be able to refuse below the rate that arrives, or joins pile up
            invite_floor=settings.sip_call_rate / 40,
        ),
        exempt=lambda host: trusted.trusts(Peer("udp", host, 0)),  # an S-CSCF carries many users
    )
    caps = build_capabilities(registrar=registrar is not None)
    config = EndpointConfig(
        caps=caps, throttle=throttle, challenged_methods=challenged, admission=admission, trusted=trusted
    )
    endpoint = SipEndpoint(config, app, authenticator)
    driver = EndpointDriver(endpoint, release=_heap_release(media))
    driver.load.start()
    limits = StreamLimits.from_settings(settings)
    transports = TransportManager(
        driver,
        server_ssl=server_ssl_context(pki),
        client_ssl=client_ssl_context(pki.ca_cert),
        limits=limits,
    )
    driver.transports = transports
    server = Server(settings, pki, endpoint, driver, transports, media, focus, remote, mixers)
    server.users = users
    server.stores = stores
    server.bookings = bookings
    server.refresher = refresher
    server.registrar = registrar
    server.registrations = registrations
    server.claims = claims
    server.usage = usage
    server.metrics_registry = build_registry(server)
    if focus is not None:  # the operator's commands run on this loop, then the runtime flushes
        server.admin = FocusAdmin(focus, endpoint, driver.now, driver.flush)
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
        if focus is not None and focus.chat is not None and settings.msrp_listen:
            server.chat = chat_listeners = await start_msrp_listeners(
                focus.chat,
                settings.msrp_listen,
                media_host=settings.media_host,
                cert=pki.server_cert,
                key=pki.server_key,
                ca=pki.ca_cert,
                limits=limits,
            )
            server.bound += server.chat.bound
        if settings.http is not None:
            tls = server_ssl_context(pki) if settings.http_tls else None
            server.http = await start_web_listener(
                settings,
                bookings,
                ready=server.serving,
                admin=server.admin,
                registry=server.metrics_registry,
                usage=server.usage.backend if server.usage is not None else None,
                ssl_context=tls,
            )
            server.bound.append(("https" if tls is not None else "http", *server.http.address))
    except OSError:
        await server.close()
        raise
    driver.flush()  # arm the application's first deadline (a booked window may be due without any call)
    server.listening = True
    return server


async def start_web_listener(
    settings: Settings,
    bookings: BookingStorage,
    *,
    ready: Callable[[], bool],
    admin: ConferenceAdmin | None = None,
    registry: CollectorRegistry | None = None,
    usage: UsageReader | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> WebServer:
    """The operator plane on ``settings.http``: the tokens of the data directory (made on first start),
    the booking store, live conference control over the focus, the metrics registry and the usage
    records; ``/health/ready`` follows *ready* (the runtime passes :meth:`Server.serving`)."""
    from imsconf.web.auth import TOKEN_FILE, VIEWER_TOKEN_FILE, Tokens
    from imsconf.web.deps import BookingBackend, WebDeps
    from imsconf.web.server import start_web

    address = settings.http_address
    assert address is not None
    deps = WebDeps(
        tokens=Tokens.ensure(settings.data_dir),
        bookings=BookingBackend(bookings, settings.domain, reserved_users=(settings.factory_user,)),
        admin=admin,
        registry=registry,
        metrics_auth=settings.metrics_auth,
        usage=usage,
        ready=ready,
    )
    web = await start_web(deps, *address, ssl_context=ssl_context)
    log.info(
        "event=http_listening address=%s:%d tls=%s token_file=%s viewer_token_file=%s",
        address[0],
        web.address[1],
        str(ssl_context is not None).lower(),
        Path(settings.data_dir) / TOKEN_FILE,
        Path(settings.data_dir) / VIEWER_TOKEN_FILE,
    )
    return web


async def run_server(
    settings: Settings, *, config_file: Path | None = None, overrides: Mapping[str, Any] | None = None
) -> int:
    """Start, serve until SIGTERM/SIGINT (SIGHUP re-reads *config_file* with the command line's *overrides*
    on top, :mod:`.reload`), drain and stop (:mod:`.lifecycle`); the exit code."""
    try:
        server = await start_server(settings)
    except (OSError, TimeoutError, ssl.SSLError) as exc:
        # cannot listen, or the separate mixer cannot be reached / refused our certificate
        print(f"imsconf: cannot start: {exc.__class__.__name__}: {exc}", file=sys.stderr)
        return 1
    notifier = ServiceNotifier()
    life = Lifecycle(server, notifier, Reloader(server, notifier, config_file, overrides))
    life.install(asyncio.get_running_loop())
    install_memtrace(asyncio.get_running_loop(), settings.data_dir)  # opt-in (IMSCONF_TRACEMALLOC=1)
    settle_heap()  # after the signal handlers: everything built so far lives as long as the process
    if settings.mixer is None and settings.mixers is None:  # the mixer runs in this process
        realtime_priority(settings.media_realtime_priority)
    # ready (systemd, /health/ready) once one of our own mixers is connected
    if server.mixers is not None and not await server.mixers.wait_ready(MIXERS_READY_SECONDS):
        log.warning("event=mixers_waiting ready=false (calls get 503 until a mixer is connected)")
    for transport, host, port in server.bound:
        shown = f"[{host}]" if ":" in host else host
        print(f"listening {transport} {shown}:{port}", flush=True)
    for transport, host, port in server.bound:
        if transport in ("http", "https"):
            from imsconf.web.auth import TOKEN_FILE, VIEWER_TOKEN_FILE

            shown = f"[{host}]" if ":" in host else host
            data_dir = Path(settings.data_dir)
            print(f"console {transport}://{shown}:{port}/", flush=True)
            print(f"api token {data_dir / TOKEN_FILE} (viewer: {data_dir / VIEWER_TOKEN_FILE})", flush=True)
    print(f"conference factory {settings.factory_uri}", flush=True)
    log.info(
        "event=started domain=%s auth=%s registrar=%s",
        settings.domain,
        settings.auth,
        "on" if server.registrar is not None else "off",
    )
    notifier.ready(f"serving {settings.factory_uri}")
    return await life.run()
