from __future__ import annotations

import pytest

from imsconf.keys import DownlinkMode, KeyManagerConfig, PolicySyntaxError, RekeyPolicy


@pytest.mark.parametrize(
    ("text", "join", "leave", "interval", "canon"),
    [
        ("on-join", True, False, None, "on-join"),
        ("on-leave", False, True, None, "on-leave"),
        ("both", True, True, None, "on-join,on-leave"),
        ("on-join,on-leave", True, True, None, "on-join,on-leave"),
        (" ON-LEAVE,ON-JOIN ", True, True, None, "on-join,on-leave"),
        ("never", False, False, None, "never"),
        ("interval:5", True, True, 5.0, "interval:5"),
        ("interval:2.5s", True, True, 2.5, "interval:2.5"),
        ("interval:250ms", True, True, 0.25, "interval:0.25"),
    ],
)
def test_parse(text: str, join: bool, leave: bool, interval: float | None, canon: str) -> None:
    p = RekeyPolicy.parse(text)
    assert (p.on_join, p.on_leave, p.interval) == (join, leave, interval)
    assert str(p) == canon
    assert RekeyPolicy.parse(str(p)) == p


@pytest.mark.parametrize(
    "text",
    ["", "sometimes", "interval:", "interval:0", "interval:-1", "interval:1h", "interval:100000", "on-join;"],
)
def test_parse_rejects(text: str) -> None:
    with pytest.raises(PolicySyntaxError):
        RekeyPolicy.parse(text)


def test_policy_validation() -> None:
    with pytest.raises(PolicySyntaxError):
        RekeyPolicy(True, False, 5.0)  # an interval batches both
    with pytest.raises(PolicySyntaxError):
        RekeyPolicy.every(float("nan"))
    assert RekeyPolicy.never().rekeys is False
    assert RekeyPolicy.every(1).batched


def test_downlink_mode() -> None:
    assert DownlinkMode.parse("Group") is DownlinkMode.GROUP
    assert DownlinkMode.parse("per-participant") is DownlinkMode.PER_PARTICIPANT
    assert str(DownlinkMode.GROUP) == "group"
    with pytest.raises(PolicySyntaxError):
        DownlinkMode.parse("multicast")


def test_config_validation() -> None:
    KeyManagerConfig()
    for bad in (
        {"suite": "NULL"},
        {"answer_timeout": 0},
        {"confirm_timeout": -1},
        {"demote_timeout": float("inf")},
        {"max_offers_per_tick": 0},
    ):
        with pytest.raises(PolicySyntaxError):
            KeyManagerConfig(**bad)
