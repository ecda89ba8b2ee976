"""FocusAdmin: the ConferenceAdmin of the running server applies each command with the endpoint and the
clock it was given, then wakes the runtime (even when the command fails)."""

from __future__ import annotations

import pytest
from helpers import Harness, requests

from imsconf.app.admin import FocusAdmin
from imsconf.focus.admin import ConferenceAdmin, OperatorEvent, UnknownConference


def _admin() -> tuple[Harness, FocusAdmin, list[int]]:
    h = Harness()
    wakes: list[int] = []
    admin = FocusAdmin(h.focus, h.ep, lambda: h.now, lambda: wakes.append(1))
    return h, admin, wakes


def test_focus_admin_is_a_conference_admin_and_wakes_after_each_command() -> None:
    h, admin, wakes = _admin()
    seam: ConferenceAdmin = admin
    events: list[OperatorEvent] = []
    stop = seam.watch(events.append)
    alice, bob = h.ua("alice"), h.ua("bob")
    _, uri = h.create(alice)
    h.join(bob, uri)
    (view,) = seam.conferences()
    assert seam.conference(view.id) == view
    assert seam.set_muted(view.id, "p2", True).muted and len(wakes) == 1
    assert seam.set_deaf(view.id, "p2", True).deaf and len(wakes) == 2
    assert seam.set_locked(view.id, True).locked
    seam.kick(view.id, "p2")
    assert len(wakes) == 3
    assert [m.call_id for m, _ in requests(h.take(), "BYE")] == [bob.call_id]
    seam.invite(view.id, "sip:carol@198.51.100.60;transport=tls")
    assert len(requests(h.take(), "INVITE")) == 1
    seam.end(view.id)
    assert len(requests(h.take(), "BYE")) == 1  # alice (carol still rings: CANCEL)
    assert seam.conferences() == ()
    stop()
    assert "conference-ended" in [e.kind for e in events]
    with pytest.raises(UnknownConference):
        seam.kick(view.id, "p1")
    assert len(wakes) == 6  # woken after the failed command too
