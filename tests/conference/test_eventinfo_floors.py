"""Floor state (BFCP holders) in the conference event package: ``<ext:floors>`` in ``conference-state``."""

from __future__ import annotations

import pytest
from lxml import etree
from test_eventinfo import BOB, CAROL, CONF_URI, OWNER, builder, canon, make_conf, valid

from imsconf.conference import FloorChanged, FloorState, PolicyError, RosterEvent
from imsconf.conference.eventinfo import EXT_NS, NS, RosterState, Viewer, apply_partial

X = f"{{{EXT_NS}}}"


def floors_of(doc: bytes) -> dict[str, tuple[str, list[str]]]:
    root = etree.fromstring(doc)
    cs = root.find(f"{{{NS}}}conference-state")
    assert cs is not None
    out: dict[str, tuple[str, list[str]]] = {}
    for f in cs.iter(f"{X}floor"):
        out[str(f.get("id"))] = (str(f.get("media")), [str(h.get("entity")) for h in f.iter(f"{X}holder")])
    return out


def joined(conf, user: str, **kw: object) -> str:  # type: ignore[no-untyped-def]
    (ev,) = conf.join(user, 1.0, **kw)
    return str(ev.participant.participant_id)


def two_floors(audio: tuple[str, ...] = (), video: tuple[str, ...] = ()) -> tuple[FloorState, ...]:
    return (FloorState(1, "audio", tuple(sorted(audio))), FloorState(2, "video", tuple(sorted(video))))


def test_no_floors_no_element() -> None:
    conf = make_conf()
    joined(conf, OWNER)
    doc = builder().full_document(conf, Viewer.privileged())
    valid(doc)
    assert b"floors" not in doc


def test_floor_holders_in_full_document_and_schema() -> None:
    conf = make_conf()
    joined(conf, OWNER)
    bob = joined(conf, BOB)
    (ev,) = conf.set_floors(two_floors(video=(bob,)))
    assert isinstance(ev, FloorChanged) and ev.version == conf.version
    doc = builder().full_document(conf, Viewer.privileged())
    valid(doc)
    assert floors_of(doc) == {"1": ("audio", []), "2": ("video", [BOB])}
    assert conf.set_floors(two_floors(video=(bob,))) == []  # unchanged: no new version


def test_floor_change_is_a_partial_document_with_the_next_version() -> None:
    conf = make_conf()
    joined(conf, OWNER)
    bob = joined(conf, BOB)
    carol = joined(conf, CAROL)
    b = builder()
    state = RosterState.from_conference(conf)
    local = b.full_document(state, Viewer.privileged())
    for audio, video in [((bob,), (bob,)), ((carol,), (bob,)), ((), (carol,)), ((bob, carol), ())]:
        (ev,) = conf.set_floors(two_floors(audio, video))
        assert isinstance(ev, RosterEvent)
        ch = state.apply(ev)
        assert ch.version == state.version + 1
        body = b.partial_document(ch, Viewer.privileged())
        root = valid(body)
        assert root.get("state") == "partial" and root.get("version") == str(ch.version)
        assert root.find(f"{{{NS}}}users") is None  # only conference-state changes
        local = apply_partial(local, body)
        valid(local)
        state = ch.after
        assert canon(local) == canon(b.full_document(state, Viewer.privileged()))
    assert floors_of(local) == {"1": ("audio", [BOB, CAROL]), "2": ("video", [])}


def test_private_holder_is_anonymised_for_others() -> None:
    conf = make_conf()
    joined(conf, OWNER)
    bob = joined(conf, BOB, privacy=True)
    conf.set_floors(two_floors(video=(bob,)))
    b = builder()
    other = floors_of(b.full_document(conf, Viewer.other()))["2"][1]
    assert len(other) == 1 and other[0].startswith("sip:anonymous-") and BOB not in other
    assert floors_of(b.full_document(conf, Viewer.participant(BOB)))["2"][1] == [BOB]
    assert floors_of(b.full_document(conf, Viewer.privileged()))["2"][1] == [BOB]


def test_holder_that_leaves_is_dropped_and_documents_converge() -> None:
    conf = make_conf()
    joined(conf, OWNER)
    bob = joined(conf, BOB)
    conf.set_floors(two_floors(audio=(bob,), video=(bob,)))
    b = builder()
    state = RosterState.from_conference(conf)
    local = b.full_document(state, Viewer.other())
    events = conf.leave(bob)
    for ev in events:
        if isinstance(ev, RosterEvent):
            ch = state.apply(ev)
            local = apply_partial(local, b.partial_document(ch, Viewer.other()))
            state = ch.after
    assert state == RosterState.from_conference(conf)
    assert floors_of(local) == {"1": ("audio", []), "2": ("video", [])}
    assert conf.set_floors(two_floors()) == []  # the model already shows it without bob


def test_set_floors_validation() -> None:
    conf = make_conf()
    joined(conf, OWNER)
    with pytest.raises(ValueError):
        FloorState(0, "audio")
    with pytest.raises(ValueError):
        FloorState(1, "audio", ("p2", "p1"))
    with pytest.raises(ValueError):
        conf.set_floors((FloorState(1, "audio"), FloorState(1, "video")))
    (ev,) = conf.set_floors(two_floors(audio=("p9",)))  # unknown holders are not shown
    assert isinstance(ev, FloorChanged) and ev.floors == two_floors()
    conf.close()
    conf.leave("p1")
    with pytest.raises(PolicyError):
        conf.set_floors(two_floors())
    assert CONF_URI in builder().full_document(conf, Viewer.privileged()).decode()
