"""What the operator sees of a conference's instant messages: who chats, how many messages were relayed
(pager mode and MSRP, never their content) and the throttled ``message-relayed`` event, sans I/O."""

from __future__ import annotations

from helpers import FACTORY, Harness, conf_id_of
from test_chat import Rig, message_offer

from imsconf.app.focus_wiring import FocusOptions
from imsconf.focus.admin import OperatorEvent

ALLOW = ("Allow", "INVITE, ACK, BYE, CANCEL, OPTIONS, MESSAGE")
ALLOW_NO_MESSAGE = ("Allow", "INVITE, ACK, BYE, CANCEL")


class Pager:
    """alice (creator) and bob allow MESSAGE, carol does not; the operator's events are kept."""

    def __init__(self) -> None:
        self.h = Harness(options=FocusOptions())
        self.events: list[OperatorEvent] = []
        self.h.focus.operator.watch(self.events.append)
        self.alice, self.bob, self.carol = self.h.ua("alice"), self.h.ua("bob"), self.h.ua("carol")
        self.h.join(self.alice, FACTORY, extra=(ALLOW,))
        assert self.alice.remote_target is not None
        self.uri = self.alice.remote_target.split(";")[0]
        self.conf_id = self.h.conference(self.uri).conf_id
        self.h.join(self.bob, self.uri, extra=(ALLOW,))
        self.h.join(self.carol, self.uri, extra=(ALLOW_NO_MESSAGE,))
        self.h.take()

    def relayed(self) -> list[OperatorEvent]:
        return [e for e in self.events if e.kind == "message-relayed"]


def test_the_view_shows_who_receives_pager_messages_and_the_count() -> None:
    r = Pager()
    view = r.h.focus.operator.conference(r.conf_id)
    assert view.messages == 0
    assert [p.chat for p in view.participants] == [True, True, False]
    r.h.send(r.alice, r.alice.message(b"one"))
    r.h.send(r.bob, r.bob.message(b"two"))
    r.h.send(r.bob, r.bob.message(b"<isComposing/>", "application/im-iscomposing+xml"))  # not a message
    r.h.send(r.carol, r.carol.message(b"x" * 100_000))  # refused (too large): not counted
    assert r.h.focus.operator.conference(r.conf_id).messages == 2
    assert r.h.focus.parts.message_count(r.conf_id) == 2
    (bob,) = [p for p in r.h.focus.operator.conference(r.conf_id).participants if p.uri.startswith("sip:bob")]
    assert r.h.focus.operator.participant(r.conf_id, bob.id).chat is True


def test_message_relayed_events_are_throttled_to_one_a_second_per_conference() -> None:
    r = Pager()
    r.h.send(r.alice, r.alice.message(b"one"))
    assert [(e.conference_id, dict(e.data)) for e in r.relayed()] == [(r.conf_id, {"count": 1})]
    for n in range(3):  # a burst within the second: no event yet, one deadline
        r.h.now += 0.1
        r.h.send(r.bob, r.bob.message(f"burst {n}".encode()))
    assert len(r.relayed()) == 1
    assert r.h.focus.operator.next_deadline() == 1001.0  # the first event's time plus a second
    r.h.advance(0.5)
    assert len(r.relayed()) == 1
    r.h.advance(0.5)
    assert [dict(e.data) for e in r.relayed()] == [{"count": 1}, {"count": 4}]
    assert r.h.focus.operator.next_deadline() is None
    r.h.advance(5)
    r.h.send(r.alice, r.alice.message(b"later"))  # a quiet second passed: told at once
    assert [dict(e.data) for e in r.relayed()][-1] == {"count": 5} and len(r.relayed()) == 3
    assert all(e.participant_id is None for e in r.relayed())  # nobody's content, nor who wrote


def test_msrp_participants_and_messages_count_for_the_operator() -> None:
    rig = Rig()
    events: list[OperatorEvent] = []
    rig.h.focus.operator.watch(events.append)
    alice, bob = rig.member("alice"), rig.member("bob")
    rig.join("carol", message_offer(cert=None).split(b"m=message")[0])  # audio only: not in the chat
    conf_id = conf_id_of(rig.uri)
    view = rig.h.focus.operator.conference(conf_id)
    assert [p.chat for p in view.participants] == [True, True, False]
    rig.h.now += 1
    alice.send(b"hello")
    bob.received()
    rig.h.now += 0.2
    bob.send(b"hi")
    alice.received()
    assert rig.h.focus.operator.conference(conf_id).messages == 2
    relayed = [e for e in events if e.kind == "message-relayed"]
    assert [dict(e.data) for e in relayed] == [{"count": 1}]
    rig.h.advance(1)
    assert [dict(e.data) for e in events if e.kind == "message-relayed"] == [{"count": 1}, {"count": 2}]
    assert b"hello" not in repr(rig.h.focus.operator.conference(conf_id)).encode()
