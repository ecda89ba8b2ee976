"""Rekey cost simulation (not a test): drives ``imsconf.keys.GroupKeyManager`` with simulated listeners.

For N listeners and each rekey policy, a conference is built (every listener promoted to the group key),
then a churn of membership changes (a leave, then a join, alternately, at random gaps) is applied.  Each
listener answers a key offer after a random SIP round trip (default 5-40 ms, a local network) and its
receiver report confirms the key 1-5 s later (RTCP interval).  Per rekey the script reports:

* SIP messages (re-INVITE + 200 + ACK per offer, and per demotion; BYE + 200 per drop) and bytes, the
  bytes measured on a realistic re-INVITE over TLS with an SDP offer carrying a new ``a=crypto``, its
  200 OK with the SDP answer, and the ACK, built as text here;
* the manager's CPU per rekey (all manager calls during the churn phase / number of rekeys);
* the *switch window*: from the membership change (a participant's BYE, or the first change of a
  batch) to the last listener's switch to the new key; the old epoch is retired at the same instant, after
  which nothing is sent under a key the leaver held (``exposure``).  A rekey's offers leave the focus back
  to back, ``--focus-us`` of focus CPU each.

Medians over all rekeys of several seeded runs; p99 of the switch window too (target: < 250 ms at N=100).

    .venv/bin/python bench/rekey_cost.py [--sizes 3 10 50 100 200] [--runs 3] [--changes 20]
"""

from __future__ import annotations

import argparse
import heapq
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from imsconf.keys import (
    Action,
    DemoteDone,
    DemoteListener,
    DownlinkMode,
    DropListener,
    Event,
    GroupKeyManager,
    KeyAnswerReceived,
    KeyManagerConfig,
    KeyUseConfirmed,
    OfferKey,
    RekeyPolicy,
    RekeyRecord,
    SwitchListener,
    new_master_key,
)
from imsconf.sdp.offer_answer import build_offer
from imsconf.sdp.sdes import CryptoAttribute

POLICIES = ["on-join", "on-leave", "on-join,on-leave", "interval:1", "interval:5"]
SUITE = "AES_CM_128_HMAC_SHA1_80"


# ------------------------------------------------------------------------------------ message sizes


def _sdp(host: str, port: int, sess: int, tag: int) -> bytes:
    key = new_master_key(SUITE)
    crypto = CryptoAttribute.from_key(tag, SUITE, key.key_salt)
    key.wipe()
    return bytes(build_offer(host, port, sess, 3, local_rtcp_port=port + 1, crypto=(crypto,)))


def rekey_exchange_bytes() -> tuple[int, int, int]:
    """Sizes of one re-INVITE (with SDP), its 200 OK (with SDP) and the ACK, over TLS."""
    offer = _sdp("198.51.100.20", 40000, 3141592653, 1)
    answer = _sdp("192.0.2.10", 10000, 2890844526, 1)
    common = (
        "From: <sips:conf-7f3a9c@conf.example.com>;tag=f8a1c2d3\r\n"
        'To: "Alice Liddell" <sips:alice@example.org>;tag=1928301774\r\n'
        "Call-ID: 4c1b2e9a7d6f@focus.example.com\r\n"
    )
    reinvite = (
        "INVITE sips:alice@192.0.2.10:5061;transport=tls SIP/2.0\r\n"
        "Via: SIP/2.0/TLS focus.example.com:5061;branch=z9hG4bK-r7e2a91c3d\r\n"
        "Max-Forwards: 70\r\n" + common + "CSeq: 4 INVITE\r\n"
        "Contact: <sips:conf-7f3a9c@focus.example.com:5061;transport=tls>;isfocus\r\n"
        "Allow: INVITE, ACK, CANCEL, OPTIONS, BYE, REFER, NOTIFY, SUBSCRIBE, UPDATE\r\n"
        "Supported: timer, replaces\r\n"
        "Session-Expires: 1800;refresher=uas\r\n"
        "Content-Type: application/sdp\r\n"
        f"Content-Length: {len(offer)}\r\n\r\n"
    ).encode() + offer
    ok = (
        "SIP/2.0 200 OK\r\n"
        "Via: SIP/2.0/TLS focus.example.com:5061;branch=z9hG4bK-r7e2a91c3d;received=198.51.100.20\r\n"
        + common
        + "CSeq: 4 INVITE\r\n"
        "Contact: <sips:alice@192.0.2.10:5061;transport=tls>\r\n"
        "Allow: INVITE, ACK, CANCEL, OPTIONS, BYE, REFER, NOTIFY, UPDATE\r\n"
        "Supported: timer\r\n"
        "Session-Expires: 1800;refresher=uas\r\n"
        "Content-Type: application/sdp\r\n"
        f"Content-Length: {len(answer)}\r\n\r\n"
    ).encode() + answer
    ack = (
        "ACK sips:alice@192.0.2.10:5061;transport=tls SIP/2.0\r\n"
        "Via: SIP/2.0/TLS focus.example.com:5061;branch=z9hG4bK-a81c0b7e44\r\n"
        "Max-Forwards: 70\r\n" + common + "CSeq: 4 ACK\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()
    return len(reinvite), len(ok), len(ack)


# --------------------------------------------------------------------------------------- simulation


@dataclass
class Sim:
    mgr: GroupKeyManager
    rng: random.Random
    answer_latency: Callable[[random.Random], float]
    confirm_latency: Callable[[random.Random], float]
    focus_cost: float = 0.0  # seconds of focus CPU to build and send one re-INVITE (offers go out serially)
    now: float = 0.0
    cpu_ns: int = 0
    queue: list[tuple[float, int, Event]] = field(default_factory=list)
    seq: int = 0
    present: set[str] = field(default_factory=set)

    def call(self, fn: Callable[[], list[Action]]) -> None:
        t0 = time.perf_counter_ns()
        actions = fn()
        self.cpu_ns += time.perf_counter_ns() - t0
        sent = 0
        for a in actions:
            if isinstance(a, OfferKey):
                sent += 1
                leaves = self.now + sent * self.focus_cost
                self.at(leaves + self.answer_latency(self.rng), KeyAnswerReceived(a.listener, a.epoch, True))
            elif isinstance(a, SwitchListener):
                self.at(self.now + self.confirm_latency(self.rng), KeyUseConfirmed(a.listener, a.epoch))
            elif isinstance(a, DemoteListener):
                self.at(self.now + self.answer_latency(self.rng), DemoteDone(a.listener))
            elif isinstance(a, DropListener):
                self.present.discard(a.listener)

    def at(self, when: float, ev: Event) -> None:
        self.seq += 1
        heapq.heappush(self.queue, (when, self.seq, ev))

    def run_until(self, end: float) -> None:
        while True:
            t_ev = self.queue[0][0] if self.queue else None
            t_dl = self.mgr.next_deadline()
            nxt = min((t for t in (t_ev, t_dl) if t is not None), default=None)
            if nxt is None or nxt > end:
                break
            self.now = max(self.now, nxt)
            if t_ev is not None and t_ev <= self.now:
                _, _, ev = heapq.heappop(self.queue)
                self.call(lambda ev=ev: self.mgr.handle(ev, self.now))  # type: ignore[misc]
            else:
                self.call(lambda: self.mgr.handle_timer(self.now))
        self.now = end

    def join(self, lid: str) -> None:
        self.present.add(lid)
        self.call(lambda: self.mgr.join(lid, self.now))

    def leave(self, lid: str) -> None:
        self.present.discard(lid)
        self.call(lambda: self.mgr.leave(lid, self.now))


@dataclass
class Result:
    records: list[RekeyRecord] = field(default_factory=list)
    cpu_per_rekey_us: list[float] = field(default_factory=list)
    changes: int = 0


def simulate(n: int, policy: str, seed: int, changes: int, result: Result, focus_us: float) -> None:
    rng = random.Random(seed)
    cfg = KeyManagerConfig(answer_timeout=8.0, confirm_timeout=12.0)
    mgr = GroupKeyManager(DownlinkMode.GROUP, RekeyPolicy.parse(policy), cfg, conference_id="bench")
    sim = Sim(mgr, rng, lambda r: r.uniform(0.005, 0.040), lambda r: r.uniform(1.0, 5.0), focus_us / 1e6)
    # build the conference: N listeners join 20 ms apart, every one ends on the group key
    for i in range(n):
        sim.join(f"l{i}")
        sim.run_until(sim.now + 0.02)
    sim.run_until(sim.now + 30.0)
    assert len(mgr.snapshot().group_listeners) == n, mgr.snapshot()
    first_epoch = (mgr.snapshot().current_epoch or 0) + 1
    sim.cpu_ns = 0
    nxt = n
    for k in range(changes):
        sim.run_until(sim.now + rng.uniform(0.3, 3.0))
        if k % 2 == 0:
            sim.leave(rng.choice(sorted(sim.present)))
        else:
            sim.join(f"l{nxt}")
            nxt += 1
    sim.run_until(sim.now + 30.0)
    recs = [r for r in mgr.rekey_stats() if r.epoch >= first_epoch and r.reason != "initial"]
    result.records += recs
    result.changes += changes
    if recs:
        result.cpu_per_rekey_us.append(sim.cpu_ns / 1000 / len(recs))


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[3, 10, 50, 100, 200])
    ap.add_argument("--policies", nargs="+", default=POLICIES)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--changes", type=int, default=20, help="membership changes per run (leave/join)")
    ap.add_argument(
        "--focus-us",
        type=float,
        default=100.0,
        help="focus CPU per re-INVITE sent (build + TLS write), offers of one rekey go out back to back",
    )
    args = ap.parse_args()
    inv, ok, ack = rekey_exchange_bytes()
    per_offer = inv + ok + ack
    print(f"one rekey exchange over TLS: re-INVITE {inv} B + 200 OK {ok} B + ACK {ack} B = {per_offer} B")
    print(
        f"answer latency U(5,40) ms, RR confirmation U(1,5) s, focus {args.focus_us:g} us per re-INVITE; "
        "medians over rekeys; "
        "window = membership change -> last listener switched (old epoch retired)\n"
    )
    hdr = (
        f"{'N':>4} {'policy':<17} {'rekeys/chg':>10} {'offers':>7} {'SIP msgs':>8} {'kB':>7} "
        f"{'CPU us':>8} {'window ms':>9} {'p99 ms':>7} {'exposure ms':>11}"
    )
    print(hdr)
    print("-" * len(hdr))
    for n in args.sizes:
        for policy in args.policies:
            res = Result()
            for run in range(args.runs):
                simulate(n, policy, 1000 * n + run, args.changes, res, args.focus_us)
            recs = [r for r in res.records if r.listeners > 0]
            if not recs:
                print(f"{n:>4} {policy:<17} {0:>10.2f}  (no rekeys)")
                continue
            offers = [float(r.offers) for r in recs]
            msgs = [float(r.sip_messages) for r in recs]
            kb = [(r.offers + r.demoted) * per_offer / 1000 for r in recs]
            win = [1000 * w for r in recs if (w := r.switch_window) is not None]
            exp = [1000 * w for r in recs if (w := r.exposure_window) is not None]
            print(
                f"{n:>4} {policy:<17} {len(res.records) / res.changes:>10.2f} "
                f"{statistics.median(offers):>7.0f} {statistics.median(msgs):>8.0f} "
                f"{statistics.median(kb):>7.1f} {statistics.median(res.cpu_per_rekey_us):>8.0f} "
                f"{statistics.median(win):>9.1f} {pct(win, 0.99):>7.1f} {statistics.median(exp):>11.1f}"
            )


if __name__ == "__main__":
    main()
