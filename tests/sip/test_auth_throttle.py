"""Digest brute-force throttle of the UA core (sans-I/O, fake clock)."""

from __future__ import annotations

from imsconf.sip.endpoint import AuthThrottle


def test_blocks_after_max_failures_within_the_window_and_unblocks_later() -> None:
    t = AuthThrottle(max_failures=3, window=60, block=30)
    assert not t.failure("192.0.2.1", 0.0)
    assert not t.failure("192.0.2.1", 1.0)
    assert t.failure("192.0.2.1", 2.0)
    assert t.blocked("192.0.2.1", 2.0) and t.blocked("192.0.2.1", 31.9)
    assert not t.blocked("192.0.2.2", 2.0)  # per host
    assert not t.blocked("192.0.2.1", 32.0)


def test_old_failures_fall_out_of_the_window() -> None:
    t = AuthThrottle(max_failures=3, window=10, block=30)
    t.failure("h", 0.0)
    t.failure("h", 1.0)
    assert not t.failure("h", 20.0)  # the first two are older than the window
    assert not t.blocked("h", 20.0)


def test_success_forgets_failures() -> None:
    t = AuthThrottle(max_failures=2)
    t.failure("h", 0.0)
    t.success("h")
    assert not t.failure("h", 1.0)


def test_memory_is_bounded() -> None:
    t = AuthThrottle(max_failures=2, max_hosts=100)
    for i in range(1000):
        t.failure(f"h{i}", 0.0)
        t.failure(f"h{i}", 0.0)
    assert len(t._failures) <= 100 and len(t._blocked) <= 100
