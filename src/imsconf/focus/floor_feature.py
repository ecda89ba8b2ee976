"""The focus side of BFCP (RFC 8855 over TCP/TLS, RFC 8856 SDP): floors per conference, users bound to legs.

One :class:`FocusFloor` serves every conference of the focus.  It is sans-I/O and implements the
:class:`imsconf.floor.transport.FloorServerPort` interface, so the asyncio adapter
:class:`~imsconf.floor.transport.BfcpTransport` drives it over one TCP and one TLS listener, which the
runtime opens (:mod:`imsconf.app.bfcp`).  Connections are dispatched by the conference id of their
COMMON-HEADER.

* **SDP** (:meth:`FocusFloor.sdp_hook`): when a participant's offer carries
  ``m=application <port> TCP/BFCP *`` or ``TCP/TLS/BFCP``, the answer accepts it with
  ``a=floorctrl:s-only``, ``a=setup:passive``, ``a=connection``, ``a=confid`` (the conference's random
  32-bit BFCP id), ``a=userid`` (a random 16-bit id assigned to this participant),
  ``a=floorid:1 mstrm:<audio label>`` (the audio floor) and ``a=floorid:2`` (the presentation floor), and
  for TLS the ``a=fingerprint`` of the server certificate.  Anything else (no listener for that transport,
  ``a=setup:passive`` offered, TLS without a fingerprint) leaves the line rejected with port 0.
* **Binding**: a new connection is held until its first COMMON-HEADER arrives.  It must name
  a conference and a user id the focus assigned.  Over TLS the client certificate must match one of the
  ``a=fingerprint`` values of that participant's offer; over TCP the connection must come from the host the
  participant's SIP signalling came from.  Only then is the connection bound to that user in the
  conference's :class:`~imsconf.floor.server.FloorControlServer`, which enforces from then on that the client
  only ever speaks as itself.  Anything else gets an Error (Conference Does Not Exist, User Does Not Exist,
  Use TLS or Unauthorized Operation) and is closed.
* **Policy**: chair-controlled by default (the chair of both floors is the conference owner's BFCP user), or
  first-come automatic grant; per conference with :meth:`FocusFloor.configure`.
* **Media**: in floor-controlled audio mode only the holders of the audio floor are mixed:
  ``set_floor_control(conf_id, True)`` when the conference's floors are created, then
  ``set_floor_holders(conf_id, leg_ids)`` whenever the holders change.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import struct
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Protocol

from imsconf.conference.events import ConferenceClosed, ConferenceEvent, ParticipantLeft
from imsconf.conference.model import Conference
from imsconf.floor.attributes import ErrorCode, ErrorInfo
from imsconf.floor.codec import Message
from imsconf.floor.constants import COMMON_HEADER_SIZE, ErrorCodeValue, Primitive
from imsconf.floor.events import FloorEvent, FloorGranted, FloorReleased, FloorRevoked
from imsconf.floor.sdp import (
    PROTO_TCP,
    PROTO_TLS,
    BfcpMedia,
    ConnectionAttr,
    FloorCtrl,
    FloorIdAttr,
    Setup,
    answer_floorctrl,
)
from imsconf.floor.server import FloorConfig, FloorControlServer, Policy
from imsconf.media.events import MediaEngineError
from imsconf.sdp.errors import SdpParseError
from imsconf.sdp.session import Attribute, Connection, SessionDescription
from imsconf.sip.endpoint import SipEndpoint

from .ports import FeatureBase

__all__ = [
    "AUDIO_FLOOR",
    "PRESENTATION_FLOOR",
    "ConferenceFloors",
    "FloorMediaControl",
    "FloorPart",
    "FloorUser",
    "FocusFloor",
    "SdpHook",
    "certificate_fingerprint",
]

log = logging.getLogger("imsconf.focus.floor")

AUDIO_FLOOR = 1
PRESENTATION_FLOOR = 2
AUDIO_LABEL = "1"
MAX_PENDING_OCTETS = 4096

SdpHook = Callable[[SessionDescription, SessionDescription], SessionDescription]
"""``(offer, answer) -> answer``: what :class:`~imsconf.focus.media_session.MediaSession` calls last."""

_HASHES: dict[str, Callable[[bytes], bytes]] = {
    "sha-1": lambda d: hashlib.sha1(d).digest(),  # RFC 8122 allows it; only for matching
    "sha-224": lambda d: hashlib.sha224(d).digest(),
    "sha-256": lambda d: hashlib.sha256(d).digest(),
    "sha-384": lambda d: hashlib.sha384(d).digest(),
    "sha-512": lambda d: hashlib.sha512(d).digest(),
}


def certificate_fingerprint(der: bytes, hash_function: str = "sha-256") -> str:
    """The RFC 8122 fingerprint of a DER certificate: upper-case hex octets joined by colons."""
    return _HASHES[hash_function.lower()](der).hex(":").upper()


class FloorMediaControl(Protocol):
    """What the floor needs from the mixer (two calls of ``MediaControl``)."""

    def set_floor_control(self, conference_id: str, enabled: bool) -> None: ...

    def set_floor_holders(self, conference_id: str, leg_ids: frozenset[str]) -> None: ...


@dataclass(slots=True)
class FloorUser:
    """A SIP participant that negotiated a BFCP stream."""

    user_id: int
    leg_id: str
    aor: str
    display: str | None
    proto: str
    fingerprints: tuple[tuple[str, str], ...]
    peer_host: str
    conn_id: int | None = None


@dataclass(slots=True)
class ConferenceFloors:
    """The floors of one conference."""

    conf_id: str
    bfcp_id: int
    server: FloorControlServer
    owner: str | None
    policy: Policy
    floor_controlled_audio: bool
    users: dict[int, FloorUser] = field(default_factory=dict)
    by_leg: dict[str, int] = field(default_factory=dict)
    audio_holders: tuple[str, ...] = ()

    def leg_of(self, user_id: int) -> str | None:
        user = self.users.get(user_id)
        return user.leg_id if user is not None else None


@dataclass(slots=True)
class _Pending:
    """A connection not bound yet: octets held until the COMMON-HEADER is complete."""

    made_at: float
    buf: bytearray = field(default_factory=bytearray)
    tls: bool = False
    peer_cert: bytes | None = None
    peer_host: str | None = None


@dataclass(frozen=True, slots=True)
class _Refusal:
    code: ErrorCodeValue
    reason: str


@dataclass(frozen=True, slots=True)
class _Listener:
    host: str
    port: int
    fingerprint: tuple[str, str] | None


class FocusFloor:
    """BFCP for every conference of the focus; see the module docstring."""

    def __init__(
        self,
        media: FloorMediaControl,
        *,
        policy: Policy = Policy.CHAIR,
        floor_controlled_audio: bool = True,
        bind_timeout: float = 10.0,
        on_change: Callable[[str], None] | None = None,
        wake: Callable[[], None] | None = None,
    ) -> None:
        """*on_change*: ``conf_id`` whose floor holders changed; *wake*: the BFCP adapter's transmit, called
        when focus-side calls left messages or closes to send."""
        self.media = media
        self.policy = policy
        self.floor_controlled_audio = floor_controlled_audio
        self.bind_timeout = bind_timeout
        self.conferences: dict[str, ConferenceFloors] = {}
        self.history: list[tuple[str, FloorEvent]] = []  # (conf_id, event), for logs and tests
        self.on_change = on_change  # conf_id: holders changed
        self._wake_adapter = wake
        self._listeners: dict[str, _Listener] = {}
        self._overrides: dict[str, tuple[Policy | None, bool | None]] = {}
        self._by_bfcp_id: dict[int, ConferenceFloors] = {}
        self._pending: dict[int, _Pending] = {}
        self._bound: dict[int, ConferenceFloors] = {}
        self._out: list[tuple[int, bytes]] = []
        self._close: list[int] = []

    # ---- configuration -------------------------------------------------------------------------------
    def set_listener(
        self, proto: str, host: str, port: int, *, fingerprint: tuple[str, str] | None = None
    ) -> None:
        """Offer BFCP over ``proto`` (``TCP/BFCP`` or ``TCP/TLS/BFCP``) at ``host:port``; TLS needs the
        server certificate's fingerprint (``("sha-256", "AB:CD:...")``)."""
        if proto not in (PROTO_TCP, PROTO_TLS):
            raise ValueError(f"unsupported BFCP proto {proto!r}")
        if proto == PROTO_TLS and fingerprint is None:
            raise ValueError("TCP/TLS/BFCP needs the server certificate fingerprint")
        self._listeners[proto] = _Listener(host, port, fingerprint)

    def configure(
        self, conf_id: str, *, policy: Policy | None = None, floor_controlled_audio: bool | None = None
    ) -> None:
        """Per-conference policy (e.g. from a booking); applies when its floors are created."""
        self._overrides[conf_id] = (policy, floor_controlled_audio)

    # ---- the focus's side ----------------------------------------------------------------------------
    def sdp_hook(
        self, conf: Conference, leg_id: str, aor: str, *, display: str | None, peer_host: str
    ) -> SdpHook:
        """The answer post-processor for one leg (set as ``MediaSession.sdp_hook``)."""
        conf_id, owner = conf.conf_id, conf.owner

        def hook(offer: SessionDescription, answer: SessionDescription) -> SessionDescription:
            try:
                return self.answer(conf_id, owner, leg_id, aor, display, peer_host, offer, answer)
            except (SdpParseError, ValueError) as exc:
                log.info("event=bfcp_offer_refused leg=%s reason=%r", leg_id, str(exc))
                return answer

        return hook

    def on_event(self, conf: Conference, ev: ConferenceEvent) -> None:
        """Conference events from the focus's ``apply``: a participant left, the conference closed."""
        if isinstance(ev, ParticipantLeft):
            self.participant_left(conf.conf_id, f"{conf.conf_id}.{ev.participant.participant_id}")
        elif isinstance(ev, ConferenceClosed):
            self.conference_closed(conf.conf_id)

    def participant_left(self, conf_id: str, leg_id: str) -> None:
        cf = self.conferences.get(conf_id)
        user_id = cf.by_leg.pop(leg_id, None) if cf is not None else None
        if cf is None or user_id is None:
            return
        user = cf.users[user_id]
        if user.aor == cf.owner and not any(
            u.aor == cf.owner for u in cf.users.values() if u.user_id != user_id
        ):
            for floor_id in cf.server.floors:
                cf.server.set_chair(floor_id, None)
        cf.server.remove_user(user_id)
        self._drain(cf)
        del cf.users[user_id]
        self._wake()

    def conference_closed(self, conf_id: str) -> None:
        cf = self.conferences.pop(conf_id, None)
        self._overrides.pop(conf_id, None)
        if cf is None:
            return
        self._by_bfcp_id.pop(cf.bfcp_id, None)
        for user_id in list(cf.users):
            cf.server.remove_user(user_id)
        cf.users.clear()
        cf.by_leg.clear()
        self._drain(cf, media=False)
        self._wake()

    def holders(self, conf_id: str, floor_id: int = AUDIO_FLOOR) -> list[str]:
        """Leg ids holding ``floor_id`` in that conference."""
        cf = self.conferences.get(conf_id)
        if cf is None:
            return []
        return sorted(leg for u in cf.server.holders(floor_id) if (leg := cf.leg_of(u)) is not None)

    def user_of(self, leg_id: str) -> FloorUser | None:
        cf = self.conferences.get(leg_id.split(".", 1)[0])
        user_id = cf.by_leg.get(leg_id) if cf is not None else None
        return cf.users[user_id] if cf is not None and user_id is not None else None

    # ---- SDP -------------------------------------------------------------------------------------------
    def answer(
        self,
        conf_id: str,
        owner: str | None,
        leg_id: str,
        aor: str,
        display: str | None,
        peer_host: str,
        offer: SessionDescription,
        answer: SessionDescription,
    ) -> SessionDescription:
        """Accept the first BFCP stream of ``offer`` in ``answer`` (which rejected it with port 0)."""
        index = next(
            (
                i
                for i, m in enumerate(offer.media)
                if m.media == "application" and m.port != 0 and m.proto.upper() in (PROTO_TCP, PROTO_TLS)
            ),
            None,
        )
        if index is None or index >= len(answer.media):
            self.participant_left(conf_id, leg_id)  # a re-offer without BFCP ends the floor user
            return answer
        offered = BfcpMedia.from_media(offer.media[index])
        listener = self._listeners.get(offered.proto)
        if listener is None:
            raise ValueError(f"no {offered.proto} listener")
        if answer_floorctrl(offered.floorctrl) is None:
            raise ValueError("the offerer cannot be a floor control client")
        if offered.setup not in (None, Setup.ACTIVE, Setup.ACTPASS):
            raise ValueError(f"cannot be the active side (offered setup:{offered.setup})")
        if offered.uses_tls and not offered.fingerprints:
            raise ValueError("TCP/TLS/BFCP offered without a=fingerprint")
        cf = self._conference(conf_id, owner)
        user_id = cf.by_leg.get(leg_id)
        fresh = user_id is None
        if user_id is None:
            user_id = self._new_user_id(cf)
            cf.users[user_id] = FloorUser(
                user_id, leg_id, aor, display, offered.proto, offered.fingerprints, peer_host
            )
            cf.by_leg[leg_id] = user_id
            cf.server.add_user(user_id, display_name=display, uri=aor)
        else:
            user = cf.users[user_id]
            user.proto, user.fingerprints, user.peer_host = offered.proto, offered.fingerprints, peer_host
        if owner is not None and aor == owner:
            for floor_id in cf.server.floors:
                cf.server.set_chair(floor_id, user_id)
        connection = (
            ConnectionAttr.NEW
            if fresh or offered.connection in (None, ConnectionAttr.NEW)
            else ConnectionAttr.EXISTING
        )
        media = list(answer.media)
        audio = next((i for i, m in enumerate(media) if m.media == "audio" and m.port != 0), None)
        floors = [FloorIdAttr(AUDIO_FLOOR), FloorIdAttr(PRESENTATION_FLOOR)]
        if audio is not None:
            label = media[audio].get_attribute("label")
            if label is None:
                label = AUDIO_LABEL
                m = media[audio]
                media[audio] = replace(m, attributes=(*m.attributes, Attribute("label", label)))
            floors[0] = FloorIdAttr(AUDIO_FLOOR, (label,))
        section = BfcpMedia(
            listener.port,
            offered.proto,
            (FloorCtrl.S_ONLY,),
            cf.bfcp_id,
            user_id,
            tuple(floors),
            Setup.PASSIVE,
            connection,
            (listener.fingerprint,) if offered.uses_tls and listener.fingerprint else (),
            (1,) if offered.versions and 1 in offered.versions else (),
        ).to_media()
        session_host = answer.connection.address if answer.connection is not None else None
        if listener.host != session_host:
            addrtype = "IP6" if ":" in listener.host else "IP4"
            section = replace(section, connections=(Connection(listener.host, "IN", addrtype),))
        media[index] = section
        log.info(
            "event=bfcp_answered conf=%s leg=%s confid=%d userid=%d proto=%s",
            conf_id,
            leg_id,
            cf.bfcp_id,
            user_id,
            offered.proto,
        )
        return replace(answer, media=tuple(media))

    def _conference(self, conf_id: str, owner: str | None) -> ConferenceFloors:
        cf = self.conferences.get(conf_id)
        if cf is not None:
            return cf
        policy, audio_mode = self._overrides.get(conf_id, (None, None))
        policy = policy or self.policy
        audio_mode = self.floor_controlled_audio if audio_mode is None else audio_mode
        bfcp_id = 0
        while bfcp_id == 0 or bfcp_id in self._by_bfcp_id:
            bfcp_id = secrets.randbits(32)
        server = FloorControlServer(
            bfcp_id,
            [FloorConfig(AUDIO_FLOOR, policy), FloorConfig(PRESENTATION_FLOOR, policy)],
            bind_timeout=self.bind_timeout,
        )
        cf = ConferenceFloors(conf_id, bfcp_id, server, owner, policy, audio_mode)
        self.conferences[conf_id] = cf
        self._by_bfcp_id[bfcp_id] = cf
        if audio_mode:
            self._set_floor_control(conf_id)
            self._set_floor_holders(conf_id, frozenset())
        log.info(
            "event=floors_created conf=%s confid=%d policy=%s audio_floor=%s",
            conf_id,
            bfcp_id,
            policy,
            audio_mode,
        )
        return cf

    @staticmethod
    def _new_user_id(cf: ConferenceFloors) -> int:
        while True:
            user_id = secrets.randbelow(0xFFFF) + 1
            if user_id not in cf.users:
                return user_id

    # ---- the adapter's side (FloorServerPort) --------------------------------------------------------
    def connection_made(self, conn_id: int, now: float) -> None:
        self._pending[conn_id] = _Pending(now)

    def peer_info(self, conn_id: int, *, tls: bool, peer_cert: bytes | None, peer_host: str | None) -> None:
        """What the adapter learnt of a new connection: TLS or not, the client certificate, the host."""
        p = self._pending.get(conn_id)
        if p is not None:
            p.tls, p.peer_cert, p.peer_host = tls, peer_cert, peer_host

    def connection_lost(self, conn_id: int) -> None:
        self._pending.pop(conn_id, None)
        cf = self._bound.pop(conn_id, None)
        if cf is None:
            return
        for user in cf.users.values():
            if user.conn_id == conn_id:
                user.conn_id = None
        cf.server.connection_lost(conn_id)
        self._drain(cf)

    def receive(self, conn_id: int, data: bytes, now: float) -> None:
        cf = self._bound.get(conn_id)
        if cf is not None:
            cf.server.receive(conn_id, data, now)
            self._drain(cf)
            return
        p = self._pending.get(conn_id)
        if p is None:
            return
        p.buf += data
        if len(p.buf) < COMMON_HEADER_SIZE:
            if len(p.buf) > MAX_PENDING_OCTETS:  # pragma: no cover - cannot happen below the header size
                self._refuse(conn_id, 0, 0, 0, ErrorCodeValue.GENERIC_ERROR, "")
            return
        first, _primitive, _length, confid, tid, uid = struct.unpack_from("!BBHIHH", p.buf)
        if first >> 5 != 1:
            return self._refuse(
                conn_id, confid, tid, uid, ErrorCodeValue.UNSUPPORTED_VERSION, "version 1 only"
            )
        found = self._authorize(p, confid, uid)
        if isinstance(found, _Refusal):
            log.info(
                "event=bfcp_refused conn=%d confid=%d userid=%d reason=%r", conn_id, confid, uid, found.reason
            )
            return self._refuse(conn_id, confid, tid, uid, found.code, found.reason)
        cf, user = found
        del self._pending[conn_id]
        self._bound[conn_id] = cf
        user.conn_id = conn_id
        cf.server.connection_made(conn_id, p.made_at)
        cf.server.bind(conn_id, user.user_id, display_name=user.display, uri=user.aor)
        log.info(
            "event=bfcp_bound conf=%s leg=%s userid=%d tls=%s", cf.conf_id, user.leg_id, user.user_id, p.tls
        )
        cf.server.receive(conn_id, bytes(p.buf), now)
        self._drain(cf)

    def outputs(self) -> list[tuple[int, bytes]]:
        out, self._out = self._out, []
        return out

    def connections_to_close(self) -> list[int]:
        out, self._close = self._close, []
        return out

    def events(self) -> list[FloorEvent]:
        return []  # consumed here: they drive the mixer (see ``history``)

    def next_deadline(self) -> float | None:
        times = [p.made_at + self.bind_timeout for p in self._pending.values()]
        return min(times) if times else None

    def handle_timer(self, now: float) -> None:
        for conn_id, p in list(self._pending.items()):
            if now >= p.made_at + self.bind_timeout:
                del self._pending[conn_id]
                self._close.append(conn_id)

    # ---- internals -------------------------------------------------------------------------------------
    def _authorize(self, p: _Pending, confid: int, uid: int) -> tuple[ConferenceFloors, FloorUser] | _Refusal:
        cf = self._by_bfcp_id.get(confid)
        if cf is None:
            return _Refusal(ErrorCodeValue.CONFERENCE_DOES_NOT_EXIST, f"no conference {confid}")
        user = cf.users.get(uid)
        if user is None:
            return _Refusal(ErrorCodeValue.USER_DOES_NOT_EXIST, f"no user {uid}")
        if user.proto == PROTO_TLS:
            if not p.tls:
                return _Refusal(ErrorCodeValue.USE_TLS, "TCP/TLS/BFCP was negotiated")
            if p.peer_cert is None:
                return _Refusal(ErrorCodeValue.UNAUTHORIZED_OPERATION, "no client certificate")
            if not any(
                h in _HASHES and certificate_fingerprint(p.peer_cert, h) == fp for h, fp in user.fingerprints
            ):
                return _Refusal(
                    ErrorCodeValue.UNAUTHORIZED_OPERATION, "certificate does not match a=fingerprint"
                )
        else:
            if p.tls:
                return _Refusal(ErrorCodeValue.UNAUTHORIZED_OPERATION, "TCP/BFCP was negotiated, not TLS")
            if p.peer_host is None or p.peer_host != user.peer_host:
                return _Refusal(ErrorCodeValue.UNAUTHORIZED_OPERATION, "not from the participant's host")
        return cf, user

    def _refuse(
        self, conn_id: int, confid: int, tid: int, uid: int, code: ErrorCodeValue, reason: str
    ) -> None:
        self._pending.pop(conn_id, None)
        attrs = (ErrorCode(code), ErrorInfo(reason)) if reason else (ErrorCode(code),)
        self._out.append((conn_id, bytes(Message(Primitive.ERROR, confid, tid, uid, attrs))))
        self._close.append(conn_id)

    def _drain(self, cf: ConferenceFloors, *, media: bool = True) -> None:
        self._out += cf.server.outputs()
        self._close += cf.server.connections_to_close()
        events = cf.server.events()
        for ev in events:
            self.history.append((cf.conf_id, ev))
            kind = {FloorGranted: "granted", FloorReleased: "released", FloorRevoked: "revoked"}[type(ev)]
            log.info(
                "event=floor_%s conf=%s floor=%d leg=%s", kind, cf.conf_id, ev.floor_id, cf.leg_of(ev.user_id)
            )
        holders = tuple(self.holders(cf.conf_id)) if cf.conf_id in self.conferences else ()
        if holders != cf.audio_holders:
            cf.audio_holders = holders
            if media and cf.floor_controlled_audio:
                self._set_floor_holders(cf.conf_id, frozenset(holders))
        if events and self.on_change is not None:
            self.on_change(cf.conf_id)

    # the mixer may not know the conference yet / any more: log, keep BFCP going
    def _set_floor_control(self, conf_id: str) -> None:
        try:
            self.media.set_floor_control(conf_id, True)
        except (MediaEngineError, KeyError, ValueError):
            log.exception("event=floor_media_error call=set_floor_control")

    def _set_floor_holders(self, conf_id: str, legs: frozenset[str]) -> None:
        try:
            self.media.set_floor_holders(conf_id, legs)
        except (MediaEngineError, KeyError, ValueError):
            log.exception("event=floor_media_error call=set_floor_holders")

    def _wake(self) -> None:
        if self._wake_adapter is not None:
            self._wake_adapter()


class FloorPart(FeatureBase):
    """The floors as a feature part of the focus: roster events reach them. Their own deadlines are BFCP
    timers, which the BFCP adapter drives (:meth:`FocusFloor.handle_timer`), not the focus."""

    def __init__(self, floor: FocusFloor) -> None:
        self.floor = floor

    def on_event(self, ep: SipEndpoint, conf: Conference, ev: ConferenceEvent, now: float) -> None:
        self.floor.on_event(conf, ev)
