"""The negative cache of UDP destinations that refused TCP (sans-I/O: `now` passed in)."""

from __future__ import annotations

from imsconf.sip.tcp_refusals import TCP_REFUSAL_TTL, TcpRefusals


def test_refusal_expires_after_the_ttl() -> None:
    r = TcpRefusals()
    assert TCP_REFUSAL_TTL == 300.0
    r.add("192.0.2.1", 5060, now=100.0)
    assert r.refused("192.0.2.1", 5060, 100.0 + 299.9)
    assert not r.refused("192.0.2.1", 5061, 101.0) and not r.refused("192.0.2.2", 5060, 101.0)
    assert not r.refused("192.0.2.1", 5060, 400.0)
    assert len(r) == 0  # forgotten once expired


def test_bounded_oldest_go_first() -> None:
    r = TcpRefusals(ttl=10.0, max_entries=3)
    for i in range(5):
        r.add(f"192.0.2.{i}", 5060, now=float(i))
    assert len(r) == 3
    assert not r.refused("192.0.2.0", 5060, 5.0) and not r.refused("192.0.2.1", 5060, 5.0)
    assert all(r.refused(f"192.0.2.{i}", 5060, 5.0) for i in (2, 3, 4))
    r.add("192.0.2.2", 5060, now=6.0)  # renewed: now the newest
    r.add("192.0.2.9", 5060, now=7.0)
    assert r.refused("192.0.2.2", 5060, 7.0) and not r.refused("192.0.2.3", 5060, 7.0)
