"""Session-mode instant messaging: the focus as the conference's MSRP switch (RFC 7701, RFC 4975).

* **SDP** (:meth:`FocusChat.sdp_hook`): an offer with ``m=message <port> TCP/TLS/MSRP *`` (``TCP/MSRP``
  only with ``allow_plain``), in the join INVITE or a re-INVITE, is answered with the focus's own
  ``a=path:msrps://host:port/<session-id>;tcp`` (a random, unguessable session-id per participant, kept
  across re-INVITEs), ``a=accept-types:message/cpim text/plain``, ``a=accept-wrapped-types:*`` and, when
  the listener's certificate is self-signed, its ``a=fingerprint`` (RFC 4975 §14.4). The participant
  connects (it is the offerer, RFC 4975 §5.4); an offer with ``a=setup:passive``, no listener for its
  transport or a broken section leaves the line rejected (port 0). A re-offer without it ends the chat.
* **Who may connect**: a new connection is held until its first request. The session-id in the first URI
  of its To-Path must be one the focus handed out; over TLS, when the participant's SDP gave
  ``a=fingerprint``, its client certificate must match one of them (a self-signed one included, RFC 4975
  §14.4); without ``a=fingerprint`` a client certificate, if any, must be one whose chain the adapter
  verified against the conference CA; a plain connection must come from the
  participant's signalling host, and plain MSRP is never accepted for a TLS session. Anything else gets 481
  (or 403) and is closed.
* **The switch**: a whole message (chunks put together by :class:`~imsconf.im.msrp_session.MsrpSession`,
  under ``max_message`` octets) from one participant is sent to every other bound chat participant of the
  conference as ``message/cpim``: ``From`` the sender's identity as the focus knows it (the roster's AoR
  and display name; a participant that asked for privacy is ``"Anonymous" <sip:anonymous@anonymous.invalid>``
  to all but itself, the owner and moderators, as in the event package), ``To`` the conference URI,
  ``DateTime`` of its arrival. A ``message/cpim`` whose ``To`` names a participant (not the conference) is
  private: it goes to that participant's devices only, and a name nobody has gets a failure REPORT.
* **History**: the last ``history`` public messages are replayed to a participant when its connection is
  bound, each with the ``DateTime`` of the original and the header ``imsconf.History: original`` in the
  namespace ``NS: imsconf <urn:imsconf:params:cpim>`` (RFC 3862 §3.3).
* **Counter**: :meth:`FocusChat.message_count` is the number of messages relayed in a conference (for the
  operator view; no content is kept beyond the history).

Sans-I/O: the MSRP adapter (``imsconf.app.msrp``) drives the connection side (``connection_made``,
``peer_info``, ``receive``, ``connection_lost``, ``outputs``, ``connections_to_close``, ``next_deadline``,
``handle_timer``); the focus core drives the SDP hook and the feature hooks (:class:`ChatPart`).
"""

from __future__ import annotations

import hmac
import logging
import secrets
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from imsconf.conference.events import ConferenceClosed, ConferenceEvent, ParticipantLeft
from imsconf.conference.model import Conference
from imsconf.conference.participant import Participant, Role
from imsconf.im.cpim import CpimError, CpimMessage, parse_cpim, render_cpim
from imsconf.im.msrp import DEFAULT_MAX_CHUNK, Frame, MsrpError, MsrpParser, MsrpUri, render
from imsconf.im.msrp_session import (
    DEFAULT_MAX_MESSAGE,
    MessageReceived,
    MsrpSession,
    ReportReceived,
    SendDone,
    SendFailed,
    SessionClosed,
)
from imsconf.sdp.errors import SdpParseError
from imsconf.sdp.msrp import (
    PROTO_MSRP,
    PROTO_MSRPS,
    MessageMedia,
    answer_message_media,
    offered_message_index,
)
from imsconf.sdp.session import Connection, SessionDescription
from imsconf.sip.endpoint import SipEndpoint
from imsconf.sip.errors import SipParseError
from imsconf.sip.uri import NameAddr

from .floor_feature import SdpHook, certificate_fingerprint
from .legs import Leg
from .ports import FeatureBase

__all__ = ["ACCEPT_TYPES", "HISTORY_HEADER", "HISTORY_NS", "ChatPart", "FocusChat"]

log = logging.getLogger("imsconf.focus.chat")

ACCEPT_TYPES = ("message/cpim", "text/plain")
HISTORY_NS = "imsconf <urn:imsconf:params:cpim>"
HISTORY_HEADER = ("imsconf.History", "original")
ANONYMOUS_FROM = '"Anonymous" <sip:anonymous@anonymous.invalid>'
MAX_PENDING_OCTETS = 16 * 1024  # header block and body held from a connection before it is bound
MAX_RELAYED = 4096  # private messages in flight whose failure goes back to the sender


@dataclass(slots=True)
class ChatMember:
    """A participant that negotiated an MSRP stream."""

    leg_id: str
    pid: str
    local: MsrpUri  # our URI for it: its session-id is what its connection must address
    remote: tuple[MsrpUri, ...]
    proto: str
    fingerprints: tuple[tuple[str, str], ...]
    peer_host: str
    conn_id: int | None = None
    session: MsrpSession | None = None


@dataclass(slots=True)
class _Past:
    """A public message of the history, as the switch received it."""

    sender_pid: str
    sender: Participant
    content_type: str
    content_headers: tuple[tuple[str, str], ...]
    body: bytes
    when: str
    subject: str | None


@dataclass(slots=True)
class ChatRoom:
    """The chat of one conference."""

    conf: Conference
    members: dict[str, ChatMember] = field(default_factory=dict)  # by leg id
    history: deque[_Past] = field(default_factory=deque)
    count: int = 0  # messages relayed


@dataclass(slots=True)
class _Pending:
    made_at: float
    parser: MsrpParser
    tls: bool = False
    peer_cert: bytes | None = None
    peer_host: str | None = None
    peer_cert_verified: bool = True


@dataclass(frozen=True, slots=True)
class _Listener:
    host: str
    port: int
    fingerprint: tuple[str, str] | None  # only for a self-signed certificate


@dataclass(slots=True)
class _Relayed:
    """A private message sent on: where a failure REPORT goes."""

    sender_leg: str
    message_id: str
    total: int
    failure_report: str


class FocusChat:
    """MSRP chat for every conference of the focus; see the module docstring."""

    def __init__(
        self,
        *,
        history: int = 20,
        max_message: int = DEFAULT_MAX_MESSAGE,
        allow_plain: bool = False,
        bind_timeout: float = 10.0,
        wall_clock_offset: float = 0.0,
        wake: Callable[[], None] | None = None,
        on_relayed: Callable[[str, float], None] | None = None,
    ) -> None:
        """*wake*: the MSRP adapter's transmit, called when focus-side calls left octets or closes;
        *on_relayed*: ``(conference id, now)`` after each message relayed (the operator's live count)."""
        self.history_size = history
        self.max_message = max_message
        self.allow_plain = allow_plain
        self.bind_timeout = bind_timeout
        self.wall_clock_offset = wall_clock_offset
        self._wake_adapter = wake
        self.on_relayed = on_relayed
        self.rooms: dict[str, ChatRoom] = {}
        self._listeners: dict[str, _Listener] = {}
        self._by_session: dict[str, ChatMember] = {}
        self._room_of: dict[str, ChatRoom] = {}  # leg id -> room
        self._pending: dict[int, _Pending] = {}
        self._bound: dict[int, ChatMember] = {}
        self._out: list[tuple[int, bytes]] = []
        self._close: list[int] = []
        self._relayed: dict[str, _Relayed] = {}

    # ---- configuration -------------------------------------------------------------------------------
    def set_listener(
        self, proto: str, host: str, port: int, *, fingerprint: tuple[str, str] | None = None
    ) -> None:
        """Offer MSRP over ``proto`` (``TCP/TLS/MSRP``, or ``TCP/MSRP``) at ``host:port``; *fingerprint*
        (``("sha-256", "AB:..")``) goes in answers: give it when the certificate is self-signed."""
        if proto not in (PROTO_MSRP, PROTO_MSRPS):
            raise ValueError(f"unsupported MSRP proto {proto!r}")
        self._listeners[proto] = _Listener(host, port, fingerprint)

    # ---- what the focus and the operator read --------------------------------------------------------
    def negotiated(self, leg_id: str) -> bool:
        """The leg has an MSRP stream (the event package shows its ``message`` media)."""
        return leg_id in self._room_of

    def message_count(self, conf_id: str) -> int:
        """Messages relayed in the conference so far (0 for a conference without chat)."""
        room = self.rooms.get(conf_id)
        return room.count if room is not None else 0

    def member(self, leg_id: str) -> ChatMember | None:
        room = self._room_of.get(leg_id)
        return room.members.get(leg_id) if room is not None else None

    # ---- SDP -------------------------------------------------------------------------------------------
    def sdp_hook(self, conf: Conference, leg_id: str, pid: str, *, peer_host: str, inner: SdpHook) -> SdpHook:
        """*inner* (the other parts' answer post-processing) first, then the message stream."""

        def hook(offer: SessionDescription, answer: SessionDescription) -> SessionDescription:
            answer = inner(offer, answer)
            try:
                return self.answer(conf, leg_id, pid, peer_host, offer, answer)
            except (SdpParseError, MsrpError, ValueError) as exc:
                log.info("event=msrp_offer_refused leg=%s reason=%r", leg_id, str(exc))
                self.forget(leg_id)
                return answer

        return hook

    def answer(
        self,
        conf: Conference,
        leg_id: str,
        pid: str,
        peer_host: str,
        offer: SessionDescription,
        answer: SessionDescription,
    ) -> SessionDescription:
        """Accept the first MSRP stream of *offer* in *answer* (which rejected it with port 0)."""
        index = offered_message_index(offer.media, allow_plain=self.allow_plain)
        if index is None or index >= len(answer.media):
            self.forget(leg_id)  # a re-offer without chat ends it
            return answer
        offered = MessageMedia.from_media(offer.media[index])
        listener = self._listeners.get(offered.proto)
        if listener is None:
            raise ValueError(f"no {offered.proto} listener")
        if offered.setup == "passive":
            raise ValueError("the offerer must connect (a=setup:passive offered)")
        remote = tuple(MsrpUri.parse(u) for u in offered.path)
        room = self.rooms.get(conf.conf_id)
        if room is None:
            room = self.rooms[conf.conf_id] = ChatRoom(conf, history=deque(maxlen=self.history_size))
        member = room.members.get(leg_id)
        scheme = "msrps" if offered.uses_tls else "msrp"
        if member is None or member.proto != offered.proto:
            if member is not None:
                self.forget(leg_id)
            session_id = secrets.token_urlsafe(18)
            local = MsrpUri(scheme, listener.host, listener.port, session_id, "tcp")
            member = ChatMember(leg_id, pid, local, remote, offered.proto, offered.fingerprints, peer_host)
            room.members[leg_id] = member
            self._by_session[session_id] = member
            self._room_of[leg_id] = room
        else:
            member.remote, member.fingerprints, member.peer_host = remote, offered.fingerprints, peer_host
            if member.session is not None:
                member.session.remote = remote
        section = answer_message_media(
            listener.port,
            offered.proto,
            str(member.local),
            ACCEPT_TYPES,
            ("*",),
            listener.fingerprint,
        )
        session_host = answer.connection.address if answer.connection is not None else None
        if listener.host != session_host:
            addrtype = "IP6" if ":" in listener.host else "IP4"
            section = replace(section, connections=(Connection(listener.host, "IN", addrtype),))
        media = list(answer.media)
        media[index] = section
        log.info("event=msrp_answered conf=%s leg=%s proto=%s", conf.conf_id, leg_id, offered.proto)
        return replace(answer, media=tuple(media))

    # ---- the focus's side ----------------------------------------------------------------------------
    def on_event(self, conf: Conference, ev: ConferenceEvent) -> None:
        if isinstance(ev, ParticipantLeft):
            self.forget(f"{conf.conf_id}.{ev.participant.participant_id}")
        elif isinstance(ev, ConferenceClosed):
            room = self.rooms.get(conf.conf_id)
            for leg_id in list(room.members) if room is not None else ():
                self.forget(leg_id)
            self.rooms.pop(conf.conf_id, None)

    def forget(self, leg_id: str) -> None:
        """The participant's chat ends: its connection is closed."""
        room = self._room_of.pop(leg_id, None)
        member = room.members.pop(leg_id, None) if room is not None else None
        if member is None:
            return
        self._by_session.pop(member.local.session_id, None)
        if member.conn_id is not None:
            self._bound.pop(member.conn_id, None)
            self._flush(member)
            self._close.append(member.conn_id)
            member.conn_id = None
            self._wake()

    # ---- the adapter's side --------------------------------------------------------------------------
    def connection_made(self, conn_id: int, now: float) -> None:
        parser = MsrpParser(max_header=MAX_PENDING_OCTETS, max_chunk=MAX_PENDING_OCTETS)
        self._pending[conn_id] = _Pending(now, parser)

    def peer_info(
        self,
        conn_id: int,
        *,
        tls: bool,
        peer_cert: bytes | None,
        peer_host: str | None,
        peer_cert_verified: bool = True,
    ) -> None:
        """What the adapter learnt of a new connection; *peer_cert_verified*: the client certificate's
        chain verified against the conference CA (a TLS layer that lets any certificate through says so)."""
        p = self._pending.get(conn_id)
        if p is not None:
            p.tls, p.peer_cert, p.peer_host = tls, peer_cert, peer_host
            p.peer_cert_verified = peer_cert_verified

    def connection_lost(self, conn_id: int) -> None:
        self._pending.pop(conn_id, None)
        member = self._bound.pop(conn_id, None)
        if member is not None:
            member.conn_id = None
            member.session = None
            log.info("event=msrp_disconnected leg=%s", member.leg_id)

    def receive(self, conn_id: int, data: bytes, now: float) -> None:
        member = self._bound.get(conn_id)
        if member is not None and member.session is not None:
            member.session.receive(data, now)
            self._after(member, now)
            return
        p = self._pending.get(conn_id)
        if p is None:
            return
        try:
            frames = p.parser.feed(data)
        except MsrpError as exc:
            log.info("event=msrp_refused conn=%d reason=%r", conn_id, exc.reason)
            self._drop(conn_id)
            return
        if not frames:
            return
        first = frames[0]
        found = self._authorize(p, first)
        if isinstance(found, int):
            log.info("event=msrp_refused conn=%d status=%d", conn_id, found)
            self._refuse(conn_id, first, found)
            return
        del self._pending[conn_id]
        member = found
        if member.conn_id is not None:  # a new connection replaces the old one
            self._bound.pop(member.conn_id, None)
            self._close.append(member.conn_id)
        member.conn_id = conn_id
        p.parser.max_chunk = DEFAULT_MAX_CHUNK  # bound: chunks of the usual size from now on
        member.session = MsrpSession(
            member.local,
            member.remote,
            parser=p.parser,
            max_message=self.max_message,
            accept_types=ACCEPT_TYPES,
        )
        self._bound[conn_id] = member
        log.info("event=msrp_bound leg=%s conn=%d tls=%s", member.leg_id, conn_id, p.tls)
        member.session.handle_frames(frames, now)  # the first SEND is answered before the history
        self._replay(member, now)
        self._after(member, now)

    def outputs(self) -> list[tuple[int, bytes]]:
        out, self._out = self._out, []
        return out

    def connections_to_close(self) -> list[int]:
        out, self._close = self._close, []
        return out

    def next_deadline(self) -> float | None:
        times = [p.made_at + self.bind_timeout for p in self._pending.values()]
        for member in self._bound.values():
            if member.session is not None and (d := member.session.next_deadline()) is not None:
                times.append(d)
        return min(times) if times else None

    def handle_timer(self, now: float) -> None:
        for conn_id, p in list(self._pending.items()):
            if now >= p.made_at + self.bind_timeout:
                del self._pending[conn_id]
                self._close.append(conn_id)
        for member in list(self._bound.values()):
            if member.session is not None:
                member.session.handle_timer(now)
                self._after(member, now)

    # ---- internals -------------------------------------------------------------------------------------
    def _authorize(self, p: _Pending, first: Frame) -> ChatMember | int:
        if not first.is_request:
            return 481
        try:
            to = first.to_path[0]
        except MsrpError:
            return 400
        member = self._by_session.get(to.session_id)
        if member is None:
            return 481
        if member.proto == PROTO_MSRPS:
            if not p.tls:
                return 403
            if member.fingerprints:
                if p.peer_cert is None:
                    return 403
                if not any(_matches(p.peer_cert, h, fp) for h, fp in member.fingerprints):
                    return 403
            elif p.peer_cert is not None and not p.peer_cert_verified:
                return 403  # no fingerprint to match: only the CA vouches for a certificate
        else:
            if p.tls or p.peer_host is None or p.peer_host != member.peer_host:
                return 403
        return member

    def _refuse(self, conn_id: int, first: Frame, status: int) -> None:
        self._pending.pop(conn_id, None)
        if first.is_request and first.method != "REPORT":
            to = first.header("From-Path") or ""
            headers = (
                ("To-Path", to.split()[0] if to else "msrp://invalid/x;tcp"),
                ("From-Path", first.header("To-Path") or "msrp://invalid/x;tcp"),
            )
            comment = "No Such Session" if status == 481 else "Forbidden"
            try:
                self._out.append(
                    (conn_id, render(Frame(first.tid, status=status, comment=comment, headers=headers)))
                )
            except ValueError:
                pass
        self._close.append(conn_id)

    def _drop(self, conn_id: int) -> None:
        self._pending.pop(conn_id, None)
        self._close.append(conn_id)

    def _after(self, member: ChatMember, now: float) -> None:
        """Act on what the member's session reported, then collect its octets (a relay collects those
        of the recipients itself)."""
        session = member.session
        if session is None:
            return
        room = self._room_of.get(member.leg_id)
        for ev in session.events():
            if isinstance(ev, MessageReceived) and room is not None:
                self._relay(room, member, ev, now)
            elif isinstance(ev, SendFailed):
                self._send_failed(ev.message_id, ev.status)
            elif isinstance(ev, SendDone):
                self._relayed.pop(ev.message_id, None)
            elif isinstance(ev, ReportReceived) and ev.status.code != 200:
                self._send_failed(ev.message_id, ev.status.code)  # a failure REPORT from the recipient
            elif isinstance(ev, SessionClosed):
                log.info("event=msrp_broken leg=%s reason=%r", member.leg_id, ev.reason)
                if member.conn_id is not None:
                    self._bound.pop(member.conn_id, None)
                    self._close.append(member.conn_id)
                    member.conn_id, member.session = None, None
        self._flush(member)

    def _flush(self, member: ChatMember) -> None:
        if member.session is not None and member.conn_id is not None:
            for data in member.session.outputs():
                self._out.append((member.conn_id, data))

    def _relay(self, room: ChatRoom, member: ChatMember, ev: MessageReceived, now: float) -> None:
        if not ev.body:
            return  # an empty SEND: the participant opens its connection (RFC 4975 §5.4)
        conf = room.conf
        if member.pid not in conf:
            return
        sender = conf.participant(member.pid)
        kind = ev.content_type.split(";", 1)[0].strip().lower()
        private: list[str] = []
        subject: str | None = None
        if kind == "message/cpim":
            try:
                msg = parse_cpim(ev.body)
            except CpimError as exc:
                log.info("event=msrp_bad_cpim leg=%s reason=%r", member.leg_id, str(exc))
                self._report_back(member, ev, 400)
                return
            private = [aor for t in msg.to if (aor := _aor(t)) is not None and aor != _aor(f"<{conf.uri}>")]
            content_type, content_headers, body, subject = (
                msg.content_type,
                msg.content_headers,
                msg.body,
                msg.subject,
            )
        else:
            content_type, content_headers, body = ev.content_type, (), ev.body
        when = _rfc3339(now + self.wall_clock_offset)
        past = _Past(member.pid, sender, content_type, content_headers, body, when, subject)
        if private:
            targets = [m for m in room.members.values() if m is not member and _user_of(conf, m) in private]
            if not targets:
                self._report_back(member, ev, 404)
                return
        else:
            targets = [m for m in room.members.values() if m is not member]
            room.history.append(past)
        room.count += 1
        to = tuple(f"<{aor}>" for aor in private) or (f"<{conf.uri}>",)
        rendered: dict[bool, bytes] = {}
        for target in targets:
            if target.session is None:
                continue
            sees = _sees_identity(conf, target, sender)
            wire = rendered.get(sees)
            if wire is None:
                wire = rendered[sees] = _cpim(past, to, sees)
            mid = target.session.send_message("message/cpim", wire, now)
            self._flush(target)
            if private:
                if len(self._relayed) >= MAX_RELAYED:  # the oldest (its recipient gone quiet) is given up
                    del self._relayed[next(iter(self._relayed))]
                self._relayed[mid] = _Relayed(member.leg_id, ev.message_id, len(ev.body), ev.failure_report)
        log.info(
            "event=msrp_relayed conf=%s leg=%s to=%d private=%s",
            conf.conf_id,
            member.leg_id,
            len(targets),
            bool(private),
        )
        if self.on_relayed is not None:
            self.on_relayed(conf.conf_id, now)

    def _replay(self, member: ChatMember, now: float) -> None:
        room = self._room_of.get(member.leg_id)
        if room is None or member.session is None:
            return
        conf = room.conf
        for past in room.history:
            if past.sender_pid == member.pid:
                continue
            sees = _sees_identity(conf, member, past.sender)
            wire = _cpim(past, (f"<{conf.uri}>",), sees, history=True)
            member.session.send_message("message/cpim", wire, now)

    def _report_back(self, member: ChatMember, ev: MessageReceived, status: int) -> None:
        if ev.failure_report == "yes" and member.session is not None:
            member.session.report(ev.message_id, status, len(ev.body))

    def _send_failed(self, message_id: str, status: int) -> None:
        """A private message could not be delivered: a failure REPORT to its sender."""
        relayed = self._relayed.pop(message_id, None)
        if relayed is None:
            return
        sender = self.member(relayed.sender_leg)
        if sender is not None and sender.session is not None and relayed.failure_report == "yes":
            sender.session.report(relayed.message_id, status, relayed.total)
            self._flush(sender)

    def _wake(self) -> None:
        if self._wake_adapter is not None:
            self._wake_adapter()


class ChatPart(FeatureBase):
    """The chat as a feature part: roster events and released legs reach it. Its deadlines (binding,
    MSRP transactions) are driven by the MSRP adapter, not the focus."""

    def __init__(self, chat: FocusChat) -> None:
        self.chat = chat

    def on_event(self, ep: SipEndpoint, conf: Conference, ev: ConferenceEvent, now: float) -> None:
        self.chat.on_event(conf, ev)

    def forget(self, leg: Leg, now: float) -> None:
        self.chat.forget(leg.leg_id)


def _matches(cert: bytes, hash_function: str, fingerprint: str) -> bool:
    try:
        return hmac.compare_digest(certificate_fingerprint(cert, hash_function), fingerprint)
    except KeyError:  # a hash function we do not know
        return False


def _aor(addr: str) -> str | None:
    try:
        return NameAddr.parse(addr).uri.aor
    except SipParseError:
        return None


def _user_of(conf: Conference, member: ChatMember) -> str | None:
    return conf.participant(member.pid).user if member.pid in conf else None


def _sees_identity(conf: Conference, viewer: ChatMember, sender: Participant) -> bool:
    """As the event package: a private sender is anonymous to all but itself, owners and moderators."""
    if not sender.privacy:
        return True
    if viewer.pid not in conf:
        return False
    p = conf.participant(viewer.pid)
    return p.role in (Role.OWNER, Role.MODERATOR) or p.user == sender.user


def _cpim(past: _Past, to: tuple[str, ...], sees_identity: bool, *, history: bool = False) -> bytes:
    sender = past.sender
    if sees_identity:
        display = (sender.display or "").replace("\\", "").replace('"', "")
        from_ = f'"{display}" <{sender.user}>' if display else f"<{sender.user}>"
    else:
        from_ = ANONYMOUS_FROM
    msg = CpimMessage(
        from_=from_,
        to=to,
        datetime=past.when,
        subject=past.subject,
        ns=(HISTORY_NS,) if history else (),
        other_headers=(HISTORY_HEADER,) if history else (),
        content_type=past.content_type,
        content_headers=past.content_headers,
        body=past.body,
    )
    return render_cpim(msg)


def _rfc3339(posix: float) -> str:
    return datetime.fromtimestamp(posix, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
