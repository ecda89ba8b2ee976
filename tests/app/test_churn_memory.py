"""Memory under churn: conference joins and leaves through the endpoint, the focus and the real media
engine leave nothing of theirs behind once their transactions have ended, and the heap keeper releases
the heap once a load has passed (docs/decisions/0012-memory-after-load.md).

Counted with tracemalloc (blocks still allocated by imsconf's code after the churn), not by timing: a
per-call string kept for the conference's life, a memo table holding the last calls' parsed headers, a leg's
arrays left in the engine all show as blocks that grow with the number of calls.
"""

from __future__ import annotations

import gc
import itertools
import random
import tracemalloc

from imsconf.app.focus_wiring import assemble_focus
from imsconf.app.heap import HeapKeeper, release_heap
from imsconf.app.server import build_capabilities
from imsconf.conference.events import ParticipantJoined
from imsconf.conference.model import Conference, ConferencePolicy
from imsconf.focus.config import FocusConfig
from imsconf.media.control import LocalMediaControl
from imsconf.media.engine import MediaEngine
from imsconf.sip.endpoint import EndpointConfig, SipEndpoint
from imsconf.sip.message import parse_message
from imsconf.sip.peer import Peer

HOST = "127.0.0.1"
PEER = Peer("udp", HOST, 5070, None)
SDP = (
    "v=0\r\no=member 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio 6000 RTP/AVP 8 0\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\n"
)


def _msg(start: str, n: int, cseq: str, to: str, body: str = "") -> bytes:
    extra = f"Contact: <sip:m@{HOST}:5070>\r\nContent-Type: application/sdp\r\n" if body else ""
    return (
        f"{start}\r\nVia: SIP/2.0/UDP {HOST}:5070;branch=z9hG4bK-{n}-{cseq.replace(' ', '')}\r\n"
        f"From: <sip:member{n}@{HOST}>;tag=tag{n}\r\nTo: {to}\r\nCall-ID: {n}-churn@{HOST}\r\n"
        f"CSeq: {cseq}\r\n{extra}Max-Forwards: 70\r\nContent-Length: {len(body)}\r\n\r\n{body}"
    ).encode()


class Ports:
    """Port pairs from a fixed pool, reused when closed (as the runtime's allocator does)."""

    host = HOST

    def __init__(self) -> None:
        self._free = list(range(20000, 30000, 2))

    def open_ports(self, rtcp_mux: bool) -> tuple[int, int]:
        p = self._free.pop()
        return (p, p) if rtcp_mux else (p, p + 1)

    def close_ports(self, rtp_port: int, rtcp_port: int) -> None:
        self._free.append(rtp_port)


class Churn:
    def __init__(self) -> None:
        self.now = 1000.0
        self.engine = MediaEngine(allow_plain_rtp=True, rng=random.Random(1))
        cfg = FocusConfig(
            domain="localhost", media_host=HOST, allow_plain_rtp=True, allow_sdes_over_insecure=True
        )
        self.focus = assemble_focus(cfg, LocalMediaControl(self.engine, Ports()))
        local = {"udp": (HOST, 5060), "tcp": (HOST, 5060), "tls": (HOST, 5061)}
        self.ep = SipEndpoint(EndpointConfig(caps=build_capabilities(), local=local), self.focus)
        self.calls = itertools.count(1)
        target, _ = self.join("sip:conference-factory@127.0.0.1:5060")  # the owner stays
        self.conf_uri = f"sip:{target.split(':', 1)[1].split('@', 1)[0]}@{HOST}:5060"

    def _send(self, data: bytes) -> list[bytes]:
        self.ep.receive_datagram(data, PEER, self.now)
        out = [d for d, _ in self.ep.take_outbox()]
        self.timers()
        return out

    def timers(self) -> None:
        while (d := self.ep.next_deadline()) is not None and d <= self.now:
            self.ep.handle_timer(self.now)
            self.ep.take_outbox()

    def join(self, ruri: str) -> tuple[str, str]:
        n = next(self.calls)
        resp = parse_message(self._send(_msg(f"INVITE {ruri} SIP/2.0", n, "1 INVITE", f"<{ruri}>", SDP))[-1])
        assert resp.is_request is False and resp.status == 200  # type: ignore[union-attr]
        contact = resp.headers.get("Contact") or ""
        target = contact[contact.index("<") + 1 : contact.index(">")]
        to = resp.headers.get("To") or ""
        self._send(_msg(f"ACK {target} SIP/2.0", n, "1 ACK", to))
        return target, to

    def join_leave(self, count: int) -> None:
        for _ in range(count):
            target, to = self.join(self.conf_uri)
            n = next(self.calls) - 1
            out = self._send(_msg(f"BYE {target} SIP/2.0", n, "2 BYE", to))
            assert out[-1].startswith(b"SIP/2.0 200")
            self.now += 0.01
            self.engine.tick(self.now)

    def idle(self) -> None:
        """Past every transaction's lifetime (64*T1), the mixer ticking."""
        for _ in range(40):
            self.now += 1.0
            self.timers()
            self.engine.tick(self.now)
        assert len(self.ep.layer) == 0


def _blocks_left(churn: Churn, calls: int) -> int:
    gc.collect()
    tracemalloc.start(1)
    try:
        churn.join_leave(calls)
        churn.idle()
        release_heap()
        gc.collect()
        snap = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(True, "*/imsconf/*")])
    finally:
        tracemalloc.stop()
    return sum(stat.count for stat in snap.statistics("filename"))


def test_joins_and_leaves_leave_no_per_call_memory() -> None:
    churn = Churn()
    churn.join_leave(50)  # warm-up: first-use tables, lazily built parts
    churn.idle()
    calls = 400
    left = _blocks_left(churn, calls)
    assert len(churn.focus.legs) == 1  # the owner
    assert len(list(churn.engine.legs())) == 1
    # nothing per call (before the fix: a participant id per call, hundreds of memoised header values)
    assert left < calls // 4, left


def test_automatic_participant_ids_are_not_remembered() -> None:
    policy = ConferencePolicy(close_when_empty=False)
    conf = Conference("c1", "sip:c1@localhost", None, policy, created_at=0.0)
    for i in range(1000):
        conf.join(f"sip:u{i}@localhost", float(i))
        conf.leave(f"p{i + 1}")
    assert len(conf._given_ids) == 0  # the record that grew by one per call
    (joined,) = conf.join("sip:x@localhost", 2000.0)
    assert isinstance(joined, ParticipantJoined)
    assert joined.participant.participant_id == "p1001"


def test_heap_keeper_releases_once_a_load_has_passed() -> None:
    released: list[int] = []
    keeper = HeapKeeper(lambda: released.append(1), least=100)
    for live in [10, 50, 20, 60]:  # a small load: nothing
        keeper.observe(live)
    keeper.observe(0)
    assert released == []
    for live in range(0, 1000, 50):  # a load comes...
        keeper.observe(live)
    for live in [900, 500, 200, 130]:  # ...and is going
        keeper.observe(live)
    assert released == []
    keeper.observe(100)  # an eighth of the highest
    assert released == [1]
    keeper.observe(50)
    assert released == [1]
    keeper.observe(0)  # the load's last work has ended
    assert released == [1, 1]
    keeper.observe(0)
    assert released == [1, 1]
    for live in [300, 800, 1200, 1200, 1200]:  # a steady load: nothing
        keeper.observe(live)
    assert released == [1, 1]
