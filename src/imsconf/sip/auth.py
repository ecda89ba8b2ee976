"""Digest authentication, server side (RFC 3261 §22, RFC 7616, RFC 8760), sans-I/O.

The server keeps no per-challenge state: a nonce is ``base64url(timestamp ‖ random ‖ HMAC(secret, ...))``,
so :meth:`DigestAuthenticator.verify` tells a forged nonce (bad MAC) from a stale one (good MAC, too old)
and answers the stale case with ``stale=true`` (RFC 7616 §3.3) so the client retries without asking its
user again.  The only state is a bounded map nonce → highest ``nc`` seen, for replay protection; a nonce
whose entry had to be evicted is treated as stale afterwards (see :class:`_NonceCounters`).

The time is always passed in as ``now`` (seconds, any monotonic origin the caller keeps fixed).

Secrets discipline: no password, HA1 or expected response is ever put in an exception, a log record or an
:class:`AuthResult`.  ``reason`` strings are fixed texts meant for the server's log, not for the peer.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import struct
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import unquote

from .errors import SipParseError
from .headers import parse_auth_params

__all__ = [
    "ALGORITHMS",
    "AuthResult",
    "CredentialsLookup",
    "DigestAuthenticator",
    "challenge_header_name",
    "challenge_status",
    "compute_ha1",
    "compute_response",
    "credentials_header_name",
    "hash_hex",
]

# RFC 7616 §6.1 / RFC 8760 §2: algorithm token -> hashlib name.  Each has a "-sess" variant (§3.4.2).
_HASHES: dict[str, str] = {"MD5": "md5", "SHA-256": "sha256", "SHA-512-256": "sha512_256"}
ALGORITHMS: frozenset[str] = frozenset(list(_HASHES) + [f"{a}-sess" for a in _HASHES])

MAX_HEADER_VALUE = 4096  # longer Authorization values are refused without parsing
DEFAULT_MAX_TRACKED_NONCES = 10_000
_FUTURE_SKEW = 1.0  # seconds a nonce may appear to come from the future (clock granularity)

_NONCE_RAW = 8 + 8 + 16  # timestamp (ms, signed 64-bit) + random + truncated HMAC-SHA-256
_NC_RE = re.compile(r"[0-9A-Fa-f]{8}")
_HEX_RE = re.compile(r"[0-9a-f]+")
_EXT_VALUE_RE = re.compile(r"(?i)utf-8'[^']*'(.*)")  # RFC 8187 ext-value, the only charset RFC 7616 allows

CredentialsLookup = Callable[[str, str, str], "bytes | str | None"]
"""``lookup(username, realm, algorithm)`` -> stored HA1 as hex, or None when the user is unknown.

*algorithm* is the base algorithm (``"MD5"``, ``"SHA-256"``, ``"SHA-512-256"``); for the ``-sess``
variants the authenticator derives the session HA1 itself.
"""


# ---- hashing -------------------------------------------------------------------------------------------


def _base_algorithm(algorithm: str) -> str:
    return algorithm[:-5] if algorithm.endswith("-sess") else algorithm


def hash_hex(algorithm: str, data: bytes) -> str:
    """Lower-case hex digest of *data* with the hash of the digest *algorithm* (with or without -sess)."""
    name = _HASHES.get(_base_algorithm(algorithm))
    if name is None:
        raise ValueError(f"unsupported digest algorithm {algorithm!r}")
    return hashlib.new(name, data).hexdigest()


def _h(algorithm: str, *parts: str) -> str:
    return hash_hex(algorithm, ":".join(parts).encode("utf-8"))


def compute_ha1(username: str, realm: str, password: str, algorithm: str = "SHA-256") -> str:
    """HA1 = H(username ":" realm ":" password) (RFC 7616 §3.4.2), the value a user store keeps."""
    return _h(algorithm, username, realm, password)


def compute_response(
    algorithm: str,
    ha1: str,
    method: str,
    uri: str,
    nonce: str,
    *,
    qop: str | None = "auth",
    nc: str = "",
    cnonce: str = "",
    body: bytes = b"",
) -> str:
    """The ``response`` value from a stored (non-session) HA1 (RFC 7616 §3.4.1, RFC 2617 §3.2.2.1).

    For a ``-sess`` algorithm the session HA1 is derived here: H(HA1 ":" nonce ":" cnonce).
    ``qop=None`` is the RFC 2069 form, kept only to compute old test vectors; the server never accepts it.
    """
    if algorithm.endswith("-sess"):
        ha1 = _h(algorithm, ha1, nonce, cnonce)
    if qop == "auth-int":
        ha2 = _h(algorithm, method, uri, hash_hex(algorithm, body))
    else:
        ha2 = _h(algorithm, method, uri)
    if qop is None:
        return _h(algorithm, ha1, nonce, ha2)
    return _h(algorithm, ha1, nonce, nc, cnonce, qop, ha2)


# ---- 401 / 407 -----------------------------------------------------------------------------------------


def challenge_status(proxy: bool = False) -> tuple[int, str]:
    """Status to challenge with: a UAS answers 401, a proxy 407 (RFC 3261 §22.2, §22.3)."""
    return (407, "Proxy Authentication Required") if proxy else (401, "Unauthorized")


def challenge_header_name(proxy: bool = False) -> str:
    return "Proxy-Authenticate" if proxy else "WWW-Authenticate"


def credentials_header_name(proxy: bool = False) -> str:
    return "Proxy-Authorization" if proxy else "Authorization"


# ---- result --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuthResult:
    """Outcome of :meth:`DigestAuthenticator.verify`.

    ``username`` is set whenever the credentials named one (also on failure, for the log and for rate
    limiting); ``stale`` asks the caller to challenge again with ``stale=True``; ``algorithm`` is the one the
    client used when it got that far.
    """

    ok: bool
    username: str | None = None
    stale: bool = False
    reason: str = ""
    algorithm: str | None = None

    def __post_init__(self) -> None:
        if self.ok and (self.stale or not self.username):
            raise ValueError("a successful AuthResult has a username and is not stale")


def _fail(reason: str, username: str | None = None, algorithm: str | None = None) -> AuthResult:
    return AuthResult(False, username, False, reason, algorithm)


# ---- nc replay cache -----------------------------------------------------------------------------------


class _NonceCounters:
    """Highest ``nc`` accepted per nonce, bounded.

    When full, the least recently used entry is evicted and its nonce timestamp raises a watermark: a nonce
    not in the cache whose timestamp is at or below the watermark may have been seen before, so it is
    answered as stale (the client re-authenticates with a fresh nonce without prompting).  Replays are
    therefore impossible even under cache pressure; the cost is an extra round trip for some clients.
    """

    def __init__(self, max_entries: int) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._max = max_entries
        self._seen: OrderedDict[str, tuple[int, int]] = OrderedDict()  # nonce -> (timestamp_ms, highest nc)
        self._watermark_ms: int | None = None

    def check(self, nonce: str, ts_ms: int, nc: int) -> str | None:
        """None when *nc* is acceptable, else "replayed" or "evicted"."""
        entry = self._seen.get(nonce)
        if entry is None:
            if self._watermark_ms is not None and ts_ms <= self._watermark_ms:
                return "evicted"
            return None
        return None if nc > entry[1] else "replayed"

    def record(self, nonce: str, ts_ms: int, nc: int) -> None:
        self._seen[nonce] = (ts_ms, nc)
        self._seen.move_to_end(nonce)
        while len(self._seen) > self._max:
            _, (old_ts, _) = self._seen.popitem(last=False)
            if self._watermark_ms is None or old_ts > self._watermark_ms:
                self._watermark_ms = old_ts

    def expire(self, before_ms: int) -> None:
        """Forget nonces older than *before_ms*: they are stale anyway, whatever their nc."""
        for nonce in [n for n, (ts, _) in self._seen.items() if ts < before_ms]:
            del self._seen[nonce]

    def __len__(self) -> int:
        return len(self._seen)


# ---- the authenticator ---------------------------------------------------------------------------------


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes | None:
    if not text or len(text) > 64 or not re.fullmatch(r"[A-Za-z0-9_-]+", text):
        return None
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except ValueError:
        return None


class DigestAuthenticator:
    """Challenges and verifies Digest credentials for one realm.

    ``secret`` keys the nonce MAC (at least 16 bytes; a restart with a new secret only makes outstanding
    nonces look forged, which costs clients one extra challenge).  ``algorithms`` are offered in the given
    order, one challenge header each (RFC 8760 §2.4: the preferred one first).  ``qops`` are the
    qop values offered and accepted: "auth" and optionally "auth-int".
    """

    def __init__(
        self,
        realm: str,
        credentials_lookup: CredentialsLookup,
        secret: bytes,
        nonce_lifetime: float = 300.0,
        algorithms: Sequence[str] = ("SHA-256", "MD5"),
        *,
        qops: Sequence[str] = ("auth",),
        max_tracked_nonces: int = DEFAULT_MAX_TRACKED_NONCES,
    ) -> None:
        if not realm or any(c in realm for c in '"\\\r\n\0'):
            raise ValueError("realm must be non-empty and free of quotes, backslashes and control characters")
        if len(secret) < 16:
            raise ValueError("the nonce secret must be at least 16 bytes")
        if nonce_lifetime <= 0:
            raise ValueError("nonce_lifetime must be positive")
        if not algorithms:
            raise ValueError("at least one algorithm is needed")
        for alg in algorithms:
            if alg not in ALGORITHMS:
                raise ValueError(f"unsupported digest algorithm {alg!r}")
        if len(set(algorithms)) != len(algorithms):
            raise ValueError("duplicate algorithm")
        if not qops or any(q not in ("auth", "auth-int") for q in qops):
            raise ValueError("qops must be a non-empty subset of ('auth', 'auth-int')")
        self.realm = realm
        self.algorithms: tuple[str, ...] = tuple(algorithms)
        self.qops: tuple[str, ...] = tuple(qops)
        self.nonce_lifetime = nonce_lifetime
        self._lookup = credentials_lookup
        self._secret = secret
        self._counters = _NonceCounters(max_tracked_nonces)
        self._next_sweep_ms: int | float = float("-inf")
        self._opaque = _b64(self._mac(b"opaque")[:12])

    # -- nonces --

    def _mac(self, data: bytes) -> bytes:
        return hmac.new(
            self._secret, b"imsconf-digest\0" + self.realm.encode("utf-8") + b"\0" + data, "sha256"
        ).digest()

    def make_nonce(self, now: float) -> str:
        head = struct.pack(">q", round(now * 1000)) + secrets.token_bytes(8)
        return _b64(head + self._mac(head)[:16])

    def _open_nonce(self, nonce: str) -> int | None:
        """Timestamp (ms) of a nonce this server made, or None for anything else."""
        raw = _unb64(nonce)
        if raw is None or len(raw) != _NONCE_RAW:
            return None
        head, tag = raw[:16], raw[16:]
        if not hmac.compare_digest(tag, self._mac(head)[:16]):
            return None
        ts_ms: int = struct.unpack(">q", head[:8])[0]
        return ts_ms

    # -- challenge --

    def challenge(self, now: float, stale: bool = False) -> list[str]:
        """WWW-Authenticate / Proxy-Authenticate values, one per algorithm, sharing one fresh nonce."""
        nonce = self.make_nonce(now)
        qop = ", ".join(self.qops)
        tail = ", stale=true" if stale else ""
        return [
            f"Digest realm={_quote(self.realm)}, nonce={_quote(nonce)}, opaque={_quote(self._opaque)}, "
            f"algorithm={alg}, qop={_quote(qop)}{tail}"
            for alg in self.algorithms
        ]

    def challenge_headers(
        self, now: float, stale: bool = False, proxy: bool = False
    ) -> list[tuple[str, str]]:
        """(header name, value) pairs for a 401 (or a 407 when *proxy*)."""
        name = challenge_header_name(proxy)
        return [(name, v) for v in self.challenge(now, stale)]

    # -- verification --

    def select_credentials(self, values: Iterable[str]) -> str | None:
        """Among several Authorization values, the first Digest one for this realm (RFC 3261 §22.4)."""
        first_digest: str | None = None
        for value in values:
            if len(value) > MAX_HEADER_VALUE:
                continue
            try:
                scheme, params = parse_auth_params(value)
            except SipParseError:
                continue
            if scheme != "digest":
                continue
            if params.get("realm") == self.realm:
                return value
            if first_digest is None:
                first_digest = value
        return first_digest

    def verify(
        self,
        request_method: str,
        authorization_header_value: str | None,
        now: float,
        body: bytes = b"",
        *,
        request_uri: str | None = None,
    ) -> AuthResult:
        """Check one Authorization / Proxy-Authorization value.

        Never raises for any header content: every problem is a failed :class:`AuthResult`.  When
        *request_uri* is given, the ``uri`` parameter must equal it exactly (RFC 7616 §3.4.6); proxies that
        rewrite the Request-URI are the reason it is optional.
        """
        value = authorization_header_value
        if value is None or not value.strip():
            return _fail("missing credentials")
        if len(value) > MAX_HEADER_VALUE:
            return _fail("credentials too long")
        try:
            value.encode("utf-8")
            scheme, params = parse_auth_params(value)
        except (SipParseError, UnicodeError):
            return _fail("malformed credentials")
        if scheme != "digest":
            return _fail("unsupported authentication scheme")

        username = self._username(params)
        if username is None:
            return _fail("missing or invalid username")
        for name in ("realm", "nonce", "uri", "response"):
            if not params.get(name):
                return _fail(f"missing parameter: {name}", username)
        if params["realm"] != self.realm:
            return _fail("wrong realm", username)

        algorithm = params.get("algorithm", "MD5")  # RFC 7616 §3.4: absent means MD5
        algorithm = next((a for a in self.algorithms if a.lower() == algorithm.lower()), algorithm)
        if algorithm not in self.algorithms:
            return _fail("unsupported algorithm", username)

        qop = params.get("qop")
        if qop is None:
            return _fail("missing parameter: qop", username)  # RFC 2069 compatibility is not offered
        if qop not in self.qops:
            return _fail("unsupported qop", username, algorithm)
        nc_text, cnonce = params.get("nc", ""), params.get("cnonce", "")
        if not _NC_RE.fullmatch(nc_text):
            return _fail("missing or malformed nc", username, algorithm)
        if not cnonce:
            return _fail("missing parameter: cnonce", username, algorithm)
        nc = int(nc_text, 16)
        if nc == 0:
            return _fail("malformed nc", username, algorithm)

        response = params["response"].lower()
        if len(response) != 2 * hashlib.new(_HASHES[_base_algorithm(algorithm)]).digest_size or not (
            _HEX_RE.fullmatch(response)
        ):
            return _fail("malformed response", username, algorithm)
        if "opaque" in params and not hmac.compare_digest(
            params["opaque"].encode("utf-8"), self._opaque.encode()
        ):
            return _fail("opaque mismatch", username, algorithm)
        uri = params["uri"]
        if request_uri is not None and uri != request_uri:
            return _fail("uri does not match the request", username, algorithm)

        nonce = params["nonce"]
        ts_ms = self._open_nonce(nonce)
        if ts_ms is None:
            return _fail("forged or foreign nonce", username, algorithm)
        now_ms = round(now * 1000)
        if ts_ms > now_ms + _FUTURE_SKEW * 1000:
            return _fail("nonce from the future", username, algorithm)
        too_old = now_ms - ts_ms > self.nonce_lifetime * 1000

        # The response is checked even for a stale nonce: stale=true is only for a client that knows
        # the password (RFC 7616 §3.3), anything else is a plain failure.
        base = _base_algorithm(algorithm)
        stored = self._lookup(username, self.realm, base)
        ha1 = _normalise_ha1(stored, base)
        known = ha1 is not None
        if ha1 is None:
            ha1 = "0" * (2 * hashlib.new(_HASHES[base]).digest_size)  # same work for unknown users
        try:
            expected = compute_response(
                algorithm, ha1, request_method, uri, nonce, qop=qop, nc=nc_text, cnonce=cnonce, body=body
            )
        except UnicodeError:
            return _fail("malformed credentials", username, algorithm)
        match = hmac.compare_digest(expected.encode("ascii"), response.encode("ascii"))
        if not known:
            return _fail("unknown user", username, algorithm)
        if not match:
            return _fail("wrong response", username, algorithm)
        if too_old:
            return AuthResult(False, username, True, "stale nonce", algorithm)

        replay = self._counters.check(nonce, ts_ms, nc)
        if replay == "replayed":
            return _fail("replayed nc", username, algorithm)
        if replay == "evicted":
            return AuthResult(False, username, True, "nonce no longer tracked", algorithm)
        if now_ms >= self._next_sweep_ms:  # a full scan at most every lifetime/4, not per request
            self._counters.expire(now_ms - round(self.nonce_lifetime * 1000))
            self._next_sweep_ms = now_ms + round(self.nonce_lifetime * 250)
        self._counters.record(nonce, ts_ms, nc)
        return AuthResult(True, username, False, "ok", algorithm)

    @staticmethod
    def _username(params: dict[str, str]) -> str | None:
        username = params.get("username")
        ext = params.get("username*")
        if username is not None and ext is not None:
            return None  # RFC 7616 §3.4: MUST NOT both be present
        if params.get("userhash", "false").lower() == "true":
            return None  # no reverse map from userhash to user is kept
        if username is None and ext is not None:
            m = _EXT_VALUE_RE.fullmatch(ext)
            if not m:
                return None
            try:
                username = unquote(m.group(1), encoding="utf-8", errors="strict")
            except UnicodeDecodeError:
                return None
        if not username or any(ord(c) < 0x20 or c == "\x7f" for c in username):
            return None
        return username


def _normalise_ha1(stored: bytes | str | None, base_algorithm: str) -> str | None:
    """Validate a stored HA1 (hex of the right length); never echo it in an error."""
    if stored is None:
        return None
    if isinstance(stored, bytes):
        try:
            stored = stored.decode("ascii")
        except UnicodeDecodeError:
            return None
    stored = stored.strip().lower()
    if len(stored) != 2 * hashlib.new(_HASHES[base_algorithm]).digest_size or not _HEX_RE.fullmatch(stored):
        return None
    return stored
