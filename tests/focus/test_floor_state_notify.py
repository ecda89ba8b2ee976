"""Floor changes reach the conference event package as partial NOTIFYs (sans-I/O, the focus and BFCP)."""

from __future__ import annotations

from control_helpers import notifies, ok_all, subscribe
from lxml import etree
from test_floor import Rig, bfcp_offer, chair_action, frid_of, hello, request

from imsconf.conference.eventinfo import EXT_NS, apply_partial
from imsconf.floor import RequestState

X = f"{{{EXT_NS}}}"


def holders(body: bytes) -> dict[str, list[str]]:
    root = etree.fromstring(body)
    return {
        str(f.get("id")): [str(h.get("entity")) for h in f.iter(f"{X}holder")] for f in root.iter(f"{X}floor")
    }


def test_floor_changes_are_partial_notifies_with_the_next_version() -> None:
    rig = Rig()
    chair, uri, host = rig.join("alice", None, bfcp_offer(cert=b"alice"))
    b, _, bhost = rig.join("bob", uri, bfcp_offer("TCP/BFCP"))
    assert chair is not None and b is not None
    watcher = rig.h.ua("alice")
    resp, sent = subscribe(rig.h, watcher, uri)
    assert resp.status == 200
    (first,) = notifies(sent, "conference")
    local = first.body
    assert holders(local) == {}  # no floor change yet: no floors shown
    ok_all(rig.h, watcher, sent)
    cc = rig.connect(tls=True, cert=b"alice", host=host)
    cb = rig.connect(tls=False, host=bhost)
    rig.send(cc, hello(chair))
    rig.send(cb, hello(b))

    def step() -> list[bytes]:
        out = rig.h.advance(0.01)  # the queued floor change is applied on the focus's timer
        bodies = [n.body for n in notifies(out, "conference")]
        ok_all(rig.h, watcher, out)
        return bodies

    frid = frid_of(rig.send(cb, request(b, 2)))  # bob asks for floor 1
    assert step() == []  # pending under chair control: nothing granted, nothing shown
    rig.send(cc, chair_action(chair, frid, RequestState.GRANTED, 3))
    (body,) = step()
    root = etree.fromstring(body)
    assert root.get("state") == "partial"
    assert int(root.get("version", "0")) == int(etree.fromstring(local).get("version", "0")) + 1
    assert root.find("{urn:ietf:params:xml:ns:conference-info}users") is None
    local = apply_partial(local, body)
    assert holders(local) == {"1": ["sip:bob@example.net"], "2": []}  # the audio floor (test_floor's helpers)
    rig.send(cc, chair_action(chair, frid, RequestState.REVOKED, 4))
    (body,) = step()
    local = apply_partial(local, body)
    assert holders(local) == {"1": [], "2": []}
