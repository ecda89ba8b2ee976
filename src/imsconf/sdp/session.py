"""Session descriptions: parse and serialize (RFC 8866).

``SessionDescription.parse(data)`` turns bytes into frozen, slotted dataclasses; ``bytes(sd)`` writes them
back with CRLF line ends, so ``SessionDescription.parse(bytes(sd)) == sd`` for every description built
from these classes.  Every value is checked at construction (``ValueError`` for a local mistake); the
parser converts every problem in received bytes into ``SdpParseError`` and nothing else.

Line order (RFC 8866 §5) is enforced, with an error that names the offending line.  Leniency: bare LF line
ends, an empty ``s=``, a missing ``t=`` line, a media line with no format, and empty lines at the end.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from imsconf.memo import memo_table, memoised

from . import grammar
from .errors import SdpParseError

MAX_SDP_SIZE = 65536
MAX_LINES = 1024
MAX_MEDIA = 64

__all__ = [
    "MAX_SDP_SIZE",
    "PARSE_MEMO_MAX",
    "Attribute",
    "Bandwidth",
    "Connection",
    "MediaDescription",
    "Origin",
    "Repeat",
    "SessionDescription",
    "Timing",
    "ZoneAdjustment",
]


def _check(condition: bool, what: str) -> None:
    if not condition:
        raise ValueError(what)


# The checks run for every field of every description built or parsed: the message (with the value's repr)
# is only formatted when the check fails.
def _check_text(value: str, what: str) -> None:
    if _TEXT_MATCH(value) is None:
        raise ValueError(f"{what} must not contain NUL, CR or LF: {value!r}")


def _check_non_ws(value: str, what: str) -> None:
    if _NON_WS_MATCH(value) is None:
        raise ValueError(f"{what} must be a non-empty string without spaces")


def _check_token(value: str, what: str) -> None:
    if _TOKEN_MATCH(value) is None:
        raise ValueError(f"{what} is not a token: {value!r}")


_TEXT_MATCH = grammar.TEXT_RE.match
_NON_WS_MATCH = grammar.NON_WS_RE.match
_TOKEN_MATCH = grammar.TOKEN_RE.match


@dataclass(frozen=True, slots=True)
class Origin:
    """``o=<username> <sess-id> <sess-version> <nettype> <addrtype> <unicast-address>``"""

    username: str
    session_id: int
    session_version: int
    address: str
    nettype: str = "IN"
    addrtype: str = "IP4"

    def __post_init__(self) -> None:
        _check_non_ws(self.username, "origin username")
        _check_non_ws(self.address, "origin address")
        _check_non_ws(self.nettype, "origin nettype")
        _check_non_ws(self.addrtype, "origin addrtype")
        _check(self.session_id >= 0 and self.session_version >= 0, "origin numbers must be >= 0")

    def __str__(self) -> str:
        return (
            f"{self.username} {self.session_id} {self.session_version} "
            f"{self.nettype} {self.addrtype} {self.address}"
        )

    @classmethod
    def parse(cls, value: str) -> Origin:
        m = grammar.ORIGIN_RE.match(value)
        if m is None:
            raise SdpParseError(f"malformed o= line: {value!r}")
        user, sid, ver, net, addrtype, addr = m.groups()
        return cls(user, int(sid), int(ver), addr, net, addrtype)


@dataclass(frozen=True, slots=True)
class Connection:
    """``c=<nettype> <addrtype> <address>[/<ttl>][/<count>]`` (ttl only for IP4 multicast)."""

    address: str
    nettype: str = "IN"
    addrtype: str = "IP4"
    ttl: int | None = None
    count: int | None = None

    def __post_init__(self) -> None:
        _check_non_ws(self.nettype, "connection nettype")
        _check_non_ws(self.addrtype, "connection addrtype")
        if grammar.ADDRESS_SUFFIX_RE.match(self.address) is None or "/" in self.address:
            raise ValueError(f"bad connection address {self.address!r}")
        _check(grammar.NON_WS_RE.match(self.address) is not None, "connection address has spaces")
        if self.ttl is not None:
            _check(self.addrtype != "IP6", "IP6 connection addresses carry no TTL")
            _check(0 <= self.ttl <= 255, "TTL out of range")
        if self.count is not None:
            _check(1 <= self.count <= 999_999_999, "address count out of range")
            _check(self.ttl is not None or self.addrtype == "IP6", "an IP4 address count needs a TTL")

    @property
    def is_unspecified(self) -> bool:
        """``0.0.0.0`` or ``::``: the RFC 2543 way to put a stream on hold (RFC 3264 §8.4)."""
        return self.address in ("0.0.0.0", "::")

    def __str__(self) -> str:
        s = f"{self.nettype} {self.addrtype} {self.address}"
        if self.ttl is not None:
            s += f"/{self.ttl}"
        if self.count is not None:
            s += f"/{self.count}"
        return s

    @classmethod
    def parse(cls, value: str) -> Connection:
        m = grammar.CONNECTION_RE.match(value)
        if m is None:
            raise SdpParseError(f"malformed c= line: {value!r}")
        net, addrtype, full = m.groups()
        a = grammar.ADDRESS_SUFFIX_RE.match(full)
        if a is None:
            raise SdpParseError(f"malformed connection address: {full!r}")
        addr, first, second = a.groups()
        ttl: int | None = None
        count: int | None = None
        if addrtype == "IP6":
            if second is not None:
                raise SdpParseError(f"IP6 connection address with a TTL: {full!r}")
            count = int(first) if first is not None else None
        else:
            ttl = int(first) if first is not None else None
            count = int(second) if second is not None else None
        try:
            return cls(addr, net, addrtype, ttl, count)
        except ValueError as exc:
            raise SdpParseError(f"bad c= line: {exc}") from None


@dataclass(frozen=True, slots=True)
class Bandwidth:
    """``b=<bwtype>:<bandwidth>``"""

    bwtype: str
    value: int

    def __post_init__(self) -> None:
        _check_token(self.bwtype, "bandwidth type")
        _check(0 <= self.value < 10**18, "bandwidth out of range")

    def __str__(self) -> str:
        return f"{self.bwtype}:{self.value}"

    @classmethod
    def parse(cls, value: str) -> Bandwidth:
        m = grammar.BANDWIDTH_RE.match(value)
        if m is None:
            raise SdpParseError(f"malformed b= line: {value!r}")
        return cls(m.group(1), int(m.group(2)))


@dataclass(frozen=True, slots=True)
class Repeat:
    """``r=<repeat interval> <active duration> <offsets>``, each a typed time (``7d``, ``3600``)."""

    interval: str
    duration: str
    offsets: tuple[str, ...]

    def __post_init__(self) -> None:
        _check(len(self.offsets) >= 1, "a repeat line needs at least one offset")
        for t in (self.interval, self.duration, *self.offsets):
            if grammar.TYPED_TIME_RE.match(t) is None:
                raise ValueError(f"bad typed time {t!r}")

    def __str__(self) -> str:
        return " ".join((self.interval, self.duration, *self.offsets))

    @classmethod
    def parse(cls, value: str) -> Repeat:
        parts = value.split(" ")
        if len(parts) < 3 or not all(grammar.TYPED_TIME_RE.match(p) for p in parts):
            raise SdpParseError(f"malformed r= line: {value!r}")
        return cls(parts[0], parts[1], tuple(parts[2:]))


@dataclass(frozen=True, slots=True)
class Timing:
    """``t=<start> <stop>`` and its ``r=`` lines (NTP seconds; 0 0 means unbounded)."""

    start: int = 0
    stop: int = 0
    repeats: tuple[Repeat, ...] = ()

    def __post_init__(self) -> None:
        _check(0 <= self.start < 10**20 and 0 <= self.stop < 10**20, "time out of range")

    @classmethod
    def parse(cls, value: str) -> Timing:
        m = grammar.TIMING_RE.match(value)
        if m is None:
            raise SdpParseError(f"malformed t= line: {value!r}")
        return cls(int(m.group(1)), int(m.group(2)))


@dataclass(frozen=True, slots=True)
class ZoneAdjustment:
    """One ``<adjustment time> <offset>`` pair of a ``z=`` line."""

    time: int
    offset: str

    def __post_init__(self) -> None:
        _check(0 <= self.time < 10**20, "zone adjustment time out of range")
        if grammar.ZONE_OFFSET_RE.match(self.offset) is None:
            raise ValueError(f"bad zone offset {self.offset!r}")


def _parse_zones(value: str) -> tuple[ZoneAdjustment, ...]:
    parts = value.split(" ")
    if not parts or len(parts) % 2:
        raise SdpParseError(f"malformed z= line: {value!r}")
    out = []
    for t, off in zip(parts[::2], parts[1::2], strict=True):
        if not grammar.TIME_RE.match(t) or not grammar.ZONE_OFFSET_RE.match(off):
            raise SdpParseError(f"malformed z= line: {value!r}")
        out.append(ZoneAdjustment(int(t), off))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class Attribute:
    """``a=<name>[:<value>]``.  ``value`` is ``None`` for a property attribute (``a=sendrecv``).

    The repr of an ``a=crypto`` attribute hides its key material (SDES keys must never reach a log).
    """

    name: str
    value: str | None = None

    def __post_init__(self) -> None:
        _check_token(self.name, "attribute name")
        if self.value is not None:
            _check_text(self.value, "attribute value")

    def __str__(self) -> str:
        return self.name if self.value is None else f"{self.name}:{self.value}"

    def __repr__(self) -> str:
        value = self.value
        if value is not None and self.name.lower() in ("crypto", "key-mgmt"):
            value = _redact(value)
        return f"Attribute(name={self.name!r}, value={value!r})"

    @classmethod
    def parse(cls, value: str) -> Attribute:
        name, sep, rest = value.partition(":")
        if not grammar.ATTRIBUTE_NAME_RE.match(name):
            raise SdpParseError(f"malformed a= line: {_redact(value)!r}")
        return cls(name, rest if sep else None)


def _redact(value: str) -> str:
    out = []
    for word in value.split(" "):
        if ":" in word and word.split(":", 1)[0].lower() in ("inline", "mikey"):
            word = word.split(":", 1)[0] + ":<redacted>"
        out.append(word)
    return " ".join(out)


class _AttributeMixin:
    """Attribute look-ups shared by the session and media levels."""

    __slots__ = ()
    attributes: tuple[Attribute, ...]

    def get_attribute(self, name: str) -> str | None:
        """Value of the first attribute called ``name`` (case-insensitive); ``""`` for a flag; else None."""
        low = name.lower()
        for a in self.attributes:
            if a.name == name or a.name.lower() == low:
                return "" if a.value is None else a.value
        return None

    def get_attributes(self, name: str) -> tuple[str, ...]:
        """Values of every attribute called ``name``, in order (``""`` for flags)."""
        low = name.lower()
        return tuple(
            "" if a.value is None else a.value
            for a in self.attributes
            if a.name == name or a.name.lower() == low
        )

    def has_attribute(self, name: str) -> bool:
        low = name.lower()
        return any(a.name == name or a.name.lower() == low for a in self.attributes)


@dataclass(frozen=True, slots=True)
class MediaDescription(_AttributeMixin):
    """One media section: ``m=`` and its ``i=``, ``c=``, ``b=``, ``k=``, ``a=`` lines."""

    media: str
    port: int
    proto: str
    formats: tuple[str, ...]
    port_count: int | None = None
    information: str | None = None
    connections: tuple[Connection, ...] = ()
    bandwidths: tuple[Bandwidth, ...] = ()
    key: str | None = None
    attributes: tuple[Attribute, ...] = ()

    def __post_init__(self) -> None:
        _check_token(self.media, "media type")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port out of range: {self.port}")
        _check(self.port_count is None or 1 <= self.port_count <= 65535, "port count out of range")
        if not all(_TOKEN_MATCH(p) for p in self.proto.split("/")):
            raise ValueError(f"bad proto {self.proto!r}")
        for f in self.formats:
            _check_token(f, "media format")
        if self.information is not None:
            _check_text(self.information, "i= text")
        if self.key is not None:
            _check_text(self.key, "k= value")

    def lines(self) -> Iterator[str]:
        port = str(self.port) if self.port_count is None else f"{self.port}/{self.port_count}"
        yield " ".join((f"m={self.media}", port, self.proto, *self.formats))
        if self.information is not None:
            yield f"i={self.information}"
        for c in self.connections:
            yield f"c={c}"
        for b in self.bandwidths:
            yield f"b={b}"
        if self.key is not None:
            yield f"k={self.key}"
        for a in self.attributes:
            yield f"a={a}"


@dataclass(frozen=True, slots=True)
class SessionDescription(_AttributeMixin):
    """A whole SDP body (RFC 8866 §5)."""

    origin: Origin
    name: str = "-"
    information: str | None = None
    uri: str | None = None
    emails: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()
    connection: Connection | None = None
    bandwidths: tuple[Bandwidth, ...] = ()
    timings: tuple[Timing, ...] = (Timing(),)
    zones: tuple[ZoneAdjustment, ...] = ()
    key: str | None = None
    attributes: tuple[Attribute, ...] = ()
    media: tuple[MediaDescription, ...] = field(default=())
    version: int = 0

    def __post_init__(self) -> None:
        _check(self.version == 0, "only SDP version 0 exists")
        for text in (self.name, self.information, self.uri, self.key, *self.emails, *self.phones):
            if text is not None:
                _check_text(text, "session text field")
        _check(len(self.media) <= MAX_MEDIA, "too many media sections")

    def lines(self) -> Iterator[str]:
        yield f"v={self.version}"
        yield f"o={self.origin}"
        yield f"s={self.name}"
        if self.information is not None:
            yield f"i={self.information}"
        if self.uri is not None:
            yield f"u={self.uri}"
        yield from (f"e={e}" for e in self.emails)
        yield from (f"p={p}" for p in self.phones)
        if self.connection is not None:
            yield f"c={self.connection}"
        yield from (f"b={b}" for b in self.bandwidths)
        for t in self.timings:
            yield f"t={t.start} {t.stop}"
            yield from (f"r={r}" for r in t.repeats)
        if self.zones:
            yield "z=" + " ".join(f"{z.time} {z.offset}" for z in self.zones)
        if self.key is not None:
            yield f"k={self.key}"
        yield from (f"a={a}" for a in self.attributes)
        for m in self.media:
            yield from m.lines()

    def __bytes__(self) -> bytes:
        return "".join(f"{line}\r\n" for line in self.lines()).encode("utf-8")

    @classmethod
    def parse(cls, data: bytes) -> SessionDescription:
        """Parse an SDP body; any problem raises ``SdpParseError`` (status_hint 400, 413 for size caps).

        The value is frozen, so a body seen a moment ago is answered from a small table (an offer sent
        again, the same client's bodies in a churn of calls); errors are never kept."""
        if isinstance(data, bytes):  # (a bytearray or memoryview is not hashable: parsed every time)
            return memoised(_PARSED, data, _parse, PARSE_MEMO_MAX)
        return _parse(data)


def _parse(data: bytes) -> SessionDescription:
    try:
        return _Parser(data).parse()
    except ValueError as exc:  # a field the line regexes let through but the dataclasses refuse
        raise SdpParseError(f"invalid SDP: {exc}") from None


# Recently parsed bodies (bounded: peers choose them; a full table is dropped), emptied with the SIP memo
# tables once a load has passed (imsconf.app.heap), so no load's values outlive it.
PARSE_MEMO_MAX = 64
_PARSED: dict[bytes, SessionDescription] = memo_table()


# Line order (RFC 8866 §5): the rank of each type at session level and at media level.  A line whose
# rank is lower than the previous line's rank is out of order.  Lines with equal rank may repeat when
# the RFC allows it (``*``); ``v``, ``o``, ``s``, ``i``, ``u``, ``z``, ``k`` may appear at most once.
_SESSION_RANK = {"v": 0, "o": 1, "s": 2, "i": 3, "u": 4, "e": 5, "p": 6, "c": 7, "b": 8, "t": 9, "r": 9}
_SESSION_RANK |= {"z": 10, "k": 11, "a": 12}
_MEDIA_RANK = {"i": 1, "c": 2, "b": 3, "k": 4, "a": 5}
_SESSION_ONCE = frozenset("vosiuzkc")
_MEDIA_ONCE = frozenset("ik")


class _Parser:
    def __init__(self, data: bytes) -> None:
        if len(data) > MAX_SDP_SIZE:
            raise SdpParseError(f"SDP body larger than {MAX_SDP_SIZE} bytes", 413)
        try:
            self.text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise SdpParseError("SDP body is not UTF-8") from None

    def _lines(self) -> list[tuple[str, str]]:
        text = self.text.replace("\r\n", "\n")
        raw = text.split("\n")
        while raw and raw[-1] == "":
            raw.pop()
        if not raw:
            raise SdpParseError("empty SDP body")
        if len(raw) > MAX_LINES:
            raise SdpParseError(f"SDP body has more than {MAX_LINES} lines", 413)
        out = []
        for n, line in enumerate(raw, 1):
            m = grammar.LINE_RE.match(line)
            if m is None or "\r" in line or "\x00" in line:
                shown = line if len(line) < 40 else line[:40] + "..."
                raise SdpParseError(f"line {n} is not <type>=<value>: {_redact(shown)!r}")
            out.append((m.group(1), m.group(2)))
        return out

    def parse(self) -> SessionDescription:
        lines = self._lines()
        if lines[0] != ("v", "0"):
            raise SdpParseError("SDP must start with v=0")
        s = _SessionFields()
        media_lines: list[list[tuple[str, str]]] = []
        rank = 0
        seen = {"v"}
        for n, (typ, value) in enumerate(lines[1:], 2):
            if media_lines or typ == "m":
                if typ == "m":
                    if len(media_lines) >= MAX_MEDIA:
                        raise SdpParseError(f"more than {MAX_MEDIA} media sections", 413)
                    media_lines.append([])
                media_lines[-1].append((typ, value))
                continue
            if typ not in _SESSION_RANK:
                raise SdpParseError(f"line {n}: unknown or misplaced line type {typ}= at session level")
            r = _SESSION_RANK[typ]
            if r < rank:
                raise SdpParseError(f"line {n}: {typ}= is out of order at session level (RFC 8866 §5)")
            if typ in _SESSION_ONCE and typ in seen:
                raise SdpParseError(f"line {n}: {typ}= may appear only once at session level")
            rank = r
            seen.add(typ)
            s.add(typ, value)
        if s.origin is None:
            raise SdpParseError("missing o= line")
        if s.name is None:
            raise SdpParseError("missing s= line")
        try:
            return SessionDescription(
                origin=s.origin,
                name=s.name,
                information=s.information,
                uri=s.uri,
                emails=tuple(s.emails),
                phones=tuple(s.phones),
                connection=s.connection,
                bandwidths=tuple(s.bandwidths),
                timings=tuple(s.timings),
                zones=s.zones,
                key=s.key,
                attributes=tuple(s.attributes),
                media=tuple(_parse_media(section) for section in media_lines),
            )
        except ValueError as exc:
            raise SdpParseError(f"invalid SDP: {exc}") from None


class _SessionFields:
    """Session-level values collected while parsing (order and repetition are checked by the caller)."""

    def __init__(self) -> None:
        self.origin: Origin | None = None
        self.name: str | None = None
        self.information: str | None = None
        self.uri: str | None = None
        self.emails: list[str] = []
        self.phones: list[str] = []
        self.connection: Connection | None = None
        self.bandwidths: list[Bandwidth] = []
        self.timings: list[Timing] = []
        self.zones: tuple[ZoneAdjustment, ...] = ()
        self.key: str | None = None
        self.attributes: list[Attribute] = []

    def add(self, typ: str, value: str) -> None:
        if typ in ("u", "e", "p") and value == "":
            raise SdpParseError(f"empty {typ}= line")
        if typ == "o":
            self.origin = Origin.parse(value)
        elif typ == "s":
            self.name = value
        elif typ == "i":
            self.information = value
        elif typ == "u":
            self.uri = value
        elif typ == "e":
            self.emails.append(value)
        elif typ == "p":
            self.phones.append(value)
        elif typ == "c":
            self.connection = Connection.parse(value)
        elif typ == "b":
            self.bandwidths.append(Bandwidth.parse(value))
        elif typ == "t":
            self.timings.append(Timing.parse(value))
        elif typ == "r":
            if not self.timings:
                raise SdpParseError("r= must follow a t= line")
            last = self.timings[-1]
            self.timings[-1] = Timing(last.start, last.stop, (*last.repeats, Repeat.parse(value)))
        elif typ == "z":
            self.zones = _parse_zones(value)
        elif typ == "k":
            self.key = value
        elif typ == "a":
            self.attributes.append(Attribute.parse(value))
        else:  # "v" again: _SESSION_ONCE stops it before it gets here
            raise SdpParseError(f"unexpected {typ}= line")


def _parse_media(section: Iterable[tuple[str, str]]) -> MediaDescription:
    it = iter(section)
    _, mline = next(it)
    m = grammar.MEDIA_RE.match(mline)
    if m is None:
        raise SdpParseError(f"malformed m= line: {mline!r}")
    media, port, count, proto, fmts = m.groups()
    if int(port) > 65535 or (count is not None and not 1 <= int(count) <= 65535):
        raise SdpParseError(f"m= port out of range: {mline!r}")
    information: str | None = None
    key: str | None = None
    connections: list[Connection] = []
    bandwidths: list[Bandwidth] = []
    attributes: list[Attribute] = []
    rank = 0
    seen: set[str] = set()
    for typ, value in it:
        if typ not in _MEDIA_RANK:
            raise SdpParseError(f"{typ}= line not allowed in a media section ({media})")
        r = _MEDIA_RANK[typ]
        if r < rank:
            raise SdpParseError(f"{typ}= is out of order in the {media} media section (RFC 8866 §5)")
        if typ in _MEDIA_ONCE and typ in seen:
            raise SdpParseError(f"{typ}= may appear only once in a media section")
        rank = r
        seen.add(typ)
        if typ == "i":
            information = value
        elif typ == "k":
            key = value
        elif typ == "c":
            connections.append(Connection.parse(value))
        elif typ == "b":
            bandwidths.append(Bandwidth.parse(value))
        else:
            attributes.append(Attribute.parse(value))
    return MediaDescription(
        media=media,
        port=int(port),
        port_count=int(count) if count is not None else None,
        proto=proto,
        formats=tuple(fmts.split()),
        information=information,
        connections=tuple(connections),
        bandwidths=tuple(bandwidths),
        key=key,
        attributes=tuple(attributes),
    )
