"""Pager-mode IM fan-out: messages per second relayed to 100 participants, and the delivery latency.

In one process, over the focus built by the runtime's wiring (``assemble_focus``) behind the real
:class:`~imsconf.sip.endpoint.SipEndpoint`, driven with the focus test helpers (``tests/focus/helpers.py``:
the ``Harness`` and its test phones over TLS, on a fake clock): N participants join one conference, each
listing MESSAGE in Allow, then:

* throughput: a burst of MESSAGEs (rotating senders, in their dialogs); each is relayed to the N-1 others
  as message/cpim, every copy is parsed as its recipient would and answered 200, which goes back into the
  endpoint. The rate is messages fanned out per second (and copies delivered per second), wall clock;
* latency: one MESSAGE at a time; for each copy, the time from handing the sender's MESSAGE to the endpoint
  to that recipient's copy parsed (the copies leave in one batch, so a later recipient's latency includes
  the parsing of the earlier ones). p50/p99 over all copies. The tail is the cyclic garbage collector: with
  ``gc.disable()`` the slowest fan-out of 99 copies falls from ~180 ms to ~35 ms on a loaded 2-vCPU VM.

No sockets, no kernel: the figure is the focus's own cost (SIP parsing, CPIM, transactions). With
``--msrp`` the MSRP switch's figures (``bench/msrp_fanout.py``, over loopback TCP) are run and printed
beside it.

Run: ``.venv/bin/python bench/im_pager_fanout.py [--participants 100] [--burst 300] [--single 100]
[--repeats 3] [--msrp]``
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "tests" / "focus"), str(REPO / "bench")]

from helpers import DOMAIN, FACTORY, UA, Harness, answer_to  # noqa: E402

from imsconf.app.focus_wiring import FocusOptions  # noqa: E402
from imsconf.focus.config import FocusConfig  # noqa: E402
from imsconf.sip.message import Request, parse_message  # noqa: E402

ALLOW = ("Allow", "INVITE, ACK, BYE, CANCEL, OPTIONS, MESSAGE")


class Room:
    def __init__(self, participants: int) -> None:
        # the per-sender rate cap is the focus's protection, not what is measured here
        config = FocusConfig(domain=DOMAIN, media_host="198.18.0.1", message_rate=1e9, message_burst=10**9)
        self.h = Harness(config, options=FocusOptions())
        self.uas: list[UA] = []
        self.by_user: dict[str, UA] = {}
        uri = FACTORY
        for i in range(participants):
            ua = self.h.ua(f"u{i:04d}")
            self.h.join(ua, uri, extra=(ALLOW,))
            if i == 0:
                assert ua.remote_target is not None
                uri = ua.remote_target.split(";")[0]
            self.uas.append(ua)
            self.by_user[ua.user] = ua
        self.h.take()
        self.delivered = 0

    def relay(self, sender: UA, body: bytes, latencies: list[float] | None = None) -> int:
        """One MESSAGE in: every copy parsed (timed) and answered 200; returns the copies."""
        ep = self.h.ep
        t0 = time.perf_counter()
        ep.receive_datagram(sender.message(body), sender.peer, self.h.now)
        answers: list[tuple[bytes, UA]] = []
        copies = 0
        for data, _peer in ep.take_outbox():
            msg = parse_message(data)
            if not isinstance(msg, Request) or msg.method != "MESSAGE":
                continue  # the sender's 200
            if latencies is not None:
                latencies.append(time.perf_counter() - t0)
            user = msg.to.uri.user
            assert user is not None
            answers.append((answer_to(msg), self.by_user[user]))
            copies += 1
        for data, ua in answers:
            ep.receive_datagram(data, ua.peer, self.h.now)
        ep.take_outbox()
        self.delivered += copies
        return copies


def pager(participants: int, burst: int, single: int) -> tuple[float, float, float, float]:
    """(messages/s, deliveries/s, p50 ms, p99 ms) of one run."""
    room = Room(participants)
    others = participants - 1
    messaging = room.h.focus.parts.messaging
    t0 = time.perf_counter()
    copies = sum(room.relay(room.uas[n % participants], b"burst message %d" % n) for n in range(burst))
    elapsed = time.perf_counter() - t0
    room.h.advance(1.0)
    assert copies == burst * others, (copies, burst * others)
    latencies: list[float] = []
    for n in range(single):
        room.h.advance(0.05)  # the focus's timers run between messages (transactions, the operator's event)
        room.relay(room.uas[n % participants], b"single message %d" % n, latencies)
    assert messaging.counters.delivered == (burst + single) * others
    lat = sorted(latencies)
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
    return burst / elapsed, copies / elapsed, statistics.median(lat) * 1000, p99 * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, default=100)
    parser.add_argument("--burst", type=int, default=300)
    parser.add_argument("--single", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--msrp", action="store_true", help="run bench/msrp_fanout.py too, side by side")
    args = parser.parse_args()
    runs = [pager(args.participants, args.burst, args.single) for _ in range(args.repeats)]
    rate, deliveries, p50, p99 = (statistics.median(r[i] for r in runs) for i in range(4))
    print(
        f"pager (in process, over the focus): participants={args.participants} burst={args.burst}: "
        f"{rate:.0f} messages/s fanned out, {deliveries:.0f} deliveries/s; "
        f"latency p50 {p50:.2f} ms, p99 {p99:.2f} ms (median of {args.repeats})"
    )
    if args.msrp:
        import msrp_fanout

        asyncio.run(msrp_fanout.run(args.participants, 500, 50.0))


if __name__ == "__main__":
    main()
