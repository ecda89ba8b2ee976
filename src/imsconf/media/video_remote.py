"""The video calls over the mixer control channel (:mod:`imsconf.media.remote`), both sides.

Ops: ``allocate_video`` (a pre-bound pair from the pool, like ``allocate_leg``: the mixer lets the pair go
from its audio sockets and binds it for video), ``configure_video`` (keys as ``{"suite", "inline"}``, as for
the audio legs; the mixer wipes its copies once the SRTP contexts exist), ``release_video`` and
``set_video_source``.  A ``release_conference`` releases the conference's video legs too, and the video
legs of a focus that disconnects are released with its audio legs.
"""

from __future__ import annotations

import base64
from collections import deque
from typing import TYPE_CHECKING, Any

from imsconf.sdp.direction import Direction

from .events import Addr, MediaEngineError
from .srtp import SrtpKeys

if TYPE_CHECKING:
    from .control import LegPorts, LocalMediaControl

__all__ = [
    "VIDEO_OPS",
    "RemoteVideoControl",
    "apply_video_op",
    "forget_video_conference",
    "release_video_legs",
]

VIDEO_OPS = frozenset({"allocate_video", "configure_video", "release_video", "set_video_source"})


def _keys_out(keys: SrtpKeys | None) -> Any:
    if keys is None:
        return None
    return {"suite": keys.suite, "inline": base64.b64encode(keys.key_salt()).decode("ascii")}


def _keys_in(value: Any) -> SrtpKeys | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValueError("bad keys")
    return SrtpKeys.from_inline(str(value["suite"]), str(value["inline"]))


def _addr(value: Any) -> Addr | None:
    if value is None:
        return None
    host, port = value
    return (str(host), int(port))


class RemoteVideoControl:
    """The focus side (a mixin of ``RemoteMediaControl``: it uses its pool, host and ``_send``)."""

    _pool: deque[tuple[int, int]]
    _host: str

    def _send(self, op: str, **args: Any) -> None:  # pragma: no cover - RemoteMediaControl's
        raise NotImplementedError

    @property
    def _video_legs(self) -> dict[str, str]:
        legs: dict[str, str] | None = self.__dict__.get("_video_legs_map")
        if legs is None:
            legs = self.__dict__["_video_legs_map"] = {}
        return legs

    def forget_video_legs(self) -> None:
        """The mixer is gone, and the video legs made on it with it."""
        self._video_legs.clear()

    def allocate_video(self, conference_id: str, leg_id: str, rtcp_mux: bool) -> LegPorts:
        from .control import LegPorts

        if leg_id in self._video_legs:
            raise MediaEngineError(f"video leg {leg_id!r} exists")
        if not self._pool:
            raise MediaEngineError("the mixer has no free media ports")
        rtp, rtcp = self._pool.popleft()
        self._send("allocate_video", conf=conference_id, leg=leg_id, mux=rtcp_mux, rtp=rtp, rtcp=rtcp)
        self._video_legs[leg_id] = conference_id
        return LegPorts(self._host, rtp, rtp if rtcp_mux else rtcp)

    def configure_video(
        self,
        leg_id: str,
        *,
        remote_rtp: Addr,
        remote_rtcp: Addr | None,
        payload_type: int,
        codec_name: str,
        clock_rate: int = 90000,
        direction: Direction = Direction.SENDRECV,
        pli: bool = False,
        tx_keys: SrtpKeys | None,
        rx_keys: SrtpKeys | None,
    ) -> None:
        self._send(
            "configure_video",
            leg=leg_id,
            remote_rtp=list(remote_rtp),
            remote_rtcp=list(remote_rtcp) if remote_rtcp else None,
            payload_type=payload_type,
            codec_name=codec_name,
            clock_rate=clock_rate,
            direction=direction.value,
            pli=pli,
            tx_keys=_keys_out(tx_keys),
            rx_keys=_keys_out(rx_keys),
        )

    def release_video(self, leg_id: str) -> None:
        if self._video_legs.pop(leg_id, None) is not None:
            self._send("release_video", leg=leg_id)

    def set_video_source(self, conference_id: str, leg_id: str | None) -> None:
        self._send("set_video_source", conf=conference_id, leg=leg_id)


# ---- mixer side ------------------------------------------------------------------------------------

# The video legs each focus connection owns, by the id of that connection's audio leg set (which lives as
# long as the connection): kept apart so that the audio ops never see a video leg id.
_OWNED: dict[int, set[str]] = {}


def apply_video_op(
    control: LocalMediaControl,
    ports: Any,
    op: str,
    a: dict[str, Any],
    legs: set[str],
    offered: set[int],
) -> tuple[int, int] | None:
    """Apply one video op for the focus connection whose audio legs are ``legs`` and that was offered the
    RTP ports ``offered``.  Returns the pre-bound pair an ``allocate_video`` consumed (the caller offers a
    new one), else None."""
    owned = _OWNED.setdefault(id(legs), set())
    if op == "allocate_video":
        rtp, rtcp, mux = int(a["rtp"]), int(a["rtcp"]), bool(a["mux"])
        if rtp not in offered:
            raise MediaEngineError("port pair not offered to this focus")
        ports.close_ports(rtp, rtcp)  # the audio side lets the pre-bound pair go ...
        offered.discard(rtp)
        control.allocate_video(str(a["conf"]), str(a["leg"]), mux, ports=(rtp, rtcp))  # ... video binds it
        owned.add(str(a["leg"]))
        return rtp, rtcp
    if op == "set_video_source":
        leg = a["leg"]
        if leg is not None and str(leg) not in owned:
            raise MediaEngineError("video leg not allocated by this focus")
        control.set_video_source(str(a["conf"]), None if leg is None else str(leg))
        return None
    leg_id = str(a["leg"])
    if leg_id not in owned:
        raise MediaEngineError("video leg not allocated by this focus")
    if op == "configure_video":
        remote = _addr(a["remote_rtp"])
        if remote is None:
            raise ValueError("remote_rtp is required")
        tx, rx = _keys_in(a["tx_keys"]), _keys_in(a["rx_keys"])
        try:
            control.configure_video(
                leg_id,
                remote_rtp=remote,
                remote_rtcp=_addr(a["remote_rtcp"]),
                payload_type=int(a["payload_type"]),
                codec_name=str(a["codec_name"]),
                clock_rate=int(a["clock_rate"]),
                direction=Direction(a["direction"]),
                pli=bool(a["pli"]),
                tx_keys=tx,
                rx_keys=rx,
            )
        finally:
            for k in (tx, rx):
                if k is not None:
                    k.wipe()
    elif op == "release_video":
        owned.discard(leg_id)
        control.release_video(leg_id)
    else:
        raise ValueError(f"unknown op {op!r}")
    return None


def release_video_legs(control: LocalMediaControl, legs: set[str]) -> None:
    """The focus connection whose audio legs are ``legs`` is gone: its video legs go too."""
    for leg_id in _OWNED.pop(id(legs), set()):
        try:
            control.release_video(leg_id)
        except MediaEngineError:
            pass


def forget_video_conference(legs: set[str], conference_id: str, control: LocalMediaControl) -> None:
    """``release_conference``: the conference's video legs go (and are no longer owned)."""
    owned = _OWNED.get(id(legs), set())
    plane = control.video
    if plane is not None:
        for leg_id in [lid for lid in owned if lid in plane.switch.legs()]:
            if plane.switch.leg_conference(leg_id) == conference_id:
                owned.discard(leg_id)
    control.release_video_conference(conference_id)
