"""Dialogs (RFC 3261 §12) of the test UA: calls with offer/answer and SRTP keys, and subscriptions."""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote

from .media import MediaStream
from .sdp import AudioSdp, Crypto, answer_direction, build_sdp, parse_sdp
from .sipmsg import NameAddr, SipMessage, SipUri, new_branch, sipfrag_status

if TYPE_CHECKING:
    from .transport import Flow
    from .ua import UserAgent


def resolve(uri: str, transport: str) -> tuple[str, int]:
    u = SipUri.parse(NameAddr.parse(uri).uri)
    host = u.host.strip("[]")
    if host.lower() == "localhost":
        host = "127.0.0.1"
    default = 5061 if transport == "tls" or u.scheme == "sips" else 5060
    return host, u.port or default


class Dialog:
    """The state shared by INVITE dialogs and subscriptions (SUBSCRIBE, REFER)."""

    def __init__(
        self,
        ua: UserAgent,
        call_id: str,
        local_tag: str,
        local_uri: str,
        remote_uri: str,
        *,
        remote_tag: str | None = None,
        remote_target: str | None = None,
        route_set: list[str] | None = None,
        flow: Flow | None = None,
    ) -> None:
        self.ua = ua
        self.call_id = call_id
        self.local_tag = local_tag
        self.remote_tag = remote_tag
        self.local_uri = local_uri
        self.remote_uri = remote_uri
        self.remote_target = remote_target or remote_uri
        self.route_set: list[str] = list(route_set or [])
        self.flow = flow
        self.local_cseq = secrets.randbelow(10000) + 1
        self.remote_cseq: int | None = None
        self.notifies: list[SipMessage] = []
        self.requests: list[SipMessage] = []  # every in-dialog request received
        self._cond = threading.Condition()

    def request(
        self,
        method: str,
        body: bytes = b"",
        content_type: str | None = None,
        extra: list[tuple[str, str]] | None = None,
        cseq: int | None = None,
    ) -> SipMessage:
        if cseq is None:
            self.local_cseq += 1
            cseq = self.local_cseq
        to = f"<{self.remote_uri}>" + (f";tag={self.remote_tag}" if self.remote_tag else "")
        msg = SipMessage(method=method, uri=SipUri.parse(self.remote_target).without_headers().__str__())
        msg.add("Via", self.ua.via(new_branch()))
        msg.add("Max-Forwards", "70")
        msg.add("From", f"{self.ua.from_nameaddr()};tag={self.local_tag}")
        msg.add("To", to)
        msg.add("Call-ID", self.call_id)
        msg.add("CSeq", f"{cseq} {method}")
        for r in self.route_set:
            msg.add("Route", r)
        if method in ("INVITE", "UPDATE", "SUBSCRIBE", "REFER", "NOTIFY"):
            msg.add("Contact", self.ua.contact)
        for k, v in extra or []:
            msg.add(k, v)
        if content_type:
            msg.add("Content-Type", content_type)
        msg.add("User-Agent", self.ua.user_agent)
        msg.body = body
        return msg

    def next_hop(self) -> tuple[str, int]:
        target = self.route_set[0] if self.route_set else self.remote_target
        return resolve(target, self.ua.transport_kind)

    def _notify_arrived(self, msg: SipMessage) -> None:
        with self._cond:
            self.notifies.append(msg)
            self._cond.notify_all()

    def wait_notify(
        self, predicate: Callable[[SipMessage], bool] | None = None, timeout: float = 5.0
    ) -> SipMessage | None:
        """The first received NOTIFY (old or new) that matches ``predicate``, waiting up to ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for n in self.notifies:
                    if predicate is None or predicate(n):
                        return n
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)


class Subscription(Dialog):
    """An outgoing SUBSCRIBE or out-of-dialog REFER; NOTIFY bodies are kept in ``notifies``."""

    event: str = ""
    response: SipMessage | None = None

    def bodies(self) -> list[bytes]:
        return [n.body for n in self.notifies]

    def terminated(self) -> bool:
        return any((n.get("Subscription-State") or "").startswith("terminated") for n in self.notifies)

    def unsubscribe(self, timeout: float = 5.0) -> SipMessage:
        req = self.request("SUBSCRIBE", extra=[("Event", self.event), ("Expires", "0")])
        return self.ua.run(
            self.ua.send_request(req, self.next_hop(), self.flow, timeout=timeout), timeout + 1
        )


@dataclass
class OfferRecord:
    """An offer the peer sent us in re-INVITE/UPDATE (or the initial INVITE)."""

    at: float
    method: str
    direction: str
    new_rx_key: bool
    crypto: Crypto | None
    answered_direction: str


class Call(Dialog):
    """One INVITE dialog with its media. Blocking methods; run from the test thread, not the SIP loop."""

    def __init__(
        self,
        ua: UserAgent,
        call_id: str,
        local_tag: str,
        local_uri: str,
        remote_uri: str,
        *,
        outgoing: bool,
        srtp: bool,
        **kw: object,
    ) -> None:
        super().__init__(ua, call_id, local_tag, local_uri, remote_uri, **kw)  # type: ignore[arg-type]
        self.outgoing = outgoing
        self.srtp = srtp
        self.state = "calling" if outgoing else "incoming"
        self.media = MediaStream(
            ua.host,
            tone_hz=ua.tone_hz,
            amplitude=ua.amplitude,
            rtcp_interval=ua.rtcp_interval,
            rr_only=ua.rtcp_rr_only,
            cname=f"{ua.user}@{ua.host}",
        )
        self.session_id = str(secrets.randbelow(1 << 30))
        self.sdp_version = 0
        self.tx_crypto: Crypto | None = Crypto.generate(ua.suite) if srtp else None
        self.want_direction = "sendrecv"
        self.local_direction = "sendrecv"
        self.remote_sdp: AudioSdp | None = None
        self.offers_received: list[OfferRecord] = []
        self.invite: SipMessage | None = None  # the initial INVITE (sent or received)
        self.final_response: SipMessage | None = None
        self.replaces: Call | None = None  # the dialog an incoming INVITE with Replaces took over
        self.replaced_by: Call | None = None
        self.terminated_by = ""
        self.rekey_in_answer = ua.rekey_in_answer
        self.confirmed = threading.Event()
        self.terminated = threading.Event()
        self._pending_tx: Crypto | None = None
        self._rx_offer: Crypto | None = None
        self.target_headers: dict[str, str] = {}  # headers embedded in the target URI (e.g. Replaces)
        self.invite_flow: Flow | None = None
        self.reoffer_pending = False
        self.refer_ids: list[int] = []  # CSeq numbers of the REFERs sent in this dialog
        self.await_ack_answer = False
        self._invite_branch = ""

    def __repr__(self) -> str:
        return f"Call({self.ua.user} {'->' if self.outgoing else '<-'} {self.remote_uri} {self.state})"

    # ---------------------------------------------------------------------------------- offer / answer
    def make_offer(self, new_key: bool = False, direction: str | None = None) -> bytes:
        self.sdp_version += 1
        if direction is not None:
            self.want_direction = direction
        crypto = None
        if self.srtp:
            crypto = Crypto.generate(self.ua.suite) if new_key or self.tx_crypto is None else self.tx_crypto
            self._pending_tx = crypto
        self.local_direction = self.want_direction
        return build_sdp(
            self.ua.host,
            self.media.rtp_port,
            session_id=self.session_id,
            version=self.sdp_version,
            crypto=crypto,
            direction=self.want_direction,
            rtcp_port=self.media.rtcp_port,
            username=self.ua.user,
        )

    def apply_answer(self, body: bytes) -> None:
        """The peer's answer to our offer: its key for what we receive; our offered key becomes live."""
        sdp = parse_sdp(body)
        rx = None
        if self.srtp:
            if not sdp.cryptos:
                raise ValueError("SRTP offered but the answer has no usable a=crypto")
            tag = self._pending_tx.tag if self._pending_tx else 1
            rx = next((c for c in sdp.cryptos if c.tag == tag), sdp.cryptos[0])
            self.tx_crypto = self._pending_tx or self.tx_crypto
        self._apply(sdp, rx, answer_direction(sdp.direction, self.want_direction))

    def make_answer(self, offer: bytes, method: str) -> bytes | None:
        """Answer the peer's offer, or None when it is not acceptable (488)."""
        sdp = parse_sdp(offer)
        rx = tx = None
        if sdp.srtp:
            rx = sdp.cryptos[0] if sdp.cryptos else None
            if rx is None:
                return None
            self.srtp = True
            cur = self.tx_crypto
            if cur is None or cur.suite != rx.suite or (self.rekey_in_answer and self.remote_sdp is not None):
                tx = Crypto.generate(rx.suite, rx.tag)
            else:
                tx = Crypto(rx.tag, cur.suite, cur.key_salt)
        elif self.srtp and self.ua.srtp_required:
            return None
        else:
            self.srtp = False
        new_rx = rx is not None and not self.media.rx.known(rx)
        direction = answer_direction(sdp.direction, self.want_direction)
        self.offers_received.append(
            OfferRecord(
                time.monotonic(), method, sdp.direction, new_rx and self.remote_sdp is not None, rx, direction
            )
        )
        self.sdp_version += 1
        pts = tuple(p for p in sdp.payload_types if p == 0 or p == sdp.telephone_event_pt) or (0,)
        body = build_sdp(
            self.ua.host,
            self.media.rtp_port,
            session_id=self.session_id,
            version=self.sdp_version,
            crypto=tx,
            direction=direction,
            payload_types=pts,
            dtmf_pt=sdp.telephone_event_pt or 101,
            rtcp_port=self.media.rtcp_port,
            username=self.ua.user,
        )
        first = self.remote_sdp is None
        self._pending_tx = tx
        self.local_direction = direction
        self._apply(sdp, rx, direction, switch_tx=first)
        return body

    def commit_answer_key(self) -> None:
        """Start sending under the key of our last answer (on ACK/after the UPDATE answer)."""
        if self._pending_tx is not None and self.srtp:
            self.tx_crypto = self._pending_tx
            self._configure()

    def _apply(self, sdp: AudioSdp, rx: Crypto | None, direction: str, switch_tx: bool = True) -> None:
        self.remote_sdp = sdp
        self.local_direction = direction
        self._rx_offer = rx
        if switch_tx and self._pending_tx is not None:
            self.tx_crypto = self._pending_tx
        self._configure()

    def _configure(self) -> None:
        sdp = self.remote_sdp
        if sdp is None:
            return
        rtcp = (sdp.ip, sdp.rtcp_port or sdp.port + 1) if sdp.port else None
        sending = self.local_direction in ("sendrecv", "sendonly") and sdp.port != 0
        self.media.configure(
            (sdp.ip, sdp.port),
            rtcp,
            tx=self.tx_crypto,
            rx=self._rx_offer,
            srtp=self.srtp,
            pt=0,
            dtmf_pt=sdp.telephone_event_pt,
            sending=sending,
        )
        self.media.start()

    # ---------------------------------------------------------------------------------- blocking API
    @property
    def rx_crypto(self) -> Crypto | None:
        """The key this call currently decrypts with (the peer's last authenticated key)."""
        return self.media.rx.current

    def answer(self, code: int = 200) -> None:
        """Answer an incoming call (only needed with ``auto_answer=False``); code >= 300 rejects it."""
        self.ua.answer_call(self, code)

    def reject(self, code: int = 486) -> None:
        self.ua.answer_call(self, code)

    def wait_confirmed(self, timeout: float = 10.0) -> bool:
        return self.confirmed.wait(timeout)

    def wait_terminated(self, timeout: float = 10.0) -> bool:
        return self.terminated.wait(timeout)

    def wait_offers(self, count: int, timeout: float = 10.0) -> bool:
        """Wait until ``count`` offers (initial included) were received from the peer."""
        deadline = time.monotonic() + timeout
        while len(self.offers_received) < count:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def wait_key_switches(self, count: int, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while len(self.media.key_switches) < count:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def bye(self, timeout: float = 5.0) -> SipMessage | None:
        if self.state == "terminated":
            return None
        return self.ua.run(self.ua.send_bye(self, timeout), timeout + 1)

    def cancel(self, timeout: float = 5.0) -> SipMessage | None:
        return self.ua.run(self.ua.send_cancel(self, timeout), timeout + 1)

    def reinvite(
        self,
        direction: str | None = None,
        new_key: bool = False,
        timeout: float = 10.0,
        method: str = "INVITE",
    ) -> SipMessage:
        """Send a re-INVITE (or UPDATE) with a fresh offer; ``new_key`` offers a new send key (used
        once the answer arrives). Returns the final response."""
        return self.ua.run(self.ua.send_reoffer(self, method, direction, new_key, timeout), timeout + 1)

    def update(
        self, direction: str | None = None, new_key: bool = False, timeout: float = 10.0
    ) -> SipMessage:
        return self.reinvite(direction, new_key, timeout, method="UPDATE")

    def hold(self, inactive: bool = False) -> SipMessage:
        return self.reinvite("inactive" if inactive else "sendonly")

    def resume(self) -> SipMessage:
        return self.reinvite("sendrecv")

    def replaces_value(self) -> str:
        """Value for a ``Replaces`` header that the *peer* of this call will match (RFC 3891 §3)."""
        return f"{self.call_id};to-tag={self.remote_tag};from-tag={self.local_tag}"

    def refer_target(self, uri: str | None = None) -> str:
        """``uri`` (default: the peer's Contact) with this dialog embedded as ``?Replaces=``."""
        base = SipUri.parse(uri or self.remote_target).without_headers()
        return f"{base}?Replaces={quote(self.replaces_value(), safe='')}"

    def refer(
        self,
        refer_to: str,
        replaces: Call | None = None,
        timeout: float = 5.0,
        extra: list[tuple[str, str]] | None = None,
    ) -> SipMessage:
        """In-dialog REFER. With ``replaces``, ``refer_to`` gets ``?Replaces=`` of that call (e.g. A REFERs
        the focus to B with the A-B dialog). NOTIFYs arrive in ``notifies``; see :meth:`wait_refer_final`."""
        if replaces is not None:
            refer_to = replaces.refer_target(refer_to)
        headers = [("Refer-To", f"<{refer_to}>"), ("Referred-By", f"<{self.ua.aor}>"), *(extra or [])]
        req = self.request("REFER", extra=headers)
        resp = self.ua.run(
            self.ua.send_request(req, self.next_hop(), self.flow, dialog=self, timeout=timeout), timeout + 1
        )
        self.refer_ids.append(resp.cseq[0])  # after digest retries: the CSeq the NOTIFYs' id= names
        return resp

    def wait_refer_final(self, timeout: float = 10.0, refer_id: int | None = None) -> int | None:
        """The final sipfrag status reported by NOTIFY (Event: refer) for ``refer_id`` (default: the last
        REFER sent in this dialog; a NOTIFY without ``id=`` matches any), or None on timeout."""
        want = refer_id if refer_id is not None else (self.refer_ids[-1] if self.refer_ids else None)

        def final(n: SipMessage) -> bool:
            event = n.get("Event") or ""
            st = sipfrag_status(n.body)
            if not event.startswith("refer") or st is None or st < 200:
                return False
            m = re.search(r";\s*id=(\d+)", event)
            return want is None or m is None or int(m.group(1)) == want

        n = self.wait_notify(final, timeout)
        return sipfrag_status(n.body) if n is not None else None

    def send_dtmf(self, digits: str, duration_ms: int = 100, pause_ms: int = 80, wait: bool = True) -> None:
        self.media.send_dtmf(digits, duration_ms, pause_ms, wait=wait)

    def info(
        self, body: bytes, content_type: str = "application/dtmf-relay", timeout: float = 5.0
    ) -> SipMessage:
        req = self.request("INFO", body, content_type)
        return self.ua.run(
            self.ua.send_request(req, self.next_hop(), self.flow, dialog=self, timeout=timeout), timeout + 1
        )

    def _terminate(self, by: str) -> None:
        if self.state == "terminated":
            return
        self.state = "terminated"
        self.terminated_by = by
        self.media.stop()
        self.terminated.set()
