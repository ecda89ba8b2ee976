"""Early legs: INVITEs the focus has answered with a reliable 183 (RFC 3262) whose 200 waits.

The 200 goes out once the 183 is PRACKed and, for an INVITE with ``Require: precondition`` (RFC 3312), once
the caller's UPDATE (RFC 3311) reports its resources reserved. Until then the leg is in an early dialog:
:class:`EarlyLegs` retransmits the 183 on its deadlines (the core's timer), answers PRACK and the early
UPDATE, and refuses the INVITE when the leg must end before its 200 (a UAS sends no BYE in an early dialog;
no PRACK within 64*T1 is a 500). The core decides which INVITE is answered this way and builds the 183
with :func:`reliable_183`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from imsconf.sdp.precondition import answer_preconditions, offers_preconditions
from imsconf.sip.dialog import AnswerRetransmitter
from imsconf.sip.endpoint import IncomingRequest, SipEndpoint
from imsconf.sip.errors import LocalProtocolError, SipParseError
from imsconf.sip.events import TransactionKey
from imsconf.sip.headers import Headers
from imsconf.sip.message import Request, Response
from imsconf.sip.reliable import RAck, ReliableProvisional, first_rseq
from imsconf.sip.timers import TimerConfig
from imsconf.sip.util import make_response

from .legs import Leg, LegTable
from .ports import FocusPort

__all__ = ["EarlyAnswer", "EarlyLegs", "Renegotiate", "reliable_183"]

log = logging.getLogger("imsconf.focus")

Renegotiate = Callable[[SipEndpoint, IncomingRequest, Leg, float], "bytes | None"]
"""The core's answer to a new offer of *leg* (None after it refused the offer itself)."""


@dataclass(slots=True)
class EarlyAnswer:
    """One INVITE answered by a reliable 183; *final* is the 200 held back."""

    leg_id: str
    invite_key: TransactionKey
    reliable: ReliableProvisional
    final: Response
    # the caller's mandatory QoS preconditions (RFC 3312) are not met yet: the 200 waits for its UPDATE
    resources_pending: bool = False

    @property
    def ready(self) -> bool:
        """The 200 may go: the 183 is PRACKed and no precondition is left unmet."""
        return self.reliable.acknowledged and not self.resources_pending


def reliable_183(
    req: Request, final: Response, contact: str, answer: bytes, *, precondition: bool
) -> Response:
    """The reliable 183 that carries the SDP answer before *final* (RFC 3262 §3): same To tag, RSeq; with
    ``Require: precondition`` when the answer carries QoS status lines (RFC 3312 §11)."""
    hdrs = Headers()
    hdrs.add("Contact", contact)
    hdrs.add("Require", "100rel")
    if precondition:
        hdrs.add("Require", "precondition")
    hdrs.add("RSeq", str(first_rseq()))
    for name in ("Allow", "Supported"):
        for value in final.headers.get_all(name):
            hdrs.add(name, value)
    hdrs.add("Content-Type", "application/sdp")
    return make_response(req, 183, "Session Progress", to_tag=final.to.tag, headers=hdrs, body=answer)


class EarlyLegs:
    """The early legs of the focus, by leg id (in its leg table)."""

    def __init__(
        self, table: LegTable, port: FocusPort, timers: TimerConfig, renegotiate: Renegotiate
    ) -> None:
        self.table = table
        self.port = port
        self.timers = timers
        self.renegotiate = renegotiate
        self._by_leg: dict[str, EarlyAnswer] = {}

    def __contains__(self, leg_id: object) -> bool:
        return leg_id in self._by_leg

    def get(self, leg_id: str) -> EarlyAnswer | None:
        return self._by_leg.get(leg_id)

    def forget(self, leg_id: str) -> EarlyAnswer | None:
        return self._by_leg.pop(leg_id, None)

    def start(
        self,
        leg: Leg,
        invite_key: TransactionKey,
        provisional: Response,
        final: Response,
        now: float,
        *,
        resources_pending: bool,
    ) -> None:
        """*provisional* (sent next by the core) holds *final* back until PRACK and preconditions."""
        reliable = ReliableProvisional(provisional, now, self.timers)
        self._by_leg[leg.leg_id] = EarlyAnswer(leg.leg_id, invite_key, reliable, final, resources_pending)

    def next_deadline(self) -> float | None:
        deadlines = [d for e in self._by_leg.values() if (d := e.reliable.next_deadline()) is not None]
        return min(deadlines, default=None)

    def handle_timer(self, ep: SipEndpoint, now: float) -> None:
        """Retransmit unacknowledged reliable 183s; without a PRACK within 64*T1 the INVITE gets a 500."""
        for early in list(self._by_leg.values()):
            leg = self.table.legs.get(early.leg_id)
            if leg is None:
                self.forget(early.leg_id)
            elif early.reliable.expired(now):
                log.info("event=no_prack leg=%s", leg.leg_id)
                self.refuse(ep, early.leg_id, 500, "No PRACK", now)
                self.port.end(ep, leg, "no PRACK", now, send_bye=False)
            elif early.reliable.handle_timer(now):
                try:
                    ep.respond(early.invite_key, early.reliable.response, now)
                except LocalProtocolError:  # the INVITE transaction is over: nothing to retransmit
                    self.forget(early.leg_id)

    def prack(self, ep: SipEndpoint, inc: IncomingRequest, leg: Leg, now: float) -> None:
        """PRACK: 200 when it acknowledges the leg's reliable 183 (then the 200 to the INVITE may go), 481
        when it matches no unacknowledged reliable response (RFC 3262 §3)."""
        req = inc.request
        try:
            rack = RAck.parse(req.headers.get("RAck") or "")
        except SipParseError:
            ep.respond(inc.key, make_response(req, 400, "Bad RAck"), now)
            return
        early = self._by_leg.get(leg.leg_id)
        if early is None or not early.reliable.prack(rack):
            ep.respond(inc.key, make_response(req, 481, "No Matching Reliable Response"), now)
            return
        self._answer_offer(ep, inc, leg, early, now)  # a PRACK may carry a new offer (RFC 3262 §5)

    def update(self, ep: SipEndpoint, inc: IncomingRequest, leg: Leg, now: float) -> None:
        """UPDATE in the early dialog (RFC 3311): the caller's new offer, typically its preconditions met
        (RFC 3312); the 200 to the INVITE follows once nothing is pending."""
        self._answer_offer(ep, inc, leg, self._by_leg[leg.leg_id], now)

    def _answer_offer(
        self, ep: SipEndpoint, inc: IncomingRequest, leg: Leg, early: EarlyAnswer, now: float
    ) -> None:
        """200 to a PRACK or UPDATE of the early dialog, with the answer to its offer if it has one (with the
        focus's status lines when it carries preconditions); then the 200 to the INVITE if nothing waits."""
        req = inc.request
        hdrs = Headers()
        if req.method == "UPDATE" and leg.dialog is not None and leg.dialog.local_contact:
            hdrs.add("Contact", leg.dialog.local_contact)
        body = b""
        if req.body:
            answer = self.renegotiate(ep, inc, leg, now)
            if answer is None:  # refused: the session stays as the 183 left it
                if early.ready:
                    self._answer(ep, leg, early, now)
                return
            body = answer
            if offers_preconditions(req.body):
                with_qos = answer_preconditions(req.body, body)
                body, early.resources_pending = with_qos.body, not with_qos.met
            hdrs.add("Content-Type", "application/sdp")
        ep.respond(inc.key, make_response(req, 200, "OK", headers=hdrs, body=body), now)
        if early.ready:
            if req.method == "UPDATE":
                log.info("event=preconditions_met leg=%s", leg.leg_id)
            self._answer(ep, leg, early, now)

    def refuse(self, ep: SipEndpoint, leg_id: str, status: int, reason: str, now: float) -> None:
        """End an early leg's INVITE with a final refusal in its early dialog."""
        early = self.forget(leg_id)
        if early is None:
            return
        tx = ep.layer.server(early.invite_key)
        if tx is not None and not tx.has_final_response:
            resp = make_response(tx.request, status, reason, to_tag=early.final.to.tag)
            ep.respond(early.invite_key, resp, now)

    def _answer(self, ep: SipEndpoint, leg: Leg, early: EarlyAnswer, now: float) -> None:
        """Send the 200 the leg was waiting for; from here on it is answered like any leg (ACK wait)."""
        self.forget(leg.leg_id)
        leg.retrans = AnswerRetransmitter(now, reliable=leg.peer.reliable, config=self.timers)
        self.table.schedule(leg)
        if leg.dialog is not None:
            leg.dialog.response_sent(early.final)
        ep.respond(early.invite_key, early.final, now)
