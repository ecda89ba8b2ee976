"""The group-key manager with a fake clock and a fake focus/mixer (keyharness.Plane)."""

from __future__ import annotations

import itertools

import pytest
from keyharness import Plane

from imsconf.keys import (
    DemoteListener,
    DownlinkMode,
    DropListener,
    GroupKeyManager,
    KeyAnswerReceived,
    KeyManagerConfig,
    KeyUseConfirmed,
    ListenerState,
    OfferKey,
    Rekey,
    RekeyPolicy,
    RetireEpoch,
    SettleListener,
    StopListener,
    SwitchListener,
)

CFG = KeyManagerConfig(answer_timeout=2.0, confirm_timeout=6.0, demote_timeout=3.0)


def plane(policy: str = "both", **kw: object) -> Plane:
    cfg = KeyManagerConfig(**{**{"answer_timeout": 2.0, "confirm_timeout": 6.0, "demote_timeout": 3.0}, **kw})  # type: ignore[arg-type]
    return Plane(GroupKeyManager(DownlinkMode.GROUP, RekeyPolicy.parse(policy), cfg, conference_id="c1"))


def promote(p: Plane, *lids: str) -> None:
    """Join, answer, prove: each listener ends on the group key."""
    for lid in lids:
        p.join(lid)
        while lid in p.offers:
            p.answer(lid)
            p.now += 0.01
        p.confirm(lid)
    # earlier listeners were rekeyed by each later join (on-join): bring them along
    settle(p)


def settle(p: Plane) -> None:
    for _ in range(10):
        if not p.offers:
            break
        for lid in list(p.offers):
            p.answer(lid)
    for lid, ep in p.sent.items():
        if ep is not None and p.mgr.state(lid) is ListenerState.PROBATION:
            p.confirm(lid)


# --------------------------------------------------------------------------- promotion needs proof


def test_join_offers_group_key_but_switches_only_after_answer_and_keeps_own_until_proof() -> None:
    p = plane()
    acts = p.join("a")
    assert [type(a) for a in acts] == [Rekey, OfferKey]
    assert p.mgr.state("a") is ListenerState.OFFERED
    assert p.sent["a"] is None  # still its own stream
    acts = p.answer("a")
    sw = p.of(SwitchListener, acts)
    assert len(sw) == 1 and sw[0].keep_own  # probation: own stream continues
    assert p.mgr.state("a") is ListenerState.PROBATION
    assert p.mgr.downlink("a").also_own
    acts = p.confirm("a")
    assert p.of(SettleListener, acts) == [SettleListener("a", 1)]
    assert p.mgr.state("a") is ListenerState.GROUP
    assert p.mgr.snapshot().group_listeners == ("a",)


def test_no_proof_within_timeout_demotes_for_good() -> None:
    p = plane()
    p.join("baresip")
    p.answer("baresip")  # 200 OK ... but it keeps its old key
    acts = p.advance(6.5)
    assert p.of(DemoteListener, acts) == [
        DemoteListener("baresip", "no proof of key use within confirm_timeout")
    ]
    assert p.sent["baresip"] is None
    assert p.mgr.state("baresip") is ListenerState.DEMOTING
    p.demote_result("baresip", ok=True)
    assert p.mgr.state("baresip") is ListenerState.OWN_KEY
    # never offered again, even across rekeys
    p.join("b")
    p.leave("b")
    assert "baresip" not in p.offers
    snap = p.mgr.snapshot()
    (info,) = [li for li in snap.listeners if li.listener == "baresip"]
    assert not info.eligible and not info.proven and info.epoch is None


def test_explicit_failure_report_demotes_at_once() -> None:
    p = plane()
    p.join("a")
    p.answer("a")
    acts = p.fail("a")
    assert p.of(DemoteListener, acts)


def test_capable_listener_is_promoted_on_answer_without_proof() -> None:
    p = plane()
    p.join("a", capable=True)
    acts = p.answer("a")
    (sw,) = p.of(SwitchListener, acts)
    assert not sw.keep_own
    assert p.mgr.state("a") is ListenerState.GROUP
    assert p.mgr.next_deadline() is None


def test_refused_promotion_leaves_listener_on_own_key_without_demotion() -> None:
    p = plane()
    p.join("a")
    acts = p.answer("a", accepted=False)  # 488: the session is unchanged
    assert acts == []
    assert p.mgr.state("a") is ListenerState.OWN_KEY
    assert not p.mgr.snapshot().listeners[0].eligible


def test_per_participant_mode_never_makes_keys() -> None:
    m = GroupKeyManager(DownlinkMode.PER_PARTICIPANT)
    assert m.join("a", 0.0) == []
    assert m.join("b", 0.0) == []
    assert m.leave("a", 1.0) == [StopListener("a")]
    assert m.snapshot().current_epoch is None
    assert m.state("b") is ListenerState.OWN_KEY


# --------------------------------------------------------------------------- rekey on leave


def test_rekey_on_leave_switches_only_after_answer_and_retires_old_epoch_last() -> None:
    p = plane()
    promote(p, "a", "b", "c")
    old = p.mgr.snapshot().current_epoch
    assert old is not None
    assert set(p.sent.values()) == {old}
    p.log.clear()
    p.now = 10.0
    acts = p.leave("c")
    assert acts[0] == StopListener("c")
    (rk,) = p.of(Rekey, acts)
    assert rk.epoch == old + 1 and rk.reason == "leave"
    offers = p.of(OfferKey, acts)
    assert {o.listener for o in offers} == {"a", "b"}  # the leaver gets none
    assert not p.of(SwitchListener, acts)  # nobody before its answer
    assert p.sent["a"] == old and p.sent["b"] == old  # the old epoch continues: no audio lost
    p.now = 10.02
    acts = p.answer("a")
    assert p.of(SwitchListener, acts) == [SwitchListener("a", rk.epoch, rk.ssrc, acts[0].speaker_ssrc, False)]  # type: ignore[union-attr]
    assert not p.of(RetireEpoch, acts)  # b still on it
    p.now = 10.035
    acts = p.answer("b")
    assert p.of(RetireEpoch, acts) == [RetireEpoch(old)]
    (rec,) = [r for r in p.mgr.rekey_stats() if r.epoch == rk.epoch]
    assert rec.reason == "leave" and rec.listeners == 2 and rec.offers == 2 and rec.switched == 2
    assert rec.switch_window == pytest.approx(0.035)
    assert rec.exposure_window == pytest.approx(0.035)
    assert rec.sip_messages == 6


def test_old_epoch_key_is_wiped_on_retire() -> None:
    p = plane()
    promote(p, "a", "b")
    old_key = p.of(Rekey)[-1].key
    p.leave("b")
    p.answer("a")
    assert not any(old_key.key) and not any(old_key.salt)
    assert "bytes>" in repr(old_key)


def test_leave_of_own_key_participant_does_not_rekey() -> None:
    p = plane()
    promote(p, "a")
    p.join("phone")
    p.answer(
        "phone", accepted=False
    )  # stays on its own key, never knew the current group key? it was sent it
    # it *was* sent the key in the offer, so its leave must rekey
    acts = p.leave("phone")
    assert p.of(Rekey, acts)
    p.join("plain")
    settle(p)
    p.mgr.state("plain")
    # a participant never offered anything (joined during a demotion-free per-key life) leaves: no rekey


def test_leave_of_never_offered_listener_does_not_rekey() -> None:
    p = plane("on-leave", max_offers_per_tick=1, tick=1.0)
    promote(p, "a")
    p.advance(1.0)
    p.join("b")  # pacing: offered in the next tick
    p.join("c")
    assert "c" not in p.offers
    acts = p.leave("c")
    assert acts == [StopListener("c")]


def test_listener_that_never_answers_is_demoted_then_dropped_if_demotion_fails() -> None:
    p = plane()
    promote(p, "a", "b", "mute")
    p.now = 20.0
    p.leave("a")
    p.answer("b")
    acts = p.advance(2.5)  # answer_timeout 2 s
    assert p.of(DemoteListener, acts) == [DemoteListener("mute", "key offer timed out")]
    assert p.sent["mute"] is None  # off the old epoch at once: old epoch retired now
    assert p.of(RetireEpoch, acts)
    acts = p.demote_result("mute", ok=False)
    assert p.of(DropListener, acts) == [DropListener("mute", "demotion failed")]
    # mute knew the current key (it was offered it): dropping it is a leave -> rekey again
    assert p.of(Rekey, acts)
    assert "mute" not in p.mgr


def test_demotion_timeout_drops() -> None:
    p = plane()
    promote(p, "a", "b")
    p.leave("a")
    p.answer("b", accepted=False)  # refuses the rekey: demoted
    assert p.mgr.state("b") is ListenerState.DEMOTING
    acts = p.advance(3.5)
    assert p.of(DropListener, acts) == [DropListener("b", "demotion timed out")]


def test_late_answer_after_timeout_is_stale() -> None:
    p = plane()
    p.join("a")
    epoch = p.offers["a"]
    p.advance(2.5)  # timed out: demoted (the re-INVITE may still complete: SDP realigned by demotion)
    assert p.mgr.state("a") is ListenerState.DEMOTING
    assert p.mgr.handle(KeyAnswerReceived("a", epoch, True), p.now) == []
    assert p.mgr.handle(KeyUseConfirmed("a", epoch), p.now) == []
    assert p.mgr.counters["stale_events"] == 2


def test_offer_in_flight_across_two_rekeys() -> None:
    p = plane()
    promote(p, "a", "b", "c", "d")
    e0 = p.mgr.snapshot().current_epoch
    assert e0 is not None
    p.leave("d")  # e0+1 offered to a, b, c
    p.leave("c")  # e0+2: a and b have e0+1 offers in flight: one offer at a time
    assert p.offers == {"a": e0 + 1, "b": e0 + 1}
    acts = p.answer("a")  # switches to e0+1 (the key it now holds), then is offered e0+2
    assert [(type(x).__name__, getattr(x, "epoch", None)) for x in acts] == [
        ("SwitchListener", e0 + 1),
        ("OfferKey", e0 + 2),
    ]
    p.answer("a")
    p.answer("b")
    p.answer("b")
    snap = p.mgr.snapshot()
    assert [e.number for e in snap.epochs] == [e0 + 2]
    assert set(p.sent.values()) == {e0 + 2}
    recs = {r.epoch: r for r in p.mgr.rekey_stats()}
    assert recs[e0 + 1].superseded_by == e0 + 2
    assert recs[e0 + 2].completed_at is not None


# --------------------------------------------------------------------------- policies


def test_on_leave_only_joins_do_not_rekey() -> None:
    p = plane("on-leave")
    promote(p, "a", "b")
    acts = p.join("c")
    assert not p.of(Rekey, acts)
    assert [o.epoch for o in p.of(OfferKey, acts)] == [1]  # the current key (no backward security)
    assert len(p.of(Rekey)) == 1


def test_on_join_only_leaves_do_not_rekey() -> None:
    p = plane("on-join")
    promote(p, "a", "b", "c")
    n = len(p.of(Rekey))
    p.leave("b")
    assert len(p.of(Rekey)) == n
    acts = p.join("d")
    assert p.of(Rekey, acts)
    # the joiner is offered only the new epoch, never one that carried traffic before it joined
    (offer,) = [o for o in p.of(OfferKey, acts) if o.listener == "d"]
    assert offer.epoch == p.of(Rekey, acts)[0].epoch


def test_first_joiners_share_an_unused_epoch() -> None:
    p = plane()
    p.join("a")
    p.advance(0)  # offer out, not yet answered -> the epoch is known to a
    acts = p.join("b")
    assert p.of(Rekey, acts)  # a was sent epoch 1, so b gets epoch 2 (backward security)


def test_interval_batches_changes_into_one_rekey() -> None:
    p = plane("interval:5")
    for lid in "abcde":
        p.join(lid)
    # only the first joiner gets epoch 1 at once; the others wait on their own key for the next rekey
    assert set(p.offers) == {"a"}
    assert p.mgr.snapshot().rekey_due == 5.0
    p.answer("a")
    p.confirm("a")
    acts = p.advance(5.0)
    assert [r.reason for r in p.of(Rekey, acts)] == ["batch"]
    settle(p)
    assert set(p.sent.values()) == {2}
    p.now = 6.0
    p.leave("e")
    p.now = 7.0
    p.leave("d")
    p.now = 8.0
    acts = p.join("f")
    assert not p.of(Rekey, acts)
    assert "f" not in p.offers  # never handed the current key
    assert p.mgr.snapshot().rekey_due == 10.0  # at most one rekey per 5 s
    acts = p.advance(2.5)
    rekeys = p.of(Rekey, acts)
    assert len(rekeys) == 1 and rekeys[0].reason == "batch"
    assert set(p.offers) == {"a", "b", "c", "f"}
    settle(p)
    rec = p.mgr.rekey_stats()[-1]
    assert (rec.changes, rec.triggered_at, rec.started_at) == (3, 6.0, 10.0)
    # answers at 10.5: the leaver of t=6 could decrypt captured common-stream packets for 4.5 s
    assert rec.exposure_window == pytest.approx(4.5)
    p.now = 11.0
    p.leave("a")
    assert p.mgr.snapshot().rekey_due == 15.0
    p.advance(4.0)
    settle(p)
    assert p.mgr.snapshot().current_epoch == 4 and set(p.sent.values()) == {4}
    # a lone change long after the last rekey is rekeyed at once
    p.now = 40.0
    acts = p.leave("b")
    assert p.of(Rekey, acts)


def test_never_never_rekeys() -> None:
    p = plane("never")
    promote(p, "a", "b", "c")
    for i in range(5):
        p.join(f"x{i}")
        p.leave("b" if i == 0 else f"x{i - 1}")
    settle(p)
    assert len(p.of(Rekey)) == 1
    assert (
        "never" in (RekeyPolicy.__doc__ or "")
        or "never" in __import__("imsconf.keys.policy").keys.policy.__doc__
    )


def test_request_rekey_ignores_batching() -> None:
    p = plane("interval:60")
    promote(p, "a")
    acts = p.apply(p.mgr.request_rekey(p.now))
    assert p.of(Rekey, acts)[0].reason == "request"
    assert p.of(OfferKey, acts)


def test_ssrcs_never_repeat_even_with_a_repeating_source() -> None:
    seq = itertools.cycle([7, 7, 8, 8, 9, 10, 11, 12, 7, 13, 14, 15, 16, 17, 18, 19, 20, *range(21, 500)])
    m = GroupKeyManager(config=CFG, ssrc_source=lambda: next(seq))
    m.reserve_ssrcs([9])
    p = Plane(m)
    promote(p, "a", "b", "c")
    for i in range(20):
        p.join(f"x{i}")
        settle(p)
        p.leave(f"x{i}")
        settle(p)
    assert 9 not in p.ssrcs  # the harness asserts no SSRC is ever handed out twice


def test_pacing_spreads_offers_over_ticks() -> None:
    p = plane(max_offers_per_tick=2, tick=0.02)
    for i in range(6):
        p.join(f"l{i}", capable=True)
        settle(p)
    p.log.clear()
    p.now = 5.0
    acts = p.apply(p.mgr.request_rekey(p.now))
    assert len(p.of(OfferKey, acts)) == 2
    assert p.mgr.next_deadline() == pytest.approx(5.02)
    acts = p.advance(0.02)
    assert len(p.of(OfferKey, acts)) == 2


def test_speaker_routing_rule() -> None:
    p = plane()
    promote(p, "a")
    p.join("own")
    p.answer("own", accepted=False)
    ep = p.sent["a"]
    common = p.mgr.downlink("a")
    assert (common.kind, common.epoch) == ("common", ep)
    spk = p.mgr.downlink("a", speaking=True)
    assert spk.kind == "speaker" and spk.epoch == ep and spk.ssrc != common.ssrc
    assert p.mgr.downlink("own").kind == "own"
    assert p.mgr.downlink("own", speaking=True).kind == "own"


def test_snapshot_and_reprs_never_show_key_bytes() -> None:
    p = plane()
    promote(p, "a")
    p.join("b")
    key = p.of(OfferKey)[-1].key
    texts = [repr(p.mgr), repr(p.mgr.snapshot()), *(repr(a) for a in p.log), repr(p.mgr.rekey_stats())]
    for t in texts:
        assert key.key.hex() not in t and bytes(key.key).__repr__()[2:-1] not in t
    snap = p.mgr.snapshot()
    assert snap.pending_offers == 2 and snap.current_epoch == 2
    assert {li.listener: li.state for li in snap.listeners} == {
        "a": ListenerState.REKEYING,
        "b": ListenerState.OFFERED,
    }


def test_close_retires_and_wipes_everything() -> None:
    p = plane()
    promote(p, "a", "b")
    keys = [r.key for r in p.of(Rekey)]
    acts = p.mgr.close(p.now)
    assert {a.epoch for a in acts if isinstance(a, RetireEpoch)} == {
        e.number for e in p.mgr.snapshot().epochs
    } | {a.epoch for a in acts if isinstance(a, RetireEpoch)}
    assert all(not any(k.key) for k in keys)
    with pytest.raises(RuntimeError):
        p.mgr.join("c", p.now)


def test_double_join_rejected_and_unknown_leave_ignored() -> None:
    p = plane()
    p.join("a")
    with pytest.raises(ValueError):
        p.mgr.join("a", 0.0)
    assert p.mgr.leave("nobody", 0.0) == []
