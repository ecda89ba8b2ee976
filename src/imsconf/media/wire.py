"""Values on the mixer control channel (:mod:`.remote`, :mod:`.mixer_server`): SRTP keys as
``{"suite", "inline"}`` (base64 of key || salt), addresses as ``[host, port]``, and the media events the mixer
reports to the focus.  Nothing here logs a key."""

from __future__ import annotations

import base64
import dataclasses
from typing import Any

from .engine import KEEP, Addr, Keep, MediaEvent
from .events import (
    DtmfReceived,
    GroupStreamConfirmed,
    GroupStreamFailing,
    InboundKeyConfirmed,
    LegStats,
    MixerStats,
    PromptFinished,
    SourceLatched,
    SpeakingChanged,
)
from .srtp import SrtpKeys

__all__ = [
    "MAX_LINE",
    "addr_in",
    "event_in",
    "event_out",
    "keys_in",
    "keys_out",
    "leg_stats_in",
    "leg_stats_out",
    "mixer_stats_in",
    "mixer_stats_out",
    "opt_int",
    "params_in",
    "params_out",
]

MAX_LINE = 65536  # the longest JSON line either side reads


def keys_out(keys: SrtpKeys | Keep | None) -> Any:
    if isinstance(keys, Keep):
        return "keep"
    if keys is None:
        return None
    return {"suite": keys.suite, "inline": base64.b64encode(keys.key_salt()).decode("ascii")}


def keys_in(value: Any) -> SrtpKeys | Keep | None:
    if value == "keep":
        return KEEP
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValueError("bad keys")
    return SrtpKeys.from_inline(str(value["suite"]), str(value["inline"]))


def params_out(params: tuple[tuple[str, str], ...]) -> list[list[str]]:
    """A codec's ``a=fmtp`` parameters as ``[[name, value], ...]``."""
    return [[name, value] for name, value in params]


def params_in(value: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, list) or not all(isinstance(p, list) and len(p) == 2 for p in value):
        raise ValueError("bad codec parameters")
    return tuple((str(name), str(v)) for name, v in value)


def addr_in(value: Any) -> Addr | None:
    if value is None:
        return None
    host, port = value
    return (str(host), int(port))


def event_out(ev: MediaEvent) -> dict[str, Any] | None:
    if isinstance(ev, DtmfReceived):
        e = ev.event
        return {
            "event": "dtmf",
            "leg": ev.leg_id,
            "conf": ev.conference_id,
            "digit": e.digit,
            "duration_ms": e.duration_ms,
            "volume": e.volume,
            "end": e.end,
        }
    if isinstance(ev, InboundKeyConfirmed):
        return {"event": "inbound_key_confirmed", "leg": ev.leg_id}
    if isinstance(ev, SourceLatched):
        return {"event": "source_latched", "leg": ev.leg_id, "rtcp": ev.rtcp, "addr": list(ev.addr)}
    if isinstance(ev, GroupStreamConfirmed):
        return {"event": "group_confirmed", "leg": ev.leg_id, "epoch": ev.epoch}
    if isinstance(ev, GroupStreamFailing):
        return {
            "event": "group_failing",
            "leg": ev.leg_id,
            "epoch": ev.epoch,
            "fraction_lost": ev.fraction_lost,
            "evidence": ev.evidence,
        }
    if isinstance(ev, PromptFinished):
        return {"event": "prompt_finished", "leg": ev.leg_id, "name": ev.name}
    if isinstance(ev, SpeakingChanged):
        return {"event": "speaking", "leg": ev.leg_id, "conf": ev.conference_id, "speaking": ev.speaking}
    return None  # RTCP reports stay in the mixer (statistics only)


def event_in(msg: dict[str, Any]) -> MediaEvent | None:
    from .dtmf import DtmfEvent

    kind = msg.get("event")
    if kind == "dtmf":
        return DtmfReceived(
            str(msg["leg"]),
            str(msg["conf"]),
            DtmfEvent(str(msg["digit"]), int(msg["duration_ms"]), int(msg["volume"]), bool(msg["end"])),
        )
    if kind == "inbound_key_confirmed":
        return InboundKeyConfirmed(str(msg["leg"]))
    if kind == "source_latched":
        addr = addr_in(msg["addr"])
        assert addr is not None
        return SourceLatched(str(msg["leg"]), bool(msg["rtcp"]), addr)
    if kind == "group_confirmed":
        return GroupStreamConfirmed(str(msg["leg"]), int(msg["epoch"]))
    if kind == "group_failing":
        return GroupStreamFailing(
            str(msg["leg"]), int(msg["epoch"]), float(msg["fraction_lost"]), str(msg["evidence"])
        )
    if kind == "prompt_finished":
        return PromptFinished(str(msg["leg"]), str(msg["name"]))
    if kind == "speaking":
        return SpeakingChanged(str(msg["leg"]), str(msg["conf"]), bool(msg["speaking"]))
    return None


def mixer_stats_out(stats: MixerStats) -> dict[str, Any]:
    out = dataclasses.asdict(stats)
    out["tick_seconds_buckets"] = list(stats.tick_seconds_buckets)
    return out


_INT_MIXER_FIELDS = tuple(
    f.name
    for f in dataclasses.fields(MixerStats)
    if f.name not in ("tick_seconds_sum", "tick_seconds_buckets")
)


def mixer_stats_in(value: Any) -> MixerStats:
    if not isinstance(value, dict):
        raise ValueError("bad mixer stats")
    ints = {name: int(value[name]) for name in _INT_MIXER_FIELDS}
    return MixerStats(
        tick_seconds_sum=float(value["tick_seconds_sum"]),
        tick_seconds_buckets=tuple(int(n) for n in value["tick_seconds_buckets"]),
        **ints,
    )


def leg_stats_out(stats: LegStats) -> dict[str, Any]:
    return dataclasses.asdict(stats)


_OPT_FLOAT_LEG_FIELDS = frozenset({"rtcp_loss", "rtcp_jitter_ms"})
_OPT_INT_LEG_FIELDS = frozenset({"remote_ssrc", "group_epoch"})
_BOOL_LEG_FIELDS = frozenset({"lobby", "muted", "deaf"})


def leg_stats_in(value: Any) -> LegStats:
    if not isinstance(value, dict):
        raise ValueError("bad leg stats")
    args: dict[str, Any] = {}
    for f in dataclasses.fields(LegStats):
        v = value[f.name]
        if f.name in _OPT_FLOAT_LEG_FIELDS:
            args[f.name] = None if v is None else float(v)
        elif f.name in _OPT_INT_LEG_FIELDS:
            args[f.name] = opt_int(v)
        elif f.name in _BOOL_LEG_FIELDS:
            args[f.name] = bool(v)
        elif f.name == "prompt":
            args[f.name] = None if v is None else str(v)
        else:
            args[f.name] = int(v)
    return LegStats(**args)


def opt_int(value: Any) -> int | None:
    return None if value is None else int(value)
