"""The focus's leg table: every participant leg, its indexes (dialog, INVITE transaction), the endpoint
details the event package shows, the legs' deadlines in one lazy heap, the focus's Contact, and the inbox
of deferred work.

Sans-I/O: nothing here sends; the focus core (:mod:`.core`) and its feature parts read and update it.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass

from imsconf.conference.eventinfo import EndpointDetails
from imsconf.sip.dialog import AnswerRetransmitter, Dialog, DialogId, DialogRegistry
from imsconf.sip.endpoint import SipEndpoint
from imsconf.sip.events import TransactionKey
from imsconf.sip.message import Request, Response
from imsconf.sip.peer import Peer
from imsconf.sip.uri import SipUri

from .media_session import MediaSession

__all__ = ["Inbox", "Leg", "LegTable", "Work", "focus_contact", "leg_deadline"]


@dataclass(slots=True)
class Leg:
    """A participant's SIP session with the focus."""

    leg_id: str
    conf_id: str
    user: str
    peer: Peer
    media: MediaSession
    invite_key: TransactionKey | None = None
    dialog: Dialog | None = None
    answer_2xx: Response | None = None
    retrans: AnswerRetransmitter | None = None
    session_interval: int | None = None
    session_deadline: float | None = None
    closing: bool = False
    # dial-out (the focus is the UAC)
    dialed_out: bool = False
    dial_target: SipUri | None = None
    referred_by: str | None = None  # Referred-By value copied into our INVITE
    invite_request: Request | None = None
    ack: Request | None = None
    local_contact: str | None = None
    ring_deadline: float | None = None
    replaces: str | None = None  # Replaces header of a 3PTY dial-out (RFC 3891, .threeparty)
    # the methods the phone listed in Allow of its INVITE (dial-in) or its 200 (dial-out); None: no Allow
    allow: frozenset[str] | None = None

    @property
    def pid(self) -> str:
        """The participant id in the conference model (``leg_id`` is ``<conf_id>.<pid>``)."""
        return self.leg_id.split(".", 1)[1]


def leg_deadline(leg: Leg) -> float | None:
    """The earliest of the leg's deadlines: 2xx retransmission/ACK wait, session timer, dial-out ringing."""
    best = leg.retrans.next_deadline() if leg.retrans is not None else None
    for d in (leg.session_deadline, leg.ring_deadline):
        if d is not None and (best is None or d < best):
            best = d
    return best


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def focus_contact(
    ep: SipEndpoint, conf_uri: str, transport: str, *, sips: bool = False, node: str = ""
) -> str:
    """The focus's Contact in every dialog of a conference (RFC 4579 §3): the conference URI itself, at the
    endpoint's local port for *transport*, with ``;isfocus``.

    User and host are the conference URI's (the host the focus advertises: a name that resolves to this
    server, or its address), so the Contact and the ``entity`` of the conference documents name one URI.
    The scheme follows the dialog (RFC 3261 §8.1.1.8, §12.1.1): ``sips:`` when the request that forms it
    names a SIPS URI (*sips*), else ``sip:`` with the transport as a parameter, TLS included; phones such as
    baresip 1.0.0 cannot send in-dialog requests to a SIPS target they did not dial.

    *node*: this node's id in a cluster: a conference URI without the node hint (``conf-<node>-…``, i.e. a
    booked one) gets ``;node=<node>``, so the front routes the dialog's requests here
    (docs/decisions/0021-booked-uri-claims.md)."""
    uri = SipUri.parse(conf_uri)
    _, port = ep.local_address(transport)
    user = uri.user or ""
    param = f";node={node}" if node and not user.startswith(f"conf-{node}-") else ""
    if sips:
        return f"<sips:{user}@{_host(uri.host)}:{port}{param}>;isfocus"
    return f"<sip:{user}@{_host(uri.host)}:{port};transport={transport}{param}>;isfocus"


Work = Callable[[SipEndpoint, float], None]
"""Deferred work: called with the endpoint and ``now`` at the focus's next timer."""


class Inbox:
    """Work that arrives without a SIP endpoint or a clock (mixer events, PIN check results, BFCP floor
    changes): queued here, the runtime is woken (``wake``), and the focus runs it at its next timer
    (:meth:`next_deadline` is 0 while anything waits)."""

    def __init__(self, wake: Callable[[], None] | None = None) -> None:
        self._wake = wake
        self._work: list[Work] = []

    def post(self, work: Work) -> None:
        self._work.append(work)
        if self._wake is not None:
            self._wake()

    def next_deadline(self) -> float | None:
        return 0.0 if self._work else None

    def run(self, ep: SipEndpoint, now: float) -> None:
        while self._work:
            work, self._work = self._work, []
            for item in work:
                item(ep, now)


class LegTable:
    """The legs of the focus and their indexes."""

    def __init__(self) -> None:
        self.legs: dict[str, Leg] = {}
        self.dialogs = DialogRegistry()
        self.by_dialog: dict[DialogId, Leg] = {}
        self.by_invite: dict[TransactionKey, Leg] = {}
        self.details: dict[str, EndpointDetails] = {}  # by leg id: what the event package shows
        # legs' deadlines as a lazy heap of (deadline, seq, leg): an entry is stale once the leg's earliest
        # deadline differs from it (re-pushed at its current value) or the leg is gone.
        self._timers: list[tuple[float, int, Leg]] = []
        self._seq = itertools.count()
        # legs whose 2xx waits the full 64*T1 for its ACK (an entry may be stale: ACKed or gone since), so
        # that an overload shortens those waits without a walk of every leg (:meth:`shorten_ack_waits`)
        self._full_ack_waits: dict[str, Leg] = {}

    def get(self, leg_id: str) -> Leg | None:
        return self.legs.get(leg_id)

    def add(self, leg: Leg) -> None:
        self.legs[leg.leg_id] = leg

    def add_dialog(self, leg: Leg, dialog: Dialog) -> None:
        leg.dialog = dialog
        self.dialogs.add(dialog)
        self.by_dialog[dialog.id] = leg

    def of_dialog(self, dialog: Dialog | None) -> Leg | None:
        return self.by_dialog.get(dialog.id) if dialog is not None else None

    def set_invite(self, leg: Leg, key: TransactionKey) -> None:
        """*key* is the leg's latest INVITE transaction (only the latest is remembered)."""
        if leg.invite_key is not None:
            self.by_invite.pop(leg.invite_key, None)
        leg.invite_key = key
        self.by_invite[key] = leg

    def remove(self, leg: Leg) -> None:
        """Drop the leg and its indexes; its dialog is terminated; its deadlines are cleared."""
        self.legs.pop(leg.leg_id, None)
        self._full_ack_waits.pop(leg.leg_id, None)
        if leg.invite_key is not None:
            self.by_invite.pop(leg.invite_key, None)
        if leg.dialog is not None:
            self.by_dialog.pop(leg.dialog.id, None)
            self.dialogs.remove(leg.dialog.id)
            leg.dialog.terminate()
        leg.retrans = None
        leg.session_deadline = None
        leg.ring_deadline = None

    def forget_details(self, conf_id: str, pid: str | None = None) -> None:
        """Drop the endpoint details of one participant, or of a whole conference (*pid* None)."""
        if pid is not None:
            self.details.pop(f"{conf_id}.{pid}", None)
            return
        prefix = f"{conf_id}."
        for key in [k for k in self.details if k.startswith(prefix)]:
            del self.details[key]

    # ---- deadlines ---------------------------------------------------------------------------------
    def schedule(self, leg: Leg) -> None:
        """Index *leg*'s earliest deadline.  Call after giving a leg in the table a new or earlier deadline
        (``retrans``, ``session_deadline``, ``ring_deadline``); later ones and removals need no call."""
        d = leg_deadline(leg)
        if d is not None:
            heapq.heappush(self._timers, (d, next(self._seq), leg))
        if leg.retrans is not None and leg.retrans.wait is None:
            self._full_ack_waits[leg.leg_id] = leg

    def due(self, now: float) -> list[Leg]:
        """The legs in the table whose earliest deadline has come, each once, taken out of the deadline
        index: :meth:`schedule` each of them again once handled. The cost follows the legs that are due,
        not the legs in the table."""
        heap, legs = self._timers, self.legs
        found: dict[str, Leg] = {}
        while heap and heap[0][0] <= now:
            d, _, leg = heapq.heappop(heap)
            if legs.get(leg.leg_id) is not leg:
                continue  # gone
            current = leg_deadline(leg)
            if current is None:
                continue
            if current <= now:
                found[leg.leg_id] = leg
            elif current != d:
                heapq.heappush(heap, (current, next(self._seq), leg))  # moved later: indexed anew
        return list(found.values())

    def shorten_ack_waits(self, wait: float) -> None:
        """Wait at most *wait* seconds for the ACK of every 2xx still waiting the full 64*T1."""
        waiting, self._full_ack_waits = self._full_ack_waits, {}
        for leg in waiting.values():
            if leg.retrans is not None and self.legs.get(leg.leg_id) is leg and leg.retrans.shorten(wait):
                self.schedule(leg)

    def next_deadline(self) -> float | None:
        heap = self._timers
        while heap:
            d, _, leg = heap[0]
            current = leg_deadline(leg) if self.legs.get(leg.leg_id) is leg else None
            if current == d:
                return d
            heapq.heappop(heap)  # stale: the deadline moved (later) or the leg is gone
            if current is not None:
                heapq.heappush(heap, (current, next(self._seq), leg))
        return None
