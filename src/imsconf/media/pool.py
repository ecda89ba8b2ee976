"""Several mixers behind the one MRFC seam: :class:`MixerPool` is a :class:`MediaControl` over members.

A conference lives on exactly one member.  The pool keeps the map conference id → member and, for every
leg made through it, leg id → conference (audio and video legs apart); every leg, video, epoch, floor and
lobby call is routed by that conference to its member.  A leg the pool does not know (a leg of a lost
member, not made again yet) is skipped like :class:`~.remote.RemoteMediaControl` skips the legs of an
earlier mixer; only :meth:`leg_stats` raises for it.

**Placement.**  A new conference goes to the connected member with the most *headroom*, measured, not
taken in turn.  For a member ``m`` at the moment of a choice:

* ``work(m)`` is the mean work per mixer tick since the previous choice, from the member's
  :meth:`mixer_stats` (it rides on the heartbeat answer): ``Δtick_seconds_sum / Δticks`` between the
  figures seen at the previous choice and now; when no tick was measured in between, the previous value
  (0 before any);
* ``per_leg(m)`` is ``work(m) / legs(m)`` with ``legs(m)`` the member's own leg count in those figures, or
  :data:`LEG_COST` when it has none;
* ``unseen(m)`` is how many more legs the pool has placed on ``m`` than its figures count yet (legs made
  since its last heartbeat);
* ``headroom(m) = TICK - work(m) - per_leg(m) * unseen(m)``, with ``TICK`` the 20 ms tick period: the
  part of a tick the member's core has left.

Headrooms within :data:`NOISE` of the best one count as a tie: a mean tick time is noisy on a busy
machine (a few ticks the scheduler delayed move an idle member's mean by a millisecond or so), and
a difference that small says nothing about which member has more room.  Ties go to the member holding
fewer legs through the pool, then to the first one.

**A member lost** (its :class:`MixerLost`): its legs and conferences are gone with it.  Each of its
conferences is re-assigned at once to the surviving connected member with the most headroom (the floor
settings the pool keeps are given to it), and the focus hears one :class:`MixerLost` scoped to what was
lost (``legs``: the audio and video leg ids, ``conferences``), followed, when a member is left, by a
:class:`MixerReady`: the focus's recovery (``imsconf.focus.recovery``) then makes exactly those legs again
through the pool, which routes them to their conference's new member, and moves their participants by
re-INVITE.  When no member is left the conferences stay unassigned (placed again on the next
``allocate_leg``), new calls fail in :meth:`allocate_leg` (503 with Retry-After at the focus), and a
member's :class:`MixerReady` is passed on when it (or another) connects.  docs/decisions/0019-mixer-pool.md.

Other events are passed to the one sink unchanged.  :meth:`mixer_stats` is the sum of the members'.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Protocol

from imsconf.keys.policy import DownlinkMode
from imsconf.sdp.direction import Direction

from .control import EventSink, LegPorts, MediaControl
from .engine import KEEP, Addr, Keep, LegStats, MediaEngineError, MediaEvent
from .events import MixerLost, MixerReady, MixerStats
from .srtp import SrtpKeys

__all__ = ["LEG_COST", "NOISE", "TICK", "MixerPool", "PoolMember", "sum_stats"]

log = logging.getLogger("imsconf.mixer")

TICK = 0.020  # the mixer's tick period (seconds)
LEG_COST = 0.0001  # the assumed work per leg and tick (seconds) of a member that has no legs yet
NOISE = 0.002  # headrooms closer than this (seconds per tick, 10 % of a tick) to the best one are a tie


class PoolMember(MediaControl, Protocol):
    """A member of the pool: a :class:`MediaControl` that says whether it can take legs now."""

    @property
    def ready(self) -> bool: ...


@dataclass(slots=True)
class _Load:
    """What the pool remembers of a member's figures for the next choice."""

    ticks: int = 0
    tick_sum: float = 0.0
    work: float = 0.0


def sum_stats(stats: Sequence[MixerStats]) -> MixerStats:
    """The field-by-field sum of *stats* (histogram buckets element by element)."""
    if not stats:
        return MixerStats()
    out: dict[str, object] = {}
    for f in fields(MixerStats):
        if f.name == "tick_seconds_buckets":
            out[f.name] = tuple(
                sum(col) for col in zip(*(s.tick_seconds_buckets for s in stats), strict=True)
            )
        else:
            out[f.name] = sum(getattr(s, f.name) for s in stats)
    return MixerStats(**out)  # type: ignore[arg-type]


class MixerPool:
    """:class:`MediaControl` over several members (see the module docstring)."""

    def __init__(self, members: Sequence[PoolMember], names: Sequence[str] | None = None) -> None:
        if not members:
            raise ValueError("a mixer pool needs at least one member")
        self.members = list(members)
        self.names = list(names) if names is not None else [str(i) for i in range(len(members))]
        self._confs: dict[str, int] = {}  # conference -> member index
        self._legs: dict[str, str] = {}  # audio leg -> conference
        self._video: dict[str, str] = {}  # video leg -> conference
        self._loads = [_Load() for _ in self.members]
        self._floor_control: dict[str, bool] = {}
        self._floor_holders: dict[str, frozenset[str]] = {}
        self._sink: EventSink | None = None
        self._generation = 0
        for i, member in enumerate(self.members):
            member.set_event_sink(self._member_sink(i))

    @property
    def ready(self) -> bool:
        """At least one member is connected."""
        return any(m.ready for m in self.members)

    def member_of(self, conference_id: str) -> int | None:
        """The index of the member holding *conference_id* (None: not placed)."""
        return self._confs.get(conference_id)

    # ---- placement ------------------------------------------------------------------------------------
    def headroom(self) -> list[float | None]:
        """Each member's headroom now (None: not connected); updates the figures kept for the next choice."""
        placed = [0] * len(self.members)
        for conf in self._legs.values():
            idx = self._confs.get(conf)
            if idx is not None:
                placed[idx] += 1
        out: list[float | None] = []
        for i, member in enumerate(self.members):
            stats = member.mixer_stats()
            load = self._loads[i]
            if stats.ticks > load.ticks:
                load.work = max(0.0, (stats.tick_seconds_sum - load.tick_sum) / (stats.ticks - load.ticks))
            load.ticks, load.tick_sum = stats.ticks, stats.tick_seconds_sum
            if not member.ready:
                out.append(None)
                continue
            per_leg = load.work / stats.legs if stats.legs > 0 else LEG_COST
            unseen = max(0, placed[i] - stats.legs)
            out.append(TICK - load.work - per_leg * unseen)
        return out

    def _choose(self, exclude: int | None = None) -> int | None:
        room = self.headroom()
        placed = [0] * len(self.members)
        for conf in self._legs.values():
            idx = self._confs.get(conf)
            if idx is not None:
                placed[idx] += 1
        open_ = [(h, i) for i, h in enumerate(room) if h is not None and i != exclude]
        if not open_:
            return None
        best = max(h for h, _ in open_)
        return min((placed[i], i) for h, i in open_ if h >= best - NOISE)[1]

    def _place(self, conference_id: str) -> int:
        idx = self._confs.get(conference_id)
        if idx is not None and self.members[idx].ready:
            return idx
        if idx is not None:
            raise MediaEngineError("the mixer is not connected")
        chosen = self._choose()
        if chosen is None:
            raise MediaEngineError("the mixer is not connected")
        self._assign(conference_id, chosen)
        return chosen

    def _assign(self, conference_id: str, idx: int) -> None:
        self._confs[conference_id] = idx
        member = self.members[idx]
        if conference_id in self._floor_control:
            member.set_floor_control(conference_id, self._floor_control[conference_id])
        if conference_id in self._floor_holders:
            member.set_floor_holders(conference_id, self._floor_holders[conference_id])
        log.info("event=conference_placed conf=%s mixer=%s", conference_id, self.names[idx])

    def _by_conf(self, conference_id: str) -> PoolMember | None:
        idx = self._confs.get(conference_id)
        return None if idx is None else self.members[idx]

    def _by_leg(self, leg_id: str) -> PoolMember | None:
        conf = self._legs.get(leg_id)
        return None if conf is None else self._by_conf(conf)

    def _by_video(self, leg_id: str) -> PoolMember | None:
        conf = self._video.get(leg_id)
        return None if conf is None else self._by_conf(conf)

    # ---- events ---------------------------------------------------------------------------------------
    def _member_sink(self, idx: int) -> EventSink:
        def sink(ev: MediaEvent) -> None:
            if isinstance(ev, MixerLost):
                self._lost(idx, ev)
            elif isinstance(ev, MixerReady):
                self._generation += 1
                self._emit(MixerReady(self._generation))
            else:
                self._emit(ev)

        return sink

    def _emit(self, ev: MediaEvent) -> None:
        if self._sink is not None:
            self._sink(ev)

    def _lost(self, idx: int, ev: MixerLost) -> None:
        confs = sorted(c for c, i in self._confs.items() if i == idx)
        gone = set(confs)
        legs = frozenset(
            [lid for lid, c in self._legs.items() if c in gone]
            + [lid for lid, c in self._video.items() if c in gone]
        )
        for lid in [lid for lid, c in self._legs.items() if c in gone]:
            del self._legs[lid]
        for lid in [lid for lid, c in self._video.items() if c in gone]:
            del self._video[lid]
        for conf in confs:
            del self._confs[conf]
        survivor = self._choose(exclude=idx)
        for conf in confs:
            target = self._choose(exclude=idx)
            if target is not None:
                self._assign(conf, target)
        log.warning(
            "event=pool_member_lost mixer=%s conferences=%d legs=%d survivors=%s",
            self.names[idx],
            len(confs),
            len(legs),
            str(survivor is not None).lower(),
        )
        if not confs and survivor is not None:
            return  # nothing of the focus's was on it, and another member takes new calls
        self._emit(MixerLost(ev.reason, legs=legs, conferences=frozenset(confs)))
        if survivor is not None:
            self._generation += 1
            self._emit(MixerReady(self._generation))

    def set_event_sink(self, sink: EventSink | None) -> None:
        self._sink = sink

    # ---- MediaControl: audio legs ---------------------------------------------------------------------
    def allocate_leg(self, conference_id: str, leg_id: str, rtcp_mux: bool) -> LegPorts:
        if leg_id in self._legs:
            raise MediaEngineError(f"leg {leg_id!r} exists")
        idx = self._place(conference_id)
        ports = self.members[idx].allocate_leg(conference_id, leg_id, rtcp_mux)
        self._legs[leg_id] = conference_id
        return ports

    def configure_leg(
        self,
        leg_id: str,
        *,
        remote_rtp: Addr,
        remote_rtcp: Addr | None,
        codec_pt: int,
        codec_name: str,
        dtmf_pt: int | None,
        tx_keys: SrtpKeys | None,
        rx_keys: SrtpKeys | None,
        direction: Direction = Direction.SENDRECV,
        latch: bool = False,
        codec_clock: int = 8000,
        codec_params: tuple[tuple[str, str], ...] = (),
    ) -> None:
        member = self._by_leg(leg_id)
        if member is None:
            return  # a leg of a lost member: made again (and configured) by the focus's recovery
        member.configure_leg(
            leg_id,
            remote_rtp=remote_rtp,
            remote_rtcp=remote_rtcp,
            codec_pt=codec_pt,
            codec_name=codec_name,
            dtmf_pt=dtmf_pt,
            tx_keys=tx_keys,
            rx_keys=rx_keys,
            direction=direction,
            latch=latch,
            codec_clock=codec_clock,
            codec_params=codec_params,
        )

    def update_leg(
        self,
        leg_id: str,
        *,
        remote_rtp: Addr | None = None,
        remote_rtcp: Addr | None = None,
        codec_pt: int | None = None,
        codec_name: str | None = None,
        dtmf_pt: int | Keep | None = KEEP,
        direction: Direction | None = None,
        tx_keys: SrtpKeys | Keep | None = KEEP,
        rx_keys: SrtpKeys | Keep | None = KEEP,
        codec_clock: int | None = None,
        codec_params: tuple[tuple[str, str], ...] | None = None,
    ) -> None:
        member = self._by_leg(leg_id)
        if member is not None:
            member.update_leg(
                leg_id,
                remote_rtp=remote_rtp,
                remote_rtcp=remote_rtcp,
                codec_pt=codec_pt,
                codec_name=codec_name,
                dtmf_pt=dtmf_pt,
                direction=direction,
                tx_keys=tx_keys,
                rx_keys=rx_keys,
                codec_clock=codec_clock,
                codec_params=codec_params,
            )

    def release_leg(self, leg_id: str) -> None:
        member = self._by_leg(leg_id)
        self._legs.pop(leg_id, None)
        if member is not None:
            member.release_leg(leg_id)

    def release_conference(self, conference_id: str) -> None:
        member = self._by_conf(conference_id)
        for table in (self._legs, self._video):
            for lid in [lid for lid, c in table.items() if c == conference_id]:
                del table[lid]
        self._confs.pop(conference_id, None)
        self._floor_control.pop(conference_id, None)
        self._floor_holders.pop(conference_id, None)
        if member is not None:
            member.release_conference(conference_id)

    def leg_stats(self, leg_id: str) -> LegStats:
        member = self._by_leg(leg_id)
        if member is None:
            raise MediaEngineError(f"no leg {leg_id!r} on a mixer")
        return member.leg_stats(leg_id)

    # ---- group downlink keying ------------------------------------------------------------------------
    def set_downlink_mode(self, conference_id: str, mode: DownlinkMode) -> None:
        member = self._by_conf(conference_id)
        if member is not None:
            member.set_downlink_mode(conference_id, mode)

    def add_group_epoch(
        self,
        conference_id: str,
        epoch: int,
        keys: SrtpKeys,
        ssrc: int,
        *,
        codec_name: str = "PCMU",
        codec_pt: int = 0,
    ) -> None:
        member = self._by_conf(conference_id)
        if member is not None:
            member.add_group_epoch(conference_id, epoch, keys, ssrc, codec_name=codec_name, codec_pt=codec_pt)

    def retire_group_epoch(self, conference_id: str, epoch: int) -> None:
        member = self._by_conf(conference_id)
        if member is not None:
            member.retire_group_epoch(conference_id, epoch)

    def set_listener_stream(
        self, leg_id: str, epoch: int | None, *, speaker_ssrc: int | None = None, keep_own: bool = False
    ) -> None:
        member = self._by_leg(leg_id)
        if member is not None:
            member.set_listener_stream(leg_id, epoch, speaker_ssrc=speaker_ssrc, keep_own=keep_own)

    # ---- floors, lobby, operator ----------------------------------------------------------------------
    def set_floor_control(self, conference_id: str, enabled: bool) -> None:
        self._floor_control[conference_id] = bool(enabled)
        member = self._by_conf(conference_id)
        if member is not None:
            member.set_floor_control(conference_id, enabled)

    def set_floor_holders(self, conference_id: str, leg_ids: frozenset[str]) -> None:
        self._floor_holders[conference_id] = frozenset(leg_ids)
        member = self._by_conf(conference_id)
        if member is not None:
            member.set_floor_holders(conference_id, leg_ids)

    def set_lobby(self, leg_id: str, in_lobby: bool) -> None:
        member = self._by_leg(leg_id)
        if member is not None:
            member.set_lobby(leg_id, in_lobby)

    def play_prompt(self, leg_id: str, name: str | None, loop: bool = True) -> None:
        member = self._by_leg(leg_id)
        if member is not None:
            member.play_prompt(leg_id, name, loop)

    def set_leg_mix(self, leg_id: str, *, muted: bool, deaf: bool) -> None:
        member = self._by_leg(leg_id)
        if member is not None:
            member.set_leg_mix(leg_id, muted=muted, deaf=deaf)

    def mixer_stats(self) -> MixerStats:
        """The sum of the members' figures."""
        return sum_stats([m.mixer_stats() for m in self.members])

    # ---- presentation video ---------------------------------------------------------------------------
    def allocate_video(self, conference_id: str, leg_id: str, rtcp_mux: bool) -> LegPorts:
        if leg_id in self._video:
            raise MediaEngineError(f"video leg {leg_id!r} exists")
        idx = self._place(conference_id)
        ports = self.members[idx].allocate_video(conference_id, leg_id, rtcp_mux)
        self._video[leg_id] = conference_id
        return ports

    def configure_video(
        self,
        leg_id: str,
        *,
        remote_rtp: Addr,
        remote_rtcp: Addr | None,
        payload_type: int,
        codec_name: str,
        clock_rate: int = 90000,
        direction: Direction = Direction.SENDRECV,
        pli: bool = False,
        tx_keys: SrtpKeys | None,
        rx_keys: SrtpKeys | None,
    ) -> None:
        member = self._by_video(leg_id)
        if member is None:
            return  # a video leg of a lost member
        member.configure_video(
            leg_id,
            remote_rtp=remote_rtp,
            remote_rtcp=remote_rtcp,
            payload_type=payload_type,
            codec_name=codec_name,
            clock_rate=clock_rate,
            direction=direction,
            pli=pli,
            tx_keys=tx_keys,
            rx_keys=rx_keys,
        )

    def release_video(self, leg_id: str) -> None:
        member = self._by_video(leg_id)
        self._video.pop(leg_id, None)
        if member is not None:
            member.release_video(leg_id)

    def set_video_source(self, conference_id: str, leg_id: str | None) -> None:
        member = self._by_conf(conference_id)
        if member is not None:
            member.set_video_source(conference_id, leg_id)
