"""Presentation video switching (imsconf.media.video), sans-I/O, SRTP end to end with independent contexts."""

from __future__ import annotations

import os
import struct

import pylibsrtp
import pytest

from imsconf.media.events import MediaEngineError
from imsconf.media.srtp import SrtpKeys
from imsconf.media.video import VideoLegConfig, VideoSwitch, build_pli, keyframe_requested
from imsconf.sdp.direction import Direction

SUITE = "AES_CM_128_HMAC_SHA1_80"
PT = {"a": 96, "b": 97, "c": 98}


def keymat() -> bytes:
    return os.urandom(30)


def session(km: bytes, outbound: bool) -> pylibsrtp.Session:
    kind = pylibsrtp.Policy.SSRC_ANY_OUTBOUND if outbound else pylibsrtp.Policy.SSRC_ANY_INBOUND
    return pylibsrtp.Session(
        pylibsrtp.Policy(key=km, ssrc_type=kind, srtp_profile=pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80)
    )


def rtp(pt: int, seq: int, ts: int, ssrc: int, payload: bytes, marker: bool = False) -> bytes:
    return struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | pt, seq, ts, ssrc) + payload


class Peer:
    """A participant: its own send context, and the context for what the switch sends it."""

    def __init__(self, sw: VideoSwitch, name: str, port: int, *, pli: bool = True) -> None:
        self.name, self.port = name, port
        self.addr = ("127.0.0.1", 20000 + port)
        up, down = keymat(), keymat()
        self.tx = session(up, True)  # what the peer sends with
        self.rx = session(down, False)  # decrypts what the switch sends it
        self.ssrc = int.from_bytes(os.urandom(4), "big") | 1
        sw.add_leg(name, "conf", port, port, True)
        sw.configure_leg(
            name,
            VideoLegConfig(self.addr, None, PT[name], "H264", 90000, Direction.SENDRECV, pli),
            SrtpKeys.from_inline(SUITE, __import__("base64").b64encode(down).decode()),
            SrtpKeys.from_inline(SUITE, __import__("base64").b64encode(up).decode()),
        )
        self.seq, self.ts = 1000, 5000

    def send(
        self, sw: VideoSwitch, now: float, marker: bytes | None = None
    ) -> list[tuple[int, bytes, tuple[str, int]]]:
        self.seq += 1
        self.ts += 3000
        body = marker or f"VIDEO-{self.name}-{self.seq}".encode()
        return sw.receive(
            self.port,
            self.tx.protect(rtp(PT[self.name], self.seq & 0xFFFF, self.ts, self.ssrc, body)),
            self.addr,
            now,
        )


def decode(peer: Peer, data: bytes) -> tuple[int, int, int, int, bytes]:
    plain = peer.rx.unprotect(data)
    _b0, b1, seq, ts, ssrc = struct.unpack_from("!BBHII", plain)
    return b1 & 0x7F, seq, ts, ssrc, plain[12:]


@pytest.fixture
def trio() -> tuple[VideoSwitch, Peer, Peer, Peer]:
    sw = VideoSwitch()
    return sw, Peer(sw, "a", 100), Peer(sw, "b", 102), Peer(sw, "c", 104)


def test_nobody_holds_the_floor_nothing_is_sent(trio: tuple[VideoSwitch, Peer, Peer, Peer]) -> None:
    sw, a, b, _c = trio
    assert a.send(sw, 0.0) == [] and b.send(sw, 0.0) == []
    assert sw.stats("a").dropped_not_source == 1 and sw.stats("a").received == 1


def test_holder_reaches_the_others_with_rewritten_headers_then_switches(
    trio: tuple[VideoSwitch, Peer, Peer, Peer],
) -> None:
    sw, a, b, c = trio
    assert c.name == "c"
    peers = {p.port: p for p in (a, b, c)}
    pli = sw.set_source("conf", "a", 0.0)
    assert pli == []  # nothing seen from a yet: the PLI goes with its first packet
    got: dict[str, list[tuple[int, int, int, int, bytes]]] = {"a": [], "b": [], "c": []}
    t = 0.0
    for _ in range(10):
        t += 1 / 30
        for port, data, dest in a.send(sw, t):
            peer = peers[port]
            if data[1] in (200, 201) or (data[0] & 0x1F and data[1] == 206):
                assert peer is a and dest == a.addr  # the PLI to the source (muxed RTCP)
                assert keyframe_requested(a.rx.unprotect_rtcp(data))
                continue
            assert dest == peer.addr
            got[peer.name].append(decode(peer, data))
    assert got["a"] == [] and len(got["b"]) == 10 and len(got["c"]) == 10
    assert sw.stats("a").pli_sent == 1
    for name in ("b", "c"):
        pts, seqs, tss, ssrcs, bodies = zip(*got[name], strict=True)
        assert set(pts) == {PT[name]}  # the receiver's payload type
        assert len(set(ssrcs)) == 1 and ssrcs[0] not in (a.ssrc, b.ssrc, c.ssrc)
        assert ssrcs[0] == sw.stats(name).out_ssrc
        assert [(s - seqs[0]) & 0xFFFF for s in seqs] == list(range(10))
        assert all((tss[i + 1] - tss[i]) & 0xFFFFFFFF == 3000 for i in range(9))
        assert bodies[0].startswith(b"VIDEO-a-")
    b_last = got["b"][-1]
    # move the floor to b: a and c get b's video; c's stream keeps its SSRC, the sequence continues
    sw.set_source("conf", "b", t)
    t += 0.1
    later: dict[str, list[tuple[int, int, int, int, bytes]]] = {"a": [], "b": [], "c": []}
    for _ in range(5):
        t += 1 / 30
        for port, data, _dest in b.send(sw, t) + a.send(sw, t):
            peer = peers[port]
            if data[1] == 201:
                continue
            later[peer.name].append(decode(peer, data))
    assert later["b"] == [] and len(later["a"]) == 5 and len(later["c"]) == 5
    c_before, c_after = got["c"][-1], later["c"][0]
    assert c_after[3] == c_before[3]  # same SSRC
    assert c_after[1] == (c_before[1] + 1) & 0xFFFF  # sequence continues
    assert 0 < (c_after[2] - c_before[2]) & 0xFFFFFFFF < 90000  # timestamps rebased, not jumped
    assert all(x[4].startswith(b"VIDEO-b-") for x in later["a"] + later["c"])
    assert b_last[3] == sw.stats("b").out_ssrc
    assert sw.stats("b").pli_sent == 1  # b was seen before: its PLI went out at the switch


def test_keyframe_request_from_a_receiver_reaches_the_source(
    trio: tuple[VideoSwitch, Peer, Peer, Peer],
) -> None:
    sw, a, b, _c = trio
    sw.set_source("conf", "a", 0.0)
    a.send(sw, 0.0)
    req = b.tx.protect_rtcp(build_pli(b.ssrc, sw.stats("b").out_ssrc))
    out = sw.receive(b.port, req, b.addr, 1.0)
    assert len(out) == 1 and out[0][0] == a.port and out[0][2] == a.addr
    assert sw.stats("b").keyframe_requests == 1 and sw.stats("a").pli_sent == 2
    assert sw.receive(b.port, b.tx.protect_rtcp(build_pli(b.ssrc, 1)), b.addr, 1.1) == []  # rate limited


def test_wrong_source_bad_auth_and_plain_rtp(trio: tuple[VideoSwitch, Peer, Peer, Peer]) -> None:
    sw, a, _b, _c = trio
    sw.set_source("conf", "a", 0.0)
    packet = a.tx.protect(rtp(96, 1, 1, a.ssrc, b"x"))
    assert sw.receive(a.port, packet, ("127.0.0.1", 1), 0.0) == []
    assert sw.stats("a").wrong_source == 1
    forged = bytearray(a.tx.protect(rtp(96, 2, 1, a.ssrc, b"x")))
    forged[-1] ^= 1
    assert sw.receive(a.port, bytes(forged), a.addr, 0.0) == []
    assert sw.stats("a").srtp_failures == 1
    with pytest.raises(MediaEngineError):
        sw.add_leg("d", "conf", 106, 106, True)
        sw.configure_leg("d", VideoLegConfig(("127.0.0.1", 9), None, 96, "H264"), None, None)
    sw.remove_leg("a")
    assert sw.source("conf") is None
    assert sw.drop_conference("conf") == ["b", "c", "d"]
