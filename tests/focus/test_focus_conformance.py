"""What real conference clients (RFC 4579/4575) rely on: one conference URI with ``;isfocus`` in every
dialog, wall-clock times in documents, and a ``terminated`` NOTIFY when a participant's own view ends."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from control_helpers import doc, drain_notifies, notifies, ok_all, q, subscribe
from helpers import DOMAIN, Harness, responses

from imsconf.app.focus_wiring import FocusOptions
from imsconf.sip.uri import NameAddr


def _conference_uri(contact: str) -> str:
    """A Contact's URI without port and parameters: how a client names the conference it joined."""
    uri = NameAddr.parse(contact).uri
    return f"sip:{uri.user}@{uri.host}"


def test_contact_and_entity_name_one_conference_uri() -> None:
    h = Harness()
    owner = h.ua("alice")
    resp, uri = h.create(owner)
    contact = resp.headers.get("Contact") or ""
    assert NameAddr.parse(contact).params.get("isfocus", "missing") in ("", None)
    sub = h.ua("alice")
    _, sent = subscribe(h, sub, uri)
    (n,) = notifies(sent, "conference")
    conf = h.conference(uri)
    assert doc(n.body).get("entity") == conf.uri == _conference_uri(contact)
    assert conf.uri == f"sip:conf-{conf.conf_id}@{DOMAIN}"
    # the NOTIFY (a target refresh request of the subscription dialog) names the focus too
    assert (n.headers.get("Contact") or "").endswith(";isfocus")
    assert _conference_uri(n.headers.get("Contact") or "") == conf.uri


def test_focus_host_setting_is_the_host_of_the_uri_and_contact() -> None:
    from imsconf.focus.config import FocusConfig

    h = Harness(FocusConfig(domain=DOMAIN, host="focus.example.net", media_host="198.18.0.1"))
    resp, uri = h.create(h.ua("alice"))
    contact = resp.headers.get("Contact") or ""
    assert contact.startswith("<sip:conf-") and "@focus.example.net:5061;transport=tls>" in contact
    assert h.conference(uri).uri.endswith("@focus.example.net")


def test_a_sips_request_uri_gets_a_sips_contact() -> None:
    h = Harness()
    resp = h.call(h.ua("alice"), f"sips:conference-factory@{DOMAIN}")
    assert resp.status == 200
    contact = resp.headers.get("Contact") or ""
    assert contact.startswith("<sips:conf-") and contact.endswith(">;isfocus")
    assert "transport=" not in contact


def test_joining_time_is_wall_clock_utc() -> None:
    offset = time.time() - 1000.0  # the harness clock starts at 1000
    h = Harness(options=FocusOptions(wall_clock_offset=offset))
    owner = h.ua("alice")
    _, uri = h.create(owner)
    _, sent = subscribe(h, h.ua("alice"), uri)
    (n,) = notifies(sent, "conference")
    when = doc(n.body).findtext(f".//{q('joining-info')}/{q('when')}")
    assert when is not None
    shown = datetime.strptime(when, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert abs(shown.timestamp() - time.time()) < 60


def test_leaver_gets_terminated_not_a_stale_active_notify_and_may_unsubscribe() -> None:
    h = Harness()
    owner, bob = h.ua("alice"), h.ua("bob")
    _, uri = h.create(owner)
    h.join(bob, uri)
    bsub = h.ua("bob")
    _, sent = subscribe(h, bsub, uri)
    ok_all(h, bsub, sent)
    got = drain_notifies(h, bsub, h.send(bob, bob.bye()))
    assert [n.headers.get("Subscription-State") for n in got] == ["terminated;reason=rejected"]
    assert doc(got[0].body).get("state") == "full"
    # the phone's unsubscribe crossed the NOTIFY: answered 200, not 481
    sent = h.send(bsub, bsub.subscribe(expires=0))
    assert [(r.status, r.headers.get("Expires")) for r, _ in responses(sent)] == [(200, "0")]
    assert notifies(sent) == []
    # a refresh of the ended subscription is still 481
    assert [r.status for r, _ in responses(h.send(bsub, bsub.subscribe(expires=600)))] == [481]


def test_removed_participant_gets_terminated_rejected() -> None:
    h = Harness()
    owner, bob = h.ua("alice"), h.ua("bob")
    _, uri = h.create(owner)
    h.join(bob, uri)
    bsub = h.ua("bob")
    _, sent = subscribe(h, bsub, uri)
    ok_all(h, bsub, sent)
    sent = h.send(owner, owner.refer(f"<{bob.aor};method=BYE>"))
    got = [n for n in notifies(sent, "conference") if n.call_id == bsub.call_id]
    assert [n.headers.get("Subscription-State") for n in got] == ["terminated;reason=rejected"]
    assert [p.user for p in h.conference(uri).participants] == [owner.aor]
