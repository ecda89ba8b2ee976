"""The per-conference group-key manager: a pure (sans-I/O) state machine.

Time is passed in (``now``, seconds on any monotonic clock); deadlines are explicit (:meth:`next_deadline`,
:meth:`handle_timer`).  Inputs are membership calls (:meth:`GroupKeyManager.join`, :meth:`leave`) and
events (:mod:`imsconf.keys.events`) from the focus and the mixer; every call returns the *actions* to carry
out, in order.

Model
-----
* Every listener starts on its **own per-participant key** (the key of its own INVITE dialog; the manager
  never touches it).  A leaver's own key only protected its own leg, so own keys never need rekeying.
* In ``group`` mode an eligible listener is **offered the group key** (``OfferKey`` → re-INVITE with a new
  ``a=crypto``).  Only once its answer arrives is it sent the epoch's common stream (``SwitchListener``):
  no listener is ever sent an epoch before it has that epoch's key, and until then it keeps receiving what
  it received before, so no audio is lost.  A first switch is a *probation*: the mixer also keeps sending
  the own stream until the listener proves it decrypts the common stream (``KeyUseConfirmed``, from its
  SRTCP receiver reports).  Without proof within ``confirm_timeout`` (or on ``KeyUseFailed``) it is
  demoted back to its own key for good - a phone that answers 200 OK and keeps its old key (baresip 1.0.0)
  is never left deaf and never stays on the group key.  ``capable=True`` at join (an operator's word)
  skips the proof.
* **Epochs**: each rekey makes epoch n = (fresh key, fresh SSRC).  An old epoch lives on while any listener
  still receives it or has an unanswered offer for it, then ``RetireEpoch`` (the key is wiped).
* **Membership** per :class:`~imsconf.keys.policy.RekeyPolicy`: a join/leave starts a new epoch and every
  remaining group listener is offered it (one offer outstanding per listener; a listener with an offer in
  flight gets the newest key right after it answers).  A leaver is off the media plane at once
  (``StopListener``) and is never offered anything again.  A leave rekeys only if the leaver knew the
  current key: leaves of own-key participants cost nothing.
* **Failure**: a listener that refuses or does not answer a rekey, or does not prove it, is demoted to its
  own key (``DemoteListener``); if that fails too it is dropped (``DropListener``): forward security wins.
  A dropped listener that knew the current key counts as a leave.
* **Speakers**: the common stream goes only to *group listeners that are not active speakers*; everyone
  else gets a per-participant mix: own-key participants under their own key, a speaking group listener its
  N-1 mix under the epoch key on a per-(listener, epoch) speaker SSRC (it holds no other downlink key).
  The mixer applies this per tick from the ``SwitchListener`` data (:meth:`GroupKeyManager.downlink` states
  the rule); speaking changes need no signalling and do not touch keying.

Security consequences of the batching policy (``interval:T``): between a leave and the next allowed rekey
(at most ``T`` later) plus the listeners' switch time, the leaver still holds the key of the common stream
that is being sent.  The mixer stops sending to it at once, but a copy of the common stream captured on the
network stays decryptable with its old key until every remaining listener has switched and the old epoch is
retired (``RekeyRecord.exposure_window``).  Joiners are never handed an existing key under ``interval:T``:
they wait on their own key for the next rekey.  ``never``: a leaver can decrypt the common stream until the
conference ends, a joiner everything since it started - only for membership trusted as a whole.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from .epochs import Epoch, EpochTable, SsrcAllocator
from .events import (
    Action,
    DemoteDone,
    DemoteFailed,
    DemoteListener,
    DropListener,
    Event,
    KeyAnswerReceived,
    KeyUseConfirmed,
    KeyUseFailed,
    OfferKey,
    Rekey,
    RetireEpoch,
    SettleListener,
    StopListener,
    SwitchListener,
)
from .policy import DownlinkMode, KeyManagerConfig, RekeyPolicy
from .stats import KeyingStats

__all__ = [
    "Downlink",
    "EpochInfo",
    "GroupKeyManager",
    "KeySnapshot",
    "ListenerInfo",
    "ListenerState",
    "RekeyRecord",
]

log = logging.getLogger("imsconf.keys")


class ListenerState(StrEnum):
    OWN_KEY = "own-key"  # receives its own per-participant stream
    OFFERED = "offered"  # on its own key; group key offered, answer pending
    PROBATION = "probation"  # answered; sent the epoch's common stream; proof of key use pending
    GROUP = "group"  # on the group key
    REKEYING = "rekeying"  # on the group key; a newer epoch offered, answer pending
    DEMOTING = "demoting"  # being moved back to its own key


@dataclass(frozen=True, slots=True)
class Downlink:
    """What the mixer sends a listener this tick: ``kind`` is ``own`` (its own per-participant stream under
    its own key), ``common`` (the epoch's common stream; ``also_own``: probation, the own stream too) or
    ``speaker`` (its N-1 mix under the epoch key on ``ssrc``)."""

    kind: str
    epoch: int | None = None
    ssrc: int | None = None
    also_own: bool = False


@dataclass(frozen=True, slots=True)
class ListenerInfo:
    listener: str
    state: ListenerState
    epoch: int | None  # the epoch whose stream it is sent, None: its own stream
    offered_epoch: int | None  # an unanswered offer
    capable: bool
    proven: bool
    eligible: bool  # may be (re)offered the group key


@dataclass(frozen=True, slots=True)
class EpochInfo:
    number: int
    ssrc: int
    created_at: float
    reason: str
    receivers: int
    offers_out: int


@dataclass(frozen=True, slots=True)
class KeySnapshot:
    """For the conference event package and logs: no key material."""

    mode: DownlinkMode
    policy: str
    current_epoch: int | None
    epochs: tuple[EpochInfo, ...]  # live epochs, oldest first
    listeners: tuple[ListenerInfo, ...]
    pending_offers: int  # offers sent, not yet answered
    queued_offers: int  # offers waiting to be sent (pacing, or an earlier offer still in flight)
    rekey_due: float | None  # a batched rekey is pending for this instant

    @property
    def group_listeners(self) -> tuple[str, ...]:
        return tuple(li.listener for li in self.listeners if li.epoch is not None)


@dataclass(frozen=True, slots=True)
class RekeyRecord:
    """Costs of one epoch's introduction.  ``triggered_at``: the (earliest) membership change it answers;
    ``listeners``: group listeners that had to move; ``last_switch_at``: when the last of them was switched
    to it (or a later epoch); ``exposure_end_at``: when every older epoch was retired - from then on nothing
    is sent under a key a leaver may hold."""

    epoch: int
    reason: str
    triggered_at: float
    started_at: float
    changes: int
    listeners: int
    offers: int
    switched: int
    demoted: int
    dropped: int
    left: int
    last_switch_at: float | None
    completed_at: float | None
    exposure_end_at: float | None
    superseded_by: int | None

    @property
    def switch_window(self) -> float | None:
        """From the membership change to the last listener's switch (None while incomplete)."""
        if self.completed_at is None:
            return None
        end = self.last_switch_at if self.last_switch_at is not None else self.completed_at
        return end - self.triggered_at

    @property
    def exposure_window(self) -> float | None:
        return None if self.exposure_end_at is None else self.exposure_end_at - self.triggered_at

    @property
    def sip_messages(self) -> int:
        """re-INVITE + 200 + ACK per offer and per demotion, BYE + 200 per drop."""
        return 3 * (self.offers + self.demoted) + 2 * self.dropped


@dataclass(slots=True)
class _Record:
    epoch: int
    reason: str
    triggered_at: float
    started_at: float
    changes: int
    pending: set[str]
    listeners: int
    offers: int = 0
    switched: int = 0
    demoted: int = 0
    dropped: int = 0
    left: int = 0
    last_switch_at: float | None = None
    completed_at: float | None = None
    exposure_end_at: float | None = None
    superseded_by: int | None = None
    counted: bool = False  # a rekey (not the conference's first epoch): its duration goes to the stats

    def freeze(self) -> RekeyRecord:
        return RekeyRecord(
            self.epoch,
            self.reason,
            self.triggered_at,
            self.started_at,
            self.changes,
            self.listeners,
            self.offers,
            self.switched,
            self.demoted,
            self.dropped,
            self.left,
            self.last_switch_at,
            self.completed_at,
            self.exposure_end_at,
            self.superseded_by,
        )


@dataclass(slots=True)
class _Listener:
    id: str
    capable: bool
    joined_at: float
    min_epoch: int  # lowest epoch it may be offered (backward security under on-join)
    eligible: bool
    route: int | None = None
    keep_own: bool = False
    probation_deadline: float | None = None
    offer: int | None = None
    offer_deadline: float | None = None
    demote_deadline: float | None = None
    reoffer: bool = False
    proven: bool = False
    known: set[int] = field(default_factory=set)  # epochs whose key it was sent
    answered: set[int] = field(default_factory=set)

    @property
    def state(self) -> ListenerState:
        if self.demote_deadline is not None:
            return ListenerState.DEMOTING
        if self.probation_deadline is not None:
            return ListenerState.PROBATION
        if self.offer is not None:
            return ListenerState.OFFERED if self.route is None else ListenerState.REKEYING
        return ListenerState.OWN_KEY if self.route is None else ListenerState.GROUP


_OFFER, _PROBATION, _DEMOTE, _BATCH, _PACE = range(5)


class GroupKeyManager:
    """Group keys of one conference.  See the module docstring for the model.

    ``mode``: in ``per-participant`` mode the manager only keeps the roster (every listener stays on its
    own key, no epochs, no actions).  ``policy`` defaults to ``on-join,on-leave``.  ``ssrc_source`` (tests)
    replaces the CSPRNG for SSRCs; repeats are skipped.
    """

    def __init__(
        self,
        mode: DownlinkMode = DownlinkMode.GROUP,
        policy: RekeyPolicy | None = None,
        config: KeyManagerConfig | None = None,
        *,
        ssrc_source: Callable[[], int] | None = None,
        conference_id: str = "",
        stats: KeyingStats | None = None,
    ) -> None:
        self.mode = mode
        self.policy = policy if policy is not None else RekeyPolicy.both()
        self.config = config if config is not None else KeyManagerConfig()
        self.conference_id = conference_id
        self.stats = stats if stats is not None else KeyingStats()  # shared by the focus's managers
        self._epochs = EpochTable(self.config.suite, SsrcAllocator(ssrc_source))
        self._listeners: dict[str, _Listener] = {}
        self._queue: dict[str, None] = {}  # ready for an offer of the current epoch, in order
        self._waiting: dict[str, None] = {}  # need an epoch newer than the current one
        self._heap: list[tuple[float, int, int, str, int]] = []
        self._counter = 0
        self._batch_due: float | None = None
        self._batch_trigger = 0.0
        self._batch_changes = 0
        self._pace_start = float("-inf")
        self._pace_sent = 0
        self._pace_due: float | None = None
        self._records: dict[int, _Record] = {}
        self._open: list[_Record] = []  # records with listeners still to move
        self._exposed: list[_Record] = []  # records whose older epochs are not all retired yet
        self._closed = False
        self.counters: dict[str, int] = dict.fromkeys(
            (
                "offers",
                "answers",
                "refusals",
                "switches",
                "confirmations",
                "demotions",
                "drops",
                "rekeys",
                "stale_events",
            ),
            0,
        )

    def __repr__(self) -> str:
        cur = self._epochs.current
        return (
            f"GroupKeyManager({self.conference_id!r}, {self.mode.value}, {self.policy}, "
            f"epoch={cur.number if cur else None}, listeners={len(self._listeners)})"
        )

    # ------------------------------------------------------------------------------------ public API

    @property
    def group_mode(self) -> bool:
        return self.mode is DownlinkMode.GROUP

    def reserve_ssrcs(self, ssrcs: Iterable[int]) -> None:
        """SSRCs in use by the mixer's own streams: never chosen for common/speaker streams."""
        self._epochs.ssrcs.reserve(ssrcs)

    def join(self, listener: str, now: float, *, capable: bool = False) -> list[Action]:
        """A participant's leg is up on its own key.  In group mode it is offered the group key now, or -
        under ``interval:T`` with a key in use - at the next rekey.  ``capable``: the operator vouches that
        this phone takes new keys (no proof needed)."""
        if self._closed:
            raise RuntimeError("key manager closed")
        if listener in self._listeners:
            raise ValueError(f"listener {listener!r} already joined")
        out: list[Action] = []
        if not self.group_mode:
            self._listeners[listener] = _Listener(listener, capable, now, 0, eligible=False)
            return out
        cur = self._epochs.current
        if not self.policy.on_join:
            min_epoch = 0
        elif cur is None or cur.offered_to == 0:
            min_epoch = cur.number if cur is not None else 1
        else:
            min_epoch = cur.number + 1
        lst = _Listener(listener, capable, now, min_epoch, eligible=True)
        self._listeners[listener] = lst
        if cur is None:
            self._start_epoch(now, "initial", now, 1, out)
        elif min_epoch > cur.number:
            self._change(now, "join", out)
        self._want_offer(lst)
        self._pump(now, out)
        return out

    def leave(self, listener: str, now: float) -> list[Action]:
        """The participant left (BYE either way).  Idempotent: unknown listeners give no actions."""
        lst = self._listeners.pop(listener, None)
        if lst is None:
            return []
        out: list[Action] = [StopListener(listener)]
        if not self.group_mode:
            return out
        self._forget(lst)
        self._resolve(lst.id, now, "left")
        self._after_departure(lst, now, "leave", out)
        self._pump(now, out)
        return out

    def handle(self, event: Event, now: float) -> list[Action]:
        out: list[Action] = []
        lst = self._listeners.get(event.listener)
        if lst is None or not self.group_mode:
            self.counters["stale_events"] += 1
            return out
        if isinstance(event, KeyAnswerReceived):
            self._on_answer(lst, event.epoch, event.accepted, now, out, timed_out=False)
        elif isinstance(event, KeyUseConfirmed):
            self._on_confirmed(lst, event.epoch, out)
        elif isinstance(event, KeyUseFailed):
            if lst.route == event.epoch:
                self._demote(lst, now, out, "no proof of key use")
            else:
                self.counters["stale_events"] += 1
        elif isinstance(event, DemoteDone):
            if lst.demote_deadline is not None:
                lst.demote_deadline = None
            else:
                self.counters["stale_events"] += 1
        elif isinstance(event, DemoteFailed):
            if lst.demote_deadline is not None:
                self._drop(lst, now, "demotion failed", out)
            else:
                self.counters["stale_events"] += 1
        else:  # pragma: no cover - exhaustive
            raise TypeError(f"not a key event: {event!r}")
        self._pump(now, out)
        return out

    def request_rekey(self, now: float, reason: str = "request") -> list[Action]:
        """Start a new epoch now (operator request, key lifetime), regardless of batching."""
        out: list[Action] = []
        if self.group_mode and not self._closed:
            self._start_epoch(now, reason, now, 0, out)
            self._pump(now, out)
        return out

    def next_deadline(self) -> float | None:
        heap = self._heap
        while heap and not self._valid(heap[0]):
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def handle_timer(self, now: float) -> list[Action]:
        out: list[Action] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            entry = heapq.heappop(heap)
            if not self._valid(entry):
                continue
            _, _, kind, lid, token = entry
            lst = self._listeners.get(lid)
            if kind == _OFFER and lst is not None:
                self._on_answer(lst, token, False, now, out, timed_out=True)
            elif kind == _PROBATION and lst is not None:
                self._demote(lst, now, out, "no proof of key use within confirm_timeout")
            elif kind == _DEMOTE and lst is not None:
                self._drop(lst, now, "demotion timed out", out)
            elif kind == _PACE:
                self._pace_due = None
            # _BATCH: _pump starts it
        self._pump(now, out)
        return out

    def close(self, now: float) -> list[Action]:
        """Conference over: retire every epoch (keys wiped)."""
        out: list[Action] = []
        self._closed = True
        for lst in list(self._listeners.values()):
            self._forget(lst)
        self._listeners.clear()
        self._heap.clear()
        self._batch_due = None
        for ep in self._epochs.live():
            self._epochs.retire(ep, now)
            out.append(RetireEpoch(ep.number))
        return out

    def state(self, listener: str) -> ListenerState:
        return self._listeners[listener].state

    def __contains__(self, listener: object) -> bool:
        return listener in self._listeners

    def downlink(self, listener: str, speaking: bool = False) -> Downlink:
        """The routing rule the mixer applies each tick for ``listener`` (``speaking``: among the active
        speakers this tick)."""
        lst = self._listeners[listener]
        if lst.route is None:
            return Downlink("own")
        ep = self._epochs.get(lst.route)
        assert ep is not None
        if speaking:
            return Downlink("speaker", ep.number, ep.speaker_ssrcs[lst.id])
        return Downlink("common", ep.number, ep.ssrc, also_own=lst.keep_own)

    @property
    def current_epoch(self) -> int | None:
        """The number of the newest epoch (what :meth:`snapshot` calls ``current_epoch``), cheaply."""
        cur = self._epochs.current
        return cur.number if cur is not None else None

    def snapshot(self) -> KeySnapshot:
        cur = self._epochs.current
        return KeySnapshot(
            mode=self.mode,
            policy=str(self.policy),
            current_epoch=cur.number if cur is not None else None,
            epochs=tuple(
                EpochInfo(ep.number, ep.ssrc, ep.created_at, ep.reason, ep.receivers, ep.offers_out)
                for ep in self._epochs.live()
            ),
            listeners=tuple(
                ListenerInfo(lst.id, lst.state, lst.route, lst.offer, lst.capable, lst.proven, lst.eligible)
                for lst in self._listeners.values()
            ),
            pending_offers=sum(1 for lst in self._listeners.values() if lst.offer is not None),
            queued_offers=len(self._queue)
            + sum(1 for lst in self._listeners.values() if lst.reoffer)
            + len(self._waiting),
            rekey_due=self._batch_due,
        )

    def oldest_epoch_created_at(self) -> float | None:
        """When the oldest live epoch was made (on the ``now`` clock); None without one."""
        number = self._epochs.oldest_live()
        ep = None if number is None else self._epochs.get(number)
        return None if ep is None else ep.created_at

    def rekey_stats(self) -> tuple[RekeyRecord, ...]:
        return tuple(r.freeze() for r in self._records.values())

    # ------------------------------------------------------------------------------------ internals

    def _push(self, when: float, kind: int, lid: str = "", token: int = 0) -> None:
        self._counter += 1
        heapq.heappush(self._heap, (when, self._counter, kind, lid, token))

    def _valid(self, entry: tuple[float, int, int, str, int]) -> bool:
        when, _, kind, lid, token = entry
        if kind == _BATCH:
            return self._batch_due == when
        if kind == _PACE:
            return self._pace_due == when
        lst = self._listeners.get(lid)
        if lst is None:
            return False
        if kind == _OFFER:
            return lst.offer == token and lst.offer_deadline == when
        if kind == _PROBATION:
            return lst.route == token and lst.probation_deadline == when
        return lst.demote_deadline == when

    def _epoch(self, number: int) -> Epoch:
        ep = self._epochs.get(number)
        assert ep is not None
        return ep

    def _start_epoch(
        self, now: float, reason: str, triggered_at: float, changes: int, out: list[Action]
    ) -> None:
        prev = self._epochs.current
        ep = self._epochs.create(now, reason, len(self._epochs) + 1)
        out.append(Rekey(ep.number, ep.ssrc, ep.key, reason))
        if prev is not None:
            self.counters["rekeys"] += 1
            self.stats.rekeys += 1
            prev_rec = self._records.get(prev.number)
            if prev_rec is not None and prev_rec.completed_at is None:
                prev_rec.superseded_by = ep.number
        self._batch_due = None
        self._batch_changes = 0
        pending = {lst.id for lst in self._listeners.values() if lst.route is not None}
        rec = _Record(ep.number, reason, triggered_at, now, changes, pending, len(pending))
        rec.counted = prev is not None
        if not pending:
            self._complete(rec, now)
        else:
            self._open.append(rec)
        self._records[ep.number] = rec
        self._exposed.append(rec)
        log.info(
            "conference %s: key epoch %d (%s), %d group listeners to move",
            self.conference_id,
            ep.number,
            reason,
            len(pending),
        )
        self._waiting.clear()
        for lst in self._listeners.values():
            if lst.eligible and lst.demote_deadline is None:
                self._want_offer(lst)

    def _change(self, now: float, reason: str, out: list[Action]) -> None:
        """A membership change that calls for a new epoch (per policy)."""
        interval = self.policy.interval
        if interval is None:
            self._start_epoch(now, reason, now, 1, out)
            return
        if self._batch_due is None:
            cur = self._epochs.current
            last = cur.created_at if cur is not None else float("-inf")
            self._batch_due = max(now, last + interval)
            self._batch_trigger = now
            self._batch_changes = 0
            self._push(self._batch_due, _BATCH)
        self._batch_changes += 1

    def _want_offer(self, lst: _Listener) -> None:
        if not lst.eligible or lst.demote_deadline is not None:
            return
        cur = self._epochs.current
        if cur is None or lst.route == cur.number:
            return
        if lst.offer is not None:
            if lst.offer != cur.number:
                lst.reoffer = True
            return
        if cur.number < lst.min_epoch:
            self._waiting[lst.id] = None
        else:
            self._queue[lst.id] = None

    def _pump(self, now: float, out: list[Action]) -> None:
        if self._batch_due is not None and now >= self._batch_due:
            self._start_epoch(now, "batch", self._batch_trigger, self._batch_changes, out)
        self._send_offers(now, out)
        self._retire(now, out)

    def _send_offers(self, now: float, out: list[Action]) -> None:
        cur = self._epochs.current
        if cur is None or not self._queue:
            return
        cap = self.config.max_offers_per_tick
        tick = self.config.tick
        rec = self._records[cur.number]
        while self._queue:
            if cap is not None:
                if now >= self._pace_start + tick:
                    self._pace_start = now
                    self._pace_sent = 0
                if self._pace_sent >= cap:
                    due = self._pace_start + tick
                    if self._pace_due != due:
                        self._pace_due = due
                        self._push(due, _PACE)
                    return
            lid = next(iter(self._queue))
            del self._queue[lid]
            lst = self._listeners.get(lid)
            if lst is None or not lst.eligible or lst.demote_deadline is not None or lst.route == cur.number:
                continue
            if lst.offer is not None:
                lst.reoffer = lst.offer != cur.number
                continue
            if cur.number < lst.min_epoch:
                self._waiting[lid] = None
                continue
            lst.offer = cur.number
            lst.offer_deadline = now + self.config.answer_timeout
            lst.known.add(cur.number)
            cur.offers_out += 1
            cur.offered_to += 1
            rec.offers += 1
            self.counters["offers"] += 1
            if cap is not None:
                self._pace_sent += 1
            self._push(lst.offer_deadline, _OFFER, lid, cur.number)
            out.append(OfferKey(lid, cur.number, cur.key, cur.ssrc))

    def _retire(self, now: float, out: list[Action]) -> None:
        retired = False
        for ep in self._epochs.retirable():
            self._epochs.retire(ep, now)
            out.append(RetireEpoch(ep.number))
            retired = True
        if self._exposed and (retired or self._exposed[0].exposure_end_at is None):
            oldest = self._epochs.oldest_live()
            still: list[_Record] = []
            for rec in self._exposed:
                if oldest is None or oldest >= rec.epoch:
                    rec.exposure_end_at = now
                else:
                    still.append(rec)
            self._exposed = still

    def _resolve(self, lid: str, now: float, how: str, upto: int | None = None) -> None:
        """``lid`` no longer blocks the rekeys up to epoch ``upto`` (all if None): switched/demoted/..."""
        if not self._open:
            return
        still: list[_Record] = []
        for rec in self._open:
            if lid in rec.pending and (upto is None or rec.epoch <= upto):
                rec.pending.discard(lid)
                if how == "switched":
                    rec.switched += 1
                    rec.last_switch_at = now
                elif how == "demoted":
                    rec.demoted += 1
                elif how == "dropped":
                    rec.dropped += 1
                else:
                    rec.left += 1
                if not rec.pending:
                    self._complete(rec, now)
                    continue
            still.append(rec)
        self._open = still

    def _complete(self, rec: _Record, now: float) -> None:
        rec.completed_at = now
        if rec.counted:
            end = rec.last_switch_at if rec.last_switch_at is not None else now
            self.stats.observe_duration(end - rec.triggered_at)

    def _forget(self, lst: _Listener) -> None:
        if lst.route is not None:
            self._epoch(lst.route).receivers -= 1
            lst.route = None
        if lst.offer is not None:
            self._epoch(lst.offer).offers_out -= 1
            lst.offer = None
        self._queue.pop(lst.id, None)
        self._waiting.pop(lst.id, None)

    def _after_departure(self, lst: _Listener, now: float, reason: str, out: list[Action]) -> None:
        cur = self._epochs.current
        if self.policy.on_leave and cur is not None and cur.number in lst.known:
            self._change(now, reason, out)

    def _on_answer(
        self, lst: _Listener, epoch: int, accepted: bool, now: float, out: list[Action], *, timed_out: bool
    ) -> None:
        if lst.offer != epoch:
            self.counters["stale_events"] += 1
            return
        ep = self._epoch(epoch)
        ep.offers_out -= 1
        lst.offer = None
        lst.offer_deadline = None
        self.counters["answers"] += 1
        if not accepted:
            self.counters["refusals"] += 1
            if lst.route is None and not timed_out:
                # a failed re-INVITE leaves the session as it was: still on its own key, never re-offered
                lst.eligible = False
                lst.reoffer = False
                log.info(
                    "conference %s: %s refused the group key; stays on its own key",
                    self.conference_id,
                    lst.id,
                )
            else:
                self._demote(lst, now, out, "key offer timed out" if timed_out else "key offer refused")
            return
        lst.answered.add(epoch)
        self._switch(lst, ep, now, out)
        if lst.reoffer:
            lst.reoffer = False
            self._want_offer(lst)

    def _switch(self, lst: _Listener, ep: Epoch, now: float, out: list[Action]) -> None:
        prev = lst.route
        if prev is not None:
            self._epoch(prev).receivers -= 1
        lst.route = ep.number
        ep.receivers += 1
        need_proof = not lst.capable and (not lst.proven or self.config.confirm_rekeys)
        lst.keep_own = need_proof and (prev is None or lst.keep_own)
        if need_proof:
            lst.probation_deadline = now + self.config.confirm_timeout
            self._push(lst.probation_deadline, _PROBATION, lst.id, ep.number)
        else:
            lst.probation_deadline = None
            lst.proven = True
        speaker = ep.speaker_ssrcs.get(lst.id)
        if speaker is None:
            speaker = ep.speaker_ssrcs[lst.id] = self._epochs.ssrcs.allocate()
        self.counters["switches"] += 1
        out.append(SwitchListener(lst.id, ep.number, ep.ssrc, speaker, lst.keep_own))
        self._resolve(lst.id, now, "switched", upto=ep.number)

    def _on_confirmed(self, lst: _Listener, epoch: int, out: list[Action]) -> None:
        if lst.route != epoch or lst.probation_deadline is None:
            self.counters["stale_events"] += 1
            return
        lst.probation_deadline = None
        lst.proven = True
        lst.keep_own = False
        self.counters["confirmations"] += 1
        out.append(SettleListener(lst.id, epoch))

    def _demote(self, lst: _Listener, now: float, out: list[Action], reason: str) -> None:
        self._forget(lst)
        lst.probation_deadline = None
        lst.offer_deadline = None
        lst.keep_own = False
        lst.reoffer = False
        lst.eligible = False
        lst.demote_deadline = now + self.config.demote_timeout
        self._push(lst.demote_deadline, _DEMOTE, lst.id)
        self.counters["demotions"] += 1
        self._resolve(lst.id, now, "demoted")
        log.info("conference %s: %s demoted to its own key (%s)", self.conference_id, lst.id, reason)
        out.append(DemoteListener(lst.id, reason))

    def _drop(self, lst: _Listener, now: float, reason: str, out: list[Action]) -> None:
        self._listeners.pop(lst.id, None)
        self._forget(lst)
        lst.demote_deadline = None
        self.counters["drops"] += 1
        self._resolve(lst.id, now, "dropped")
        log.warning("conference %s: %s dropped (%s)", self.conference_id, lst.id, reason)
        out.append(DropListener(lst.id, reason))
        self._after_departure(lst, now, "drop", out)
