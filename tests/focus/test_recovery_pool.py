"""Media recovery when one member of a mixer pool is lost (``MixerLost`` scoped to its legs and
conferences, ``MixerReady`` at once): only that member's legs move, the other conferences keep their
media and their group key managers."""

from __future__ import annotations

from helpers import FACTORY, answer_crypto, new_key, sdp_offer
from test_recovery import KEYS, OUT, answer, conference, harness, leg_of, reinvite_to, settle

from imsconf.media.events import GroupStreamConfirmed, MixerLost, MixerReady


def test_a_scoped_loss_moves_only_the_lost_members_legs() -> None:
    h, media = harness("group")
    uas, _uri = conference(h)
    settle(h, uas)
    other = h.ua("dave")
    KEYS["dave"] = new_key()
    resp = h.call(other, FACTORY, sdp_offer(key=KEYS["dave"], port=5000))
    assert resp.status == 200
    OUT.extend(h.send(other, other.ack()))
    settle(h, [*uas, other])
    lost = frozenset(leg_of(h, ua) for ua in uas)
    kept = leg_of(h, other)
    kept_conf = h.focus.legs[kept].conf_id
    lost_conf = h.focus.legs[next(iter(lost))].conf_id
    assert set(h.focus.keying.managers) == {kept_conf, lost_conf}
    epoch = max(e for _, e in media.epochs)
    assert media.sink is not None
    for lid in lost:
        media.sink(GroupStreamConfirmed(lid, epoch))
    settle(h, uas)
    kept_ports = h.focus.legs[kept].media.ports
    for lid in lost:  # the lost member's state went with it
        del media.legs[lid]
    media.modes.pop(lost_conf, None)
    for key in [k for k in media.epochs if k[0] == lost_conf]:
        del media.epochs[key]
    media.sink(MixerLost("closed by the mixer", legs=lost, conferences=frozenset({lost_conf})))
    media.sink(MixerReady(2))
    sent = h.advance(0.01)
    # the surviving conference is untouched: its leg keeps its ports and its key manager
    assert h.focus.legs[kept].media.ports == kept_ports
    assert kept_conf in h.focus.keying.managers
    assert [p for _, p in sent if p == other.peer] == []
    for ua in uas:
        inv = reinvite_to(sent, ua)
        lid = leg_of(h, ua)
        assert answer_crypto(inv.body).key_salt == media.legs[lid].tx_key
        OUT.extend(answer(h, ua, inv))
    settle(h, [*uas, other])
    recovery = h.focus.parts.recovery
    assert recovery is not None and recovery.ready
    assert recovery.counters["moved"] == 3 and recovery.counters["lost"] == 3
    assert set(h.focus.keying.managers) == {kept_conf, lost_conf}
