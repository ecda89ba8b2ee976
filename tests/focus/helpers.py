"""In-memory harness for the focus: a SipEndpoint + Focus on a fake clock, a recording MediaControl, and a
small test UA that writes raw SIP bytes (INVITE/ACK/BYE/re-INVITE/UPDATE/CANCEL with SDP offers).

No sockets: every message goes through ``SipEndpoint.receive_datagram`` and comes back from its outbox.
"""

from __future__ import annotations

import base64
import itertools
import secrets
from dataclasses import dataclass, field

from imsconf.app.focus_wiring import FocusOptions, assemble_focus
from imsconf.app.server import build_capabilities
from imsconf.conference.model import Conference
from imsconf.focus.config import FocusConfig
from imsconf.focus.core import Focus
from imsconf.focus.planned import PlannedOptions
from imsconf.media.control import EventSink, LegPorts, MediaControl, NullMediaControl
from imsconf.media.engine import KEEP, Addr, Keep
from imsconf.media.srtp import SrtpKeys
from imsconf.sdp.direction import Direction
from imsconf.sdp.sdes import CryptoAttribute
from imsconf.sdp.session import SessionDescription
from imsconf.sip.endpoint import EndpointConfig, SipEndpoint
from imsconf.sip.message import Request, Response, parse_message
from imsconf.sip.peer import Peer

DOMAIN = "conf.example.com"
FOCUS_HOST = "203.0.113.5"
LOCAL = {"udp": (FOCUS_HOST, 5060), "tcp": (FOCUS_HOST, 5060), "tls": (FOCUS_HOST, 5061)}
SUITE = "AES_CM_128_HMAC_SHA1_80"
FACTORY = f"sip:conference-factory@{DOMAIN}"

_branches = itertools.count(1)


def new_key() -> bytes:
    """30 random bytes: an AES_CM_128 master key || salt."""
    return secrets.token_bytes(30)


def sdp_offer(
    *,
    host: str = "192.0.2.1",
    port: int = 4000,
    srtp: bool = True,
    key: bytes | None = None,
    tag: int = 1,
    direction: str | None = "sendrecv",
    version: int = 1,
    proto: str | None = None,
) -> bytes:
    """An audio offer ``m=audio P RTP/SAVP 0 8 101`` (or RTP/AVP), with an SDES key when *srtp*."""
    profile = proto or ("RTP/SAVP" if srtp else "RTP/AVP")
    lines = [
        "v=0",
        f"o=- 4242 {version} IN IP4 {host}",
        "s=-",
        f"c=IN IP4 {host}",
        "t=0 0",
        f"m=audio {port} {profile} 0 8 101",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:8 PCMA/8000",
        "a=rtpmap:101 telephone-event/8000",
        "a=fmtp:101 0-15",
    ]
    if srtp:
        k = key if key is not None else new_key()
        lines.append(f"a=crypto:{tag} {SUITE} inline:{base64.b64encode(k).decode()}")
    if direction:
        lines.append(f"a={direction}")
    return ("\r\n".join(lines) + "\r\n").encode()


def answer_crypto(body: bytes) -> CryptoAttribute:
    sd = SessionDescription.parse(body)
    values = sd.media[0].get_attributes("crypto")
    assert len(values) == 1, values
    return CryptoAttribute.parse(values[0])


def answer_direction(body: bytes) -> str:
    sd = SessionDescription.parse(body)
    for d in ("sendrecv", "sendonly", "recvonly", "inactive"):
        if sd.media[0].has_attribute(d) or sd.has_attribute(d):
            return d
    return "sendrecv"


# ---------------------------------------------------------------------------------------------- media


@dataclass
class LegRecord:
    conf_id: str
    rtcp_mux: bool
    ports: LegPorts
    configured: bool = False
    remote_rtp: Addr | None = None
    codec_name: str | None = None
    codec_pt: int | None = None
    codec_clock: int | None = None
    codec_params: tuple[tuple[str, str], ...] = ()
    dtmf_pt: int | None = None
    direction: Direction | None = None
    tx_key: bytes | None = None  # key || salt the mixer sends with
    rx_key: bytes | None = None  # key || salt the mixer receives with
    tx_updates: int = 0
    rx_updates: int = 0


def _raw(keys: SrtpKeys | None) -> bytes | None:
    return None if keys is None else keys.key_salt()


class RecordingMedia(NullMediaControl):
    """A :class:`imsconf.media.control.MediaControl` that records what the focus asks for (keys copied)."""

    def __init__(self) -> None:
        super().__init__()
        self.legs: dict[str, LegRecord] = {}
        self.released_legs: list[str] = []
        self.released_conferences: list[str] = []
        self.calls: list[tuple[str, str]] = []
        self.sink: EventSink | None = None
        self.lobby: set[str] = set()  # legs held in a PIN lobby (set_lobby)
        self._port = 30000

    def allocate_leg(self, conference_id: str, leg_id: str, rtcp_mux: bool) -> LegPorts:
        assert leg_id not in self.legs, f"leg {leg_id} allocated twice"
        ports = LegPorts("198.18.0.1", self._port, self._port if rtcp_mux else self._port + 1)
        self._port += 2
        self.legs[leg_id] = LegRecord(conference_id, rtcp_mux, ports)
        self.calls.append(("allocate", leg_id))
        return ports

    def configure_leg(
        self,
        leg_id: str,
        *,
        remote_rtp: Addr,
        remote_rtcp: Addr | None,
        codec_pt: int,
        codec_name: str,
        dtmf_pt: int | None,
        tx_keys: SrtpKeys | None,
        rx_keys: SrtpKeys | None,
        direction: Direction = Direction.SENDRECV,
        latch: bool = False,
        codec_clock: int = 8000,
        codec_params: tuple[tuple[str, str], ...] = (),
    ) -> None:
        leg = self.legs[leg_id]
        leg.configured = True
        leg.remote_rtp = remote_rtp
        leg.codec_pt, leg.codec_name, leg.dtmf_pt = codec_pt, codec_name, dtmf_pt
        leg.codec_clock, leg.codec_params = codec_clock, codec_params
        leg.tx_key, leg.rx_key = _raw(tx_keys), _raw(rx_keys)
        leg.direction = direction
        self.calls.append(("configure", leg_id))

    def update_leg(
        self,
        leg_id: str,
        *,
        remote_rtp: Addr | None = None,
        remote_rtcp: Addr | None = None,
        codec_pt: int | None = None,
        codec_name: str | None = None,
        dtmf_pt: int | Keep | None = KEEP,
        direction: Direction | None = None,
        tx_keys: SrtpKeys | Keep | None = KEEP,
        rx_keys: SrtpKeys | Keep | None = KEEP,
        codec_clock: int | None = None,
        codec_params: tuple[tuple[str, str], ...] | None = None,
    ) -> None:
        leg = self.legs[leg_id]
        assert leg.configured
        if remote_rtp is not None:
            leg.remote_rtp = remote_rtp
        if codec_clock is not None:
            leg.codec_clock = codec_clock
        if codec_params is not None:
            leg.codec_params = codec_params
        if codec_pt is not None:
            leg.codec_pt = codec_pt
        if codec_name is not None:
            leg.codec_name = codec_name
        if not isinstance(dtmf_pt, Keep):
            leg.dtmf_pt = dtmf_pt
        if direction is not None:
            leg.direction = direction
        if not isinstance(tx_keys, Keep):
            leg.tx_key = _raw(tx_keys)
            leg.tx_updates += 1
        if not isinstance(rx_keys, Keep):
            leg.rx_key = _raw(rx_keys)
            leg.rx_updates += 1
        self.calls.append(("update", leg_id))

    def release_leg(self, leg_id: str) -> None:
        if leg_id not in self.legs:
            raise KeyError(leg_id)  # as the engine does for a leg already gone
        del self.legs[leg_id]
        self.released_legs.append(leg_id)
        self.calls.append(("release", leg_id))

    def release_conference(self, conference_id: str) -> None:
        for leg_id in [lid for lid, leg in self.legs.items() if leg.conf_id == conference_id]:
            self.release_leg(leg_id)
        self.released_conferences.append(conference_id)
        self.calls.append(("release_conference", conference_id))

    def set_event_sink(self, sink: EventSink | None) -> None:
        self.sink = sink

    def set_lobby(self, leg_id: str, in_lobby: bool) -> None:
        if in_lobby:
            self.lobby.add(leg_id)
        else:
            self.lobby.discard(leg_id)
        self.calls.append(("lobby" if in_lobby else "unlobby", leg_id))


# ---------------------------------------------------------------------------------------------- UA


@dataclass
class UA:
    """One test phone: builds requests of one dialog, remembers what the focus told it."""

    user: str
    peer: Peer  # where the UA sends from (its source address, and conn for a stream)
    contact_host: str | None = None  # Contact differs from the source when set
    contact_port: int | None = None
    call_id: str = field(default_factory=lambda: secrets.token_hex(8) + "@test")
    from_tag: str = field(default_factory=lambda: secrets.token_hex(4))
    cseq: int = 1
    to_tag: str | None = None
    ruri: str = ""
    remote_target: str | None = None
    last_invite: bytes = b""
    last_invite_cseq: int = 0
    last_invite_branch: str = ""

    @property
    def aor(self) -> str:
        return f"sip:{self.user}@example.net"

    @property
    def transport(self) -> str:
        return self.peer.transport

    def contact(self) -> str:
        host = self.contact_host or self.peer.host
        port = self.contact_port or self.peer.port
        tp = "" if self.transport == "udp" else f";transport={self.transport}"
        return f"<sip:{self.user}@{host}:{port}{tp}>"

    def _request(
        self,
        method: str,
        uri: str,
        *,
        cseq: int | None = None,
        branch: str | None = None,
        body: bytes = b"",
        extra: tuple[tuple[str, str], ...] = (),
        contact: bool = True,
        content_type: str = "application/sdp",
    ) -> tuple[bytes, str]:
        branch = branch or f"z9hG4bK-t{next(_branches)}-{secrets.token_hex(3)}"
        to = f"<{self.ruri}>" + (f";tag={self.to_tag}" if self.to_tag else "")
        lines = [
            f"{method} {uri} SIP/2.0",
            f"Via: SIP/2.0/{self.transport.upper()} {self.peer.host}:{self.peer.port};branch={branch};rport",
            "Max-Forwards: 70",
            f"From: <{self.aor}>;tag={self.from_tag}",
            f"To: {to}",
            f"Call-ID: {self.call_id}",
            f"CSeq: {cseq if cseq is not None else self.cseq} {method}",
        ]
        if contact:
            lines.append(f"Contact: {self.contact()}")
        lines += [f"{k}: {v}" for k, v in extra]
        if body:
            lines.append(f"Content-Type: {content_type}")
        lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body, branch

    def request(self, method: str, uri: str, body: bytes = b"") -> bytes:
        """Any request of this dialog with the current CSeq (bump ``cseq`` first for a new one)."""
        return self._request(method, uri, body=body)[0]

    def request_with(
        self, method: str, uri: str, extra: tuple[tuple[str, str], ...], body: bytes = b""
    ) -> bytes:
        """Any request of this dialog with the current CSeq and *extra* headers (PRACK with its RAck)."""
        return self._request(method, uri, body=body, extra=extra, contact=False)[0]

    def invite(
        self,
        ruri: str,
        body: bytes = b"",
        extra: tuple[tuple[str, str], ...] = (),
        content_type: str = "application/sdp",
    ) -> bytes:
        """The initial INVITE (out of dialog)."""
        self.ruri = ruri
        data, branch = self._request("INVITE", ruri, body=body, extra=extra, content_type=content_type)
        self.last_invite, self.last_invite_cseq, self.last_invite_branch = data, self.cseq, branch
        return data

    def target(self) -> str:
        assert self.remote_target is not None, "no dialog yet"
        return self.remote_target

    def reinvite(self, body: bytes = b"", extra: tuple[tuple[str, str], ...] = ()) -> bytes:
        self.cseq += 1
        data, branch = self._request("INVITE", self.target(), body=body, extra=extra)
        self.last_invite, self.last_invite_cseq, self.last_invite_branch = data, self.cseq, branch
        return data

    def update(self, body: bytes = b"", extra: tuple[tuple[str, str], ...] = ()) -> bytes:
        self.cseq += 1
        return self._request("UPDATE", self.target(), body=body, extra=extra)[0]

    def subscribe(
        self,
        uri: str | None = None,
        expires: int | None = 600,
        event: str = "conference",
        more: tuple[tuple[str, str], ...] = (),
    ) -> bytes:
        """SUBSCRIBE: out of dialog to *uri* (the conference URI), or a refresh in the dialog (uri None)."""
        extra: tuple[tuple[str, str], ...] = (("Event", event), *more)
        if expires is not None:
            extra += (("Expires", str(expires)),)
        if uri is not None and self.to_tag is None:
            self.ruri = uri
            return self._request("SUBSCRIBE", uri, extra=extra)[0]
        self.cseq += 1
        return self._request("SUBSCRIBE", self.target(), extra=extra)[0]

    def refer(self, refer_to: str, uri: str | None = None, extra: tuple[tuple[str, str], ...] = ()) -> bytes:
        """REFER: in the current dialog, or out of dialog to *uri* (the conference URI)."""
        headers = (("Refer-To", refer_to), *extra)
        if uri is not None:
            self.ruri = uri
            return self._request("REFER", uri, extra=headers)[0]
        self.cseq += 1
        return self._request("REFER", self.target(), extra=headers)[0]

    def message(self, body: bytes, content_type: str = "text/plain", uri: str | None = None) -> bytes:
        """MESSAGE (RFC 3428): in the current dialog, or out of dialog to *uri* (the conference URI)."""
        if uri is not None:
            self.ruri = uri
            return self._request("MESSAGE", uri, body=body, contact=False, content_type=content_type)[0]
        self.cseq += 1
        return self._request("MESSAGE", self.target(), body=body, contact=False, content_type=content_type)[0]

    def ack(self, cseq: int | None = None) -> bytes:
        """ACK for a 2xx: in-dialog, new branch, CSeq number of the INVITE."""
        n = cseq if cseq is not None else self.last_invite_cseq
        return self._request("ACK", self.target(), cseq=n, contact=False)[0]

    def bye(self) -> bytes:
        self.cseq += 1
        return self._request("BYE", self.target(), contact=False)[0]

    def cancel(self) -> bytes:
        """CANCEL of the last INVITE: same branch, Request-URI and CSeq number, To without our tag."""
        tag, self.to_tag = self.to_tag, None
        try:
            uri = self.ruri if self.remote_target is None else self.target()
            return self._request(
                "CANCEL", uri, cseq=self.last_invite_cseq, branch=self.last_invite_branch, contact=False
            )[0]
        finally:
            self.to_tag = tag

    def learn(self, resp: Response) -> None:
        """Take the To tag and the Contact of a 2xx to the INVITE."""
        assert 200 <= resp.status < 300
        self.to_tag = resp.to.tag
        contact = resp.headers.get("Contact")
        assert contact is not None
        self.remote_target = contact[contact.index("<") + 1 : contact.index(">")]


def answer_to(
    req: Request,
    status: int = 200,
    reason: str = "OK",
    *,
    to_tag: str | None = None,
    contact: str | None = None,
    body: bytes = b"",
) -> bytes:
    """A response to a request the focus sent (its BYE, NOTIFY, or a dial-out INVITE with *to_tag*)."""
    head = [f"SIP/2.0 {status} {reason}"]
    for name in ("Via", "From", "To", "Call-ID", "CSeq"):
        for value in req.headers.get_all(name):
            if name == "To" and to_tag is not None:
                value = f"{value};tag={to_tag}"
            head.append(f"{name}: {value}")
    if contact is not None:
        head.append(f"Contact: {contact}")
    if body:
        head.append("Content-Type: application/sdp")
    head.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


# ---------------------------------------------------------------------------------------------- harness

Sent = tuple[Request | Response, Peer]


class Harness:
    """SipEndpoint + Focus + RecordingMedia on a fake clock."""

    def __init__(
        self,
        config: FocusConfig | None = None,
        control: MediaControl | None = None,
        *,
        planned: PlannedOptions | None = None,
        options: FocusOptions | None = None,
    ) -> None:
        """*options*: the parts' settings; *planned* alone stands for ``FocusOptions(planned=...)``."""
        self.now = 1000.0
        self.media = RecordingMedia()  # unused when another *control* is given
        self.config = config or FocusConfig(domain=DOMAIN, media_host="198.18.0.1")
        if options is None:
            options = FocusOptions(planned=planned)
        self.focus: Focus = assemble_focus(
            self.config, control if control is not None else self.media, options
        )
        self.ep = SipEndpoint(EndpointConfig(caps=build_capabilities(), local=dict(LOCAL)), self.focus)
        self._conns = itertools.count(1)
        self._hosts = itertools.count(10)

    # UAs
    def ua(self, user: str, transport: str = "tls", **kw: object) -> UA:
        host = f"198.51.100.{next(self._hosts)}"
        port = 5070 if transport == "udp" else 40000 + next(self._conns)
        conn = None if transport == "udp" else next(self._conns)
        return UA(user, Peer(transport, host, port, conn), **kw)  # type: ignore[arg-type]

    # I/O
    def send(self, ua: UA, data: bytes) -> list[Sent]:
        self.ep.receive_datagram(data, ua.peer, self.now)
        return self.take()

    def take(self) -> list[Sent]:
        return [(parse_message(data), peer) for data, peer in self.ep.take_outbox()]

    def advance(self, seconds: float) -> list[Sent]:
        """Move the fake clock, firing every deadline on the way; returns everything sent."""
        target = self.now + seconds
        out: list[Sent] = []
        while (d := self.ep.next_deadline()) is not None and d <= target:
            self.now = max(self.now, d)
            self.ep.handle_timer(self.now)
            out += self.take()
        self.now = target
        return out

    # conversations
    def final(self, sent: list[Sent]) -> Response:
        """The one final response in *sent* (provisional responses skipped)."""
        finals = [m for m, _ in sent if isinstance(m, Response) and m.status >= 200]
        assert len(finals) == 1, [(m.status if isinstance(m, Response) else m.method) for m, _ in sent]
        return finals[0]

    def call(
        self, ua: UA, ruri: str, body: bytes | None = None, extra: tuple[tuple[str, str], ...] = ()
    ) -> Response:
        """INVITE → final response (not ACKed)."""
        resp = self.final(self.send(ua, ua.invite(ruri, sdp_offer() if body is None else body, extra)))
        if 200 <= resp.status < 300:
            ua.learn(resp)
        return resp

    def join(
        self, ua: UA, ruri: str, body: bytes | None = None, extra: tuple[tuple[str, str], ...] = ()
    ) -> Response:
        """INVITE + ACK; asserts a 200."""
        resp = self.call(ua, ruri, body, extra)
        assert resp.status == 200, (resp.status, resp.reason)
        assert self.send(ua, ua.ack()) == []
        return resp

    def create(self, ua: UA, body: bytes | None = None) -> tuple[Response, str]:
        """Create a conference at the factory; returns the 200 and the conference URI (the Contact)."""
        resp = self.join(ua, FACTORY, body)
        assert ua.remote_target is not None
        return resp, ua.remote_target

    def conference(self, uri: str) -> Conference:
        conf = self.focus.registry.get(conf_id_of(uri))
        assert conf is not None
        return conf


def conf_id_of(uri: str) -> str:
    user = uri.split(":", 1)[1].split("@", 1)[0]
    assert user.startswith("conf-")
    return user[5:]


def requests(sent: list[Sent], method: str) -> list[tuple[Request, Peer]]:
    return [(m, p) for m, p in sent if isinstance(m, Request) and m.method == method]


def responses(sent: list[Sent], status: int | None = None) -> list[tuple[Response, Peer]]:
    return [(m, p) for m, p in sent if isinstance(m, Response) and (status is None or m.status == status)]
