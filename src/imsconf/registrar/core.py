"""The registrar, sans-I/O (RFC 3261 §10.3; Path, RFC 3327; Service-Route, RFC 3608).

:meth:`Registrar.register` takes a REGISTER that the endpoint has already authenticated (digest, in
:mod:`imsconf.sip.auth`) and returns the response to send; the bindings it changed are kept for
:meth:`Registrar.take_changes` (the runtime persists them).  :meth:`Registrar.lookup` gives the live
bindings of an address of record, best first: the focus's dial-out uses it through its ``Locator`` seam.
Expiry is a deadline (:meth:`next_deadline`, :meth:`handle_timer`); the time is always passed in.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from imsconf.sip.errors import SipParseError
from imsconf.sip.headers import Headers
from imsconf.sip.message import Request, Response
from imsconf.sip.peer import Peer
from imsconf.sip.util import make_response, new_tag

from .bindings import AorChanged, Binding, BindingTable, best_first
from .contacts import ContactRequest, RegisterError, format_q, parse_contacts, parse_delta_seconds, parse_path

__all__ = ["Registrar", "RegistrarConfig"]

log = logging.getLogger("imsconf.registrar")


@dataclass(frozen=True, slots=True)
class RegistrarConfig:
    """*domains*: the hosts an AoR (and the REGISTER's Request-URI) may name.  Expiry bounds in seconds:
    a shorter non-zero request gets 423 with ``Min-Expires``, a longer one is shortened to the maximum."""

    domains: frozenset[str] = field(default_factory=lambda: frozenset({"localhost"}))
    min_expires: int = 60
    max_expires: int = 3600
    default_expires: int = 3600
    max_bindings: int = 10  # per AoR
    max_aors: int = 100_000
    require_auth: bool = True  # False only when the server runs without digest authentication

    def __post_init__(self) -> None:
        if not 0 < self.min_expires <= self.default_expires <= self.max_expires:
            raise ValueError("need 0 < min_expires <= default_expires <= max_expires")
        if self.max_bindings < 1 or self.max_aors < 1:
            raise ValueError("max_bindings and max_aors must be at least 1")


class Registrar:
    """Bindings per AoR, changed by REGISTER requests and by expiry."""

    def __init__(self, config: RegistrarConfig, bindings: Iterable[Binding] = (), now: float = 0.0) -> None:
        self.config = config
        self._table = BindingTable()
        self._table.load(bindings, now)

    # ---- the location service -------------------------------------------------------------------

    def lookup(self, aor: str, now: float) -> list[Binding]:
        """The live bindings of *aor* (``sip:user@host``), best first (highest q, then newest)."""
        return best_first(self._table.get(aor, now))

    def aors(self) -> list[str]:
        return self._table.aors()

    def take_changes(self) -> list[AorChanged]:
        """The AoRs whose bindings changed since the last call, each with its whole new set."""
        return self._table.take_changes()

    def next_deadline(self) -> float | None:
        return self._table.next_deadline()

    def handle_timer(self, now: float) -> None:
        self._table.expire(now)

    # ---- REGISTER --------------------------------------------------------------------------------

    def register(
        self,
        req: Request,
        peer: Peer,
        user: str | None,
        now: float,
        *,
        service_route: str | None = None,
    ) -> Response:
        """Carry out one REGISTER (all of it or nothing, §10.3 step 7) and return the answer.

        *user* is the digest username the endpoint verified (None: no credentials).  *service_route* is
        this server's own URI for the transport the request came on; the 200 names it in Service-Route.
        """
        try:
            aor = self._check_aor(req, user)
            bindings = self._apply(req, aor, peer, now)
        except RegisterError as exc:
            log.info(
                "event=register_refused aor=%s status=%d reason=%r src=%s",
                _safe_aor(req),
                exc.status,
                exc.reason,
                peer,
            )
            resp = make_response(req, exc.status, exc.reason, to_tag=new_tag())
            for name, value in exc.headers:
                resp.headers.add(name, value)
            return resp
        h = Headers()
        for b in bindings:
            q = f";q={format_q(b.q)}" if b.q_given else ""
            h.add("Contact", f"<{b.uri}>;expires={b.expires_in(now)}{q}")
        if "path" in req.headers.tokens("Supported"):  # RFC 3327 §5.3: the Path as stored, echoed
            for entry in parse_path(req.headers):
                h.add("Path", entry)
        if service_route is not None:
            h.add("Service-Route", service_route)
        return make_response(req, 200, "OK", to_tag=new_tag(), headers=h)

    def _check_aor(self, req: Request, user: str | None) -> str:
        """The AoR of the To header, when this registrar serves it and *user* may change it (§10.3 1-5)."""
        cfg = self.config
        try:
            ruri = req.request_uri
        except SipParseError:
            raise RegisterError(400, "Bad Request (Request-URI)") from None
        if ruri.host.strip("[]") not in cfg.domains and ruri.host not in cfg.domains:
            raise RegisterError(404, "Not Found (Request-URI: domain not served)")
        to = req.to.uri
        if to.scheme not in ("sip", "sips") or not to.user:
            raise RegisterError(404, "Not Found (To: not an address of record here)")
        if to.host not in cfg.domains and to.host.strip("[]") not in cfg.domains:
            raise RegisterError(404, "Not Found (To: domain not served)")
        if cfg.require_auth and user is None:
            raise RegisterError(403, "Forbidden (no credentials)")
        if user is not None and to.user_unescaped != user:
            raise RegisterError(403, "Forbidden (To: not the authenticated user's address of record)")
        return to.aor

    def _apply(self, req: Request, aor: str, peer: Peer, now: float) -> list[Binding]:
        """Compute the AoR's new bindings, commit them if every step succeeds, return them best first."""
        cfg = self.config
        header = req.headers.get("Expires")
        header_expires = parse_delta_seconds(header, "Expires") if header is not None else None
        contacts = parse_contacts(req.headers)
        path = parse_path(req.headers)
        call_id, cseq = req.call_id, req.cseq.number
        current = list(self._table.get(aor, now))
        if contacts is None:  # Contact: *
            if header_expires != 0:
                raise RegisterError(400, "Bad Request (Contact: * needs Expires: 0)")
            for b in current:
                _check_order(b, call_id, cseq)
            if current:
                self._table.replace(aor, ())
                log.info("event=register_removed_all aor=%s", aor)
            return []
        if not contacts:  # a query: the current bindings
            return best_first(current)
        wanted = [(c, self._expiry(c, header_expires)) for c in contacts]
        new = list(current)
        for contact, expires in wanted:
            i = next((k for k, b in enumerate(new) if b.uri.equivalent(contact.uri)), None)
            if i is not None:
                if any(new[i] is b for b in current):  # named twice in this request: the last counts
                    _check_order(new[i], call_id, cseq)
                del new[i]
            if expires > 0:
                new.append(_binding(aor, contact, expires, call_id, cseq, path, peer, now))
        if len(new) > cfg.max_bindings:
            raise RegisterError(403, f"Forbidden (more than {cfg.max_bindings} bindings)")
        if not current and new and len(self._table) >= cfg.max_aors:
            raise RegisterError(503, "Service Unavailable (registrar full)")
        self._table.replace(aor, new)
        log.info("event=registered aor=%s bindings=%d src=%s", aor, len(new), peer)
        return best_first(new)

    def _expiry(self, contact: ContactRequest, header_expires: int | None) -> int:
        """§10.2.1.1 / §10.3 step 7: the contact's parameter, else the Expires header, else the default;
        423 below the minimum (zero removes), the maximum above it."""
        cfg = self.config
        expires = contact.expires if contact.expires is not None else header_expires
        if expires is None:
            expires = cfg.default_expires
        if 0 < expires < cfg.min_expires:
            raise RegisterError(423, "Interval Too Brief", (("Min-Expires", str(cfg.min_expires)),))
        return min(expires, cfg.max_expires)


def _binding(
    aor: str,
    contact: ContactRequest,
    expires: int,
    call_id: str,
    cseq: int,
    path: tuple[str, ...],
    peer: Peer,
    now: float,
) -> Binding:
    return Binding(
        aor=aor,
        uri=contact.uri,
        expires_at=now + expires,
        q=contact.q,
        call_id=call_id,
        cseq=cseq,
        path=path,
        flow=peer,
        registered_at=now,
        q_given=contact.q_given,
    )


def _check_order(existing: Binding, call_id: str, cseq: int) -> None:
    """§10.3 step 7: the same Call-ID with a CSeq not above the stored one aborts the whole request."""
    if existing.call_id == call_id and cseq <= existing.cseq:
        raise RegisterError(500, "Server Internal Error (CSeq out of order)")


def _safe_aor(req: Request) -> str:
    try:
        return req.to.uri.aor
    except SipParseError:
        return "?"
