"""Settings: defaults, then a TOML file, then command-line overrides.

TOML keys are the field names of :class:`Settings`, at top level::

    domain = "example.com"
    listen = ["udp:0.0.0.0:5060", "tls:[::]:5061"]
    data_dir = "/var/lib/imsconf"     # relative paths are relative to the config file
    rtp_port_range = [20000, 29999]

An unknown key is an error naming the key, never silently ignored.

A running server re-reads its file on SIGHUP (:func:`reload_plan`): the settings in
:data:`RELOADABLE` take effect at once (for new calls and conferences), every other change is named as
needing a restart and keeps its old value.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

from imsconf.focus.config import NODE_ID_RE
from imsconf.focus.media_session import OFFER_CODECS
from imsconf.sdp.codecs import SUPPORTED
from imsconf.sip.grammar import USER_RE

__all__ = [
    "RELOADABLE",
    "Listen",
    "ReloadPlan",
    "Settings",
    "load_settings",
    "parse_bfcp_listen",
    "parse_hostport",
    "parse_listen",
    "parse_msrp_listen",
    "reload_plan",
]

Transport = Literal["udp", "tcp", "tls"]
_TRANSPORTS: tuple[Transport, ...] = ("udp", "tcp", "tls")
_DEFAULT_PORTS: dict[str, int] = {"udp": 5060, "tcp": 5060, "tls": 5061}
_LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
_HOSTNAME_RE = re.compile(
    r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?"
)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_host(host: str, what: str) -> str:
    if not host:
        raise ValueError(f"{what}: empty host")
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        pass
    if len(host) > 253 or not _HOSTNAME_RE.fullmatch(host):
        raise ValueError(f"{what}: {host!r} is neither an IP address nor a host name")
    return host


def parse_hostport(text: str, default_port: int | None = None, *, what: str = "address") -> tuple[str, int]:
    """``HOST:PORT`` / ``[IPv6]:PORT`` (PORT optional when *default_port* is given) -> (host, port)."""
    text = text.strip()
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError(f"{what} {text!r}: missing ']' after the IPv6 address")
        host, rest = text[1:end], text[end + 1 :]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{what} {text!r}: {host!r} is not an IPv6 address") from None
        if rest and not rest.startswith(":"):
            raise ValueError(f"{what} {text!r}: expected ':PORT' after ']'")
        port_text = rest[1:] if rest else None
    else:
        if text.count(":") > 1:
            raise ValueError(f"{what} {text!r}: put an IPv6 address in brackets, as in [::1]:5060")
        host, sep, port_text_ = text.partition(":")
        port_text = port_text_ if sep else None
        _check_host(host, f"{what} {text!r}")
    if port_text is None:
        if default_port is None:
            raise ValueError(f"{what} {text!r}: missing ':PORT'")
        return host, default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"{what} {text!r}: port must be a number from 1 to 65535")
    return host, int(port_text)


@dataclass(frozen=True, slots=True)
class Listen:
    transport: Transport
    host: str
    port: int

    def __post_init__(self) -> None:
        if self.transport not in _TRANSPORTS:
            raise ValueError(f"transport must be one of {', '.join(_TRANSPORTS)}, not {self.transport!r}")
        if not 0 < self.port < 65536:
            raise ValueError(f"port {self.port} out of range")

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.transport}:{host}:{self.port}"


def parse_listen(text: str) -> Listen:
    """``"tls:127.0.0.1:5061"``, ``"udp:[::1]:5060"``, ``"tcp:0.0.0.0"`` (default port 5060, 5061 for tls)."""
    if not isinstance(text, str):
        raise ValueError(f"listen address must be a string like 'udp:127.0.0.1:5060', not {text!r}")
    transport, sep, rest = text.strip().partition(":")
    transport = transport.lower()
    if not sep or transport not in _TRANSPORTS:
        raise ValueError(
            f"listen address {text!r}: must start with a transport (udp:, tcp: or tls:), "
            "as in 'tls:127.0.0.1:5061'"
        )
    host, port = parse_hostport(rest, _DEFAULT_PORTS[transport], what=f"listen address {text!r}:")
    return Listen(transport, host, port)


def parse_bfcp_listen(text: str) -> tuple[str, str | None, int]:
    """``"tls"``, ``"tcp:127.0.0.1:5070"`` -> (transport, host or None for the media host, port; 0: any)."""
    return _parse_stream_listen("bfcp_listen", text, "tls:127.0.0.1:5070")


def parse_msrp_listen(text: str) -> tuple[str, str | None, int]:
    """``"tls"``, ``"tls:127.0.0.1:2855"``, ``"tcp"`` -> (transport, host or None for the media host,
    port; 0: any)."""
    return _parse_stream_listen("msrp_listen", text, "tls:127.0.0.1:2855")


def _parse_stream_listen(setting: str, text: str, example: str) -> tuple[str, str | None, int]:
    """An item of a media-plane stream's listeners (``bfcp_listen``, ``msrp_listen``): ``tcp`` or ``tls``,
    alone or with ``:HOST:PORT``."""
    transport, sep, rest = text.strip().partition(":")
    if transport.lower() not in ("tcp", "tls"):
        raise ValueError(f"{setting} {text!r}: must be tcp or tls, as in {example!r}")
    if not sep:
        return transport.lower(), None, 0
    host, _, port = rest.rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"{setting} {text!r}: expected {transport}:HOST:PORT")
    return transport.lower(), _check_host(host, f"{setting} {text!r}"), int(port)


def _default_listen() -> tuple[Listen, ...]:
    return (
        Listen("udp", "127.0.0.1", 5060),
        Listen("tcp", "127.0.0.1", 5060),
        Listen("tls", "127.0.0.1", 5061),
    )


@dataclass(frozen=True, slots=True)
class Settings:
    domain: str = "localhost"
    # the host of conference URIs, which is also the focus's Contact (with the listener's port) and the
    # entity of the conference documents: a name that resolves to this server, or its address; empty: the
    # domain
    focus_host: str = ""
    # this node id behind a proxy that routes by it (docs/decisions/0018-kamailio-front.md):
    # lower-case letters and digits; ad hoc conference URIs become conf-<node_id>-<random>; empty: none
    node_id: str = ""
    listen: tuple[Listen, ...] = field(default_factory=_default_listen)
    data_dir: Path = Path("./var")
    auth: Literal["digest", "none"] = "digest"
    realm: str = ""  # empty: the domain (filled in by __post_init__)
    factory_user: str = "conference-factory"
    require_tls_for_sdes: bool = True
    allow_plain_rtp: bool = False
    allow_sdes_over_udp: bool = False
    # RFC 4575 NOTIFYs over unencrypted SIP; None: follows allow_sdes_over_udp
    allow_insecure_subscriptions: bool | None = None
    # conference instant messages (MESSAGE, RFC 3428) over unencrypted SIP; the body cap in bytes (413)
    allow_insecure_messages: bool = False
    max_message_bytes: int = 8192
    rtp_port_range: tuple[int, int] = (20000, 29999)
    media_host: str = "127.0.0.1"
    log_level: str = "info"
    # "HOST:PORT" of the operator plane (the HTTP API, the console, metrics, health); "off" (None) for none.
    # Plain HTTP carries the API token in clear: an address that is not loopback needs http_tls (the
    # server's certificate, from DATA_DIR/pki) or, knowingly, http_allow_plain.
    http: str | None = "127.0.0.1:8080"
    http_tls: bool = False
    http_allow_plain: bool = False
    # /metrics needs either API token; false: open to anyone who reaches the listener (a scraper on a
    # trusted network)
    metrics_auth: bool = True
    # digest algorithms offered, preferred first (RFC 8760 §2.4); legacy MD5-only clients that answer the
    # first challenge they see (SIPp 3.6) need "MD5" first
    digest_algorithms: tuple[str, ...] = ("SHA-256", "MD5")
    # audio codecs, preferred first: AMR-WB, Opus, G722, PCMU, PCMA, AMR (imsconf.sdp.codecs). The answer
    # takes the first one the offer carries with an a=fmtp we can honour; dial-outs offer them in this
    # order. Those whose library this installation lacks are left out (G.711 is always there).
    audio_codecs: tuple[str, ...] = OFFER_CODECS
    # "HOST:PORT" of a separate `imsconf mixer` (mutual TLS); None: the mixer runs in process
    mixer: str | None = None
    # `imsconf mixer` processes the server starts beside the focus, on loopback (mutual TLS, the dev PKI),
    # each pinned to its own core: a number, or "auto" (one per core the server may run on); None: the
    # mixer named by `mixer`, or the in-process one. A conference lives on one of them, placed by load.
    mixers: int | Literal["auto"] | None = None
    # digest brute force: this many wrong credentials from one host within 60 s block it for this long
    auth_max_failures: int = 5
    auth_block_seconds: float = 60.0
    # BFCP floor control (RFC 8855/8856) listeners: "tcp" / "tls", optionally ":HOST:PORT" (default: the
    # media host, an ephemeral port: the SDP answer carries it); empty for no BFCP
    bfcp_listen: tuple[str, ...] = ("tcp", "tls")
    bfcp_policy: Literal["chair", "auto"] = "chair"  # chair-controlled floors, or first-come grant
    # session-mode IM (MSRP, RFC 4975/7701) listeners: "tls", or "tcp" with allow_plain_msrp, optionally
    # ":HOST:PORT" (default: the media host, an ephemeral port: the SDP answer's a=path carries it); empty
    # for no chat. chat_history: messages replayed to a late joiner; chat_max_message: the largest
    # message (octets, all chunks) the switch puts together and relays
    msrp_listen: tuple[str, ...] = ("tls",)
    allow_plain_msrp: bool = False
    chat_history: int = 20
    chat_max_message: int = 256 * 1024
    # downlink keying (docs/security-evaluation.md) for unbooked conferences: "per-participant" or "group";
    # rekey policy: on-join, on-leave, both, interval:T or never (imsconf.keys.policy)
    downlink: str = "per-participant"
    rekey: str = "both"
    # real-time round-robin priority (1-99) for the process that runs the mixer, as `chrt -r`: other
    # threads and kernel work on the core then cannot hold a 20 ms tick back. 0: ordinary scheduling.
    # Needs CAP_SYS_NICE (or root); without it the process says so and runs on.
    media_realtime_priority: int = 0
    # SIP over TCP/TLS (docs/decisions/0006-sip-connection-limits.md): concurrent inbound connections per
    # source (an IPv4 address, an IPv6 /64) and in all, inbound and outbound (0: derived from RLIMIT_NOFILE,
    # a third of it after 64 reserved, the rest left to RTP/RTCP); a connection beyond a cap is closed at once
    sip_max_connections_per_source: int = 64
    sip_max_connections: int = 0
    # an inbound connection that has carried no complete SIP message is closed this long after it opened
    # (or after its last keep-alive); one that has, this long after its last message (RFC 5626 CRLF
    # keep-alives count as activity)
    sip_idle_unused_seconds: float = 32.0
    sip_idle_seconds: float = 300.0
    # overload (imsconf.sip.overload): new calls per second the server takes on, and new out-of-dialog
    # requests per second from one source address; beyond either, a stateless 503 with Retry-After
    # (0: no limit). The call rate is a ceiling: the budget follows the event loop's measured load below
    # it. A source over its rate is marked flooding: all its new out-of-dialog requests get the 503 until
    # it has stayed under the rate for sip_flood_hold seconds (docs/decisions/0006-sip-connection-limits.md)
    sip_call_rate: float = 800.0
    sip_source_rate: float = 250.0
    sip_flood_hold: float = 1.0
    # the S-CSCF / proxy every request the focus originates goes through, as a SIP URI
    # ("sip:scscf.example.com:5060;lr"); None: requests go to the host of their target
    outbound_proxy: str | None = None
    # the SIP registrar (RFC 3261 §10) for standalone deployments, with no S-CSCF in front: "on", "off", or
    # "auto" (on unless outbound_proxy is set); bindings persist in DATA_DIR/registrations.sqlite3
    registrar: Literal["auto", "on", "off"] = "auto"
    # the allocator of Python's small objects in `imsconf serve`: "malloc" (glibc's, whose free pages the
    # heap keeper hands back after a load, so RSS returns near its start) or "pymalloc" (CPython's own,
    # some 10-20 % cheaper per call but holding every arena a peak touched); docs/decisions/0012
    python_allocator: Literal["malloc", "pymalloc"] = "malloc"
    # REGISTER expiry bounds, seconds: shorter non-zero requests get 423 (Min-Expires), longer ones are cut
    # to the maximum; the default applies when neither the Contact nor an Expires header gives one
    register_min_expires: int = 60
    register_max_expires: int = 3600
    register_default_expires: int = 3600
    register_max_bindings: int = 10  # contacts per address of record
    # on SIGTERM: how long to wait for the answers to the BYEs and final NOTIFYs of the calls and
    # subscriptions being ended before the process exits anyway
    drain_seconds: float = 2.0
    # the PIN lobby of booked conferences: how long a caller has for each attempt (restarted by every key)
    # and how many failed attempts (wrong or timed out) end the call with a BYE
    pin_timeout_seconds: float = 10.0
    pin_attempts: int = 3
    # RFC 3325 trust domain: IP addresses / networks (the S-CSCF) whose P-Asserted-Identity is the caller's
    # authenticated identity and whose requests get no digest challenge; from anyone else the header is
    # removed. By address only: the transports do not hand the peer's TLS certificate to the SIP core.
    trusted_peers: tuple[str, ...] = ()
    # the cluster front's addresses (its nodes' side, docs/decisions/0021-booked-uri-claims.md): from these
    # only is the front's takeover marker believed (a booked URI whose holder the front saw die is taken
    # over here at once); unlike trusted_peers no identity is believed and digest still applies
    front_peers: tuple[str, ...] = ()
    # where the shared state lives: "sqlite" (files in data_dir, one node) or a PostgreSQL DSN
    # "postgresql://user@host:port/db" shared by the nodes of a cluster (docs/decisions/0017-shared-store.md);
    # the DSN carries no password: it is read from store_password_file (mode 0600)
    store: str = "sqlite"
    store_password_file: Path | None = None

    def __post_init__(self) -> None:
        _check_host(self.domain, "domain")
        _check_store(self.store)
        if self.focus_host:
            _check_host(self.focus_host, "focus_host")
        if self.node_id and not NODE_ID_RE.match(self.node_id):
            raise ValueError(f"node_id: {self.node_id!r} must be 1-16 lower-case letters or digits")
        if not self.realm:
            object.__setattr__(self, "realm", self.domain)
        if any(c in self.realm for c in '"\\') or any(ord(c) < 0x20 for c in self.realm):
            raise ValueError("realm: quotes, backslashes and control characters are not allowed")
        if not self.listen:
            raise ValueError("listen: at least one listen address is needed")
        if self.auth not in ("digest", "none"):
            raise ValueError(f"auth must be 'digest' or 'none', not {self.auth!r}")
        if not USER_RE.match(self.factory_user):
            raise ValueError(f"factory_user: {self.factory_user!r} is not a valid SIP user part")
        lo, hi = self.rtp_port_range
        if not 1024 <= lo < hi <= 65535:
            raise ValueError(f"rtp_port_range: need 1024 <= low < high <= 65535, got {lo}..{hi}")
        _check_host(self.media_host, "media_host")
        if self.log_level not in _LOG_LEVELS:
            raise ValueError(f"log_level must be one of {', '.join(_LOG_LEVELS)}, not {self.log_level!r}")
        if self.http is not None:
            http_host, _ = parse_hostport(self.http, what="http")
            if not _is_loopback(http_host) and not (self.http_tls or self.http_allow_plain):
                raise ValueError(
                    f"http: {http_host} is not a loopback address, and plain HTTP would carry the API "
                    "token in clear: set http_tls = true (HTTPS with the server's certificate) or "
                    "http_allow_plain = true"
                )
        for item in self.bfcp_listen:
            parse_bfcp_listen(item)
        if self.bfcp_policy not in ("chair", "auto"):
            raise ValueError(f"bfcp_policy must be 'chair' or 'auto', not {self.bfcp_policy!r}")
        for item in self.msrp_listen:
            if parse_msrp_listen(item)[0] == "tcp" and not self.allow_plain_msrp:
                raise ValueError(f"msrp_listen {item!r}: plain TCP/MSRP needs allow_plain_msrp = true")
        if not 0 <= self.chat_history <= 1000:
            raise ValueError(f"chat_history must be 0 to 1000, not {self.chat_history}")
        if not 1024 <= self.chat_max_message <= 16 * 1024 * 1024:
            raise ValueError(f"chat_max_message must be 1024 to 16777216 octets, not {self.chat_max_message}")
        if not 0 <= self.drain_seconds <= 3600:
            raise ValueError(f"drain_seconds must be 0 to 3600, not {self.drain_seconds}")
        if not (1.0 <= self.pin_timeout_seconds <= 300.0):
            raise ValueError(f"pin_timeout_seconds must be 1 to 300, not {self.pin_timeout_seconds!r}")
        if isinstance(self.pin_attempts, bool) or not 1 <= self.pin_attempts <= 10:
            raise ValueError(f"pin_attempts must be 1 to 10, not {self.pin_attempts!r}")
        if not 0 <= self.media_realtime_priority <= 99:
            raise ValueError(f"media_realtime_priority must be 0 to 99, not {self.media_realtime_priority}")
        per_source, total = self.sip_max_connections_per_source, self.sip_max_connections
        if per_source < 1:
            raise ValueError(f"sip_max_connections_per_source must be at least 1, not {per_source}")
        if total < 0:
            raise ValueError(f"sip_max_connections must be 0 (derived) or more, not {total}")
        for name, seconds in (
            ("sip_idle_unused_seconds", self.sip_idle_unused_seconds),
            ("sip_idle_seconds", self.sip_idle_seconds),
        ):
            if not (seconds > 0 and math.isfinite(seconds)):
                raise ValueError(f"{name} must be a positive number of seconds, not {seconds!r}")
        for name, rate in (
            ("sip_call_rate", self.sip_call_rate),
            ("sip_source_rate", self.sip_source_rate),
            ("sip_flood_hold", self.sip_flood_hold),
        ):
            if not (rate >= 0 and math.isfinite(rate)):
                raise ValueError(f"{name} must be 0 or a positive number, not {rate!r}")
        from imsconf.keys.policy import DownlinkMode, RekeyPolicy

        DownlinkMode.parse(self.downlink)  # PolicySyntaxError is a ValueError naming the bad value
        RekeyPolicy.parse(self.rekey)
        if self.mixer is not None:
            parse_hostport(self.mixer, what="mixer")
        if self.mixers is not None:
            if self.mixer is not None:
                raise ValueError(
                    "mixer (one separate mixer) and mixers (mixers the server starts) exclude each other"
                )
            if self.mixers != "auto" and (isinstance(self.mixers, bool) or not 1 <= self.mixers <= 256):
                raise ValueError(f"mixers must be 'auto' or a number from 1 to 256, not {self.mixers!r}")
            lo, hi = self.rtp_port_range
            if (hi - lo + 1) // self.mixer_count < 8:
                raise ValueError(f"rtp_port_range {lo}..{hi} is too small for {self.mixer_count} mixers")
        if self.outbound_proxy is not None:
            _check_proxy_uri(self.outbound_proxy)
        if self.registrar not in ("auto", "on", "off"):
            raise ValueError(f"registrar must be 'auto', 'on' or 'off', not {self.registrar!r}")
        if self.python_allocator not in ("malloc", "pymalloc"):
            raise ValueError(
                f"python_allocator must be 'malloc' or 'pymalloc', not {self.python_allocator!r}"
            )
        if not 0 < self.register_min_expires <= self.register_default_expires <= self.register_max_expires:
            raise ValueError(
                "register_min_expires <= register_default_expires <= register_max_expires (all positive) "
                f"is needed, got {self.register_min_expires}, {self.register_default_expires}, "
                f"{self.register_max_expires}"
            )
        if self.register_max_bindings < 1:
            raise ValueError(f"register_max_bindings must be at least 1, not {self.register_max_bindings}")
        from imsconf.sip.identity import TrustedPeers

        TrustedPeers.parse(self.trusted_peers)  # ValueError naming the bad entry
        try:
            TrustedPeers.parse(self.front_peers)
        except ValueError as exc:
            raise ValueError(str(exc).replace("trusted_peers", "front_peers", 1)) from None
        if not self.audio_codecs or any(c not in SUPPORTED for c in self.audio_codecs):
            raise ValueError(f"audio_codecs: choose from {', '.join(SUPPORTED)}, got {self.audio_codecs!r}")
        if len(set(self.audio_codecs)) != len(self.audio_codecs):
            raise ValueError(f"audio_codecs: a codec is named twice in {self.audio_codecs!r}")
        known = ("SHA-256", "MD5", "SHA-512-256")
        if not self.digest_algorithms or any(a not in known for a in self.digest_algorithms):
            raise ValueError(
                f"digest_algorithms: choose from {', '.join(known)}, got {self.digest_algorithms!r}"
            )

    @property
    def factory_uri(self) -> str:
        """The conference factory PSI, ``sip:conference-factory@DOMAIN``."""
        host = f"[{self.domain}]" if ":" in self.domain else self.domain
        return f"sip:{self.factory_user}@{host}"

    @property
    def registrar_enabled(self) -> bool:
        """Whether this server is a registrar: "on", or "auto" without an outbound proxy."""
        return self.registrar == "on" or (self.registrar == "auto" and self.outbound_proxy is None)

    @property
    def mixer_count(self) -> int:
        """How many mixers the server starts (``mixers``; "auto": one per core it may run on); 0: none."""
        if self.mixers is None:
            return 0
        if self.mixers == "auto":
            return max(1, len(os.sched_getaffinity(0)))
        return self.mixers

    @property
    def http_address(self) -> tuple[str, int] | None:
        return None if self.http is None else parse_hostport(self.http, what="http")


def _check_proxy_uri(text: str) -> None:
    from imsconf.sip.errors import SipParseError
    from imsconf.sip.uri import SipUri

    try:
        uri = SipUri.parse(text.strip("<>"))
    except SipParseError as exc:
        raise ValueError(f"outbound_proxy: {text!r} is not a SIP URI ({exc.reason})") from None
    if uri.scheme not in ("sip", "sips") or not uri.host:
        raise ValueError(
            f"outbound_proxy: {text!r} must be a sip: or sips: URI, as in 'sip:scscf.example.com;lr'"
        )


_FIELDS = {f.name for f in fields(Settings)}


def _check_store(store: str) -> None:
    if store == "sqlite":
        return
    scheme, sep, rest = store.partition("://")
    if not sep or scheme not in ("postgresql", "postgres"):
        raise ValueError("store must be 'sqlite' or a DSN 'postgresql://user@host:port/db'")
    authority = rest.split("/", 1)[0]
    if ":" in authority.rpartition("@")[0]:
        raise ValueError("store: the DSN must not carry a password (set store_password_file)")


_BOOL_WORDS = {
    "true": True,
    "yes": True,
    "on": True,
    "1": True,
    "false": False,
    "no": False,
    "off": False,
    "0": False,
}


def _coerce(key: str, value: Any, base: Path | None) -> Any:
    """Turn a TOML or command-line value into the field's type; ValueError naming *key* otherwise."""

    def bad(expected: str) -> ValueError:
        return ValueError(f"setting {key!r}: expected {expected}, got {value!r}")

    if key == "listen":
        items = [value] if isinstance(value, str | Listen) else value
        if not isinstance(items, list | tuple):
            raise bad("a list of 'transport:host:port' strings")
        return tuple(v if isinstance(v, Listen) else parse_listen(v) for v in items)
    if key in ("data_dir", "store_password_file"):
        if not isinstance(value, str | Path):
            raise bad("a path")
        p = Path(value).expanduser()
        return base / p if base is not None and not p.is_absolute() else p
    if key in (
        "require_tls_for_sdes",
        "allow_plain_rtp",
        "allow_sdes_over_udp",
        "allow_insecure_subscriptions",
        "http_tls",
        "http_allow_plain",
        "metrics_auth",
        "allow_insecure_messages",
        "allow_plain_msrp",
    ):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in _BOOL_WORDS:
            return _BOOL_WORDS[value.lower()]
        raise bad("true or false")
    if key == "rtp_port_range":
        if isinstance(value, str):
            lo, sep, hi = value.partition("-")
            if not sep or not lo.strip().isdigit() or not hi.strip().isdigit():
                raise bad("LOW-HIGH")
            return (int(lo), int(hi))
        if (
            not isinstance(value, list | tuple)
            or len(value) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        ):
            raise bad("two port numbers [low, high]")
        return (value[0], value[1])
    if key == "digest_algorithms":
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list | tuple) or not all(isinstance(v, str) for v in items):
            raise bad("a list of algorithm names")
        return tuple(v.strip().upper() for v in items)
    if key == "audio_codecs":
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list | tuple) or not all(isinstance(v, str) for v in items):
            raise bad("a list of codec names")
        canonical = {n.upper(): n for n in SUPPORTED}
        return tuple(canonical.get(v.strip().upper(), v.strip()) for v in items)
    if key == "log_level":
        if not isinstance(value, str):
            raise bad("a level name")
        return value.lower()
    if key in ("auth_max_failures", "auth_block_seconds"):
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise bad("a positive number")
        return int(value) if key == "auth_max_failures" else float(value)
    if key == "max_message_bytes":
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65536:
            raise bad("a number of bytes from 1 to 65536")
        return value
    if key in ("sip_max_connections_per_source", "sip_max_connections"):
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise bad("a whole number of connections")
        return value
    if key in ("sip_call_rate", "sip_source_rate", "sip_flood_hold"):
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise bad("a number") from None
        if isinstance(value, bool) or not isinstance(value, int | float) or not (0 <= value < math.inf):
            raise bad("0 or a positive number")
        return float(value)
    if key in ("sip_idle_unused_seconds", "sip_idle_seconds", "drain_seconds", "pin_timeout_seconds"):
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise bad("a number of seconds") from None
        if key == "drain_seconds":
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 3600:
                raise bad("a number of seconds from 0 to 3600")
            return float(value)
        if key == "pin_timeout_seconds":
            if isinstance(value, bool) or not isinstance(value, int | float) or not 1 <= value <= 300:
                raise bad("a number of seconds from 1 to 300")
            return float(value)
        if isinstance(value, bool) or not isinstance(value, int | float) or not (0 < value < math.inf):
            raise bad("a positive number of seconds")
        return float(value)
    if key in ("register_min_expires", "register_max_expires", "register_default_expires",
               "register_max_bindings", "pin_attempts"):  # fmt: skip
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise bad("a positive whole number")
        return value
    if key == "python_allocator":
        if not isinstance(value, str) or value.lower() not in ("malloc", "pymalloc"):
            raise bad("'malloc' or 'pymalloc'")
        return value.lower()
    if key == "registrar":
        if isinstance(value, bool):
            return "on" if value else "off"
        if not isinstance(value, str) or value.lower() not in ("auto", "on", "off"):
            raise bad("'auto', 'on' or 'off'")
        return value.lower()
    if key == "media_realtime_priority":
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 99:
            raise bad("a priority from 0 (off) to 99")
        return value
    if key in ("chat_history", "chat_max_message"):
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise bad("a whole number")
        return value
    if key in ("bfcp_listen", "msrp_listen"):
        items = [v for v in value.split(",") if v.strip()] if isinstance(value, str) else value
        if not isinstance(items, list | tuple) or not all(isinstance(v, str) for v in items):
            raise bad("a list like ['tcp', 'tls:127.0.0.1:5070']")
        return tuple(v.strip() for v in items)
    if key == "mixers":
        if value is None or value == "" or value == 0:
            return None
        if isinstance(value, str) and value.strip().lower() == "auto":
            return "auto"
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise bad("a number of mixers or 'auto'")
        return value
    if key == "mixer":
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise bad("'HOST:PORT'")
        return value
    if key == "outbound_proxy":
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise bad("a SIP URI such as 'sip:scscf.example.com;lr'")
        return value.strip()
    if key in ("trusted_peers", "front_peers"):
        items = [v for v in value.split(",") if v.strip()] if isinstance(value, str) else value
        if not isinstance(items, list | tuple) or not all(isinstance(v, str) for v in items):
            raise bad("a list of IP addresses or networks, as in ['10.0.0.5', '192.0.2.0/24']")
        return tuple(v.strip() for v in items)
    if key == "http":
        if value is None or value is False or value == "" or (isinstance(value, str) and value == "off"):
            return None
        if not isinstance(value, str):
            raise bad("'HOST:PORT'")
        return value
    if not isinstance(value, str):
        raise bad("a string")
    return value


def load_settings(config_file: Path | None = None, overrides: Mapping[str, Any] | None = None) -> Settings:
    """Defaults, then *config_file* (TOML), then *overrides* (``None`` values mean "not given").

    ValueError names the offending key (and file) for unknown keys and bad values.
    """
    values: dict[str, Any] = {}
    if config_file is not None:
        config_file = Path(config_file)
        try:
            with config_file.open("rb") as f:
                doc = tomllib.load(f)
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{config_file}: invalid TOML: {exc}") from None
        base = config_file.resolve().parent
        for key, value in doc.items():
            if key not in _FIELDS:
                raise ValueError(f"{config_file}: unknown setting {key!r}")
            try:
                values[key] = _coerce(key, value, base)
            except ValueError as exc:
                raise ValueError(f"{config_file}: {exc}") from None
    for key, value in (overrides or {}).items():
        if key not in _FIELDS:
            raise ValueError(f"unknown setting {key!r}")
        if value is None:
            continue
        values[key] = _coerce(key, value, None)
    try:
        return Settings(**values)
    except ValueError as exc:
        where = f"{config_file}: " if config_file is not None else ""
        raise ValueError(f"{where}{exc}") from None


RELOADABLE: tuple[str, ...] = (
    "log_level",
    "auth",
    "realm",
    "digest_algorithms",
    "auth_max_failures",
    "auth_block_seconds",
    "downlink",
    "rekey",
    "drain_seconds",
)
"""The settings a running server takes from a re-read file (SIGHUP): logging, participant authentication,
the keying defaults of conferences created from then on, the drain time. Everything else (listen addresses,
the data directory, the mixer, the media ports, the domain...) is bound to sockets, files or parts built at
start-up and needs a restart."""


@dataclass(frozen=True, slots=True)
class ReloadPlan:
    """What a re-read file changes: the settings to run with, and the names of the fields that differ."""

    settings: Settings  # the old settings with the reloadable changes taken over
    changed: tuple[str, ...]  # reloadable fields whose value changed
    needs_restart: tuple[str, ...]  # other fields whose value changed: kept at their old value


def reload_plan(current: Settings, loaded: Settings) -> ReloadPlan:
    """Compare the running *current* settings with freshly *loaded* ones."""
    changed: list[str] = []
    restart: list[str] = []
    for f in fields(Settings):
        if getattr(current, f.name) == getattr(loaded, f.name):
            continue
        (changed if f.name in RELOADABLE else restart).append(f.name)
    if "domain" in restart and "realm" in changed:  # a realm left to follow the domain follows it then
        changed.remove("realm")
        restart.append("realm")
    settings = replace(current, **{name: getattr(loaded, name) for name in changed})
    return ReloadPlan(settings, tuple(changed), tuple(restart))
