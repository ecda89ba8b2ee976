"""Dialogs (RFC 3261 §12, §13.2.2.4, §13.3.1.4) and the dialog registry."""

from __future__ import annotations

import pytest

from imsconf.sip.dialog import (
    AnswerRetransmitter,
    AnswerState,
    Dialog,
    DialogId,
    DialogRegistry,
    DialogReject,
    DialogState,
)
from imsconf.sip.errors import LocalProtocolError, SipParseError
from imsconf.sip.headers import Headers
from imsconf.sip.message import Request, Response, parse_message, validate
from imsconf.sip.timers import TimerConfig
from imsconf.sip.util import make_response, new_via

# A request traversing UAC -> P1 -> P2 -> UAS collects Record-Route P2 (top), P1.
RR = ["<sip:p2.example.com;lr>", "<sip:p1.example.com;lr>"]


def invite(
    *,
    method: str = "INVITE",
    uri: str = "sip:conf@focus.example.com",
    record_route: list[str] | None = None,
    cseq: int = 10,
    contact: str | None = "<sip:alice@198.51.100.1:5060;transport=udp>",
) -> Request:
    h = Headers()
    h.add("Via", new_via("UDP", "198.51.100.1", 5060))
    h.add("Max-Forwards", "70")
    for rr in record_route if record_route is not None else RR:
        h.add("Record-Route", rr)
    h.add("From", '"Alice" <sip:alice@example.com>;tag=a1')
    h.add("To", "<sip:conf@focus.example.com>")
    h.add("Call-ID", "call-77@198.51.100.1")
    h.add("CSeq", f"{cseq} {method}")
    if contact:
        h.add("Contact", contact)
    return Request(method, uri, h)


def dstate(d: Dialog) -> DialogState:
    return d.state


def ok(
    req: Request, status: int = 200, tag: str = "f1", contact: str | None = "<sip:conf@203.0.113.5>"
) -> Response:
    resp = make_response(req, status, to_tag=tag)
    for rr in req.headers.get_all("Record-Route"):
        resp.headers.add("Record-Route", rr)
    if contact:
        resp.headers.add("Contact", contact)
    return resp


def uas_dialog(**kwargs: object) -> Dialog:
    req = invite(**kwargs)  # type: ignore[arg-type]
    return Dialog.from_uas(req, ok(req))


def uac_dialog(record_route: list[str] | None = None) -> Dialog:
    req = invite(record_route=[])
    return Dialog.from_uac(req, ok(req) if record_route is None else _with_rr(ok(req), record_route))


def _with_rr(resp: Response, rr: list[str]) -> Response:
    resp.headers.remove("Record-Route")
    for value in rr:
        resp.headers.add("Record-Route", value)
    return resp


# ---- creation ----------------------------------------------------------------------------------------


def test_uas_dialog_from_invite_and_2xx() -> None:
    req = invite()
    d = Dialog.from_uas(req, ok(req), local_contact="<sip:conf@203.0.113.5;isfocus>")
    assert d.id == DialogId("call-77@198.51.100.1", "f1", "a1")
    assert d.route_set == RR  # as received
    assert d.remote_target == "sip:alice@198.51.100.1:5060;transport=udp"
    assert d.remote_seq == 10 and d.local_seq is None
    assert dstate(d) is DialogState.CONFIRMED and not d.is_uac and not d.secure
    assert str(d.local_uri) == "<sip:conf@focus.example.com>" and d.remote_uri.display == '"Alice"'
    assert "tag" not in d.remote_uri.params
    assert d.local_contact == "<sip:conf@203.0.113.5;isfocus>"


def test_uas_dialog_early_secure_and_contact_default() -> None:
    req = invite(uri="sips:conf@focus.example.com", method="SUBSCRIBE")
    d = Dialog.from_uas(req, ok(req, 180))
    assert dstate(d) is DialogState.EARLY and d.secure
    assert d.local_contact == "<sip:conf@203.0.113.5>"
    assert not Dialog.from_uas(req, ok(req), secure=False).secure


def test_uas_dialog_creation_errors() -> None:
    req = invite()
    with pytest.raises(LocalProtocolError):
        Dialog.from_uas(invite(method="BYE"), ok(req))
    for status in (100, 300):
        with pytest.raises(LocalProtocolError):
            Dialog.from_uas(req, make_response(req, status))
    with pytest.raises(LocalProtocolError):
        Dialog.from_uas(req, make_response(req, 200))  # no To tag
    no_contact = invite(contact=None)
    with pytest.raises(DialogReject) as exc:
        Dialog.from_uas(no_contact, ok(no_contact))
    assert exc.value.status == 400


def test_uac_dialog_route_set_is_reversed() -> None:
    req = invite(record_route=[])
    resp = _with_rr(ok(req), RR)
    d = Dialog.from_uac(req, resp)
    assert d.route_set == list(reversed(RR))
    assert d.id == DialogId("call-77@198.51.100.1", "a1", "f1")
    assert d.remote_target == "sip:conf@203.0.113.5"
    assert d.local_seq == 10 and d.remote_seq is None and d.is_uac
    assert d.local_contact == "<sip:alice@198.51.100.1:5060;transport=udp>"


def test_uac_dialog_creation_errors() -> None:
    req = invite()
    with pytest.raises(SipParseError):
        Dialog.from_uac(req, make_response(req, 180))  # 1xx without a tag
    with pytest.raises(SipParseError):
        Dialog.from_uac(req, ok(req, contact=None))
    with pytest.raises(LocalProtocolError):
        Dialog.from_uac(invite(method="OPTIONS"), ok(req))
    with pytest.raises(LocalProtocolError):
        Dialog.from_uac(req, ok(req, 404))
    no_tag = invite()
    no_tag.headers.set("From", "<sip:alice@example.com>")
    with pytest.raises(LocalProtocolError):
        Dialog.from_uac(no_tag, ok(no_tag))
    # RFC 2543 peer: a 2xx without a To tag gives a null remote tag
    old = make_response(req, 200)
    old.headers.add("Contact", "<sip:b@h>")
    assert Dialog.from_uac(req, old).remote_tag == ""


# ---- requests we send --------------------------------------------------------------------------------


def test_create_request_loose_routing() -> None:
    d = uas_dialog()
    bye = d.create_request(
        "BYE", via=new_via("UDP", "203.0.113.5", 5060), headers=[("Reason", "SIP;cause=200")]
    )
    validate(parse_message(bytes(bye)))
    assert bye.uri == d.remote_target
    assert bye.headers.get_all("Route") == RR
    assert bye.from_.tag == "f1" and bye.to.tag == "a1" and bye.call_id == d.call_id
    assert bye.headers.get("Contact") is None and bye.headers.get("Reason") == "SIP;cause=200"
    first = bye.cseq.number
    assert 1 <= first <= 2**16 and d.local_seq == first
    reinvite = d.create_request("INVITE", body=b"v=0\r\n")
    assert reinvite.cseq.number == first + 1 and str(reinvite.cseq).endswith("INVITE")
    assert reinvite.headers.get("Contact") == "<sip:conf@203.0.113.5>" and reinvite.body == b"v=0\r\n"
    assert reinvite.headers.get("Via") is None  # the caller adds it


def test_create_request_without_route_set() -> None:
    d = uac_dialog()
    req = d.create_request("UPDATE")
    assert req.uri == "sip:conf@203.0.113.5" and req.headers.get("Route") is None
    assert req.cseq.number == 11  # continues from the INVITE's CSeq


def test_create_request_strict_router() -> None:
    d = uac_dialog(["<sip:p2.example.com;lr>", "<sip:p1.example.com;method=INVITE;transport=tcp>"])
    assert d.route_set[0] == "<sip:p1.example.com;method=INVITE;transport=tcp>"
    req = d.create_request("BYE")
    assert req.uri == "sip:p1.example.com;transport=tcp"  # method= is not allowed in a Request-URI
    assert req.headers.get_all("Route") == ["<sip:p2.example.com;lr>", "<sip:conf@203.0.113.5>"]
    assert d.target_and_routes() == (req.uri, req.headers.get_all("Route"))


def test_create_request_refusals_change_nothing() -> None:
    d = uac_dialog()
    for method in ("ACK", "CANCEL"):
        with pytest.raises(LocalProtocolError):
            d.create_request(method)
    d.terminate()
    with pytest.raises(LocalProtocolError):
        d.create_request("BYE")
    assert d.local_seq == 10 and d.terminated


def test_create_ack_for_2xx() -> None:
    d = uac_dialog(list(reversed(RR)))
    ack = d.create_ack(10, via=new_via("UDP", "198.51.100.1", 5060), headers=[("Authorization", "Digest x")])
    assert ack.method == "ACK" and str(ack.cseq) == "10 ACK"
    assert ack.uri == d.remote_target and ack.headers.get_all("Route") == d.route_set
    assert ack.headers.get("Authorization") == "Digest x"
    assert d.local_seq == 10  # an ACK does not consume a CSeq
    with pytest.raises(LocalProtocolError):
        uas_dialog().create_ack(1)


# ---- requests we receive ------------------------------------------------------------------------------


def in_dialog(d: Dialog, method: str, cseq: int, contact: str | None = None) -> Request:
    h = Headers()
    h.add("Via", new_via("UDP", "198.51.100.1", 5060))
    h.add("From", f"<sip:alice@example.com>;tag={d.remote_tag}")
    h.add("To", f"<sip:conf@focus.example.com>;tag={d.local_tag}")
    h.add("Call-ID", d.call_id)
    h.add("CSeq", f"{cseq} {method}")
    if contact:
        h.add("Contact", contact)
    return Request(method, d.remote_target, h)


def test_receive_request_cseq_ordering() -> None:
    d = uas_dialog()
    d.receive_request(in_dialog(d, "INFO", 11))
    assert d.remote_seq == 11
    d.receive_request(in_dialog(d, "INFO", 11))  # equal is not out of order
    with pytest.raises(DialogReject) as exc:
        d.receive_request(in_dialog(d, "INFO", 9, contact="<sip:evil@x>"))
    assert exc.value.status == 500 and d.remote_seq == 11
    d.receive_request(in_dialog(d, "ACK", 10))  # the ACK carries the INVITE's CSeq
    assert d.remote_seq == 11
    d.receive_request(in_dialog(d, "BYE", 500))
    assert d.remote_seq == 500


def test_receive_request_sets_empty_remote_seq() -> None:
    d = uac_dialog()
    d.receive_request(in_dialog(d, "NOTIFY", 1))
    assert d.remote_seq == 1


def test_target_refresh() -> None:
    d = uas_dialog()
    d.receive_request(in_dialog(d, "BYE", 11, contact="<sip:ignored@x>"))
    assert d.remote_target.startswith("sip:alice@198.51.100.1")  # BYE is no target refresh
    d.receive_request(in_dialog(d, "INVITE", 12, contact="<sip:alice@192.0.2.99:5070>"))
    assert d.remote_target == "sip:alice@192.0.2.99:5070"
    d.receive_request(in_dialog(d, "UPDATE", 13, contact="Alice <sip:alice@192.0.2.100>;expires=3"))
    assert d.remote_target == "sip:alice@192.0.2.100"
    d.receive_request(in_dialog(d, "INVITE", 14))  # no Contact: unchanged
    assert d.remote_target == "sip:alice@192.0.2.100"


def test_receive_request_of_another_dialog_or_terminated() -> None:
    d = uas_dialog()
    other = in_dialog(d, "BYE", 11)
    other.headers.set("To", "<sip:conf@focus.example.com>;tag=zzz")
    with pytest.raises(DialogReject) as exc:
        d.receive_request(other)
    assert exc.value.status == 481
    d.terminate()
    with pytest.raises(DialogReject):
        d.receive_request(in_dialog(d, "BYE", 11))


# ---- responses ------------------------------------------------------------------------------------------


def test_uac_early_dialog_confirmed_by_2xx_recomputes_route_set() -> None:
    req = invite(record_route=[])
    early = Dialog.from_uac(req, _with_rr(ok(req, 183), ["<sip:old;lr>"]))
    assert dstate(early) is DialogState.EARLY and early.route_set == ["<sip:old;lr>"]
    early.receive_response(_with_rr(ok(req, 200, contact="<sip:final@203.0.113.7>"), RR))
    assert dstate(early) is DialogState.CONFIRMED
    assert early.route_set == list(reversed(RR)) and early.remote_target == "sip:final@203.0.113.7"


def test_uac_early_dialog_terminated_by_failure() -> None:
    req = invite()
    early = Dialog.from_uac(req, ok(req, 180))
    early.receive_response(ok(req, 486))
    assert early.terminated


@pytest.mark.parametrize("status", [408, 481])
def test_481_and_408_terminate(status: int) -> None:
    d = uac_dialog()
    bye = d.create_request("INFO")
    d.receive_response(make_response(bye, status, to_tag="f1"))
    assert d.terminated


def test_2xx_to_reinvite_refreshes_target() -> None:
    d = uac_dialog()
    reinvite = d.create_request("INVITE")
    d.receive_response(ok(reinvite, contact="<sip:moved@203.0.113.8>"))
    assert d.remote_target == "sip:moved@203.0.113.8" and dstate(d) is DialogState.CONFIRMED
    info = d.create_request("INFO")
    d.receive_response(ok(info, contact="<sip:no-refresh@x>"))
    assert d.remote_target == "sip:moved@203.0.113.8"


def test_uas_response_sent_tracks_state() -> None:
    req = invite()
    early = Dialog.from_uas(req, ok(req, 180))
    early.response_sent(ok(req, 180))
    assert dstate(early) is DialogState.EARLY
    early.response_sent(ok(req, 200))
    assert dstate(early) is DialogState.CONFIRMED
    rejected = Dialog.from_uas(req, ok(req, 180))
    rejected.response_sent(ok(req, 486))
    assert rejected.terminated
    uac = uac_dialog()
    uac.response_sent(ok(req, 486))  # not a UAS dialog: ignored
    assert not uac.terminated


# ---- registry -----------------------------------------------------------------------------------------


def test_registry_matching() -> None:
    reg = DialogRegistry()
    uas = uas_dialog()
    uac = uac_dialog()
    uac.call_id = "other-call"
    reg.add(uas)
    reg.add(uac)
    assert len(reg) == 2 and uas.id in reg and set(reg) == {uas, uac}
    with pytest.raises(LocalProtocolError):
        reg.add(uas)
    assert reg.match_request(in_dialog(uas, "BYE", 11)) is uas
    assert reg.match_request(invite()) is None  # no To tag: out of dialog
    stranger = in_dialog(uas, "BYE", 11)
    stranger.headers.set("From", "<sip:x@y>;tag=nobody")
    assert reg.match_request(stranger) is None
    bye = uac.create_request("BYE")
    assert reg.match_response(make_response(bye, 200)) is uac
    untagged = make_response(bye, 200)
    untagged.headers.set("From", "<sip:alice@example.com>")
    assert reg.match_response(untagged) is None
    assert reg.by_call("other-call", "a1") == [uac]
    assert reg.get(uac.id) is uac
    uac.terminate()
    assert reg.prune() == [uac] and len(reg) == 1
    assert reg.remove(uas.id) is uas and reg.remove(uas.id) is None


def test_dialog_id_validation() -> None:
    with pytest.raises(LocalProtocolError):
        DialogId("", "a", "b")
    assert DialogId("c", "a", "").remote_tag == ""


def test_uac_and_uas_dialogs_agree() -> None:
    """A UAC and a UAS build their dialogs from the same exchange; each side's requests match the other."""
    req = invite(record_route=[])
    resp = _with_rr(ok(req), RR)
    req_at_uas = invite()  # the proxies recorded the route on the way
    uac = Dialog.from_uac(req, resp)
    uas = Dialog.from_uas(req_at_uas, ok(req_at_uas))
    uas_reg = DialogRegistry()
    uas_reg.add(uas)
    bye = uac.create_request("BYE", via=new_via("UDP", "198.51.100.1", 5060))
    assert bye.headers.get_all("Route") == ["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"]
    wire = parse_message(bytes(bye))
    assert isinstance(wire, Request)
    matched = uas_reg.match_request(wire)
    assert matched is uas
    uas.receive_request(bye)
    assert uas.remote_seq == 11
    notify = uas.create_request("NOTIFY")
    uac_reg = DialogRegistry()
    uac_reg.add(uac)
    assert uac_reg.match_request(notify) is uac
    assert notify.headers.get_all("Route") == RR


# ---- 2xx retransmission by the UAS core ---------------------------------------------------------------


def test_answer_retransmitter_udp() -> None:
    r = AnswerRetransmitter(started=0.0)
    fired: list[float] = []
    while (d := r.next_deadline()) is not None:
        if r.handle_timer(d):
            fired.append(d)
    assert fired == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert r.state is AnswerState.TIMED_OUT and r.give_up_at == 32.0
    assert not r.handle_timer(40.0)


def test_answer_retransmitter_ack_and_reliable() -> None:
    r = AnswerRetransmitter(started=10.0, config=TimerConfig(t1=0.1, t2=0.2))
    assert r.next_deadline() == pytest.approx(10.1)
    assert not r.handle_timer(10.05)
    assert r.handle_timer(10.1)
    r.ack_received()
    assert r.state is AnswerState.ACKED and r.next_deadline() is None and not r.handle_timer(20.0)
    r.ack_received()
    assert r.state is AnswerState.ACKED
    tcp = AnswerRetransmitter(started=0.0, reliable=True)
    assert tcp.next_deadline() == 32.0
    assert not tcp.handle_timer(1.0)
    assert not tcp.handle_timer(32.0) and tcp.state is AnswerState.TIMED_OUT
