"""Random join/leave/answer/confirm/fail/demotion/time sequences keep the key manager's invariants."""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from keyharness import Plane

from imsconf.keys import (
    DownlinkMode,
    GroupKeyManager,
    KeyManagerConfig,
    ListenerState,
    OfferKey,
    RekeyPolicy,
)

NAMES = ["a", "b", "c", "d", "e", "f"]
POLICIES = ["both", "on-join", "on-leave", "interval:3", "never"]


class KeyMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.p: Plane | None = None
        self.policy = RekeyPolicy.both()
        self.gen = 0
        self.present: dict[str, str] = {}  # name -> listener id of its current life
        self.offered_before_join: dict[str, set[int]] = {}
        self.checked = 0

    @initialize(
        policy=st.sampled_from(POLICIES),
        pace=st.sampled_from([None, 1, 3]),
        confirm_rekeys=st.booleans(),
    )
    def setup(self, policy: str, pace: int | None, confirm_rekeys: bool) -> None:
        self.policy = RekeyPolicy.parse(policy)
        cfg = KeyManagerConfig(
            answer_timeout=2.0,
            confirm_timeout=5.0,
            demote_timeout=3.0,
            max_offers_per_tick=pace,
            confirm_rekeys=confirm_rekeys,
        )
        self.p = Plane(GroupKeyManager(DownlinkMode.GROUP, self.policy, cfg))

    @property
    def plane(self) -> Plane:
        assert self.p is not None
        return self.p

    def _offered_epochs(self) -> set[int]:
        return {a.epoch for a in self.plane.of(OfferKey)}

    @rule(name=st.sampled_from(NAMES), capable=st.booleans())
    def join(self, name: str, capable: bool) -> None:
        if name in self.present:
            return
        self.gen += 1
        lid = f"{name}#{self.gen}"
        self.present[name] = lid
        self.offered_before_join[lid] = self._offered_epochs()
        self.plane.join(lid, capable=capable)

    @rule(name=st.sampled_from(NAMES))
    def leave(self, name: str) -> None:
        lid = self.present.pop(name, None)
        if lid is None:
            return
        self.plane.leave(lid)
        # off the group key (and the media plane) immediately
        assert lid not in self.plane.sent and lid not in self.plane.mgr

    @rule(name=st.sampled_from(NAMES), accepted=st.booleans())
    def answer(self, name: str, accepted: bool) -> None:
        lid = self.present.get(name)
        if lid is not None and lid in self.plane.offers:
            self.plane.answer(lid, accepted)

    @rule(name=st.sampled_from(NAMES), ok=st.booleans())
    def prove(self, name: str, ok: bool) -> None:
        lid = self.present.get(name)
        if lid is not None and self.plane.sent.get(lid) is not None:
            if ok:
                self.plane.confirm(lid)
            else:
                self.plane.fail(lid)

    @rule(name=st.sampled_from(NAMES), ok=st.booleans())
    def demotion_result(self, name: str, ok: bool) -> None:
        lid = self.present.get(name)
        if lid is not None and lid in self.plane.demoting:
            self.plane.demote_result(lid, ok)

    @rule(dt=st.sampled_from([0.0, 0.01, 0.5, 1.0, 2.5, 4.0, 10.0]))
    def advance(self, dt: float) -> None:
        self.plane.advance(dt)

    @precondition(lambda self: self.p is not None)
    @rule()
    def request(self) -> None:
        self.plane.apply(self.plane.mgr.request_rekey(self.plane.now))

    @invariant()
    def safety_rules(self) -> None:
        if self.p is None:
            return
        p = self.plane
        # dropped listeners are gone for the test too
        for name, lid in list(self.present.items()):
            if lid in p.gone:
                del self.present[name]
        snap = p.mgr.snapshot()
        live = {e.number for e in snap.epochs}
        assert live == p.live
        receivers = {e.number: e.receivers for e in snap.epochs}
        for info in snap.listeners:
            lid = info.listener
            # the manager's view is the media plane's view
            assert info.epoch == p.sent[lid]
            assert info.offered_epoch == p.offers.get(lid)
            if info.epoch is not None:
                # a listener on epoch e has answered for e (it holds the key), and e is not retired
                assert info.epoch in p.holds[lid]
                assert info.epoch in live
                assert info.state in (ListenerState.GROUP, ListenerState.PROBATION, ListenerState.REKEYING)
            if info.state is ListenerState.DEMOTING:
                assert info.epoch is None and info.offered_epoch is None
        for e in live:
            assert receivers[e] == sum(1 for v in p.sent.values() if v == e)
        # no listener ever receives (or is offered) an epoch created after it left
        for a in p.log:
            who: str | None = getattr(a, "listener", None)
            epoch = getattr(a, "epoch", None)
            if (
                who is not None
                and epoch is not None
                and who in p.left_at_epoch
                and type(a).__name__ != "KeyAnswer"
            ):
                assert epoch <= p.left_at_epoch[who]
        # backward security with on-join: a joiner is never offered an epoch offered to anyone before it came
        if self.policy.on_join:
            for a in p.of(OfferKey):
                assert a.epoch not in self.offered_before_join.get(a.listener, set())
        # at most one epoch in flight per listener; old epochs are only those still in use
        current = snap.current_epoch
        for info_e in snap.epochs:
            if info_e.number != current:
                assert info_e.receivers or info_e.offers_out
        # time always moves on: a deadline is never in the past after handle_timer
        d = p.mgr.next_deadline()
        assert d is None or d > p.now or d == p.now


KeyMachine.TestCase.settings = settings(max_examples=300, stateful_step_count=40, deadline=None)
TestKeyMachine = KeyMachine.TestCase
