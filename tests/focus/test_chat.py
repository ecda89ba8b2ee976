"""The focus as the MSRP chat switch (imsconf.focus.chat), sans-I/O: SDP, binding, relay, history."""

from __future__ import annotations

from helpers import Harness, conf_id_of, sdp_offer

from imsconf.app.focus_wiring import FocusOptions
from imsconf.conference.participant import MediaInfo
from imsconf.focus.chat import FocusChat
from imsconf.focus.floor_feature import certificate_fingerprint
from imsconf.im.cpim import CpimMessage, parse_cpim, render_cpim
from imsconf.im.msrp import ByteRange, Frame, MsrpParser, MsrpUri, render
from imsconf.sdp.msrp import MessageMedia
from imsconf.sdp.session import SessionDescription

SERVER_FP = ("sha-256", certificate_fingerprint(b"self-signed server"))


def message_offer(
    proto: str = "TCP/TLS/MSRP",
    cert: bytes | None = b"client",
    session: str = "peer1",
    setup: str | None = None,
) -> bytes:
    scheme = "msrps" if "TLS" in proto else "msrp"
    lines = [
        f"m=message 9 {proto} *",
        "a=accept-types:message/cpim text/plain",
        f"a=path:{scheme}://198.51.100.1:9/{session};tcp",
    ]
    if cert is not None:
        lines.append(f"a=fingerprint:sha-256 {certificate_fingerprint(cert)}")
    if setup is not None:
        lines.append(f"a=setup:{setup}")
    return sdp_offer() + ("\r\n".join(lines) + "\r\n").encode()


class Client:
    """One participant's MSRP connection, as the test sees it."""

    def __init__(self, rig: Rig, conn: int, mm: MessageMedia, own: MsrpUri) -> None:
        self.rig, self.conn, self.mm, self.own = rig, conn, mm, own
        self.parser = MsrpParser()
        self.frames: list[Frame] = []
        self.n = 0

    @property
    def focus_uri(self) -> MsrpUri:
        return MsrpUri.parse(self.mm.path[0])

    def send(
        self, body: bytes, content_type: str = "text/plain", *, to: MsrpUri | None = None, chunks: int = 1
    ) -> None:
        size = max(1, -(-len(body) // chunks))
        starts = list(range(0, len(body), size)) or [0]
        mid = f"m{self.n + 1}"
        for start in starts:
            self.n += 1
            piece = body[start : start + size]
            last = start + size >= len(body)
            headers = (
                ("To-Path", str(to or self.focus_uri)),
                ("From-Path", str(self.own)),
                ("Message-ID", mid),
                ("Byte-Range", str(ByteRange(start + 1, start + len(piece), len(body)))),
                ("Content-Type", content_type),
            )
            frame = Frame(
                f"tid{self.n:05d}", method="SEND", headers=headers, body=piece, flag="$" if last else "+"
            )
            self.rig.chat.receive(self.conn, render(frame), self.rig.h.now)
        self.rig.pump()

    def received(self) -> list[CpimMessage]:
        """The messages relayed to us since the last call (each SEND answered 200)."""
        out = []
        parts: dict[str, bytes] = {}
        for f in self.frames:
            if f.method == "SEND":
                assert f.content_type == "message/cpim" and f.message_id is not None
                parts[f.message_id] = parts.get(f.message_id, b"") + (f.body or b"")
                if f.flag == "$":
                    out.append(parse_cpim(parts.pop(f.message_id)))
                headers = (("To-Path", str(self.focus_uri)), ("From-Path", str(self.own)))
                ok = Frame(f.tid, status=200, comment="OK", headers=headers)
                self.rig.chat.receive(self.conn, render(ok), self.rig.h.now)
        assert not parts
        self.frames = [f for f in self.frames if f.method is None]
        self.rig.pump()
        return out


class Rig:
    def __init__(self, *, allow_plain: bool = False, history: int = 20) -> None:
        self.h = Harness(options=FocusOptions(allow_plain_msrp=allow_plain, chat_history=history))
        chat = self.h.focus.chat
        assert chat is not None
        self.chat: FocusChat = chat
        self.chat.set_listener("TCP/TLS/MSRP", "198.18.0.1", 2855, fingerprint=SERVER_FP)
        self.chat.set_listener("TCP/MSRP", "198.18.0.1", 2856)
        self.clients: dict[int, Client] = {}
        self.closed: list[int] = []
        self.conn = 0
        self.uri = ""

    def join(
        self, user: str, body: bytes, extra: tuple[tuple[str, str], ...] = ()
    ) -> tuple[MessageMedia | None, str]:
        ua = self.h.ua(user)
        if not self.uri:
            resp, self.uri = self.h.create(ua, body)
        else:
            resp = self.h.join(ua, self.uri, body, extra)
        answer = SessionDescription.parse(resp.body)
        msgs = [m for m in answer.media if m.media == "message"]
        return (MessageMedia.from_media(msgs[0]) if msgs and msgs[0].port else None), ua.peer.host

    def connect(
        self,
        mm: MessageMedia,
        *,
        tls: bool = True,
        cert: bytes | None = b"client",
        host: str = "198.51.100.10",
    ) -> Client:
        self.conn += 1
        self.chat.connection_made(self.conn, self.h.now)
        self.chat.peer_info(self.conn, tls=tls, peer_cert=cert, peer_host=host)
        client = self.clients[self.conn] = Client(
            self, self.conn, mm, MsrpUri.parse(f"msrps://198.51.100.1:9/c{self.conn};tcp")
        )
        return client

    def pump(self) -> None:
        for conn, data in self.chat.outputs():
            c = self.clients[conn]
            c.frames += c.parser.feed(data)
        self.closed += self.chat.connections_to_close()

    def member(self, name: str) -> Client:
        mm, _ = self.join(name, message_offer(cert=name.encode()))
        assert mm is not None
        c = self.connect(mm, cert=name.encode())
        c.send(b"")  # the offerer's first SEND opens the session (RFC 4975 §5.4)
        assert c.frames[0].status == 200
        c.frames = [f for f in c.frames if f.method is not None]  # the history, if any
        return c


def test_answer_has_our_path_accept_types_and_fingerprint() -> None:
    rig = Rig()
    mm, _ = rig.join("alice", message_offer())
    assert mm is not None
    assert (mm.port, mm.proto, mm.accept_types) == (2855, "TCP/TLS/MSRP", ("message/cpim", "text/plain"))
    assert mm.accept_wrapped_types == ("*",)
    assert mm.fingerprints == (SERVER_FP,)
    uri = MsrpUri.parse(mm.path[0])
    assert (uri.scheme, uri.host, uri.port, uri.transport) == ("msrps", "198.18.0.1", 2855, "tcp")
    assert len(uri.session_id) >= 24
    mm2, _ = rig.join("bob", message_offer())
    assert mm2 is not None and mm2.path != mm.path  # one session-id per participant
    # the event package shows the message media, the operator counter starts at 0
    leg = next(iter(rig.h.focus.legs.values()))
    assert rig.h.focus.media_info(leg).message
    assert rig.chat.message_count(conf_id_of(rig.uri)) == 0


def test_unusable_offers_leave_the_line_rejected_and_the_call_up() -> None:
    rig = Rig()
    assert rig.join("alice", message_offer("TCP/MSRP"))[0] is None  # plain MSRP is not allowed
    assert rig.join("bob", message_offer(setup="passive"))[0] is None
    body = sdp_offer() + b"m=message 9 TCP/TLS/MSRP *\r\na=accept-types:text/plain\r\n"  # no a=path
    assert rig.join("carol", body)[0] is None
    assert rig.join("dave", sdp_offer())[0] is None  # no chat at all: works as before
    assert len(rig.h.focus.legs) == 4
    leg = next(iter(rig.h.focus.legs.values()))
    assert rig.h.focus.media_info(leg) == MediaInfo(srtp=True, codec="PCMU")
    plain = Rig(allow_plain=True)
    mm, _ = plain.join("alice", message_offer("TCP/MSRP", cert=None))
    assert mm is not None and mm.port == 2856 and mm.path[0].startswith("msrp://") and not mm.fingerprints


def test_who_may_connect() -> None:
    rig = Rig()
    mm, _ = rig.join("alice", message_offer(cert=b"alice"))
    assert mm is not None
    good = MsrpUri.parse(mm.path[0])
    guessed = MsrpUri(good.scheme, good.host, good.port, "x" + good.session_id[1:], "tcp")
    c = rig.connect(mm, cert=b"alice")
    c.send(b"hi", to=guessed)
    assert [f.status for f in c.frames] == [481] and c.conn in rig.closed
    c = rig.connect(mm, cert=b"mallory")  # the right session-id, another certificate
    c.send(b"")
    assert [f.status for f in c.frames] == [403] and c.conn in rig.closed
    c = rig.connect(mm, tls=False, cert=None)  # plain TCP for a TLS session
    c.send(b"")
    assert [f.status for f in c.frames] == [403]
    c = rig.connect(mm, cert=b"alice")
    c.send(b"")
    assert [f.status for f in c.frames] == [200] and c.conn not in rig.closed
    # an unbound connection is closed after the bind timeout
    rig.chat.connection_made(99, rig.h.now)
    deadline = rig.chat.next_deadline()
    assert deadline is not None
    rig.chat.handle_timer(deadline)
    assert 99 in rig.chat.connections_to_close()


def test_plain_msrp_must_come_from_the_signalling_host() -> None:
    rig = Rig(allow_plain=True)
    mm, host = rig.join("alice", message_offer("TCP/MSRP", cert=None))
    assert mm is not None
    c = rig.connect(mm, tls=False, cert=None, host="203.0.113.99")
    c.send(b"")
    assert [f.status for f in c.frames] == [403]
    c = rig.connect(mm, tls=False, cert=None, host=host)
    c.send(b"")
    assert [f.status for f in c.frames] == [200]


def test_message_goes_to_the_others_in_cpim_with_the_sender_named() -> None:
    rig = Rig()
    alice, bob, carol = rig.member("alice"), rig.member("bob"), rig.member("carol")
    rig.h.now += 1
    alice.send(b"hello all")
    assert [f.status for f in alice.frames] == [200]
    for who in (bob, carol):
        [msg] = who.received()
        assert msg.from_ == "<sip:alice@example.net>"
        assert msg.to == (f"<{rig.h.conference(rig.uri).uri}>",)
        assert msg.content_type == "text/plain" and msg.body == b"hello all"
        assert msg.datetime is not None and msg.datetime.endswith("Z")
    assert alice.received() == []
    assert rig.chat.message_count(conf_id_of(rig.uri)) == 1
    # a CPIM message: its From is replaced by what the focus knows
    forged = CpimMessage(
        '"Bob" <sip:bob@example.net>',
        (f"<{rig.uri}>",),
        None,
        "Hi",
        (),
        (),
        "text/plain;charset=utf-8",
        (),
        "grüß".encode(),
    )
    carol.send(render_cpim(forged), "message/cpim")
    [msg] = alice.received()
    assert msg.from_ == "<sip:carol@example.net>" and msg.subject == "Hi" and msg.body == "grüß".encode()
    assert msg.content_type == "text/plain;charset=utf-8"


def test_private_message_reaches_only_its_target() -> None:
    rig = Rig()
    alice, bob, carol = rig.member("alice"), rig.member("bob"), rig.member("carol")
    private = CpimMessage(
        "<sip:alice@example.net>",
        ("<sip:carol@example.net>",),
        None,
        None,
        (),
        (),
        "text/plain",
        (),
        b"just you",
    )
    alice.send(render_cpim(private), "message/cpim")
    [msg] = carol.received()
    assert msg.body == b"just you" and msg.to == ("<sip:carol@example.net>",)
    assert bob.received() == []
    # nobody of that name: a failure REPORT
    nobody = CpimMessage(
        "<sip:alice@example.net>", ("<sip:zed@example.net>",), None, None, (), (), "text/plain", (), b"?"
    )
    alice.send(render_cpim(nobody), "message/cpim")
    reports = [f for f in alice.frames if f.method == "REPORT"]
    assert reports and reports[-1].status_header is not None and reports[-1].status_header.code == 404
    # private messages are not history
    dave = rig.member("dave")
    assert dave.received() == []


def test_chunked_message_is_reassembled_and_capped() -> None:
    rig = Rig()
    alice, bob = rig.member("alice"), rig.member("bob")
    body = bytes(range(256)) * 40
    alice.send(body, "application/octet-stream", chunks=5)
    assert [f.status for f in alice.frames] == [415] * 5  # not an accepted type
    alice.frames.clear()
    text = ("x" * 9000).encode()
    alice.send(text, chunks=4)
    assert [f.status for f in alice.frames] == [200] * 4
    [msg] = bob.received()
    assert msg.body == text
    rig.chat.max_message = 100
    for member in (rig.chat.member(k) for k in list(rig.h.focus.legs)):
        if member is not None and member.session is not None:
            member.session.max_message = 100
    alice.frames.clear()
    alice.send(b"y" * 300, chunks=3)
    assert [f.status for f in alice.frames] == [413, 413, 413]
    assert bob.received() == []


def test_late_joiner_gets_the_history_marked_as_such() -> None:
    rig = Rig(history=2)
    alice, bob = rig.member("alice"), rig.member("bob")
    for text in (b"one", b"two", b"three"):
        alice.send(text)
        rig.h.now += 1
    bob.received()
    carol = rig.member("carol")
    got = carol.received()
    assert [m.body for m in got] == [b"two", b"three"]
    for m in got:
        assert m.ns == ("imsconf <urn:imsconf:params:cpim>",)
        assert ("imsconf.History", "original") in m.other_headers
        assert m.from_ == "<sip:alice@example.net>"
    assert got[0].datetime is not None and got[1].datetime is not None and got[0].datetime < got[1].datetime


def test_privacy_hides_the_sender_from_other_participants_only() -> None:
    rig = Rig()
    alice = rig.member("alice")  # the owner
    bob = rig.member("bob")
    mm, _ = rig.join("carol", message_offer(cert=b"carol"), extra=(("Privacy", "id"),))
    assert mm is not None
    carol = rig.connect(mm, cert=b"carol")
    carol.send(b"")
    carol.frames.clear()
    carol.send(b"secret sender")
    assert [m.from_ for m in bob.received()] == ['"Anonymous" <sip:anonymous@anonymous.invalid>']
    assert [m.from_ for m in alice.received()] == ["<sip:carol@example.net>"]


def test_leaving_or_dropping_chat_closes_the_connection() -> None:
    rig = Rig()
    alice, bob = rig.member("alice"), rig.member("bob")
    ua = rig.h.ua("erin")
    rig.h.join(ua, rig.uri, message_offer(cert=b"erin"))
    erin_leg = next(
        k for k in rig.h.focus.legs if (m := rig.chat.member(k)) is not None and m.conn_id is None
    )
    assert rig.chat.negotiated(erin_leg)
    # a re-INVITE without m=message ends erin's chat
    rig.h.send(ua, ua.reinvite(sdp_offer()))
    assert not rig.chat.negotiated(erin_leg)
    # bob leaves: his connection is closed, alice's messages reach nobody
    bob_leg = next(
        k for k in rig.h.focus.legs if (m := rig.chat.member(k)) is not None and m.conn_id == bob.conn
    )
    rig.h.focus.end(rig.h.ep, rig.h.focus.legs[bob_leg], "left", rig.h.now, send_bye=True)
    rig.pump()
    assert bob.conn in rig.closed
    alice.send(b"anyone?")
    assert bob.received() == []


def test_failed_private_delivery_reports_back_to_the_sender() -> None:
    rig = Rig()
    alice, carol = rig.member("alice"), rig.member("carol")
    private = CpimMessage(
        "<sip:alice@example.net>",
        ("<sip:carol@example.net>",),
        None,
        None,
        (),
        (),
        "text/plain",
        (),
        b"are you there?",
    )
    alice.send(render_cpim(private), "message/cpim")
    alice.frames.clear()
    [send] = [f for f in carol.frames if f.method == "SEND"]
    headers = (("To-Path", str(carol.focus_uri)), ("From-Path", str(carol.own)))
    rig.chat.receive(
        carol.conn, render(Frame(send.tid, status=413, comment="Too Large", headers=headers)), rig.h.now
    )
    rig.pump()
    [report] = [f for f in alice.frames if f.method == "REPORT"]
    assert report.message_id == f"m{alice.n}"
    assert report.status_header is not None and report.status_header.code == 413
    # a timeout does the same
    alice.frames.clear()
    carol.frames.clear()
    alice.send(render_cpim(private), "message/cpim")
    alice.frames.clear()
    deadline = rig.chat.next_deadline()
    assert deadline is not None
    rig.chat.handle_timer(deadline + 0.001)
    rig.pump()
    [report] = [f for f in alice.frames if f.method == "REPORT"]
    assert report.status_header is not None and report.status_header.code == 408


def test_an_unbound_connection_may_not_hold_much() -> None:
    rig = Rig()
    rig.chat.connection_made(7, rig.h.now)
    rig.chat.peer_info(7, tls=True, peer_cert=None, peer_host="203.0.113.5")
    head = (
        b"MSRP abcd1234 SEND\r\nTo-Path: msrps://198.18.0.1:2855/nobody;tcp\r\n"
        b"Content-Type: text/plain\r\n\r\n"
    )
    rig.chat.receive(7, head + b"z" * 40000, rig.h.now)
    assert rig.chat.connections_to_close() == [7]
    assert rig.chat.next_deadline() is None
