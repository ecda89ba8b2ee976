from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from lxml import etree

from imsconf.conference import (
    Conference,
    ConferenceError,
    ConferencePolicy,
    ConferenceState,
    FloorState,
    MediaInfo,
    Participant,
    ParticipantStatus,
    Role,
    RosterEvent,
)
from imsconf.conference.eventinfo import (
    EXT_NS,
    NS,
    AuthMethod,
    ConferenceInfoBuilder,
    EndpointDetails,
    EventInfoError,
    JoiningMethod,
    KeyScope,
    RosterChange,
    RosterState,
    VersionGapError,
    Viewer,
    ViewerKind,
    apply_partial,
)
from imsconf.sdp.direction import Direction

SCHEMAS = Path(__file__).resolve().parents[1] / "data" / "schemas"
OWNER = "sip:alice@example.com"
BOB = "sip:bob@example.com"
CAROL = "sip:carol@example.com"
MOD = "sip:mod@example.com"
USERS = (OWNER, BOB, CAROL, MOD)
CONF_URI = "sips:conf-c1@example.com"
FOCUS_URI = "sips:conf-c1@example.com;isfocus"
KEY = b"k" * 32

# Our extension namespace, so that lax validation checks it too (the RFC 4575 schema only says ##other).
_EXT_XSD = f"""<?xml version="1.0"?>
<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" targetNamespace="{EXT_NS}"
  elementFormDefault="qualified">
 <xs:simpleType name="auth-method"><xs:restriction base="xs:token">
  <xs:enumeration value="digest"/><xs:enumeration value="tls-certificate"/>
  <xs:enumeration value="asserted"/></xs:restriction></xs:simpleType>
 <xs:element name="identity"><xs:complexType>
  <xs:attribute name="authenticated" type="xs:boolean" use="required"/>
  <xs:attribute name="method"><xs:simpleType><xs:list itemType="auth-method-ref"/></xs:simpleType>
  </xs:attribute></xs:complexType></xs:element>
 <xs:element name="media-security"><xs:complexType>
  <xs:attribute name="srtp" type="xs:boolean" use="required"/>
  <xs:attribute name="key"><xs:simpleType><xs:restriction base="xs:token">
   <xs:enumeration value="per-participant"/><xs:enumeration value="group"/></xs:restriction>
  </xs:simpleType></xs:attribute>
  <xs:attribute name="codec" type="xs:string"/></xs:complexType></xs:element>
 <xs:element name="floors"><xs:complexType><xs:sequence>
  <xs:element name="floor" minOccurs="0" maxOccurs="unbounded"><xs:complexType><xs:sequence>
   <xs:element name="holder" minOccurs="0" maxOccurs="unbounded"><xs:complexType>
    <xs:attribute name="entity" type="xs:anyURI" use="required"/></xs:complexType></xs:element>
  </xs:sequence>
  <xs:attribute name="id" use="required"><xs:simpleType><xs:restriction base="xs:unsignedShort">
   <xs:minInclusive value="1"/></xs:restriction></xs:simpleType></xs:attribute>
  <xs:attribute name="media" type="xs:token" use="required"/></xs:complexType></xs:element>
 </xs:sequence></xs:complexType>
 <xs:unique name="floor-id"><xs:selector xpath="ext:floor"/><xs:field xpath="@id"/></xs:unique>
 </xs:element>
</xs:schema>
""".replace('itemType="auth-method-ref"', 'itemType="ext:auth-method"').replace(
    "<xs:schema ", f'<xs:schema xmlns:ext="{EXT_NS}" ', 1
)


def _load_schema() -> etree.XMLSchema:
    tmp = Path(tempfile.mkdtemp(prefix="imsconf-xsd-"))
    (tmp / "ext.xsd").write_text(_EXT_XSD)
    # conference.xsd imports xml.xsd by the relative schemaLocation "xml.xsd": load it by its path so
    # that lxml resolves the import beside it, with no network access.
    (tmp / "all.xsd").write_text(
        '<?xml version="1.0"?>\n<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">'
        f'<xs:import namespace="{NS}" schemaLocation="{(SCHEMAS / "conference.xsd").as_uri()}"/>'
        f'<xs:import namespace="{EXT_NS}" schemaLocation="{(tmp / "ext.xsd").as_uri()}"/>'
        "</xs:schema>"
    )
    return etree.XMLSchema(etree.parse(str(tmp / "all.xsd")))


SCHEMA = _load_schema()
RFC_SCHEMA = etree.XMLSchema(etree.parse(str(SCHEMAS / "conference.xsd")))


def valid(doc: bytes) -> etree._Element:
    root = etree.fromstring(doc)
    SCHEMA.assertValid(root)
    RFC_SCHEMA.assertValid(root)
    return root


def canon(doc: bytes) -> object:
    """Order-insensitive form: users/endpoints/media sorted by key, ``state`` attributes dropped."""

    def walk(el: etree._Element) -> object:
        attrs = tuple(sorted((k, v) for k, v in el.attrib.items() if k != "state"))
        kids = [walk(c) for c in el]
        if el.tag in (f"{{{NS}}}users", f"{{{NS}}}user", f"{{{NS}}}endpoint"):
            kids.sort(key=repr)
        return (el.tag, attrs, (el.text or "").strip(), tuple(kids))

    return walk(etree.fromstring(doc))


def make_conf(**policy: object) -> Conference:
    pol = ConferencePolicy(moderators=frozenset({MOD}), close_when_owner_leaves=False, **policy)  # type: ignore[arg-type]
    return Conference("c1", CONF_URI, OWNER, pol, created_at=0.0)


DETAILS: dict[str, EndpointDetails] = {}


def builder(**kw: object) -> ConferenceInfoBuilder:
    return ConferenceInfoBuilder(
        CONF_URI,
        FOCUS_URI,
        KEY,
        details=lambda pid: DETAILS.get(pid, EndpointDetails()),
        **kw,  # type: ignore[arg-type]
    )


def changes(state: RosterState, events: Sequence[object]) -> tuple[RosterState, list[RosterChange]]:
    out = []
    for ev in events:
        if isinstance(ev, RosterEvent):
            ch = state.apply(ev)
            out.append(ch)
            state = ch.after
    return state, out


def users_of(root: etree._Element) -> dict[str, etree._Element]:
    return {u.get("entity"): u for u in root.iter(f"{{{NS}}}user")}


# ---------------------------------------------------------------------------------------- documents


def test_full_document_shape_and_schema() -> None:
    conf = make_conf(max_participants=10)
    DETAILS["p1"] = EndpointDetails(
        contact="sips:alice@192.0.2.1:5061;transport=tls",
        auth_method=AuthMethod.TLS_CERTIFICATE,
        key_scope=KeyScope.GROUP,
    )
    conf.join(
        OWNER,
        1_700_000_000.0,
        display="Alice",
        identity_authenticated=True,
        media=MediaInfo(0xDEADBEEF, True, Direction.SENDRECV, "PCMU"),
        status=ParticipantStatus.CONNECTED,
    )
    conf.join(BOB, 1_700_000_001.0)
    b = builder(subject="Weekly", display_text="Team", maximum_user_count=10)
    root = valid(b.full_document(conf, Viewer.privileged()))
    assert root.get("state") == "full" and root.get("version") == "2" and root.get("entity") == CONF_URI
    ns = {"c": NS, "x": EXT_NS}
    assert root.xpath("string(c:conference-description/c:subject)", namespaces=ns) == "Weekly"
    assert (
        root.xpath("string(c:conference-description/c:conf-uris/c:entry/c:uri)", namespaces=ns) == FOCUS_URI
    )
    assert root.xpath("string(c:conference-description/c:maximum-user-count)", namespaces=ns) == "10"
    assert root.xpath("string(c:conference-state/c:user-count)", namespaces=ns) == "2"
    alice = users_of(root)[OWNER]
    assert alice.xpath("c:roles/c:entry/text()", namespaces=ns) == ["chair"]
    (ep,) = alice.xpath("c:endpoint", namespaces=ns)
    assert ep.get("entity") == "sips:alice@192.0.2.1:5061;transport=tls"
    assert ep.xpath("string(c:status)", namespaces=ns) == "connected"
    assert ep.xpath("string(c:media/c:src-id)", namespaces=ns) == str(0xDEADBEEF)
    sec = ep.xpath("c:media/x:media-security", namespaces=ns)[0]
    assert (sec.get("srtp"), sec.get("key"), sec.get("codec")) == ("true", "group", "PCMU")
    ident = alice.xpath("x:identity", namespaces=ns)[0]
    assert (ident.get("authenticated"), ident.get("method")) == ("true", "tls-certificate")
    bob_ident = users_of(root)[BOB].xpath("x:identity", namespaces=ns)[0]
    assert bob_ident.get("authenticated") == "false" and bob_ident.get("method") is None
    DETAILS.clear()


@pytest.mark.parametrize(
    ("status", "method", "expected"),
    [
        (ParticipantStatus.JOINING, JoiningMethod.DIALED_IN, "dialing-in"),
        (ParticipantStatus.JOINING, JoiningMethod.DIALED_OUT, "dialing-out"),
        (ParticipantStatus.JOINING, JoiningMethod.FOCUS_OWNER, "pending"),
        (ParticipantStatus.CONNECTED, JoiningMethod.DIALED_IN, "connected"),
        (ParticipantStatus.ON_HOLD, JoiningMethod.DIALED_OUT, "on-hold"),
    ],
)
def test_endpoint_statuses(status: ParticipantStatus, method: JoiningMethod, expected: str) -> None:
    conf = make_conf()
    DETAILS["p1"] = EndpointDetails(joining_method=method, referred_by=OWNER)
    conf.join(BOB, 5.0, status=status)
    root = valid(builder(wall_clock_offset=1_700_000_000.0).full_document(conf, Viewer.other()))
    ep = root.find(f".//{{{NS}}}endpoint")
    assert ep is not None
    assert ep.findtext(f"{{{NS}}}status") == expected
    assert ep.findtext(f"{{{NS}}}joining-method") == method.value
    assert ep.findtext(f"{{{NS}}}joining-info/{{{NS}}}when") == "2023-11-14T22:13:25.000000Z"
    assert ep.findtext(f"{{{NS}}}joining-info/{{{NS}}}by") == OWNER
    DETAILS.clear()


@pytest.mark.parametrize("direction", list(Direction))
def test_media_directions(direction: Direction) -> None:
    conf = make_conf()
    conf.join(BOB, 0.0, media=MediaInfo(7, False, direction))
    root = valid(builder().full_document(conf, Viewer.other()))
    media = root.find(f".//{{{NS}}}media")
    assert media is not None and media.findtext(f"{{{NS}}}status") == direction.value
    sec = media.find(f"{{{EXT_NS}}}media-security")
    assert sec is not None and sec.get("srtp") == "false" and sec.get("key") is None


def test_privacy_per_viewer() -> None:
    conf = make_conf()
    conf.join(OWNER, 0.0, display="Alice")
    conf.join(BOB, 0.0, display="Bob", privacy=True, identity_authenticated=True)
    b = builder()
    seen = {
        "priv": users_of(valid(b.full_document(conf, Viewer.privileged()))),
        "self": users_of(valid(b.full_document(conf, Viewer.participant(BOB)))),
        "other": users_of(valid(b.full_document(conf, Viewer.other()))),
        "carol": users_of(valid(b.full_document(conf, Viewer.participant(CAROL)))),
    }
    assert BOB in seen["priv"] and BOB in seen["self"]
    for who in ("other", "carol"):
        assert BOB not in seen[who] and OWNER in seen[who]
        (anon,) = (e for e in seen[who] if e != OWNER)
        assert anon.startswith("sip:anonymous-") and anon.endswith("@anonymous.invalid")
        user = seen[who][anon]
        assert user.findtext(f"{{{NS}}}display-text") == "Anonymous"
        assert user.find(f"{{{NS}}}roles") is None
        doc = etree.tostring(user)
        assert b"bob" not in doc.lower() and b"p2" not in doc
    # stable within the conference, different in another
    assert set(seen["other"]) == set(seen["carol"])
    other_conf = ConferenceInfoBuilder("sips:conf-c2@example.com", FOCUS_URI, KEY)
    conf2 = Conference("c2", "sips:conf-c2@example.com", OWNER, ConferencePolicy(), 0.0)
    conf2.join(BOB, 0.0, privacy=True)
    assert not set(users_of(etree.fromstring(other_conf.full_document(conf2, Viewer.other())))) & set(
        seen["other"]
    )


def test_audience_class() -> None:
    b = builder()
    p = Participant("p1", BOB, Role.PARTICIPANT, ParticipantStatus.CONNECTED, 0.0, privacy=True)
    q = Participant("p2", CAROL, Role.PARTICIPANT, ParticipantStatus.CONNECTED, 0.0)
    assert b.audience_class(Viewer.participant(CAROL), [p, q]) == Viewer.other()
    assert b.audience_class(Viewer.participant(BOB), [p, q]) == Viewer.participant(BOB)
    assert b.audience_class(Viewer.privileged(), [p]) == Viewer.privileged()
    with pytest.raises(ValueError):
        Viewer(ViewerKind.PARTICIPANT)
    with pytest.raises(ValueError):
        ConferenceInfoBuilder(CONF_URI, FOCUS_URI, b"short")


def test_partial_documents_and_leave_info() -> None:
    conf = make_conf()
    b = builder()
    state = RosterState.from_conference(conf)
    full = b.full_document(state, Viewer.privileged())
    evs = conf.join(OWNER, 0.0, display="Alice")
    evs += conf.join(BOB, 0.0)
    evs += conf.join(BOB, 1.0, display="Bob's desk phone")  # a second device of the same user
    evs += conf.set_status("p2", ParticipantStatus.CONNECTED)
    evs += conf.remove(OWNER, "p3", "too noisy")
    evs += conf.leave("p3")
    state, chs = changes(state, evs)
    parts = [b.partial_document(ch, Viewer.privileged()) for ch in chs]
    roots = [valid(p) for p in parts]
    assert [int(r.get("version")) for r in roots] == [1, 2, 3, 4, 5]
    assert all(r.get("state") == "partial" for r in roots)
    assert all(r.find(f"{{{NS}}}conference-description") is None for r in roots)
    # the second device: user partial with only the new endpoint
    (user,) = roots[2].iter(f"{{{NS}}}user")
    assert user.get("state") == "partial" and len(user.findall(f"{{{NS}}}endpoint")) == 1
    # the removal: endpoint deleted, with disconnection info; the user's display text went with the
    # device, so the user is sent in full
    (user,) = roots[4].iter(f"{{{NS}}}user")
    assert user.get("state") == "full"
    last = b.partial_document(chs[3], Viewer.privileged())
    assert b'state="full"' in last
    conf2_evs = conf.leave("p2")
    state, (ch,) = changes(state, conf2_evs[:1])
    root = valid(b.partial_document(ch, Viewer.privileged()))
    (user,) = root.iter(f"{{{NS}}}user")
    assert user.get("state") == "deleted"
    ep = user.find(f"{{{NS}}}endpoint")
    assert ep is not None and ep.get("state") == "deleted"
    assert ep.findtext(f"{{{NS}}}status") == "disconnected"
    assert ep.findtext(f"{{{NS}}}disconnection-method") == "departed"
    for p in [*parts, b.partial_document(ch, Viewer.privileged())]:
        full = apply_partial(full, p)
        valid(full)
    assert canon(full) == canon(b.full_document(conf, Viewer.privileged()))


def test_removed_participant_is_booted() -> None:
    conf = make_conf()
    conf.join(BOB, 0.0)
    state = RosterState.from_conference(conf)
    evs = conf.remove(OWNER, "p1", "removed")
    evs += conf.leave("p1")
    _, (ch, closed) = changes(state, evs)  # the empty conference closes
    assert closed.after.state is ConferenceState.CLOSED
    root = valid(builder().partial_document(ch, Viewer.other()))
    ep = root.find(f".//{{{NS}}}endpoint")
    assert ep is not None
    assert ep.findtext(f"{{{NS}}}disconnection-method") == "booted"
    assert ep.findtext(f"{{{NS}}}disconnection-info/{{{NS}}}by") == OWNER


def test_close_marks_conference_state() -> None:
    conf = make_conf()
    conf.join(BOB, 0.0)
    b = builder()
    state = RosterState.from_conference(conf)
    evs = conf.close("maintenance")
    evs += conf.leave("p1")
    state, chs = changes(state, evs)
    assert state.state is ConferenceState.CLOSED
    docs = [valid(b.partial_document(ch, Viewer.other())) for ch in chs]
    texts = [
        (
            d.findtext(f"{{{NS}}}conference-state/{{{NS}}}active"),
            d.findtext(f"{{{NS}}}conference-state/{{{NS}}}locked"),
        )
        for d in docs
    ]
    assert texts == [("true", "true"), ("true", "true"), ("false", "true")]


def test_roster_state_rejects_out_of_order_events() -> None:
    conf = make_conf()
    state = RosterState.from_conference(conf)
    conf.join(BOB, 0.0)
    (ev,) = conf.join(CAROL, 0.0)
    assert isinstance(ev, RosterEvent)
    with pytest.raises(EventInfoError):
        state.apply(ev)


def test_apply_partial_versions() -> None:
    conf = make_conf()
    b = builder()
    state = RosterState.from_conference(conf)
    full = b.full_document(state, Viewer.other())
    state, chs = changes(state, conf.join(BOB, 0.0) + conf.join(CAROL, 0.0))
    p1, p2 = (b.partial_document(ch, Viewer.other()) for ch in chs)
    with pytest.raises(VersionGapError):
        apply_partial(full, p2)
    after1 = apply_partial(full, p1)
    assert apply_partial(after1, p1) == after1  # a repeat is ignored
    fresh = b.full_document(state, Viewer.other())
    assert apply_partial(after1, fresh) == fresh  # full state replaces
    with pytest.raises(EventInfoError):
        apply_partial(full, b"<not-xml")
    with pytest.raises(EventInfoError):
        apply_partial(full, b"<a/>")
    with pytest.raises(EventInfoError):
        apply_partial(p1, p2)  # the local copy must be full
    with pytest.raises(EventInfoError):
        apply_partial(full, p1.replace(CONF_URI.encode(), b"sips:other@example.com"))


# ---------------------------------------------------------------------------------------- convergence

MEDIA = st.one_of(
    st.none(),
    st.builds(
        MediaInfo,
        st.one_of(st.none(), st.integers(0, 2**32 - 1)),
        st.booleans(),
        st.sampled_from(Direction),
        st.sampled_from([None, "PCMU", "PCMA"]),
    ),
)
JOIN = st.tuples(
    st.just("join"),
    st.integers(0, 3),
    st.booleans(),
    st.sampled_from([None, "A", "B"]),
    st.booleans(),
    MEDIA,
)
OPS = st.lists(
    st.one_of(
        JOIN,
        JOIN,
        JOIN,
        st.tuples(st.just("status"), st.integers(0, 9), st.sampled_from(ParticipantStatus)),
        st.tuples(st.just("media"), st.integers(0, 9), MEDIA),
        st.tuples(st.just("leave"), st.integers(0, 9)),
        st.tuples(st.just("role"), st.integers(0, 9), st.sampled_from([Role.MODERATOR, Role.PARTICIPANT])),
        st.tuples(st.just("remove"), st.integers(0, 9)),
        st.tuples(st.just("status"), st.integers(0, 9), st.sampled_from(ParticipantStatus)),
        st.tuples(st.just("close")),
        st.tuples(st.just("floor"), st.integers(1, 2), st.lists(st.integers(0, 9), max_size=2)),
        st.tuples(st.just("floor"), st.integers(1, 2), st.lists(st.integers(0, 9), max_size=2)),
    ),
    min_size=4,
    max_size=30,
)


def run_op(conf: Conference, op: tuple[Any, ...]) -> Sequence[object]:
    kind = op[0]
    pids = [p.participant_id for p in conf.participants]
    pick: Callable[[int], str] = lambda i: pids[i % len(pids)]  # noqa: E731
    try:
        if kind == "join":
            _, u, privacy, display, auth, media = op
            return list(
                conf.join(
                    USERS[int(u)],
                    1.0,
                    privacy=bool(privacy),
                    display=display,
                    identity_authenticated=bool(auth),
                    media=media,
                )
            )
        if kind == "close":
            return list(conf.close())
        if not pids:
            return []
        if kind == "leave":
            return list(conf.leave(pick(op[1])))
        if kind == "status":
            return list(conf.set_status(pick(op[1]), op[2]))
        if kind == "media":
            return list(conf.set_media(pick(op[1]), op[2]))
        if kind == "role":
            return list(conf.set_role(OWNER, pick(op[1]), op[2]))
        if kind == "remove":
            pid = pick(op[1])
            return [*conf.remove(OWNER, pid, "removed"), *conf.leave(pid)]
        if kind == "floor":  # BFCP: floor op[1] now held by the picked participants
            floors = {f.floor_id: f for f in conf.floors}
            floors[op[1]] = FloorState(
                op[1], "audio" if op[1] == 1 else "video", tuple(sorted({pick(i) for i in op[2]}))
            )
            return list(conf.set_floors(tuple(floors.values())))
    except ConferenceError:
        return []
    raise AssertionError(kind)


VIEWERS = [Viewer.privileged(), Viewer.other(), Viewer.participant(BOB), Viewer.participant(CAROL)]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    joins=st.lists(JOIN, min_size=1, max_size=4),
    ops=OPS,
    start=st.integers(0, 6),
    close_when_empty=st.booleans(),
)
def test_partials_converge_to_full_state(
    joins: list[tuple[object, ...]], ops: list[tuple[object, ...]], start: int, close_when_empty: bool
) -> None:
    conf = make_conf(close_when_empty=close_when_empty)
    b = builder()
    start = min(start, len(ops) // 2)
    for op in [*joins, *ops[:start]]:
        run_op(conf, op)
    state = RosterState.from_conference(conf)
    start_version = conf.version
    local = {v: b.full_document(state, v) for v in VIEWERS}
    for v in VIEWERS:
        valid(local[v])
    for op in ops[start:]:
        for ev in run_op(conf, op):
            if not isinstance(ev, RosterEvent):
                continue
            ch = state.apply(ev)
            assert ch.version == state.version + 1
            seen = {*ch.before.participants, *ch.after.participants}
            bodies: dict[Viewer, bytes] = {}
            for v in VIEWERS:
                cls = b.audience_class(v, seen)
                if cls not in bodies:
                    bodies[cls] = b.partial_document(ch, cls)
                body = bodies[cls]
                root = valid(body)
                assert root.get("version") == str(ch.version) and root.get("state") == "partial"
                local[v] = apply_partial(local[v], body)
                valid(local[v])
            state = ch.after
    assert state == RosterState.from_conference(conf)
    event(f"changes: {min(conf.version - start_version, 10)}")
    event(f"private users at the end: {sum(p.privacy for p in conf.participants) > 0}")
    for v in VIEWERS:
        expected = b.full_document(conf, v)
        assert canon(local[v]) == canon(expected), v


def test_message_media_of_a_chat_participant() -> None:
    conf = make_conf()
    conf.join(BOB, 0.0, media=MediaInfo(7, True, Direction.SENDRECV, "PCMU", message=True))
    conf.join(OWNER, 0.0, media=MediaInfo(8, True, Direction.SENDRECV, "PCMU"))
    root = valid(builder().full_document(conf, Viewer.privileged()))
    bob = users_of(root)[BOB].find(f"{{{NS}}}endpoint")
    assert bob is not None
    media = bob.findall(f"{{{NS}}}media")
    assert [(m.get("id"), m.findtext(f"{{{NS}}}type")) for m in media] == [
        ("audio", "audio"),
        ("message", "message"),
    ]
    assert media[1].findtext(f"{{{NS}}}status") == "sendrecv"
    owner = users_of(root)[OWNER].find(f"{{{NS}}}endpoint")
    assert owner is not None and [m.get("id") for m in owner.findall(f"{{{NS}}}media")] == ["audio"]


def test_a_chat_only_participant_shows_only_its_message_media() -> None:
    conf = make_conf()
    conf.join(BOB, 0.0, media=MediaInfo(message=True, audio=False))
    root = valid(builder().full_document(conf, Viewer.privileged()))
    bob = users_of(root)[BOB].find(f"{{{NS}}}endpoint")
    assert bob is not None
    media = bob.findall(f"{{{NS}}}media")
    assert [(m.get("id"), m.findtext(f"{{{NS}}}type")) for m in media] == [("message", "message")]
