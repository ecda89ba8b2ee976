"""Media recovery: when the separate mixer is lost and a mixer comes back, every live leg is made again on it
and its participant is moved there by a re-INVITE of the focus.

The MRFC seam (``imsconf.media.remote``) reports the link as media events: :class:`MixerLost` and
:class:`MixerReady`.  They arrive without a clock, so the work goes through the focus's inbox.

* **Lost**: every leg's mixer state is gone.  Each leg that had media keeps its negotiation (codec, remote
  address, the participant's key, direction) but loses its ports and its send key (wiped: a new mixer never
  gets an old key, whose SRTP sequence it would repeat); the key managers are closed
  (:meth:`FocusKeying.mixer_lost`): group epochs lived on the mixer.  New calls meanwhile get 503 with
  Retry-After (the MRFC refuses ``allocate_leg``); a participant's own re-INVITE too.  A dial-out still
  ringing is cancelled: its offer named the lost mixer.
* **Ready**: for each such leg, a new mixer leg is allocated and configured (same codec, direction, remote
  address and receive key; a NEW send key from the key authority) and the focus re-INVITEs the participant
  with its last SDP moved to the new ports and carrying the new key (``o=`` version + 1).  The re-INVITE
  takes its turn with the keying's (:meth:`FocusKeying.reinvite`: after an unacknowledged INVITE, one at a
  time, one retry after 491).  2xx: the leg rejoins its conference's key manager, which in group mode
  starts a fresh group epoch.  Refused or timed out: the leg ends (BYE, ``participant_left``).  When the
  new mixer has no pre-bound ports left for a leg yet, it is tried again shortly (every 0.2 s, for about
  10 s; then the leg ends).

The roster does not change: participants stay connected through the outage, with the same media info.

A pool of mixers (``imsconf.media.pool``) scopes a member's loss: its :class:`MixerLost` names the legs and
conferences that were on it, only those are treated as above, and its :class:`MixerReady` follows at once
when another member took them over (docs/decisions/0019-mixer-pool.md).
"""

from __future__ import annotations

import logging
from typing import Protocol

from imsconf.keys.authority import SUITES, new_master_key
from imsconf.media.control import LegPorts, MediaControl
from imsconf.media.events import MediaEngineError, MediaEvent, MixerLost, MixerReady
from imsconf.media.srtp import SrtpKeys
from imsconf.sdp.sdes import CryptoAttribute
from imsconf.sip.endpoint import SipEndpoint

from .keying import FocusKeying
from .legs import Inbox, Leg, LegTable
from .ports import FeatureBase, FocusPort

__all__ = ["MAX_WAITS", "RETRY", "LobbyHold", "MixerRecovery", "StreamMove", "VideoMoves", "moved_sdp"]

log = logging.getLogger("imsconf.focus.recovery")

RETRY = 0.2  # a leg the new mixer has no ports for yet is tried again after this long
MAX_WAITS = 50  # ... this many times (about 10 s) per mixer connection, then the leg ends


StreamMove = tuple[LegPorts, bool, CryptoAttribute | None]
"""A stream made again on a new mixer: its new ports, whether RTCP is muxed, our new ``a=crypto``."""


def moved_sdp(
    sdp: bytes,
    version: int,
    ports: LegPorts,
    rtcp_mux: bool,
    crypto: CryptoAttribute | None,
    *,
    video: StreamMove | None = None,
) -> bytes:
    """*sdp* (our last SDP for a leg) with ``o=`` version *version*, the audio stream at the new *ports*
    (``m=`` port, ``a=rtcp``) and its ``a=crypto`` lines replaced by *crypto*; the video stream likewise
    when *video* is given; other streams unchanged."""
    moves: dict[str, StreamMove] = {"audio": (ports, rtcp_mux, crypto)}
    if video is not None:
        moves["video"] = video
    text = sdp.decode("utf-8", "replace")
    out: list[str] = []
    move: StreamMove | None = None
    placed = False
    for line in text.split("\r\n"):
        if line.startswith("o="):
            parts = line.split(" ")
            if len(parts) >= 6:
                parts[2] = str(version)
                line = " ".join(parts)
        elif line.startswith("m="):
            parts = line.split(" ")
            move = moves.pop(parts[0][2:], None)  # the first stream of each kind
            placed = False
            if move is not None:
                parts[1] = str(move[0].rtp_port)
                line = " ".join(parts)
        elif move is not None and line.startswith("a=rtcp:"):
            if move[1]:
                continue
            rest = line[len("a=rtcp:") :].split(" ", 1)
            line = f"a=rtcp:{move[0].rtcp_port}" + (f" {rest[1]}" if len(rest) > 1 else "")
        elif move is not None and line.startswith("a=crypto:"):
            if placed or move[2] is None:
                continue
            line = f"a=crypto:{move[2].to_sdp()}"
            placed = True
        out.append(line)
    return "\r\n".join(out).encode()


class VideoMoves(Protocol):
    """The presentation video legs (:class:`~.presentation.FocusPresentation`), moved with the audio."""

    def mixer_lost(
        self, legs: frozenset[str] | None = None, conferences: frozenset[str] | None = None
    ) -> None: ...

    def remake(self, leg_id: str) -> StreamMove | None: ...


class LobbyHold(Protocol):
    """A part that sets something on a leg's mixer leg again once it is made anew: the PIN lobby
    (:class:`~.planned.PlannedConferences`: a lobby leg stays out of the mix), the operator part
    (:class:`~.operator.ConferenceOperator`: muted and deaf)."""

    def after_media_update(self, leg: Leg) -> None: ...


class MixerRecovery(FeatureBase):
    """Moves the legs of a lost mixer to the next one (see the module docstring)."""

    def __init__(
        self,
        table: LegTable,
        port: FocusPort,
        media: MediaControl,
        inbox: Inbox,
        keying: FocusKeying,
        *,
        lobby: LobbyHold | None = None,
        mix: LobbyHold | None = None,
        video: VideoMoves | None = None,
    ) -> None:
        self.table = table
        self.port = port
        self.lobby = lobby
        self.mix = mix
        self.video = video
        self.media = media
        self.inbox = inbox
        self.keying = keying
        self.ready = True  # a mixer is connected (in process: always)
        self.pending: set[str] = set()  # legs that lost their media and wait for a mixer
        self.moving: set[str] = set()  # legs whose move re-INVITE is out
        self.lost_at: float | None = None
        self.counters: dict[str, int] = dict.fromkeys(("lost", "moved", "failed", "ended"), 0)
        self._retry_at: float | None = None
        self._moved_since_loss = 0
        self._waits = 0

    # ---- hooks --------------------------------------------------------------------------------------
    def on_media_event(self, ev: MediaEvent) -> None:
        if isinstance(ev, MixerLost):
            lost = ev
            self.inbox.post(lambda ep, now: self._lost(ep, lost, now))
        elif isinstance(ev, MixerReady):
            ready = ev
            self.inbox.post(lambda ep, now: self._ready(ep, ready, now))

    def forget(self, leg: Leg, now: float) -> None:
        self.pending.discard(leg.leg_id)
        self.moving.discard(leg.leg_id)

    def next_deadline(self) -> float | None:
        return self._retry_at

    def handle_timer(self, ep: SipEndpoint, now: float) -> None:
        if self._retry_at is not None and now >= self._retry_at:
            self._retry_at = None
            self._move_all(ep, now)

    # ---- the link -------------------------------------------------------------------------------------
    def _lost(self, ep: SipEndpoint, ev: MixerLost, now: float) -> None:
        self.ready = False
        self.lost_at = now
        self._retry_at = None
        self._moved_since_loss = 0
        self.keying.mixer_lost(ep, now, ev.conferences)
        if self.video is not None:
            self.video.mixer_lost(ev.legs, ev.conferences)
        ringing: list[Leg] = []
        for leg in list(self.table.legs.values()):
            ms = leg.media
            if leg.closing or (ev.legs is not None and leg.leg_id not in ev.legs):
                continue  # ending, or on a member of a mixer pool that is still there
            if leg.dialog is None:  # a dial-out still ringing: its offer named the lost mixer
                ringing.append(leg)
                continue
            if ms.ports is None and leg.leg_id not in self.moving:
                continue
            try:  # nothing to release on the lost mixer; a leg made on its successor already goes too
                self.media.release_leg(leg.leg_id)
            except (KeyError, MediaEngineError, OSError):
                pass
            ms.ports = None
            for key in (ms.tx_key, ms.group_key):
                if key is not None:
                    key.wipe()
            ms.tx_key = ms.group_key = None
            self.moving.discard(leg.leg_id)
            self.pending.add(leg.leg_id)
        self.counters["lost"] += len(self.pending)
        log.warning(
            "event=media_lost reason=%r legs=%d conferences=%d ready=false",
            ev.reason,
            len(self.pending),
            len({self.table.legs[lid].conf_id for lid in self.pending}),
        )
        for leg in ringing:
            self.counters["ended"] += 1
            self.port.end(ep, leg, "media lost", now, send_bye=True)

    def _ready(self, ep: SipEndpoint, ev: MixerReady, now: float) -> None:
        self.ready = True
        self._waits = 0
        if self.pending:
            log.info("event=media_recovering generation=%d legs=%d", ev.generation, len(self.pending))
        self._move_all(ep, now)

    def _move_all(self, ep: SipEndpoint, now: float) -> None:
        if not self.ready:
            return
        for leg_id in sorted(self.pending):
            leg = self.table.get(leg_id)
            if leg is None or leg.closing:
                self.pending.discard(leg_id)
                continue
            if leg.media.ports is not None:  # its own re-INVITE found the new mixer first
                self.pending.discard(leg_id)
                self.keying.rejoin(ep, leg, now)
                continue
            try:
                sdp = self._rebuild(leg)
            except MediaEngineError as exc:  # no pre-bound pair yet, or the mixer went away again
                self._waits += 1
                if self._waits > MAX_WAITS:
                    log.warning("event=media_move_failed leg=%s reason=%r", leg_id, str(exc))
                    self.pending.discard(leg_id)
                    self.counters["failed"] += 1
                    self.port.end(ep, leg, "media lost (no mixer resources)", now, send_bye=True)
                    continue
                log.info("event=media_move_waits leg=%s reason=%r", leg_id, str(exc))
                self._retry_at = now + RETRY
                return
            self.pending.discard(leg_id)
            self.moving.add(leg_id)
            log.info("event=media_move leg=%s conf=%s", leg_id, leg.conf_id)

            def done(ep: SipEndpoint, ok: bool, t: float, leg_id: str = leg_id) -> None:
                self._moved(ep, leg_id, ok, t)

            self.keying.reinvite(ep, leg, sdp, done, now)

    def _rebuild(self, leg: Leg) -> bytes:
        """A new mixer leg with the leg's negotiated media and a new send key; returns the SDP to offer."""
        ms = leg.media
        d = ms.decision
        if d is None:
            raise MediaEngineError("no negotiated media")
        ports = self.media.allocate_leg(leg.conf_id, leg.leg_id, rtcp_mux=d.rtcp_mux)
        tx = rx = None
        crypto = None
        if d.srtp is not None:
            suite = d.srtp.suite
            key = new_master_key(suite)
            tx = SrtpKeys(suite, key.key, key.salt)
            theirs = ms.rx_key_salt
            if theirs is not None:
                klen = SUITES[suite][0]
                rx = SrtpKeys(suite, theirs[:klen], theirs[klen:])
            crypto = CryptoAttribute.from_key(d.srtp.tag, suite, key.key_salt)
            ms.tx_key = key
        try:
            ms.configure(self.media, d, tx, rx)
            video = self.video.remake(leg.leg_id) if self.video is not None else None
        except MediaEngineError:
            self.media.release_leg(leg.leg_id)
            if ms.tx_key is not None:
                ms.tx_key.wipe()
                ms.tx_key = None
            raise
        ms.ports = ports
        ms.version += 1
        if self.lobby is not None:
            self.lobby.after_media_update(leg)
        if self.mix is not None:
            self.mix.after_media_update(leg)
        return moved_sdp(ms.answer, ms.version, ports, d.rtcp_mux, crypto, video=video)

    def _moved(self, ep: SipEndpoint, leg_id: str, ok: bool, now: float) -> None:
        if leg_id not in self.moving:
            return  # lost again meanwhile (it waits for the next mixer) or gone
        self.moving.discard(leg_id)
        leg = self.table.get(leg_id)
        if leg is None or leg.closing:
            return
        took = now - self.lost_at if self.lost_at is not None else 0.0
        if ok:
            self.counters["moved"] += 1
            self._moved_since_loss += 1
            log.info("event=media_moved leg=%s conf=%s since_loss=%.2f", leg_id, leg.conf_id, took)
            self.keying.rejoin(ep, leg, now)
            if not self.pending and not self.moving:
                log.info("event=media_recovered legs=%d since_loss=%.2f", self._moved_since_loss, took)
            return
        self.counters["failed"] += 1
        log.warning("event=media_move_failed leg=%s conf=%s", leg_id, leg.conf_id)
        self.port.end(ep, leg, "media lost (re-INVITE refused)", now, send_bye=True)
