"""SIP/SIPS URIs (RFC 3261 §19.1) and name-addr values (From, To, Contact, Route...)."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import unquote

from imsconf.memo import memo_table, memoised

from . import grammar
from .errors import SipParseError


def split_quoted(text: str, sep: str, *, brackets: bool = True) -> list[str]:
    """Split on *sep* outside double quotes (and outside <...> when *brackets*)."""
    if '"' not in text:  # fast paths: nothing quoted
        if sep not in text:
            return [text]
        if not brackets or "<" not in text:
            return text.split(sep)
    parts: list[str] = []
    buf: list[str] = []
    in_quote = False
    depth = 0
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if in_quote:
            buf.append(ch)
            if ch == "\\" and i + 1 < n:
                buf.append(text[i + 1])
                i += 1
            elif ch == '"':
                in_quote = False
        elif ch == '"':
            in_quote = True
            buf.append(ch)
        elif brackets and ch == "<":
            depth += 1
            buf.append(ch)
        elif brackets and ch == ">":
            depth = max(0, depth - 1)
            buf.append(ch)
        elif ch == sep and depth == 0:
            parts.append("".join(buf))
            buf = []
        else:
            buf.append(ch)
        i += 1
    if in_quote:
        raise SipParseError("unterminated quoted string")
    parts.append("".join(buf))
    return parts


def parse_params(text: str) -> dict[str, str | None]:
    """Parse ``;a=b;c`` (leading semicolon optional).  Names are lower-cased; values keep case."""
    params: dict[str, str | None] = {}
    text = text.strip()
    if not text:
        return params
    if text.startswith(";"):
        text = text[1:]
    for item in split_quoted(text, ";", brackets=False):
        item = item.strip()
        if not item:
            raise SipParseError("empty parameter")
        if "=" in item:
            name, _, value = item.partition("=")
            name = name.strip()
            value = value.strip()
        else:
            name, value = item, None
        if not grammar.FULL_TOKEN_RE.match(name):
            raise SipParseError(f"bad parameter name {name[:40]!r}")
        params[name.lower()] = value
    return params


def format_params(params: dict[str, str | None]) -> str:
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params.items())


@dataclass(frozen=True, slots=True)
class SipUri:
    """A sip:, sips: or other absolute URI.  Non-SIP schemes keep only *scheme* and *opaque*."""

    scheme: str
    user: str | None = None
    password: str | None = None
    host: str = ""
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict, hash=False)
    headers: str | None = None
    opaque: str | None = None

    @classmethod
    def parse(cls, text: str) -> SipUri:
        """Parse (memoised by text: the result is an immutable value; errors are not cached)."""
        return memoised(_URI_MEMO, text, cls._parse)

    @classmethod
    def _parse(cls, text: str) -> SipUri:
        if not text.isascii() or not text.isprintable() or " " in text:
            # RFC 3986/3261: a URI is printable US-ASCII; anything else must be %-escaped.
            # RFC 4475 §3.1.2.14: LWS inside <...> is refused (400) rather than silently dropped.
            raise SipParseError("whitespace or non-ASCII character inside URI")
        m = grammar.SCHEME_RE.match(text)
        if not m:
            raise SipParseError(f"URI without scheme: {text[:60]!r}")
        scheme = m.group(1).lower()
        rest = text[m.end() :]
        if scheme not in ("sip", "sips"):
            if not rest:
                raise SipParseError("empty URI")
            return cls(scheme=scheme, opaque=rest)
        headers: str | None = None
        user = password = None
        at = rest.rfind("@")
        userinfo = rest[:at] if at >= 0 else None
        if at >= 0:
            rest = rest[at + 1 :]
        if "?" in rest:
            rest, _, headers = rest.partition("?")
        if userinfo is not None:
            if ":" in userinfo:
                user, _, password = userinfo.partition(":")
            else:
                user = userinfo
            if not user or not grammar.USER_RE.match(user):
                raise SipParseError("bad user part in URI")
            if password is not None and not grammar.PASSWORD_RE.match(password):
                raise SipParseError("bad password in URI")
        hostport, _, ptext = rest.partition(";")
        port: int | None = None
        if hostport.startswith("["):
            end = hostport.find("]")
            if end < 0:
                raise SipParseError("bad IPv6 reference in URI")
            host, tail = hostport[: end + 1], hostport[end + 1 :]
            if tail:
                if not tail.startswith(":"):
                    raise SipParseError("bad host in URI")
                port = _port(tail[1:])
        else:
            host, sep, ptxt = hostport.partition(":")
            if sep:
                port = _port(ptxt)
        if not host or not grammar.HOST_RE.match(host):
            raise SipParseError(f"bad host in URI: {host[:60]!r}")
        params = parse_params(ptext) if ptext else {}
        return cls(scheme, user, password, host.lower(), port, params, headers)

    def __str__(self) -> str:
        if self.opaque is not None:
            return f"{self.scheme}:{self.opaque}"
        s = f"{self.scheme}:"
        if self.user is not None:
            s += self.user
            if self.password is not None:
                s += ":" + self.password
            s += "@"
        s += self.host
        if self.port is not None:
            s += f":{self.port}"
        s += format_params(self.params)
        if self.headers is not None:
            s += "?" + self.headers
        return s

    @property
    def user_unescaped(self) -> str | None:
        return None if self.user is None else unquote(self.user)

    @property
    def aor(self) -> str:
        """Address of record form ``scheme:user@host`` used as a lookup key (params dropped)."""
        if self.opaque is not None:
            return f"{self.scheme}:{self.opaque}"
        user = self.user_unescaped
        return f"sip:{user}@{self.host}" if user else f"sip:{self.host}"

    def with_params(self, **changes: str | None) -> SipUri:
        params = dict(self.params)
        params.update(changes)
        return SipUri(
            self.scheme, self.user, self.password, self.host, self.port, params, self.headers, self.opaque
        )

    @property
    def unescaped_params(self) -> dict[str, str | None]:
        """URI parameters, %-escapes decoded, names lower-cased (RFC 4475 §3.1.1.3: ``%6C%72`` is lr)."""
        return {unquote(k).lower(): (None if v is None else unquote(v)) for k, v in self.params.items()}

    @property
    def header_fields(self) -> list[tuple[str, str]]:
        """The ``?name=value&...`` part as decoded (name, value) pairs, in order."""
        if not self.headers:
            return []
        out: list[tuple[str, str]] = []
        for item in self.headers.split("&"):
            name, _, value = item.partition("=")
            out.append((unquote(name), unquote(value)))
        return out

    def equivalent(self, other: SipUri) -> bool:
        """RFC 3261 §19.1.4 comparison.

        Userinfo is case-sensitive, every other component case-insensitive, all after %-unescaping.  A user,
        ttl, method or maddr parameter present in only one URI never matches, and neither does transport: the
        rule text puts it with "all other" parameters, but the section's own example (``sip:bob@biloxi.com``
        vs ``sip:bob@biloxi.com;transport=udp``, not equivalent) requires it; we follow the example.  Other
        parameters count only when present in both.  Header components must match exactly, as a set.
        """
        if self.scheme != other.scheme:
            return False
        if self.opaque is not None or other.opaque is not None:
            return self.opaque == other.opaque
        if self.user_unescaped != other.user_unescaped:
            return False
        pa = None if self.password is None else unquote(self.password)
        pb = None if other.password is None else unquote(other.password)
        if pa != pb or self.host != other.host or self.port != other.port:
            return False
        mine, theirs = self.unescaped_params, other.unescaped_params
        for name in mine.keys() | theirs.keys():
            if name not in mine or name not in theirs:
                if name in _MUST_MATCH_PARAMS:
                    return False
                continue
            a, b = mine[name], theirs[name]
            if (a is None) != (b is None) or (a is not None and b is not None and a.lower() != b.lower()):
                return False
        return _header_set(self) == _header_set(other)


_MUST_MATCH_PARAMS = frozenset(["user", "ttl", "method", "maddr", "transport"])


def _header_set(uri: SipUri) -> frozenset[tuple[str, str]]:
    return frozenset((n.lower(), v.lower()) for n, v in uri.header_fields)


def _port(text: str) -> int:
    if not grammar.DIGITS_RE.fullmatch(text) or len(text) > 5 or int(text) > 65535:
        raise SipParseError("bad port in URI")
    return int(text)


@dataclass(frozen=True, slots=True)
class NameAddr:
    """``display <uri>;params`` or ``uri;params`` (params then belong to the header, RFC 3261 §20)."""

    uri: SipUri
    display: str | None = None
    params: dict[str, str | None] = field(default_factory=dict, hash=False)

    @classmethod
    def parse(cls, text: str) -> NameAddr:
        """Parse (memoised by text: the result is an immutable value; errors are not cached)."""
        return memoised(_NAME_ADDR_MEMO, text, cls._parse)

    @classmethod
    def _parse(cls, text: str) -> NameAddr:
        text = text.strip()
        if not text:
            raise SipParseError("empty address")
        display: str | None = None
        lt = _find_unquoted(text, "<")
        if lt >= 0:
            disp = text[:lt].strip()
            if disp:
                if disp.startswith('"'):
                    if not (
                        len(disp) >= 2 and disp.endswith('"') and grammar.QUOTED_STRING_RE.fullmatch(disp)
                    ):
                        raise SipParseError("bad quoted display name")
                    display = disp
                elif grammar.DISPLAY_TOKENS_RE.match(disp):
                    display = disp
                else:
                    raise SipParseError("bad display name")
            gt = text.find(">", lt)
            if gt < 0:
                raise SipParseError("unterminated <uri>")
            uri = SipUri.parse(text[lt + 1 : gt])
            rest = text[gt + 1 :].strip()
            if rest and not rest.startswith(";"):
                raise SipParseError("junk after name-addr")
            return cls(uri, display, parse_params(rest))
        if '"' in text:
            raise SipParseError("quoted display name without <uri>")
        # addr-spec: URI parameters cannot appear here; a ';' starts header parameters (SEMI = SWS ";" SWS,
        # so LWS before it is legal: RFC 4475 §3.1.1.1 "sip:vivekg@chair-dnrc.example.com ;   tag = ...").
        uri_text, _, ptext = text.partition(";")
        uri_text = uri_text.rstrip(" \t")
        if any(c in uri_text for c in " \t"):
            raise SipParseError("whitespace inside addr-spec")
        if "," in uri_text:
            raise SipParseError("addr-spec with reserved characters must use <>")
        # Leniency (RFC 4475 §3.1.2.13): a URI with '?headers' must be enclosed in <>, but since header values
        # cannot contain an unescaped ';' or ',' there is no ambiguity left once those are split off, so the
        # brackets are inferred instead of answering 400.
        return cls(SipUri.parse(uri_text), None, parse_params(ptext))

    def __str__(self) -> str:
        disp = f"{self.display} " if self.display else ""
        return f"{disp}<{self.uri}>{format_params(self.params)}"

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")

    def with_tag(self, tag: str) -> NameAddr:
        params = dict(self.params)
        params["tag"] = tag
        return NameAddr(self.uri, self.display, params)

    @property
    def display_unquoted(self) -> str | None:
        if self.display is None:
            return None
        d = self.display
        if d.startswith('"'):
            d = d[1:-1]
            out: list[str] = []
            i = 0
            while i < len(d):
                if d[i] == "\\" and i + 1 < len(d):
                    i += 1
                out.append(d[i])
                i += 1
            return "".join(out)
        return d


def _find_unquoted(text: str, ch: str) -> int:
    in_quote = False
    i = 0
    while i < len(text):
        c = text[i]
        if in_quote:
            if c == "\\":
                i += 1
            elif c == '"':
                in_quote = False
        elif c == '"':
            in_quote = True
        elif c == ch:
            return i
        i += 1
    return -1


# Parsed views are immutable values: memoised by their text (see memo.py).
_URI_MEMO: dict[str, SipUri] = memo_table()
_NAME_ADDR_MEMO: dict[str, NameAddr] = memo_table()
