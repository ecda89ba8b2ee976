"""What one refused INVITE costs the SIP endpoint: µs per 503 on the full path (parse, validate, stamp,
make_response) and on the quick path a source marked flooding takes (imsconf.sip.refusal), sans-I/O.

Usage: ``python bench/refusal_cost.py [--n 20000]``; prints the median of five runs for each path.
"""

from __future__ import annotations

import argparse
import statistics
import time

from imsconf.sip.endpoint import EndpointConfig, NullApplication, SipEndpoint
from imsconf.sip.overload import Admission, OverloadConfig
from imsconf.sip.peer import Peer

SRC = Peer("udp", "127.0.0.1", 5070, None, ("127.0.0.1", 5060))


def invite(n: int) -> bytes:
    sdp = b"v=0\r\no=flood 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    sdp += b"m=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
    head = (
        "INVITE sip:conference-factory@127.0.0.1:5060 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-{n}-flood\r\n"
        f"From: <sip:flood@127.0.0.1>;tag={n}F\r\n"
        "To: <sip:conference-factory@127.0.0.1:5060>\r\n"
        f"Call-ID: {n}-flood@127.0.0.1\r\n"
        "CSeq: 1 INVITE\r\n"
        "Contact: <sip:flood@127.0.0.1:5070;transport=UDP>\r\n"
        "Max-Forwards: 70\r\n"
        "Content-Type: application/sdp\r\n"
        f"Content-Length: {len(sdp)}\r\n\r\n"
    )
    return head.encode() + sdp


def run(n: int, *, quick: bool) -> float:
    # quick: marks on (flood_hold), the source is marked by its first excess request; full: no marks,
    # an empty source bucket refuses every request after the parse
    cfg = OverloadConfig(source_rate=1, source_burst=1, flood_hold=3600.0 if quick else 0.0)
    ep = SipEndpoint(EndpointConfig(local={"udp": ("127.0.0.1", 5060)}, admission=Admission(cfg)),
                     NullApplication())  # fmt: skip
    datagrams = [invite(i) for i in range(n + 2)]
    ep.receive_datagram(datagrams[0], SRC, 0.0)
    ep.receive_datagram(datagrams[1], SRC, 0.0)
    ep.take_outbox()
    t = time.perf_counter()
    for d in datagrams[2:]:
        ep.receive_datagram(d, SRC, 0.001)
        ep.take_outbox()
    took = time.perf_counter() - t
    assert ep.counters.get("tx_quick_503", 0) == (n if quick else 0), ep.counters
    return took / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=20000)
    args = ap.parse_args()
    for quick in (False, True):
        runs = [run(args.n, quick=quick) for _ in range(5)]
        name = "quick (marked flooding)" if quick else "full parse"
        print(f"{name:>24}: {statistics.median(runs):6.1f} µs per 503 (runs: "
              + ", ".join(f"{r:.1f}" for r in runs) + ")")  # fmt: skip


if __name__ == "__main__":
    main()
