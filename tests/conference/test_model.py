from __future__ import annotations

import dataclasses

import pytest

from imsconf.conference import (
    Audience,
    Conference,
    ConferenceClosed,
    ConferenceClosing,
    ConferencePolicy,
    ConferenceState,
    DisconnectRequired,
    InvalidTransitionError,
    MediaInfo,
    MediaReleaseRequired,
    ParticipantJoined,
    ParticipantLeft,
    ParticipantMediaChanged,
    ParticipantRoleChanged,
    ParticipantStatus,
    ParticipantStatusChanged,
    PolicyError,
    Role,
    RosterEvent,
    UnknownParticipantError,
)
from imsconf.conference.model import GIVEN_IDS_KEPT
from imsconf.sdp.direction import Direction

OWNER = "sip:alice@example.com"
BOB = "sip:bob@example.com"
CAROL = "sip:carol@example.com"
MOD = "sip:mod@example.com"
OPERATOR = "sip:ops@example.com"


def make(**policy: object) -> Conference:
    pol = ConferencePolicy(moderators=frozenset({MOD}), operators=frozenset({OPERATOR}), **policy)  # type: ignore[arg-type]
    return Conference("c1", "sips:conf-c1@example.com", OWNER, pol, created_at=100.0)


def join(conf: Conference, user: str, **kw: object) -> str:
    (ev,) = conf.join(user, 1.0, **kw)  # type: ignore[arg-type]
    assert isinstance(ev, ParticipantJoined)
    return ev.participant.participant_id


def versions(events: list[object]) -> list[int]:
    return [e.version for e in events if isinstance(e, RosterEvent)]


def test_join_assigns_roles_and_versions() -> None:
    conf = make()
    a = join(conf, OWNER, display="Alice", identity_authenticated=True)
    b = join(conf, BOB, privacy=True)
    m = join(conf, MOD)
    assert [p.role for p in conf.participants] == [Role.OWNER, Role.PARTICIPANT, Role.MODERATOR]
    assert conf.version == 3
    assert conf.participant(a).display == "Alice" and conf.participant(a).identity_authenticated
    assert conf.participant(b).privacy and conf.participant(b).status is ParticipantStatus.JOINING
    assert len({a, b, m}) == 3 and len(conf) == 3 and a in conf
    assert conf.role_of(BOB) is Role.PARTICIPANT and conf.role_of(CAROL) is None


def test_participant_snapshots_are_frozen() -> None:
    conf = make()
    p = conf.participant(join(conf, BOB))
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.status = ParticipantStatus.CONNECTED  # type: ignore[misc]


def test_status_transitions() -> None:
    conf = make()
    b = join(conf, BOB)
    (ev,) = conf.set_status(b, ParticipantStatus.CONNECTED)
    assert isinstance(ev, ParticipantStatusChanged) and ev.previous is ParticipantStatus.JOINING
    assert conf.set_status(b, ParticipantStatus.CONNECTED) == []
    conf.set_status(b, ParticipantStatus.ON_HOLD)
    conf.set_status(b, ParticipantStatus.CONNECTED)
    version = conf.version
    with pytest.raises(InvalidTransitionError) as info:
        conf.set_status(b, ParticipantStatus.JOINING)
    assert info.value.status == 500
    with pytest.raises(InvalidTransitionError):
        conf.set_status(b, ParticipantStatus.DISCONNECTED)
    assert conf.version == version and conf.participant(b).status is ParticipantStatus.CONNECTED


def test_set_media() -> None:
    conf = make()
    b = join(conf, BOB)
    media = MediaInfo(ssrc=0xDEADBEEF, srtp=True, direction=Direction.SENDRECV, codec="PCMU")
    (ev,) = conf.set_media(b, media)
    assert isinstance(ev, ParticipantMediaChanged) and ev.previous is None and ev.participant.media == media
    assert conf.set_media(b, media) == []
    with pytest.raises(ValueError):
        MediaInfo(ssrc=2**32)


def test_unknown_participant() -> None:
    conf = make()
    with pytest.raises(UnknownParticipantError) as info:
        conf.set_status("nope", ParticipantStatus.CONNECTED)
    assert info.value.status == 404
    with pytest.raises(UnknownParticipantError) as info:
        conf.leave("nope")
    assert info.value.status == 481


def test_remove_permissions() -> None:
    conf = make()
    a, b, c, m = (join(conf, u) for u in (OWNER, BOB, CAROL, MOD))
    with pytest.raises(PolicyError) as info:
        conf.remove(BOB, c)
    assert info.value.status == 403
    with pytest.raises(PolicyError):
        conf.remove("sip:stranger@example.com", c)
    with pytest.raises(PolicyError, match="owner"):
        conf.remove(MOD, a)
    (ev,) = conf.remove(MOD, c, "kicked")
    assert ev == DisconnectRequired("c1", c, CAROL, "kicked")
    assert conf.remove(OWNER, c) == []  # already being disconnected
    assert c in conf.pending_disconnects and c in conf
    left = conf.leave(c, "bye received")
    assert isinstance(left[0], ParticipantLeft)
    assert (left[0].reason, left[0].removed_by) == ("kicked", MOD)
    assert left[0].participant.status is ParticipantStatus.DISCONNECTED
    assert c not in conf
    conf.remove(OWNER, m)
    conf.remove(OPERATOR, b)
    assert conf.pending_disconnects == {m, b}


def test_owner_not_in_roster_may_remove_and_operator_may_remove_owner() -> None:
    conf = make()
    a, b = join(conf, OWNER), join(conf, BOB)
    assert conf.remove(OWNER, b)
    assert conf.remove(OPERATOR, a)


def test_owner_leave_closes_and_disconnects_everyone() -> None:
    conf = make()
    a, b, c = join(conf, OWNER), join(conf, BOB), join(conf, CAROL)
    events = conf.leave(a)
    assert isinstance(events[0], ParticipantLeft)
    assert isinstance(events[1], ConferenceClosing) and events[1].reason == "owner left"
    assert [e.participant_id for e in events if isinstance(e, DisconnectRequired)] == [b, c]
    assert conf.state is ConferenceState.CLOSING
    with pytest.raises(PolicyError) as info:
        conf.join(CAROL, 2.0)
    assert info.value.status == 480
    conf.leave(b)
    last = conf.leave(c)
    assert [type(e) for e in last] == [ParticipantLeft, MediaReleaseRequired, ConferenceClosed]
    assert last[0].reason == "owner left"  # type: ignore[union-attr]
    assert conf.state.value == "closed"  # (mypy narrowed state to CLOSING above)
    with pytest.raises(PolicyError) as info:
        conf.join(BOB, 3.0)
    assert info.value.status == 404


def test_owner_leave_without_close_policy() -> None:
    conf = make(close_when_owner_leaves=False)
    a, _ = join(conf, OWNER), join(conf, BOB)
    assert [type(e) for e in conf.leave(a)] == [ParticipantLeft]
    assert conf.state is ConferenceState.ACTIVE


def test_owner_on_two_devices_closes_only_when_both_leave() -> None:
    conf = make()
    a1, a2, _ = join(conf, OWNER), join(conf, OWNER), join(conf, BOB)
    assert len(conf.leave(a1)) == 1
    assert any(isinstance(e, ConferenceClosing) for e in conf.leave(a2))


def test_last_leave_releases_media() -> None:
    conf = make(close_when_empty=False)
    b, c = join(conf, BOB), join(conf, CAROL)
    assert [type(e) for e in conf.leave(b)] == [ParticipantLeft]
    assert [type(e) for e in conf.leave(c)] == [ParticipantLeft, MediaReleaseRequired]
    assert conf.state is ConferenceState.ACTIVE
    join(conf, BOB)  # an empty, open conference can be re-joined
    closed = make()
    join(closed, BOB)
    events = closed.leave(closed.participants[0].participant_id)
    assert [type(e) for e in events] == [ParticipantLeft, MediaReleaseRequired, ConferenceClosed]


def test_close() -> None:
    conf = make()
    b, c = join(conf, BOB), join(conf, CAROL)
    conf.remove(OWNER, c)
    events = conf.close("operator")
    assert isinstance(events[0], ConferenceClosing)
    assert [e.participant_id for e in events if isinstance(e, DisconnectRequired)] == [b]  # c already pending
    assert conf.close() == []
    empty = make()
    assert [type(e) for e in empty.close()] == [ConferenceClosed]
    assert empty.close() == []


def test_max_participants() -> None:
    conf = make(max_participants=2)
    join(conf, BOB)
    c = join(conf, CAROL)
    with pytest.raises(PolicyError) as info:
        conf.join(MOD, 1.0)
    assert info.value.status == 486
    conf.leave(c)
    join(conf, MOD)
    busy = make(max_participants=1, full_status=503)
    join(busy, BOB)
    with pytest.raises(PolicyError) as info:
        busy.join(CAROL, 1.0)
    assert info.value.status == 503
    with pytest.raises(ValueError):
        ConferencePolicy(max_participants=0)
    with pytest.raises(ValueError):
        ConferencePolicy(full_status=500)


def test_join_policy() -> None:
    conf = make(allowed_users=frozenset({BOB}), require_authenticated_identity=True)
    with pytest.raises(PolicyError, match="authenticated"):
        conf.join(BOB, 1.0)
    join(conf, BOB, identity_authenticated=True)
    join(conf, OWNER, identity_authenticated=True)
    with pytest.raises(PolicyError) as info:
        conf.join(CAROL, 1.0, identity_authenticated=True)
    assert info.value.status == 403


def test_participant_ids_never_reused() -> None:
    conf = make(close_when_empty=False)
    b = join(conf, BOB, participant_id="dialog-1")
    conf.leave(b)
    with pytest.raises(ValueError):
        conf.join(BOB, 2.0, participant_id="dialog-1")
    join(conf, BOB, participant_id="p1")
    assert join(conf, CAROL) == "p2"


def test_subscribe_and_invite_authorization() -> None:
    conf = make()
    join(conf, BOB)
    conf.authorize_subscribe(BOB)
    conf.authorize_subscribe(OWNER)  # owner, not joined yet
    conf.authorize_subscribe(OPERATOR)
    with pytest.raises(PolicyError) as info:
        conf.authorize_subscribe(CAROL)
    assert info.value.status == 403
    conf.authorize_invite(BOB)
    with pytest.raises(PolicyError):
        conf.authorize_invite(CAROL)
    mods_only = make(subscribers=Audience.MODERATORS, invite_roles=frozenset({Role.OWNER}))
    join(mods_only, BOB)
    with pytest.raises(PolicyError):
        mods_only.authorize_subscribe(BOB)
    mods_only.authorize_subscribe(MOD)
    with pytest.raises(PolicyError):
        mods_only.authorize_invite(BOB)
    anyone = make(subscribers=Audience.ANYONE)
    anyone.authorize_subscribe(CAROL)


def test_set_role() -> None:
    conf = make()
    a, b = join(conf, OWNER), join(conf, BOB)
    with pytest.raises(PolicyError):
        conf.set_role(BOB, b, Role.MODERATOR)
    (ev,) = conf.set_role(OWNER, b, Role.MODERATOR)
    assert isinstance(ev, ParticipantRoleChanged) and ev.previous is Role.PARTICIPANT and ev.by == OWNER
    assert conf.set_role(OWNER, b, Role.MODERATOR) == []
    with pytest.raises(PolicyError):
        conf.set_role(OWNER, b, Role.OWNER)
    with pytest.raises(PolicyError):
        conf.set_role(OPERATOR, a, Role.PARTICIPANT)
    conf.remove(BOB, join(conf, CAROL))  # the new moderator may remove


def test_versions_grow_by_one_per_roster_event() -> None:
    conf = make()
    all_events: list[object] = []
    a, b = join(conf, OWNER), join(conf, BOB)
    all_events += conf.set_status(b, ParticipantStatus.CONNECTED)
    all_events += conf.set_media(b, MediaInfo(ssrc=1))
    all_events += conf.leave(a)
    all_events += conf.leave(b)
    assert versions(all_events) == list(range(3, conf.version + 1))
    assert conf.state is ConferenceState.CLOSED


def test_event_validation() -> None:
    with pytest.raises(ValueError):
        ConferenceClosed("c1", 0, "x")
    with pytest.raises(ValueError):
        Conference("", "u", None, ConferencePolicy(), 0.0)


def test_given_participant_ids_are_remembered_up_to_a_bound() -> None:
    """A caller's ids (the focus's PIN lobby ids) are refused again, the newest GIVEN_IDS_KEPT of them; a
    conference with many callers over its life does not keep one string per call."""
    conf = make(close_when_empty=False)
    stays = join(conf, BOB, participant_id="l0")
    for n in range(1, 3 * GIVEN_IDS_KEPT):
        conf.leave(join(conf, CAROL, participant_id=f"l{n}"))
    assert len(conf._given_ids) <= GIVEN_IDS_KEPT
    with pytest.raises(ValueError):
        conf.join(CAROL, 2.0, participant_id=f"l{3 * GIVEN_IDS_KEPT - 1}")  # a recent one
    with pytest.raises(ValueError):
        conf.join(CAROL, 2.0, participant_id="l0")  # still present
    assert stays in conf
    # a given p<n> that is forgotten is never made by the conference afterwards
    conf.leave(join(conf, CAROL, participant_id="p7"))
    for n in range(GIVEN_IDS_KEPT):
        conf.leave(join(conf, CAROL, participant_id=f"m{n}"))
    made = {conf_join_made(conf) for _ in range(10)}
    assert "p7" not in made
    with pytest.raises(ValueError):
        conf.join(CAROL, 2.0, participant_id="p7")


def conf_join_made(conf: Conference) -> str:
    pid = join(conf, CAROL)
    conf.leave(pid)
    return pid
