"""What the test UA does with requests it receives (UAS side): INVITE/re-INVITE/UPDATE, ACK, BYE,
REFER (as transferee, with NOTIFY sipfrag), NOTIFY, and INVITE with Replaces (RFC 3891)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from .call import Call, Dialog, Subscription
from .sipmsg import REASONS, NameAddr, SipMessage, SipUri, new_tag

if TYPE_CHECKING:
    from .transport import Flow
    from .ua import UserAgent

SDP = "application/sdp"


def out_of_dialog(ua: UserAgent, msg: SipMessage, flow: Flow) -> None:
    m = msg.method
    if m == "INVITE":
        new_invite(ua, msg, flow)
    elif m == "REFER":
        on_refer(ua, None, msg, flow)
    elif m == "OPTIONS":
        ua.respond(msg, flow, 200, contact=True, extra=[("Accept", SDP)])
    elif m in ("MESSAGE", "INFO"):
        ua.respond(msg, flow, 200)
    elif m == "SUBSCRIBE":
        ua.respond(msg, flow, 489)
    elif m in ("NOTIFY", "BYE", "UPDATE"):
        ua.respond(msg, flow, 481)
    else:
        ua.respond(msg, flow, 405, extra=[("Allow", "INVITE, ACK, CANCEL, BYE, UPDATE, REFER, NOTIFY")])


def in_dialog(ua: UserAgent, d: Dialog, msg: SipMessage, flow: Flow) -> None:
    m = msg.method
    d.remote_cseq = msg.cseq[0]
    if m == "NOTIFY":
        on_notify(ua, d, msg, flow)
    elif m == "REFER":
        on_refer(ua, d, msg, flow)
    elif isinstance(d, Call) and m in ("INVITE", "UPDATE"):
        on_reoffer(ua, d, msg, flow)
    elif m == "BYE":
        ua.respond(msg, flow, 200)
        if isinstance(d, Call):
            d._terminate("remote")
    elif m in ("INFO", "MESSAGE", "OPTIONS"):
        ua.respond(msg, flow, 200)
    else:
        ua.respond(msg, flow, 405)


def on_notify(ua: UserAgent, d: Dialog, msg: SipMessage, flow: Flow) -> None:
    ua.respond(msg, flow, 200)
    if d.remote_tag is None:
        d.remote_tag = msg.from_tag
    if contact := msg.get("Contact"):
        d.remote_target = NameAddr.parse(contact).uri
    if d.flow is None or not d.flow.open:
        d.flow = flow
    d._notify_arrived(msg)


def _match_replaces(ua: UserAgent, value: str) -> Call | None:
    """RFC 3891 §3: to-tag is compared with our local tag, from-tag with the remote tag."""
    call_id, _, rest = value.strip().partition(";")
    params = dict(p.strip().partition("=")[::2] for p in rest.split(";") if p.strip())
    d = ua._dialogs.get((call_id.strip(), params.get("to-tag", "")))
    if isinstance(d, Call) and d.remote_tag == params.get("from-tag") and d.state != "terminated":
        if "early-only" in params and d.state == "confirmed":
            return None
        return d
    return None


def new_invite(ua: UserAgent, msg: SipMessage, flow: Flow) -> None:
    contact = msg.get("Contact")
    call = Call(
        ua,
        msg.call_id,
        new_tag(),
        NameAddr.parse(msg.get("To") or "").uri,
        NameAddr.parse(msg.get("From") or "").uri,
        outgoing=False,
        srtp=ua.srtp,
        remote_tag=msg.from_tag,
        remote_target=NameAddr.parse(contact).uri if contact else None,
        route_set=msg.get_all("Record-Route"),
        flow=flow,
    )
    call.remote_cseq = msg.cseq[0]
    call.invite, call.invite_flow = msg, flow
    ua._dialogs[(call.call_id, call.local_tag)] = call
    ua.calls.append(call)
    replaces = msg.get("Replaces")
    if replaces:
        old = _match_replaces(ua, replaces)
        if old is None:
            ua.respond(msg, flow, 481, to_tag=call.local_tag)
            call._terminate("replaces did not match")
            return
        call.replaces = old
    ua.respond(msg, flow, 100)
    ua.incoming.put(call)
    aa = ua.auto_answer
    if aa is True or (call.replaces is not None and aa is not False):
        ua._spawn(answer(ua, call, 200, ua.answer_delay))
    elif aa is not False and int(aa) >= 300:
        ua._spawn(answer(ua, call, int(aa)))


async def answer(ua: UserAgent, call: Call, code: int = 200, delay: float = 0.0) -> None:
    msg, flow = call.invite, call.invite_flow
    if call.state != "incoming" or msg is None or flow is None:
        return
    if delay > 0:
        ua.respond(msg, flow, 180, to_tag=call.local_tag, contact=True)
        await asyncio.sleep(delay)
        if call.state != "incoming":
            return
    if code >= 300:
        ua.respond(msg, flow, code, to_tag=call.local_tag)
        call._terminate(f"rejected {code}")
        return
    if msg.body:
        try:
            body = call.make_answer(msg.body, "INVITE")
        except ValueError:
            body = None
        if body is None:
            ua.respond(msg, flow, 488, to_tag=call.local_tag)
            call._terminate("rejected 488")
            return
    else:
        body = call.make_offer()
        call.await_ack_answer = True
    call.state = "early"
    ua.respond(msg, flow, code, to_tag=call.local_tag, body=body, content_type=SDP, contact=True)


def on_ack(ua: UserAgent, call: Call, msg: SipMessage) -> None:
    if call.await_ack_answer and msg.body:
        call.await_ack_answer = False
        call.apply_answer(msg.body)
    else:
        call.commit_answer_key()
    if call.state == "early" and not call.outgoing:
        call.state = "confirmed"
        call.confirmed.set()
        old = call.replaces
        if old is not None and old.state != "terminated":
            old.replaced_by = call
            ua._spawn(_bye_replaced(ua, old))


async def _bye_replaced(ua: UserAgent, old: Call) -> None:
    req = old.request("BYE")
    old._terminate("replaced")
    await ua.send_request(req, old.next_hop(), old.flow, dialog=old, timeout=5)


def on_reoffer(ua: UserAgent, call: Call, msg: SipMessage, flow: Flow) -> None:
    if call.reoffer_pending:
        ua.respond(msg, flow, 491)
        return
    if contact := msg.get("Contact"):
        call.remote_target = NameAddr.parse(contact).uri
    if msg.body:
        try:
            body = call.make_answer(msg.body, msg.method or "")
        except ValueError:
            body = None
        if body is None:
            ua.respond(msg, flow, 488)
            return
    elif msg.method == "INVITE":
        body = call.make_offer()
        call.await_ack_answer = True
    else:  # UPDATE without SDP: a session refresh
        ua.respond(msg, flow, 200, contact=True)
        return
    ua.respond(msg, flow, 200, body=body, content_type=SDP, contact=True)
    if msg.method == "UPDATE":
        call.commit_answer_key()


def on_refer(ua: UserAgent, d: Dialog | None, msg: SipMessage, flow: Flow) -> None:
    refer_to = msg.get("Refer-To")
    if not refer_to:
        ua.respond(msg, flow, 400, reason="Missing Refer-To")
        return
    if not ua.accept_refer:
        ua.respond(msg, flow, 603)
        return
    if d is None:
        contact = msg.get("Contact")
        d = Subscription(
            ua,
            msg.call_id,
            new_tag(),
            NameAddr.parse(msg.get("To") or "").uri,
            NameAddr.parse(msg.get("From") or "").uri,
            remote_tag=msg.from_tag,
            remote_target=NameAddr.parse(contact).uri if contact else None,
            route_set=msg.get_all("Record-Route"),
            flow=flow,
        )
        d.event = "refer"
        ua._dialogs[(d.call_id, d.local_tag)] = d
    ua.respond(msg, flow, 202, to_tag=d.local_tag, contact=True)
    ua._spawn(_transfer(ua, d, NameAddr.parse(refer_to).uri, msg))


async def _notify(ua: UserAgent, d: Dialog, status: int, state: str, evid: int) -> None:
    frag = f"SIP/2.0 {status} {REASONS.get(status, 'Unknown')}\r\n".encode()
    req = d.request(
        "NOTIFY",
        frag,
        "message/sipfrag;version=2.0",
        [("Event", f"refer;id={evid}"), ("Subscription-State", state)],
    )
    await ua.send_request(req, d.next_hop(), d.flow, dialog=d, timeout=5)


async def _transfer(ua: UserAgent, d: Dialog, target: str, refer: SipMessage) -> None:
    """Act on a REFER: NOTIFY 100, INVITE the Refer-To URI (with its embedded headers, e.g. Replaces),
    NOTIFY the final status and end the implicit subscription."""
    evid = refer.cseq[0]
    await _notify(ua, d, 100, "active;expires=60", evid)
    uri = SipUri.parse(target)
    call = ua.new_call(str(uri))
    ua.transfers.append(call)
    extra = [("Referred-By", rb)] if (rb := refer.get("Referred-By")) else []
    await ua.invite(call, ua._dest(str(uri.without_headers()), None), extra, 10.0)
    status = call.final_response.status if call.final_response is not None else 500
    await _notify(ua, d, status or 500, "terminated;reason=noresource", evid)
