"""The operator part of the focus: mute, deaf, kick, lock, end, invite; the views; operator events; usage
records for every way a leg or a conference ends; the ``*6`` mute toggle."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from control_helpers import (
    Phone,
    answer,
    drain_notifies,
    invite_for,
    notifies,
    ok_all,
    q,
    subscribe,
    valid_doc,
)
from helpers import DOMAIN, FOCUS_HOST, UA, Harness, RecordingMedia, Sent, answer_to, requests, responses
from test_planned import PIN, PIN_HASH, World

from imsconf.app.focus_wiring import FocusOptions
from imsconf.focus.admin import (
    AdminError,
    InvalidTarget,
    OperatorEvent,
    RtcpView,
    UnknownConference,
    UnknownParticipant,
)
from imsconf.focus.config import FocusConfig
from imsconf.focus.operator import ConferenceOperator
from imsconf.media.dtmf import DtmfEvent
from imsconf.media.events import DtmfReceived, LegStats, MixerLost, MixerReady, RtcpReport, SpeakingChanged
from imsconf.media.rtp import ReportBlock
from imsconf.sip.message import Request
from imsconf.sip.peer import Peer
from imsconf.usage.records import ConferenceUsage, LegUsage

OFFSET = 1_700_000_000.0  # POSIX time minus the focus clock


class MixMedia(RecordingMedia):
    """Records the mix flags the focus sets and gives every leg some packet counts."""

    def __init__(self) -> None:
        super().__init__()
        self.mix: dict[str, tuple[bool, bool]] = {}
        self.mix_calls: list[tuple[str, bool, bool]] = []

    def set_leg_mix(self, leg_id: str, *, muted: bool, deaf: bool) -> None:
        if leg_id not in self.legs:
            raise KeyError(leg_id)
        self.mix[leg_id] = (muted, deaf)
        self.mix_calls.append((leg_id, muted, deaf))

    def leg_stats(self, leg_id: str) -> LegStats:
        if leg_id not in self.legs:
            raise KeyError(leg_id)
        return replace(super().leg_stats(leg_id), received=95, sent=120)


@dataclass
class Usage:
    legs: list[LegUsage] = field(default_factory=list)
    conferences: list[ConferenceUsage] = field(default_factory=list)

    def leg_ended(self, record: LegUsage) -> None:
        self.legs.append(record)

    def conference_ended(self, record: ConferenceUsage) -> None:
        self.conferences.append(record)


class Op:
    """A harness with the operator part at hand, its events and usage records."""

    def __init__(self, config: FocusConfig | None = None, *, wall: float = OFFSET) -> None:
        self.usage = Usage()
        self.media = MixMedia()
        self.h = Harness(config, self.media, options=FocusOptions(usage=self.usage, wall_clock_offset=wall))
        self.op: ConferenceOperator = self.h.focus.operator
        self.events: list[OperatorEvent] = []
        self.op.watch(self.events.append)

    def kinds(self) -> list[str]:
        return [e.kind for e in self.events]

    def conf_with(self, *users: str) -> tuple[str, str, list[UA]]:
        """A conference created by the first user, joined by the others: (conf id, URI, UAs)."""
        uas = [self.h.ua(u) for u in users]
        _, uri = self.h.create(uas[0])
        for ua in uas[1:]:
            self.h.join(ua, uri)
        return self.h.conference(uri).conf_id, uri, uas


def bye_to(sent: list[Sent], ua: UA) -> list[Sent]:
    return [(m, p) for m, p in requests(sent, "BYE") if m.call_id == ua.call_id]


# ---------------------------------------------------------------------------------------------- views


def test_view_shows_the_conference_and_its_participants() -> None:
    o = Op()
    conf_id, uri, (alice, bob) = o.conf_with("alice", "bob")
    view = o.op.conference(conf_id)
    assert view.id == conf_id and view.uri == o.h.conference(uri).uri and view.owner == alice.aor
    assert view.created == datetime.fromtimestamp(1000.0 + OFFSET, UTC)
    assert not view.locked and view.downlink in ("per-leg", "group")
    assert [p.uri for p in view.participants] == [alice.aor, bob.aor]
    a = view.participants[0]
    assert a.id == "p1" and a.role == "owner" and a.transport == "tls" and a.codec == "PCMU"
    assert a.srtp == "AES_CM_128_HMAC_SHA1_80" and a.key in ("sdes", "group")
    assert not (a.muted or a.deaf or a.on_hold or a.speaking or a.floor)
    assert a.rtcp == RtcpView()
    assert view.participants[1].role == "participant"
    assert o.op.conferences() == (view,)


def test_view_of_an_unknown_conference_raises() -> None:
    o = Op()
    with pytest.raises(UnknownConference):
        o.op.conference("nope")
    o.conf_with("alice")
    with pytest.raises(UnknownParticipant):
        o.op.participant(next(iter(o.h.focus.registry)).conf_id, "p9")


def test_rtcp_report_and_speaking_show_in_the_view_and_events() -> None:
    o = Op()
    conf_id, _, _ = o.conf_with("alice", "bob")
    leg_id = f"{conf_id}.p2"
    o.h.focus.on_media_event(RtcpReport(leg_id, ReportBlock(1, 64, 0, 10, 160)))
    o.h.focus.on_media_event(SpeakingChanged(leg_id, conf_id, True))
    o.h.focus.on_media_event(SpeakingChanged(leg_id, conf_id, True))  # no change: no event
    bob = o.op.participant(conf_id, "p2")
    assert bob.rtcp == RtcpView(loss=0.25, jitter_ms=20.0)  # 160 timestamp units at 8 kHz
    assert bob.speaking
    speaking = [e for e in o.events if e.kind == "participant-speaking"]
    assert speaking == [OperatorEvent("participant-speaking", conf_id, "p2", {"speaking": True})]


# ---------------------------------------------------------------------------------------------- mute / deaf


def test_mute_and_deaf_reach_the_mixer_the_view_and_the_event_package() -> None:
    o = Op()
    conf_id, uri, (_alice, _bob) = o.conf_with("alice", "bob")
    _, sent = subscribe(o.h, alice_sub := o.h.ua("alice"), uri)
    ok_all(o.h, alice_sub, sent)
    leg_id = f"{conf_id}.p2"
    view = o.op.set_muted(o.h.ep, conf_id, "p2", True, o.h.now)
    assert view.muted and not view.deaf
    assert o.media.mix[leg_id] == (True, False)
    (n,) = notifies(o.h.take(), "conference")
    statuses = [m.findtext(q("status")) for m in valid_doc(n.body).iter(q("media"))]
    assert statuses == ["recvonly"]  # the conference takes nothing from a muted participant
    assert o.op.set_muted(o.h.ep, conf_id, "p2", True, o.h.now).muted  # idempotent: no second call
    assert o.media.mix_calls == [(leg_id, True, False)]
    view = o.op.set_deaf(o.h.ep, conf_id, "p2", True, o.h.now)
    assert view.muted and view.deaf and o.media.mix[leg_id] == (True, True)
    o.op.set_muted(o.h.ep, conf_id, "p2", False, o.h.now)
    assert o.media.mix[leg_id] == (False, True)
    kinds = [(e.kind, e.participant_id, dict(e.data)) for e in o.events if e.kind.startswith("participant-")]
    assert kinds[-3:] == [
        ("participant-muted", "p2", {"muted": True}),
        ("participant-deaf", "p2", {"deaf": True}),
        ("participant-muted", "p2", {"muted": False}),
    ]


def test_mute_of_unknown_participant_or_conference_raises() -> None:
    o = Op()
    conf_id, _, _ = o.conf_with("alice")
    with pytest.raises(UnknownParticipant):
        o.op.set_muted(o.h.ep, conf_id, "p7", True, o.h.now)
    with pytest.raises(UnknownConference):
        o.op.set_deaf(o.h.ep, "nope", "p1", True, o.h.now)


def test_mute_survives_a_reinvite_and_a_new_mixer() -> None:
    o = Op()
    conf_id, _, (_, bob) = o.conf_with("alice", "bob")
    leg_id = f"{conf_id}.p2"
    o.op.set_muted(o.h.ep, conf_id, "p2", True, o.h.now)
    from helpers import sdp_offer

    resp = o.h.final(o.h.send(bob, bob.reinvite(sdp_offer(version=2))))
    assert resp.status == 200
    o.h.send(bob, bob.ack())
    assert o.media.mix_calls[-1] == (leg_id, True, False) and len(o.media.mix_calls) == 2
    assert o.op.participant(conf_id, "p2").muted
    # the mixer is lost and comes back: the leg is made again, muted again
    o.h.focus.on_media_event(MixerLost("test"))
    o.h.advance(0)
    o.media.legs.clear()
    o.h.focus.on_media_event(MixerReady(2))
    o.h.advance(0)
    assert o.media.mix.get(leg_id) == (True, False)


def test_star6_toggles_the_participants_own_mute() -> None:
    o = Op()
    conf_id, _, _ = o.conf_with("alice", "bob")
    leg_id = f"{conf_id}.p2"

    def keys(digits: str) -> None:
        for d in digits:
            o.h.focus.on_media_event(DtmfReceived(leg_id, conf_id, DtmfEvent(d, 100, 10, end=False)))
            o.h.focus.on_media_event(DtmfReceived(leg_id, conf_id, DtmfEvent(d, 100, 10, end=True)))
        o.h.advance(0)

    keys("*6")
    assert o.op.participant(conf_id, "p2").muted
    keys("12")
    assert o.op.participant(conf_id, "p2").muted
    keys("*6")
    assert not o.op.participant(conf_id, "p2").muted
    assert not o.op.participant(conf_id, "p1").muted


def test_star6_can_be_turned_off() -> None:
    o = Op(FocusConfig(domain=DOMAIN, media_host="198.18.0.1", dtmf_mute_toggle=""))
    conf_id, _, _ = o.conf_with("alice")
    for d in "*6":
        o.h.focus.on_media_event(DtmfReceived(f"{conf_id}.p1", conf_id, DtmfEvent(d, 100, 10, end=True)))
    o.h.advance(0)
    assert not o.op.participant(conf_id, "p1").muted


def test_star6_in_the_pin_lobby_is_pin_entry_not_mute(tmp_path: Path) -> None:
    w = World(tmp_path, pin_hash=PIN_HASH)
    bob = w.h.ua("bob")
    assert w.dial(bob) == 200
    leg_id = w.leg_of(bob)
    w.key(leg_id, "*6")  # in the lobby: '*' restarts the PIN, '6' is a digit
    assert w.h.focus.operator.mix.get(leg_id) is None or not w.h.focus.operator.mix[leg_id].muted
    w.key(leg_id, "*" + PIN + "#")
    conf = w.conf()
    assert leg_id.split(".", 1)[1] in conf  # admitted: the PIN was not disturbed
    assert not w.h.focus.operator.participant(conf.conf_id, leg_id.split(".", 1)[1]).muted


# ---------------------------------------------------------------------------------------------- kick


def test_kick_byes_the_participant_and_the_event_package_says_booted() -> None:
    o = Op()
    conf_id, uri, (_alice, bob) = o.conf_with("alice", "bob")
    alice_sub = o.h.ua("alice")
    _, sent = subscribe(o.h, alice_sub, uri)
    ok_all(o.h, alice_sub, sent)
    o.op.kick(o.h.ep, conf_id, "p2", o.h.now)
    sent = o.h.take()
    assert len(bye_to(sent, bob)) == 1
    (n,) = notifies(sent, "conference")
    ep = next(valid_doc(n.body).iter(q("endpoint")))
    assert ep.get("state") == "deleted"
    assert ep.findtext(q("disconnection-method")) == "booted"
    assert "p2" not in o.h.conference(uri)
    (rec,) = o.usage.legs
    assert rec.reason == "booted" and rec.participant_id == "p2" and rec.identity == bob.aor
    with pytest.raises(UnknownParticipant):
        o.op.kick(o.h.ep, conf_id, "p2", o.h.now)


# ---------------------------------------------------------------------------------------------- lock


def test_lock_refuses_an_invite_to_the_conference_uri_but_not_a_reinvite() -> None:
    o = Op()
    conf_id, uri, (_alice, bob) = o.conf_with("alice", "bob")
    view = o.op.set_locked(conf_id, True)
    assert view.locked
    carol = o.h.ua("carol")
    resp = o.h.call(carol, uri)
    assert (resp.status, resp.reason) == (403, "Conference locked")
    from helpers import sdp_offer

    resp = o.h.final(o.h.send(bob, bob.reinvite(sdp_offer(version=2))))
    assert resp.status == 200
    o.h.send(bob, bob.ack())
    assert o.op.set_locked(conf_id, True).locked  # idempotent
    assert [e.data for e in o.events if e.kind == "conference-locked"] == [{"locked": True}]
    assert not o.op.set_locked(conf_id, False).locked
    assert o.h.call(o.h.ua("dave"), uri).status == 200
    with pytest.raises(UnknownConference):
        o.op.set_locked("nope", True)


def test_lock_refuses_a_refer_driven_join() -> None:
    o = Op()
    conf_id, _, (alice,) = o.conf_with("alice")
    o.op.set_locked(conf_id, True)
    bob = Phone("bob", Peer("tls", "198.51.100.50", 5090))
    sent = o.h.send(alice, alice.refer(f"<{bob.uri()}>"))
    assert [(r.status, r.reason) for r, _ in responses(sent)] == [(403, "Conference locked")]
    assert requests(sent, "INVITE") == []


def test_lock_refuses_a_dial_in_to_a_booked_conference(tmp_path: Path) -> None:
    w = World(tmp_path)
    alice, bob = w.h.ua("alice"), w.h.ua("bob")
    assert w.dial(alice) == 200
    conf = w.conf()
    w.h.focus.operator.set_locked(conf.conf_id, True)
    resp = w.h.call(bob, f"sip:weekly@{FOCUS_HOST}")
    assert (resp.status, resp.reason) == (403, "Conference locked")
    assert len(conf) == 1


# ---------------------------------------------------------------------------------------------- end / invite


def test_end_byes_everyone_and_terminates_subscriptions() -> None:
    o = Op()
    conf_id, uri, (alice, bob) = o.conf_with("alice", "bob")
    alice_sub = o.h.ua("alice")
    _, sent = subscribe(o.h, alice_sub, uri)
    ok_all(o.h, alice_sub, sent)
    o.op.end(o.h.ep, conf_id, o.h.now)
    sent = o.h.take()
    assert len(bye_to(sent, alice)) == 1 and len(bye_to(sent, bob)) == 1
    got = drain_notifies(o.h, alice_sub, sent)
    states = [(n.headers.get("Subscription-State") or "").split(";")[0] for n in got]
    assert states[-1] == "terminated"
    assert o.h.focus.registry.get(conf_id) is None
    assert {r.reason for r in o.usage.legs} == {"conference-ended"}
    (c,) = o.usage.conferences
    assert c.reason == "operator" and c.participants == 2 and not c.planned and c.owner == alice.aor
    assert "conference-ended" in o.kinds()
    with pytest.raises(UnknownConference):
        o.op.end(o.h.ep, conf_id, o.h.now)


def test_invite_dials_the_user_out_into_the_conference() -> None:
    o = Op()
    conf_id, _uri, _ = o.conf_with("alice")
    o.op.set_locked(conf_id, True)  # the operator may still bring people in
    bob = Phone("bob", Peer("tls", "198.51.100.50", 5090))
    o.op.invite(o.h.ep, conf_id, bob.uri(), o.h.now)
    sent = o.h.take()
    invite = invite_for(sent, bob)
    answer(o.h, bob, invite)
    view = o.op.conference(conf_id)
    assert [p.uri for p in view.participants][-1] == "sip:bob@198.51.100.50"
    assert "participant-joined" in o.kinds()


@pytest.mark.parametrize("uri", ["tel:+123456", "mailto:bob@example.net", "bob@example.net", "sip:", ""])
def test_invite_of_a_non_sip_uri_is_an_invalid_target(uri: str) -> None:
    o = Op()
    conf_id, _, _ = o.conf_with("alice")
    with pytest.raises(InvalidTarget):
        o.op.invite(o.h.ep, conf_id, uri, o.h.now)
    assert requests(o.h.take(), "INVITE") == []


def test_invite_errors() -> None:
    o = Op()
    with pytest.raises(UnknownConference):
        o.op.invite(o.h.ep, "nope", "sip:bob@example.net", o.h.now)
    plain = Op(FocusConfig(domain=DOMAIN, media_host="198.18.0.1", allow_plain_rtp=False))
    conf_id, _, _ = plain.conf_with("alice")
    with pytest.raises(AdminError):  # SRTP keys cannot go over UDP signalling
        plain.op.invite(plain.h.ep, conf_id, "sip:bob@198.51.100.9;transport=udp", plain.h.now)


# ---------------------------------------------------------------------------------------------- usage


def test_usage_of_a_bye_and_of_the_owner_leaving() -> None:
    o = Op()
    conf_id, _uri, (alice, bob) = o.conf_with("alice", "bob")
    o.h.focus.on_media_event(RtcpReport(f"{conf_id}.p2", ReportBlock(1, 128, 0, 10, 80)))
    o.h.now += 30
    o.h.send(bob, bob.bye())
    (rec,) = o.usage.legs
    assert rec.reason == "bye" and rec.conference_id == conf_id
    assert rec.conference_uri == o.op.conference(conf_id).uri
    assert rec.codec == "PCMU" and rec.srtp_suite == "AES_CM_128_HMAC_SHA1_80" and rec.key_mode == "sdes"
    assert (rec.packets_sent, rec.packets_received) == (120, 95)
    assert rec.loss == 0.5 and rec.jitter_ms == 10.0
    assert rec.duration == 30.0 and rec.left == datetime.fromtimestamp(1030.0 + OFFSET, UTC)
    assert not rec.privacy and rec.identity == bob.aor
    o.h.send(alice, alice.bye())  # the owner leaves: the conference closes
    assert [r.reason for r in o.usage.legs] == ["bye", "bye"]
    (c,) = o.usage.conferences
    assert c.reason == "owner-left" and c.participants == 2 and c.duration == 30.0


def test_usage_of_the_last_leaving_and_privacy() -> None:
    cfg = FocusConfig(domain=DOMAIN, media_host="198.18.0.1")
    cfg.policy = type(cfg.policy)(close_when_owner_leaves=False, close_when_empty=True)
    o = Op(cfg)
    alice, bob = o.h.ua("alice"), o.h.ua("bob")
    _, uri = o.h.create(alice)
    o.h.join(bob, uri, extra=(("Privacy", "id"),))
    o.h.send(alice, alice.bye())
    o.h.send(bob, bob.bye())
    assert [(r.identity, r.privacy) for r in o.usage.legs] == [(alice.aor, False), ("anonymous", True)]
    (c,) = o.usage.conferences
    assert c.reason == "last-left"


def test_usage_of_a_failed_dial_out() -> None:
    o = Op()
    conf_id, _, _ = o.conf_with("alice")
    bob = Phone("bob", Peer("tls", "198.51.100.50", 5090))
    o.op.invite(o.h.ep, conf_id, bob.uri(), o.h.now)
    answer(o.h, bob, invite_for(o.h.take(), bob), 486, "Busy Here")
    (rec,) = o.usage.legs
    assert rec.reason == "failed" and rec.participant_id == "p2"
    assert [e.kind for e in o.events if e.participant_id == "p2"] == [
        "participant-joined",
        "participant-left",
    ]


def test_usage_of_a_shutdown() -> None:
    o = Op()
    conf_id, _, (_alice, _bob) = o.conf_with("alice", "bob")
    o.h.focus.shutdown(o.h.ep, o.h.now)
    sent = o.h.take()
    assert len(requests(sent, "BYE")) == 2
    assert [r.reason for r in o.usage.legs] == ["shutdown", "shutdown"]
    assert all(r.packets_sent == 120 for r in o.usage.legs)  # taken before the media went
    (c,) = o.usage.conferences
    assert c.reason == "shutdown" and c.conference_id == conf_id


def test_usage_of_a_session_that_failed() -> None:
    o = Op()
    alice = o.h.ua("alice")
    resp = o.h.call(alice, f"sip:conference-factory@{DOMAIN}")
    assert resp.status == 200
    o.h.advance(40)  # no ACK within 64*T1
    (rec,) = o.usage.legs
    assert rec.reason == "no-ACK"
    (c,) = o.usage.conferences
    assert c.participants == 1


def test_usage_of_a_booked_conference_is_planned(tmp_path: Path) -> None:
    usage = Usage()
    w = World(tmp_path)
    w.h.focus.operator.usage = usage
    alice = w.h.ua("alice")
    assert w.dial(alice) == 200
    w.h.send(alice, alice.bye())
    w.h.advance(0)
    (c,) = usage.conferences
    assert c.planned and c.reason == "last-left"
    assert PIN  # the module's PIN stays unused here


# ---------------------------------------------------------------------------------------------- events


def test_events_of_a_conference_life_and_a_broken_watcher() -> None:
    o = Op()

    def broken(ev: OperatorEvent) -> None:
        raise RuntimeError("watcher bug")

    o.op.watch(broken)
    late: list[OperatorEvent] = []
    stop = o.op.watch(late.append)
    conf_id, _, (alice, bob) = o.conf_with("alice", "bob")
    stop()
    o.h.send(bob, bob.bye())
    o.h.send(alice, alice.bye())
    assert o.kinds() == [
        "conference-created",
        "participant-joined",
        "participant-joined",
        "participant-left",
        "participant-left",
        "conference-ended",
    ]
    assert all(e.conference_id == conf_id for e in o.events)
    assert [e.kind for e in late] == ["conference-created", "participant-joined", "participant-joined"]


def test_floor_change_is_an_operator_event() -> None:
    from imsconf.conference.events import FloorState

    o = Op()
    conf_id, uri, _ = o.conf_with("alice", "bob")
    conf = o.h.conference(uri)
    o.h.focus.apply(o.h.ep, conf, conf.set_floors((FloorState(1, "audio", ("p2",)),)), o.h.now)
    (ev,) = [e for e in o.events if e.kind == "floor-changed"]
    assert ev.data == {"holders": ["p2"]}
    assert o.op.participant(conf_id, "p2").floor and not o.op.participant(conf_id, "p1").floor


def test_bye_answer_is_not_needed_for_the_record() -> None:
    o = Op()
    conf_id, _, (_alice, bob) = o.conf_with("alice", "bob")
    o.op.kick(o.h.ep, conf_id, "p2", o.h.now)
    (bye, _) = bye_to(o.h.take(), bob)[0]
    assert len(o.usage.legs) == 1
    assert isinstance(bye, Request)
    o.h.send(bob, answer_to(bye))
    assert len(o.usage.legs) == 1


def test_group_keying_shows_in_the_view_and_the_key_epoch_events() -> None:
    from test_keying import _answer, _confirm, _create, _harness, _leg

    h, _media = _harness()
    events: list[OperatorEvent] = []
    h.focus.operator.watch(events.append)
    alice, _uri, invite = _create(h)
    leg_id = _leg(h, alice)
    conf_id = leg_id.split(".", 1)[0]
    _answer(h, alice, invite)
    _confirm(h, leg_id, 1)
    h.advance(0.001)
    view = h.focus.operator.conference(conf_id)
    assert view.downlink == "group" and view.key_epoch == 1
    assert view.participants[0].key == "group"
    assert [e.data for e in events if e.kind == "key-epoch"] == [{"epoch": 1}]


def test_lock_keeps_a_pin_lobby_caller_out(tmp_path: Path) -> None:
    w = World(tmp_path, pin_hash=PIN_HASH)
    alice, bob = w.h.ua("alice"), w.h.ua("bob")
    assert w.dial(alice) == 200
    alice_leg = w.leg_of(alice)
    w.key(alice_leg, PIN + "#")
    conf = w.conf()
    assert len(conf) == 1
    assert w.dial(bob) == 200  # answered into the PIN lobby before the lock
    w.h.focus.operator.set_locked(conf.conf_id, True)
    w.key(w.leg_of(bob), PIN + "#")
    assert len(conf) == 1  # not admitted: goodbye, then BYE
    sent = w.h.advance(2.0)
    assert [m.call_id for m, _ in requests(sent, "BYE")] == [bob.call_id]
