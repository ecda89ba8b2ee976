"""The conference event package at the focus (RFC 4575 over RFC 6665): SUBSCRIBE, NOTIFY, policy, timers."""

from __future__ import annotations

from control_helpers import doc, drain_notifies, notifies, ok_all, q, subscribe, users_of, valid_doc
from helpers import DOMAIN, UA, Harness, answer_to, requests, responses, sdp_offer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from imsconf.conference.eventinfo import ConferenceInfoBuilder, RosterState, Viewer, apply_partial
from imsconf.conference.model import Audience, ConferencePolicy
from imsconf.focus.config import FocusConfig
from imsconf.sip.message import Request


def state_of(n: Request) -> tuple[str, int]:
    root = doc(n.body)
    return str(root.get("state")), int(str(root.get("version")))


def setup_sub(h: Harness, user: str = "alice") -> tuple[UA, str, UA, Request]:
    owner = h.ua("alice")
    _, uri = h.create(owner)
    sub = h.ua(user)
    resp, sent = subscribe(h, sub, uri)
    assert resp.status == 200, (resp.status, resp.reason)
    (first,) = notifies(sent, "conference")
    assert ok_all(h, sub, sent) == []
    return owner, uri, sub, first


def test_subscribe_gets_200_then_full_state() -> None:
    h = Harness()
    owner = h.ua("alice")
    _, uri = h.create(owner)
    sub = h.ua("alice")
    resp, sent = subscribe(h, sub, uri)
    assert resp.status == 200 and resp.headers.get("Expires") == "600"
    assert (resp.headers.get("Contact") or "").startswith("<sip:conf-")
    ((n, peer),) = requests(sent, "NOTIFY")
    assert peer == sub.peer  # over the subscriber's own TLS connection
    assert n.headers.get("Event") == "conference"
    assert n.headers.get("Content-Type") == "application/conference-info+xml"
    assert n.headers.get("Subscription-State") == "active;expires=600"
    assert n.from_.tag == resp.to.tag and n.to.tag == sub.from_tag
    root = valid_doc(n.body)
    conf = h.conference(uri)
    assert root.get("state") == "full" and int(str(root.get("version"))) == conf.version
    assert root.get("entity") == conf.uri
    assert users_of(n.body) == [owner.aor]
    ident = next(root.iter("{urn:imsconf:params:xml:ns:conference-info-ext}identity"))
    assert ident.get("authenticated") == "false"


def join_drain(
    h: Harness, ua: UA, uri: str, sub: UA, extra: tuple[tuple[str, str], ...] = ()
) -> list[Request]:
    """INVITE + ACK for *ua*, answering the NOTIFYs this causes to *sub*."""
    sent = h.send(ua, ua.invite(uri, sdp_offer(), extra=extra))
    resp = h.final(sent)
    assert resp.status == 200
    ua.learn(resp)
    got = drain_notifies(h, sub, sent)
    return got + drain_notifies(h, sub, h.send(ua, ua.ack()))


def test_three_joins_one_leave_partial_versions_increase_by_one() -> None:
    h = Harness()
    owner = h.ua("alice")
    _, uri = h.create(owner)
    conf = h.conference(uri)
    sub = h.ua("alice")
    _resp, sent = subscribe(h, sub, uri)
    got = drain_notifies(h, sub, sent)
    bob, carol, dave = h.ua("bob"), h.ua("carol"), h.ua("dave")
    for ua in (bob, carol, dave):
        got += join_drain(h, ua, uri, sub)
    got += drain_notifies(h, sub, h.send(carol, carol.bye()))
    states = [state_of(n) for n in got]
    assert states[0][0] == "full"
    assert all(s == "partial" for s, _ in states[1:])
    assert [v for _, v in states] == list(range(states[0][1], states[0][1] + len(states)))
    assert states[-1][1] == conf.version
    local = got[0].body
    for n in got[1:]:
        valid_doc(n.body)
        local = apply_partial(local, n.body)
    fresh = h.focus.notifier.feed(conf).full(Viewer.privileged())
    assert etree.tostring(doc(local), method="c14n") == etree.tostring(doc(fresh), method="c14n")
    assert sorted(users_of(local)) == sorted(users_of(fresh)) == sorted([owner.aor, bob.aor, dave.aor])


def test_refresh_resyncs_with_full_state_and_unsubscribe_ends() -> None:
    h = Harness()
    _owner, _uri, sub, first = setup_sub(h)
    sent = h.send(sub, sub.subscribe(expires=900))
    assert [(r.status, r.headers.get("Expires")) for r, _ in responses(sent)] == [(200, "900")]
    (n,) = notifies(sent)
    assert state_of(n) == ("full", state_of(first)[1])
    assert n.headers.get("Subscription-State") == "active;expires=900"
    ok_all(h, sub, sent)
    sent = h.send(sub, sub.subscribe(expires=0))
    assert [(r.status, r.headers.get("Expires")) for r, _ in responses(sent)] == [(200, "0")]
    (n,) = notifies(sent)
    assert n.headers.get("Subscription-State") == "terminated;reason=timeout"
    assert state_of(n)[0] == "full"
    ok_all(h, sub, sent)
    assert h.focus.notifier.usages == {}
    assert len(h.focus.dialogs) == 1  # only the owner's INVITE dialog is left
    # the dialog is gone: a further refresh is 481
    assert [r.status for r, _ in responses(h.send(sub, sub.subscribe(expires=600)))] == [481]


def test_subscription_expires_without_refresh() -> None:
    h = Harness()
    _owner, _uri, sub, _ = setup_sub(h)
    out = h.advance(601)
    (n,) = notifies(out)
    assert n.headers.get("Subscription-State") == "terminated;reason=timeout"
    ok_all(h, sub, out)
    assert h.focus.notifier.usages == {}


def test_interval_too_brief_423() -> None:
    h = Harness()
    owner = h.ua("alice")
    _, uri = h.create(owner)
    sub = h.ua("alice")
    resp, sent = subscribe(h, sub, uri, expires=10)
    assert resp.status == 423 and resp.headers.get("Min-Expires") == "60"
    assert notifies(sent) == []


def test_conference_end_terminates_with_noresource() -> None:
    h = Harness()
    owner, uri, sub, _ = setup_sub(h)
    bob = h.ua("bob")
    join_drain(h, bob, uri, sub)
    sent = h.send(owner, owner.bye())
    got = drain_notifies(h, sub, sent + ok_all(h, bob, sent, "BYE"))
    last = got[-1]
    assert last.headers.get("Subscription-State") == "terminated;reason=noresource"
    root = valid_doc(last.body)
    assert root.get("state") == "full" and root.findtext(f"{q('conference-state')}/{q('active')}") == "false"
    assert h.focus.notifier.usages == {} and h.focus.notifier.feeds == {}


def test_only_participants_and_owner_may_subscribe() -> None:
    h = Harness()
    owner, bob = h.ua("alice"), h.ua("bob")
    _, uri = h.create(owner)
    h.join(bob, uri)
    resp, sent = subscribe(h, h.ua("mallory"), uri)
    assert resp.status == 403 and notifies(sent) == []
    resp, _ = subscribe(h, h.ua("bob"), uri)
    assert resp.status == 200
    # unknown conference, wrong package
    resp, _ = subscribe(h, h.ua("alice"), f"sip:conf-nope@{DOMAIN}")
    assert resp.status == 404
    other = h.ua("alice")
    sent = h.send(other, other.subscribe(uri, event="presence"))
    ((r, _),) = responses(sent)
    assert r.status == 489 and r.headers.get("Allow-Events") == "conference"


def test_subscribe_over_udp_refused_unless_relaxed() -> None:
    h = Harness()
    owner = h.ua("alice")
    _, uri = h.create(owner)
    resp, _ = subscribe(h, h.ua("alice", "udp"), uri)
    assert resp.status == 403
    h.config.allow_insecure_subscriptions = True
    udp = h.ua("alice", "udp")
    resp, sent = subscribe(h, udp, uri)
    assert resp.status == 200
    ((n, peer),) = requests(sent, "NOTIFY")
    # the full document is larger than 1300 bytes: SipEndpoint moves the request to TCP, to the same
    # address (RFC 3261 §18.1.1)
    assert len(bytes(n)) > 1300
    assert peer.transport == "tcp" and (peer.host, peer.port) == (udp.peer.host, udp.peer.port)


def test_subscribe_inside_the_invite_dialog_and_bye_drops_it() -> None:
    h = Harness()
    owner, bob = h.ua("alice"), h.ua("bob")
    _, uri = h.create(owner)
    h.join(bob, uri)
    sent = h.send(bob, bob.subscribe(expires=600))
    assert [r.status for r, _ in responses(sent)] == [200]
    (n,) = notifies(sent)
    assert n.call_id == bob.call_id and n.to.tag == bob.from_tag
    ok_all(h, bob, sent)
    assert len(h.focus.notifier.usages) == 1
    h.send(bob, bob.bye())
    assert h.focus.notifier.usages == {}


def test_leaver_loses_its_separate_subscription() -> None:
    h = Harness()
    owner, bob = h.ua("alice"), h.ua("bob")
    _, uri = h.create(owner)
    h.join(bob, uri)
    bsub = h.ua("bob")
    _resp, sent = subscribe(h, bsub, uri)
    ok_all(h, bsub, sent)
    got = drain_notifies(h, bsub, h.send(bob, bob.bye()))
    assert got[-1].headers.get("Subscription-State") == "terminated;reason=rejected"


def test_notify_481_ends_the_subscription() -> None:
    h = Harness()
    owner = h.ua("alice")
    _, uri = h.create(owner)
    sub = h.ua("alice")
    _resp, sent = subscribe(h, sub, uri)
    (n,) = notifies(sent)
    h.send(sub, answer_to(n, 481, "Call Leg Does Not Exist"))
    assert h.focus.notifier.usages == {}
    assert len(h.focus.dialogs) == 1


def test_privacy_anonymises_for_participants_not_for_the_owner_and_bodies_are_shared() -> None:
    h = Harness()
    owner, bob, carol, dave = h.ua("alice"), h.ua("bob"), h.ua("carol"), h.ua("dave")
    _, uri = h.create(owner)
    h.join(bob, uri)
    h.join(carol, uri)
    subs = {}
    for ua in (owner, bob, carol):
        s = h.ua(ua.user)
        resp, sent = subscribe(h, s, uri)
        assert resp.status == 200
        ok_all(h, s, sent)
        subs[ua.user] = s
    built = h.focus.notifier.counters["bodies_built"]
    sent = h.send(dave, dave.invite(uri, sdp_offer(), extra=(("Privacy", "id"),)))
    by_sub = {r.call_id: r for r in notifies(sent)}
    owner_doc = by_sub[subs["alice"].call_id].body
    bob_doc, carol_doc = by_sub[subs["bob"].call_id].body, by_sub[subs["carol"].call_id].body
    assert dave.aor in users_of(owner_doc)
    assert dave.aor not in users_of(bob_doc) and users_of(bob_doc)[0].endswith("@anonymous.invalid")
    assert bob_doc == carol_doc  # the same class gets the same bytes
    # dave's INVITE made two changes (joined, media); each is built once per class (owner: privileged;
    # bob and carol: everybody else), not once per subscriber
    assert h.focus.notifier.counters["bodies_built"] - built == 2 * 2
    valid_doc(bob_doc)


# ---------------------------------------------------------------------------------------------- property


_OPS = st.lists(st.sampled_from(["join", "hold", "resume", "leave"]), min_size=1, max_size=12)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_OPS, st.booleans())
def test_partials_applied_in_order_reproduce_the_full_state(ops: list[str], privacy: bool) -> None:
    """Whatever happens in the conference, a subscriber applying every partial NOTIFY to its first full
    document ends with exactly the focus's current full document for its audience class."""
    h = Harness(FocusConfig(domain=DOMAIN, media_host="198.18.0.1",
                            policy=ConferencePolicy(subscribers=Audience.PARTICIPANTS)))  # fmt: skip
    owner = h.ua("alice")
    _, uri = h.create(owner)
    conf = h.conference(uri)
    bob = h.ua("bob")
    h.join(bob, uri)
    sub = h.ua("bob")
    _resp, sent = subscribe(h, sub, uri)
    got = drain_notifies(h, sub, sent)
    members: list[UA] = []
    n = 0
    for op in ops:
        if op == "join" or not members:
            n += 1
            ua = h.ua(f"u{n}")
            extra = (("Privacy", "id"),) if privacy and n % 2 else ()
            got += join_drain(h, ua, uri, sub, extra)
            members.append(ua)
        elif op in ("hold", "resume"):
            ua = members[-1]
            body = sdp_offer(direction="sendonly" if op == "hold" else "sendrecv", version=3)
            s = h.send(ua, ua.reinvite(body))
            got += drain_notifies(h, sub, s)
            got += drain_notifies(h, sub, h.send(ua, ua.ack()))
        else:
            ua = members.pop(0)
            got += drain_notifies(h, sub, h.send(ua, ua.bye()))
    local = got[0].body
    for m in got[1:]:
        local = apply_partial(local, m.body)
    builder: ConferenceInfoBuilder = h.focus.notifier.feed(conf).builder
    viewer = builder.audience_class(Viewer.participant(bob.aor), conf.participants)
    expected = builder.full_document(RosterState.from_conference(conf), viewer)
    assert doc(local).get("version") == str(conf.version)

    def canon(body: bytes) -> bytes:
        return bytes(etree.tostring(doc(body), method="c14n"))

    assert canon(local) == canon(expected)
