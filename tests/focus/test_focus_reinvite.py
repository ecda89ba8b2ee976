"""re-INVITE and UPDATE: hold, resume, new keys, offerless requests, glare (491) and unknown dialogs (481)."""

from __future__ import annotations

import pytest
from helpers import (
    FACTORY,
    UA,
    Harness,
    answer_crypto,
    answer_direction,
    new_key,
    responses,
    sdp_offer,
)

from imsconf.conference.participant import ParticipantStatus
from imsconf.sdp.direction import Direction
from imsconf.sdp.session import SessionDescription


def _setup(h: Harness, key: bytes | None = None) -> tuple[UA, str, str]:
    """alice creates a conference; returns alice, the conference URI and alice's leg id."""
    alice = h.ua("alice", "tls")
    _, uri = h.create(alice, sdp_offer(key=key))
    conf = h.conference(uri)
    return alice, uri, f"{conf.conf_id}.{conf.participants[0].participant_id}"


def _modify(h: Harness, ua: UA, method: str, body: bytes = b"") -> bytes:
    """Send a re-INVITE (and ACK it) or an UPDATE; returns the body of the 200."""
    data = ua.reinvite(body) if method == "INVITE" else ua.update(body)
    resp = h.final(h.send(ua, data))
    assert resp.status == 200, (resp.status, resp.reason)
    assert resp.cseq.method == method
    if method == "INVITE":
        assert h.send(ua, ua.ack()) == []
    return resp.body


@pytest.mark.parametrize("method", ["INVITE", "UPDATE"])
def test_hold_and_resume(method: str) -> None:
    h = Harness()
    alice, uri, leg_id = _setup(h)
    conf = h.conference(uri)
    pid = conf.participants[0].participant_id
    key = new_key()
    body = _modify(h, alice, method, sdp_offer(key=key, direction="sendonly", version=2))
    assert answer_direction(body) == "recvonly"
    assert conf.participant(pid).status is ParticipantStatus.ON_HOLD
    assert conf.participant(pid).media.direction is Direction.SENDONLY  # type: ignore[union-attr]
    assert h.media.legs[leg_id].direction is Direction.RECVONLY
    body = _modify(h, alice, method, sdp_offer(key=key, direction="inactive", version=3))
    assert answer_direction(body) == "inactive"
    assert h.media.legs[leg_id].direction is Direction.INACTIVE
    assert conf.participant(pid).status is ParticipantStatus.ON_HOLD
    body = _modify(h, alice, method, sdp_offer(key=key, direction="sendrecv", version=4))
    assert answer_direction(body) == "sendrecv"
    assert conf.participant(pid).status is ParticipantStatus.CONNECTED
    assert h.media.legs[leg_id].direction is Direction.SENDRECV
    assert h.media.legs[leg_id].rx_updates == 1  # the key changed once (first re-offer)


@pytest.mark.parametrize("method", ["INVITE", "UPDATE"])
def test_new_remote_key_updates_rx_only(method: str) -> None:
    h = Harness()
    first = new_key()
    alice, _, leg_id = _setup(h, key=first)
    leg = h.media.legs[leg_id]
    tx_before = leg.tx_key
    assert leg.rx_key == first
    second = new_key()
    body = _modify(h, alice, method, sdp_offer(key=second, version=2))
    assert leg.rx_key == second
    assert leg.tx_key == tx_before
    assert leg.tx_updates == 0
    assert answer_crypto(body).key_salt == tx_before  # our key in the new answer is unchanged
    # the same key offered again: no rekey of the receiver
    _modify(h, alice, method, sdp_offer(key=second, version=3))
    assert leg.rx_updates == 1


def test_codec_change() -> None:
    h = Harness()
    alice, _, leg_id = _setup(h)
    # our preference (FocusConfig.audio_codecs) decides among the offered codecs: PCMU before PCMA, so
    # the re-offer drops PCMU to change the codec
    offer = sdp_offer(version=2).replace(b"RTP/SAVP 0 8 101", b"RTP/SAVP 8 101")
    body = _modify(h, alice, "INVITE", offer)
    assert SessionDescription.parse(body).media[0].formats[0] == "8"
    assert h.media.legs[leg_id].codec_name == "PCMA"
    assert h.media.legs[leg_id].codec_pt == 8


def test_new_media_address() -> None:
    h = Harness()
    alice, _, leg_id = _setup(h)
    _modify(h, alice, "UPDATE", sdp_offer(host="192.0.2.99", port=5000, version=2))
    assert h.media.legs[leg_id].remote_rtp == ("192.0.2.99", 5000)


def test_offerless_reinvite_gets_our_last_sdp() -> None:
    h = Harness()
    alice = h.ua("alice", "tls")
    resp, _ = h.create(alice)
    calls = list(h.media.calls)
    data = alice.reinvite()
    r = h.final(h.send(alice, data))
    assert r.status == 200
    assert r.body == resp.body
    assert r.headers.get("Content-Type") == "application/sdp"
    assert h.send(alice, alice.ack()) == []
    assert h.media.calls == calls  # nothing changed in the mixer


def test_update_without_offer_gets_no_sdp() -> None:
    """RFC 3311 §5.2: a 2xx to an UPDATE carries an answer only when the UPDATE carried an offer."""
    h = Harness()
    alice, _, _ = _setup(h)
    r = h.final(h.send(alice, alice.update()))
    assert r.status == 200
    assert r.body == b""
    assert r.headers.get("Content-Type") is None


def test_refused_reoffer_keeps_the_session() -> None:
    h = Harness()
    alice, uri, leg_id = _setup(h)
    leg = h.media.legs[leg_id]
    before = (leg.tx_key, leg.rx_key, leg.direction)
    r = h.final(h.send(alice, alice.reinvite(sdp_offer(srtp=False, version=2))))
    assert r.status == 488
    assert (leg.tx_key, leg.rx_key, leg.direction) == before
    assert len(h.conference(uri)) == 1
    # the dialog survives: a good re-INVITE afterwards works
    _modify(h, alice, "INVITE", sdp_offer(version=3))


def test_broken_sdp_in_reinvite_gets_400() -> None:
    h = Harness()
    alice, _, _ = _setup(h)
    r = h.final(h.send(alice, alice.reinvite(b"v=0\r\nnonsense\r\n")))
    assert r.status == 400
    assert r.reason.startswith("Bad Request")


def test_reinvite_contact_is_the_conference_uri_with_isfocus() -> None:
    h = Harness()
    alice, uri, _ = _setup(h)
    r = h.final(h.send(alice, alice.reinvite(sdp_offer(version=2))))
    assert r.headers.get("Contact") == f"<{uri}>;isfocus"


def test_reinvite_over_udp_retransmitted_until_ack() -> None:
    h = Harness()
    h.config.allow_sdes_over_insecure = True
    alice = h.ua("alice", "udp")
    h.create(alice)
    r = h.final(h.send(alice, alice.reinvite(sdp_offer(version=2))))
    again = responses(h.advance(0.5), 200)
    assert [bytes(m) for m, _ in again] == [bytes(r)]
    h.send(alice, alice.ack())
    assert responses(h.advance(10), 200) == []
    assert len(h.focus.legs) == 1


# ---- 481 and 491 ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["BYE", "INVITE", "UPDATE", "INFO"])
def test_request_in_unknown_dialog_gets_481(method: str) -> None:
    h = Harness()
    alice, _, _ = _setup(h)
    ghost = UA("ghost", alice.peer, to_tag="nosuchtag", remote_target=alice.remote_target, ruri=FACTORY)
    if method == "BYE":
        data = ghost.bye()
    elif method == "INVITE":
        data = ghost.reinvite(sdp_offer())
    elif method == "UPDATE":
        data = ghost.update(sdp_offer())
    else:
        ghost.cseq += 1
        data = ghost.request("INFO", ghost.target())
    r = h.final(h.send(ghost, data))
    assert r.status == 481
    assert len(h.focus.legs) == 1


def test_bye_without_to_tag_gets_481() -> None:
    h = Harness()
    alice, _, _ = _setup(h)
    tag, alice.to_tag = alice.to_tag, None
    r = h.final(h.send(alice, alice.bye()))
    alice.to_tag = tag
    assert r.status == 481
    assert len(h.focus.legs) == 1


def test_reinvite_while_previous_awaits_ack_gets_491() -> None:
    h = Harness()
    alice = h.ua("alice", "tls")
    h.call(alice, FACTORY)  # no ACK yet
    r = h.final(h.send(alice, alice.reinvite(sdp_offer(version=2))))
    assert r.status == 491
    h.send(alice, alice.ack(1))
    r = h.final(h.send(alice, alice.reinvite(sdp_offer(version=2))))
    assert r.status == 200
    # the second re-INVITE is not ACKed yet: a third one is refused
    first = alice.last_invite_cseq
    r3 = h.final(h.send(alice, alice.reinvite(sdp_offer(version=3))))
    assert r3.status == 491
    h.send(alice, alice.ack(first))
    r4 = h.final(h.send(alice, alice.reinvite(sdp_offer(version=3))))
    assert r4.status == 200


def test_stale_ack_does_not_stop_the_reinvite_retransmissions() -> None:
    """An ACK with the CSeq of an older INVITE (a late retransmission) does not acknowledge the newer 2xx."""
    h = Harness()
    h.config.allow_sdes_over_insecure = True
    alice = h.ua("alice", "udp")
    h.create(alice)
    old_ack = alice.ack(1)
    r = h.final(h.send(alice, alice.reinvite(sdp_offer(version=2))))
    h.send(alice, old_ack)
    again = responses(h.advance(0.5), 200)
    assert [bytes(m) for m, _ in again] == [bytes(r)]


def test_dialog_tables_are_emptied_after_reinvites() -> None:
    h = Harness()
    alice, _, _ = _setup(h)
    _modify(h, alice, "INVITE", sdp_offer(version=2))
    _modify(h, alice, "INVITE", sdp_offer(version=3))
    h.send(alice, alice.bye())
    assert h.focus.legs == {}
    assert h.focus.table.by_invite == {}
    assert h.focus.table.by_dialog == {}
