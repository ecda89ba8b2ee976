"""Header names, the ordered header container and typed views of the headers the core relies on."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from imsconf.memo import memo_table, memoised

from . import grammar
from .errors import SipParseError
from .uri import NameAddr, format_params, parse_params, split_quoted

# RFC 3261 §7.3.3 and later RFCs: compact forms.
COMPACT = {
    "a": "Accept-Contact",
    "b": "Referred-By",
    "c": "Content-Type",
    "d": "Request-Disposition",
    "e": "Content-Encoding",
    "f": "From",
    "i": "Call-ID",
    "j": "Reject-Contact",
    "k": "Supported",
    "l": "Content-Length",
    "m": "Contact",
    "n": "Identity-Info",
    "o": "Event",
    "r": "Refer-To",
    "s": "Subject",
    "t": "To",
    "u": "Allow-Events",
    "v": "Via",
    "x": "Session-Expires",
    "y": "Identity",
}

_KNOWN = [
    "Accept", "Accept-Contact", "Accept-Encoding", "Accept-Language", "Alert-Info", "Allow",
    "Allow-Events", "Authentication-Info", "Authorization", "Call-ID", "Call-Info", "Contact",
    "Content-Disposition", "Content-Encoding", "Content-Language", "Content-Length", "Content-Type",
    "CSeq", "Date", "Error-Info", "Event", "Expires", "From", "In-Reply-To", "Max-Forwards",
    "Min-Expires", "Min-SE", "MIME-Version", "Organization", "P-Asserted-Identity",
    "P-Preferred-Identity", "Priority", "Privacy", "Proxy-Authenticate", "Proxy-Authorization",
    "Proxy-Require", "RAck", "Reason", "Record-Route", "Refer-To", "Referred-By", "Reject-Contact",
    "Replaces", "Reply-To", "Request-Disposition", "Require", "Retry-After", "Route", "RSeq", "Server",
    "Session-Expires", "Subject", "Subscription-State", "Supported", "Target-Dialog", "Timestamp", "To",
    "Unsupported", "User-Agent", "Via", "Warning", "WWW-Authenticate", "Identity", "Identity-Info",
    "Path", "Service-Route", "Refer-Sub",
]  # fmt: skip
_CANONICAL = {n.lower(): n for n in _KNOWN}

# Headers whose grammar is a comma-separated list (RFC 3261 §7.3.1): stored one value per entry.
LIST_HEADERS = frozenset(
    n.lower()
    for n in [
        "Accept", "Accept-Encoding", "Accept-Language", "Allow", "Allow-Events", "Contact",
        "Content-Encoding", "Content-Language", "In-Reply-To", "Proxy-Require", "Record-Route",
        "Require", "Route", "Supported", "Unsupported", "Via", "Path", "Service-Route",
        "P-Asserted-Identity", "Reason", "Warning", "Alert-Info", "Call-Info", "Error-Info",
    ]
)  # fmt: skip

# Headers that must appear at most once (RFC 3261 §20 table; RFC 4475 §3.3.8).
SINGLE_HEADERS = frozenset(
    ["call-id", "cseq", "from", "to", "max-forwards", "content-length", "content-type"]
)


_NAME_CACHE: dict[str, str] = {}  # read directly by the message parser (message.py)
_NAME_CACHE_MAX = 4096


def canonical_name(name: str) -> str:
    """The one spelling a header name is stored and looked up under (compact forms expanded).

    Known names take their RFC spelling; extension names their hyphen-separated capitalisation
    (``x-foo-BAR`` -> ``X-Foo-Bar``).  Header names are case-insensitive (RFC 3261 §7.3.1), so lookups
    compare these spellings exactly.  Memoised: this runs for every header of every message.
    """
    cached = _NAME_CACHE.get(name)
    if cached is not None:
        return cached
    low = name.lower()
    low = COMPACT[low].lower() if low in COMPACT else low
    canon = _CANONICAL.get(low)
    if canon is None:
        canon = "-".join(part[:1].upper() + part[1:] for part in low.split("-"))
    if len(_NAME_CACHE) >= _NAME_CACHE_MAX:
        _NAME_CACHE.clear()  # bounded: extension names are attacker-chosen
    _NAME_CACHE[name] = canon
    return canon


@dataclass(slots=True)
class Headers:
    """Ordered (name, value) pairs; names canonicalised, lookups case-insensitive."""

    items: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        items = self.items
        for i, (n, v) in enumerate(items):
            c = canonical_name(n)
            if c is not n and c != n:
                items[i] = (c, v)

    @classmethod
    def of(cls, pairs: Iterable[tuple[str, str]]) -> Headers:
        h = cls()
        for name, value in pairs:
            h.add(name, value)
        return h

    def add(self, name: str, value: str) -> None:
        self.items.append((canonical_name(name), value))

    def get(self, name: str) -> str | None:
        cname = _NAME_CACHE.get(name) or canonical_name(name)
        for n, v in self.items:
            if n == cname:
                return v
        return None

    def get_all(self, name: str) -> list[str]:
        cname = _NAME_CACHE.get(name) or canonical_name(name)
        return [v for n, v in self.items if n == cname]

    def set(self, name: str, value: str) -> None:
        """Replace every value of *name* by one (kept at the first position, or appended)."""
        cname = canonical_name(name)
        out: list[tuple[str, str]] = []
        placed = False
        for n, v in self.items:
            if n == cname:
                if not placed:
                    out.append((cname, value))
                    placed = True
            else:
                out.append((n, v))
        if not placed:
            out.append((cname, value))
        self.items = out

    def remove(self, name: str) -> None:
        cname = canonical_name(name)
        self.items = [(n, v) for n, v in self.items if n != cname]

    def prepend(self, name: str, value: str) -> None:
        self.items.insert(0, (canonical_name(name), value))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def copy(self) -> Headers:
        return Headers(list(self.items))

    def tokens(self, name: str) -> list[str]:
        """Values of a token-list header (Require, Supported, Allow...), lower-cased."""
        return [v.strip().lower() for v in self.get_all(name) if v.strip()]


def split_header_value(name: str, value: str) -> list[str]:
    """Split a received header line into its list elements where the header is a list (RFC 3261 §7.3.1).

    Commas inside quoted strings and <...> do not split.  An empty value is kept as one empty element (some
    list headers, e.g. Supported and Accept, may legally be empty).  Leniency: empty elements between commas
    ("a,,b") are dropped; a value made only of commas is refused.
    """
    if name.lower() not in LIST_HEADERS:
        return [value]
    stripped = value.strip()
    if not stripped:
        return [""]
    if name.lower() == "contact" and stripped == "*":
        return ["*"]
    parts = [p.strip() for p in split_quoted(value, ",")]
    parts = [p for p in parts if p]
    if not parts:
        raise SipParseError(f"empty {name} header")
    return parts


# ---- typed views ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Via:
    transport: str  # upper-case: UDP, TCP, TLS, SCTP, WS, WSS ...
    host: str
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict)
    protocol: str = "SIP/2.0"

    @classmethod
    def parse(cls, value: str) -> Via:
        """Parse (memoised by text: the result is an immutable value; errors are not cached)."""
        return memoised(_VIA_MEMO, value, cls._parse)

    @classmethod
    def _parse(cls, value: str) -> Via:
        m = grammar.VIA_RE.match(value.strip())
        if not m:
            raise SipParseError("malformed Via header")
        name, version, transport, host, port, ptext = m.groups()
        if port is not None and (len(port) > 5 or int(port) > 65535):
            raise SipParseError("bad port in Via header")
        params = parse_params(ptext) if ptext else {}
        return cls(
            transport.upper(), host.lower(), int(port) if port else None, params, f"{name.upper()}/{version}"
        )

    def __str__(self) -> str:
        port = f":{self.port}" if self.port is not None else ""
        return f"{self.protocol}/{self.transport} {self.host}{port}{format_params(self.params)}"

    @property
    def branch(self) -> str | None:
        return self.params.get("branch")

    @property
    def received(self) -> str | None:
        return self.params.get("received")

    @property
    def rport_requested(self) -> bool:
        """True when the sender asked for symmetric response routing (RFC 3581): ``rport`` present at all."""
        return "rport" in self.params

    @property
    def rport(self) -> int | None:
        """The port filled in by the server (``rport=5060``); None when absent, empty or not a port number."""
        v = self.params.get("rport")
        if v is None or not grammar.DIGITS_RE.fullmatch(v) or len(v) > 5 or int(v) > 65535:
            return None
        return int(v)


@dataclass(frozen=True, slots=True)
class CSeq:
    number: int
    method: str

    @classmethod
    def parse(cls, value: str) -> CSeq:
        """Parse (memoised by text: the result is an immutable value; errors are not cached)."""
        return memoised(_CSEQ_MEMO, value, cls._parse)

    @classmethod
    def _parse(cls, value: str) -> CSeq:
        m = grammar.CSEQ_RE.match(value.strip())
        if not m:
            raise SipParseError("malformed CSeq header")
        if len(m.group(1)) > 10 or int(m.group(1)) > grammar.MAX_CSEQ:
            raise SipParseError("CSeq number out of range")
        return cls(int(m.group(1)), m.group(2))

    def __str__(self) -> str:
        return f"{self.number} {self.method}"


def parse_name_addr(value: str) -> NameAddr:
    return NameAddr.parse(value)


def parse_auth_params(value: str) -> tuple[str, dict[str, str]]:
    """``Digest a="b", c=d`` -> ("digest", {"a": "b", "c": "d"}) with quotes removed (RFC 3261 §25.1).

    challenge/credentials = auth-scheme LWS auth-param *(COMMA auth-param) ; auth-param = token EQUAL
    ( token / quoted-string ).  The scheme is lower-cased, so are parameter names; values keep their case.
    """
    m = grammar.AUTH_SCHEME_RE.match(value.strip(" \t"))
    if not m:
        raise SipParseError("malformed authentication scheme")
    scheme, rest = m.group(1), m.group(2) or ""
    params: dict[str, str] = {}
    for item in split_quoted(rest, ",", brackets=False):
        item = item.strip()
        if not item:
            continue
        k, sep, v = item.partition("=")
        k = k.strip()
        if not sep or not grammar.FULL_TOKEN_RE.match(k):
            raise SipParseError("malformed authentication parameter")
        v = v.strip()
        if v.startswith('"'):
            if not grammar.QUOTED_STRING_RE.fullmatch(v):
                raise SipParseError("unterminated quoted authentication parameter")
            v = unquote_string(v)
        params[k.lower()] = v
    return scheme.lower(), params


def unquote_string(text: str) -> str:
    """Strip the quotes of a quoted-string and resolve its quoted-pairs (``\\x`` -> ``x``)."""
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        text = text[1:-1]
    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text):
            i += 1
        out.append(text[i])
        i += 1
    return "".join(out)


# Parsed views are immutable values: memoised by their text (see memo.py).
_VIA_MEMO: dict[str, Via] = memo_table()
_CSEQ_MEMO: dict[str, CSeq] = memo_table()
