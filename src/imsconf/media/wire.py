"""Values on the mixer control channel (:mod:`.remote`, :mod:`.mixer_server`): SRTP keys as
``{"suite", "inline"}`` (base64 of key || salt), addresses as ``[host, port]``, and the media events the mixer
reports to the focus.  Nothing here logs a key."""

from __future__ import annotations

import base64
from typing import Any

from .engine import KEEP, Addr, Keep, MediaEvent
from .events import (
    DtmfReceived,
    GroupStreamConfirmed,
    GroupStreamFailing,
    InboundKeyConfirmed,
    PromptFinished,
    SourceLatched,
)
from .srtp import SrtpKeys

__all__ = ["MAX_LINE", "addr_in", "event_in", "event_out", "keys_in", "keys_out", "opt_int"]

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
    return None


def opt_int(value: Any) -> int | None:
    return None if value is None else int(value)
