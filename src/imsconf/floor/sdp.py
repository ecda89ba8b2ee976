"""SDP for BFCP streams (RFC 8856; RFC 4145 setup/connection; RFC 8122 fingerprint).

Pure string functions: ``parse_*`` take the attribute *value* (what follows ``a=name:``) or a whole
``m=`` line and raise ``SdpParseError`` (status 400) on bad input; ``build_*`` return the value, or the
whole ``m=`` line.  ``BfcpMedia`` gathers them for one ``m=application`` section of ``imsconf.sdp``::

    m=application 50000 TCP/TLS/BFCP *
    a=setup:passive
    a=connection:new
    a=fingerprint:sha-256 4A:AD:...
    a=floorctrl:s-only
    a=confid:4321
    a=userid:1234
    a=floorid:1 mstrm:10
    a=bfcpver:1
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from imsconf.sdp.errors import SdpParseError
from imsconf.sdp.session import Attribute, MediaDescription

__all__ = [
    "PROTO_TCP",
    "PROTO_TLS",
    "BfcpMedia",
    "ConnectionAttr",
    "FloorCtrl",
    "FloorIdAttr",
    "Setup",
    "answer_floorctrl",
    "build_confid",
    "build_fingerprint",
    "build_floorctrl",
    "build_floorid",
    "build_media_line",
    "build_userid",
    "parse_bfcpver",
    "parse_confid",
    "parse_connection",
    "parse_fingerprint",
    "parse_floorctrl",
    "parse_floorid",
    "parse_media_line",
    "parse_setup",
    "parse_userid",
]

PROTO_TCP = "TCP/BFCP"
PROTO_TLS = "TCP/TLS/BFCP"
_PROTOS = {p.upper(): p for p in (PROTO_TCP, PROTO_TLS, "UDP/BFCP", "UDP/TLS/BFCP")}
_MEDIA_RE = re.compile(r"^(?:m=)?application (\d{1,5}) (\S+) \*$")
_UINT_RE = re.compile(r"^\d{1,10}$")
_TOKEN_RE = re.compile(r"^[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+$")
_FINGERPRINT_RE = re.compile(r"^([!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+) ([0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2})*)$")


class FloorCtrl(StrEnum):
    """``a=floorctrl`` roles (RFC 8856 §4)."""

    C_ONLY = "c-only"
    S_ONLY = "s-only"
    C_S = "c-s"


class Setup(StrEnum):
    """``a=setup`` (RFC 4145 §4)."""

    ACTIVE = "active"
    PASSIVE = "passive"
    ACTPASS = "actpass"
    HOLDCONN = "holdconn"


class ConnectionAttr(StrEnum):
    """``a=connection`` (RFC 4145 §5)."""

    NEW = "new"
    EXISTING = "existing"


def _fail(what: str, value: str) -> SdpParseError:
    return SdpParseError(f"malformed {what}: {value!r}")


def build_media_line(port: int, *, tls: bool = True) -> str:
    """``m=application <port> TCP/TLS/BFCP *`` (``TCP/BFCP`` when ``tls`` is false)."""
    if not 0 <= port <= 65535:
        raise ValueError("port out of range")
    return f"m=application {port} {PROTO_TLS if tls else PROTO_TCP} *"


def parse_media_line(line: str) -> tuple[int, str]:
    """``(port, proto)`` of a BFCP ``m=`` line (with or without ``m=``); proto in canonical case."""
    m = _MEDIA_RE.match(line.strip())
    if m is None or m.group(2).upper() not in _PROTOS or int(m.group(1)) > 65535:
        raise _fail("BFCP media line", line)
    return int(m.group(1)), _PROTOS[m.group(2).upper()]


def parse_floorctrl(value: str) -> tuple[FloorCtrl, ...]:
    """``c-only s-only c-s`` → roles in preference order (RFC 8856 §4)."""
    roles = []
    for word in value.split():
        try:
            roles.append(FloorCtrl(word.lower()))
        except ValueError:
            raise _fail("floorctrl", value) from None
    if not roles:
        raise _fail("floorctrl", value)
    return tuple(roles)


def build_floorctrl(roles: Iterable[FloorCtrl]) -> str:
    out = " ".join(FloorCtrl(r).value for r in roles)
    if not out:
        raise ValueError("floorctrl needs a role")
    return out


def answer_floorctrl(offered: Iterable[FloorCtrl]) -> FloorCtrl | None:
    """Our role as a floor control server answering an offer: ``s-only`` if the offerer can be a client."""
    roles = set(offered) or {FloorCtrl.C_ONLY}  # RFC 8856 §4: absent means c-only
    return FloorCtrl.S_ONLY if roles & {FloorCtrl.C_ONLY, FloorCtrl.C_S} else None


def _parse_uint(value: str, what: str, bits: int) -> int:
    v = value.strip()
    if not _UINT_RE.match(v) or int(v) >= 1 << bits:
        raise _fail(what, value)
    return int(v)


def parse_confid(value: str) -> int:
    """``a=confid`` (RFC 8856 §5): the BFCP conference id, 32 bits."""
    return _parse_uint(value, "confid", 32)


def build_confid(conference_id: int) -> str:
    if not 0 <= conference_id <= 0xFFFFFFFF:
        raise ValueError("conference id is 32 bits")
    return str(conference_id)


def parse_userid(value: str) -> int:
    """``a=userid`` (RFC 8856 §5): the BFCP user id, 16 bits."""
    return _parse_uint(value, "userid", 16)


def build_userid(user_id: int) -> str:
    if not 0 <= user_id <= 0xFFFF:
        raise ValueError("user id is 16 bits")
    return str(user_id)


@dataclass(frozen=True, slots=True)
class FloorIdAttr:
    """``a=floorid:<floor-id> [mstrm:<label> *(SP <label>)]`` (RFC 8856 §6)."""

    floor_id: int
    streams: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not 0 <= self.floor_id <= 0xFFFF:
            raise ValueError("floor id is 16 bits")
        for s in self.streams:
            if not _TOKEN_RE.match(s):
                raise ValueError(f"bad media stream label {s!r}")


def parse_floorid(value: str) -> FloorIdAttr:
    """Accepts RFC 8856 ``mstrm:`` and RFC 4583 ``m-stream:``."""
    words = value.split()
    if not words:
        raise _fail("floorid", value)
    floor_id = _parse_uint(words[0], "floorid", 16)
    if len(words) == 1:
        return FloorIdAttr(floor_id)
    prefix, sep, first = words[1].partition(":")
    if not sep or prefix.lower() not in ("mstrm", "m-stream"):
        raise _fail("floorid", value)
    streams = ([first] if first else []) + words[2:]
    if not all(_TOKEN_RE.match(w) for w in streams):
        raise _fail("floorid", value)
    return FloorIdAttr(floor_id, tuple(streams))


def build_floorid(floor_id: int, streams: Iterable[str] = ()) -> str:
    attr = FloorIdAttr(floor_id, tuple(streams))
    return f"{attr.floor_id} mstrm:{' '.join(attr.streams)}" if attr.streams else str(attr.floor_id)


def parse_setup(value: str) -> Setup:
    try:
        return Setup(value.strip().lower())
    except ValueError:
        raise _fail("setup", value) from None


def parse_connection(value: str) -> ConnectionAttr:
    try:
        return ConnectionAttr(value.strip().lower())
    except ValueError:
        raise _fail("connection", value) from None


def parse_fingerprint(value: str) -> tuple[str, str]:
    """``sha-256 AB:CD:...`` → (hash function lower-cased, fingerprint upper-cased) (RFC 8122 §5)."""
    m = _FINGERPRINT_RE.match(value.strip())
    if m is None:
        raise _fail("fingerprint", value)
    return m.group(1).lower(), m.group(2).upper()


def build_fingerprint(hash_function: str, digest: bytes) -> str:
    """From a certificate digest: ``build_fingerprint("sha-256", cert_sha256)``."""
    if not _TOKEN_RE.match(hash_function) or not digest:
        raise ValueError("bad fingerprint")
    return f"{hash_function.lower()} {digest.hex(':').upper()}"


def parse_bfcpver(value: str) -> tuple[int, ...]:
    """``a=bfcpver:1 2`` (RFC 8856 §7): BFCP versions, each 1..7."""
    versions = tuple(_parse_uint(v, "bfcpver", 3) for v in value.split())
    if not versions or 0 in versions:
        raise _fail("bfcpver", value)
    return versions


@dataclass(frozen=True, slots=True)
class BfcpMedia:
    """The BFCP facts of one ``m=application ... BFCP`` section."""

    port: int
    proto: str = PROTO_TLS
    floorctrl: tuple[FloorCtrl, ...] = (FloorCtrl.S_ONLY,)
    conference_id: int | None = None
    user_id: int | None = None
    floors: tuple[FloorIdAttr, ...] = ()
    setup: Setup | None = None
    connection: ConnectionAttr | None = None
    fingerprints: tuple[tuple[str, str], ...] = ()
    versions: tuple[int, ...] = ()

    @property
    def uses_tls(self) -> bool:
        return "/TLS/" in self.proto

    @classmethod
    def from_media(cls, media: MediaDescription) -> BfcpMedia:
        line = f"m={media.media} {media.port} {media.proto} {' '.join(media.formats)}"
        port, proto = parse_media_line(line)
        ctrl = media.get_attribute("floorctrl")
        confid = media.get_attribute("confid")
        userid = media.get_attribute("userid")
        setup = media.get_attribute("setup")
        conn = media.get_attribute("connection")
        ver = media.get_attribute("bfcpver")
        return cls(
            port,
            proto,
            parse_floorctrl(ctrl) if ctrl is not None else (FloorCtrl.C_ONLY,),
            parse_confid(confid) if confid is not None else None,
            parse_userid(userid) if userid is not None else None,
            tuple(parse_floorid(v) for v in media.get_attributes("floorid")),
            parse_setup(setup) if setup is not None else None,
            parse_connection(conn) if conn is not None else None,
            tuple(parse_fingerprint(v) for v in media.get_attributes("fingerprint")),
            parse_bfcpver(ver) if ver is not None else (),
        )

    def to_media(self) -> MediaDescription:
        attrs: list[Attribute] = []
        if self.setup is not None:
            attrs.append(Attribute("setup", self.setup.value))
        if self.connection is not None:
            attrs.append(Attribute("connection", self.connection.value))
        attrs += [Attribute("fingerprint", f"{h} {fp}") for h, fp in self.fingerprints]
        attrs.append(Attribute("floorctrl", build_floorctrl(self.floorctrl)))
        if self.conference_id is not None:
            attrs.append(Attribute("confid", build_confid(self.conference_id)))
        if self.user_id is not None:
            attrs.append(Attribute("userid", build_userid(self.user_id)))
        attrs += [Attribute("floorid", build_floorid(f.floor_id, f.streams)) for f in self.floors]
        if self.versions:
            attrs.append(Attribute("bfcpver", " ".join(map(str, self.versions))))
        return MediaDescription("application", self.port, self.proto, ("*",), attributes=tuple(attrs))
