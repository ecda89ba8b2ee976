"""RFC 4575 conference-info documents (``application/conference-info+xml``), built with lxml.  Pure.

Three parts:

* :class:`RosterState` — an immutable snapshot of what the document shows (roster, conference state,
  version).  ``RosterState.from_conference(conf)`` takes it from the model; ``state.apply(event)`` follows
  one roster event and returns a :class:`RosterChange` (before/after), so every version has its own state
  even when one model operation returned several roster events.
* :class:`ConferenceInfoBuilder` — renders full documents (``state="full"``) and partial ones (only the users
  and endpoints one change touched, RFC 4575 §4.6) for one :class:`Viewer`.  Privacy (RFC 3323) is applied
  per viewer: a participant that asked for it is shown as ``sip:anonymous-<opaque>@anonymous.invalid``
  with display text "Anonymous" to everybody except itself and the privileged (owner, moderators,
  operators).  ``audience_class()`` reduces a viewer to the class whose body it receives, so the focus
  builds each body once per change per class and sends the same bytes to every subscriber of that class.
* :func:`apply_partial` — the subscriber's side of RFC 4575 §4.6, so that tests can check convergence.

Decisions (see the module tests):

* A departed endpoint is sent with ``state="deleted"`` and still carries ``status`` disconnected and
  ``disconnection-method``/``disconnection-info``: a subscriber that shows departures can, and one that
  applies §4.6 drops it, so the merged document equals the next full one.  A user whose last endpoint left
  is sent ``state="deleted"`` the same way.
* Partial documents always carry the whole ``conference-state`` (three small elements) and every
  non-keyed child of a changed user (display text, roles, identity extension) in full, so the replacement
  rule for elements without a ``state`` attribute is never ambiguous.
* ``users``, ``user`` and ``endpoint`` default to ``state="full"`` in the schema, so partial documents
  always write ``state="partial"`` explicitly.
* Extensions live in :data:`EXT_NS`: ``<ext:media-security srtp=".." key=".." codec=".."/>`` as the last child
  of ``media`` and ``<ext:identity authenticated=".." method=".."/>`` as the last child of ``user``; the
  RFC 4575 schema has ``<xs:any namespace="##other" processContents="lax"/>`` at the end of both
  ``user-type`` and ``media-type``.
* Floor control (BFCP, RFC 8855): a conference with floors shows them as the last child of
  ``conference-state`` (which ends with ``##other`` too)::

      <ext:floors>
        <ext:floor id="1" media="audio"><ext:holder entity="sip:bob@example.com"/></ext:floor>
        <ext:floor id="2" media="video"/>
      </ext:floors>

  Every floor is listed, held or not, and ``ext:floors`` is one element without a key, so a partial
  document (which always carries the whole ``conference-state``) replaces it as a whole: a floor change is
  one partial document with no ``users``.  Holders are user entities, anonymised per viewer like the
  roster; a holder that left is not shown.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from typing import Final

from lxml import etree

from .events import (
    ConferenceClosed,
    ConferenceClosing,
    FloorChanged,
    FloorState,
    ParticipantJoined,
    ParticipantLeft,
    ParticipantMediaChanged,
    ParticipantRoleChanged,
    ParticipantStatusChanged,
    RosterEvent,
    drop_holder,
)
from .model import Conference
from .participant import ConferenceState, Participant, ParticipantStatus, Role

__all__ = [
    "CONTENT_TYPE",
    "EXT_NS",
    "NS",
    "AuthMethod",
    "ConferenceInfoBuilder",
    "EndpointDetails",
    "EventInfoError",
    "JoiningMethod",
    "KeyScope",
    "RosterChange",
    "RosterState",
    "VersionGapError",
    "Viewer",
    "ViewerKind",
    "apply_partial",
]

CONTENT_TYPE: Final = "application/conference-info+xml"
NS: Final = "urn:ietf:params:xml:ns:conference-info"
EXT_NS: Final = "urn:imsconf:params:xml:ns:conference-info-ext"
_NSMAP: Final = {None: NS, "ext": EXT_NS}
ANONYMOUS_DISPLAY: Final = "Anonymous"


def _q(tag: str) -> str:
    return f"{{{NS}}}{tag}"


# ---------------------------------------------------------------------------------------- value types


class ViewerKind(Enum):
    PRIVILEGED = "privileged"  # owner, moderators, operators: see every identity
    PARTICIPANT = "participant"  # sees its own identity even when it asked for privacy
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who a document is rendered for.  ``user`` (an AoR) is required for ``PARTICIPANT`` only."""

    kind: ViewerKind
    user: str | None = None

    def __post_init__(self) -> None:
        if (self.kind is ViewerKind.PARTICIPANT) != (self.user is not None):
            raise ValueError("a PARTICIPANT viewer needs its user, and only it")

    @classmethod
    def privileged(cls) -> Viewer:
        return cls(ViewerKind.PRIVILEGED)

    @classmethod
    def participant(cls, user: str) -> Viewer:
        return cls(ViewerKind.PARTICIPANT, user)

    @classmethod
    def other(cls) -> Viewer:
        return cls(ViewerKind.OTHER)

    def sees_identity(self, p: Participant) -> bool:
        return not p.privacy or self.kind is ViewerKind.PRIVILEGED or self.user == p.user


class JoiningMethod(Enum):
    DIALED_IN = "dialed-in"
    DIALED_OUT = "dialed-out"
    FOCUS_OWNER = "focus-owner"


class AuthMethod(Enum):
    DIGEST = "digest"
    TLS_CERTIFICATE = "tls-certificate"
    ASSERTED = "asserted"  # P-Asserted-Identity from a trusted peer


class KeyScope(Enum):
    PER_PARTICIPANT = "per-participant"
    GROUP = "group"


@dataclass(frozen=True, slots=True)
class EndpointDetails:
    """What the focus knows of an endpoint beyond the model.  Fixed for the life of the participant.

    ``key_scope`` may change on a rekey only together with a ``set_media`` (so that the version moves).
    """

    contact: str | None = None
    joining_method: JoiningMethod = JoiningMethod.DIALED_IN
    referred_by: str | None = None
    auth_method: AuthMethod | None = None
    key_scope: KeyScope = KeyScope.PER_PARTICIPANT


def _no_details(participant_id: str) -> EndpointDetails:
    return EndpointDetails()


class EventInfoError(ValueError):
    """A document or event that cannot be used (wrong version, wrong conference, not conference-info)."""


class VersionGapError(EventInfoError):
    """A partial document skipped versions: the subscriber must fetch full state (RFC 4575 §4.6)."""


# ---------------------------------------------------------------------------------------- roster state


@dataclass(frozen=True, slots=True)
class RosterState:
    """What a conference-info document of ``version`` shows."""

    version: int
    state: ConferenceState
    participants: tuple[Participant, ...] = ()
    floors: tuple[FloorState, ...] = ()

    @classmethod
    def from_conference(cls, conf: Conference) -> RosterState:
        return cls(conf.version, conf.state, conf.participants, conf.floors)

    def apply(self, event: RosterEvent) -> RosterChange:
        """Follow one roster event; its version must be exactly ``version + 1``."""
        if event.version != self.version + 1:
            raise EventInfoError(f"event version {event.version} does not follow {self.version}")
        state, parts, floors = self.state, self.participants, self.floors
        if isinstance(event, ParticipantJoined):
            parts = (*parts, event.participant)
        elif isinstance(event, ParticipantStatusChanged | ParticipantMediaChanged | ParticipantRoleChanged):
            pid = event.participant.participant_id
            if not any(p.participant_id == pid for p in parts):
                raise EventInfoError(f"no participant {pid!r} in version {self.version}")
            parts = tuple(event.participant if p.participant_id == pid else p for p in parts)
        elif isinstance(event, ParticipantLeft):
            pid = event.participant.participant_id
            parts = tuple(p for p in parts if p.participant_id != pid)
            floors = drop_holder(floors, pid)
        elif isinstance(event, FloorChanged):
            floors = event.floors
        elif isinstance(event, ConferenceClosing):
            state = ConferenceState.CLOSING
        elif isinstance(event, ConferenceClosed):
            state = ConferenceState.CLOSED
        else:  # pragma: no cover - every RosterEvent subclass is handled above
            raise EventInfoError(f"unknown roster event {type(event).__name__}")
        return RosterChange(event, self, RosterState(event.version, state, parts, floors))


@dataclass(frozen=True, slots=True)
class RosterChange:
    event: RosterEvent
    before: RosterState
    after: RosterState

    @property
    def version(self) -> int:
        return self.after.version

    @property
    def participant(self) -> Participant | None:
        ev = self.event
        if isinstance(ev, ParticipantEvent):
            return ev.participant
        return None


ParticipantEvent = (
    ParticipantJoined
    | ParticipantStatusChanged
    | ParticipantMediaChanged
    | ParticipantRoleChanged
    | ParticipantLeft
)
"""The roster events about one participant (each carries its snapshot)."""


# ---------------------------------------------------------------------------------------- rendering

_ROLE_NAMES: Final = {Role.OWNER: "chair", Role.MODERATOR: "moderator", Role.PARTICIPANT: "participant"}


def _endpoint_status(p: Participant, d: EndpointDetails) -> str:
    if p.status is ParticipantStatus.JOINING:
        if d.joining_method is JoiningMethod.DIALED_OUT:
            return "dialing-out"
        if d.joining_method is JoiningMethod.DIALED_IN:
            return "dialing-in"
        return "pending"
    return str(p.status.value)  # connected, on-hold, disconnected: the RFC 4575 tokens


def _disconnection_method(ev: ParticipantLeft) -> str:
    reason = ev.reason.lower()
    if "busy" in reason:
        return "busy"
    if "fail" in reason or "timeout" in reason or "error" in reason:
        return "failed"
    if ev.removed_by is not None or reason not in ("left", "bye", "departed"):
        return "booted"  # removed, or dropped by the focus when the conference closed
    return "departed"


def _display(eps: Sequence[Participant]) -> str | None:
    return next((p.display for p in eps if p.display), None)


def _text(parent: etree._Element, tag: str, text: str) -> etree._Element:
    el = etree.SubElement(parent, _q(tag))
    el.text = text
    return el


@dataclass(slots=True)
class ConferenceInfoBuilder:
    """Renders conference-info documents of one conference.

    ``anonymity_key`` keys the opaque part of anonymous URIs (HMAC over the conference URI and the AoR):
    stable within the conference, so partial documents find their users, and unlinkable across
    conferences.  ``wall_clock_offset`` turns the model's ``now`` values into POSIX time for
    ``joining-info/when`` (0 when the model is fed wall-clock time).
    """

    conference_uri: str
    focus_uri: str
    anonymity_key: bytes
    display_text: str | None = None
    subject: str | None = None
    maximum_user_count: int | None = None
    details: Callable[[str], EndpointDetails] = _no_details
    wall_clock_offset: float = 0.0
    _anon_cache: dict[str, str] = field(default_factory=dict, repr=False)
    _when_cache: dict[float, str] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if len(self.anonymity_key) < 16:
            raise ValueError("the anonymity key must be at least 16 bytes")

    # ------------------------------------------------------------------ audience

    def audience_class(self, viewer: Viewer, participants: Iterable[Participant]) -> Viewer:
        """The viewer whose body ``viewer`` receives: a participant without a private endpoint among
        ``participants`` (the roster before and after the change) sees what everybody else sees."""
        if viewer.kind is ViewerKind.PARTICIPANT and not any(
            p.privacy and p.user == viewer.user for p in participants
        ):
            return Viewer.other()
        return viewer

    # ------------------------------------------------------------------ documents

    def full_document(self, state: RosterState | Conference, viewer: Viewer) -> bytes:
        if isinstance(state, Conference):
            state = RosterState.from_conference(state)
        root = self._root("full", state.version)
        desc = etree.SubElement(root, _q("conference-description"))
        if self.display_text is not None:
            _text(desc, "display-text", self.display_text)
        if self.subject is not None:
            _text(desc, "subject", self.subject)
        uris = etree.SubElement(desc, _q("conf-uris"))
        entry = etree.SubElement(uris, _q("entry"))
        _text(entry, "uri", self.focus_uri)
        _text(entry, "purpose", "participation")
        if self.maximum_user_count is not None:
            _text(desc, "maximum-user-count", str(self.maximum_user_count))
        groups = self._group(state.participants, viewer)
        self._conference_state(root, state, len(groups), viewer)
        users = etree.SubElement(root, _q("users"))
        for entity, eps in groups.items():
            self._user(users, entity, eps, viewer, None)
        return self._serialise(root)

    def partial_document(self, change: RosterChange, viewer: Viewer) -> bytes:
        """The ``state="partial"`` document of ``change.version``: only the user the change touched."""
        root = self._root("partial", change.version)
        after = self._group(change.after.participants, viewer)
        self._conference_state(root, change.after, len(after), viewer)
        p = change.participant
        if p is not None:
            entity = self._user_entity(p, viewer)
            before = self._group(change.before.participants, viewer)
            users = etree.SubElement(root, _q("users"), state="partial")
            left = change.event if isinstance(change.event, ParticipantLeft) else None
            if entity not in after:
                self._user(users, entity, [p], viewer, "deleted", left)
            elif entity not in before or (_display(before[entity]) and not _display(after[entity])):
                # new user, or a display text to drop: no partial form can remove it (§4.6)
                self._user(users, entity, after[entity], viewer, "full")
            else:
                self._user(users, entity, after[entity], viewer, "partial", left, only=p)
        return self._serialise(root)

    # ------------------------------------------------------------------ pieces

    def _root(self, state: str, version: int) -> etree._Element:
        return etree.Element(
            _q("conference-info"),
            nsmap=_NSMAP,
            entity=self.conference_uri,
            state=state,
            version=str(version),
        )

    @staticmethod
    def _serialise(root: etree._Element) -> bytes:
        return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))

    def _conference_state(self, root: etree._Element, rs: RosterState, count: int, viewer: Viewer) -> None:
        state = rs.state
        cs = etree.SubElement(root, _q("conference-state"))
        _text(cs, "user-count", str(count))
        _text(cs, "active", "false" if state is ConferenceState.CLOSED else "true")
        _text(cs, "locked", "false" if state is ConferenceState.ACTIVE else "true")
        if rs.floors:
            self._floors(cs, rs, viewer)

    def _floors(self, cs: etree._Element, rs: RosterState, viewer: Viewer) -> None:
        by_id = {p.participant_id: p for p in rs.participants}
        floors = etree.SubElement(cs, f"{{{EXT_NS}}}floors")
        for f in rs.floors:
            el = etree.SubElement(floors, f"{{{EXT_NS}}}floor", id=str(f.floor_id), media=f.media)
            shown: list[str] = []
            for pid in f.holders:
                p = by_id.get(pid)
                if p is not None and (entity := self._user_entity(p, viewer)) not in shown:
                    shown.append(entity)
                    etree.SubElement(el, f"{{{EXT_NS}}}holder", entity=entity)

    def _anonymous(self, value: str) -> str:
        uri = self._anon_cache.get(value)
        if uri is None:
            msg = f"{self.conference_uri}\x00{value}".encode()
            opaque = hmac.new(self.anonymity_key, msg, hashlib.sha256).hexdigest()[:20]
            uri = f"sip:anonymous-{opaque}@anonymous.invalid"
            self._anon_cache[value] = uri
        return uri

    def _user_entity(self, p: Participant, viewer: Viewer) -> str:
        return p.user if viewer.sees_identity(p) else self._anonymous("user\x00" + p.user)

    def _endpoint_entity(self, p: Participant, viewer: Viewer, d: EndpointDetails) -> str:
        if not viewer.sees_identity(p):
            return self._anonymous("endpoint\x00" + p.participant_id)
        if d.contact is not None:
            return d.contact
        return f"urn:imsconf:endpoint:{p.participant_id}"

    def _group(self, parts: Sequence[Participant], viewer: Viewer) -> dict[str, list[Participant]]:
        groups: dict[str, list[Participant]] = {}
        for p in parts:
            groups.setdefault(self._user_entity(p, viewer), []).append(p)
        return groups

    def _user(
        self,
        users: etree._Element,
        entity: str,
        eps: Sequence[Participant],
        viewer: Viewer,
        state: str | None,
        left: ParticipantLeft | None = None,
        *,
        only: Participant | None = None,
    ) -> None:
        user = etree.SubElement(users, _q("user"), entity=entity)
        if state is not None:
            user.set("state", state)
        visible = viewer.sees_identity(eps[0])
        if visible:
            display = _display(eps)
            if display is not None:
                _text(user, "display-text", display)
            roles = sorted({_ROLE_NAMES[p.role] for p in eps})
            rel = etree.SubElement(user, _q("roles"))
            for r in roles:
                _text(rel, "entry", r)
        else:
            _text(user, "display-text", ANONYMOUS_DISPLAY)  # roles would point at the owner: withheld
        if only is not None:
            if left is not None:
                self._endpoint(user, only, viewer, "deleted", left)
            else:
                self._endpoint(user, only, viewer, "full")
        else:
            for p in eps:
                self._endpoint(user, p, viewer, "deleted" if left is not None else None, left)
        details = [self.details(p.participant_id) for p in eps]
        authenticated = all(p.identity_authenticated for p in eps)
        ident = etree.SubElement(user, f"{{{EXT_NS}}}identity", authenticated=str(authenticated).lower())
        methods = sorted({d.auth_method.value for d in details if d.auth_method is not None})
        if authenticated and methods:
            ident.set("method", " ".join(methods))

    def _endpoint(
        self,
        user: etree._Element,
        p: Participant,
        viewer: Viewer,
        state: str | None,
        left: ParticipantLeft | None = None,
    ) -> None:
        d = self.details(p.participant_id)
        ep = etree.SubElement(user, _q("endpoint"), entity=self._endpoint_entity(p, viewer, d))
        if state is not None:
            ep.set("state", state)
        visible = viewer.sees_identity(p)
        _text(ep, "status", "disconnected" if left is not None else _endpoint_status(p, d))
        _text(ep, "joining-method", d.joining_method.value)
        ji = etree.SubElement(ep, _q("joining-info"))
        when = self._when_cache.get(p.joined_at)
        if when is None:
            t = datetime.fromtimestamp(p.joined_at + self.wall_clock_offset, UTC)
            when = self._when_cache[p.joined_at] = t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        _text(ji, "when", when)
        if d.referred_by is not None and visible:
            _text(ji, "by", d.referred_by)
        if left is not None:
            _text(ep, "disconnection-method", _disconnection_method(left))
            di = etree.SubElement(ep, _q("disconnection-info"))
            _text(di, "reason", left.reason)
            if left.removed_by is not None:
                _text(di, "by", left.removed_by)
        m = p.media
        if m is not None:
            if m.audio:
                media = etree.SubElement(ep, _q("media"), id="audio")
                _text(media, "type", "audio")
                if m.ssrc is not None:
                    _text(media, "src-id", str(m.ssrc))
                _text(media, "status", m.direction.value)
                sec = etree.SubElement(media, f"{{{EXT_NS}}}media-security", srtp=str(m.srtp).lower())
                if m.srtp:
                    sec.set("key", d.key_scope.value)
                if m.codec is not None:
                    sec.set("codec", m.codec)
            if m.message:  # the chat stream (RFC 4575 §5.7.1: media type "message")
                chat = etree.SubElement(ep, _q("media"), id="message")
                _text(chat, "type", "message")
                _text(chat, "status", "sendrecv")


# ---------------------------------------------------------------------------------------- subscriber side

# Elements that carry a ``state`` attribute (RFC 4575 §5) and how their keyed children are found.
_STATEFUL: Final = frozenset(
    _q(t)
    for t in ("users", "user", "endpoint", "conf-uris", "service-uris", "associated-aors", "sidebars-by-ref")
)
# Elements without ``state`` whose children are merged one by one (present children replace).
_MERGED: Final = frozenset(_q(t) for t in ("conference-description", "host-info", "conference-state"))
# Schema order of children, so that inserted elements keep the document valid; ##other goes last.
_ORDER: Final[dict[str, tuple[str, ...]]] = {
    _q("conference-info"): (
        "conference-description",
        "host-info",
        "conference-state",
        "users",
        "sidebars-by-ref",
        "sidebars-by-val",
    ),
    _q("conference-description"): (
        "display-text",
        "subject",
        "free-text",
        "keywords",
        "conf-uris",
        "service-uris",
        "maximum-user-count",
        "available-media",
    ),
    _q("conference-state"): ("user-count", "active", "locked"),
    _q("user"): ("display-text", "associated-aors", "roles", "languages", "cascaded-focus", "endpoint"),
    _q("endpoint"): (
        "display-text",
        "referred",
        "status",
        "joining-method",
        "joining-info",
        "disconnection-method",
        "disconnection-info",
        "media",
        "call-info",
    ),
}


def _key(el: etree._Element) -> str | None:
    tag = el.tag
    value: object = None
    if tag in (_q("user"), _q("endpoint")):
        value = el.get("entity")
    elif tag == _q("media"):
        value = el.get("id")
    elif tag == _q("entry"):
        value = el.findtext(_q("uri"))
    return None if value is None else str(value)


def _find(parent: etree._Element, child: etree._Element) -> etree._Element | None:
    key = _key(child)
    for c in parent:
        if c.tag == child.tag and _key(c) == key:
            return c
    return None


def _rank(parent_tag: str, tag: str) -> int:
    order = _ORDER.get(parent_tag)
    if order is None or not tag.startswith(f"{{{NS}}}"):
        return 1000
    local = tag.split("}", 1)[1]
    return order.index(local) if local in order else 1000


def _insert(parent: etree._Element, child: etree._Element) -> None:
    rank = _rank(str(parent.tag), str(child.tag))
    for i, c in enumerate(parent):
        if _rank(str(parent.tag), str(c.tag)) > rank:
            parent.insert(i, child)
            return
    parent.append(child)


def _strip_state(el: etree._Element) -> etree._Element:
    for d in el.iter():
        if "state" in d.attrib:
            del d.attrib["state"]
    return el


def _merge(local: etree._Element, update: etree._Element) -> None:
    for child in list(update):
        if not isinstance(child.tag, str):
            continue  # comments, processing instructions
        match = _find(local, child)
        if child.tag in _STATEFUL:
            state = child.get("state", "full")
            if state == "deleted":
                if match is not None:
                    local.remove(match)
            elif state == "partial" and match is not None:
                _merge(match, child)
            elif match is not None:
                local.replace(match, _strip_state(child))
            else:
                _insert(local, _strip_state(child))
        elif child.tag in _MERGED and match is not None:
            _merge(match, child)
        elif match is not None:
            local.replace(match, _strip_state(child))
        else:
            _insert(local, _strip_state(child))


_PARSER: Final = etree.XMLParser(resolve_entities=False, no_network=True, remove_blank_text=True)


def _parse(doc: bytes) -> etree._Element:
    try:
        root = etree.fromstring(doc, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise EventInfoError(f"not well-formed XML: {exc}") from None
    if root.tag != _q("conference-info"):
        raise EventInfoError("not a conference-info document")
    return root


def apply_partial(local_doc: bytes, update_doc: bytes) -> bytes:
    """Merge a received document into the subscriber's full copy (RFC 4575 §4.6); returns the new copy.

    A full update replaces the copy; a partial one needs version ``local + 1`` (an older or equal version
    is ignored and the copy returned unchanged; a later one raises :class:`VersionGapError`).
    """
    local, update = _parse(local_doc), _parse(update_doc)
    if local.get("entity") != update.get("entity"):
        raise EventInfoError("documents of different conferences")
    if local.get("state", "full") != "full":
        raise EventInfoError("the local copy must be full state")
    try:
        lv, uv = int(local.get("version", "")), int(update.get("version", ""))
    except ValueError:
        raise EventInfoError("missing or bad version") from None
    state = update.get("state", "full")
    if state == "full":
        return update_doc
    if state != "partial":
        raise EventInfoError(f"cannot apply a {state!r} document")
    if uv <= lv:
        return local_doc
    if uv != lv + 1:
        raise VersionGapError(f"version {uv} after {lv}: fetch full state")
    _merge(local, update)
    local.set("version", str(uv))
    local.set("state", "full")
    return bytes(etree.tostring(local, xml_declaration=True, encoding="UTF-8"))
