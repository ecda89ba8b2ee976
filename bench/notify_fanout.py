"""NOTIFY fan-out benchmark (not a test): one roster change in a 20-participant conference.

The partial conference-info body is built once; then one in-dialog NOTIFY per subscriber is serialised
(``imsconf.sip.message.Request``), with that subscriber's Subscription-State from its ``Subscription``.
Prints medians over repeats: wall and CPU time per subscriber and in total, for S = 10, 100, 1000.

    .venv/bin/python bench/notify_fanout.py [--repeats 9]
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass

from imsconf.conference import Conference, ConferencePolicy, MediaDirection, MediaInfo, ParticipantStatus
from imsconf.conference.eventinfo import (
    CONTENT_TYPE,
    ConferenceInfoBuilder,
    RosterState,
    Viewer,
)
from imsconf.sip.headers import Headers
from imsconf.sip.message import Request
from imsconf.sip.subscription import EventHeader, SendNotify, Subscription

CONF_URI = "sips:conf-bench@example.com"
FOCUS_CONTACT = "<sips:conf-bench@focus.example.com:5061;transport=tls>;isfocus"
N_PARTICIPANTS = 20


@dataclass(slots=True)
class Dialog:
    """The few dialog fields an in-dialog NOTIFY needs (stands in for the focus's dialog object)."""

    remote_target: str
    call_id: str
    local_tag: str
    remote_uri: str
    remote_tag: str
    cseq: int
    branch_seq: int = 0

    def notify(self, event: str, action: SendNotify) -> bytes:
        self.cseq += 1
        self.branch_seq += 1
        h = Headers()
        h.add("Via", f"SIP/2.0/TLS focus.example.com:5061;branch=z9hG4bK-n{self.call_id}-{self.branch_seq}")
        h.add("Max-Forwards", "70")
        h.add("From", f"<{CONF_URI}>;tag={self.local_tag}")
        h.add("To", f"<{self.remote_uri}>;tag={self.remote_tag}")
        h.add("Call-ID", self.call_id)
        h.add("CSeq", f"{self.cseq} NOTIFY")
        h.add("Contact", FOCUS_CONTACT)
        h.add("Event", event)
        h.add("Subscription-State", action.subscription_state)
        body = action.body or b""
        if body:
            h.add("Content-Type", CONTENT_TYPE)
        return bytes(Request("NOTIFY", self.remote_target, h, body))


def setup(n_subscribers: int, now: float) -> tuple[Conference, list[Dialog], list[Subscription]]:
    conf = Conference("bench", CONF_URI, "sip:u0@example.com", ConferencePolicy(), now)
    for i in range(N_PARTICIPANTS):
        conf.join(
            f"sip:u{i}@example.com",
            now,
            display=f"User {i}",
            identity_authenticated=True,
            media=MediaInfo(1000 + i, True, MediaDirection.SENDRECV, "PCMU"),
            status=ParticipantStatus.CONNECTED,
        )
    dialogs = [
        Dialog(
            f"sips:s{i}@198.51.100.{i % 250}:5061;transport=tls",
            f"cid{i}",
            f"lt{i}",
            f"sip:s{i}@example.com",
            f"rt{i}",
            1,
        )
        for i in range(n_subscribers)
    ]
    subs = []
    for _ in range(n_subscribers):
        sub = Subscription(EventHeader("conference"), 3600, now)
        sub.notify(b"full", now, full=True)
        sub.notify_response(200, now)
        subs.append(sub)
    return conf, dialogs, subs


def one_round(n_subscribers: int) -> tuple[float, float, float, float, int]:
    now = 1000.0
    conf, dialogs, subs = setup(n_subscribers, now)
    builder = ConferenceInfoBuilder(CONF_URI, CONF_URI, b"bench-anonymity-key!")
    state = RosterState.from_conference(conf)
    w0, c0 = time.perf_counter(), time.process_time()
    (ev,) = conf.set_status("p7", ParticipantStatus.ON_HOLD)
    change = state.apply(ev)  # type: ignore[arg-type]
    body = builder.partial_document(change, Viewer.other())
    w1, c1 = time.perf_counter(), time.process_time()
    event = "conference"
    size = 0
    for dialog, sub in zip(dialogs, subs, strict=True):
        for action in sub.notify(body, now):
            if isinstance(action, SendNotify):
                size = len(dialog.notify(event, action))
    w2, c2 = time.perf_counter(), time.process_time()
    return w1 - w0, w2 - w1, c2 - c1, c2 - c0, size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=9)
    args = ap.parse_args()
    one_round(10)  # warm-up
    print(f"conference of {N_PARTICIPANTS}; one status change; partial body built once per change")
    print("S: subscribers; body: change + partial document; per sub: Subscription.notify + NOTIFY bytes")
    cols = ("S", "body µs", "µs/sub wall", "µs/sub CPU", "total ms wall", "total ms CPU", "NOTIFY B")
    print("{:>6} {:>9} {:>12} {:>11} {:>14} {:>13} {:>9}".format(*cols))
    for s in (10, 100, 1000):
        runs = [one_round(s) for _ in range(args.repeats)]
        body = statistics.median(r[0] for r in runs)
        fan = statistics.median(r[1] for r in runs)
        fan_cpu = statistics.median(r[2] for r in runs)
        total = statistics.median(r[0] + r[1] for r in runs)
        total_cpu = statistics.median(r[3] for r in runs)
        print(
            f"{s:>6} {body * 1e6:>9.1f} {fan / s * 1e6:>12.2f} {fan_cpu / s * 1e6:>11.2f}"
            f" {total * 1e3:>14.3f} {total_cpu * 1e3:>13.3f} {runs[0][4]:>9}"
        )


if __name__ == "__main__":
    main()
