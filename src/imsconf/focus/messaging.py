"""Instant messages in a conference, pager mode (RFC 3428), with the CPIM format (RFC 3862).

A participant sends a MESSAGE to the conference URI, in its dialog with the focus or out of dialog; the
focus relays it to every other participant as a MESSAGE whose body is ``message/cpim``: CPIM ``From`` is the
sender as the focus knows it (its authenticated identity, anonymous to the others when it asked for privacy,
RFC 3323, as the event package shows it), ``To`` the conference URI, ``DateTime`` now (UTC), and the
original content inside. A ``message/cpim`` body from the sender is unwrapped and its content wrapped again:
the sender's own CPIM ``From`` is never trusted. A CPIM ``To`` naming participants (by URI) makes the
message private: only they get it (and it names them as ``To``).

The relayed MESSAGE goes in each recipient's INVITE dialog with the focus (TS 24.147 keeps the messaging of
a session in it): it follows the dialog's route set and remote target, reaches a phone behind NAT over the
connection it called on, and the phone shows the text in the call it belongs to. Recipients are the other
participants whose INVITE (or 200, for a dial-out) listed MESSAGE in Allow.

A phone that shows only text (baresip 1.0.0 answers 415 with ``Accept: text/plain``) or that refuses a
CPIM ``From`` other than the request's (linphone 5.1 answers 488) gets the same message again as
text/plain naming the sender (``Alice: hello``), and text from then on.

The sender gets 200 once the copies are sent (RFC 3428 §7: the focus takes the message as a relay; a
recipient's refusal later is counted in :class:`MessagingCounters`, not reported back). Refusals: 403 for a
non-participant or a request not over TLS (unless ``allow_insecure_messages``), 413 over the size cap, 415
with Accept for other content types, 400 for a broken CPIM body, and 486 with Retry-After over the rate cap
(a token bucket per participant leg; 486, not 503, because the limit is this sender's, and a proxy must not
retry the message elsewhere). Nothing is queued: every accepted message is sent at once.

RFC 3994 is-composing indications (``application/im-iscomposing+xml``) are relayed the same way, on their
own token bucket, and are not counted as messages.

Sans-I/O: ``now`` comes in; the wall clock is the focus clock plus ``wall_clock_offset``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from imsconf.conference.events import ConferenceClosed, ConferenceEvent
from imsconf.conference.model import Conference
from imsconf.conference.participant import Participant
from imsconf.conference.registry import ConferenceRegistry
from imsconf.im.cpim import CpimError, CpimMessage, parse_cpim, render_cpim
from imsconf.sip.dialog import DialogReject
from imsconf.sip.endpoint import IncomingRequest, SipEndpoint
from imsconf.sip.errors import LocalProtocolError, SipParseError
from imsconf.sip.headers import Headers
from imsconf.sip.message import Request, Response
from imsconf.sip.uri import NameAddr
from imsconf.sip.util import header_safe_text, make_response, new_tag

from .config import FocusConfig
from .legs import Leg, LegTable
from .ports import FeatureBase
from .routing import dialog_destination
from .subscriptions import viewer_for

__all__ = [
    "ANONYMOUS_SENDER",
    "COMPOSING",
    "MESSAGE_TYPES",
    "Messaging",
    "MessagingCounters",
    "TokenBucket",
    "allowed_methods",
]

log = logging.getLogger("imsconf.focus.messaging")

TEXT = "text/plain"
TEXT_UTF8 = "text/plain;charset=utf-8"
CPIM = "message/cpim"
COMPOSING = "application/im-iscomposing+xml"
MESSAGE_TYPES = (TEXT, CPIM, COMPOSING)
"""The content types a conference MESSAGE may carry (the Accept of a 415)."""
ANONYMOUS_SENDER = '"Anonymous" <sip:anonymous@anonymous.invalid>'
"""CPIM From of a sender that asked for privacy (RFC 3323 §4.1.1.3), for everybody who may not see it."""

Relayed = Callable[[str, float], None]
"""``(conference id, now)``: one message was relayed in the conference (the operator's live count)."""
Requester = Callable[[SipEndpoint, IncomingRequest], str | None]
"""The AoR of an out-of-dialog requester (authenticated, or the From when the focus authenticates nobody)."""
Lookup = Callable[[IncomingRequest], Conference | None]
"""The conference an out-of-dialog request addresses (``ConferenceControl.conference``)."""


def allowed_methods(msg: Request | Response) -> frozenset[str] | None:
    """The methods listed in *msg*'s Allow (upper case); None when it has no Allow header."""
    if msg.headers.get("Allow") is None:
        return None
    return frozenset(m.upper() for m in msg.headers.tokens("Allow"))


@dataclass(slots=True)
class MessagingCounters:
    """What the part did since it started (for metrics and tests)."""

    received: int = 0  # messages accepted from participants (is-composing not counted)
    composing: int = 0  # is-composing indications accepted
    refused: int = 0  # MESSAGEs answered with an error
    sent: int = 0  # MESSAGEs sent to recipients (a text/plain resend after a 415 counts again)
    delivered: int = 0  # their 2xx answers
    failed: int = 0  # their error answers and timeouts


@dataclass(slots=True)
class TokenBucket:
    """*rate* tokens a second, at most *burst* saved up; one token per message."""

    rate: float
    burst: float
    tokens: float
    stamp: float

    @classmethod
    def full(cls, rate: float, burst: float, now: float) -> TokenBucket:
        return cls(rate, burst, burst, now)

    def take(self, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + max(0.0, now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    def retry_after(self) -> int:
        """Whole seconds until the next token (at least 1)."""
        return max(1, int(-(-(1.0 - self.tokens) // self.rate)) if self.rate > 0 else 3600)


class _Refusal(Exception):
    """The answer a refused MESSAGE gets."""

    def __init__(self, status: int, reason: str, headers: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(status, reason)
        self.status = status
        self.reason = reason
        self.headers = headers


@dataclass(frozen=True, slots=True)
class _Content:
    """What is relayed: the encapsulated content and the sender's CPIM choices the focus keeps."""

    content_type: str
    content_headers: tuple[tuple[str, str], ...]
    body: bytes
    subject: str | None
    to: tuple[str, ...]  # CPIM To of the sender (addresses), empty for a plain body


class Messaging(FeatureBase):
    """The pager-mode MESSAGE relay of the focus (one part; the core calls :meth:`receive`)."""

    def __init__(
        self,
        table: LegTable,
        registry: ConferenceRegistry,
        config: FocusConfig,
        requester: Requester,
        lookup: Lookup,
        *,
        wall_clock_offset: float = 0.0,
        on_relayed: Relayed | None = None,
    ) -> None:
        self.table = table
        self.registry = registry
        self.config = config
        self.requester = requester
        self.lookup = lookup
        self.wall_clock_offset = wall_clock_offset
        self.counters = MessagingCounters()
        self.on_relayed = on_relayed
        self._relayed: dict[str, int] = {}  # messages accepted per live conference, by conference id
        self._buckets: dict[tuple[str, bool], TokenBucket] = {}  # (leg id, is-composing)
        self._plain_only: set[str] = set()  # legs whose phone refused message/cpim for text/plain

    def message_count(self, conf_id: str) -> int:
        """Messages accepted and relayed in the conference so far (is-composing not counted)."""
        return self._relayed.get(conf_id, 0)

    @staticmethod
    def receives(leg: Leg) -> bool:
        """The leg's phone takes MESSAGE (its INVITE, or the 200 of a dial-out, listed it in Allow)."""
        return leg.allow is not None and "MESSAGE" in leg.allow

    def bucket_count(self) -> int:
        """How many rate buckets are kept (one per leg and kind that sent something)."""
        return len(self._buckets)

    # ------------------------------------------------------------------ feature hooks

    def on_event(self, ep: SipEndpoint, conf: Conference, ev: ConferenceEvent, now: float) -> None:
        if isinstance(ev, ConferenceClosed):
            self._relayed.pop(conf.conf_id, None)

    def forget(self, leg: Leg, now: float) -> None:
        self._buckets.pop((leg.leg_id, False), None)
        self._buckets.pop((leg.leg_id, True), None)
        self._plain_only.discard(leg.leg_id)

    # ------------------------------------------------------------------ MESSAGE from a participant

    def receive(self, ep: SipEndpoint, inc: IncomingRequest, now: float) -> None:
        """A MESSAGE to the focus, in a dialog or not: relay it or refuse it."""
        req = inc.request
        try:
            conf, sender, leg = self._sender(ep, inc)
            content = self._check(inc, leg, now)
            recipients, private = self._recipients(conf, sender, content.to)
        except _Refusal as r:
            self.counters.refused += 1
            log.info("event=message_refused src=%s status=%d reason=%r", inc.peer, r.status, r.reason)
            hdrs = Headers.of(list(r.headers)) if r.headers else None
            tag = None if req.to.tag else new_tag()
            ep.respond(inc.key, make_response(req, r.status, r.reason, to_tag=tag, headers=hdrs), now)
            return
        composing = content.content_type.split(";")[0].strip().lower() == COMPOSING
        if composing:
            self.counters.composing += 1
        else:
            self.counters.received += 1
            self._relayed[conf.conf_id] = self._relayed.get(conf.conf_id, 0) + 1
        for target_leg, target in recipients:
            self._send(ep, conf, sender, target_leg, target, content, private, now)
        if not composing:
            log.info(
                "event=message_relayed conf=%s leg=%s recipients=%d private=%s",
                conf.uri,
                leg.leg_id,
                len(recipients),
                private,
            )
        tag = None if req.to.tag else new_tag()
        ep.respond(inc.key, make_response(req, 200, "OK", to_tag=tag), now)
        if not composing and self.on_relayed is not None:
            self.on_relayed(conf.conf_id, now)

    def _sender(self, ep: SipEndpoint, inc: IncomingRequest) -> tuple[Conference, Participant, Leg]:
        """The conference, the sending participant and its leg; a refusal when it is not one."""
        req = inc.request
        if req.to.tag:
            dialog = self.table.dialogs.match_request(req)
            if dialog is None:
                raise _Refusal(481, "Call/Transaction Does Not Exist")
            try:
                dialog.receive_request(req)
            except DialogReject as exc:
                raise _Refusal(exc.status, exc.reason) from None
            leg = self.table.of_dialog(dialog)
            conf = self.registry.get(leg.conf_id) if leg is not None else None
            if leg is None or leg.closing or conf is None or leg.pid not in conf:
                raise _Refusal(403, "Forbidden (Not A Participant)")
            self._require_tls(inc)
            return conf, conf.participant(leg.pid), leg
        conf = self.lookup(inc)
        if conf is None:
            raise _Refusal(404, "Conference Not Found")
        self._require_tls(inc)
        user = self.requester(ep, inc)
        for p in conf.participants_of(user) if user is not None else ():
            found = self.table.legs.get(f"{conf.conf_id}.{p.participant_id}")
            if found is not None and not found.closing:
                return conf, p, found
        raise _Refusal(403, "Forbidden (Not A Participant)")

    def _require_tls(self, inc: IncomingRequest) -> None:
        if not inc.secure and not self.config.allow_insecure_messages:
            raise _Refusal(403, "Forbidden (TLS Required)")

    def _check(self, inc: IncomingRequest, leg: Leg, now: float) -> _Content:
        """Size, content type, rate; the content to relay."""
        req = inc.request
        if not req.body:
            raise _Refusal(400, "Bad Request (Empty MESSAGE)")
        if len(req.body) > self.config.max_message_bytes:
            raise _Refusal(413, "Request Entity Too Large")
        ctype = req.headers.get("Content-Type") or ""
        base = ctype.split(";")[0].strip().lower()
        if base not in MESSAGE_TYPES:
            raise _Refusal(415, "Unsupported Media Type", (("Accept", ", ".join(MESSAGE_TYPES)),))
        if base == CPIM:
            try:
                cpim = parse_cpim(req.body)
            except CpimError as exc:
                raise _Refusal(400, f"Bad Request ({header_safe_text(str(exc), 60)})") from None
            inner = cpim.content_type.split(";")[0].strip().lower()
            if inner not in (TEXT, COMPOSING):
                raise _Refusal(415, "Unsupported Media Type", (("Accept", ", ".join(MESSAGE_TYPES)),))
            content = _Content(cpim.content_type, cpim.content_headers, cpim.body, cpim.subject, cpim.to)
        else:
            content = _Content(ctype.strip(), (), req.body, None, ())
        composing = content.content_type.split(";")[0].strip().lower() == COMPOSING
        key = (leg.leg_id, composing)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = TokenBucket.full(self.config.message_rate, self.config.message_burst, now)
            self._buckets[key] = bucket
        if not bucket.take(now):
            raise _Refusal(
                486, "Busy Here (Too Many Messages)", (("Retry-After", str(bucket.retry_after())),)
            )
        return content

    # ------------------------------------------------------------------ fan-out

    def _recipients(
        self, conf: Conference, sender: Participant, to: tuple[str, ...]
    ) -> tuple[list[tuple[Leg, Participant]], bool]:
        """The legs that get the message: every other participant that allows MESSAGE, or only the
        participants the CPIM To names (a To naming the conference itself keeps it public); and whether
        it is private."""
        named: set[str] | None = None
        itself = _aor(f"<{conf.uri}>")
        for addr in to:
            aor = _aor(addr)
            if aor is None or aor == itself:
                continue
            if not conf.participants_of(aor):
                raise _Refusal(404, "Not Found (No Such Participant)")
            named = (named or set()) | {aor}
        out: list[tuple[Leg, Participant]] = []
        for p in conf.participants:
            if p.participant_id == sender.participant_id or not p.active:
                continue
            if named is not None and p.user not in named:
                continue
            leg = self.table.legs.get(f"{conf.conf_id}.{p.participant_id}")
            if leg is None or leg.closing or leg.dialog is None or leg.dialog.terminated:
                continue
            if not self.receives(leg):
                continue
            out.append((leg, p))
        return out, named is not None

    def _send(
        self,
        ep: SipEndpoint,
        conf: Conference,
        sender: Participant,
        leg: Leg,
        target: Participant,
        content: _Content,
        private: bool,
        now: float,
    ) -> None:
        sees = viewer_for(conf, target.user).sees_identity(sender)
        cpim = CpimMessage(
            from_=_name_addr(sender) if sees else ANONYMOUS_SENDER,
            to=(_name_addr(target) if private else f"<{conf.uri}>",),
            datetime=_utc(now + self.wall_clock_offset),
            subject=content.subject,
            ns=(),
            other_headers=(),
            content_type=content.content_type,
            content_headers=content.content_headers,
            body=content.body,
        )
        plain = _plain(sender, sees, private, content)
        if leg.leg_id in self._plain_only:
            if plain is not None:  # an is-composing indication means nothing to a text/plain-only phone
                self._transmit(ep, leg, TEXT_UTF8, plain, now, None)
            return
        try:
            body = render_cpim(cpim)
        except CpimError as exc:
            self._failed_id(leg.leg_id, 0, str(exc))
            return
        self._transmit(ep, leg, CPIM, body, now, plain)

    def _transmit(
        self, ep: SipEndpoint, leg: Leg, ctype: str, body: bytes, now: float, plain: bytes | None
    ) -> None:
        """Send one copy in the leg's dialog.  With *plain*: a 415 whose Accept has text/plain but not
        message/cpim (phones that show only text, RFC 3428 §7), or a 488 (linphone 5.1 refuses a CPIM
        ``From`` other than the SIP From: it does not take the focus as a relay) makes the leg plain-only
        and *plain* is sent instead: the sender named in the text."""
        dialog = leg.dialog
        if dialog is None or dialog.terminated:
            self._failed_id(leg.leg_id, 0, "no dialog")
            return
        try:
            request = dialog.create_request("MESSAGE", headers=[("Content-Type", ctype)], body=body)
        except LocalProtocolError as exc:
            self._failed_id(leg.leg_id, 0, str(exc))
            return
        self.counters.sent += 1
        leg_id = leg.leg_id

        def answered(resp: Response, t: float) -> None:
            if resp.status < 200:
                return
            if resp.status < 300:
                self.counters.delivered += 1
                return
            again = self.table.legs.get(leg_id)
            refused_cpim = resp.status == 488 or (resp.status == 415 and _takes_plain_only(resp))
            retry = plain is not None and refused_cpim
            if retry and plain is not None and again is not None and not again.closing:
                self._plain_only.add(leg_id)
                log.info("event=message_plain_only leg=%s", leg_id)
                self._transmit(ep, again, TEXT_UTF8, plain, t, None)
                return
            self._failed_id(leg_id, resp.status, resp.reason)

        ep.send_request(request, dialog_destination(dialog, leg.peer), now, on_response=answered)

    def _failed_id(self, leg_id: str, status: int, reason: str) -> None:
        self.counters.failed += 1
        log.info("event=message_delivery_failed leg=%s status=%d reason=%r", leg_id, status, reason)


def _takes_plain_only(resp: Response) -> bool:
    accept = [a.split(";")[0].strip().lower() for a in resp.headers.tokens("Accept")]
    return TEXT in accept and CPIM not in accept


def _plain(sender: Participant, sees: bool, private: bool, content: _Content) -> bytes | None:
    """The message as text naming its sender (``Alice: hello``), for phones that take only text/plain;
    None for anything but text (is-composing) or a body its charset does not decode."""
    ctype = content.content_type
    if ctype.split(";")[0].strip().lower() != TEXT:
        return None
    charset = "utf-8"
    for param in ctype.split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip('"') or charset
    try:
        text = content.body.decode(charset)
    except (LookupError, UnicodeDecodeError):
        return None
    name = (sender.display or sender.user) if sees else "Anonymous"
    name = "".join(c for c in name if c.isprintable())
    return f"{name}{' (private)' if private else ''}: {text}".encode()


def _aor(addr: str) -> str | None:
    try:
        return NameAddr.parse(addr).uri.aor
    except SipParseError:
        return None


def _name_addr(p: Participant) -> str:
    """``"Display" <aor>`` of a participant (the display escaped as a quoted string)."""
    if not p.display:
        return f"<{p.user}>"
    shown = "".join(c for c in p.display if c.isprintable())
    shown = shown.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{shown}" <{p.user}>'


def _utc(posix: float) -> str:
    """RFC 3339 date-time in UTC, whole seconds."""
    return datetime.fromtimestamp(posix, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
