"""Chat-only sessions: an offer with only ``m=message`` joins the conference's chat without a mixer leg;
keying, recovery, the operator part and the usage records cope with a participant that has no audio."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from helpers import FACTORY, FOCUS_HOST, UA, Harness, conf_id_of, requests
from test_chat import SERVER_FP, Client, Rig, message_offer
from test_operator import MixMedia, Usage
from test_planned import PIN_HASH, World

from imsconf.app.focus_wiring import FocusOptions
from imsconf.focus.chat import FocusChat
from imsconf.keys.policy import DownlinkMode
from imsconf.media.events import MixerLost, MixerReady
from imsconf.sdp.msrp import MessageMedia
from imsconf.sdp.session import SessionDescription


def chat_only_offer(name: str, *, audio_rejected: bool = False) -> bytes:
    """A session with only an MSRP stream (or beside an audio line refused with port 0)."""
    head, _, msrp = message_offer(cert=name.encode(), session=name).partition(b"m=message")
    session = head.split(b"m=audio")[0]
    rejected = b"m=audio 0 RTP/SAVP 0\r\n" if audio_rejected else b""
    return session + rejected + b"m=message" + msrp


class ChatRig(Rig):
    """:class:`test_chat.Rig` over a media double that refuses calls for legs it never made."""

    def __init__(self, downlink: DownlinkMode = DownlinkMode.PER_PARTICIPANT) -> None:
        self.media = MixMedia()
        self.usage = Usage()
        self.h = Harness(control=self.media, options=FocusOptions(usage=self.usage, downlink=downlink))
        chat = self.h.focus.chat
        assert chat is not None
        self.chat: FocusChat = chat
        self.chat.set_listener("TCP/TLS/MSRP", "198.18.0.1", 2855, fingerprint=SERVER_FP)
        self.clients: dict[int, Client] = {}
        self.closed: list[int] = []
        self.conn = 0
        self.uri = ""
        self.uas: dict[str, UA] = {}

    def join(
        self, user: str, body: bytes, extra: tuple[tuple[str, str], ...] = ()
    ) -> tuple[MessageMedia | None, str]:
        ua = self.uas[user] = self.h.ua(user)
        if not self.uri:
            resp, self.uri = self.h.create(ua, body)
        else:
            resp = self.h.join(ua, self.uri, body, extra)
        answer = SessionDescription.parse(resp.body)
        msgs = [m for m in answer.media if m.media == "message" and m.port]
        return (MessageMedia.from_media(msgs[0]) if msgs else None), ua.peer.host

    def chat_only(self, name: str, **kw: bool) -> Client:
        mm, _ = self.join(name, chat_only_offer(name, **kw))
        assert mm is not None
        c = self.connect(mm, cert=name.encode())
        c.send(b"")
        assert c.frames[0].status == 200
        c.frames = [f for f in c.frames if f.method is not None]
        return c


def test_a_chat_only_session_joins_without_a_mixer_leg_and_chats() -> None:
    rig = ChatRig()
    alice = rig.member("alice")  # audio and chat
    dave = rig.chat_only("dave")
    conf_id = conf_id_of(rig.uri)
    leg_id = f"{conf_id}.p2"
    assert leg_id not in rig.media.legs and f"{conf_id}.p1" in rig.media.legs
    assert not any(lid == leg_id for _, lid in rig.media.calls)
    leg = rig.h.focus.legs[leg_id]
    assert leg.media.chat_only and leg.media.decision is None and leg.media.ports is None
    info = rig.h.conference(rig.uri).participant("p2").media
    assert info is not None and info.message and not info.audio and info.codec is None
    rig.h.now += 1
    dave.send(b"typing only")
    [msg] = alice.received()
    assert msg.body == b"typing only" and msg.from_ == "<sip:dave@example.net>"
    alice.send(b"hello dave")
    [msg] = dave.received()
    assert msg.body == b"hello dave"
    view = rig.h.focus.operator.participant(conf_id, "p2")
    assert view.chat and view.codec is None and view.key == "none" and view.srtp is None


def test_the_answer_accepts_only_the_message_stream() -> None:
    rig = ChatRig()
    rig.member("alice")
    resp = rig.h.join(rig.h.ua("dave"), rig.uri, chat_only_offer("dave", audio_rejected=True))
    answer = SessionDescription.parse(resp.body)
    assert [(m.media, m.port != 0) for m in answer.media] == [("audio", False), ("message", True)]


def test_without_a_usable_message_stream_the_offer_is_still_refused() -> None:
    rig = ChatRig()
    rig.member("alice")
    plain = chat_only_offer("dave").replace(b"TCP/TLS/MSRP", b"TCP/MSRP").replace(b"msrps:", b"msrp:")
    resp = rig.h.call(rig.h.ua("dave"), rig.uri, plain)  # plain MSRP is not allowed here
    assert resp.status == 488
    assert len(rig.h.conference(rig.uri).participants) == 1
    bare = Harness()  # no chat listener: nothing answers the message stream
    resp = bare.call(bare.ua("erin"), FACTORY, chat_only_offer("erin"))
    assert resp.status == 488


def test_operator_mute_and_usage_of_a_chat_only_leg(caplog: pytest.LogCaptureFixture) -> None:
    rig = ChatRig()
    rig.member("alice")
    rig.chat_only("dave")
    conf_id = conf_id_of(rig.uri)
    caplog.set_level(logging.WARNING, "imsconf.focus")
    view = rig.h.focus.operator.set_muted(rig.h.ep, conf_id, "p2", True, rig.h.now)
    assert view.muted and rig.media.mix_calls == []  # no mixer leg to tell
    assert "leg_mix_failed" not in caplog.text
    rig.h.now += 5
    dave = rig.uas["dave"]
    assert rig.h.final(rig.h.send(dave, dave.bye())).status == 200
    rig.pump()
    (record,) = [u for u in rig.usage.legs if u.participant_id == "p2"]
    assert record.codec is None and record.srtp_suite is None and record.key_mode == "none"
    assert record.packets_sent == record.packets_received == 0 and record.reason == "bye"
    assert rig.closed  # its MSRP connection closed
    assert "leg_mix_failed" not in caplog.text


def test_group_keying_leaves_a_chat_only_leg_out() -> None:
    rig = ChatRig(DownlinkMode.GROUP)
    rig.chat_only("dave")  # creates the conference: no key manager work for it
    conf_id = conf_id_of(rig.uri)
    assert rig.h.focus.keying.current_epoch(conf_id) is None
    alice = rig.h.ua("alice")
    assert rig.h.call(alice, rig.uri).status == 200
    sent = rig.h.send(alice, alice.ack()) + rig.h.advance(1)
    mgr = rig.h.focus.keying.manager(conf_id)
    assert f"{conf_id}.p2" in mgr and f"{conf_id}.p1" not in mgr
    assert {r.to.uri.user for r, _ in requests(sent, "INVITE")} <= {"alice"}  # key re-INVITEs: audio only
    assert f"{conf_id}.p1" not in rig.media.legs


def test_a_lost_mixer_leaves_a_chat_only_leg_alone() -> None:
    rig = ChatRig()
    rig.member("alice")
    dave = rig.chat_only("dave")
    conf_id = conf_id_of(rig.uri)
    rig.h.focus.on_media_event(MixerLost("test"))
    rig.h.advance(0)
    rig.media.legs.clear()
    rig.h.focus.on_media_event(MixerReady(2))
    sent = rig.h.advance(0)
    invites = requests(sent, "INVITE")
    assert [r.to.uri.user for r, _ in invites] == ["alice"]  # the move re-INVITE, to the audio leg only
    assert f"{conf_id}.p2" not in rig.media.legs
    rig.h.now += 1
    dave.send(b"still here")
    assert rig.chat.message_count(conf_id) == 1


def test_a_later_offer_with_audio_gives_the_leg_its_mixer_leg() -> None:
    rig = ChatRig()
    rig.member("alice")
    rig.chat_only("dave")
    conf_id = conf_id_of(rig.uri)
    dave = rig.uas["dave"]
    resp = rig.h.final(rig.h.send(dave, dave.reinvite(message_offer(cert=b"dave", session="dave"))))
    assert resp.status == 200
    rig.h.send(dave, dave.ack())
    leg = rig.h.focus.legs[f"{conf_id}.p2"]
    assert not leg.media.chat_only and leg.media.decision is not None
    assert rig.media.legs[f"{conf_id}.p2"].configured
    info = rig.h.conference(rig.uri).participant("p2").media
    assert info is not None and info.audio and info.message


def _booked(tmp_path: Path, pin_hash: str | None = None) -> World:
    w = World(tmp_path, pin_hash=pin_hash) if pin_hash is not None else World(tmp_path)
    chat = w.h.focus.chat
    assert chat is not None
    chat.set_listener("TCP/TLS/MSRP", "198.18.0.1", 2855, fingerprint=SERVER_FP)
    return w


def test_a_chat_only_caller_cannot_enter_a_pin_lobby(tmp_path: Path) -> None:
    w = _booked(tmp_path, pin_hash=PIN_HASH)
    resp = w.h.call(w.h.ua("bob"), f"sip:weekly@{FOCUS_HOST}", chat_only_offer("bob"))
    assert resp.status == 488 and "PIN lobby needs an audio stream" in resp.reason
    assert w.planned.lobby == {}
    chat = w.h.focus.chat
    assert chat is not None and not any(room.members for room in chat.rooms.values())


def test_a_chat_only_caller_joins_a_booked_conference_without_a_pin(tmp_path: Path) -> None:
    w = _booked(tmp_path)
    resp = w.h.call(w.h.ua("bob"), f"sip:weekly@{FOCUS_HOST}", chat_only_offer("bob"))
    assert resp.status == 200
    (p,) = w.conf().participants
    assert p.media is not None and p.media.message and not p.media.audio
