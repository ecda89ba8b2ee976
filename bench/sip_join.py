"""In-process cost of one conference join: SIPp-shaped INVITE→200→ACK, then BYE→200, over UDP.

Drives :class:`SipEndpoint` + :class:`Focus` + the real :class:`MediaEngine` (port allocation faked: no
sockets, no event loop) with the exact messages ``tests/integration/scenarios/conf_join_leave.xml`` sends,
so the figure is the signalling and focus CPU per join without the kernel.  Prints µs per join (median of
repeats) and the number of legs left behind.  ``--profile`` prints a cProfile of the joins instead.

Security relaxed as in ``sip_load.py``: no authentication, plain RTP allowed (SIPp has no SRTP here).
Usage: ``python bench/sip_join.py [--joins 3000] [--repeats 5] [--profile]``.
"""

from __future__ import annotations

import argparse
import cProfile
import itertools
import pstats
import random
import statistics
import time

from imsconf.app.focus_wiring import assemble_focus
from imsconf.app.server import build_capabilities
from imsconf.focus.config import FocusConfig
from imsconf.media.control import LocalMediaControl
from imsconf.media.engine import MediaEngine
from imsconf.sip.endpoint import EndpointConfig, SipEndpoint
from imsconf.sip.message import parse_message
from imsconf.sip.peer import Peer

HOST = "127.0.0.1"
LOCAL = {"udp": (HOST, 5060), "tcp": (HOST, 5060), "tls": (HOST, 5061)}
PEER = Peer("udp", HOST, 5070, None)

_CONTACT = "Contact: <sip:member@127.0.0.1:5070;transport=udp>\r\nContent-Type: application/sdp\r\n"
_SDP = (
    "v=0\r\no=member 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio 6000 RTP/AVP 8 0\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\n"
)


def _msg(start: str, n: int, cseq: str, to: str, extra: str = "", body: str = "") -> bytes:
    return (
        f"{start}\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-{n}-{cseq.replace(' ', '')}\r\n"
        f"From: <sip:member{n}@127.0.0.1>;tag=4242SIPpTag{n}\r\n"
        f"To: {to}\r\n"
        f"Call-ID: {n}-4242@127.0.0.1\r\n"
        f"CSeq: {cseq}\r\n"
        f"{extra}"
        "Max-Forwards: 70\r\n"
        f"Content-Length: {len(body)}\r\n\r\n{body}"
    ).encode()


class FakePorts:
    host = HOST

    def __init__(self) -> None:
        self._next = itertools.chain([20000], itertools.cycle(range(20002, 60000, 2)))

    def open_ports(self, rtcp_mux: bool) -> tuple[int, int]:
        p = next(self._next)
        return (p, p) if rtcp_mux else (p, p + 1)

    def close_ports(self, rtp_port: int, rtcp_port: int) -> None:
        pass


class Bench:
    def __init__(self, rate: float = 1000.0) -> None:
        self.now = 1000.0
        self.step = 1.0 / rate  # the fake clock moves as at *rate* joins per second
        engine = MediaEngine(allow_plain_rtp=True, rng=random.Random(1))
        cfg = FocusConfig(
            domain="localhost", media_host=HOST, allow_plain_rtp=True, allow_sdes_over_insecure=True
        )
        self.engine = engine
        self.next_tick = self.now
        self.focus = assemble_focus(cfg, LocalMediaControl(engine, FakePorts()))
        self.ep = SipEndpoint(EndpointConfig(caps=build_capabilities(), local=dict(LOCAL)), self.focus)
        self.calls = itertools.count(1)
        self.conf = self._create()

    def _send(self, data: bytes) -> list[bytes]:
        self.ep.receive_datagram(data, PEER, self.now)
        out = [d for d, _ in self.ep.take_outbox()]
        self._timers()
        return out

    def _timers(self) -> None:
        # as the runtime's driver does after every flush: re-arm, and fire what is due
        while (d := self.ep.next_deadline()) is not None and d <= self.now:
            self.ep.handle_timer(self.now)
            self.ep.take_outbox()

    def _invite(self, n: int, ruri: str) -> tuple[str, str]:
        """INVITE→200→ACK; returns (remote target, To with tag)."""
        inv = _msg(
            f"INVITE {ruri} SIP/2.0", n, "1 INVITE", f"<{ruri}>",
            _CONTACT, _SDP,
        )  # fmt: skip
        out = self._send(inv)
        resp = parse_message(out[-1])
        assert resp.is_request is False and resp.status == 200, out  # type: ignore[union-attr]
        contact = resp.headers.get("Contact") or ""
        target = contact[contact.index("<") + 1 : contact.index(">")]
        to = resp.headers.get("To") or ""
        assert self._send(_msg(f"ACK {target} SIP/2.0", n, "1 ACK", to)) == []
        return target, to

    def _create(self) -> str:
        target, _ = self._invite(next(self.calls), "sip:conference-factory@127.0.0.1:5060")
        return target.split(":", 1)[1].split("@", 1)[0]

    def templates(self, count: int) -> list[tuple[bytes, int]]:
        """Pre-built INVITEs (the ACK/BYE need the focus's tag: built after the 200)."""
        ruri = f"sip:{self.conf}@127.0.0.1:5060"
        out = []
        for _ in range(count):
            n = next(self.calls)
            inv = _msg(
                f"INVITE {ruri} SIP/2.0", n, "1 INVITE", f"<{ruri}>",
                _CONTACT, _SDP,
            )  # fmt: skip
            out.append((inv, n))
        return out

    def join_leave(self, inv: bytes, n: int) -> None:
        out = self._send(inv)
        head = out[-1]
        # the To header with the focus's tag, and the Contact: enough of the 200 for the ACK/BYE
        i = head.index(b"\r\nTo: ") + 6
        to = head[i : head.index(b"\r\n", i)].decode()
        i = head.index(b"\r\nContact: <") + 12
        target = head[i : head.index(b">", i)].decode()
        self._send(_msg(f"ACK {target} SIP/2.0", n, "1 ACK", to))
        out = self._send(_msg(f"BYE {target} SIP/2.0", n, "2 BYE", to))
        assert out and out[-1].startswith(b"SIP/2.0 200"), out
        self.now += self.step
        self._timers()
        if self.now >= self.next_tick:  # the mixer's 20 ms tick (no media flows: bookkeeping only)
            self.engine.tick(self.now)
            self.next_tick += 0.02


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--joins", type=int, default=3000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--sort", default="tottime")
    args = ap.parse_args()
    b = Bench()
    for inv, n in b.templates(200):  # warm up
        b.join_leave(inv, n)
    if args.profile:
        work = b.templates(args.joins)
        prof = cProfile.Profile()
        prof.enable()
        for inv, n in work:
            b.join_leave(inv, n)
        prof.disable()
        pstats.Stats(prof).sort_stats(args.sort).print_stats(45)
        return
    samples, cpu = [], []
    for _ in range(args.repeats):
        work = b.templates(args.joins)
        t0, c0 = time.perf_counter(), time.process_time()
        for inv, n in work:
            b.join_leave(inv, n)
        samples.append((time.perf_counter() - t0) / args.joins * 1e6)
        cpu.append((time.process_time() - c0) / args.joins * 1e6)
    print(f"join+leave (INVITE, ACK, BYE): {statistics.median(samples):7.1f} µs per join wall, "
          f"{statistics.median(cpu):7.1f} µs CPU (median of {args.repeats})")  # fmt: skip
    print(f"legs left: {len(b.focus.legs)}, dialogs: {len(b.focus.table.by_dialog)}, "
          f"server transactions: {len(b.ep.layer._servers)}")  # fmt: skip


if __name__ == "__main__":
    main()
