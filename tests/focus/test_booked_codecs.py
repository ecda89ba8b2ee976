"""A booked conference's own audio codecs (Booking.audio_codecs): its legs' answers to a dial-in INVITE
and a re-INVITE, and the focus's dial-out offers, follow the booking's list instead of the audio_codecs
setting; an ad hoc conference, and a booking without a list, keep the setting."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from control_helpers import invite_for
from helpers import FOCUS_HOST, Harness, requests
from test_conference_control import phone
from test_hd_voice import G722, OPUS, PCMU, TE8, TE48, offer, parse
from test_planned import World
from test_windows import World as WindowWorld
from test_windows import booking, invites

from imsconf.app.booking_index import BookingIndex
from imsconf.conference.model import ConferencePolicy
from imsconf.focus.config import FocusConfig
from imsconf.sip.uri import SipUri

OFFER = (OPUS, G722, PCMU, TE48, TE8)


def _answered_codec(body: bytes) -> str:
    m = parse(body).media[0]
    pt = m.formats[0]
    (rtpmap,) = [v for v in m.get_attributes("rtpmap") if v.split(" ", 1)[0] == pt]
    return rtpmap.split(" ", 1)[1].split("/", 1)[0]


def test_booking_with_g722_pcmu_answers_g722_where_ad_hoc_answers_opus(tmp_path: Path) -> None:
    w = World(tmp_path, audio_codecs=("G722", "PCMU"))
    alice = w.h.ua("alice")
    resp = w.h.call(alice, f"sip:weekly@{FOCUS_HOST}", offer(*OFFER))
    assert resp.status == 200
    assert _answered_codec(resp.body) == "G722"
    assert {leg.codec_name for leg in w.h.media.legs.values()} == {"G722"}
    assert w.conf().policy.audio_codecs == ("G722", "PCMU")

    h = Harness()  # ad hoc: the setting (AMR-WB, opus, G722, PCMU, PCMA)
    bob = h.ua("bob")
    resp, _ = h.create(bob, offer(*OFFER))
    assert _answered_codec(resp.body) == "opus"


def test_reinvite_of_a_booked_leg_keeps_the_bookings_preference(tmp_path: Path) -> None:
    w = World(tmp_path, audio_codecs=("PCMU", "G722"))
    alice = w.h.ua("alice")
    assert w.dial(alice) == 200
    resp = w.h.final(w.h.send(alice, alice.reinvite(offer(*OFFER))))
    assert resp.status == 200 and _answered_codec(resp.body) == "PCMU"
    (leg,) = w.h.media.legs.values()
    assert leg.codec_name == "PCMU"


def test_booking_without_a_list_uses_the_setting(tmp_path: Path) -> None:
    w = World(tmp_path)
    alice = w.h.ua("alice")
    resp = w.h.call(alice, f"sip:weekly@{FOCUS_HOST}", offer(*OFFER))
    assert resp.status == 200 and _answered_codec(resp.body) == "opus"


def test_dial_out_of_a_booked_conference_offers_the_bookings_codecs(tmp_path: Path) -> None:
    w = World(tmp_path, audio_codecs=("G722", "PCMU"))
    conf = w.planned.instantiate(w.booking, w.h.now)
    leg, _ = w.h.focus.dialer.prepare(
        w.h.ep, conf, SipUri.parse("sip:bob@example.net"), w.h.now, transport="tls"
    )
    w.h.focus.dialer.start(w.h.ep, leg, w.h.now)
    ((invite, _),) = requests(w.h.take(), "INVITE")
    names = [
        v.split(" ", 1)[1].split("/", 1)[0] for v in parse(invite.body).media[0].get_attributes("rtpmap")
    ]
    assert [n for n in names if n != "telephone-event"] == ["G722", "PCMU"]


def test_refer_driven_invite_of_a_booked_conference_offers_the_bookings_codecs(tmp_path: Path) -> None:
    w = World(tmp_path, audio_codecs=("PCMU", "G722"))
    alice = w.h.ua("alice")
    w.h.join(alice, f"sip:weekly@{FOCUS_HOST}", offer(*OFFER))
    bob = phone("bob")
    sent = w.h.send(alice, alice.refer(f"<{bob.uri()}>"))
    maps = parse(invite_for(sent, bob).body).media[0].get_attributes("rtpmap")
    assert [v.split(" ", 1)[1] for v in maps if "telephone-event" not in v] == ["PCMU/8000", "G722/8000"]


def test_window_dial_out_offers_the_bookings_codecs() -> None:
    w = WindowWorld(BookingIndex([booking(audio_codecs=("PCMU", "opus"))]), at=-timedelta(seconds=1))
    sent = invites(w.until(timedelta(0)))
    assert len(sent) == 3
    for inv in sent:
        maps = parse(inv.body).media[0].get_attributes("rtpmap")
        assert [v.split(" ", 1)[1] for v in maps if "telephone-event" not in v] == [
            "PCMU/8000",
            "opus/48000/2",
        ]


def test_codecs_for_cuts_a_conferences_list_to_what_runs() -> None:
    cfg = FocusConfig(audio_codecs=("PCMU", "PCMA"), runnable_codecs=("PCMU", "PCMA", "G722"))
    assert cfg.codecs_for(ConferencePolicy()) == ("PCMU", "PCMA")
    assert cfg.codecs_for(ConferencePolicy(audio_codecs=("opus", "G722"))) == ("G722",)
    assert cfg.codecs_for(ConferencePolicy(audio_codecs=("opus",))) == ("PCMU", "PCMA")


def test_the_bookings_list_is_the_whole_choice_an_offer_without_it_is_488(tmp_path: Path) -> None:
    w = World(tmp_path, audio_codecs=("G722",))
    alice = w.h.ua("alice")
    assert w.h.call(alice, f"sip:weekly@{FOCUS_HOST}", offer(PCMU, TE8)).status == 488
