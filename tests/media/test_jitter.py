from __future__ import annotations

import random

from imsconf.media.jitter import FADE, JitterBuffer

T = 0.020


def payload(i: int) -> bytes:
    return bytes([i & 0xFF]) * 160


def run(arrivals: list[tuple[float, int]], ticks: int, jb: JitterBuffer, seq0: int = 0) -> list[bytes | None]:
    """Feed (arrival_time, index) packets and pop once per tick at t = k * 20 ms; return what played."""
    arrivals = sorted(arrivals)
    out: list[bytes | None] = []
    j = 0
    for k in range(ticks):
        now = k * T
        while j < len(arrivals) and arrivals[j][0] <= now:
            t, i = arrivals[j]
            jb.push((seq0 + i) & 0xFFFF, payload(i), t)
            j += 1
        f = jb.pop(now)
        out.append(None if f is None else f.payload if not f.concealed else b"C")
    return out


def played(out: list[bytes | None]) -> list[int]:
    return [p[0] for p in out if p is not None and p != b"C"]


def gaps(out: list[bytes | None]) -> int:
    """Concealed or silent ticks between the first and the last real frame."""
    real = [n for n, p in enumerate(out) if p is not None and p != b"C"]
    return sum(1 for p in out[real[0] : real[-1]] if p is None or p == b"C")


def test_in_order_stream_plays_everything_after_the_prefill() -> None:
    jb = JitterBuffer()
    out = run([(i * T + 0.001, i) for i in range(50)], 60, jb)
    assert played(out) == list(range(50))
    assert out[:3] == [None, None, None]  # 60 ms prefill
    assert gaps(out) == 0 and jb.stats.late == 0


def test_reordering_is_absorbed() -> None:
    order = list(range(40))
    for a in range(1, 38, 4):
        order[a], order[a + 1] = order[a + 1], order[a]
    arrivals = [(k * T + 0.001, i) for k, i in enumerate(order)]
    jb = JitterBuffer()
    assert played(run(arrivals, 50, jb)) == list(range(40))
    assert jb.stats.late == 0


def test_sixty_ms_of_jitter_is_absorbed_across_wrap() -> None:
    rng = random.Random(7)
    arrivals = [(i * T + 0.001 + (rng.uniform(0, 0.060) if i else 0.0), i) for i in range(200)]
    jb = JitterBuffer(delay=0.060)
    out = run(arrivals, 220, jb, seq0=65500)
    assert played(out) == [i & 0xFF for i in range(200)]
    assert jb.stats.late == 0 and gaps(out) == 0


def test_duplicates_dropped_and_late_counted() -> None:
    jb = JitterBuffer()
    arrivals = [(i * T + 0.001, i) for i in range(20)] + [(5 * T + 0.002, 5), (15 * T, 3)]
    out = run(arrivals, 30, jb)
    assert played(out) == list(range(20))
    assert jb.stats.duplicate == 1 and jb.stats.late == 1


def test_loss_is_concealed_with_a_fade_not_silence() -> None:
    jb = JitterBuffer()
    arrivals = [(i * T + 0.001, i) for i in range(30) if i not in (10, 11)]
    frames = []
    for k in range(35):
        now = k * T
        for t, i in arrivals:
            if k * T - T < t <= now:
                jb.push(i, payload(i), t)
        frames.append(jb.pop(now))
    real = [f for f in frames if f is not None]
    idx = next(n for n, f in enumerate(real) if f.concealed)
    assert real[idx].payload == payload(9) and real[idx].gain == FADE[0]
    assert real[idx + 1].concealed and real[idx + 1].gain == FADE[1]
    assert real[idx + 2].payload == payload(12) and not real[idx + 2].concealed
    assert sum(1 for f in real[: idx + 3] if f.concealed) == 2


def test_a_stopped_sender_goes_silent_and_restarts_cleanly() -> None:
    jb = JitterBuffer()
    out = run([(i * T + 0.001, i) for i in range(10)], 30, jb)
    assert out.count(b"C") == len(FADE)
    assert out[-1] is None and jb.stats.underruns == 1
    # a new talkspurt, far later in sequence space, plays again after a fresh prefill
    jb.push(1000, payload(1), 1.0)
    assert jb.pop(1.0 + 2 * T) is None  # prefilling again
    f = jb.pop(1.0 + 3 * T + 0.001)
    assert f is not None and f.payload == payload(1) and not f.concealed


def test_overfull_buffer_drops_oldest_to_keep_delay_bounded() -> None:
    jb = JitterBuffer(delay=0.060, capacity=0.200)
    for i in range(30):  # a 600 ms burst arriving at once
        jb.push(i, payload(i), 0.0)
    assert jb.depth <= 10 and jb.stats.overflow == 20
    f = jb.pop(0.1)
    assert f is not None and f.payload == payload(20)


def test_huge_sequence_jump_resyncs() -> None:
    jb = JitterBuffer()
    jb.push(100, payload(1), 0.0)
    jb.push(30000, payload(2), 0.01)
    assert jb.stats.resync == 1 and jb.depth == 1
