"""MixerPool: routing by conference, placement by measured headroom, a member lost, summed figures."""

from __future__ import annotations

import pytest

from imsconf.keys.policy import DownlinkMode
from imsconf.media.control import EventSink, LegPorts, NullMediaControl
from imsconf.media.dtmf import DtmfEvent
from imsconf.media.events import (
    TICK_SECONDS_BOUNDS,
    DtmfReceived,
    MediaEngineError,
    MediaEvent,
    MixerLost,
    MixerReady,
    MixerStats,
)
from imsconf.media.pool import LEG_COST, NOISE, TICK, MixerPool, sum_stats
from imsconf.media.srtp import SrtpKeys


class FakeMember(NullMediaControl):
    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name
        self.ready = True
        self.stats = MixerStats()
        self.calls: list[tuple[str, str]] = []
        self.sink: EventSink | None = None

    def allocate_leg(self, conference_id: str, leg_id: str, rtcp_mux: bool) -> LegPorts:
        if not self.ready:
            raise MediaEngineError("the mixer is not connected")
        self.calls.append(("allocate_leg", leg_id))
        return super().allocate_leg(conference_id, leg_id, rtcp_mux)

    def update_leg(self, leg_id: str, **kw: object) -> None:
        self.calls.append(("update_leg", leg_id))

    def release_leg(self, leg_id: str) -> None:
        self.calls.append(("release_leg", leg_id))

    def set_leg_mix(self, leg_id: str, *, muted: bool, deaf: bool) -> None:
        self.calls.append(("set_leg_mix", leg_id))

    def set_downlink_mode(self, conference_id: str, mode: DownlinkMode) -> None:
        self.calls.append(("set_downlink_mode", conference_id))

    def add_group_epoch(
        self, conference_id: str, epoch: int, keys: SrtpKeys, ssrc: int, **kw: object
    ) -> None:
        self.calls.append(("add_group_epoch", conference_id))

    def set_floor_control(self, conference_id: str, enabled: bool) -> None:
        self.calls.append(("set_floor_control", conference_id))

    def release_conference(self, conference_id: str) -> None:
        self.calls.append(("release_conference", conference_id))

    def allocate_video(self, conference_id: str, leg_id: str, rtcp_mux: bool) -> LegPorts:
        self.calls.append(("allocate_video", leg_id))
        return super().allocate_video(conference_id, leg_id, rtcp_mux)

    def release_video(self, leg_id: str) -> None:
        self.calls.append(("release_video", leg_id))

    def mixer_stats(self) -> MixerStats:
        return self.stats

    def set_event_sink(self, sink: EventSink | None) -> None:
        self.sink = sink

    def emit(self, ev: MediaEvent) -> None:
        assert self.sink is not None
        self.sink(ev)

    def ops(self, name: str) -> list[str]:
        return [arg for op, arg in self.calls if op == name]


def stats(ticks: int, work: float, legs: int = 0) -> MixerStats:
    buckets = (0,) * len(TICK_SECONDS_BOUNDS) + (ticks,)
    return MixerStats(ticks=ticks, tick_seconds_sum=work, tick_seconds_buckets=buckets, legs=legs)


def pool_of(n: int) -> tuple[MixerPool, list[FakeMember], list[MediaEvent]]:
    members = [FakeMember(f"m{i}") for i in range(n)]
    pool = MixerPool(members)
    events: list[MediaEvent] = []
    pool.set_event_sink(events.append)
    return pool, members, events


def test_a_conference_lives_on_one_member_and_its_legs_are_routed_there() -> None:
    pool, (a, b), _ = pool_of(2)
    pool.allocate_leg("c1", "l1", True)
    pool.allocate_leg("c1", "l2", True)
    first = pool.member_of("c1")
    assert first is not None
    holder = (a, b)[first]
    other = (a, b)[1 - first]
    assert holder.ops("allocate_leg") == ["l1", "l2"]
    pool.update_leg("l2", direction=None)
    pool.set_leg_mix("l1", muted=True, deaf=False)
    pool.set_downlink_mode("c1", DownlinkMode.GROUP)
    pool.add_group_epoch("c1", 1, SrtpKeys("AES_CM_128_HMAC_SHA1_80", b"k" * 16, b"s" * 14), 7)
    pool.release_leg("l1")
    assert holder.ops("update_leg") == ["l2"]
    assert holder.ops("set_leg_mix") == ["l1"]
    assert holder.ops("set_downlink_mode") == ["c1"]
    assert holder.ops("add_group_epoch") == ["c1"]
    assert holder.ops("release_leg") == ["l1"]
    assert other.calls == []
    pool.update_leg("l1", direction=None)  # released: skipped
    assert holder.ops("update_leg") == ["l2"]
    with pytest.raises(MediaEngineError):
        pool.leg_stats("l1")
    with pytest.raises(MediaEngineError):
        pool.allocate_leg("c1", "l2", True)
    pool.release_conference("c1")
    assert holder.ops("release_conference") == ["c1"]
    assert pool.member_of("c1") is None


def test_video_legs_follow_their_conference() -> None:
    pool, members, _ = pool_of(2)
    pool.allocate_leg("c1", "l1", True)
    idx = pool.member_of("c1")
    assert idx is not None
    pool.allocate_video("c1", "l1", True)
    pool.release_video("l1")
    assert members[idx].ops("allocate_video") == ["l1"]
    assert members[idx].ops("release_video") == ["l1"]


def test_a_new_conference_goes_to_the_member_with_the_most_headroom() -> None:
    pool, (a, b, c), _ = pool_of(3)
    # measured since the last choice: a works 8 ms per tick, b 2 ms, c 5 ms
    a.stats, b.stats, c.stats = stats(100, 0.8, 10), stats(100, 0.2, 10), stats(100, 0.5, 10)
    pool.allocate_leg("c1", "l1", True)
    assert pool.member_of("c1") == 1
    # the next figures: b's work rose to 12 ms per tick since the last choice, a's fell to 1 ms
    a.stats, b.stats, c.stats = stats(200, 0.9, 10), stats(200, 1.4, 11), stats(200, 1.0, 10)
    pool.allocate_leg("c2", "l2", True)
    assert pool.member_of("c2") == 0
    room = pool.headroom()
    assert room[2] == pytest.approx(TICK - 0.005)


def test_not_round_robin_an_idle_member_keeps_winning_and_unseen_legs_count() -> None:
    pool, (a, b), _ = pool_of(2)
    a.stats, b.stats = stats(100, 1.5, 30), stats(100, 0.0, 0)  # a: 15 ms per tick, b: idle
    for i in range(3):
        pool.allocate_leg(f"c{i}", f"l{i}", True)
        assert pool.member_of(f"c{i}") == 1
    # three legs placed on b that its figures do not show yet: each costs LEG_COST
    assert pool.headroom()[1] == pytest.approx(TICK - 3 * LEG_COST)


def test_headrooms_within_the_noise_band_are_a_tie_and_go_to_fewer_legs() -> None:
    pool, (a, b), _ = pool_of(2)
    pool.allocate_leg("c1", "l1", True)
    pool.allocate_leg("c1", "l2", True)
    holder = pool.member_of("c1")
    assert holder is not None
    members = (a, b)
    # the idle member measured a little more work than the one with two legs (a delayed tick or two)
    members[holder].stats = stats(100, 0.01, 2)
    members[1 - holder].stats = stats(100, 0.01 + 100 * NOISE * 0.9, 0)
    pool.allocate_leg("c2", "l3", True)
    assert pool.member_of("c2") == 1 - holder
    # past the band, the measured headroom decides even against the leg count
    members[holder].stats = stats(200, 0.02, 2)
    members[1 - holder].stats = stats(200, 0.01 + 100 * NOISE * 0.9 + 100 * 2 * NOISE, 1)
    pool.allocate_leg("c3", "l4", True)
    assert pool.member_of("c3") == holder


def test_ties_go_to_the_member_with_fewer_legs() -> None:
    pool, _, _ = pool_of(2)
    pool.allocate_leg("c1", "l1", True)
    pool.allocate_leg("c1", "l2", True)
    first = pool.member_of("c1")
    pool.allocate_leg("c2", "l3", True)
    assert pool.member_of("c2") == 1 - (first or 0)


def test_a_member_not_connected_is_not_chosen_and_none_connected_refuses() -> None:
    pool, (a, b), _ = pool_of(2)
    a.ready = False
    pool.allocate_leg("c1", "l1", True)
    assert pool.member_of("c1") == 1
    assert pool.ready
    b.ready = False
    assert not pool.ready
    with pytest.raises(MediaEngineError, match="not connected"):
        pool.allocate_leg("c2", "l2", True)
    with pytest.raises(MediaEngineError, match="not connected"):
        pool.allocate_leg("c1", "l3", True)


def test_a_member_lost_its_conferences_are_reassigned_and_the_loss_is_scoped() -> None:
    pool, (a, b), events = pool_of(2)
    a.stats, b.stats = stats(100, 0.0, 0), stats(100, 1.0, 0)
    pool.allocate_leg("c1", "l1", True)
    pool.allocate_leg("c1", "l2", True)
    pool.allocate_video("c1", "l2v", True)
    pool.set_floor_control("c1", True)
    a.stats, b.stats = stats(200, 0.0, 0), stats(200, 0.0, 0)
    pool.allocate_leg("c2", "l3", True)  # b: fewer legs
    assert (pool.member_of("c1"), pool.member_of("c2")) == (0, 1)
    b.ready = False
    b.emit(MixerLost("closed by the mixer"))
    assert events == [
        MixerLost("closed by the mixer", legs=frozenset({"l3"}), conferences=frozenset({"c2"})),
        MixerReady(1),
    ]
    assert pool.member_of("c2") == 0
    # the focus's recovery makes the lost legs again: they go to the new member
    pool.release_leg("l3")
    pool.allocate_leg("c2", "l3", True)
    assert a.ops("allocate_leg") == ["l1", "l2", "l3"]
    events.clear()
    a.ready = False
    a.emit(MixerLost("no heartbeat"))
    assert events == [
        MixerLost(
            "no heartbeat", legs=frozenset({"l1", "l2", "l2v", "l3"}), conferences=frozenset({"c1", "c2"})
        )
    ]
    assert pool.member_of("c1") is None and not pool.ready
    # a member comes back: the focus hears it; the waiting conferences are placed again, floor settings given
    b.ready = True
    b.emit(MixerReady(2))
    assert events[-1] == MixerReady(2)
    pool.allocate_leg("c1", "l1", True)
    assert pool.member_of("c1") == 1
    assert b.ops("set_floor_control") == ["c1"]


def test_a_member_lost_without_conferences_is_not_told_while_another_is_up() -> None:
    pool, (a, b), events = pool_of(2)
    pool.allocate_leg("c1", "l1", True)
    idle = (a, b)[1 - (pool.member_of("c1") or 0)]
    idle.ready = False
    idle.emit(MixerLost("closed"))
    assert events == []


def test_other_events_are_forwarded() -> None:
    _pool, (_a, b), events = pool_of(2)
    ev = DtmfReceived("l1", "c1", DtmfEvent("5", 160, 0))
    b.emit(ev)
    assert events == [ev]


def test_stats_are_summed() -> None:
    pool, (a, b), _ = pool_of(2)
    a.stats = MixerStats(
        ticks=3,
        late_ticks=1,
        tick_seconds_sum=0.5,
        tick_seconds_buckets=(1, 2, 3, 3, 3, 3, 3, 3),
        legs=2,
        conferences=1,
        rtp_received=10,
        rtp_sent=20,
    )
    b.stats = MixerStats(
        ticks=4,
        tick_seconds_sum=0.25,
        tick_seconds_buckets=(0, 0, 4, 4, 4, 4, 4, 4),
        legs=5,
        conferences=2,
        rtp_received=1,
        srtp_replays=2,
    )
    total = pool.mixer_stats()
    assert total == MixerStats(
        ticks=7,
        late_ticks=1,
        tick_seconds_sum=0.75,
        tick_seconds_buckets=(1, 2, 7, 7, 7, 7, 7, 7),
        legs=7,
        conferences=3,
        rtp_received=11,
        rtp_sent=20,
        srtp_replays=2,
    )
    assert sum_stats([]) == MixerStats()


def test_an_empty_pool_is_refused() -> None:
    with pytest.raises(ValueError):
        MixerPool([])
