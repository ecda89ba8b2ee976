"""The mixer side of the control channel (``imsconf mixer``): serves the focus's commands over one in-process
media plane; the protocol is described in :mod:`.remote`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
from typing import Any

from imsconf.keys.policy import DownlinkMode
from imsconf.sdp.direction import Direction

from .control import LocalMediaControl
from .engine import KEEP, Keep, MediaEngine, MediaEngineError, MediaEvent
from .srtp import SrtpKeys
from .video_plane import VideoPlane
from .video_remote import VIDEO_OPS, apply_video_op, forget_video_conference, release_video_legs
from .wire import addr_in, event_out, keys_in, leg_stats_out, mixer_stats_out, opt_int, params_in

__all__ = ["POOL_TARGET", "MixerControlServer", "PoolPorts"]

log = logging.getLogger("imsconf.mixer")

POOL_TARGET = 16  # pre-bound pairs offered to the focus; refilled one for one as legs are allocated


class PoolPorts:
    """A PortAllocator that hands the engine the pre-bound pair the focus chose."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.chosen: tuple[int, int] | None = None
        self.pairs: dict[int, int] = {}  # rtp -> the rtcp port bound with it

    @property
    def host(self) -> str:
        return str(self.inner.host)

    def prebind(self) -> tuple[int, int]:
        rtp, rtcp = self.inner.open_ports(False)
        self.pairs[rtp] = rtcp
        return int(rtp), int(rtcp)

    def open_ports(self, rtcp_mux: bool) -> tuple[int, int]:
        if self.chosen is None or self.chosen[0] not in self.pairs:
            raise MediaEngineError("port pair not offered by this mixer")
        rtp, rtcp = self.chosen
        return (rtp, rtp) if rtcp_mux else (rtp, rtcp)

    def close_ports(self, rtp_port: int, rtcp_port: int) -> None:
        rtcp = self.pairs.pop(rtp_port, rtcp_port)
        self.inner.close_ports(rtp_port, rtcp)


class MixerControlServer:
    """Serves the control channel in the mixer process, over one in-process media plane."""

    def __init__(self, control: LocalMediaControl, ports: PoolPorts) -> None:
        self.control = control
        self.ports = ports
        self._clients: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[Any]] = set()
        self._confs: dict[asyncio.StreamWriter, set[str]] = {}  # conferences each focus touched
        control.set_event_sink(self._on_event)

    @classmethod
    def build(cls, engine: MediaEngine, transport: Any) -> MixerControlServer:
        ports = PoolPorts(transport)
        control = LocalMediaControl(engine, ports, now=transport.now)
        control.video = VideoPlane(ports.host, allow_plain_rtp=engine.allow_plain_rtp)  # video: pool ports
        transport.after_tick = control.deliver_events
        return cls(control, ports)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peercert") or {}
        subject = dict(x[0] for x in peer.get("subject", ())) if isinstance(peer, dict) else {}
        log.info("event=focus_connected cn=%s", subject.get("commonName", "?"))
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        self._clients.add(writer)
        legs: set[str] = set()
        self._confs[writer] = set()
        offered: set[int] = set()
        try:
            self._write(writer, {"hello": {"host": self.ports.host, "version": 1}})
            pool = []
            for _ in range(POOL_TARGET):
                pair = self._prebind()
                if pair is None:
                    break
                pool.append(list(pair))
            offered.update(rtp for rtp, _ in pool)
            self._write(writer, {"pool": pool})
            while line := await reader.readline():
                try:
                    msg = json.loads(line)
                    self._apply(msg, legs, offered, writer)
                except (ValueError, KeyError, TypeError, MediaEngineError) as exc:
                    op = msg.get("op") if isinstance(msg, dict) else None
                    leg = msg.get("args", {}).get("leg") if isinstance(msg, dict) else None
                    self._write(
                        writer, {"error": f"{exc.__class__.__name__}: {exc}"[:200], "op": op, "leg": leg}
                    )
        except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError, ValueError):
            pass
        except asyncio.CancelledError:
            # the mixer is stopping (close() cancels a connection that did not end by itself): the stream
            # machinery would log a cancelled handler as an error, so it ends normally after the cleanup
            pass
        finally:
            if task is not None:
                self._handlers.discard(task)
            self._clients.discard(writer)
            for conf in self._confs.pop(writer, set()):  # and the group keys of its conferences
                with contextlib.suppress(Exception):
                    self.control.engine.drop_conference(conf)
            release_video_legs(self.control, legs)
            for leg_id in legs:  # the focus is gone: its legs go too
                with contextlib.suppress(Exception):
                    self.control.release_leg(leg_id)
            for rtp in offered - {p for p in legs}:
                if rtp in self.ports.pairs:
                    with contextlib.suppress(Exception):
                        self.ports.close_ports(rtp, self.ports.pairs[rtp])
            writer.close()
            log.info("event=focus_disconnected")

    async def close(self, timeout: float = 1.0) -> None:
        """Stop serving: every focus connection is closed and its legs are released (no task is left to
        be cancelled by the loop's shutdown)."""
        for writer in list(self._clients):
            writer.close()
        pending = set(self._handlers)
        if pending:
            _, late = await asyncio.wait(pending, timeout=timeout)
            for t in late:
                t.cancel()
            if late:
                await asyncio.wait(late, timeout=timeout)

    def _apply(
        self, msg: dict[str, Any], legs: set[str], offered: set[int], writer: asyncio.StreamWriter
    ) -> None:
        op, a = msg["op"], msg["args"]
        if isinstance(a, dict) and "conf" in a:
            self._confs.setdefault(writer, set()).add(str(a["conf"]))
        c = self.control
        if op == "allocate_leg":
            rtp, rtcp = int(a["rtp"]), int(a["rtcp"])
            if rtp not in offered:
                raise MediaEngineError("port pair not offered to this focus")
            self.ports.chosen = (rtp, rtcp)
            try:
                c.allocate_leg(str(a["conf"]), str(a["leg"]), bool(a["mux"]))
            finally:
                self.ports.chosen = None
            offered.discard(rtp)
            legs.add(str(a["leg"]))
            new = self._prebind()
            if new is not None:
                offered.add(new[0])
                self._write(writer, {"pool": [list(new)]})
        elif op == "configure_leg":
            remote = addr_in(a["remote_rtp"])
            assert remote is not None
            tx, rx = keys_in(a["tx_keys"]), keys_in(a["rx_keys"])
            c.configure_leg(
                str(a["leg"]),
                remote_rtp=remote,
                remote_rtcp=addr_in(a["remote_rtcp"]),
                codec_pt=int(a["codec_pt"]),
                codec_name=str(a["codec_name"]),
                dtmf_pt=None if a["dtmf_pt"] is None else int(a["dtmf_pt"]),
                tx_keys=None if isinstance(tx, Keep) else tx,
                rx_keys=None if isinstance(rx, Keep) else rx,
                direction=Direction(a["direction"]),
                latch=bool(a["latch"]),
                codec_clock=int(a.get("codec_clock", 8000)),
                codec_params=params_in(a.get("codec_params", [])),
            )
        elif op == "update_leg":
            dtmf = a["dtmf_pt"]
            c.update_leg(
                str(a["leg"]),
                remote_rtp=addr_in(a["remote_rtp"]),
                remote_rtcp=addr_in(a["remote_rtcp"]),
                codec_pt=a["codec_pt"],
                codec_name=a["codec_name"],
                dtmf_pt=KEEP if dtmf == "keep" else dtmf,
                direction=Direction(a["direction"]) if a["direction"] else None,
                tx_keys=keys_in(a["tx_keys"]),
                rx_keys=keys_in(a["rx_keys"]),
                codec_clock=opt_int(a.get("codec_clock")),
                codec_params=None if a.get("codec_params") is None else params_in(a["codec_params"]),
            )
        elif op == "release_leg":
            leg = str(a["leg"])
            if leg in legs:
                legs.discard(leg)
                c.release_leg(leg)
        elif op == "release_conference":
            conf = str(a["conf"])
            for leg in [lid for lid in legs if c.engine.leg_conference(lid) == conf]:
                legs.discard(leg)
                c.release_leg(leg)
            c.engine.drop_conference(conf)
            forget_video_conference(legs, conf, c)
        elif op == "set_downlink_mode":
            c.set_downlink_mode(str(a["conf"]), DownlinkMode(str(a["mode"])))  # ValueError: unknown mode
        elif op == "add_group_epoch":
            keys = keys_in(a["keys"])
            if not isinstance(keys, SrtpKeys):
                raise ValueError("an epoch needs SRTP keys")
            try:
                c.add_group_epoch(
                    str(a["conf"]),
                    int(a["epoch"]),
                    keys,
                    int(a["ssrc"]),
                    codec_name=str(a["codec_name"]),
                    codec_pt=int(a["codec_pt"]),
                )
            finally:
                keys.wipe()
        elif op == "retire_group_epoch":
            c.retire_group_epoch(str(a["conf"]), int(a["epoch"]))
        elif op == "set_listener_stream":
            self._own(a, legs)
            c.set_listener_stream(
                str(a["leg"]),
                opt_int(a["epoch"]),
                speaker_ssrc=opt_int(a["speaker_ssrc"]),
                keep_own=bool(a["keep_own"]),
            )
        elif op == "set_floor_control":
            c.set_floor_control(str(a["conf"]), bool(a["enabled"]))
        elif op == "set_floor_holders":
            holders = a["legs"]
            if not isinstance(holders, list):
                raise ValueError("legs must be a list")
            c.set_floor_holders(str(a["conf"]), frozenset(str(x) for x in holders))
        elif op == "set_lobby":
            self._own(a, legs)
            c.set_lobby(str(a["leg"]), bool(a["lobby"]))
        elif op == "play_prompt":
            self._own(a, legs)
            name = a["name"]
            c.play_prompt(str(a["leg"]), None if name is None else str(name), bool(a["loop"]))
        elif op == "set_leg_mix":
            self._own(a, legs)
            c.set_leg_mix(str(a["leg"]), muted=bool(a["muted"]), deaf=bool(a["deaf"]))
        elif op == "leg_stats":
            self._own(a, legs)
            leg = str(a["leg"])
            self._write(writer, {"leg_stats": {"leg": leg, "stats": leg_stats_out(c.leg_stats(leg))}})
        elif op == "ping":  # the heartbeat's answer carries the mixer's figures (MixerStats)
            self._write(writer, {"pong": {"stats": mixer_stats_out(c.mixer_stats())}})
        elif op in VIDEO_OPS:
            used = apply_video_op(c, self.ports, op, a, legs, offered)
            new = self._prebind() if used is not None else None
            if new is not None:
                offered.add(new[0])
                self._write(writer, {"pool": [list(new)]})
        else:
            raise ValueError(f"unknown op {op!r}")

    @staticmethod
    def _own(a: dict[str, Any], legs: set[str]) -> None:
        if str(a["leg"]) not in legs:
            raise MediaEngineError("leg not allocated by this focus")

    def _prebind(self) -> tuple[int, int] | None:
        try:
            return self.ports.prebind()
        except (MediaEngineError, OSError) as exc:  # port range exhausted: offer fewer pairs
            log.warning("event=mixer_ports_exhausted error=%r", str(exc)[:100])
            return None

    def _write(self, writer: asyncio.StreamWriter, msg: dict[str, Any]) -> None:
        if not writer.is_closing():
            writer.write(json.dumps(msg, separators=(",", ":")).encode() + b"\n")

    def _on_event(self, ev: MediaEvent) -> None:
        out = event_out(ev)
        if out is not None:
            for w in list(self._clients):
                self._write(w, out)
