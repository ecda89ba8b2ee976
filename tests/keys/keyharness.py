"""A fake focus + mixer for the key manager tests: applies actions, checks the safety rules on the way."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar

from imsconf.keys import (
    Action,
    DemoteDone,
    DemoteFailed,
    DemoteListener,
    DropListener,
    GroupKeyManager,
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

A = TypeVar("A", bound=Action)


@dataclass
class Plane:
    mgr: GroupKeyManager
    now: float = 0.0
    log: list[Action] = field(default_factory=list)
    sent: dict[str, int | None] = field(default_factory=dict)  # common-stream epoch a listener is sent
    own_too: dict[str, bool] = field(default_factory=dict)
    offers: dict[str, int] = field(default_factory=dict)  # outstanding OfferKey per listener
    holds: dict[str, set[int]] = field(default_factory=dict)  # epochs whose key the listener accepted
    left_at_epoch: dict[str, int] = field(default_factory=dict)  # newest epoch when it left / was dropped
    gone: set[str] = field(default_factory=set)
    demoting: set[str] = field(default_factory=set)
    live: set[int] = field(default_factory=set)
    retired: set[int] = field(default_factory=set)
    ssrcs: set[int] = field(default_factory=set)
    epochs_made: int = 0

    # -- driving
    def join(self, lid: str, *, capable: bool = False) -> list[Action]:
        self.gone.discard(lid)
        self.sent[lid] = None
        self.holds[lid] = set()
        return self.apply(self.mgr.join(lid, self.now, capable=capable))

    def leave(self, lid: str) -> list[Action]:
        acts = self.mgr.leave(lid, self.now)
        if lid not in self.gone:
            self.left_at_epoch[lid] = self.epochs_made
        return self.apply(acts)

    def answer(self, lid: str, accepted: bool = True) -> list[Action]:
        epoch = self.offers.pop(lid)
        if accepted:
            self.holds[lid].add(epoch)
        return self.apply(self.mgr.handle(KeyAnswerReceived(lid, epoch, accepted), self.now))

    def confirm(self, lid: str) -> list[Action]:
        ep = self.sent[lid]
        assert ep is not None
        return self.apply(self.mgr.handle(KeyUseConfirmed(lid, ep), self.now))

    def fail(self, lid: str) -> list[Action]:
        ep = self.sent[lid]
        assert ep is not None
        return self.apply(self.mgr.handle(KeyUseFailed(lid, ep), self.now))

    def demote_result(self, lid: str, ok: bool) -> list[Action]:
        self.demoting.discard(lid)
        ev = DemoteDone(lid) if ok else DemoteFailed(lid)
        return self.apply(self.mgr.handle(ev, self.now))

    def advance(self, dt: float) -> list[Action]:
        """Move the fake clock, firing every deadline on the way in order."""
        end = self.now + dt
        acts: list[Action] = []
        while True:
            d = self.mgr.next_deadline()
            if d is None or d > end:
                break
            self.now = max(self.now, d)
            acts += self.apply(self.mgr.handle_timer(self.now))
        self.now = end
        return acts

    # -- the fake focus/mixer
    def apply(self, actions: list[Action]) -> list[Action]:
        for a in actions:
            self.log.append(a)
            if isinstance(a, Rekey):
                assert a.epoch not in self.live and a.epoch not in self.retired
                assert a.ssrc not in self.ssrcs, "SSRC reused"
                self.ssrcs.add(a.ssrc)
                self.live.add(a.epoch)
                self.epochs_made = max(self.epochs_made, a.epoch)
                assert "key=" not in repr(a) or "bytes>" in repr(a)
            elif isinstance(a, OfferKey):
                assert a.listener not in self.gone, "offer to a leaver"
                assert a.epoch in self.live
                assert a.listener not in self.offers, "two offers in flight"
                assert any(a.key.key)  # not wiped
                self.offers[a.listener] = a.epoch
            elif isinstance(a, SwitchListener):
                assert a.listener not in self.gone
                assert a.epoch in self.live
                assert a.epoch in self.holds[a.listener], "sent an epoch before its answer"
                assert a.speaker_ssrc not in self.ssrcs, "speaker SSRC reused"
                self.ssrcs.add(a.speaker_ssrc)
                self.sent[a.listener] = a.epoch
                self.own_too[a.listener] = a.keep_own
            elif isinstance(a, SettleListener):
                assert self.sent[a.listener] == a.epoch
                self.own_too[a.listener] = False
            elif isinstance(a, DemoteListener):
                self.sent[a.listener] = None
                self.own_too[a.listener] = False
                self.offers.pop(a.listener, None)
                self.demoting.add(a.listener)
            elif isinstance(a, DropListener | StopListener):
                self.gone.add(a.listener)
                self.sent.pop(a.listener, None)
                self.offers.pop(a.listener, None)
                self.demoting.discard(a.listener)
                if isinstance(a, DropListener):
                    self.left_at_epoch[a.listener] = self.epochs_made
            elif isinstance(a, RetireEpoch):
                assert a.epoch in self.live
                assert all(e != a.epoch for e in self.sent.values()), "retired an epoch still sent"
                assert a.epoch not in self.offers.values(), "retired an epoch with an offer in flight"
                self.live.discard(a.epoch)
                self.retired.add(a.epoch)
        return actions

    # -- queries
    def of(self, kind: type[A], actions: list[Action] | None = None) -> list[A]:
        return [a for a in (self.log if actions is None else actions) if isinstance(a, kind)]
