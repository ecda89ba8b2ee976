"""RequestCounters: final responses by method (unknown methods as "other") and response class."""

from __future__ import annotations

from imsconf.sip.counters import RequestCounters, response_class


def test_classes() -> None:
    assert [response_class(s) for s in (100, 200, 299, 302, 404, 503, 603, 99, 700)] == [
        "1xx", "2xx", "2xx", "3xx", "4xx", "5xx", "6xx", "1xx", "6xx",
    ]  # fmt: skip


def test_counts_and_bounded_methods() -> None:
    c = RequestCounters()
    c.final_response("INVITE", 200)
    c.final_response("INVITE", 200)
    c.final_response("INVITE", 486)
    for i in range(100):
        c.final_response(f"X{i}", 501)
    assert c.get("INVITE", "2xx") == 2 and c.get("INVITE", "4xx") == 1
    assert list(c.items()) == [("INVITE", "2xx", 2), ("INVITE", "4xx", 1), ("other", "5xx", 100)]
    assert c.total() == 103
