"""Conference instant messages, pager mode (RFC 3428) with CPIM (RFC 3862): the focus's relay, sans I/O."""

from __future__ import annotations

import logging
import re

import pytest
from control_helpers import Phone, answer_sdp, invite_for, ok_all
from helpers import DOMAIN, FACTORY, UA, Harness, Sent, answer_to, requests, responses, sdp_offer

from imsconf.focus.config import FocusConfig
from imsconf.focus.messaging import ANONYMOUS_SENDER, COMPOSING, MESSAGE_TYPES, MessagingCounters
from imsconf.im.cpim import CpimMessage, parse_cpim, render_cpim
from imsconf.sip.message import Request
from imsconf.sip.peer import Peer

ALLOW = ("Allow", "INVITE, ACK, BYE, CANCEL, OPTIONS, MESSAGE")
ALLOW_NO_MESSAGE = ("Allow", "INVITE, ACK, BYE, CANCEL")
COMPOSING_BODY = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing"><state>active</state>'
    b"<contenttype>text/plain</contenttype></isComposing>"
)


class Room:
    """A conference with alice (its creator), bob and carol, all over TLS, all allowing MESSAGE."""

    def __init__(self, h: Harness | None = None, *, bob_extra: tuple[tuple[str, str], ...] = ()) -> None:
        self.h = h or Harness()
        self.alice = self.h.ua("alice")
        self.h.join(self.alice, FACTORY, extra=(ALLOW,))
        assert self.alice.remote_target is not None
        self.uri = self.alice.remote_target.split(";")[0]  # the focus's Contact (address and port)
        self.conf_uri = self.h.conference(self.uri).uri  # the conference URI itself
        self.bob = self.h.ua("bob")
        self.h.join(self.bob, self.uri, extra=bob_extra or (ALLOW,))
        self.carol = self.h.ua("carol")
        self.h.join(self.carol, self.uri, extra=(ALLOW,))
        self.h.take()

    @property
    def counters(self) -> MessagingCounters:
        return self.h.focus.parts.messaging.counters

    def send(self, ua: UA, data: bytes) -> list[Sent]:
        return self.h.send(ua, data)


def relayed(sent: list[Sent]) -> dict[str, tuple[Request, CpimMessage]]:
    """The MESSAGEs the focus sent, by the recipient's user, with their CPIM bodies."""
    out: dict[str, tuple[Request, CpimMessage]] = {}
    for req, _ in requests(sent, "MESSAGE"):
        assert req.headers.get("Content-Type") == "message/cpim"
        user = req.to.uri.user
        assert user is not None and user not in out
        out[user] = (req, parse_cpim(req.body))
    return out


def status(sent: list[Sent]) -> tuple[int, str]:
    (resp,) = [r for r, _ in responses(sent) if r.cseq.method == "MESSAGE"]
    return resp.status, resp.reason


def test_allow_and_accept_list_message() -> None:
    r = Room()
    resp = r.h.call(r.h.ua("dave"), r.uri)
    assert "MESSAGE" in [m.upper() for m in resp.headers.tokens("Allow")]
    caps = r.h.ep.config.caps
    assert "MESSAGE" in caps.allow and all(t in caps.accept for t in MESSAGE_TYPES)


def test_in_dialog_text_reaches_every_other_participant_wrapped_in_cpim() -> None:
    r = Room()
    r.h.focus.parts.messaging.wall_clock_offset = 1_700_000_000.0 - r.h.now
    sent = r.send(r.alice, r.alice.message(b"hello, world"))
    assert status(sent) == (200, "OK")
    got = relayed(sent)
    assert set(got) == {"bob", "carol"}
    for user, ua in (("bob", r.bob), ("carol", r.carol)):
        req, cpim = got[user]
        # in the recipient's own dialog with the focus
        assert req.call_id == ua.call_id and req.to.tag == ua.from_tag and req.from_.tag == ua.to_tag
        assert cpim.from_ == "<sip:alice@example.net>"
        assert cpim.to == (f"<{r.conf_uri}>",)
        assert cpim.datetime == "2023-11-14T22:13:20Z"
        assert cpim.content_type == "text/plain"
        assert cpim.body == b"hello, world"
    assert r.counters.received == 1 and r.counters.sent == 2


def test_out_of_dialog_from_a_participant() -> None:
    r = Room()
    pager = UA("bob", r.bob.peer)  # bob again, outside his INVITE dialog
    sent = r.send(pager, pager.message(b"hi all", uri=r.uri))
    (resp,) = [m for m, _ in responses(sent)]
    assert resp.status == 200 and resp.to.tag
    got = relayed(sent)
    assert set(got) == {"alice", "carol"}
    assert got["alice"][1].from_ == "<sip:bob@example.net>"


def test_display_name_of_the_sender_is_shown() -> None:
    h = Harness()
    r = Room(h)
    dave = h.ua("dave")
    data = dave.invite(r.uri, sdp_offer(), extra=(ALLOW,)).replace(
        b"From: <sip:dave@", b'From: "Dave \\"D\\" Jones" <sip:dave@'
    )
    resp = h.final(h.send(dave, data))
    dave.learn(resp)
    h.send(dave, dave.ack())
    got = relayed(h.send(dave, dave.message(b"x")))
    assert got["bob"][1].from_ == '"Dave \\"D\\" Jones" <sip:dave@example.net>'


def test_privacy_hides_the_sender_from_all_but_the_privileged() -> None:
    r = Room(bob_extra=(ALLOW, ("Privacy", "id")))
    got = relayed(r.send(r.bob, r.bob.message(b"who am I")))
    assert got["carol"][1].from_ == ANONYMOUS_SENDER
    assert got["alice"][1].from_ == "<sip:bob@example.net>"  # the owner sees every identity


def test_a_cpim_body_is_rewrapped_with_the_true_sender() -> None:
    r = Room()
    forged = CpimMessage(
        from_='"Boss" <sip:boss@example.net>',
        to=(f"<{r.conf_uri}>",),
        datetime="2000-01-01T00:00:00Z",
        subject="urgent",
        ns=("X <mid:x@y>",),
        other_headers=(("X.Evil", "1"),),
        content_type="text/plain; charset=utf-8",
        content_headers=(("Content-Language", "fr"),),
        body="élan".encode(),
    )
    sent = r.send(r.carol, r.carol.message(render_cpim(forged), "message/cpim"))
    assert status(sent)[0] == 200
    cpim = relayed(sent)["bob"][1]
    assert cpim.from_ == "<sip:carol@example.net>"
    assert cpim.datetime != "2000-01-01T00:00:00Z"
    assert (cpim.subject, cpim.ns, cpim.other_headers) == ("urgent", (), ())
    assert cpim.content_type == "text/plain; charset=utf-8"
    assert cpim.content_headers == (("Content-Language", "fr"),)
    assert cpim.body == "élan".encode()


def _cpim_to(r: Room, *to: str, body: bytes = b"psst") -> bytes:
    msg = CpimMessage("<sip:whoever@x>", to, None, None, (), (), "text/plain", (), body)
    return render_cpim(msg)


def test_cpim_to_one_participant_makes_it_private() -> None:
    r = Room()
    sent = r.send(r.alice, r.alice.message(_cpim_to(r, "Bob <sip:bob@example.net>"), "message/cpim"))
    assert status(sent)[0] == 200
    got = relayed(sent)
    assert set(got) == {"bob"}
    assert got["bob"][1].to == ("<sip:bob@example.net>",)
    assert got["bob"][1].body == b"psst"


def test_cpim_to_the_conference_stays_public() -> None:
    r = Room()
    got = relayed(r.send(r.alice, r.alice.message(_cpim_to(r, f"<{r.conf_uri}>"), "message/cpim")))
    assert set(got) == {"bob", "carol"}
    assert got["bob"][1].to == (f"<{r.conf_uri}>",)


def test_cpim_to_someone_not_here_is_404() -> None:
    r = Room()
    sent = r.send(r.alice, r.alice.message(_cpim_to(r, "<sip:zed@example.net>"), "message/cpim"))
    assert status(sent)[0] == 404
    assert relayed(sent) == {}


def test_a_broken_cpim_body_is_400_with_the_reason() -> None:
    r = Room()
    sent = r.send(
        r.alice, r.alice.message(b"From: nobody\r\n\r\nContent-Type: text/plain\r\n\r\nx", "message/cpim")
    )
    code, reason = status(sent)
    assert code == 400 and "bad From address" in reason


def test_only_participants_may_send() -> None:
    r = Room()
    stranger = r.h.ua("mallory")
    sent = r.send(stranger, stranger.message(b"spam", uri=r.uri))
    assert status(sent) == (403, "Forbidden (Not A Participant)")
    assert relayed(sent) == {}
    assert r.counters.refused == 1


def test_unknown_conference_is_404_and_unknown_dialog_481() -> None:
    r = Room()
    x = r.h.ua("alice")
    assert status(r.send(x, x.message(b"x", uri=f"sip:conf-nothere@{DOMAIN}")))[0] == 404
    ghost = r.h.ua("bob")
    ghost.to_tag, ghost.remote_target, ghost.ruri = "nosuchtag", r.uri, r.uri
    assert status(r.send(ghost, ghost.message(b"x")))[0] == 481


def test_tls_is_required_unless_allowed() -> None:
    for allowed in (False, True):
        h = Harness(FocusConfig(domain=DOMAIN, media_host="198.18.0.1", allow_insecure_messages=allowed))
        r = Room(h)
        udp = h.ua("bob", transport="udp")
        sent = r.send(udp, udp.message(b"plain", uri=r.uri))
        if allowed:
            assert status(sent)[0] == 200 and set(relayed(sent)) == {"alice", "carol"}
        else:
            assert status(sent) == (403, "Forbidden (TLS Required)")
            assert relayed(sent) == {}


def test_size_cap_is_413() -> None:
    r = Room()
    assert r.h.config.max_message_bytes == 8192
    assert status(r.send(r.alice, r.alice.message(b"x" * 8192)))[0] == 200
    sent = r.send(r.alice, r.alice.message(b"x" * 8193))
    assert status(sent)[0] == 413 and relayed(sent) == {}


def test_empty_message_is_400() -> None:
    r = Room()
    assert status(r.send(r.alice, r.alice.message(b"")))[0] == 400


def test_other_content_types_get_415_with_accept() -> None:
    r = Room()
    sent = r.send(r.alice, r.alice.message(b"v=0\r\n", "application/sdp"))
    (resp,) = [m for m, _ in responses(sent)]
    assert resp.status == 415
    assert resp.headers.tokens("Accept") == list(MESSAGE_TYPES)
    # a CPIM wrapper around something else is refused the same way
    wrapped = CpimMessage("<sip:a@b>", (), None, None, (), (), "image/png", (), b"\x89PNG")
    sent = r.send(r.alice, r.alice.message(render_cpim(wrapped), "message/cpim"))
    assert status(sent)[0] == 415


def test_rate_cap_is_486_with_retry_after_and_refills() -> None:
    r = Room()
    for _ in range(r.h.config.message_burst):
        assert status(r.send(r.alice, r.alice.message(b"flood")))[0] == 200
    sent = r.send(r.alice, r.alice.message(b"one too many"))
    (resp,) = [m for m, _ in responses(sent)]
    assert resp.status == 486 and resp.headers.get("Retry-After") == "1"
    assert relayed(sent) == {}
    # the others are not limited by alice's bucket
    assert status(r.send(r.bob, r.bob.message(b"me too")))[0] == 200
    r.h.now += 1.0  # 5 tokens a second
    for _ in range(5):
        assert status(r.send(r.alice, r.alice.message(b"again")))[0] == 200
    assert status(r.send(r.alice, r.alice.message(b"again")))[0] == 486


def test_is_composing_is_relayed_but_not_counted_as_a_message() -> None:
    r = Room()
    for _ in range(r.h.config.message_burst):
        r.send(r.alice, r.alice.message(b"flood"))
    sent = r.send(r.alice, r.alice.message(COMPOSING_BODY, COMPOSING))
    assert status(sent)[0] == 200  # its own bucket: the message bucket is empty
    got = relayed(sent)
    assert set(got) == {"bob", "carol"}
    assert got["bob"][1].content_type == COMPOSING and got["bob"][1].body == COMPOSING_BODY
    assert r.counters.composing == 1 and r.counters.received == r.h.config.message_burst


def test_recipients_must_allow_message() -> None:
    h = Harness()
    r = Room(h, bob_extra=(ALLOW_NO_MESSAGE,))
    dave = h.ua("dave")
    h.join(dave, r.uri)  # no Allow at all
    got = relayed(r.send(r.carol, r.carol.message(b"who hears me")))
    assert set(got) == {"alice"}


def test_a_failing_recipient_does_not_stop_the_others_and_is_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    r = Room()
    sent = r.send(r.alice, r.alice.message(b"hi"))
    got = relayed(sent)
    assert status(sent)[0] == 200
    with caplog.at_level(logging.INFO, logger="imsconf.focus.messaging"):
        r.send(r.bob, answer_to(got["bob"][0], 480, "Temporarily Unavailable"))
        r.send(r.carol, answer_to(got["carol"][0]))
    assert (r.counters.delivered, r.counters.failed) == (1, 1)
    assert any(
        re.search(r"event=message_delivery_failed leg=\S+ status=480", rec.getMessage())
        for rec in caplog.records
    )


def test_an_unanswered_recipient_times_out_and_is_counted() -> None:
    r = Room()
    got = relayed(r.send(r.alice, r.alice.message(b"anyone?")))
    r.send(r.carol, answer_to(got["carol"][0]))
    r.h.advance(40.0)  # Timer F (64*T1): 408 for bob's copy
    assert (r.counters.delivered, r.counters.failed) == (1, 1)


def test_a_leg_that_left_gets_nothing_and_its_bucket_goes() -> None:
    r = Room()
    r.send(r.carol, r.carol.bye())
    assert set(relayed(r.send(r.alice, r.alice.message(b"still here?")))) == {"bob"}
    messaging = r.h.focus.parts.messaging
    r.send(r.bob, r.bob.message(b"x"))
    r.send(r.bob, r.bob.bye())
    assert messaging.bucket_count() == 1  # alice's only


def _answer_415_text_only(req: Request) -> bytes:
    data = answer_to(req, 415, "Unsupported Media Type")
    return data.replace(b"Content-Length: 0", b"Accept: text/plain\r\nContent-Length: 0")


def test_a_text_only_phone_gets_the_text_with_the_sender_named() -> None:
    r = Room(bob_extra=(ALLOW, ("Privacy", "id")))
    sent = r.send(r.alice, r.alice.message("grüße".encode(), "text/plain;charset=utf-8"))
    first = relayed(sent)["carol"][0]
    # carol's phone takes text only (baresip 1.0.0): 415 with Accept: text/plain
    again = requests(r.send(r.carol, _answer_415_text_only(first)), "MESSAGE")
    ((req, _),) = again
    assert req.headers.get("Content-Type") == "text/plain;charset=utf-8"
    assert req.body == "sip:alice@example.net: grüße".encode()  # no display name: the AoR
    r.send(r.carol, answer_to(req))
    # from now on carol gets text at once; an anonymous sender stays anonymous; is-composing is not sent
    sent = r.send(r.bob, r.bob.message(b"hidden"))
    plain = [m for m, _ in requests(sent, "MESSAGE") if m.to.uri.user == "carol"]
    assert [m.body for m in plain] == [b"Anonymous: hidden"]
    sent = r.send(r.alice, r.alice.message(COMPOSING_BODY, COMPOSING))
    assert [m.to.uri.user for m, _ in requests(sent, "MESSAGE")] == ["bob"]
    assert r.counters.failed == 0


def test_a_phone_refusing_the_cpim_sender_with_488_gets_text() -> None:
    r = Room()
    first = relayed(r.send(r.alice, r.alice.message(b"hi")))["bob"][0]
    ((req, _),) = requests(r.send(r.bob, answer_to(first, 488, "Not acceptable here")), "MESSAGE")
    assert req.headers.get("Content-Type") == "text/plain;charset=utf-8"
    assert req.body == b"sip:alice@example.net: hi"


def test_a_415_that_accepts_cpim_is_a_failure_not_a_fallback() -> None:
    r = Room()
    first = relayed(r.send(r.alice, r.alice.message(b"hi")))["bob"][0]
    data = answer_to(first, 415, "Unsupported Media Type").replace(
        b"Content-Length: 0", b"Accept: message/cpim\r\nContent-Length: 0"
    )
    assert requests(r.send(r.bob, data), "MESSAGE") == []
    assert r.counters.failed == 1


def test_a_dialed_out_participant_is_a_recipient_when_its_200_allows_message() -> None:
    r = Room()
    dave = Phone("dave", Peer("tls", "198.51.100.60", 5061, None))
    sent = r.send(r.alice, r.alice.refer(f"<{dave.uri()}>"))
    ok_all(r.h, r.alice, sent)
    invite = invite_for(sent, dave)
    data = answer_to(
        invite, 200, "OK", to_tag=dave.to_tag, contact=dave.contact(), body=answer_sdp(invite.body)
    ).replace(b"Content-Length:", b"Allow: INVITE, ACK, BYE, MESSAGE\r\nContent-Length:", 1)
    r.h.ep.receive_datagram(data, Peer("tls", dave.peer.host, dave.peer.port, 900), r.h.now)
    ok_all(r.h, r.alice, r.h.take())
    leg = next(leg for leg in r.h.focus.legs.values() if leg.dialed_out)
    assert leg.allow == frozenset({"INVITE", "ACK", "BYE", "MESSAGE"})
    got = relayed(r.send(r.bob, r.bob.message(b"welcome, dave")))
    assert set(got) == {"alice", "carol", "dave"}
