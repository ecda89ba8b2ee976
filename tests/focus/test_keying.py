"""Group downlink keying at the focus (imsconf.focus.keying), sans-I/O on a fake clock.

The key manager's decisions are tested in tests/keys; here: that the focus carries them out over SIP (a
re-INVITE with the group key in ``a=crypto``, ACK, answers reported back) and on the mixer (epochs, listener
streams), takes the mixer's evidence, keeps the group key in its answers, and reports key scopes.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from helpers import (
    UA,
    Harness,
    RecordingMedia,
    Sent,
    answer_crypto,
    answer_to,
    new_key,
    requests,
    responses,
    sdp_offer,
)

from imsconf.app.focus_wiring import FocusOptions
from imsconf.conference.eventinfo import KeyScope
from imsconf.focus.planned import PlannedOptions
from imsconf.focus.subscriptions import viewer_for
from imsconf.keys import DownlinkMode, KeyManagerConfig, RekeyPolicy
from imsconf.media.events import GroupStreamConfirmed, GroupStreamFailing
from imsconf.media.srtp import SrtpKeys
from imsconf.sdp.session import SessionDescription
from imsconf.sip.message import Request

CONFIRM = 12.0


class GroupMedia(RecordingMedia):
    """RecordingMedia plus the group keying calls (recorded; epoch keys copied)."""

    def __init__(self) -> None:
        super().__init__()
        self.modes: dict[str, str] = {}
        self.epochs: dict[tuple[str, int], tuple[bytes, int]] = {}
        self.retired: list[tuple[str, int]] = []
        self.streams: dict[str, tuple[int | None, bool]] = {}
        self.stream_log: list[tuple[str, int | None, bool]] = []

    def set_downlink_mode(self, conference_id: str, mode: str) -> None:
        self.modes[conference_id] = mode

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
        assert self.modes.get(conference_id) == "group"
        assert (conference_id, epoch) not in self.epochs
        self.epochs[(conference_id, epoch)] = (keys.key_salt(), ssrc)

    def retire_group_epoch(self, conference_id: str, epoch: int) -> None:
        self.retired.append((conference_id, epoch))

    def set_listener_stream(
        self, leg_id: str, epoch: int | None, *, speaker_ssrc: int | None = None, keep_own: bool = False
    ) -> None:
        assert leg_id in self.legs
        self.streams[leg_id] = (epoch, keep_own)
        self.stream_log.append((leg_id, epoch, keep_own))


def _harness(
    rekey: str = "both", downlink: str = "group", planned: PlannedOptions | None = None
) -> tuple[Harness, GroupMedia]:
    media = GroupMedia()
    options = FocusOptions(
        planned=planned,
        downlink=DownlinkMode.parse(downlink),
        rekey=RekeyPolicy.parse(rekey),
        key_config=KeyManagerConfig(confirm_timeout=CONFIRM),
    )
    h = Harness(control=media, options=options)
    h.media = media
    return h, media


def _connect(h: Harness, ua: UA, ruri: str, key: bytes | None = None) -> list[Sent]:
    """INVITE + ACK; returns what the ACK caused (the key re-INVITE)."""
    resp = h.call(ua, ruri, sdp_offer(key=key))
    assert resp.status == 200, (resp.status, resp.reason)
    return h.send(ua, ua.ack())


def _reinvites(sent: list[Sent]) -> list[Request]:
    return [r for r, _ in requests(sent, "INVITE")]


def _leg(h: Harness, ua: UA) -> str:
    return next(leg.leg_id for leg in h.focus.legs.values() if leg.user == ua.aor)


def _answer(h: Harness, ua: UA, invite: Request, status: int = 200, key: bytes | None = None) -> list[Sent]:
    """The UA's final answer to the focus's re-INVITE (its own send key unchanged unless *key*)."""
    body = sdp_offer(key=key or ua_keys[ua.user], version=ua.cseq + 10) if status == 200 else b""
    return h.send(ua, answer_to(invite, status, body=body))


ua_keys: dict[str, bytes] = {}


def _join(h: Harness, user: str, ruri: str) -> tuple[UA, Request]:
    ua = h.ua(user)
    ua_keys[user] = new_key()
    sent = _connect(h, ua, ruri, ua_keys[user])
    invites = _reinvites(sent)
    assert len(invites) == 1, sent
    return ua, invites[0]


def _create(h: Harness) -> tuple[UA, str, Request]:
    ua = h.ua("alice")
    ua_keys["alice"] = new_key()
    resp = h.call(ua, "sip:conference-factory@conf.example.com", sdp_offer(key=ua_keys["alice"]))
    assert resp.status == 200
    assert ua.remote_target is not None
    sent = h.send(ua, ua.ack())
    invites = _reinvites(sent)
    assert len(invites) == 1
    return ua, ua.remote_target, invites[0]


def _confirm(h: Harness, leg_id: str, epoch: int) -> list[Sent]:
    h.focus.on_media_event(GroupStreamConfirmed(leg_id, epoch))
    return h.advance(0.001)


def _key_of(invite: Request) -> bytes:
    return answer_crypto(invite.body).key_salt


def test_join_offers_group_key_and_switches_only_after_the_answer() -> None:
    h, media = _harness()
    alice, _uri, invite = _create(h)
    leg = _leg(h, alice)
    own = h.focus.legs[leg].media.tx_key
    assert own is not None
    conf_id = h.focus.legs[leg].conf_id
    assert media.modes[conf_id] == "group"
    group_key, _ssrc = media.epochs[(conf_id, 1)]
    # the re-INVITE: our last SDP, version + 1, the group key under the negotiated tag
    offered = answer_crypto(invite.body)
    assert offered.tag == 1 and offered.key_salt == group_key != own.key_salt
    first = SessionDescription.parse(h.focus.legs[leg].answer_2xx.body)  # type: ignore[union-attr]
    again = SessionDescription.parse(invite.body)
    assert again.origin.session_version == first.origin.session_version + 1
    assert invite.headers.get("Content-Type") == "application/sdp"
    assert leg not in media.streams  # nothing sent under the epoch before the answer
    sent = _answer(h, alice, invite)
    acks = requests(sent, "ACK")
    assert len(acks) == 1 and acks[0][0].cseq.number == invite.cseq.number
    assert media.streams[leg] == (1, True)  # probation: its own stream too
    assert h.focus.keying.scope(leg) is KeyScope.PER_PARTICIPANT
    _confirm(h, leg, 1)
    assert media.streams[leg] == (1, False)
    assert h.focus.keying.scope(leg) is KeyScope.GROUP
    assert h.focus.details[leg].key_scope is KeyScope.GROUP
    snap = h.focus.keying.snapshot(conf_id)
    assert snap is not None and snap.group_listeners == (leg,)


def test_join_and_leave_rekey_everyone_left_with_fresh_keys() -> None:
    h, media = _harness()
    alice, uri, inv = _create(h)
    a_leg = _leg(h, alice)
    conf_id = h.focus.legs[a_leg].conf_id
    _answer(h, alice, inv)
    _confirm(h, a_leg, 1)
    # bob joins: epoch 2; alice keeps epoch 1 until she answers, bob is offered epoch 2
    bob = h.ua("bob")
    ua_keys["bob"] = new_key()
    sent = _connect(h, bob, uri, ua_keys["bob"])
    invites = {r.uri.split("@")[0].split(":")[1]: r for r in _reinvites(sent)}
    assert set(invites) == {"alice", "bob"}
    k2 = media.epochs[(conf_id, 2)][0]
    assert _key_of(invites["alice"]) == _key_of(invites["bob"]) == k2 != media.epochs[(conf_id, 1)][0]
    assert media.streams[a_leg] == (1, False)
    _answer(h, alice, invites["alice"])
    assert media.streams[a_leg][0] == 2
    assert (conf_id, 1) in media.retired
    b_leg = _leg(h, bob)
    _answer(h, bob, invites["bob"])
    _confirm(h, a_leg, 2)
    _confirm(h, b_leg, 2)
    # bob leaves: epoch 3 offered to alice only; bob's leg is released
    sent = h.send(bob, bob.bye())
    assert responses(sent, 200)
    left = _reinvites(sent)
    assert len(left) == 1 and "alice" in left[0].uri
    k3 = media.epochs[(conf_id, 3)][0]
    assert _key_of(left[0]) == k3 not in (k2,)
    assert media.streams[a_leg][0] == 2  # until she answers
    _answer(h, alice, left[0])
    assert media.streams[a_leg][0] == 3
    assert (conf_id, 2) in media.retired
    snap = h.focus.keying.snapshot(conf_id)
    assert snap is not None and snap.current_epoch == 3


def test_listener_reinvite_is_answered_with_the_group_key_and_new_rx_key_taken() -> None:
    h, media = _harness()
    alice, _uri, inv = _create(h)
    leg = _leg(h, alice)
    conf_id = h.focus.legs[leg].conf_id
    _answer(h, alice, inv)
    _confirm(h, leg, 1)
    mine = new_key()
    resp = h.final(h.send(alice, alice.reinvite(sdp_offer(key=mine, version=50))))
    assert resp.status == 200
    assert answer_crypto(resp.body).key_salt == media.epochs[(conf_id, 1)][0]
    assert media.legs[leg].rx_key == mine  # participant-initiated rekey honoured
    assert h.send(alice, alice.ack()) == []


def test_glare_our_reinvite_in_flight_gives_491_to_theirs() -> None:
    h, _media = _harness()
    alice, _uri, _inv = _create(h)
    resp = h.final(h.send(alice, alice.reinvite(sdp_offer(key=new_key(), version=9))))
    assert resp.status == 491


def test_491_to_our_offer_is_retried_once() -> None:
    h, media = _harness()
    alice, _uri, inv = _create(h)
    leg = _leg(h, alice)
    assert _reinvites(_answer(h, alice, inv, status=491)) == []
    sent = h.advance(4.5)
    again = _reinvites(sent)
    assert len(again) == 1 and _key_of(again[0]) == _key_of(inv)
    _answer(h, alice, again[0])
    assert media.streams[leg] == (1, True)


def test_refusal_keeps_the_listener_on_its_own_key() -> None:
    h, media = _harness()
    alice, uri, inv = _create(h)
    leg = _leg(h, alice)
    _answer(h, alice, inv, status=488)
    assert leg not in media.streams
    assert h.focus.keying.scope(leg) is KeyScope.PER_PARTICIPANT
    _bob, inv_b = _join(h, "bob", uri)  # a rekey: alice is not offered again
    assert "bob" in inv_b.uri


def test_no_proof_demotes_to_the_own_key_by_reinvite() -> None:
    """baresip 1.0.0: 200 OK to the new key, never decrypts it: back to its own key, never deaf."""
    h, media = _harness()
    alice, _uri, inv = _create(h)
    leg = _leg(h, alice)
    own = h.focus.legs[leg].media.tx_key
    assert own is not None
    own_key = own.key_salt
    _answer(h, alice, inv)
    assert media.streams[leg] == (1, True)
    sent = h.advance(CONFIRM + 0.5)
    assert media.streams[leg] == (None, False)
    demote = _reinvites(sent)
    assert len(demote) == 1 and _key_of(demote[0]) == own_key
    _answer(h, alice, demote[0])
    assert h.focus.keying.scope(leg) is KeyScope.PER_PARTICIPANT
    # its next re-INVITE gets its own key again
    resp = h.final(h.send(alice, alice.reinvite(sdp_offer(key=ua_keys["alice"], version=70))))
    assert answer_crypto(resp.body).key_salt == own_key


def test_failing_evidence_demotes_and_failed_demotion_drops() -> None:
    h, media = _harness()
    alice, _uri, inv = _create(h)
    leg = _leg(h, alice)
    _answer(h, alice, inv)
    h.focus.on_media_event(GroupStreamFailing(leg, 1, 1.0, "absent"))
    sent = h.advance(0.001)
    assert media.streams[leg] == (None, False)
    demote = _reinvites(sent)
    assert len(demote) == 1
    sent = _answer(h, alice, demote[0], status=500)
    byes = requests(sent, "BYE")
    assert len(byes) == 1  # forward security wins
    assert leg not in h.focus.legs


def test_per_participant_mode_sends_no_reinvite() -> None:
    h, media = _harness(downlink="per-participant")
    alice = h.ua("alice")
    sent = _connect(h, alice, "sip:conference-factory@conf.example.com")
    assert sent == []
    assert media.epochs == {}


@pytest.mark.parametrize("rekey", ["on-join", "on-leave", "never"])
def test_policies_rekey_as_told(rekey: str) -> None:
    h, media = _harness(rekey=rekey)
    alice, uri, inv = _create(h)
    a_leg = _leg(h, alice)
    conf_id = h.focus.legs[a_leg].conf_id
    _answer(h, alice, inv)
    _confirm(h, a_leg, 1)
    bob = h.ua("bob")
    ua_keys["bob"] = new_key()
    invites = {
        r.uri.split("@")[0].split(":")[1]: r for r in _reinvites(_connect(h, bob, uri, ua_keys["bob"]))
    }
    after_join = max(e for c, e in media.epochs if c == conf_id)
    assert after_join == (2 if rekey == "on-join" else 1)
    assert set(invites) == ({"alice", "bob"} if rekey == "on-join" else {"bob"})
    for user, ua in (("alice", alice), ("bob", bob)):
        if user in invites:
            _answer(h, ua, invites[user])
    pending = [r for r, _ in requests(h.take(), "INVITE")]
    assert pending == []
    sent = h.send(bob, bob.bye())
    after_leave = max(e for c, e in media.epochs if c == conf_id)
    assert after_leave == after_join + (1 if rekey == "on-leave" else 0)
    assert len(_reinvites(sent)) == (1 if rekey == "on-leave" else 0)


def test_key_scope_reaches_the_event_package() -> None:
    h, _media = _harness()
    alice, uri, inv = _create(h)
    leg = _leg(h, alice)
    _answer(h, alice, inv)
    conf = h.conference(uri)
    before = conf.version
    _confirm(h, leg, 1)
    assert conf.version == before + 1  # a media event carries the new scope to subscribers
    body = h.focus.notifier.feed(conf).full(viewer_for(conf, alice.aor))
    assert b'key="group"' in body


def test_booked_conference_policy_and_no_key_for_a_pin_lobby_caller(tmp_path: Path) -> None:
    """A booked conference takes its downlink/rekey from the booking; a caller held in the PIN lobby is
    offered no group key until it is admitted."""
    from test_planned import PIN, PIN_HASH, T0, FakeLobby

    from imsconf.booking.model import Booking, Invitee, InviteeRole
    from imsconf.booking.store import BookingStore
    from imsconf.focus.planned import PlannedConfig
    from imsconf.media.dtmf import DtmfEvent
    from imsconf.media.events import DtmfReceived

    store = BookingStore(tmp_path / "bookings.db")
    options = PlannedOptions(
        store,
        wall=lambda: T0 + timedelta(minutes=5),
        lobby_media=FakeLobby(),
        config=PlannedConfig(pin_timeout=10.0, bye_delay=1.0),
    )
    h, media = _harness(downlink="per-participant", planned=options)  # the default; the booking says group
    planned = h.focus.planned
    assert planned is not None
    store.create(
        Booking(
            id="b00000001",
            uri="sip:weekly@conf.example.com",
            start=T0,
            end=T0 + timedelta(hours=1),
            created_at=T0 - timedelta(days=1),
            capacity=5,
            invitees=(Invitee("sip:alice@example.net", InviteeRole.CHAIR),),
            pin_hash=PIN_HASH,
        )
    )
    bob = h.ua("bob")
    ua_keys["bob"] = new_key()
    assert _reinvites(_connect(h, bob, "sip:weekly@203.0.113.5", ua_keys["bob"])) == []
    leg = _leg(h, bob)
    assert planned.in_lobby(leg)
    assert _reinvites(h.advance(2.0)) == []  # still in the lobby: no key
    conf_id = leg.split(".")[0]
    for d in PIN + "#":
        h.focus.on_media_event(DtmfReceived(leg, conf_id, DtmfEvent(d, 100, 10, end=False)))
        h.focus.on_media_event(DtmfReceived(leg, conf_id, DtmfEvent(d, 100, 10, end=True)))
    sent = h.advance(1.0)
    assert not planned.in_lobby(leg)
    (offer,) = _reinvites(sent)
    assert media.modes[conf_id] == "group"
    assert _key_of(offer) == media.epochs[(conf_id, 1)][0]


def test_key_reinvite_names_the_focus_with_isfocus() -> None:
    """RFC 4579: a re-INVITE whose Contact lacks ``;isfocus`` reads to a client as the conference ending."""
    h, _media = _harness()
    _alice, uri, invite = _create(h)
    contact = invite.headers.get("Contact") or ""
    assert contact.endswith(";isfocus") and contact.startswith("<sip:conf-")
    _bob, bob_invite = _join(h, "bob", uri)
    assert (bob_invite.headers.get("Contact") or "").endswith(";isfocus")
