"""Parse + serialize microbenchmark: µs per typical INVITE carrying SDP (median of repeats)."""

from __future__ import annotations

import statistics
import time

from imsconf.sip.message import parse_message, validate

_HEAD = (
    b"INVITE sip:conference-factory@example.org SIP/2.0\r\n"
    b"Via: SIP/2.0/TLS 192.0.2.10:5061;branch=z9hG4bK776asdhds;rport\r\n"
    b"Via: SIP/2.0/TLS 198.51.100.7:5061;branch=z9hG4bKnashds8;received=198.51.100.7\r\n"
    b"Max-Forwards: 70\r\n"
    b'To: "Conference" <sip:conference-factory@example.org>\r\n'
    b'From: "Alice Liddell" <sip:alice@example.org>;tag=1928301774\r\n'
    b"Call-ID: a84b4c76e66710@pc33.example.org\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Contact: <sip:alice@192.0.2.10:5061;transport=tls>\r\n"
    b"Record-Route: <sip:proxy.example.org;lr>\r\n"
    b"Allow: INVITE, ACK, CANCEL, OPTIONS, BYE, REFER, NOTIFY, UPDATE\r\n"
    b"Supported: timer, replaces, norefersub\r\n"
    b"Session-Expires: 1800\r\n"
    b"User-Agent: bench/1.0\r\n"
    b"Content-Type: application/sdp\r\n"
)
_SDP = (
    b"v=0\r\n"
    b"o=alice 2890844526 2890844526 IN IP4 192.0.2.10\r\n"
    b"s=-\r\n"
    b"c=IN IP4 192.0.2.10\r\n"
    b"t=0 0\r\n"
    b"m=audio 49170 RTP/SAVP 0 8 101\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:8 PCMA/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\n"
    b"a=fmtp:101 0-15\r\n"
    b"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n"
    b"a=sendrecv\r\n"
    b"a=ptime:20\r\n"
)
INVITE = _HEAD + b"Content-Length: %d\r\n\r\n" % len(_SDP) + _SDP


def bench(fn: object, n: int = 20000, repeats: int = 7) -> float:
    assert callable(fn)
    samples = []
    fn()
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        samples.append((time.perf_counter() - t0) / n * 1e6)
    return statistics.median(samples)


def variants(n: int = 4096) -> list[bytes]:
    """Distinct branches, tags and Call-IDs, as real traffic has: no parse memo can serve them twice."""
    out = []
    for i in range(n):
        v = INVITE.replace(b"z9hG4bK776asdhds", b"z9hG4bK%08x" % i).replace(b"1928301774", b"%010d" % i)
        out.append(v.replace(b"a84b4c76e66710", b"%014x" % i))
    return out


def main() -> None:
    msg = parse_message(INVITE)
    validate(msg)
    print(
        f"INVITE with SDP: {len(INVITE)} bytes (4,096 variants with distinct Via branch, From tag, Call-ID)"
    )
    msgs = variants()
    it = iter(range(1 << 62))
    p = bench(lambda: parse_message(msgs[next(it) & 4095]))
    pv = bench(lambda: validate(parse_message(msgs[next(it) & 4095])))
    s = bench(lambda: bytes(msg))
    print(f"parse                      {p:7.2f} µs (median of 7)")
    print(f"parse + validate           {pv:7.2f} µs  (Via, From, To, CSeq, Request-URI parsed)")
    print(f"serialize                  {s:7.2f} µs")
    print(f"parse + validate + serialize {pv + s:5.2f} µs")


if __name__ == "__main__":
    main()
