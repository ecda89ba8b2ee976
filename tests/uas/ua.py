"""The test user agent: UAC and UAS over UDP/TCP/TLS, with a blocking API for synchronous tests."""

from __future__ import annotations

import asyncio
import logging
import queue
import secrets
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from . import uas_handlers
from .call import Call, Dialog, Subscription, resolve
from .sipmsg import (
    ALLOW,
    NameAddr,
    SipMessage,
    SipUri,
    choose_challenge,
    digest_credentials,
    make_response,
    new_branch,
    new_tag,
)
from .transport import Flow, SipTransport

log = logging.getLogger("uas")
T = TypeVar("T")
T1, T2 = 0.5, 4.0


@dataclass
class _ClientTx:
    request: SipMessage
    data: bytes
    dest: tuple[str, int] | None
    flow: Flow | None
    fut: asyncio.Future[SipMessage]
    on_provisional: Callable[[SipMessage], None] | None = None
    provisional: bool = False
    responses: list[SipMessage] = field(default_factory=list)


class UserAgent:
    """A SIP phone for tests. Start it (or use ``with``), then :meth:`call` / :meth:`wait_call`.

    ``auto_answer``: True answers incoming INVITEs with 200 (after ``answer_delay`` s, with 180 first),
    an int >= 300 rejects with that code, False leaves them to :meth:`Call.answer`.
    """

    def __init__(
        self,
        user: str = "alice",
        *,
        transport: str = "udp",
        host: str = "127.0.0.1",
        port: int = 0,
        domain: str = "localhost",
        username: str | None = None,
        password: str | None = None,
        proxy: tuple[str, int] | None = None,
        ca_file: str | None = None,
        cert_file: str | None = None,
        key_file: str | None = None,
        tls_server_name: str | None = None,
        srtp: bool = True,
        srtp_required: bool = False,
        suite: str = "AES_CM_128_HMAC_SHA1_80",
        tone_hz: float = 440.0,
        amplitude: float = 0.25,
        auto_answer: bool | int = True,
        answer_delay: float = 0.0,
        accept_refer: bool = True,
        rekey_in_answer: bool = False,
        rtcp_interval: float = 1.0,
        rtcp_rr_only: bool = False,
        display_name: str = "",
        user_agent: str = "imsconf-test-ua/1",
    ) -> None:
        self.user, self.host, self.domain = user, host, domain
        self.username, self.password = username or user, password
        self.proxy = proxy
        self.srtp, self.srtp_required, self.suite = srtp, srtp_required, suite
        self.tone_hz, self.amplitude, self.rtcp_interval = tone_hz, amplitude, rtcp_interval
        self.rtcp_rr_only = rtcp_rr_only
        self.auto_answer, self.answer_delay = auto_answer, answer_delay
        self.accept_refer, self.rekey_in_answer = accept_refer, rekey_in_answer
        self.display_name, self.user_agent = display_name, user_agent
        self.transport = SipTransport(
            transport,
            host,
            port,
            self._on_message,
            ca_file=ca_file,
            cert_file=cert_file,
            key_file=key_file,
            tls_server_name=tls_server_name,
        )
        self.calls: list[Call] = []
        self.transfers: list[Call] = []  # calls made because of a received REFER
        self.requests_received: list[SipMessage] = []
        self.incoming: queue.Queue[Call] = queue.Queue()
        self._dialogs: dict[tuple[str, str], Dialog] = {}
        self._ctx: dict[tuple[str, str], _ClientTx] = {}
        self._stx: dict[tuple[str, str], tuple[SipMessage | None, Flow]] = {}
        self._acks: dict[tuple[str, int], tuple[bytes, tuple[str, int], Flow | None]] = {}
        self._unacked: dict[tuple[str, int], asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._started = False

    # ---------------------------------------------------------------------------------- lifecycle
    def start(self) -> UserAgent:
        self.transport.start()
        self._started = True
        return self

    def close(self, hangup: bool = True) -> None:
        if not self._started:
            return
        self._started = False
        for c in list(self.calls):
            if hangup and c.state == "confirmed":
                try:
                    c.bye(timeout=2)
                except Exception:  # the peer may be gone already
                    log.debug("BYE on close failed", exc_info=True)
            if c.state != "terminated":
                c._terminate("closed")
        self.transport.close()

    def __enter__(self) -> UserAgent:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        return self.transport.run(coro, timeout)

    # ---------------------------------------------------------------------------------- identity
    @property
    def transport_kind(self) -> str:
        return self.transport.kind

    @property
    def port(self) -> int:
        return self.transport.port

    @property
    def aor(self) -> str:
        return f"sip:{self.user}@{self.domain}"

    @property
    def contact_uri(self) -> str:
        tp = "" if self.transport_kind == "udp" else f";transport={self.transport_kind}"
        return f"sip:{self.user}@{self.host}:{self.port}{tp}"

    @property
    def contact(self) -> str:
        return f"<{self.contact_uri}>"

    def via(self, branch: str) -> str:
        return f"SIP/2.0/{self.transport_kind.upper()} {self.host}:{self.port};branch={branch};rport"

    def from_nameaddr(self) -> str:
        return str(NameAddr(self.aor, self.display_name))

    def _dest(self, target: str, proxy: tuple[str, int] | None) -> tuple[str, int]:
        return proxy or self.proxy or resolve(target, self.transport_kind)

    # ---------------------------------------------------------------------------------- public API
    def call(
        self,
        target: str,
        *,
        proxy: tuple[str, int] | None = None,
        headers: list[tuple[str, str]] | None = None,
        srtp: bool | None = None,
        direction: str = "sendrecv",
        wait: bool = True,
        timeout: float = 10.0,
    ) -> Call:
        """INVITE ``target`` (a SIP URI; ``?Replaces=...`` in it becomes a header). With ``wait`` it returns
        once the INVITE got a final response: check ``call.state`` / ``call.final_response``."""
        call = self.new_call(target, srtp=srtp, direction=direction)
        fut = asyncio.run_coroutine_threadsafe(
            self.invite(call, self._dest(target, proxy), headers, timeout), self.transport.loop
        )
        if wait:
            fut.result(timeout + 5)
        return call

    def new_call(self, target: str, *, srtp: bool | None = None, direction: str = "sendrecv") -> Call:
        uri = SipUri.parse(target)
        call = Call(
            self,
            secrets.token_hex(10),
            new_tag(),
            self.aor,
            str(uri.without_headers()),
            outgoing=True,
            srtp=self.srtp if srtp is None else srtp,
        )
        call.want_direction = direction
        call.target_headers = dict(uri.headers)
        self.calls.append(call)
        return call

    def wait_call(self, timeout: float = 10.0) -> Call:
        """The next incoming call (already being answered when ``auto_answer``); raises queue.Empty."""
        return self.incoming.get(timeout=timeout)

    def subscribe(
        self,
        target: str,
        event: str = "conference",
        *,
        expires: int = 600,
        accept: str | None = None,
        proxy: tuple[str, int] | None = None,
        timeout: float = 5.0,
    ) -> Subscription:
        sub = Subscription(self, secrets.token_hex(10), new_tag(), self.aor, target)
        sub.event = event
        extra = [("Event", event), ("Expires", str(expires))]
        if accept:
            extra.append(("Accept", accept))
        return self.run(
            self._ood_dialog(sub, "SUBSCRIBE", extra, self._dest(target, proxy), timeout), timeout + 2
        )

    def refer(
        self,
        target: str,
        refer_to: str,
        *,
        replaces: Call | None = None,
        proxy: tuple[str, int] | None = None,
        timeout: float = 5.0,
    ) -> Subscription:
        """Out-of-dialog REFER; the implicit subscription's NOTIFYs land in the returned object."""
        if replaces is not None:
            refer_to = replaces.refer_target(refer_to)
        sub = Subscription(self, secrets.token_hex(10), new_tag(), self.aor, target)
        sub.event = "refer"
        extra = [("Refer-To", f"<{refer_to}>"), ("Referred-By", f"<{self.aor}>")]
        return self.run(
            self._ood_dialog(sub, "REFER", extra, self._dest(target, proxy), timeout), timeout + 2
        )

    def answer_call(self, call: Call, code: int = 200, timeout: float = 5.0) -> None:
        """Answer (200) or reject (>= 300) an incoming call left unanswered (``auto_answer=False``)."""
        self.run(uas_handlers.answer(self, call, code), timeout)

    def options(
        self, target: str, *, proxy: tuple[str, int] | None = None, timeout: float = 5.0
    ) -> SipMessage:
        return self.run(self._options(target, self._dest(target, proxy), timeout), timeout + 2)

    async def _options(self, target: str, dest: tuple[str, int], timeout: float) -> SipMessage:
        await self.transport.prepare(dest)
        d = Dialog(self, secrets.token_hex(10), new_tag(), self.aor, target)
        req = d.request("OPTIONS", extra=[("Accept", "application/sdp")])
        return await self.send_request(req, dest, timeout=timeout)

    # ---------------------------------------------------------------------------------- client side
    async def send_request(
        self,
        req: SipMessage,
        dest: tuple[str, int] | None,
        flow: Flow | None = None,
        *,
        dialog: Dialog | None = None,
        timeout: float = 10.0,
        on_provisional: Callable[[SipMessage], None] | None = None,
    ) -> SipMessage:
        """One request with digest retries (SHA-256 first); returns the final response (408 on timeout)."""
        for attempt in range(3):
            final = await self._transact(req, dest, flow, on_provisional, timeout)
            if final.status not in (401, 407) or not self.password or attempt == 2:
                return final
            hdr = "WWW-Authenticate" if final.status == 401 else "Proxy-Authenticate"
            chal = choose_challenge(final.get_all(hdr))
            if chal is None:
                return final
            num, method = req.cseq
            if dialog is not None:
                dialog.local_cseq = max(dialog.local_cseq, num) + 1
                num = dialog.local_cseq
            else:
                num += 1
            retry = SipMessage(method=req.method, uri=req.uri, headers=list(req.headers), body=req.body)
            vias = retry.get_all("Via")
            retry.set("Via", self.via(new_branch()))
            for v in vias[1:]:
                retry.add("Via", v)
            retry.set("CSeq", f"{num} {method}")
            name = "Authorization" if final.status == 401 else "Proxy-Authorization"
            retry.set(
                name, digest_credentials(chal, method, req.uri or "", self.username, self.password, req.body)
            )
            req = retry
            if (
                isinstance(dialog, Call)
                and method == "INVITE"
                and dialog.invite is not None
                and dialog.invite.call_id == req.call_id
                and dialog.state in ("calling", "early")
            ):
                dialog.invite = req
        raise AssertionError("unreachable")

    async def _transact(
        self,
        req: SipMessage,
        dest: tuple[str, int] | None,
        flow: Flow | None,
        on_provisional: Callable[[SipMessage], None] | None,
        timeout: float,
    ) -> SipMessage:
        loop = asyncio.get_running_loop()
        data = req.to_bytes()
        tx = _ClientTx(req, data, dest, flow, loop.create_future(), on_provisional)
        self._ctx[(req.branch, req.method or "")] = tx
        retrans = None
        try:
            tx.flow = await self.transport.send(data, dest, flow)
            if self.transport_kind == "udp":
                retrans = self._spawn(self._retransmit(tx))
            return await asyncio.wait_for(asyncio.shield(tx.fut), timeout)
        except (TimeoutError, OSError) as exc:
            log.info("%s %s: %s", req.method, req.uri, exc or "timeout")
            return SipMessage(status=408, reason="Request Timeout (local)", headers=list(req.headers))
        finally:
            if retrans is not None:
                retrans.cancel()
            loop.call_later(10, self._ctx.pop, (req.branch, req.method or ""), None)

    async def _retransmit(self, tx: _ClientTx) -> None:
        interval = T1
        while not tx.fut.done():
            await asyncio.sleep(interval)
            if tx.fut.done() or (tx.request.method == "INVITE" and tx.provisional):
                return
            await self.transport.send(tx.data, tx.dest, tx.flow)
            interval = interval * 2 if tx.request.method == "INVITE" else min(interval * 2, T2)

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _on_response(self, msg: SipMessage, flow: Flow) -> None:
        num, method = msg.cseq
        tx = self._ctx.get((msg.branch, method))
        status = msg.status or 0
        if tx is None or tx.request.method != method:
            if method == "INVITE" and 200 <= status < 300 and (old := self._acks.get((msg.call_id, num))):
                self._spawn(self.transport.send(old[0], old[1], old[2]))
            return
        tx.responses.append(msg)
        if status < 200:
            tx.provisional = True
            if tx.on_provisional is not None:
                tx.on_provisional(msg)
            return
        if method == "INVITE" and status >= 300:  # hop-by-hop ACK of a failure (RFC 3261 §17.1.1.3)
            ack = SipMessage(method="ACK", uri=tx.request.uri)
            ack.add("Via", tx.request.get_all("Via")[0])
            for h in ("Max-Forwards", "From"):
                ack.add(h, tx.request.get(h) or "70")
            ack.add("To", msg.get("To") or "")
            ack.add("Call-ID", msg.call_id)
            ack.add("CSeq", f"{num} ACK")
            for r in tx.request.get_all("Route"):
                ack.add("Route", r)
            self._spawn(self.transport.send(ack.to_bytes(), tx.dest, tx.flow))
        elif method == "INVITE" and tx.fut.done() and (ack2 := self._acks.get((msg.call_id, num))):
            self._spawn(self.transport.send(ack2[0], ack2[1], ack2[2]))
        if not tx.fut.done():
            tx.fut.set_result(msg)

    async def send_ack(self, call: Call, cseq: int, body: bytes = b"") -> None:
        ack = call.request("ACK", body, "application/sdp" if body else None, cseq=cseq)
        dest = call.next_hop()
        data = ack.to_bytes()
        self._acks[(call.call_id, cseq)] = (data, dest, call.flow)
        await self.transport.send(data, dest, call.flow)

    async def invite(
        self, call: Call, dest: tuple[str, int], headers: list[tuple[str, str]] | None, timeout: float
    ) -> Call:
        self._dialogs[(call.call_id, call.local_tag)] = call
        await self.transport.prepare(dest)
        body = call.make_offer(direction=call.want_direction)
        extra = [(k, v) for k, v in getattr(call, "target_headers", {}).items()]
        extra += [("Allow", ALLOW), ("Supported", "replaces"), *(headers or [])]
        req = call.request("INVITE", body, "application/sdp", extra)
        call.invite = req

        def provisional(resp: SipMessage) -> None:
            if resp.to_tag and (resp.status or 0) > 100 and call.state == "calling":
                call.state = "early"
                call.remote_tag = resp.to_tag

        final = await self.send_request(req, dest, dialog=call, timeout=timeout, on_provisional=provisional)
        call.final_response = final
        if call.state == "terminated":  # cancelled meanwhile
            return call
        if final.status is not None and 200 <= final.status < 300:
            tx = self._ctx.get((final.branch, final.cseq[1]))
            call.flow = tx.flow if tx is not None else None
            self._update_dialog(call, final, uac=True)
            try:
                call.apply_answer(final.body)
            except ValueError:
                log.warning("unusable answer from %s", call.remote_uri)
            await self.send_ack(call, final.cseq[0])
            call.state = "confirmed"
            call.confirmed.set()
        else:
            call._terminate(f"rejected {final.status}")
        return call

    def _update_dialog(self, d: Dialog, msg: SipMessage, uac: bool) -> None:
        if uac:
            d.remote_tag = msg.to_tag or d.remote_tag
            rr = msg.get_all("Record-Route")
            if rr:
                d.route_set = list(reversed(rr))
        contact = msg.get("Contact")
        if contact:
            d.remote_target = NameAddr.parse(contact).uri

    async def _ood_dialog(
        self,
        sub: Subscription,
        method: str,
        extra: list[tuple[str, str]],
        dest: tuple[str, int],
        timeout: float,
    ) -> Subscription:
        self._dialogs[(sub.call_id, sub.local_tag)] = sub
        await self.transport.prepare(dest)
        req = sub.request(method, extra=extra)
        final = await self.send_request(req, dest, dialog=sub, timeout=timeout)
        sub.response = final
        if final.status is not None and 200 <= final.status < 300:
            tx = self._ctx.get((final.branch, final.cseq[1]))
            sub.flow = tx.flow if tx is not None else None
            self._update_dialog(sub, final, uac=True)
        return sub

    async def send_bye(self, call: Call, timeout: float) -> SipMessage:
        req = call.request("BYE")
        call._terminate("local")
        return await self.send_request(req, call.next_hop(), call.flow, dialog=call, timeout=timeout)

    async def send_cancel(self, call: Call, timeout: float) -> SipMessage | None:
        inv = call.invite
        if inv is None or call.state not in ("calling", "early"):
            return None
        req = SipMessage(method="CANCEL", uri=inv.uri)
        for h in ("Via", "Max-Forwards", "From", "To", "Call-ID"):
            req.add(h, inv.get_all("Via")[0] if h == "Via" else inv.get(h) or "")
        req.add("CSeq", f"{inv.cseq[0]} CANCEL")
        for r in inv.get_all("Route"):
            req.add("Route", r)
        tx = self._ctx.get((inv.branch, "INVITE"))
        return await self._transact(
            req, tx.dest if tx else call.next_hop(), tx.flow if tx else None, None, timeout
        )

    async def send_reoffer(
        self, call: Call, method: str, direction: str | None, new_key: bool, timeout: float
    ) -> SipMessage:
        call.reoffer_pending = True
        try:
            body = call.make_offer(new_key, direction)
            req = call.request(method, body, "application/sdp")
            final = await self.send_request(req, call.next_hop(), call.flow, dialog=call, timeout=timeout)
        finally:
            call.reoffer_pending = False
        if final.status is not None and 200 <= final.status < 300:
            if final.body:
                call.apply_answer(final.body)
            if method == "INVITE":
                await self.send_ack(call, final.cseq[0])
        else:
            call._pending_tx = None
            if final.status in (408, 481):
                call._terminate(f"{method} {final.status}")
        return final

    # ---------------------------------------------------------------------------------- server side
    def _on_message(self, msg: SipMessage, flow: Flow) -> None:
        if not msg.is_request:
            self._on_response(msg, flow)
            return
        self.requests_received.append(msg)
        method = msg.method or ""
        if method == "ACK":
            self._on_ack(msg)
            return
        key = (msg.branch, method)
        if key in self._stx:  # retransmission: repeat the last response
            last, _f = self._stx[key]
            if last is not None:
                self._spawn(self.transport.send(last.to_bytes(), None, flow, reply=True))
            return
        self._stx[key] = (None, flow)
        asyncio.get_running_loop().call_later(40, self._stx.pop, key, None)
        if method == "CANCEL":
            self._on_cancel(msg, flow)
            return
        to_tag = msg.to_tag
        if to_tag:
            d = self._dialogs.get((msg.call_id, to_tag))
            if d is None:
                self.respond(msg, flow, 481)
                return
            d.requests.append(msg)
            uas_handlers.in_dialog(self, d, msg, flow)
        else:
            uas_handlers.out_of_dialog(self, msg, flow)

    def respond(self, req: SipMessage, flow: Flow, code: int, **kw: Any) -> SipMessage:
        resp = make_response(req, code, contact_uri=self.contact, user_agent=self.user_agent, **kw)
        self._stx[(req.branch, req.method or "")] = (resp, flow)
        self._spawn(self.transport.send(resp.to_bytes(), None, flow, reply=True))
        if req.method == "INVITE" and 200 <= code < 300 and self.transport_kind == "udp":
            key = (req.call_id, req.cseq[0])
            self._unacked[key] = self._spawn(self._retransmit_2xx(resp.to_bytes(), flow, key))
        return resp

    async def _retransmit_2xx(self, data: bytes, flow: Flow, key: tuple[str, int]) -> None:
        interval = T1
        for _ in range(10):
            await asyncio.sleep(interval)
            if key not in self._unacked:
                return
            await self.transport.send(data, None, flow, reply=True)
            interval = min(interval * 2, T2)
        self._unacked.pop(key, None)

    def _on_ack(self, msg: SipMessage) -> None:
        key = (msg.call_id, msg.cseq[0])
        task = self._unacked.pop(key, None)
        if task is not None:
            task.cancel()
        d = self._dialogs.get((msg.call_id, msg.to_tag or ""))
        if isinstance(d, Call):
            uas_handlers.on_ack(self, d, msg)

    def _on_cancel(self, msg: SipMessage, flow: Flow) -> None:
        inv = self._stx.get((msg.branch, "INVITE"))
        call = next(
            (
                c
                for c in self.calls
                if c.invite is not None and c.invite.branch == msg.branch and not c.outgoing
            ),
            None,
        )
        if inv is None or call is None:
            self.respond(msg, flow, 481)
            return
        self.respond(msg, flow, 200)
        if call.state in ("incoming", "early") and call.invite is not None:
            self.respond(call.invite, inv[1], 487, to_tag=call.local_tag)
            call._terminate("cancelled")
