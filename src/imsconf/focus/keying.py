"""Group downlink keying at the focus: one :class:`~imsconf.keys.GroupKeyManager` per conference, driven from
the roster and carried out over SIP (re-INVITE with a new ``a=crypto``) and the mixer (MRFC calls).

Policy per conference: the booking's ``downlink`` / ``rekey`` for booked conferences, else the defaults set
with :meth:`FocusKeying.configure` (``Settings.downlink`` / ``Settings.rekey``).

* **Join**: once the participant's INVITE is acknowledged (or our dial-out INVITE answered) the leg joins
  its conference's manager when its codec has a group stream (:func:`group_codec`): PCMU/0, the epoch's
  own stream, at 8 kHz and in the 16 kHz mix, and every non-G.711 codec (Opus, G.722, AMR-WB, ...), whose
  conference the mixer mixes at 16 kHz, with one common stream per listener codec group (codec, payload
  type, clock, format parameters) under the same epoch key on its own SSRC, which the mixer draws
  (:mod:`imsconf.media.group_downlink`). Other G.711 legs (PCMA, PCMU on another payload type) stay on
  their own key. The epoch, its key and its SSRC (the PCMU stream's) are the key manager's as before: the
  codec groups' SSRCs never leave the mixer, and its evidence names the epoch, whatever the stream.
* **8 and 16 kHz**: the first non-G.711 leg takes the conference to the 16 kHz mix, the last one's
  leaving (or its re-INVITE to G.711) takes it back; the PCMU group listeners stay on the epoch's stream
  (same SSRC, same key) both ways: no re-INVITE. A per-conference index of the non-G.711 legs
  (:attr:`FocusKeying.wide_legs`) follows the moves (``event=group_mix``, trace ``mix``).
* **Codec change**: a group listener's re-INVITE to a codec without a group stream demotes it to its own
  key; a joined leg on its own key for its codec that moves to one with a group stream joins.
* **Leave**: on BYE (either way) and any other release (:meth:`FocusKeying.on_forget`).
* ``OfferKey`` → a re-INVITE to the listener: our last SDP, ``o=`` version + 1, one ``a=crypto`` with the
  group key and the tag of the negotiated crypto line.  2xx → ACK, ``KeyAnswerReceived(accepted=True)``
  (a new key in its answer becomes the mixer's receive key); 491 → one retry after 2.1-4 s (RFC 3261
  §14.1); anything else or a timeout → ``accepted=False``.
* ``SwitchListener`` / ``SettleListener`` / ``DemoteListener`` / ``RetireEpoch`` / ``Rekey`` → mixer calls;
  ``DemoteListener`` also re-INVITEs the listener with its own key (``DemoteDone`` / ``DemoteFailed``);
  ``DropListener`` → BYE.
* Mixer evidence ``GroupStreamConfirmed`` / ``GroupStreamFailing`` → ``KeyUseConfirmed`` / ``KeyUseFailed``.
  Media events arrive without a clock: they go to the focus's inbox (:class:`~imsconf.focus.legs.Inbox`)
  and are handled at its next timer.
* One SIP transaction of ours per leg at a time; while the participant's own INVITE is not yet
  acknowledged, or ours is outstanding, the next one waits (the participant's re-INVITE meanwhile gets
  491 from the focus, see :meth:`busy`).  While a listener holds the group key, the answer to its own
  re-INVITE carries the group key (``MediaSession.group_key``).
* Key scope per listener goes to the conference event package (``EndpointDetails.key_scope``) and to the
  log (``event=key_scope``); key bytes never do.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Protocol

from imsconf.conference.eventinfo import EndpointDetails, KeyScope
from imsconf.conference.participant import ConferenceState
from imsconf.conference.registry import ConferenceRegistry
from imsconf.keys import (
    Action,
    DemoteDone,
    DemoteFailed,
    DemoteListener,
    DownlinkMode,
    DropListener,
    Event,
    GroupKeyManager,
    KeyAnswerReceived,
    KeyManagerConfig,
    KeySnapshot,
    KeyUseConfirmed,
    KeyUseFailed,
    MasterKey,
    OfferKey,
    Rekey,
    RekeyPolicy,
    RetireEpoch,
    SettleListener,
    StopListener,
    SwitchListener,
)
from imsconf.keys.authority import SUITES
from imsconf.keys.stats import KeyingStats
from imsconf.media.control import MediaControl
from imsconf.media.events import (
    G711_NAMES,  # the codecs the mixer mixes at 8 kHz (any other takes the conference to 16 kHz)
    GroupStreamConfirmed,
    GroupStreamFailing,
    MediaEngineError,
    MediaEvent,
)
from imsconf.media.srtp import SrtpKeys
from imsconf.sdp import AudioDecision
from imsconf.sdp.errors import SdpParseError
from imsconf.sdp.sdes import CryptoAttribute
from imsconf.sdp.session import SessionDescription
from imsconf.sip.endpoint import SipEndpoint
from imsconf.sip.errors import LocalProtocolError
from imsconf.sip.headers import Headers
from imsconf.sip.message import Request, Response

from .legs import Inbox, Leg, LegTable
from .ports import FeatureBase, FocusPort
from .routing import dialog_destination

log = logging.getLogger("imsconf.focus.keying")

GROUP_CODEC = ("PCMU", 0)  # the epoch's own stream's codec (MediaControl.add_group_epoch default)
LOBBY_POLL = 0.25  # how often legs held in a PIN lobby are looked at again (they join once admitted)


class BookedKeying(Protocol):
    """The keying fields of booked conferences and the PIN lobby (:class:`~.planned.PlannedConferences`)."""

    def keying(self, conf_id: str) -> tuple[DownlinkMode, RekeyPolicy] | None: ...

    def in_lobby(self, leg_id: str) -> bool: ...


MoveDone = Callable[[SipEndpoint, bool, float], None]
"""``(ep, accepted, now)``: the answer to a focus re-INVITE of :meth:`FocusKeying.reinvite`."""


@dataclass(slots=True)
class _Op:
    """One re-INVITE of ours: offer the group key of ``epoch`` (``epoch`` None: demote to the own key), or
    - with ``done`` - the SDP given in ``sdp`` (a leg moved to a new mixer, :mod:`.recovery`)."""

    epoch: int | None
    key: MasterKey | None  # a private copy of the offered key (wiped when done)
    sdp: bytes = b""
    invite: Request | None = None
    sent_at: float | None = None
    retry_at: float | None = None
    retried: bool = False
    done: MoveDone | None = None
    stale: bool = False  # made for a key manager that is gone (the mixer was lost): its answer is ignored


@dataclass(slots=True)
class _LegKeys:
    leg_id: str
    conf_id: str
    joined: bool = False
    current: _Op | None = None  # the re-INVITE in flight (or waiting for its 491 retry)
    queue: list[_Op] = field(default_factory=list)
    route: tuple[int, int] | None = None  # (epoch, speaker ssrc) the mixer sends it
    scope: KeyScope = KeyScope.PER_PARTICIPANT
    acks: dict[int, Request] = field(default_factory=dict)  # CSeq -> ACK, for 2xx retransmissions


@dataclass(frozen=True, slots=True)
class KeyingTrace:
    """A timestamped record of what the keying did (for tests and the evaluation benchmark)."""

    at: float
    conf_id: str
    what: str  # rekey, offer, answer, switch, settle, demote, drop, retire, join, leave, mix
    leg_id: str | None = None
    epoch: int | None = None
    detail: str = ""


def group_codec(decision: AudioDecision | None) -> bool:
    """Whether the mixer has a group stream for a leg of this negotiated codec: PCMU/0 (the epoch's own
    stream, at 8 and 16 kHz) or any non-G.711 codec (a codec group's stream in the 16 kHz mix)."""
    if decision is None:
        return False
    codec = decision.codec
    return (codec.name, codec.payload_type) == GROUP_CODEC or codec.name not in G711_NAMES


def _wide(decision: AudioDecision | None) -> bool:
    return decision is not None and decision.codec.name not in G711_NAMES


def _copy_key(key: MasterKey) -> MasterKey:
    return MasterKey(key.suite, bytearray(key.key), bytearray(key.salt))


def _wipe(op: _Op) -> None:
    if op.key is not None:
        op.key.wipe()
        op.key = None


def _with_crypto(sdp: bytes, version: int, crypto: CryptoAttribute | None) -> bytes:
    """*sdp* (our last SDP) with ``o=`` version *version* and its ``a=crypto`` lines replaced by *crypto*."""
    text = sdp.decode("utf-8", "replace")
    out: list[str] = []
    placed = False
    for line in text.split("\r\n"):
        if line.startswith("o="):
            parts = line.split(" ")
            if len(parts) >= 6:
                parts[2] = str(version)
                line = " ".join(parts)
        elif line.startswith("a=crypto:"):
            if placed or crypto is None:
                continue
            line = f"a=crypto:{crypto.to_sdp()}"
            placed = True
        out.append(line)
    return "\r\n".join(out).encode()


def _ack_for(invite: Request, resp: Response) -> Request:
    """The ACK for a 2xx to our in-dialog re-INVITE (RFC 3261 §13.2.2.4): same URI and route set, the To
    of the response, CSeq number of the INVITE; the endpoint adds a fresh Via."""
    h = Headers()
    h.add("Max-Forwards", "70")
    for route in invite.headers.get_all("Route"):
        h.add("Route", route)
    for name in ("From", "Call-ID"):
        value = invite.headers.get(name)
        if value is not None:
            h.add(name, value)
    to = resp.headers.get("To") or invite.headers.get("To")
    if to is not None:
        h.add("To", to)
    h.add("CSeq", f"{invite.cseq.number} ACK")
    return Request("ACK", invite.uri, h, b"")


class FocusKeying(FeatureBase):
    """The focus's group-key machinery (see the module docstring)."""

    def __init__(
        self,
        table: LegTable,
        port: FocusPort,
        registry: ConferenceRegistry,
        media: MediaControl,
        inbox: Inbox,
        *,
        booked: BookedKeying | None = None,
        downlink: DownlinkMode = DownlinkMode.PER_PARTICIPANT,
        rekey: RekeyPolicy | None = None,
        config: KeyManagerConfig | None = None,
    ) -> None:
        """*downlink*, *rekey*: the keying of conferences without a booking (a booking's own wins);
        *config*: the key managers' timers."""
        self.table = table
        self.port = port
        self.registry = registry
        self.media = media
        self.inbox = inbox
        self.booked = booked
        self.mode = downlink
        self.policy = rekey if rekey is not None else RekeyPolicy.both()
        self.config = config if config is not None else KeyManagerConfig()
        self.managers: dict[str, GroupKeyManager] = {}
        self.stats = KeyingStats()  # rekeys of every conference, for the metrics
        self.legs: dict[str, _LegKeys] = {}
        self.capable: Callable[[str], bool] = lambda user: False  # operator: this AoR's phone rekeys
        self.trace: list[KeyingTrace] | None = None  # set to [] to record
        self.counters: dict[str, int] = dict.fromkeys(
            ("reinvites", "answers_2xx", "answers_failed", "retries_491", "acks"), 0
        )
        self._group_confs: set[str] = set()
        self.wide_legs: dict[str, set[str]] = {}  # conference -> its legs on a non-G.711 codec (16 kHz mix)
        self._lobby: set[str] = set()  # acknowledged legs not (yet) in the roster: no key until admitted
        self._lobby_due: float | None = None
        self._ep: SipEndpoint | None = None
        self._rng = random.Random()

    # ------------------------------------------------------------------------------------------ setup

    def configure(self, downlink: DownlinkMode, rekey: RekeyPolicy) -> None:
        """New defaults for conferences without a booking; conferences already keyed keep theirs."""
        self.mode, self.policy = downlink, rekey

    def policy_for(self, conf_id: str) -> tuple[DownlinkMode, RekeyPolicy]:
        booked = self.booked.keying(conf_id) if self.booked is not None else None
        if booked is not None:
            return booked  # validated when the booking was made (booking.model)
        return self.mode, self.policy

    def manager(self, conf_id: str) -> GroupKeyManager:
        mgr = self.managers.get(conf_id)
        if mgr is None:
            mode, policy = self.policy_for(conf_id)
            mgr = self.managers[conf_id] = GroupKeyManager(
                mode, policy, self.config, conference_id=conf_id, stats=self.stats
            )
            log.info("event=key_policy conf=%s downlink=%s policy=%s", conf_id, mode, policy)
        return mgr

    def snapshot(self, conf_id: str) -> KeySnapshot | None:
        mgr = self.managers.get(conf_id)
        return None if mgr is None else mgr.snapshot()

    def oldest_epoch_created_at(self) -> float | None:
        """When the oldest group epoch still live in any conference was made (focus clock); None: none."""
        times = [t for t in (m.oldest_epoch_created_at() for m in self.managers.values()) if t is not None]
        return min(times) if times else None

    def current_epoch(self, conf_id: str) -> int | None:
        """The conference's newest group epoch (None: no key manager, or no epoch yet)."""
        mgr = self.managers.get(conf_id)
        return None if mgr is None else mgr.current_epoch

    def scope(self, leg_id: str) -> KeyScope:
        lk = self.legs.get(leg_id)
        return KeyScope.PER_PARTICIPANT if lk is None else lk.scope

    # ------------------------------------------------------------------------------------ focus hooks

    def busy(self, leg_id: str) -> bool:
        """A re-INVITE of ours is in flight on this leg (the participant's own re-INVITE gets 491)."""
        lk = self.legs.get(leg_id)
        return lk is not None and lk.current is not None and lk.current.retry_at is None

    def on_ack(self, ep: SipEndpoint, leg: Leg, now: float) -> None:
        """The leg's INVITE transaction is complete (ACK received, or our dial-out ACKed): join once, and
        send what waited for it."""
        self._ep = ep
        if leg.closing or leg.dialog is None:
            return
        lk = self.legs.get(leg.leg_id)
        if lk is None:
            lk = self.legs[leg.leg_id] = _LegKeys(leg.leg_id, leg.conf_id)
        if leg.media.chat_only:  # a chat-only session has no media to key (a later audio offer: its own key)
            return
        self._track_mix(leg, now)
        if not lk.joined:
            if not self._admitted(leg):
                self._lobby.add(leg.leg_id)
                if self._lobby_due is None:
                    self._lobby_due = now + LOBBY_POLL
                return
            self._lobby.discard(leg.leg_id)
            lk.joined = True
            mgr = self.manager(leg.conf_id)
            if mgr.group_mode and not (leg.media.secure and group_codec(leg.media.decision)):
                log.info(
                    "event=key_scope conf=%s leg=%s scope=per-participant reason=codec-or-plain",
                    leg.conf_id,
                    leg.leg_id,
                )
            else:
                self._join(ep, leg, mgr, now)
        self._next(ep, lk, now)

    def _join(self, ep: SipEndpoint, leg: Leg, mgr: GroupKeyManager, now: float) -> None:
        self._record(now, leg.conf_id, "join", leg.leg_id)
        self._run(ep, leg.conf_id, mgr.join(leg.leg_id, now, capable=self.capable(leg.user)), now)

    def after_media_update(self, ep: SipEndpoint, leg: Leg, now: float) -> None:
        """The leg's offer was answered again (re-INVITE, UPDATE): its conference may move between the 8 and
        the 16 kHz mix (the group listeners stay on their streams), and a move to a codec without a group
        stream demotes it, one to a codec with one lets it join."""
        lk = self.legs.get(leg.leg_id)
        if lk is None:
            return
        self._track_mix(leg, now)
        mgr = self.managers.get(leg.conf_id)
        if not lk.joined:
            return
        if mgr is None or not mgr.group_mode:
            return
        self._ep = ep
        if group_codec(leg.media.decision):
            if leg.leg_id not in mgr and leg.media.secure:
                self._join(ep, leg, mgr, now)
            return
        if leg.leg_id in mgr:
            for info in mgr.snapshot().listeners:
                if info.listener == leg.leg_id and info.epoch is not None:
                    log.info("event=key_scope conf=%s leg=%s scope=per-participant reason=codec",
                             leg.conf_id, leg.leg_id)  # fmt: skip
                    self._run(ep, leg.conf_id, mgr.handle(KeyUseFailed(leg.leg_id, info.epoch), now), now)

    def _track_mix(self, leg: Leg, now: float, gone: bool = False) -> None:
        """Keep the per-conference index of non-G.711 legs; log the conference's moves between the 8 kHz
        and the 16 kHz mix (the group streams follow in the mixer: nothing to re-key)."""
        wide = self.wide_legs.get(leg.conf_id)
        before = bool(wide)
        if not gone and _wide(leg.media.decision):
            if wide is None:
                wide = self.wide_legs[leg.conf_id] = set()
            wide.add(leg.leg_id)
        elif wide is not None:
            wide.discard(leg.leg_id)
            if not wide:
                del self.wide_legs[leg.conf_id]
        after = leg.conf_id in self.wide_legs
        if before != after:
            rate = 16000 if after else 8000
            log.info("event=group_mix conf=%s rate=%d leg=%s", leg.conf_id, rate, leg.leg_id)
            self._record(now, leg.conf_id, "mix", leg.leg_id, None, str(rate))

    def wide(self, conf_id: str) -> bool:
        """The conference has a non-G.711 leg (the mixer mixes it at 16 kHz)."""
        return conf_id in self.wide_legs

    def _admitted(self, leg: Leg) -> bool:
        """In the roster of a live conference and not held in a PIN lobby (focus.planned)."""
        conf = self.registry.get(leg.conf_id)
        if conf is None or conf.state is not ConferenceState.ACTIVE or leg.pid not in conf:
            return False
        return self.booked is None or not self.booked.in_lobby(leg.leg_id)

    def forget(self, leg: Leg, now: float) -> None:
        """The leg is being released (BYE either way, failure, conference end)."""
        self._lobby.discard(leg.leg_id)
        lk = self.legs.pop(leg.leg_id, None)
        if lk is None:
            return
        self._track_mix(leg, now, gone=True)
        for op in ([lk.current] if lk.current is not None else []) + lk.queue:
            _wipe(op)
        lk.current = None
        lk.queue.clear()
        mgr = self.managers.get(leg.conf_id)
        if mgr is None:
            return
        conf = self.registry.get(leg.conf_id)
        if conf is None or conf.state is not ConferenceState.ACTIVE:  # its media goes with it
            mgr.close(now)  # wipes the epoch keys; the mixer dropped its contexts with the conference
            del self.managers[leg.conf_id]
            self._group_confs.discard(leg.conf_id)
            return
        ep = self._ep
        if lk.joined and leg.leg_id in mgr:
            self._record(now, leg.conf_id, "leave", leg.leg_id)
            actions = mgr.leave(leg.leg_id, now)
            if ep is not None:
                self._run(ep, leg.conf_id, actions, now)

    def on_media_event(self, ev: MediaEvent) -> None:
        if isinstance(ev, GroupStreamConfirmed | GroupStreamFailing):
            stream_event = ev
            self.inbox.post(lambda ep, now: self._stream_evidence(ep, stream_event, now))

    def stray_2xx(self, ep: SipEndpoint, resp: Response) -> bool:
        """A retransmitted 2xx to one of our re-INVITEs: ACK it again."""
        for lk in self.legs.values():
            ack = lk.acks.get(resp.cseq.number)
            if ack is not None and resp.call_id == ack.call_id:
                leg = self.table.get(lk.leg_id)
                if leg is not None and leg.dialog is not None:
                    ep.send_stateless(ack, dialog_destination(leg.dialog, leg.peer))
                return True
        return False

    def reinvite(self, ep: SipEndpoint, leg: Leg, sdp: bytes, done: MoveDone, now: float) -> None:
        """Send *sdp* (our new offer: the leg moved to a new mixer) in a re-INVITE of the focus, in turn with
        the key re-INVITEs of this leg (after the participant's INVITE is acknowledged, one at a time, one
        retry after 491); ``done(ep, accepted, now)`` gets the outcome.  A 2xx is ACKed and its key becomes
        the mixer's receive key; the SDP becomes the leg's last one."""
        self._ep = ep
        lk = self.legs.get(leg.leg_id)
        if lk is None:  # not acknowledged yet: the leg joins its key manager at the ACK as usual
            lk = self.legs[leg.leg_id] = _LegKeys(leg.leg_id, leg.conf_id)
        lk.queue.insert(0, _Op(None, None, sdp=sdp, done=done))
        self._next(ep, lk, now)

    def mixer_lost(self, ep: SipEndpoint, now: float, conferences: frozenset[str] | None = None) -> None:
        """The mixer is gone with every group epoch: the key managers are closed (their keys wiped), every
        leg is back on its own key and out of its manager until it joins again (:meth:`rejoin`, once it is
        on the new mixer); queued re-INVITEs (offers, moves) are dropped, the answers to those in flight are
        ACKed and otherwise ignored (a move's ``done`` is not called).  With *conferences* (one member of a
        mixer pool lost) only those conferences and their legs; None: all."""
        for conf_id, mgr in list(self.managers.items()):
            if conferences is not None and conf_id not in conferences:
                continue
            mgr.close(now)
            self._record(now, conf_id, "mixer-lost")
            del self.managers[conf_id]
        if conferences is None:
            self._group_confs.clear()
        else:
            self._group_confs.difference_update(conferences)
        self._ep = ep
        for lk in list(self.legs.values()):
            if conferences is not None and lk.conf_id not in conferences:
                continue
            lk.joined = False
            lk.route = None
            self._set_scope(ep, lk.leg_id, KeyScope.PER_PARTICIPANT, now)  # subscribers see it too
            if lk.current is not None:
                if lk.current.retry_at is not None:  # waiting to be sent again after a 491: never is
                    _wipe(lk.current)
                    lk.current = None
                else:  # in flight: its answer is still ACKed, and otherwise ignored
                    lk.current.stale = True
            for op in lk.queue:  # key offers of the old epochs, moves to the lost mixer (made again)
                _wipe(op)
            lk.queue.clear()
            leg = self.table.get(lk.leg_id)
            if leg is not None and leg.media.group_key is not None:
                leg.media.group_key.wipe()
                leg.media.group_key = None

    def rejoin(self, ep: SipEndpoint, leg: Leg, now: float) -> None:
        """The leg is on the new mixer: it joins its conference's (new) key manager, as at its ACK."""
        self.on_ack(ep, leg, now)

    def next_deadline(self) -> float | None:
        best: float | None = self._lobby_due
        for mgr in self.managers.values():
            d = mgr.next_deadline()
            if d is not None and (best is None or d < best):
                best = d
        for lk in self.legs.values():
            if lk.current is not None and lk.current.retry_at is not None:
                d = lk.current.retry_at
                if best is None or d < best:
                    best = d
        return best

    def handle_timer(self, ep: SipEndpoint, now: float) -> None:
        self._ep = ep
        if self._lobby_due is not None and now >= self._lobby_due:
            self._lobby_due = None
            for leg_id in sorted(self._lobby):
                leg = self.table.get(leg_id)
                if leg is None:
                    self._lobby.discard(leg_id)
                else:
                    self.on_ack(ep, leg, now)  # joins once admitted, else re-arms the poll
        for conf_id, mgr in list(self.managers.items()):
            d = mgr.next_deadline()
            if d is not None and d <= now:
                self._run(ep, conf_id, mgr.handle_timer(now), now)
        for lk in list(self.legs.values()):
            op = lk.current
            if op is not None and op.retry_at is not None and op.retry_at <= now:
                op.retry_at = None
                self._send(ep, lk, op, now)

    def _stream_evidence(
        self, ep: SipEndpoint, ev: GroupStreamConfirmed | GroupStreamFailing, now: float
    ) -> None:
        """Mixer evidence for a listener's group stream, handed to its conference's key manager."""
        self._ep = ep
        lk = self.legs.get(ev.leg_id)
        mgr = self.managers.get(lk.conf_id) if lk is not None else None
        if lk is None or mgr is None:
            return
        kev: Event = (
            KeyUseConfirmed(ev.leg_id, ev.epoch)
            if isinstance(ev, GroupStreamConfirmed)
            else KeyUseFailed(ev.leg_id, ev.epoch)
        )
        if isinstance(ev, GroupStreamFailing):
            log.info(
                "event=key_use_failed leg=%s epoch=%d evidence=%s loss=%.2f",
                ev.leg_id,
                ev.epoch,
                ev.evidence,
                ev.fraction_lost,
            )
        self._run(ep, lk.conf_id, mgr.handle(kev, now), now)

    # ------------------------------------------------------------------------------------ actions

    def _run(self, ep: SipEndpoint, conf_id: str, actions: list[Action], now: float) -> None:
        media = self.media
        for a in actions:
            try:
                if isinstance(a, Rekey):
                    if a.epoch == 1 or conf_id not in self._group_confs:
                        media.set_downlink_mode(conf_id, DownlinkMode.GROUP)
                        self._group_confs.add(conf_id)
                    media.add_group_epoch(
                        conf_id, a.epoch, SrtpKeys(a.key.suite, a.key.key, a.key.salt), a.ssrc
                    )
                    log.info(
                        "event=group_rekey conf=%s epoch=%d ssrc=%d reason=%s",
                        conf_id,
                        a.epoch,
                        a.ssrc,
                        a.reason,
                    )
                    self._record(now, conf_id, "rekey", None, a.epoch, a.reason)
                elif isinstance(a, OfferKey):
                    self._queue_op(ep, a.listener, _Op(a.epoch, _copy_key(a.key)), now)
                elif isinstance(a, SwitchListener):
                    media.set_listener_stream(
                        a.listener, a.epoch, speaker_ssrc=a.speaker_ssrc, keep_own=a.keep_own
                    )
                    lk = self.legs.get(a.listener)
                    if lk is not None:
                        lk.route = (a.epoch, a.speaker_ssrc)
                    self._record(
                        now, conf_id, "switch", a.listener, a.epoch, "probation" if a.keep_own else ""
                    )
                    if not a.keep_own:
                        self._set_scope(ep, a.listener, KeyScope.GROUP, now)
                elif isinstance(a, SettleListener):
                    lk = self.legs.get(a.listener)
                    speaker = lk.route[1] if lk is not None and lk.route is not None else None
                    media.set_listener_stream(a.listener, a.epoch, speaker_ssrc=speaker, keep_own=False)
                    self._record(now, conf_id, "settle", a.listener, a.epoch)
                    self._set_scope(ep, a.listener, KeyScope.GROUP, now)
                elif isinstance(a, DemoteListener):
                    media.set_listener_stream(a.listener, None)
                    lk = self.legs.get(a.listener)
                    if lk is not None:
                        lk.route = None
                    self._record(now, conf_id, "demote", a.listener, None, a.reason)
                    self._set_scope(ep, a.listener, KeyScope.PER_PARTICIPANT, now)
                    self._queue_op(ep, a.listener, _Op(None, None), now)
                elif isinstance(a, DropListener):
                    self._record(now, conf_id, "drop", a.listener, None, a.reason)
                    leg = self.table.get(a.listener)
                    log.warning("event=key_drop leg=%s reason=%r", a.listener, a.reason)
                    if leg is not None and not leg.closing:
                        self.port.end(ep, leg, f"key change failed ({a.reason})", now, send_bye=True)
                elif isinstance(a, StopListener):
                    pass  # the leg is being released: release_leg stops everything
                elif isinstance(a, RetireEpoch):
                    media.retire_group_epoch(conf_id, a.epoch)
                    self._record(now, conf_id, "retire", None, a.epoch)
            except (MediaEngineError, KeyError) as exc:
                log.warning(
                    "event=key_action_failed conf=%s action=%s reason=%r", conf_id, type(a).__name__, str(exc)
                )
                if isinstance(a, SwitchListener | SettleListener):
                    mgr = self.managers.get(conf_id)
                    if mgr is not None and a.listener in mgr:
                        self._run(ep, conf_id, mgr.handle(KeyUseFailed(a.listener, a.epoch), now), now)

    def _set_scope(self, ep: SipEndpoint, leg_id: str, scope: KeyScope, now: float) -> None:
        lk = self.legs.get(leg_id)
        if lk is None or lk.scope is scope:
            return
        lk.scope = scope
        leg = self.table.get(leg_id)
        if leg is None:
            return
        log.info("event=key_scope conf=%s leg=%s scope=%s", leg.conf_id, leg_id, scope.value)
        details = self.table.details.get(leg_id)
        self.table.details[leg_id] = replace(
            details if details is not None else EndpointDetails(), key_scope=scope
        )
        conf = self.registry.get(leg.conf_id)
        if conf is None or leg.pid not in conf:
            return
        # the roster itself does not change: a media event with a new version carries the new key scope
        self.port.apply(ep, conf, conf.announce_media(leg.pid), now)

    # ------------------------------------------------------------------------------------ SIP

    def _queue_op(self, ep: SipEndpoint, leg_id: str, op: _Op, now: float) -> None:
        lk = self.legs.get(leg_id)
        if lk is None:
            _wipe(op)
            return
        if op.epoch is None and op.done is None:  # a demotion cancels queued offers (the manager forgot them)
            for old in lk.queue:
                _wipe(old)
            lk.queue.clear()
        lk.queue.append(op)
        self._next(ep, lk, now)

    def _next(self, ep: SipEndpoint, lk: _LegKeys, now: float) -> None:
        leg = self.table.get(lk.leg_id)
        if lk.current is not None or not lk.queue or leg is None:
            return
        if leg.retrans is not None or leg.dialog is None:
            return  # the participant's INVITE is not acknowledged yet: on_ack calls again
        op = lk.queue.pop(0)
        lk.current = op
        self._send(ep, lk, op, now)

    def _send(self, ep: SipEndpoint, lk: _LegKeys, op: _Op, now: float) -> None:
        leg = self.table.get(lk.leg_id)
        if leg is None or leg.closing or leg.dialog is None:
            self._done(ep, lk, op, False, now)
            return
        ms = leg.media
        decision = ms.decision
        if not op.sdp:
            if decision is None or decision.srtp is None or ms.tx_key is None:
                self._done(ep, lk, op, False, now)
                return
            key = op.key if op.key is not None else ms.tx_key
            ms.version += 1
            crypto = CryptoAttribute.from_key(decision.srtp.tag, key.suite, key.key_salt)
            op.sdp = _with_crypto(ms.answer, ms.version, crypto)
        try:
            hdrs = [("Allow", ", ".join(ep.config.caps.allow)), ("Content-Type", "application/sdp")]
            invite = leg.dialog.create_request("INVITE", headers=hdrs, body=op.sdp)
        except LocalProtocolError as exc:
            log.info("event=key_reinvite_impossible leg=%s reason=%r", lk.leg_id, str(exc))
            self._done(ep, lk, op, False, now)
            return
        op.invite = invite
        op.sent_at = now
        self.counters["reinvites"] += 1
        what = "move-offer" if op.done is not None else "offer" if op.epoch is not None else "demote-offer"
        self._record(now, lk.conf_id, what, lk.leg_id, op.epoch)
        shown = "moved" if op.done is not None else op.epoch if op.epoch is not None else "own"
        log.info("event=key_reinvite leg=%s epoch=%s", lk.leg_id, shown)
        dest = dialog_destination(leg.dialog, leg.peer)

        def on_response(resp: Response, t: float) -> None:
            self._on_response(ep, lk, op, resp, t)

        ep.send_request(invite, dest, now, on_response=on_response)

    def _on_response(self, ep: SipEndpoint, lk: _LegKeys, op: _Op, resp: Response, now: float) -> None:
        if resp.status < 200 or lk.current is not op:
            return
        leg = self.table.get(lk.leg_id)
        if leg is None or leg.dialog is None:
            return
        self._ep = ep
        if resp.headers.get("CSeq") is not None:  # not the endpoint's own 408/503 (no answer at all)
            leg.dialog.receive_response(resp)
        assert op.invite is not None
        if 200 <= resp.status < 300:
            ack = _ack_for(op.invite, resp)
            lk.acks = {op.invite.cseq.number: ack}
            ep.send_stateless(ack, dialog_destination(leg.dialog, leg.peer))
            self.counters["acks"] += 1
            ok = not op.stale and self._take_answer(leg, op, resp)
            self.counters["answers_2xx" if ok else "answers_failed"] += 1
            self._done(ep, lk, op, ok, now)
            return
        if resp.status == 491 and not op.retried and not op.stale:
            op.retried = True
            op.retry_at = now + self._rng.uniform(2.1, 4.0)
            self.counters["retries_491"] += 1
            return
        self.counters["answers_failed"] += 1
        log.info("event=key_reinvite_refused leg=%s status=%d", lk.leg_id, resp.status)
        self._done(ep, lk, op, False, now)

    def _take_answer(self, leg: Leg, op: _Op, resp: Response) -> bool:
        """Apply the listener's SDP answer: its (possibly new) key becomes the mixer's receive key."""
        ms = leg.media
        try:
            sd = SessionDescription.parse(resp.body)
            values = sd.media[0].get_attributes("crypto") if sd.media else []
            crypto = CryptoAttribute.parse(values[0]) if values else None
        except (SdpParseError, ValueError, IndexError):
            log.info("event=key_answer_bad leg=%s", leg.leg_id)
            return False
        if crypto is None:
            if op.done is None or ms.secure:
                return False
        elif crypto.key_salt != ms.rx_key_salt:
            try:
                klen = SUITES[crypto.suite][0]
                rx = SrtpKeys(crypto.suite, crypto.key_salt[:klen], crypto.key_salt[klen:])
                self.media.update_leg(leg.leg_id, rx_keys=rx)
                ms.rx_key_salt = crypto.key_salt
            except (MediaEngineError, ValueError, KeyError) as exc:
                log.info("event=key_answer_rx_failed leg=%s reason=%r", leg.leg_id, str(exc))
                return False
        ms.answer = op.sdp
        if ms.group_key is not None:
            ms.group_key.wipe()
        ms.group_key = _copy_key(op.key) if op.key is not None else None
        return True

    def _done(self, ep: SipEndpoint, lk: _LegKeys, op: _Op, ok: bool, now: float) -> None:
        if lk.current is op:
            lk.current = None
        _wipe(op)
        self._answer(ep, lk, op, ok, now)
        self._next(ep, lk, now)

    def _answer(self, ep: SipEndpoint, lk: _LegKeys, op: _Op, ok: bool, now: float) -> None:
        if op.stale:
            return
        if op.done is not None:
            op.done(ep, ok, now)
            return
        mgr = self.managers.get(lk.conf_id)
        if mgr is None or lk.leg_id not in mgr:
            return
        self._record(now, lk.conf_id, "answer", lk.leg_id, op.epoch, "ok" if ok else "failed")
        ev: Event
        if op.epoch is not None:
            ev = KeyAnswerReceived(lk.leg_id, op.epoch, ok)
        else:
            ev = DemoteDone(lk.leg_id) if ok else DemoteFailed(lk.leg_id)
        self._run(ep, lk.conf_id, mgr.handle(ev, now), now)

    def _record(
        self,
        now: float,
        conf_id: str,
        what: str,
        leg_id: str | None = None,
        epoch: int | None = None,
        detail: str = "",
    ) -> None:
        if self.trace is not None:
            self.trace.append(KeyingTrace(now, conf_id, what, leg_id, epoch, detail))
