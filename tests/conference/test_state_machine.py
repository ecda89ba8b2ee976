"""Random sequences of operations keep the roster invariants."""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from imsconf.conference import (
    Conference,
    ConferenceClosed,
    ConferenceError,
    ConferencePolicy,
    ConferenceState,
    MediaInfo,
    MediaReleaseRequired,
    ParticipantJoined,
    ParticipantLeft,
    ParticipantStatus,
    PolicyError,
    RosterEvent,
)

USERS = ["sip:owner@x", "sip:mod@x", "sip:a@x", "sip:b@x", "sip:c@x"]
users = st.sampled_from(USERS)


class RosterMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.conf: Conference | None = None
        self.last_version = 0
        self.ever_ids: set[str] = set()
        self.now = 0.0

    @rule(
        owner_closes=st.booleans(),
        empty_closes=st.booleans(),
        cap=st.none() | st.integers(1, 4),
    )
    @precondition(lambda self: self.conf is None)
    def create(self, owner_closes: bool, empty_closes: bool, cap: int | None) -> None:
        policy = ConferencePolicy(
            close_when_owner_leaves=owner_closes,
            close_when_empty=empty_closes,
            max_participants=cap,
            moderators=frozenset({"sip:mod@x"}),
        )
        self.conf = Conference("c", "sips:c@x", "sip:owner@x", policy, 0.0)

    def _apply(self, events: list[object]) -> None:
        assert self.conf is not None
        for ev in events:
            if isinstance(ev, RosterEvent):
                assert ev.version == self.last_version + 1, "versions grow by exactly one"
                self.last_version = ev.version
            if isinstance(ev, ParticipantJoined):
                pid = ev.participant.participant_id
                assert pid not in self.ever_ids
                self.ever_ids.add(pid)
            if isinstance(ev, ParticipantLeft):
                assert ev.participant.status is ParticipantStatus.DISCONNECTED
            if isinstance(ev, MediaReleaseRequired):
                assert len(self.conf) == 0
            if isinstance(ev, ConferenceClosed):
                assert self.conf.state is ConferenceState.CLOSED and len(self.conf) == 0
        assert self.conf.version == self.last_version

    def _call(self, fn: object, *args: object) -> None:
        assert self.conf is not None
        before = (self.conf.version, self.conf.participants, self.conf.state)
        try:
            events = fn(*args)  # type: ignore[operator]
        except ConferenceError:
            assert (self.conf.version, self.conf.participants, self.conf.state) == before, (
                "errors change nothing"
            )
            return
        self._apply(events)

    @precondition(lambda self: self.conf is not None)
    @rule(user=users)
    def join(self, user: str) -> None:
        assert self.conf is not None
        closed = self.conf.state is not ConferenceState.ACTIVE
        self.now += 1
        try:
            events = self.conf.join(user, self.now)
        except PolicyError as exc:
            assert exc.status in (404, 480, 486) or not closed
            if closed:
                assert exc.status in (404, 480)
            return
        assert not closed, "a closing or closed conference refuses joins"
        self._apply(list(events))

    @precondition(lambda self: self.conf is not None and len(self.conf) > 0)
    @rule(data=st.data(), reason=st.sampled_from(["bye", "timeout"]))
    def leave(self, data: st.DataObject, reason: str) -> None:
        assert self.conf is not None
        pid = data.draw(st.sampled_from([p.participant_id for p in self.conf.participants]))
        self._call(self.conf.leave, pid, reason)

    @precondition(lambda self: self.conf is not None and len(self.conf) > 0)
    @rule(data=st.data(), by=users)
    def remove(self, data: st.DataObject, by: str) -> None:
        assert self.conf is not None
        pid = data.draw(st.sampled_from([p.participant_id for p in self.conf.participants]))
        self._call(self.conf.remove, by, pid)

    @precondition(lambda self: self.conf is not None and len(self.conf) > 0)
    @rule(data=st.data(), status=st.sampled_from(list(ParticipantStatus)))
    def set_status(self, data: st.DataObject, status: ParticipantStatus) -> None:
        assert self.conf is not None
        pid = data.draw(st.sampled_from([p.participant_id for p in self.conf.participants]))
        self._call(self.conf.set_status, pid, status)

    @precondition(lambda self: self.conf is not None and len(self.conf) > 0)
    @rule(data=st.data(), ssrc=st.none() | st.integers(0, 3))
    def set_media(self, data: st.DataObject, ssrc: int | None) -> None:
        assert self.conf is not None
        pid = data.draw(st.sampled_from([p.participant_id for p in self.conf.participants]))
        self._call(self.conf.set_media, pid, MediaInfo(ssrc=ssrc, srtp=True))

    @precondition(lambda self: self.conf is not None)
    @rule()
    def close(self) -> None:
        assert self.conf is not None
        self._call(self.conf.close, "test")

    @invariant()
    def roster_is_consistent(self) -> None:
        if self.conf is None:
            return
        ids = [p.participant_id for p in self.conf.participants]
        assert len(ids) == len(set(ids)), "no participant twice"
        assert all(p.status is not ParticipantStatus.DISCONNECTED for p in self.conf.participants)
        assert self.conf.pending_disconnects <= set(ids)
        cap = self.conf.policy.max_participants
        assert cap is None or len(ids) <= cap
        if self.conf.state is ConferenceState.CLOSED:
            assert ids == []
        if self.conf.state is ConferenceState.CLOSING:
            assert set(ids) == self.conf.pending_disconnects, "everyone left is being disconnected"


TestRoster = RosterMachine.TestCase
TestRoster.settings = settings(max_examples=300, stateful_step_count=40, deadline=None)
