"""Booked conference URIs claimed in the cluster's directory before this node opens them.

A booked URI carries no node hint, so the front may hand two first callers of one booking to two nodes at
once.  Before :mod:`.planned` instantiates a booked conference for its first caller, it asks
:class:`BookedClaims` whether this node may: a :class:`ClaimRequest` goes to the runtime's
:class:`Claimer` (``imsconf.app.directory``: the directory's atomic claim, in a worker thread), the INVITE
waits meanwhile (the endpoint has sent 100 Trying: nothing was answered when the focus returned), and
further INVITEs for the same URI wait on the same claim.  The result comes back through the focus's inbox:

* :class:`ClaimWon` — every waiting INVITE is dialled in again and the first one opens the conference;
  the URI stays this node's while any booked conference of it lives here (then it is released);
* :class:`ClaimLost` — another node holds the URI: each waiting INVITE gets ``302 Moved Temporarily``
  with the booked URI plus ``;node=<holder>`` as its Contact, which the front routes to that node
  (docs/decisions/0021-booked-uri-claims.md);
* :class:`ClaimFailed` — the directory is unreachable: ``503`` with ``Retry-After``.

An INVITE from the cluster's front (an address of the ``front_peers`` setting) carrying
``X-Imsconf-Takeover: <node>`` was sent here because the front's dispatcher sees *node* as down although it
still holds the URI (killed, its heartbeat not yet stale): the claim then takes that node's row over
(``ClaimRequest.takeover_from``); the header from anyone else is ignored.

:class:`NoClaims` (a single node) wins every claim at once: nothing waits.  Sans-I/O: the claimer's
``done`` only records the result and posts work to the inbox; answers go out at the focus's timer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Final, Protocol

from imsconf.booking.model import conference_key
from imsconf.sip.endpoint import IncomingRequest, SipEndpoint
from imsconf.sip.headers import Headers
from imsconf.sip.identity import TrustedPeers
from imsconf.sip.uri import SipUri
from imsconf.sip.util import make_response, new_tag

from .legs import Inbox, Work

__all__ = [
    "NODE_PARAM",
    "TAKEOVER_HEADER",
    "UNAVAILABLE_REASON",
    "BookedClaims",
    "ClaimFailed",
    "ClaimLost",
    "ClaimRequest",
    "ClaimResult",
    "ClaimWon",
    "Claimer",
    "NoClaims",
    "Waiter",
    "redirect_uri",
]

log = logging.getLogger("imsconf.focus")

NODE_PARAM: Final = "node"  # the URI parameter of a redirect's Contact that names the holding node
# the reason of the 503 while the directory is unreachable: the front passes it on instead of failing the
# call over to another node (contrib/kamailio/kamailio.cfg, failure_route[FAILOVER])
UNAVAILABLE_REASON: Final = "Conference Directory Unavailable"
# the front's marker of a request re-dispatched because the node holding its URI is down
TAKEOVER_HEADER: Final = "X-Imsconf-Takeover"


@dataclass(frozen=True, slots=True)
class ClaimRequest:
    """Take the booked conference *uri* for this node (the runtime knows the node's id); *takeover_from*:
    a node the front reported down, whose claim of *uri* is taken however fresh its heartbeat."""

    uri: str
    takeover_from: str | None = None


@dataclass(frozen=True, slots=True)
class ClaimWon:
    """This node holds the URI: open the conference."""


@dataclass(frozen=True, slots=True)
class ClaimLost:
    """A live node holds the URI: send the caller there."""

    node_id: str


@dataclass(frozen=True, slots=True)
class ClaimFailed:
    """The directory could not be asked: refuse for now."""

    retry_after: int = 5


ClaimResult = ClaimWon | ClaimLost | ClaimFailed


class Claimer(Protocol):
    """The runtime's side of the directory."""

    def claim(self, request: ClaimRequest, done: Callable[[ClaimResult], None]) -> None:
        """Claim ``request.uri``; ``done(result)`` at once or later, on the focus's event loop."""
        ...

    def release(self, uri: str) -> None:
        """This node no longer hosts a conference at *uri* (must return at once)."""
        ...


class NoClaims:
    """A single node: every claim is won at once, nothing to release."""

    def claim(self, request: ClaimRequest, done: Callable[[ClaimResult], None]) -> None:
        done(ClaimWon())

    def release(self, uri: str) -> None:
        return None


def redirect_uri(uri: str, node_id: str) -> str:
    """The Contact of a redirect to *node_id*: the booked *uri* (its parameters dropped) plus
    ``;node=<node_id>``."""
    parsed = SipUri.parse(uri)
    base = f"{parsed.scheme}:{parsed.user}@{_host(parsed.host)}"
    if parsed.port is not None:
        base += f":{parsed.port}"
    return f"{base};{NODE_PARAM}={node_id}"


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


Waiter = Callable[[SipEndpoint, ClaimResult, float], None]
"""``(ep, result, now)``: what waits on a claim, called at the focus's timer once the result is in."""


@dataclass(slots=True)
class _Claim:
    uri: str
    waiters: list[Waiter] = field(default_factory=list)
    result: ClaimResult | None = None


class BookedClaims:
    """The claims of one focus: URIs held, claims under way and what waits on them."""

    def __init__(self, claimer: Claimer | None, inbox: Inbox, front: TrustedPeers | None = None) -> None:
        """*front*: the addresses whose takeover marker is believed (none: ignored from everyone)."""
        self.claimer: Claimer = claimer if claimer is not None else NoClaims()
        self.inbox = inbox
        self.front = front if front is not None else TrustedPeers()
        self.held: dict[str, str] = {}  # conference key → the booked URI, while this node holds it
        self.pending: dict[str, _Claim] = {}  # by conference key
        self._keys: dict[str, str] = {}  # booked URI → its conference key (keep() runs at every timer)

    def _key(self, uri: str) -> str | None:
        """The conference key of *uri*; None for a URI that is not ``sip(s):user@host`` (nothing to share)."""
        key = self._keys.get(uri)
        if key is None:
            try:
                key = conference_key(uri)
            except ValueError:
                return None
            if len(self._keys) >= 4096:
                self._keys.clear()
            self._keys[uri] = key
        return key

    def acquire(self, uri: str, waiter: Waiter, takeover_from: str | None = None) -> ClaimResult | None:
        """The claim of *uri* for this node: its result at once (held already, or a claimer that answers
        at once), or None and *waiter* is called with it later (every caller of one URI meanwhile waits on
        the same claim).  A won URI is held until :meth:`keep` releases it.  *takeover_from*: see
        :class:`ClaimRequest` (a claim already under way is waited on as it is)."""
        key = self._key(uri)
        if key is None or key in self.held:
            return ClaimWon()
        claim = self.pending.get(key)
        if claim is not None:
            claim.waiters.append(waiter)
            return None
        claim = _Claim(uri)
        self.pending[key] = claim

        def done(result: ClaimResult) -> None:
            claim.result = result
            if self.pending.get(key) is claim and not sync:
                self.inbox.post(lambda e, t: self._settle(e, key, claim, t))

        sync = True
        if takeover_from is not None:
            log.warning("event=claim_takeover conf_uri=%s dead_node=%s", uri, takeover_from)
        self.claimer.claim(ClaimRequest(uri, takeover_from), done)
        sync = False
        if claim.result is None:
            log.info("event=claim_wait conf_uri=%s", uri)
            claim.waiters.append(waiter)
            return None
        del self.pending[key]
        if isinstance(claim.result, ClaimWon):
            self.held[key] = uri
        return claim.result

    def admit(self, ep: SipEndpoint, inc: IncomingRequest, uri: str, now: float, resume: Work | None) -> bool:
        """True when this node holds (or at once won) *uri*: open its conference now.  False: the INVITE
        waits for the claim (*resume* runs once it is won) or was answered (302, 503)."""

        def waiter(e: SipEndpoint, result: ClaimResult, t: float) -> None:
            if not isinstance(result, ClaimWon):
                self._answer(e, inc, uri, result, t)
            elif resume is not None:
                resume(e, t)
            else:  # cannot be dialled in again: ask the caller to try once more
                self._refuse(e, inc, 503, "Conference Opening", 1, t)

        result = self.acquire(uri, waiter, self.takeover_from(ep, inc))
        if result is None:
            return False
        if isinstance(result, ClaimWon):
            return True
        self._answer(ep, inc, uri, result, now)
        return False

    def takeover_from(self, ep: SipEndpoint, inc: IncomingRequest) -> str | None:
        """The dead node the front's takeover marker names, else None (no marker, or not from the front)."""
        dead = inc.request.headers.get(TAKEOVER_HEADER)
        if dead is None or not dead.strip():
            return None
        if not self.front.trusts(inc.peer):
            log.info("event=takeover_ignored src=%s reason=untrusted_peer", inc.peer)
            return None
        return dead.strip()

    def _settle(self, ep: SipEndpoint, key: str, claim: _Claim, now: float) -> None:
        if self.pending.get(key) is not claim or claim.result is None:
            return
        del self.pending[key]
        result = claim.result
        log.info("event=claim_result conf_uri=%s result=%s waiting=%d", claim.uri, _describe(result),
                 len(claim.waiters))  # fmt: skip
        if isinstance(result, ClaimWon):
            self.held[key] = claim.uri
        for waiter in claim.waiters:
            waiter(ep, result, now)

    def _answer(
        self, ep: SipEndpoint, inc: IncomingRequest, uri: str, result: ClaimResult, now: float
    ) -> None:
        if isinstance(result, ClaimLost):
            self._redirect(ep, inc, uri, result.node_id, now)
        elif isinstance(result, ClaimFailed):
            self._refuse(ep, inc, 503, UNAVAILABLE_REASON, result.retry_after, now)

    @staticmethod
    def _pending_tx(ep: SipEndpoint, inc: IncomingRequest) -> bool:
        tx = ep.layer.server(inc.key)
        return tx is not None and not tx.has_final_response

    def _redirect(self, ep: SipEndpoint, inc: IncomingRequest, uri: str, node_id: str, now: float) -> None:
        if not self._pending_tx(ep, inc):
            return
        contact = redirect_uri(uri, node_id)
        log.info("event=claim_redirect conf_uri=%s node=%s src=%s", uri, node_id, inc.peer)
        hdrs = Headers.of([("Contact", f"<{contact}>")])
        resp = make_response(inc.request, 302, "Moved Temporarily", to_tag=new_tag(), headers=hdrs)
        ep.respond(inc.key, resp, now)

    def _refuse(
        self, ep: SipEndpoint, inc: IncomingRequest, status: int, reason: str, retry_after: int, now: float
    ) -> None:
        if not self._pending_tx(ep, inc):
            return
        hdrs = Headers.of([("Retry-After", str(retry_after))])
        ep.respond(inc.key, make_response(inc.request, status, reason, to_tag=new_tag(), headers=hdrs), now)

    def keep(self, live_uris: Iterable[str]) -> None:
        """Release every held URI that no live booked conference (*live_uris*) and no claim uses."""
        if not self.held:
            return
        live = {k for k in map(self._key, live_uris) if k is not None}
        for key in [k for k in self.held if k not in live and k not in self.pending]:
            uri = self.held.pop(key)
            log.info("event=claim_released conf_uri=%s", uri)
            self.claimer.release(uri)


def _describe(result: ClaimResult) -> str:
    if isinstance(result, ClaimLost):
        return f"lost:{result.node_id}"
    return "won" if isinstance(result, ClaimWon) else "unavailable"
