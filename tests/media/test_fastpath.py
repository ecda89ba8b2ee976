"""The C per-packet path (``imsconf.media._fastpath``) on real loopback sockets, against pylibsrtp peers.

Every check compares what C did with what an independent pylibsrtp session (the phone) sees. Under
``CI=true`` the extension must have been built: a missing compiler is a failure there, not a skip.
"""

from __future__ import annotations

import select
import socket
from collections.abc import Iterator

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from media_peer import make_keys

from imsconf.media import fastpath
from imsconf.media.fastpath import (
    FD,
    MARKER,
    MIXES,
    PT,
    RECEIVED,
    RXFAST,
    SENT,
    SEQ,
    SILENCE,
    SSRC,
    TS0,
    DrainResult,
    SlotJitter,
    SlotReceptionStats,
    SlotTable,
)
from imsconf.media.rtp import pack_rtp_header, parse_rtp_fast
from imsconf.media.srtp import SrtpKeys, SrtpReceiver, SrtpSender
from peers import in_ci

if not fastpath.extension_loaded():
    if in_ci():
        pytest.fail("imsconf.media._fastpath was not built (gcc and the Python headers are needed)")
    pytest.skip("the C extension is not built here", allow_module_level=True)


def test_extension_is_used_by_default() -> None:
    from imsconf.media.engine import MediaEngine

    assert fastpath.fastpath_enabled()
    assert MediaEngine().c_path


class Pair:
    """Our socket (the mixer's, connected) and the phone's."""

    def __init__(self) -> None:
        self.phone = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.phone.bind(("127.0.0.1", 0))
        self.phone.settimeout(1.0)
        self.ours = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.ours.bind(("127.0.0.1", 0))
        self.ours.setblocking(False)
        self.ours.connect(self.phone.getsockname())
        self.phone.connect(self.ours.getsockname())

    def close(self) -> None:
        self.phone.close()
        self.ours.close()


@pytest.fixture
def pair() -> Iterator[Pair]:
    p = Pair()
    yield p
    p.close()


# ----------------------------------------------------------------------------------------- sending


def test_send_builds_protects_and_advances(pair: Pair) -> None:
    keys = make_keys()
    table = SlotTable(capacity=2)
    slot = table.alloc("leg")
    sender = SrtpSender(keys.copy())
    table.set_tx(slot, sender.handle, sender.owner)
    table.set_fd(slot, pair.ours.fileno())
    table.tab[slot, [SSRC, SEQ, TS0, PT, MARKER]] = [0xDEADBEEF, 0xFFFE, 0xFFFFFF00, 8, 1]
    phone = SrtpReceiver(keys)
    payloads = [bytes([i]) * 160 for i in range(3)]
    for k, payload in enumerate(payloads):
        dropped, errors, failed, protects = table.send(np.array([slot], dtype=np.int64), [payload], 320 * k)
        assert (dropped, errors, failed, protects) == (0, 0, 0, 1)
        data = pair.phone.recv(2048)
        assert len(data) == 12 + 160 + 10  # HMAC-SHA1-80 tag
        assert payload not in data  # encrypted on the wire
        plain = phone.unprotect(data)
        pt, marker, seq, ts, ssrc, got = parse_rtp_fast(plain)
        assert (pt, ssrc, got) == (8, 0xDEADBEEF, payload)
        assert marker == (k == 0)
        assert seq == (0xFFFE + k) & 0xFFFF
        assert ts == (0xFFFFFF00 + 320 * k) & 0xFFFFFFFF
    assert table.tab[slot, SEQ] == 1 and table.tab[slot, MARKER] == 0 and table.tab[slot, SENT] == 3


def test_send_plain_and_many_slots() -> None:
    pairs = [Pair() for _ in range(5)]
    try:
        table = SlotTable(capacity=2)  # grows
        slots = []
        for i, p in enumerate(pairs):
            s = table.alloc(i)
            table.set_tx(s, None, None)  # plain RTP
            table.set_fd(s, p.ours.fileno())
            table.tab[s, [SSRC, SEQ, TS0, PT]] = [1000 + i, 10 * i, 0, 0]
            slots.append(s)
        payloads = [bytes([0x55 + i]) * 160 for i in range(5)]
        assert table.send(np.array(slots, dtype=np.int64), payloads, 160) == (0, 0, 0, 0)
        for i, p in enumerate(pairs):
            _pt, _m, seq, ts, ssrc, payload = parse_rtp_fast(p.phone.recv(2048))
            assert (seq, ts, ssrc, payload) == (10 * i, 160, 1000 + i, payloads[i])
    finally:
        for p in pairs:
            p.close()


def test_send_rejects_bad_arguments_before_sending(pair: Pair) -> None:
    table = SlotTable(capacity=1)
    slot = table.alloc("leg")
    table.set_fd(slot, pair.ours.fileno())
    one = np.array([slot], dtype=np.int64)
    with pytest.raises(ValueError, match="160-byte"):
        table.send(np.array([slot, slot], dtype=np.int64), [bytes(160), bytes(159)], 0)
    with pytest.raises(IndexError):
        table.send(np.array([slot, 7], dtype=np.int64), [bytes(160), bytes(160)], 0)
    with pytest.raises(ValueError, match="one payload per slot"):
        table.send(one, [], 0)
    with pytest.raises(TypeError, match="int64"):
        table.send(np.array([slot], dtype=np.int32), [bytes(160)], 0)
    assert table.tab[slot, SEQ] == 0 and table.tab[slot, SENT] == 0
    pair.phone.settimeout(0.05)
    with pytest.raises(TimeoutError):
        pair.phone.recv(2048)  # nothing went out
    table.set_fd(slot, -1)  # no socket: counted, not sent
    assert table.send(one, [bytes(160)], 0)[1] == 1


def test_send_frames_takes_any_length_a_timestamp_per_slot_and_sends_nothing_for_an_empty_one(
    pair: Pair,
) -> None:
    keys = make_keys()
    table = SlotTable(capacity=2)
    slot = table.alloc("leg")
    sender = SrtpSender(keys.copy())
    table.set_tx(slot, sender.handle, sender.owner)
    table.set_fd(slot, pair.ours.fileno())
    table.tab[slot, [SSRC, SEQ, TS0, PT, MARKER]] = [0xCAFE, 0xFFFF, 0xFFFFFC40, 111, 1]
    phone = SrtpReceiver(keys)
    one = np.array([slot], dtype=np.int64)
    frames = [b"\x08", bytes(range(60)), b"", bytes(640)]
    for k, payload in enumerate(frames):
        ts = np.array([960 * k], dtype=np.int64)
        assert table.send_frames(one, [payload], ts) == (0, 0, 0, 1 if payload else 0)
        if not payload:
            continue  # discontinuous transmission: no packet, no sequence number used
        pt, marker, seq, rtp_ts, ssrc, got = parse_rtp_fast(phone.unprotect(pair.phone.recv(2048)))
        assert (pt, ssrc, got) == (111, 0xCAFE, payload)
        assert marker == (k == 0)
        assert seq == {0: 0xFFFF, 1: 0, 3: 1}[k]
        assert rtp_ts == (0xFFFFFC40 + 960 * k) & 0xFFFFFFFF
    assert table.tab[slot, SEQ] == 2 and table.tab[slot, SENT] == 3
    # a payload with no room left for the authentication tag is refused, nothing sent
    assert table.send_frames(one, [bytes(2048 - 16 - 11)], np.zeros(1, np.int64))[2] == 1
    assert table.tab[slot, SEQ] == 2


def test_send_frames_rejects_bad_arguments_before_sending(pair: Pair) -> None:
    table = SlotTable(capacity=1)
    slot = table.alloc("leg")
    table.set_fd(slot, pair.ours.fileno())
    two = np.array([slot, slot], dtype=np.int64)
    with pytest.raises(ValueError, match="one timestamp per slot"):
        table.send_frames(two, [b"a", b"b"], np.zeros(1, np.int64))
    with pytest.raises(ValueError, match="one payload"):
        table.send_frames(two, [b"a"], np.zeros(2, np.int64))
    with pytest.raises(TypeError, match="bytes"):
        table.send_frames(two, [b"a", bytearray(b"b")], np.zeros(2, np.int64))  # type: ignore[list-item]
    with pytest.raises(IndexError):
        table.send_frames(np.array([slot, 9], dtype=np.int64), [b"a", b"b"], np.zeros(2, np.int64))
    assert table.tab[slot, SEQ] == 0 and table.tab[slot, SENT] == 0
    pair.phone.settimeout(0.05)
    with pytest.raises(TimeoutError):
        pair.phone.recv(2048)


# ----------------------------------------------------------------------------------------- receiving


class Rx:
    """A slot on the fast receive path with an epoll set, and the phone's sender."""

    def __init__(self, pair: Pair, keys: SrtpKeys | None, pt: int = 0, ssrc: int = 0x1234) -> None:
        self.table = SlotTable(capacity=1)
        self.slot = self.table.alloc("leg")
        self.receiver = SrtpReceiver(keys.copy()) if keys is not None else None
        handle = None if self.receiver is None else self.receiver.handle
        owner = None if self.receiver is None else self.receiver.owner
        self.table.set_rx(self.slot, True, handle, owner, pt, ssrc)
        self.table.tab[self.slot, MIXES] = 1
        self.table.tab[self.slot, SILENCE] = 0xFF  # PCMU
        self.jitter = SlotJitter(self.table, self.slot)
        self.rstats = SlotReceptionStats(self.table, self.slot)
        self.table.map_fd(pair.ours.fileno(), self.slot)
        self.ep = select.epoll()
        self.ep.register(pair.ours.fileno(), select.EPOLLIN)
        self.phone = SrtpSender(keys) if keys is not None else None
        self.pair = pair
        self.seq = 100

    def packet(self, pt: int = 0, ssrc: int = 0x1234, payload: bytes = b"\x11" * 160) -> bytes:
        rtp = pack_rtp_header(pt, self.seq, 1000 * self.seq, ssrc) + payload
        self.seq += 1
        return self.phone.protect(rtp) if self.phone is not None else rtp

    def drain(self, now: float = 1.0) -> DrainResult:
        select.select([self.pair.ours], [], [], 1.0)
        return self.table.drain(self.ep.fileno(), now, 10, 0.060)

    def close(self) -> None:
        self.ep.close()


def test_drain_fast_packet(pair: Pair) -> None:
    """A plain packet is counted, goes into the reception statistics and the jitter buffer."""
    rx = Rx(pair, make_keys())
    try:
        pair.phone.send(rx.packet(payload=b"\x42" * 150))  # short: padded with the silence byte
        fast, other, fds = rx.drain(now=2.0)
        assert (fast, other, fds) == (1, [], [])
        assert rx.table.tab[rx.slot, RECEIVED] == 1 and rx.rstats.received == 1
        assert rx.jitter.depth == 1
        assert rx.jitter.pop_payload(2.0) is None  # prefill: plays 60 ms after the first packet
        assert rx.jitter.pop_payload(2.06) == b"\x42" * 150 + b"\xff" * 10
        assert rx.jitter.conceal_gain is None
        rx.table.tab[rx.slot, MIXES] = 0  # not mixed (held, lobby): counted, not buffered
        pair.phone.send(rx.packet())
        assert rx.drain(now=2.1)[0] == 1 and rx.jitter.depth == 0 and rx.rstats.received == 2
    finally:
        rx.close()


def test_drain_sends_the_unusual_to_python(pair: Pair) -> None:
    keys = make_keys()
    rx = Rx(pair, keys)
    try:
        # DTMF (another payload type) and a new SSRC: decrypted, handed over as plain RTP (kind 1).
        dtmf = rx.packet(pt=101, payload=b"\x01\x0a\x00\xa0")
        pair.phone.send(dtmf)
        _fast, other, _ = rx.drain()
        assert [(k, s) for k, s, _, _ in other] == [(1, rx.slot)]
        assert parse_rtp_fast(other[0][3])[0] == 101
        pair.phone.send(rx.packet(ssrc=0x9999))
        assert rx.drain()[1][0][0] == 1
        # RTCP on the muxed port: raw, not unprotected here (kind 2).
        rtcp = b"\x80\xc9\x00\x01" + bytes(4) + bytes(14)
        pair.phone.send(rtcp)
        assert rx.drain()[1] == [(2, rx.slot, 0, rtcp)]
        # Too short for RTP: raw.
        pair.phone.send(b"\x80\x00\x01")
        assert rx.drain()[1] == [(2, rx.slot, 0, b"\x80\x00\x01")]
        # A forged packet (authentication fails) and a replay: libsrtp's status (kind 3).
        good = rx.packet()
        forged = bytearray(good)
        forged[20] ^= 1
        pair.phone.send(bytes(forged))
        assert rx.drain()[1] == [(3, rx.slot, 7, None)]  # srtp_err_status_auth_fail
        pair.phone.send(good)
        assert rx.drain()[0] == 1
        pair.phone.send(good)
        kind, _slot, status, _ = rx.drain()[1][0]
        assert kind == 3 and status in (9, 10)  # replay_fail / replay_old
        # A slot taken off the fast path: everything raw.
        rx.table.set_rx(rx.slot, False, None, None, 0, 0x1234)
        assert rx.table.tab[rx.slot, RXFAST] == 0
        pkt = rx.packet()
        pair.phone.send(pkt)
        assert rx.drain()[1] == [(2, rx.slot, 0, pkt)]
    finally:
        rx.close()


def test_unmapped_sockets_come_back_as_descriptors(pair: Pair) -> None:
    rx = Rx(pair, None)
    try:
        rx.table.unmap_fd(pair.ours.fileno())
        pair.phone.send(rx.packet())
        fast, other, fds = rx.drain()
        assert fast == 0 and other == [] and fds == [pair.ours.fileno()]
        assert len(pair.ours.recv(2048)) == 172  # still queued: C did not read it
        rx.table.map_fd(pair.ours.fileno(), rx.slot)
        rx.table.release(rx.slot)  # a released slot unmaps its descriptors
        assert rx.table.fd2slot[pair.ours.fileno()] == -1
    finally:
        rx.close()


def test_released_slot_keeps_its_state_apart() -> None:
    table = SlotTable(capacity=1)
    a = table.alloc("a")
    table.tab[a, [SSRC, SEQ, FD]] = [7, 8, 3]
    alone = table.release(a)
    assert alone.tab[0, SSRC] == 7 and alone.tab[0, SEQ] == 8 and alone.tab[0, FD] == -1
    b = table.alloc("b")
    assert b == a and table.tab[b, SSRC] == 0 and table.tab[b, FD] == -1


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(min_size=0, max_size=1600), srtp=st.booleans())
def test_drain_survives_any_datagram(pair: Pair, data: bytes, srtp: bool) -> None:
    """Garbage in: C never crashes, never returns the fast result for it, and loses nothing silently."""
    rx = Rx(pair, make_keys() if srtp else None)
    try:
        pair.phone.send(data)
        fast, other, fds = rx.drain()
        assert fds == []
        assert fast + len(other) == 1
        if fast:  # only a well-formed RTP packet of the expected stream (plain mode) gets here
            assert not srtp and data[0] == 0x80 and data[1] & 0x7F == 0 and data[8:12] == b"\x00\x00\x12\x34"
            assert rx.jitter.depth == 1
    finally:
        rx.close()


# ----------------------------------------------------------------------------------------- differential


_ops = st.lists(
    st.one_of(
        st.tuples(st.just("push"), st.integers(0, 0xFFFF), st.integers(1, 200), st.floats(0, 0.05)),
        st.tuples(st.just("near"), st.integers(-40, 40), st.integers(1, 200), st.floats(0, 0.05)),
        st.tuples(st.just("pop"), st.just(0), st.just(0), st.floats(0, 0.05)),
        st.tuples(st.just("reset"), st.just(0), st.just(0), st.just(0.0)),
    ),
    max_size=300,
)


@settings(max_examples=300, deadline=None)
@given(ops=_ops, delay_frames=st.integers(0, 4), extra=st.integers(1, 6))
# found by this test in CI: a jump of exactly 4 x capacity lands on the ring entry of a frame it trims
@example(ops=[("push", 0, 1, 0.0), ("push", 32, 1, 0.0)], delay_frames=2, extra=6)
# late packets while prefilling, each older than the last: the buffer must stay within its capacity
@example(
    ops=[("push", 100, 5, 0.0)] + [("near", -7, 5, 0.0)] * 12 + [("pop", 0, 0, 0.05)] * 20,
    delay_frames=3,
    extra=5,
)
def test_c_jitter_buffer_matches_the_python_reference(
    ops: list[tuple[str, int, int, float]], delay_frames: int, extra: int
) -> None:
    """Any sequence of pushes (random, near the play-out point, duplicates, late, far jumps), pops and
    resets gives the same frames, gains, drops and statistics in C as in jitter.JitterBuffer."""
    from imsconf.media.jitter import JitterBuffer

    delay = 0.020 * delay_frames
    capacity = delay + 0.020 * extra
    ref = JitterBuffer(delay=delay, capacity=capacity)
    table = SlotTable(capacity=1)
    slot = table.alloc("x")
    table.tab[slot, SILENCE] = 0xFF  # PCMU silence
    c = SlotJitter(table, slot, delay=delay, capacity=capacity)
    now = 0.0
    last_seq = 1000
    for op, a, n, dt in ops:
        now += dt
        if op in ("push", "near"):
            seq = a if op == "push" else (last_seq + a) & 0xFFFF
            last_seq = seq
            payload = bytes([seq & 0xFF]) * n
            assert c.push(seq, payload, now) == ref.push(seq, payload, now)
        elif op == "pop":
            want = ref.pop_payload(now)
            got = c.pop_payload(now)
            if want is None:
                assert got is None
            else:
                assert got == (want + b"\xff" * 160)[:160]
                assert c.conceal_gain == ref.conceal_gain
        else:
            ref.reset()
            c.reset()
        assert c.depth == ref.depth
    assert c.stats.as_dict() == ref.stats.as_dict()


@settings(max_examples=200, deadline=None)
@given(
    steps=st.lists(
        st.tuples(st.integers(-3, 40), st.integers(0, 2000), st.booleans()), min_size=1, max_size=200
    ),
    seq0=st.integers(0, 0xFFFF),
    ts0=st.integers(0, 0xFFFF_FFFF),
)
def test_c_reception_statistics_match_the_python_reference(
    steps: list[tuple[int, int, bool]], seq0: int, ts0: int
) -> None:
    """RFC 3550 sequence/jitter/loss bookkeeping in C equals rtp.ReceptionStats, report blocks included."""
    from imsconf.media.rtp import ReceptionStats

    ref = ReceptionStats()
    table = SlotTable(capacity=1)
    c = SlotReceptionStats(table, table.alloc("x"))
    seq, ts, arrival = seq0, ts0, 1_000_000
    for dseq, jitter, report in steps:
        seq = (seq + dseq) & 0xFFFF
        ts = (ts + 160 * dseq) & 0xFFFF_FFFF
        arrival += 160 + jitter
        ref.update(seq, ts, arrival)
        c.update(seq, ts, arrival)
        assert (c.received, c.expected, c.jitter) == (ref.received, ref.expected, ref.jitter)
        if report:
            assert c.report_block(0x42, 1, 2) == ref.report_block(0x42, 1, 2)
    c.reset()
    assert c.report_block(0x42) is None and c.received == 0


def test_a_slot_table_grown_by_a_load_gives_its_rows_back_and_keeps_the_live_slots() -> None:
    from imsconf.media.fastpath import SlotTable

    table = SlotTable()
    slots = [table.alloc(f"leg{i}") for i in range(300)]  # grows 64 -> 128 -> 256 -> 512
    assert len(table.tag) == 512 and len(table.pay) == 512
    table.map_fd(5000, slots[3])
    table.tab[slots[3], 0] = 1234
    for slot in slots:
        if slot not in (slots[3], slots[70]):
            table.release(slot)
    assert table.compact()
    assert len(table.tag) == len(table.tab) == len(table.ftab) == len(table.pay) == 128  # 70 in use
    assert table.tag[slots[3]] == "leg3" and table.tag[slots[70]] == "leg70" and len(table) == 2
    assert table.tab[slots[3], 0] == 1234 and table.fd2slot[5000] == slots[3]
    assert not table.compact()  # nothing more to give back
    new = {table.alloc(f"new{i}") for i in range(126)}  # every free row is taken before it grows
    assert len(table.tag) == 128 and slots[3] not in new and slots[70] not in new
    table.alloc("more")
    assert len(table.tag) == 256


def test_the_engine_compacts_after_a_load_and_its_live_leg_keeps_playing() -> None:
    from imsconf.media.engine import MediaEngine
    from imsconf.media.events import LegConfig

    eng = MediaEngine(allow_plain_rtp=True)
    for i in range(200):
        eng.add_leg(f"l{i}", "c", 40000 + 2 * i, 40001 + 2 * i, False)
        eng.configure_leg(f"l{i}", LegConfig(("192.0.2.1", 6000 + 2 * i), None, 0, "PCMU"), None, None)
    eng.tick(0.0)
    for i in range(1, 200):
        eng.remove_leg(f"l{i}")
    assert eng.compact()
    assert len(eng.table.slots.tag) == 64
    sent = [eng.tick(0.02 * (n + 1)) for n in range(5)]
    assert all(len(out) == 1 for out in sent)  # l0 is sent its frame every tick


def test_the_c_send_path_sends_the_negotiated_payload_type() -> None:
    """A PCMA leg on a connected socket (the C batch) labels its packets PT 8, not the row's default 0."""
    import random

    from imsconf.media.egress import CollectingSink
    from imsconf.media.engine import LegConfig, MediaEngine

    eng = MediaEngine(rng=random.Random(1), allow_plain_rtp=True)
    pairs = []
    try:
        for i, (pt, name) in enumerate([(8, "PCMA"), (0, "PCMU")]):
            port = 20000 + 2 * i
            eng.add_leg(f"l{i}", "c", port, port, True)
            eng.configure_leg(f"l{i}", LegConfig(("127.0.0.1", 9), None, pt, name, 101), None, None, 0.0)
            p = Pair()
            eng.set_send(port, p.ours.send, p.ours.fileno())
            pairs.append(p)
        assert eng.c_path
        eng.tick_send(0.0, CollectingSink())
        assert [p.phone.recv(2048)[1] & 0x7F for p in pairs] == [8, 0]
    finally:
        for p in pairs:
            p.close()
