"""Helpers for the conference-control tests: URI-list bodies, a remote phone the focus dials, subscribers."""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from helpers import UA, Harness, Sent, answer_to, new_key, requests, responses
from lxml import etree

from imsconf.conference.eventinfo import NS
from imsconf.sip.message import Request, Response
from imsconf.sip.peer import Peer

SCHEMAS = Path(__file__).resolve().parents[1] / "data" / "schemas"
BOUNDARY = "imsconf-boundary-42"
MULTIPART = f"multipart/mixed;boundary={BOUNDARY}"


def resource_list(*uris: str, extra: str = "") -> bytes:
    entries = "".join(f'<entry uri="{u}"><display-name>{u[4:7]}</display-name></entry>' for u in uris)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists">'
        f"<list>{entries}{extra}</list></resource-lists>"
    ).encode()


def multipart(sdp: bytes, rl: bytes) -> bytes:
    return (
        f"--{BOUNDARY}\r\nContent-Type: application/sdp\r\n\r\n".encode()
        + sdp
        + f"\r\n--{BOUNDARY}\r\nContent-Type: application/resource-lists+xml\r\n"
        "Content-Disposition: recipient-list\r\n\r\n".encode()
        + rl
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )


def answer_sdp(offer: bytes, *, host: str = "192.0.2.77", port: int = 6000) -> bytes:
    """A phone's answer to the focus's offer: PCMU, its own SDES key for the offered tag when SRTP."""
    text = offer.decode()
    srtp = "RTP/SAVP" in text
    lines = [
        "v=0",
        f"o=- 77 1 IN IP4 {host}",
        "s=-",
        f"c=IN IP4 {host}",
        "t=0 0",
        f"m=audio {port} {'RTP/SAVP' if srtp else 'RTP/AVP'} 0",
        "a=rtpmap:0 PCMU/8000",
    ]
    if srtp:
        key = base64.b64encode(new_key()).decode()
        lines.append(f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{key}")
    lines.append("a=sendrecv")
    return ("\r\n".join(lines) + "\r\n").encode()


@dataclass
class Phone:
    """A user the focus dials out to: it answers the focus's INVITE from the address the focus used."""

    user: str
    peer: Peer
    to_tag: str = field(default_factory=lambda: secrets.token_hex(4))

    def uri(self) -> str:
        return f"sip:{self.user}@{self.peer.host}:{self.peer.port};transport={self.peer.transport}"

    def contact(self) -> str:
        return f"<{self.uri()}>"


def invite_for(sent: list[Sent], phone: Phone) -> Request:
    found = [r for r, p in requests(sent, "INVITE") if r.uri.startswith(f"sip:{phone.user}@")]
    assert len(found) == 1, [r.uri for r, _ in requests(sent, "INVITE")]
    return found[0]


def answer(h: Harness, phone: Phone, invite: Request, status: int = 200, reason: str = "OK") -> list[Sent]:
    body = answer_sdp(invite.body) if status == 200 else b""
    data = answer_to(invite, status, reason, to_tag=phone.to_tag, contact=phone.contact(), body=body)
    h.ep.receive_datagram(data, Peer(phone.peer.transport, phone.peer.host, phone.peer.port, 900), h.now)
    return h.take()


def notifies(sent: list[Sent], event: str | None = None) -> list[Request]:
    out = [r for r, _ in requests(sent, "NOTIFY")]
    if event is not None:
        out = [r for r in out if (r.headers.get("Event") or "").split(";")[0] == event]
    return out


def ok_all(h: Harness, ua: UA, sent: list[Sent], method: str = "NOTIFY") -> list[Sent]:
    """Answer every *method* request in *sent* with 200 (from *ua*); returns what that caused."""
    out: list[Sent] = []
    for req, _ in requests(sent, method):
        out += h.send(ua, answer_to(req))
    return out


def drain_notifies(h: Harness, ua: UA, sent: list[Sent]) -> list[Request]:
    """Answer the NOTIFYs in *sent* (200) as they come, until the focus sends no more; in order."""
    got: list[Request] = []
    todo = [r for r, _ in requests(sent, "NOTIFY")]
    while todo:
        n = todo.pop(0)
        got.append(n)
        todo += [r for r, _ in requests(h.send(ua, answer_to(n)), "NOTIFY")]
    return got


def subscribe(h: Harness, ua: UA, uri: str, expires: int | None = 600) -> tuple[Response, list[Sent]]:
    """Out-of-dialog SUBSCRIBE; the UA learns the dialog; returns the 200 and everything else sent."""
    sent = h.send(ua, ua.subscribe(uri, expires))
    (resp, _), *_ = responses(sent)
    if 200 <= resp.status < 300:
        ua.learn(resp)
    return resp, sent


def doc(body: bytes) -> etree._Element:
    return etree.fromstring(body)


def q(tag: str) -> str:
    return f"{{{NS}}}{tag}"


def users_of(body: bytes) -> list[str]:
    return [str(u.get("entity")) for u in doc(body).iter(q("user"))]


# RFC 4575 (conference.xsd imports xml.xsd beside it) and RFC 4826: checked by path, no network.
CONFERENCE_SCHEMA = etree.XMLSchema(etree.parse(str(SCHEMAS / "conference.xsd")))
RESOURCE_LISTS_SCHEMA = etree.XMLSchema(etree.parse(str(SCHEMAS / "resourcelists.xsd")))


def valid_doc(body: bytes) -> etree._Element:
    root = etree.fromstring(body)
    CONFERENCE_SCHEMA.assertValid(root)
    return root
