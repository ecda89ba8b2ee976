"""Notifier-side SIP event subscriptions (RFC 6665), sans-I/O.

A :class:`Subscription` holds the state of one subscription in the notifier (the focus): its state
(pending / active / terminated, table :data:`TRANSITIONS`), its expiry as an explicit deadline, and the
queue of NOTIFY bodies still to send.  It returns *actions*; the focus turns a :class:`SendNotify` into an
in-dialog NOTIFY through its dialog object and reports the final response with ``notify_response()``.

Driving it (``now`` is always an argument)::

    sub = Subscription(event, requested_expires, now, policy)   # 423 → SubscriptionError; answer 200/202
    actions = sub.notify(full_document, now, full=True)         # RFC 6665 §4.2.1.2: NOTIFY at once
    ... on each change:        sub.notify(partial_body, now)
    ... on each final response: sub.notify_response(status, now)
    ... on a refresh SUBSCRIBE: sub.refresh(expires, now); sub.notify(full_document, now, full=True)
    ... timer:                  sub.next_deadline(), sub.handle_timer(now)
    ... conference over:        sub.terminate(Reason.NORESOURCE, now, body=last_partial)

Decisions:

* **One NOTIFY outstanding at a time.**  RFC 6665 does not forbid pipelining, but conference-info partial
  bodies must be applied in version order (RFC 4575 §4.6): over UDP two outstanding NOTIFYs can arrive
  swapped and make the subscriber re-fetch.  Bodies that arrive meanwhile are queued; a full-state body
  replaces the queue; past ``max_queue`` queued bodies the queue is dropped and :class:`ResyncRequired`
  asks the focus for a full-state body instead (bounded memory for a slow subscriber).
* **Unsubscribe** (``Expires: 0``) and a fetch (initial ``Expires: 0``) both end with one final NOTIFY with
  ``Subscription-State: terminated;reason=timeout`` (RFC 6665 §4.1.3: "timeout" is also the reason used
  for polling), carrying the state body the caller passes to the next ``notify()``.
* **Failed NOTIFY**: a 481 (the subscriber forgot the dialog), a timeout (408 from the transaction layer)
  or any other final failure ends the subscription without a further NOTIFY (RFC 6665 §4.2.2).
"""

from __future__ import annotations

import math
import re
from collections import deque
from dataclasses import dataclass
from enum import Enum
from typing import Final

from . import grammar
from .errors import LocalProtocolError, SipParseError

__all__ = [
    "DEFAULT_EXPIRES",
    "TRANSITIONS",
    "Action",
    "EventHeader",
    "ExpiresPolicy",
    "Reason",
    "ResyncRequired",
    "SendNotify",
    "SubState",
    "Subscription",
    "SubscriptionEnded",
    "SubscriptionError",
    "Trigger",
    "parse_expires",
]

MAX_DELTA_SECONDS: Final = 2**32 - 1  # RFC 3261 §20.19: larger values are taken as this


# ---------------------------------------------------------------------------------------- headers

# Event = ( "Event" / "o" ) HCOLON event-type *( SEMI event-param )          (RFC 6665 §8.4)
# event-type = event-package *( "." event-template ); event-package = token-nodot
# event-param = generic-param / ( "id" EQUAL token )
# generic-param = token [ EQUAL gen-value ]; gen-value = token / host / quoted-string
_TOKEN_NODOT: Final = r"[A-Za-z0-9\-!%*_+`'~]+"
_EVENT_TYPE_RE: Final = re.compile(rf"({_TOKEN_NODOT}(?:\.{_TOKEN_NODOT})*)\Z", re.ASCII)
_GEN_VALUE: Final = rf"{grammar.TOKEN}|\[[0-9A-Fa-f:.]+\]|{grammar.QUOTED_STRING}"
_PARAM_RE: Final = re.compile(
    rf"[ \t]*({grammar.TOKEN})(?:[ \t]*=[ \t]*({_GEN_VALUE}))?[ \t]*\Z", re.ASCII | re.DOTALL
)


def _split_params(text: str) -> list[str]:
    """Split on ';' outside quoted strings."""
    parts: list[str] = []
    cur: list[str] = []
    quoted = escaped = False
    for ch in text:
        if escaped:
            escaped = False
        elif ch == "\\" and quoted:
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch == ";" and not quoted:
            parts.append("".join(cur))
            cur = []
            continue
        cur.append(ch)
    if quoted:
        raise SipParseError("unterminated quoted string in Event")
    parts.append("".join(cur))
    return parts


@dataclass(frozen=True, slots=True)
class EventHeader:
    """The Event header: package (with templates), the ``id`` parameter, other parameters in order."""

    package: str
    id: str | None = None
    params: tuple[tuple[str, str | None], ...] = ()

    def __post_init__(self) -> None:
        if not _EVENT_TYPE_RE.match(self.package):
            raise ValueError(f"bad event package {self.package!r}")
        if self.id is not None and not grammar.FULL_TOKEN_RE.match(self.id):
            raise ValueError("the Event id must be a token")
        for name, _ in self.params:
            if name.lower() == "id" or not grammar.FULL_TOKEN_RE.match(name):
                raise ValueError(f"bad Event parameter name {name!r}")

    @classmethod
    def parse(cls, value: str) -> EventHeader:
        head, *rest = _split_params(value)
        package = head.strip(" \t")
        if not _EVENT_TYPE_RE.match(package):
            raise SipParseError(f"bad event type {package[:40]!r}")
        ev_id: str | None = None
        params: list[tuple[str, str | None]] = []
        for raw in rest:
            m = _PARAM_RE.match(raw)
            if m is None:
                raise SipParseError(f"bad Event parameter {raw[:40]!r}")
            name, val = m.group(1), m.group(2)
            if name.lower() == "id":
                if val is None or not grammar.FULL_TOKEN_RE.match(val) or ev_id is not None:
                    raise SipParseError("bad or repeated Event id parameter")
                ev_id = val
            else:
                params.append((name, val))
        return cls(package, ev_id, tuple(params))

    def __str__(self) -> str:
        out = self.package
        if self.id is not None:
            out += f";id={self.id}"
        for name, val in self.params:
            out += f";{name}" if val is None else f";{name}={val}"
        return out

    def matches(self, other: EventHeader) -> bool:
        """Same subscription (RFC 6665 §8.2.1): package and id equal; other parameters ignored."""
        return self.package.lower() == other.package.lower() and self.id == other.id


def parse_expires(value: str) -> int:
    """``Expires = "Expires" HCOLON delta-seconds``; values past 2**32-1 are taken as 2**32-1."""
    v = value.strip(" \t")
    if not grammar.DIGITS_RE.fullmatch(v):
        raise SipParseError(f"bad Expires value {value[:20]!r}")
    return min(int(v[:12]), MAX_DELTA_SECONDS)


# ---------------------------------------------------------------------------------------- policy

# RFC 4575 §3.3: a subscription to conference state lasts one hour when SUBSCRIBE has no Expires.
DEFAULT_EXPIRES: Final[dict[str, int]] = {"conference": 3600}


class SubscriptionError(Exception):
    """A SUBSCRIBE to refuse: ``status`` and the header fields the response must carry."""

    def __init__(self, reason: str, status: int, headers: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.headers = headers


@dataclass(frozen=True, slots=True)
class ExpiresPolicy:
    """Bounds for granted durations.  ``maximum`` shortens long requests (RFC 6665 §4.2.1.1 allows it);
    below ``minimum`` (but not 0) the SUBSCRIBE is refused with 423 and Min-Expires."""

    default: int = 3600
    minimum: int = 60
    maximum: int = 7200

    def __post_init__(self) -> None:
        if not 1 <= self.minimum <= self.default <= self.maximum:
            raise ValueError("need 1 <= minimum <= default <= maximum")

    @classmethod
    def for_package(cls, package: str, minimum: int = 60, maximum: int = 7200) -> ExpiresPolicy:
        default = min(max(DEFAULT_EXPIRES.get(package, 3600), minimum), maximum)
        return cls(default, minimum, maximum)

    def grant(self, requested: int | None) -> int:
        if requested is None:
            return self.default
        if requested == 0:
            return 0
        if requested < self.minimum:
            raise SubscriptionError("Interval Too Brief", 423, (("Min-Expires", str(self.minimum)),))
        return min(requested, self.maximum)


# ---------------------------------------------------------------------------------------- state table


class SubState(Enum):
    PENDING = "pending"
    ACTIVE = "active"
    TERMINATED = "terminated"


class Reason(Enum):
    """RFC 6665 §4.1.3 reason codes of ``Subscription-State: terminated``."""

    DEACTIVATED = "deactivated"
    PROBATION = "probation"
    REJECTED = "rejected"
    TIMEOUT = "timeout"
    GIVEUP = "giveup"
    NORESOURCE = "noresource"
    INVARIANT = "invariant"


class Trigger(Enum):
    AUTHORIZE = "authorize"  # the pending subscription is allowed
    REFRESH = "refresh"  # SUBSCRIBE with Expires > 0
    UNSUBSCRIBE = "unsubscribe"  # SUBSCRIBE with Expires: 0
    EXPIRE = "expire"  # the deadline passed without a refresh
    TERMINATE = "terminate"  # the notifier ends it (noresource, deactivated, ...)
    REJECT = "reject"  # authorization refused or withdrawn
    NOTIFY_FAILED = "notify-failed"  # 481, timeout or another failure to a NOTIFY


_P, _A, _T = SubState.PENDING, SubState.ACTIVE, SubState.TERMINATED
# Everything that changes the state lives in this table; a missing pair is an illegal transition.
TRANSITIONS: Final[dict[tuple[SubState, Trigger], SubState]] = {
    (_P, Trigger.AUTHORIZE): _A,
    (_P, Trigger.REFRESH): _P,
    (_P, Trigger.UNSUBSCRIBE): _T,
    (_P, Trigger.EXPIRE): _T,
    (_P, Trigger.TERMINATE): _T,
    (_P, Trigger.REJECT): _T,
    (_P, Trigger.NOTIFY_FAILED): _T,
    (_A, Trigger.REFRESH): _A,
    (_A, Trigger.UNSUBSCRIBE): _T,
    (_A, Trigger.EXPIRE): _T,
    (_A, Trigger.TERMINATE): _T,
    (_A, Trigger.REJECT): _T,
    (_A, Trigger.NOTIFY_FAILED): _T,
}


# ---------------------------------------------------------------------------------------- actions


@dataclass(frozen=True, slots=True)
class SendNotify:
    """Send an in-dialog NOTIFY with this ``Subscription-State`` and body (``None``: no body)."""

    subscription_state: str
    body: bytes | None
    final: bool = False


@dataclass(frozen=True, slots=True)
class ResyncRequired:
    """Too many bodies were queued and dropped: call ``notify(full_state_body, now, full=True)``."""


@dataclass(frozen=True, slots=True)
class SubscriptionEnded:
    """The subscription is over and nothing more will be sent: forget it.  ``reason`` as terminated."""

    reason: Reason | None


Action = SendNotify | ResyncRequired | SubscriptionEnded


@dataclass(frozen=True, slots=True)
class _Queued:
    body: bytes | None
    full: bool


# ---------------------------------------------------------------------------------------- subscription


class Subscription:
    """One subscription at the notifier.  Not thread-safe, no I/O, no clock."""

    def __init__(
        self,
        event: EventHeader,
        requested_expires: int | None,
        now: float,
        policy: ExpiresPolicy | None = None,
        *,
        authorized: bool = True,
        max_queue: int = 8,
    ) -> None:
        if max_queue < 1:
            raise ValueError("max_queue must be at least 1")
        self.event = event
        self.policy = policy if policy is not None else ExpiresPolicy.for_package(event.package)
        self.granted_expires = self.policy.grant(requested_expires)  # for the 2xx's Expires header
        self.state = SubState.ACTIVE if authorized else SubState.PENDING
        self.reason: Reason | None = None
        self.retry_after: int | None = None
        self.expires_at = now + self.granted_expires
        self.max_queue = max_queue
        self._queue: deque[_Queued] = deque()
        self._outstanding = False  # a NOTIFY is waiting for its final response
        self._outstanding_final = False
        self._final_pending = False  # terminated; the final NOTIFY waits for the caller's body
        self._final_queued = False
        self._resync = False
        self._ended = False
        if self.granted_expires == 0:  # a fetch: one NOTIFY with the state, then over
            self._transition(Trigger.UNSUBSCRIBE, Reason.TIMEOUT)
            self._final_pending = True

    # ------------------------------------------------------------------ queries

    @property
    def ended(self) -> bool:
        """Nothing more to send or wait for."""
        return self._ended

    @property
    def outstanding(self) -> bool:
        return self._outstanding

    @property
    def queued(self) -> int:
        return len(self._queue)

    def subscription_state(self, now: float) -> str:
        """The ``Subscription-State`` value for a NOTIFY sent at ``now``."""
        if self.state is SubState.TERMINATED:
            out = "terminated"
            if self.reason is not None:
                out += f";reason={self.reason.value}"
            if self.retry_after is not None:
                out += f";retry-after={self.retry_after}"
            return out
        remaining = max(0, math.ceil(self.expires_at - now))
        return f"{self.state.value};expires={remaining}"

    def next_deadline(self) -> float | None:
        return None if self.state is SubState.TERMINATED else self.expires_at

    # ------------------------------------------------------------------ inputs

    def handle_timer(self, now: float) -> list[Action]:
        """At or past the deadline an unrefreshed subscription ends with ``reason=timeout``."""
        if self.state is SubState.TERMINATED or now < self.expires_at:
            return []
        self._transition(Trigger.EXPIRE, Reason.TIMEOUT)
        return self._enqueue_final(None, now)

    def authorize(self, now: float) -> None:
        """Pending → active.  Then send the state: ``notify(full_body, now, full=True)``."""
        self._transition(Trigger.AUTHORIZE, None)

    def refresh(self, requested_expires: int | None, now: float) -> int:
        """A refreshing SUBSCRIBE; returns the granted duration for the 2xx.

        Raises ``SubscriptionError`` 423 (nothing changes) or 481 when the subscription is already over.
        ``Expires: 0`` terminates it with ``reason=timeout``.  Either way the caller then sends the current
        state with ``notify(full_body, now, full=True)`` (RFC 6665 §4.2.1.2), the final NOTIFY for 0.
        """
        if self.state is SubState.TERMINATED:
            raise SubscriptionError("Subscription Does Not Exist", 481)
        granted = self.policy.grant(requested_expires)
        if granted == 0:
            self._transition(Trigger.UNSUBSCRIBE, Reason.TIMEOUT)
            self._final_pending = True
            # partial bodies still queued would go out as "terminated" yet not final: the final NOTIFY
            # the caller sends now carries the full state instead
            self._queue.clear()
            self._resync = False
        else:
            self._transition(Trigger.REFRESH, None)
            self.expires_at = now + granted
        self.granted_expires = granted
        return granted

    def terminate(
        self, reason: Reason, now: float, *, body: bytes | None = None, retry_after: int | None = None
    ) -> list[Action]:
        """The notifier ends the subscription (``noresource`` when the conference is over, ``deactivated``,
        ``rejected`` ...) with one final NOTIFY carrying ``body``; bodies still queued are dropped (sent
        after the NOTIFY that is outstanding, if any).  A no-op once terminated."""
        if self.state is SubState.TERMINATED:
            return []
        self._transition(Trigger.REJECT if reason is Reason.REJECTED else Trigger.TERMINATE, reason)
        self.retry_after = retry_after
        return self._enqueue_final(body, now)

    def notify(self, body: bytes | None, now: float, *, full: bool = False) -> list[Action]:
        """Queue a NOTIFY body (``full``: a full-state body, which supersedes queued ones).

        After termination, the first call supplies the final NOTIFY's body when one is awaited
        (unsubscribe, fetch); otherwise bodies are dropped.  While pending, the body is withheld: the
        NOTIFY goes without state (RFC 6665 §4.2.1.2), and only the latest such NOTIFY is kept queued.
        """
        if self._ended:
            return []
        if self.state is SubState.TERMINATED:
            if not self._final_pending:
                return []
            self._final_pending = False
            return self._enqueue_final(body, now)
        if self.state is SubState.PENDING:
            body, full = None, True
        if full:
            self._queue.clear()
            self._resync = False
        elif self._resync:
            return []  # the full-state body asked for covers it
        elif len(self._queue) >= self.max_queue:
            self._queue.clear()
            self._resync = True
            return []
        self._queue.append(_Queued(body, full))
        return self._pump(now)

    def notify_response(self, status: int, now: float) -> list[Action]:
        """The final response to the outstanding NOTIFY (408 for a transaction timeout)."""
        if not self._outstanding:
            raise LocalProtocolError("no NOTIFY is outstanding")
        if not 200 <= status <= 699:
            raise LocalProtocolError("only final responses end a NOTIFY transaction")
        self._outstanding = False
        if self._outstanding_final:
            return self._end()
        if status >= 300:
            # 481: the subscriber forgot us; 408/timeout and others: give up (RFC 6665 §4.2.2)
            # (when already terminated, the final NOTIFY still queued is not sent either)
            if self.state is not SubState.TERMINATED:
                self._transition(Trigger.NOTIFY_FAILED, None)
            self._final_pending = False
            return self._end()
        return self._pump(now)

    # ------------------------------------------------------------------ internals

    def _transition(self, trigger: Trigger, reason: Reason | None) -> None:
        new = TRANSITIONS.get((self.state, trigger))
        if new is None:
            raise LocalProtocolError(f"{trigger.value} is not allowed in state {self.state.value}")
        self.state = new
        if new is SubState.TERMINATED:
            self.reason = reason

    def _enqueue_final(self, body: bytes | None, now: float) -> list[Action]:
        # the final NOTIFY supersedes whatever is still queued (and any resync asked for)
        self._final_pending = False
        self._final_queued = True
        self._queue.clear()
        self._resync = False
        self._queue.append(_Queued(body, True))
        return self._pump(now)

    def _pump(self, now: float) -> list[Action]:
        if self._outstanding:
            return []
        if not self._queue:
            if self._resync:
                return [ResyncRequired()]
            return []
        item = self._queue.popleft()
        self._outstanding = True
        self._outstanding_final = self._final_queued
        return [SendNotify(self.subscription_state(now), item.body, self._final_queued)]

    def _end(self) -> list[Action]:
        self._queue.clear()
        self._ended = True
        return [SubscriptionEnded(self.reason)]
