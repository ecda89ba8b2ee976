"""Media recovery at the focus (imsconf.focus.recovery), sans-I/O on the fake clock of the focus Harness.

The separate mixer is lost (``MixerLost``) and a mixer comes back (``MixerReady``): every live leg is made
again on it with a new send key and the participant is moved by a re-INVITE of the focus; a refusal ends
the leg; new calls meanwhile get 503 with Retry-After; group conferences start a fresh group epoch.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest
from helpers import (
    FACTORY,
    UA,
    Harness,
    Sent,
    answer_crypto,
    answer_to,
    new_key,
    requests,
    responses,
    sdp_offer,
)
from test_keying import GroupMedia

from imsconf.app.focus_wiring import FocusOptions
from imsconf.conference.eventinfo import KeyScope
from imsconf.focus.recovery import moved_sdp
from imsconf.keys import DownlinkMode, KeyManagerConfig, RekeyPolicy
from imsconf.media.control import LegPorts
from imsconf.media.events import GroupStreamConfirmed, MediaEngineError, MixerLost, MixerReady
from imsconf.sdp.sdes import CryptoAttribute
from imsconf.sdp.session import MediaDescription, SessionDescription
from imsconf.sip.message import Request


class MixerMedia(GroupMedia):
    """The recording MRFC with a link that can go down: while down, allocations fail as the remote MRFC's
    do; a new mixer starts with no legs."""

    def __init__(self) -> None:
        super().__init__()
        self.up = True
        self.generation = 1

    def allocate_leg(self, conference_id: str, leg_id: str, rtcp_mux: bool) -> LegPorts:
        if not self.up:
            raise MediaEngineError("the mixer is not connected")
        return super().allocate_leg(conference_id, leg_id, rtcp_mux)

    def lose(self) -> None:
        self.up = False
        self.legs.clear()  # the mixer's legs went with it
        self.modes.clear()
        self.epochs.clear()
        assert self.sink is not None
        self.sink(MixerLost("closed by the mixer"))

    def back(self) -> None:
        self.up = True
        self.generation += 1
        assert self.sink is not None
        self.sink(MixerReady(self.generation))


def harness(downlink: str = "per-participant") -> tuple[Harness, MixerMedia]:
    media = MixerMedia()
    options = FocusOptions(
        downlink=DownlinkMode.parse(downlink),
        rekey=RekeyPolicy.parse("both"),
        key_config=KeyManagerConfig(confirm_timeout=12.0),
    )
    h = Harness(control=media, options=options)
    h.media = media
    return h, media


KEYS: dict[str, bytes] = {}
OUT: list[Sent] = []  # what the focus sent after the ACKs (key re-INVITEs in group conferences)


def join(h: Harness, user: str, ruri: str) -> UA:
    ua = h.ua(user)
    KEYS[user] = new_key()
    resp = h.call(ua, ruri, sdp_offer(key=KEYS[user], port=4000 + 2 * len(KEYS)))
    assert resp.status == 200, (resp.status, resp.reason)
    OUT.extend(h.send(ua, ua.ack()))
    return ua


def settle(h: Harness, uas: list[UA], rounds: int = 10) -> None:
    """Every phone answers every re-INVITE of the focus with 200, until the focus sends no more."""
    by_peer = {ua.peer: ua for ua in uas}
    for _ in range(rounds):
        out = OUT[:] + h.advance(0.05)
        OUT.clear()
        invites = requests(out, "INVITE")
        if not invites:
            return
        for inv, peer in invites:
            OUT.extend(answer(h, by_peer[peer], inv))


def leg_of(h: Harness, ua: UA) -> str:
    return next(leg.leg_id for leg in h.focus.legs.values() if leg.user == ua.aor)


def reinvite_to(sent: list[Sent], ua: UA) -> Request:
    mine = [r for r, p in requests(sent, "INVITE") if p == ua.peer]
    assert len(mine) == 1, [str(m).split("\r\n", 1)[0] for m, _ in sent]
    return mine[0]


def answer(h: Harness, ua: UA, invite: Request, status: int = 200) -> list[Sent]:
    body = sdp_offer(key=KEYS[ua.user], port=4000, version=ua.cseq + 10) if status == 200 else b""
    return h.send(ua, answer_to(invite, status, body=body))


def audio_port(body: bytes) -> int:
    sd = SessionDescription.parse(body)
    return sd.media[0].port


def conference(h: Harness) -> tuple[list[UA], str]:
    owner = h.ua("alice")
    KEYS["alice"] = new_key()
    resp = h.call(owner, FACTORY, sdp_offer(key=KEYS["alice"]))
    assert resp.status == 200
    OUT.clear()
    OUT.extend(h.send(owner, owner.ack()))
    uri = owner.remote_target
    assert uri is not None
    return [owner, join(h, "bob", uri), join(h, "carol", uri)], uri


def test_every_leg_moves_to_the_new_mixer_with_new_keys() -> None:
    h, media = harness()
    uas, uri = conference(h)
    legs = [leg_of(h, ua) for ua in uas]
    before = {lid: (media.legs[lid].tx_key, media.legs[lid].ports.rtp_port) for lid in legs}
    version = {lid: h.focus.legs[lid].media.version for lid in legs}

    media.lose()
    assert h.advance(0.5) == []  # nothing to tell the phones while there is no mixer
    assert all(h.focus.legs[lid].media.ports is None for lid in legs)
    assert all(h.focus.legs[lid].media.tx_key is None for lid in legs)  # wiped

    media.back()
    sent = h.advance(0.01)
    for ua, lid in zip(uas, legs, strict=True):
        inv = reinvite_to(sent, ua)
        rec = media.legs[lid]
        assert rec.configured and rec.codec_name == "PCMU" and rec.codec_pt == 0
        assert rec.rx_key == KEYS[ua.user]  # the phone keeps its key
        offered = answer_crypto(inv.body)
        assert offered.key_salt == rec.tx_key  # the key in the offer is the new mixer's send key
        assert rec.tx_key != before[lid][0]  # never the old one
        assert audio_port(inv.body) == rec.ports.rtp_port != before[lid][1]
        sd = SessionDescription.parse(inv.body)
        assert sd.origin.session_version == version[lid] + 1
        out = answer(h, ua, inv)
        assert [r.method for r, _ in requests(out, "ACK")] == ["ACK"]
    conf = h.conference(uri)
    assert len(conf) == 3
    assert h.focus.parts.recovery is not None
    assert h.focus.parts.recovery.counters["moved"] == 3
    # the moved SDP is the leg's last one: an offerless re-INVITE gets it
    ua = uas[1]
    resp = h.final(h.send(ua, ua.reinvite()))
    assert resp.status == 200 and audio_port(resp.body) == media.legs[legs[1]].ports.rtp_port


def test_a_refused_move_ends_the_leg_and_the_others_stay() -> None:
    h, media = harness()
    uas, uri = conference(h)
    media.lose()
    h.advance(0.1)
    media.back()
    sent = h.advance(0.01)
    out = answer(h, uas[1], reinvite_to(sent, uas[1]), status=488)
    byes = requests(out, "BYE")
    assert [p for _, p in byes] == [uas[1].peer]
    answer(h, uas[0], reinvite_to(sent, uas[0]))
    answer(h, uas[2], reinvite_to(sent, uas[2]))
    conf = h.conference(uri)
    assert {p.user for p in conf.participants} == {uas[0].aor, uas[2].aor}


def test_a_move_that_times_out_ends_the_leg() -> None:
    h, media = harness()
    conference(h)
    media.lose()
    h.advance(0.1)
    media.back()
    h.advance(0.01)
    sent = h.advance(40.0)  # nobody answers: Timer B
    assert len(requests(sent, "BYE")) == 3
    assert h.focus.legs == {}


def test_new_calls_during_the_outage_get_503_with_retry_after() -> None:
    h, media = harness()
    uas, uri = conference(h)
    media.lose()
    h.advance(0.1)
    late = h.ua("dave")
    resp = h.call(late, uri, sdp_offer())
    assert resp.status == 503 and resp.headers.get("Retry-After")
    resp = h.call(h.ua("erin"), FACTORY, sdp_offer())
    assert resp.status == 503 and resp.headers.get("Retry-After")
    # a participant's own re-INVITE is refused the same way, and its call stays
    ua = uas[1]
    resp = h.final(h.send(ua, ua.reinvite(sdp_offer(key=KEYS[ua.user]))))
    assert resp.status == 503
    assert len(h.conference(uri)) == 3
    media.back()
    sent = h.advance(0.01)
    for ua in uas:
        answer(h, ua, reinvite_to(sent, ua))
    join(h, "dave", uri)  # after the recovery a new participant joins
    assert len(h.conference(uri)) == 4


def test_a_move_waits_for_ports_of_the_new_mixer() -> None:
    h, media = harness()
    conference(h)
    media.lose()
    h.advance(0.1)
    real = media.allocate_leg
    budget = [1]

    def scarce(conference_id: str, leg_id: str, rtcp_mux: bool) -> LegPorts:
        if budget[0] <= 0:
            raise MediaEngineError("the mixer has no free media ports")
        budget[0] -= 1
        return real(conference_id, leg_id, rtcp_mux)

    media.allocate_leg = scarce  # type: ignore[method-assign]
    media.back()
    sent = h.advance(0.01)
    assert len(requests(sent, "INVITE")) == 1
    budget[0] = 5
    sent = h.advance(0.5)
    assert len(requests(sent, "INVITE")) == 2


def test_lost_again_before_the_answer_moves_again_on_the_next_mixer() -> None:
    h, media = harness()
    uas, _ = conference(h)
    lid = leg_of(h, uas[0])
    media.lose()
    h.advance(0.1)
    media.back()
    first = reinvite_to(h.advance(0.01), uas[0])
    media.lose()
    h.advance(0.1)
    out = answer(h, uas[0], first)  # the answer for the mixer that is gone again: ACKed, nothing else
    assert [r.method for r, _ in requests(out, "ACK")] == ["ACK"]
    assert h.focus.legs[lid].media.ports is None
    media.back()
    second = reinvite_to(h.advance(0.01), uas[0])
    assert answer_crypto(second.body).key_salt != answer_crypto(first.body).key_salt
    answer(h, uas[0], second)
    assert h.focus.legs[lid].media.ports == media.legs[lid].ports


@pytest.mark.parametrize("downlink", ["group"])
def test_group_conferences_start_a_fresh_epoch_on_the_new_mixer(downlink: str) -> None:
    h, media = harness(downlink)
    uas, uri = conference(h)
    settle(h, uas)
    assert media.epochs  # a group epoch on the first mixer
    old_keys = {k for k, _ in media.epochs.values()}
    legs = [leg_of(h, ua) for ua in uas]
    epoch = max(e for _, e in media.epochs)
    assert media.sink is not None
    for lid in legs:  # the mixer's evidence: every listener decrypts the common stream
        media.sink(GroupStreamConfirmed(lid, epoch))
    settle(h, uas)
    assert {h.focus.keying.scope(lid) for lid in legs} == {KeyScope.GROUP}
    media.lose()
    h.advance(0.1)
    assert h.focus.keying.managers == {}
    # back on their own keys, and the event package says so
    assert {h.focus.keying.scope(lid) for lid in legs} == {KeyScope.PER_PARTICIPANT}
    assert {h.focus.table.details[lid].key_scope for lid in legs} == {KeyScope.PER_PARTICIPANT}
    media.back()
    sent = h.advance(0.01)
    for ua in uas:
        inv = reinvite_to(sent, ua)
        assert answer_crypto(inv.body).key_salt not in old_keys
        OUT.extend(answer(h, ua, inv))
    settle(h, uas)
    assert media.modes == {uri.split(":", 1)[1].split("@", 1)[0][5:]: "group"}
    assert media.epochs and min(e for _, e in media.epochs) == 1  # a fresh epoch on the new mixer
    assert not ({k for k, _ in media.epochs.values()} & old_keys)
    mgr = next(iter(h.focus.keying.managers.values()))
    assert len(mgr.snapshot().listeners) == 3
    assert responses(sent) == []


def test_a_mixer_that_never_has_ports_ends_the_legs_after_a_while() -> None:
    h, media = harness()
    uas, _ = conference(h)
    media.lose()
    h.advance(0.1)

    def none(conference_id: str, leg_id: str, rtcp_mux: bool) -> LegPorts:
        raise MediaEngineError("the mixer has no free media ports")

    media.allocate_leg = none  # type: ignore[method-assign]
    media.back()
    assert requests(h.advance(5.0), "BYE") == []  # still trying
    sent = h.advance(10.0)
    assert {p for _, p in requests(sent, "BYE")} == {ua.peer for ua in uas}
    assert h.focus.legs == {}


def test_a_call_made_on_the_new_mixer_before_the_loss_was_handled_is_moved_too() -> None:
    """The loss and the reconnection are both queued for the focus's next timer; a call that arrives in
    between is made on the new mixer, and is then released and moved like the others (no leg is left)."""
    h, media = harness()
    uas, uri = conference(h)
    media.legs.clear()
    media.up = True  # reconnected at once: the loss and the ready are queued together
    assert media.sink is not None
    media.sink(MixerLost("closed by the mixer"))
    media.sink(MixerReady(2))
    dave = h.ua("dave")
    KEYS["dave"] = new_key()
    resp = h.call(dave, uri, sdp_offer(key=KEYS["dave"]))  # handled before the queued work
    assert resp.status == 200
    sent = h.send(dave, dave.ack())
    sent += h.advance(0.01)
    for ua in [*uas, dave]:
        answer(h, ua, reinvite_to(sent, ua))
    assert set(media.legs) == {leg_of(h, ua) for ua in [*uas, dave]}
    assert all(rec.configured for rec in media.legs.values())


def test_moved_sdp_moves_the_audio_stream_only() -> None:
    sdp = (
        b"v=0\r\no=- 7 3 IN IP4 198.18.0.1\r\ns=imsconf\r\nc=IN IP4 198.18.0.1\r\nt=0 0\r\n"
        b"m=audio 30000 RTP/SAVP 0\r\na=rtcp:30001\r\na=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:old\r\n"
        b"a=sendrecv\r\nm=video 30010 RTP/SAVP 96\r\na=rtcp:30011\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 "
        b"inline:video\r\n"
    )
    crypto = CryptoAttribute.from_key(2, "AES_CM_128_HMAC_SHA1_80", bytes(range(30)))
    out = moved_sdp(sdp, 4, LegPorts("198.18.0.1", 41000, 41001), False, crypto).decode()
    assert "o=- 7 4 IN IP4" in out
    assert "m=audio 41000 RTP/SAVP 0\r\na=rtcp:41001\r\n" in out
    assert f"a=crypto:{crypto.to_sdp()}\r\n" in out and "inline:old" not in out
    assert "m=video 30010 RTP/SAVP 96\r\na=rtcp:30011\r\n" in out and "inline:video" in out
    muxed = moved_sdp(sdp, 5, LegPorts("198.18.0.1", 41002, 41002), True, None).decode()
    assert "m=audio 41002 RTP/SAVP 0\r\na=sendrecv" in muxed and "inline:old" not in muxed


def test_an_answer_for_the_mixer_before_last_is_not_taken_for_the_move_to_the_new_one() -> None:
    """Lost, back (move 1 out), lost again, back (move 2 waits for move 1's answer): the answer to move 1
    is ACKed and ignored, then move 2 goes out and its answer completes the move."""
    h, media = harness()
    uas, _ = conference(h)
    ua = uas[1]
    lid = leg_of(h, ua)
    media.lose()
    h.advance(0.1)
    media.back()
    first = reinvite_to(h.advance(0.01), ua)
    media.lose()
    h.advance(0.1)
    media.back()
    assert [r for r, p in requests(h.advance(0.01), "INVITE") if p == ua.peer] == []  # waits for move 1
    out = answer(h, ua, first)
    assert [r.method for r, _ in requests(out, "ACK")] == ["ACK"]
    second = reinvite_to(out, ua)  # move 2 follows at once
    recovery = h.focus.parts.recovery
    assert recovery is not None and lid in recovery.moving
    assert answer_crypto(second.body).key_salt == media.legs[lid].tx_key != answer_crypto(first.body).key_salt
    answer(h, ua, second)
    assert lid not in recovery.moving and h.focus.legs[lid].media.ports == media.legs[lid].ports
    assert h.focus.legs[lid].media.answer == second.body


class VideoMixerMedia(MixerMedia):
    """:class:`MixerMedia` with presentation video legs recorded: their ports, send keys and the source."""

    def __init__(self) -> None:
        super().__init__()
        self.video: dict[str, tuple[LegPorts, bytes | None]] = {}
        self.video_ports: dict[str, LegPorts] = {}
        self.sources: dict[str, str | None] = {}

    def allocate_video(self, conference_id: str, leg_id: str, rtcp_mux: bool) -> LegPorts:
        if not self.up:
            raise MediaEngineError("the mixer has no free media ports")
        ports = super().allocate_video(conference_id, leg_id, rtcp_mux)
        self.video_ports[leg_id] = ports
        return ports

    def configure_video(self, leg_id: str, **kw: Any) -> None:
        tx = kw["tx_keys"]
        self.video[leg_id] = (self.video_ports[leg_id], tx.key_salt() if tx is not None else None)

    def release_video(self, leg_id: str) -> None:
        self.video.pop(leg_id, None)
        self.video_ports.pop(leg_id, None)

    def set_video_source(self, conference_id: str, leg_id: str | None) -> None:
        self.sources[conference_id] = leg_id

    def lose(self) -> None:
        self.video.clear()
        self.video_ports.clear()
        self.sources.clear()
        super().lose()


def video_offer(key: bytes, vkey: bytes, port: int) -> bytes:
    audio = sdp_offer(key=key, port=port).decode()
    video = (
        f"m=video {port + 100} RTP/SAVP 96\r\na=rtpmap:96 H264/90000\r\n"
        f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{base64.b64encode(vkey).decode()}\r\na=sendrecv\r\n"
    )
    return (audio + video).encode()


def video_section(body: bytes) -> MediaDescription:
    return next(m for m in SessionDescription.parse(body).media if m.media == "video")


def test_presentation_video_moves_with_the_audio_in_the_same_reinvite() -> None:
    media = VideoMixerMedia()
    h = Harness(control=media, options=FocusOptions())
    h.media = media
    owner = h.ua("alice")
    KEYS["alice"] = new_key()
    resp = h.call(owner, FACTORY, sdp_offer(key=KEYS["alice"]))
    assert resp.status == 200
    h.send(owner, owner.ack())
    uri = owner.remote_target
    assert uri is not None
    bob = h.ua("bob")
    KEYS["bob"] = new_key()
    resp = h.call(bob, uri, video_offer(KEYS["bob"], new_key(), 4100))
    assert resp.status == 200
    h.send(bob, bob.ack())
    lid = leg_of(h, bob)
    first = video_section(resp.body)
    old_ports, old_key = media.video[lid]
    assert first.port == old_ports.rtp_port != 0 and old_key is not None

    media.lose()
    h.advance(0.5)
    presentation = h.focus.parts.presentation
    assert presentation.legs[lid].tx_key is None  # wiped with the audio's
    media.back()
    sent = h.advance(0.01)
    inv = reinvite_to(sent, bob)  # one re-INVITE moves both streams
    assert [p for _, p in requests(sent, "INVITE")].count(bob.peer) == 1
    new_ports, new_key_salt = media.video[lid]
    moved = video_section(inv.body)
    assert moved.port == new_ports.rtp_port != old_ports.rtp_port
    assert new_key_salt is not None and new_key_salt != old_key
    crypto = CryptoAttribute.parse(moved.get_attributes("crypto")[0])
    assert crypto.key_salt == new_key_salt  # the offer carries the new mixer's video send key
    assert audio_port(inv.body) == media.legs[lid].ports.rtp_port
    answer(h, bob, inv)
    recovery = h.focus.parts.recovery
    assert recovery is not None and recovery.counters["moved"] == 1 and lid not in recovery.moving
    assert not presentation.legs[lid].lost
    # the moved SDP is the leg's last one: an offerless re-INVITE gets both new streams
    resp = h.final(h.send(bob, bob.reinvite()))
    assert resp.status == 200 and video_section(resp.body).port == new_ports.rtp_port
