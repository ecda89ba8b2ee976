"""A booking of a planned conference: the validated, immutable record.

A :class:`Booking` reserves a conference URI for a time window, with an optional PIN, a roster of invitees,
a capacity and the media/keying policy the focus applies when the conference is instantiated on the first
dial-in.  Pure: no clock (``now`` is always an argument), no storage, no I/O.

Two ways in, one set of rules:

- :func:`booking_from_request` takes loosely typed input (decoded JSON, CLI strings), checks *every* field
  and raises :class:`InvalidBooking` listing each wrong field (``BookingError(field, reason)``);
- the :class:`Booking` constructor checks the structural invariants again, so no invalid booking exists.

The PIN is never kept in clear: only a salted scrypt hash (:func:`hash_pin`), checked in constant time
(:func:`verify_pin_hash`).  ``repr()`` and :func:`booking_to_json` never show the hash.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Final, TypeVar

from imsconf.keys.policy import DownlinkMode, RekeyPolicy
from imsconf.sdp.codecs import SUPPORTED as SUPPORTED_CODECS
from imsconf.sip.errors import SipParseError
from imsconf.sip.uri import SipUri

__all__ = [
    "CAPACITY_MAX",
    "MAX_LEAD_TIME",
    "MAX_OVERRUN",
    "MAX_WINDOW",
    "REQUEST_FIELDS",
    "SUPPORTED_CODECS",
    "Booking",
    "BookingError",
    "DownlinkMode",
    "InvalidBooking",
    "Invitee",
    "InviteeRole",
    "RekeyPolicy",
    "WindowState",
    "booking_from_request",
    "booking_to_json",
    "codecs_text",
    "conference_key",
    "format_time",
    "generate_conference_uri",
    "hash_pin",
    "new_booking_id",
    "parse_codecs",
    "parse_rekey",
    "parse_time",
    "pin_from_uri",
    "rekey_text",
    "verify_pin_hash",
    "window_status",
]

CAPACITY_MIN: Final = 1
CAPACITY_MAX: Final = 1000
DEFAULT_CAPACITY: Final = 10
MAX_WINDOW: Final = timedelta(days=7)
MAX_LEAD_TIME: Final = timedelta(days=366)  # how far ahead a window may start
MAX_OVERRUN: Final = 240  # minutes a booked conference may run past its window's end
MAX_SUBJECT: Final = 200
MAX_URI: Final = 256
REKEY_INTERVAL_MAX: Final = 86400
PIN_RE: Final = re.compile(r"[0-9]{4,12}\Z", re.A)
_ID_RE: Final = re.compile(r"[a-z0-9]{8,64}\Z", re.A)
# the user part of a chosen conference URI: conservative, so that no %-escape makes two spellings of one room
_CONF_USER_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._~-]{0,63}\Z", re.A)
GENERATED_PREFIX: Final = "conf-"
# tel URI (RFC 3966): global number, or local number with phone-context; visual separators allowed
_TEL_RE: Final = re.compile(
    r"(?:\+[0-9][0-9().-]{0,31}|[0-9*#A-Fa-f().-]{1,32};phone-context=[A-Za-z0-9+.()-]{1,64})\Z", re.A
)

# scrypt for PINs: a 4-12 digit PIN is weak whatever the hash, so the hash is made slow (~40 ms, 16 MiB)
_SCRYPT_N: Final = 2**14
_SCRYPT_R: Final = 8
_SCRYPT_P: Final = 1
_SCRYPT_LEN: Final = 32
_PIN_HASH_RE: Final = re.compile(
    r"scrypt\$(\d{1,8})\$(\d{1,3})\$(\d{1,3})\$([A-Za-z0-9+/=]{16,64})\$([A-Za-z0-9+/=]{16,128})\Z"
)


class BookingError(ValueError):
    """One wrong field: *field* is the request field name (``start``, ``invitees[2].role``...)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BookingError) and (self.field, self.reason) == (other.field, other.reason)

    def __hash__(self) -> int:
        return hash((self.field, self.reason))

    def as_json(self) -> dict[str, str]:
        return {"field": self.field, "reason": self.reason}


class InvalidBooking(ValueError):
    """Every wrong field of one request, in request order."""

    def __init__(self, errors: Iterable[BookingError]) -> None:
        self.errors: tuple[BookingError, ...] = tuple(errors)
        super().__init__("; ".join(str(e) for e in self.errors) or "invalid booking")

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(e.field for e in self.errors)


class InviteeRole(StrEnum):
    CHAIR = "chair"  # the owner of the conference (RFC 4579 / conference model: Role.OWNER)
    MODERATOR = "moderator"
    PARTICIPANT = "participant"


# The booking's downlink field holds a keys.policy.DownlinkMode; the old name stays until every caller
# (focus/planned.py, tests/focus) imports DownlinkMode.


class WindowState(StrEnum):
    """Where a dial-in at *now* falls for a conference URI (:meth:`BookingStore.window_status`)."""

    EARLY = "early"
    OPEN = "open"
    ENDED = "ended"
    CANCELLED = "cancelled"
    UNKNOWN = "unknown"


def parse_rekey(text: str) -> RekeyPolicy:
    """A booking's rekey field → :class:`~imsconf.keys.policy.RekeyPolicy`.

    The booking grammar is narrower than the server setting's: ``on-join``, ``on-leave``, ``both``,
    ``never`` and ``interval:T`` (T whole seconds, 1..86400, optionally suffixed ``s``): rekey on join and
    on leave, but at most once every T seconds (changes in between are batched).  Raises ``ValueError``.
    """
    t = text.strip().lower()
    fixed = {
        "on-join": RekeyPolicy(True, False),
        "on-leave": RekeyPolicy(False, True),
        "both": RekeyPolicy.both(),
        "never": RekeyPolicy.never(),
    }
    if t in fixed:
        return fixed[t]
    kind, sep, value = t.partition(":")
    if kind == "interval" and sep:
        value = value.removesuffix("s")
        if value.isascii() and value.isdigit() and 1 <= int(value) <= REKEY_INTERVAL_MAX:
            return RekeyPolicy.every(int(value))
        raise ValueError(f"interval must be a whole number of seconds, 1 to {REKEY_INTERVAL_MAX}")
    raise ValueError("must be one of on-join, on-leave, both, never, interval:SECONDS")


def rekey_text(policy: RekeyPolicy) -> str:
    """The booking text form of ``policy`` (what :func:`parse_rekey` reads back)."""
    if policy.interval is not None:
        return f"interval:{policy.interval:g}"
    return {(True, False): "on-join", (False, True): "on-leave", (True, True): "both"}.get(
        (policy.on_join, policy.on_leave), "never"
    )


@dataclass(frozen=True, slots=True)
class Invitee:
    """One roster entry: a SIP, SIPS or tel URI and the role the invitee holds when it joins."""

    uri: str
    role: InviteeRole = InviteeRole.PARTICIPANT

    def __post_init__(self) -> None:
        object.__setattr__(self, "uri", _check_invitee_uri(self.uri))
        object.__setattr__(self, "role", _check_role(self.role))


# -- field checks: each returns the normalized value or raises ValueError with the reason --


def _check_conference_uri(value: object, domain: str | None = None, reserved: Iterable[str] = ()) -> str:
    """A chosen conference URI → canonical ``sip:user@host`` (or ``sips:``)."""
    if not isinstance(value, str):
        raise ValueError("must be a string such as 'sip:weekly@example.com'")
    if not value or len(value) > MAX_URI:
        raise ValueError(f"must be 1 to {MAX_URI} characters")
    try:
        uri = SipUri.parse(value.strip())
    except SipParseError as exc:
        raise ValueError(f"not a SIP URI ({exc})") from None
    if uri.scheme not in ("sip", "sips"):
        raise ValueError("must be a sip: or sips: URI")
    if uri.user is None:
        raise ValueError("needs a user part, as in sip:weekly@example.com")
    if uri.password is not None or uri.headers is not None or uri.params or uri.port is not None:
        raise ValueError("must be a plain sip:user@host, without password, port, parameters or headers")
    if not _CONF_USER_RE.match(uri.user):
        raise ValueError(
            "user part must be 1 to 64 letters, digits, '.', '_', '~' or '-', starting alphanumeric"
        )
    if uri.user.lower().startswith(GENERATED_PREFIX):
        raise ValueError(
            f"user parts starting with {GENERATED_PREFIX!r} are reserved for generated conference URIs"
        )
    if uri.user in set(reserved):
        raise ValueError(f"user part {uri.user!r} is reserved (it is the conference factory)")
    if domain is not None and uri.host != _host(domain).lower():
        raise ValueError(f"host must be the served domain {domain!r}")
    return f"{uri.scheme}:{uri.user}@{uri.host}"


def _check_stored_conference_uri(value: object) -> str:
    """Structural check for a stored URI (chosen or generated): ``sip(s):user@host``, nothing else."""
    if not isinstance(value, str) or len(value) > MAX_URI:
        raise ValueError("must be a SIP URI string")
    try:
        uri = SipUri.parse(value)
    except SipParseError as exc:
        raise ValueError(f"not a SIP URI ({exc})") from None
    if (
        uri.scheme not in ("sip", "sips")
        or uri.user is None
        or not _CONF_USER_RE.match(uri.user)
        or uri.password is not None
        or uri.headers is not None
        or uri.params
        or uri.port is not None
    ):
        raise ValueError("must be a plain sip:user@host")
    return f"{uri.scheme}:{uri.user}@{uri.host}"


def _check_invitee_uri(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError("must be a sip:, sips: or tel: URI string")
    if len(value) > MAX_URI:
        raise ValueError(f"longer than {MAX_URI} characters")
    scheme, sep, rest = value.strip().partition(":")
    scheme = scheme.lower()
    if not sep or scheme not in ("sip", "sips", "tel"):
        raise ValueError("must be a sip:, sips: or tel: URI")
    if scheme == "tel":
        if not _TEL_RE.match(rest):
            raise ValueError("not a tel URI: use a global number such as tel:+4930123456")
        return f"tel:{rest}"
    try:
        uri = SipUri.parse(value.strip())
    except SipParseError as exc:
        raise ValueError(f"not a SIP URI ({exc})") from None
    if uri.user is None:
        raise ValueError("needs a user part, as in sip:alice@example.com")
    if uri.password is not None or uri.headers is not None:
        raise ValueError("must not carry a password or headers")
    return str(uri)


def _check_role(value: object) -> InviteeRole:
    return _enum_member(InviteeRole, value)


def _check_capacity(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError("must be an integer")
    if not CAPACITY_MIN <= value <= CAPACITY_MAX:
        raise ValueError(f"must be from {CAPACITY_MIN} to {CAPACITY_MAX}")
    return value


def _check_overrun(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError("must be a whole number of minutes")
    if not 0 <= value <= MAX_OVERRUN:
        raise ValueError(f"must be from 0 to {MAX_OVERRUN} minutes")
    return value


def _check_aware(value: object) -> datetime:
    if not isinstance(value, datetime):
        raise ValueError("must be a datetime")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("needs a UTC offset, as in 2030-06-01T09:00:00Z")
    return value.astimezone(UTC).replace(microsecond=0)


def _check_window(start: datetime, end: datetime) -> None:
    """Raises BookingError on ``end`` (the field a user fixes)."""
    if end <= start:
        raise BookingError("end", "must be after start")
    if end - start > MAX_WINDOW:
        raise BookingError("end", f"the window is longer than the maximum of {MAX_WINDOW.days} days")


def _check_subject(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError("must be a string")
    if len(value) > MAX_SUBJECT:
        raise ValueError(f"longer than {MAX_SUBJECT} characters")
    if not value.isprintable():
        raise ValueError("control characters are not allowed")
    return value


def _check_pin(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a string of 4 to 12 digits (a string keeps leading zeros)")
    if not PIN_RE.match(value):
        raise ValueError("must be 4 to 12 digits 0-9")
    return value


def _check_bool(value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError("must be true or false")
    return value


def _check_downlink(value: object) -> DownlinkMode:
    return _enum_member(DownlinkMode, value)


_E = TypeVar("_E", bound=StrEnum)


def _enum_member(cls: type[_E], value: object) -> _E:
    for member in cls:
        if member.value == value:
            return member
    raise ValueError(f"must be one of {', '.join(m.value for m in cls)}")


def _check_rekey(value: object) -> RekeyPolicy:
    if isinstance(value, RekeyPolicy):
        return parse_rekey(rekey_text(value))  # a policy the booking grammar can state (whole seconds)
    if not isinstance(value, str):
        raise ValueError("must be a string: on-join, on-leave, both, never or interval:SECONDS")
    return parse_rekey(value)


_CODEC_NAMES: Final = {name.upper(): name for name in SUPPORTED_CODECS}


def _check_codecs(value: object) -> tuple[str, ...]:
    """An ordered list of audio codec names (case-insensitive; kept in the canonical spelling)."""
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise ValueError(
            f"must be a list of codec names, our preference first: {', '.join(SUPPORTED_CODECS)}"
        )
    out: list[str] = []
    for i, item in enumerate(value):
        name = _CODEC_NAMES.get(item.upper()) if isinstance(item, str) else None
        if name is None:
            shown = repr(item)[:32]
            raise ValueError(f"unknown codec {shown} (item {i}): choose from {', '.join(SUPPORTED_CODECS)}")
        if name in out:
            raise ValueError(f"codec {name} is named twice")
        out.append(name)
    return tuple(out)


def parse_codecs(text: str) -> tuple[str, ...]:
    """The stored or command-line form (``G722,PCMU``; empty: none) → codec names.  Raises ValueError."""
    return _check_codecs([t.strip() for t in text.split(",") if t.strip()])


def codecs_text(codecs: Sequence[str]) -> str:
    """The comma-separated form of a codec list (what :func:`parse_codecs` reads back)."""
    return ",".join(codecs)


# -- the record --


@dataclass(frozen=True, slots=True)
class Booking:
    """A planned conference.  Construction checks every structural invariant (InvalidBooking otherwise).

    Times are aware UTC datetimes with whole seconds; the window is ``start <= t < end``.  Dial-in is
    accepted in the window only; a conference of the booking closes at :attr:`closes_at`, ``overrun``
    minutes after the window's end.
    """

    id: str
    uri: str
    start: datetime
    end: datetime
    created_at: datetime
    capacity: int = DEFAULT_CAPACITY
    invitees: tuple[Invitee, ...] = ()
    downlink: DownlinkMode = DownlinkMode.GROUP
    rekey: RekeyPolicy = field(default_factory=RekeyPolicy.both)
    allow_pin_in_uri: bool = False
    dial_out: bool = False
    overrun: int = 0  # minutes
    subject: str | None = None
    pin_hash: str | None = field(default=None, repr=False)
    cancelled: bool = False
    # the conference's audio codec preference, first preferred; empty: the server's audio_codecs setting
    audio_codecs: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        errors: list[BookingError] = []
        set_ = object.__setattr__

        def check(name: str, fn: Callable[[Any], object], value: object) -> None:
            try:
                set_(self, name, fn(value))
            except BookingError as exc:
                errors.append(exc)
            except (ValueError, TypeError) as exc:
                errors.append(BookingError(name, str(exc)))

        if not isinstance(self.id, str) or not _ID_RE.match(self.id):
            errors.append(BookingError("id", "must be 8 to 64 lower-case letters or digits"))
        check("uri", _check_stored_conference_uri, self.uri)
        check("start", _check_aware, self.start)
        check("end", _check_aware, self.end)
        check("created_at", _check_aware, self.created_at)
        if not any(e.field in ("start", "end") for e in errors):
            try:
                _check_window(self.start, self.end)
            except BookingError as exc:
                errors.append(exc)
        check("capacity", _check_capacity, self.capacity)
        if not isinstance(self.invitees, tuple) or not all(isinstance(i, Invitee) for i in self.invitees):
            errors.append(BookingError("invitees", "must be a tuple of Invitee"))
        elif isinstance(self.capacity, int) and len(self.invitees) > self.capacity:
            errors.append(BookingError("invitees", f"{len(self.invitees)} invitees exceed the capacity"))
        check("downlink", _check_downlink, self.downlink)
        check("rekey", _check_rekey, self.rekey)
        check("allow_pin_in_uri", _check_bool, self.allow_pin_in_uri)
        check("dial_out", _check_bool, self.dial_out)
        check("overrun", _check_overrun, self.overrun)
        check("cancelled", _check_bool, self.cancelled)
        check("subject", _check_subject, self.subject)
        check("audio_codecs", _check_codecs, self.audio_codecs)
        if self.pin_hash is not None and (
            not isinstance(self.pin_hash, str) or not _PIN_HASH_RE.match(self.pin_hash)
        ):
            errors.append(BookingError("pin", "stored PIN hash is malformed"))
        if errors:
            raise InvalidBooking(errors)

    @property
    def has_pin(self) -> bool:
        return self.pin_hash is not None

    @property
    def key(self) -> str:
        """The lookup key of the conference URI: ``user@host`` (sip: and sips: name the same room)."""
        return conference_key(self.uri)

    @property
    def closes_at(self) -> datetime:
        """When a conference of this booking is closed: the window's end plus the overrun."""
        return self.end + timedelta(minutes=self.overrun)

    def state_at(self, now: datetime) -> WindowState:
        if self.cancelled:
            return WindowState.CANCELLED
        if now < self.start:
            return WindowState.EARLY
        if now < self.end:
            return WindowState.OPEN
        return WindowState.ENDED

    def verify_pin(self, pin: str) -> bool:
        """Constant-time check of a PIN entered by a caller; a booking without PIN accepts any entry."""
        if self.pin_hash is None:
            return True
        return verify_pin_hash(self.pin_hash, pin)


# -- helpers the focus and the interfaces share --


def new_booking_id() -> str:
    """20 lower-case base32 characters (100 random bits)."""
    return base64.b32encode(secrets.token_bytes(15)).decode("ascii").lower()[:20]


def generate_conference_uri(domain: str, scheme: str = "sip") -> str:
    """``sip:conf-<24 base32 chars>@domain``: 120 random bits, unguessable."""
    token = base64.b32encode(secrets.token_bytes(15)).decode("ascii").lower()
    return f"{scheme}:{GENERATED_PREFIX}{token}@{_host(domain).lower()}"


def window_status(bookings: Sequence[Booking], now: datetime) -> tuple[Booking | None, WindowState]:
    """What a dial-in at *now* meets, given every booking (cancelled included) of one conference URI.

    ``OPEN`` with the booking whose window holds *now*; else ``EARLY`` with the next one; else ``ENDED``
    with the latest past one; else ``CANCELLED`` with the latest cancelled one; else ``(None, UNKNOWN)``.
    """
    live = [b for b in bookings if not b.cancelled]
    for b in live:
        if b.start <= now < b.end:
            return b, WindowState.OPEN
    future = [b for b in live if b.start > now]
    if future:
        return min(future, key=lambda b: b.start), WindowState.EARLY
    if live:
        return max(live, key=lambda b: b.end), WindowState.ENDED
    if bookings:
        return max(bookings, key=lambda b: b.end), WindowState.CANCELLED
    return None, WindowState.UNKNOWN


def conference_key(uri: str | SipUri) -> str:
    """``user@host`` of a conference or Request-URI (params, port, scheme ignored); ValueError if not SIP."""
    if isinstance(uri, str):
        try:
            uri = SipUri.parse(uri.strip())
        except SipParseError as exc:
            raise ValueError(f"not a SIP URI ({exc})") from None
    if uri.scheme not in ("sip", "sips") or uri.user is None:
        raise ValueError("not a sip:user@host URI")
    return f"{uri.user_unescaped}@{uri.host}"


def pin_from_uri(uri: str | SipUri) -> str | None:
    """The ``pin`` URI parameter of a dial-in Request-URI (only honoured if the booking allows it)."""
    if isinstance(uri, str):
        try:
            uri = SipUri.parse(uri.strip())
        except SipParseError:
            return None
    if uri.opaque is not None:
        return None
    value = uri.unescaped_params.get("pin")
    return value if value is not None and PIN_RE.match(value) else None


def hash_pin(pin: str) -> str:
    """``scrypt$N$r$p$salt$hash`` with a fresh 16-byte salt.  ValueError for a malformed PIN."""
    _check_pin(pin)
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(
        pin.encode("ascii"), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P, dklen=_SCRYPT_LEN
    )
    b64 = base64.b64encode
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${b64(salt).decode()}${b64(digest).decode()}"


def verify_pin_hash(stored: str, pin: str) -> bool:
    """Constant-time comparison of scrypt(*pin*) with *stored*; False for a malformed PIN or hash."""
    m = _PIN_HASH_RE.match(stored)
    if m is None or not isinstance(pin, str) or not PIN_RE.match(pin):
        return False
    n, r, p = int(m.group(1)), int(m.group(2)), int(m.group(3))
    if n > 2**20 or n < 2 or n & (n - 1) or not 1 <= r <= 32 or not 1 <= p <= 16:
        return False
    try:
        salt, expected = (
            base64.b64decode(m.group(4), validate=True),
            base64.b64decode(m.group(5), validate=True),
        )
        digest = hashlib.scrypt(
            pin.encode("ascii"), salt=salt, n=n, r=r, p=p, dklen=len(expected), maxmem=2**26
        )
    except ValueError:
        return False
    return hmac.compare_digest(digest, expected)


def parse_time(value: object) -> datetime:
    """ISO 8601 with a UTC offset (``2030-06-01T09:00:00Z``, ``...+02:00``) → aware UTC, whole seconds."""
    if not isinstance(value, str):
        raise ValueError("must be an ISO 8601 date-time string such as 2030-06-01T09:00:00Z")
    text = value.strip()
    if len(text) > 40:
        raise ValueError("too long for a date-time")
    if text.endswith(("z", "Z")):
        text = text[:-1] + "+00:00"
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError("not an ISO 8601 date-time such as 2030-06-01T09:00:00Z") from None
    return _check_aware(dt)


def format_time(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


REQUEST_FIELDS: Final = (
    "uri",
    "start",
    "end",
    "pin",
    "capacity",
    "invitees",
    "downlink",
    "rekey",
    "allow_pin_in_uri",
    "dial_out",
    "overrun",
    "subject",
    "audio_codecs",
)

_T = TypeVar("_T")


def booking_from_request(
    data: Mapping[str, object],
    *,
    domain: str,
    now: datetime,
    reserved_users: Sequence[str] = (),
    booking_id: str | None = None,
) -> Booking:
    """Check every field of a booking request (decoded JSON) and build the :class:`Booking`.

    Fields: ``uri`` (optional; generated when absent), ``start`` and ``end`` (ISO 8601 with offset),
    ``pin`` (string of 4-12 digits), ``capacity`` (1-1000), ``invitees`` (list of ``{"uri", "role"}``),
    ``downlink``, ``rekey``, ``allow_pin_in_uri``, ``dial_out``, ``overrun`` (minutes past the end,
    0-240), ``subject``, ``audio_codecs`` (codec names, preferred first; empty: the server's setting).
    Unknown fields are errors.
    Raises :class:`InvalidBooking` with one :class:`BookingError` per wrong field.
    """
    errors: list[BookingError] = []

    def get(name: str, fn: Callable[[object], _T], default: _T) -> _T:
        if name not in data or (data[name] is None and name != "subject"):
            return default
        try:
            return fn(data[name])
        except BookingError as exc:
            errors.append(exc)
        except ValueError as exc:
            errors.append(BookingError(name, str(exc)))
        return default

    if not isinstance(data, Mapping):
        raise InvalidBooking([BookingError("body", "must be a JSON object")])
    for name in data:
        if name not in REQUEST_FIELDS:
            errors.append(BookingError(str(name)[:64], "unknown field"))

    uri = get("uri", lambda v: _check_conference_uri(v, domain, reserved_users), None)
    for name in ("start", "end"):
        if name not in data or data[name] is None:
            errors.append(
                BookingError(name, "is required (ISO 8601 with UTC offset, e.g. 2030-06-01T09:00:00Z)")
            )
    start = get("start", parse_time, None)
    end = get("end", parse_time, None)
    if start is not None and end is not None:
        try:
            _check_window(start, end)
        except BookingError as exc:
            errors.append(exc)
        if end <= now:
            errors.append(BookingError("end", "the window has already ended"))
        if start - now > MAX_LEAD_TIME:
            errors.append(BookingError("start", f"more than {MAX_LEAD_TIME.days} days ahead"))
    pin = get("pin", _check_pin, None)
    capacity = get("capacity", _check_capacity, DEFAULT_CAPACITY)
    invitees = (
        _invitees_from_request(data.get("invitees"), errors) if data.get("invitees") is not None else ()
    )
    if len(invitees) > capacity:
        errors.append(BookingError("invitees", f"{len(invitees)} invitees exceed the capacity of {capacity}"))
    downlink = get("downlink", _check_downlink, DownlinkMode.GROUP)
    rekey = get("rekey", _check_rekey, RekeyPolicy.both())
    allow_pin_in_uri = get("allow_pin_in_uri", _check_bool, False)
    dial_out = get("dial_out", _check_bool, False)
    overrun = get("overrun", _check_overrun, 0)
    subject = get("subject", _check_subject, None)
    no_codecs: tuple[str, ...] = ()
    audio_codecs = get("audio_codecs", _check_codecs, no_codecs)
    if allow_pin_in_uri and data.get("pin") is None:
        errors.append(BookingError("allow_pin_in_uri", "the booking has no PIN"))
    if dial_out and not invitees and not any(e.field.startswith("invitees") for e in errors):
        errors.append(BookingError("dial_out", "the roster is empty: nobody to dial out to"))
    if errors:
        raise InvalidBooking(errors)
    assert start is not None and end is not None
    return Booking(
        id=booking_id or new_booking_id(),
        uri=uri if uri is not None else generate_conference_uri(domain),
        start=start,
        end=end,
        created_at=now,
        capacity=capacity,
        invitees=invitees,
        downlink=downlink,
        rekey=rekey,
        allow_pin_in_uri=allow_pin_in_uri,
        dial_out=dial_out,
        overrun=overrun,
        subject=subject,
        pin_hash=hash_pin(pin) if pin is not None else None,
        audio_codecs=audio_codecs,
    )


MAX_INVITEES: Final = CAPACITY_MAX


def _invitees_from_request(value: object, errors: list[BookingError]) -> tuple[Invitee, ...]:
    if not isinstance(value, list):
        errors.append(BookingError("invitees", 'must be a list of {"uri": ..., "role": ...} objects'))
        return ()
    if len(value) > MAX_INVITEES:
        errors.append(BookingError("invitees", f"more than {MAX_INVITEES} invitees"))
        return ()
    out: list[Invitee] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(value):
        where = f"invitees[{i}]"
        if isinstance(item, str):
            item = {"uri": item}
        if not isinstance(item, Mapping):
            errors.append(BookingError(where, 'must be an object {"uri": ..., "role": ...} or a URI string'))
            continue
        bad = False
        for k in item:
            if k not in ("uri", "role"):
                errors.append(BookingError(f"{where}.{str(k)[:32]}", "unknown field"))
                bad = True
        try:
            uri = _check_invitee_uri(item.get("uri"))
        except ValueError as exc:
            errors.append(BookingError(f"{where}.uri", str(exc)))
            uri, bad = "", True
        try:
            role = _check_role(item.get("role", "participant"))
        except ValueError as exc:
            errors.append(BookingError(f"{where}.role", str(exc)))
            bad = True
        if uri:
            dup_key = _invitee_key(uri)
            if dup_key in seen:
                errors.append(BookingError(f"{where}.uri", f"duplicate of invitees[{seen[dup_key]}]"))
                bad = True
            seen.setdefault(dup_key, i)
        if not bad:
            out.append(Invitee(uri, role))
    return tuple(out)


def _invitee_key(uri: str) -> str:
    if uri.startswith("tel:"):
        return "tel:" + re.sub(r"[().-]", "", uri[4:]).lower()
    try:
        parsed = SipUri.parse(uri)
    except SipParseError:  # pragma: no cover - checked before
        return uri
    return f"{parsed.user_unescaped}@{parsed.host}"


def booking_to_json(b: Booking) -> dict[str, Any]:
    """The public view (CLI output, HTTP bodies).  Never the PIN or its hash: only ``has_pin``."""
    return {
        "id": b.id,
        "uri": b.uri,
        "start": format_time(b.start),
        "end": format_time(b.end),
        "subject": b.subject,
        "has_pin": b.has_pin,
        "allow_pin_in_uri": b.allow_pin_in_uri,
        "capacity": b.capacity,
        "invitees": [{"uri": i.uri, "role": i.role.value} for i in b.invitees],
        "downlink": b.downlink.value,
        "rekey": rekey_text(b.rekey),
        "dial_out": b.dial_out,
        "overrun": b.overrun,
        "created_at": format_time(b.created_at),
        "cancelled": b.cancelled,
        "audio_codecs": list(b.audio_codecs),
    }


def _host(domain: str) -> str:
    return f"[{domain}]" if ":" in domain and not domain.startswith("[") else domain
