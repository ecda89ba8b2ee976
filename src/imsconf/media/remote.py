"""The MRFC→MRFP control channel when the mixer runs in its own process (``imsconf mixer``).

One TLS connection, both sides presenting certificates from the conference CA (mutual TLS; anything else is
refused at the handshake).  Newline-delimited JSON messages:

* focus → mixer: commands ``{"op": ..., "args": {...}}``, pipelined, applied in order, never answered
  unless they fail (``{"error": ..., "op": ..., "leg": ...}`` comes back);
* mixer → focus: ``{"hello": {...}}`` once, ``{"pool": [[rtp, rtcp], ...]}`` (pre-bound port pairs the focus
  may hand out), and media events (``{"event": "dtmf", ...}``, ``group_confirmed``, ``group_failing``,
  ``prompt_finished``, ``inbound_key_confirmed``, ``source_latched``, ``speaking``).

Every :class:`MediaControl` operation has its op: ``allocate_leg``, ``configure_leg``, ``update_leg``,
``release_leg``, ``release_conference``, ``set_downlink_mode``, ``add_group_epoch`` (the group key as
``{"suite", "inline"}`` like the leg keys; the mixer wipes its copy once the SRTP context exists),
``retire_group_epoch``, ``set_listener_stream``, ``set_floor_control``, ``set_floor_holders``, ``set_lobby``,
``play_prompt``, ``set_leg_mix``.

Figures: the mixer's answer to each heartbeat ping carries its :class:`MixerStats`
(``{"pong": {"stats": {...}}}``); :meth:`RemoteMediaControl.mixer_stats` returns the last ones (at most
about a second old while the link is up). ``leg_stats`` asks the mixer (``{"op": "leg_stats"}``, answered
``{"leg_stats": {"leg": ..., "stats": {...}}}``) and returns the figures of the previous answer.

Pre-bound pairs keep :class:`MediaControl` synchronous for the focus: ``allocate_leg`` takes a pair from the
pool at once and the command follows on the ordered stream.  SRTP keys cross only this channel (base64 in
JSON inside TLS); nothing here logs them.

Heartbeat: the focus sends ``{"op": "ping"}`` every second and the mixer answers ``{"pong": {...}}``; the
focus counts any message as a sign of life (:mod:`.link`).

This module is the focus side (:class:`RemoteMediaControl`); the mixer side is :mod:`.mixer_server`, the
values on the wire are in :mod:`.wire`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
from collections import deque
from typing import Any

from imsconf.keys.policy import DownlinkMode
from imsconf.sdp.direction import Direction

from .control import EventSink, LegPorts
from .engine import KEEP, Addr, Keep, LegStats, MediaEngineError
from .events import MixerLost, MixerReady, MixerStats
from .link import LinkAction, MixerLink
from .srtp import SrtpKeys
from .video_remote import RemoteVideoControl
from .wire import MAX_LINE, event_in, keys_out, leg_stats_in, mixer_stats_in, params_out

__all__ = ["RemoteMediaControl"]

log = logging.getLogger("imsconf.mixer")

# the ops about one audio leg made earlier by allocate_leg
_LEG_OPS = frozenset(
    {
        "configure_leg",
        "update_leg",
        "release_leg",
        "set_listener_stream",
        "set_lobby",
        "play_prompt",
        "set_leg_mix",
        "leg_stats",
    }
)


class RemoteMediaControl(RemoteVideoControl):
    """:class:`MediaControl` over the mutual-TLS channel to an ``imsconf mixer`` process.

    :meth:`connect` makes one attempt; :meth:`keep_connected` keeps the link up from then on (or from the
    start, when the mixer is not there yet): the decisions are :class:`~.link.MixerLink`'s (heartbeat,
    capped exponential backoff), this class does the I/O.  A loss is logged (``event=mixer_lost``), forgets
    every leg and pre-bound pair of that mixer and reaches the focus as :class:`MixerLost`; a connection as
    :class:`MixerReady` (``event=mixer_connected``), after the conference settings that live only here (floor
    control, floor holders) were replayed to the new mixer.
    """

    def __init__(self, link: MixerLink | None = None) -> None:
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._wakeup: asyncio.Event | None = None
        self._pool: deque[tuple[int, int]] = deque()
        self._host = ""
        self._legs: dict[str, tuple[str, int, int]] = {}  # leg -> (conference, rtp, rtcp pair)
        self._sink: EventSink | None = None
        self._floor_control: dict[str, bool] = {}  # conference settings replayed to a new mixer
        self._floor_holders: dict[str, list[str]] = {}
        self._hello = False
        self._closing = False
        self._mixer_stats = MixerStats()  # the last figures the mixer sent (with its heartbeat answer)
        self._leg_stats: dict[str, LegStats] = {}  # the last figures per leg (answers to leg_stats)
        self.link = link if link is not None else MixerLink()
        self.target = ""  # "host:port", for the log
        self.errors: list[dict[str, Any]] = []
        self.connected = asyncio.Event()

    @property
    def ready(self) -> bool:
        """Connected to a mixer that can take legs now."""
        return self.connected.is_set()

    async def connect(self, host: str, port: int, ctx: ssl.SSLContext, timeout: float = 10.0) -> None:
        """One connection attempt; raises OSError (``ssl.SSLError`` when the handshake is refused) or
        TimeoutError.  :meth:`keep_connected` makes the next ones."""
        loop = asyncio.get_running_loop()
        self.target = f"{host}:{port}"
        self.link.attempting(loop.time())
        try:
            await self._open(host, port, ctx, timeout)
        except (OSError, TimeoutError):
            self.link.attempt_failed(loop.time())
            raise

    def keep_connected(self, host: str, port: int, ctx: ssl.SSLContext, timeout: float = 5.0) -> None:
        """Reconnect whenever the link is down, and watch it with heartbeats while it is up."""
        if self._supervisor is None:
            self.target = f"{host}:{port}"
            self._wakeup = asyncio.Event()
            self._supervisor = asyncio.get_running_loop().create_task(
                self._supervise(host, port, ctx, timeout)
            )

    async def close(self) -> None:
        self._closing = True
        for task in (self._supervisor, self._reader_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._supervisor = self._reader_task = None
        await self._close_writer()

    async def _close_writer(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1.0)

    async def _open(self, host: str, port: int, ctx: ssl.SSLContext, timeout: float) -> None:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=ctx, server_hostname=host, limit=MAX_LINE), timeout
        )
        self._writer = writer
        self._hello = False
        reading = self._reader_task = asyncio.get_running_loop().create_task(self._read(reader))
        waiting = asyncio.get_running_loop().create_task(self.connected.wait())
        try:
            await asyncio.wait({reading, waiting}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiting.cancel()
        if not self.connected.is_set():
            reading.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reading
            await self._close_writer()
            raise ConnectionError("the mixer closed the channel before its hello")

    async def _supervise(self, host: str, port: int, ctx: ssl.SSLContext, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        assert self._wakeup is not None
        while True:
            for action in self.link.poll(loop.time()):
                if action is LinkAction.CONNECT:
                    self.link.attempting(loop.time())
                    try:
                        await self._open(host, port, ctx, timeout)
                    except (OSError, TimeoutError) as exc:
                        delay = self.link.attempt_failed(loop.time())
                        log.log(
                            # the first failure, then about once a minute at the 5 s cap
                            logging.WARNING if self.link.attempts % 12 == 1 else logging.DEBUG,
                            "event=mixer_unreachable mixer=%s attempt=%d retry_in=%.1f error=%s",
                            self.target,
                            self.link.attempts,
                            delay,
                            exc.__class__.__name__,
                        )
                elif action is LinkAction.PING:
                    self._write_line({"op": "ping", "args": {}})
                else:  # DROP: silent past the heartbeat timeout (the link is already down)
                    if self._reader_task is not None:
                        self._reader_task.cancel()
                    self._gone(f"no heartbeat for {self.link.heartbeat.timeout:g} s", already_down=True)
            deadline = self.link.next_deadline()
            self._wakeup.clear()
            wait = None if deadline is None else max(0.0, deadline - loop.time())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), wait)

    def _wake(self) -> None:
        if self._wakeup is not None:
            self._wakeup.set()

    async def _read(self, reader: asyncio.StreamReader) -> None:
        loop = asyncio.get_running_loop()
        reason = "closed by the mixer"
        try:
            while line := await reader.readline():
                msg = json.loads(line)
                if self._hello:
                    self.link.received(loop.time())
                if "hello" in msg:
                    self._host = str(msg["hello"]["host"])
                    self._hello = True
                elif "pool" in msg:
                    self._pool.extend((int(a), int(b)) for a, b in msg["pool"])
                    if self._hello and not self.connected.is_set():
                        self._up(loop.time())
                elif "pong" in msg or "leg_stats" in msg:
                    self._figures(msg)
                elif "error" in msg:
                    self.errors.append(msg)
                    log.warning(
                        "event=mixer_error op=%s leg=%s error=%r", msg.get("op"), msg.get("leg"), msg["error"]
                    )
                elif "event" in msg and self._sink is not None:
                    ev = event_in(msg)
                    if ev is not None:
                        self._sink(ev)
        except (ConnectionError, ssl.SSLError, ValueError, asyncio.IncompleteReadError) as exc:
            reason = exc.__class__.__name__
        if not self._closing:
            self._gone(reason, already_down=False)

    def _figures(self, msg: dict[str, Any]) -> None:
        try:
            if "pong" in msg:
                stats = msg["pong"].get("stats")
                if stats is not None:
                    self._mixer_stats = mixer_stats_in(stats)
            else:
                answer = msg["leg_stats"]
                leg = str(answer["leg"])
                if leg in self._legs:
                    self._leg_stats[leg] = leg_stats_in(answer["stats"])
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            log.warning("event=mixer_bad_figures error=%s", exc.__class__.__name__)

    def _up(self, now: float) -> None:
        """The hello and the first pre-bound pairs arrived: replay the conference settings, tell the focus."""
        generation = self.link.connected(now)
        self.connected.set()
        for conf, enabled in self._floor_control.items():
            self._write_line({"op": "set_floor_control", "args": {"conf": conf, "enabled": enabled}})
        for conf, holders in self._floor_holders.items():
            self._write_line({"op": "set_floor_holders", "args": {"conf": conf, "legs": holders}})
        log.info(
            "event=mixer_connected mixer=%s generation=%d ready=true pool=%d",
            self.target,
            generation,
            len(self._pool),
        )
        self._wake()
        if self._sink is not None:
            self._sink(MixerReady(generation))

    def _gone(self, reason: str, *, already_down: bool) -> None:
        """The channel is gone: its legs and pairs with it; the focus hears of it once."""
        was_up = self.connected.is_set()
        self.connected.clear()
        self._hello = False
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()
        self._pool.clear()
        self._legs.clear()
        self._leg_stats.clear()
        self._mixer_stats = MixerStats()
        self.forget_video_legs()
        if not was_up:
            return  # an attempt that failed before the hello: the supervisor counts it
        if not already_down:
            self.link.lost(asyncio.get_running_loop().time())
        log.warning("event=mixer_lost mixer=%s reason=%r ready=false", self.target, reason)
        self._wake()
        if self._sink is not None:
            self._sink(MixerLost(reason))

    def _write_line(self, msg: dict[str, Any]) -> None:
        writer = self._writer
        if writer is not None and not writer.is_closing():
            writer.write(json.dumps(msg, separators=(",", ":")).encode() + b"\n")

    def _send(self, op: str, **args: Any) -> None:
        if self._writer is None or not self.connected.is_set():
            if op in ("allocate_leg", "allocate_video"):
                raise MediaEngineError("the mixer is not connected")
            return  # the mixer is gone and its state with it: what is made again goes to the next one
        leg = args.get("leg")
        if op in _LEG_OPS and leg not in self._legs:
            return  # a leg of an earlier mixer (made again on this one by imsconf.focus.recovery, or ending)
        self._write_line({"op": op, "args": args})

    # MediaControl
    def allocate_leg(self, conference_id: str, leg_id: str, rtcp_mux: bool) -> LegPorts:
        if leg_id in self._legs:
            raise MediaEngineError(f"leg {leg_id!r} exists")
        if not self.connected.is_set():
            raise MediaEngineError("the mixer is not connected")
        if not self._pool:
            raise MediaEngineError("the mixer has no free media ports")
        rtp, rtcp = self._pool.popleft()
        self._send("allocate_leg", conf=conference_id, leg=leg_id, mux=rtcp_mux, rtp=rtp, rtcp=rtcp)
        self._legs[leg_id] = (conference_id, rtp, rtcp)
        return LegPorts(self._host, rtp, rtp if rtcp_mux else rtcp)

    def configure_leg(
        self,
        leg_id: str,
        *,
        remote_rtp: Addr,
        remote_rtcp: Addr | None,
        codec_pt: int,
        codec_name: str,
        dtmf_pt: int | None,
        tx_keys: SrtpKeys | None,
        rx_keys: SrtpKeys | None,
        direction: Direction = Direction.SENDRECV,
        latch: bool = False,
        codec_clock: int = 8000,
        codec_params: tuple[tuple[str, str], ...] = (),
    ) -> None:
        self._send(
            "configure_leg",
            leg=leg_id,
            remote_rtp=list(remote_rtp),
            remote_rtcp=list(remote_rtcp) if remote_rtcp else None,
            codec_pt=codec_pt,
            codec_name=codec_name,
            dtmf_pt=dtmf_pt,
            tx_keys=keys_out(tx_keys),
            rx_keys=keys_out(rx_keys),
            direction=direction.value,
            latch=latch,
            codec_clock=codec_clock,
            codec_params=params_out(codec_params),
        )

    def update_leg(
        self,
        leg_id: str,
        *,
        remote_rtp: Addr | None = None,
        remote_rtcp: Addr | None = None,
        codec_pt: int | None = None,
        codec_name: str | None = None,
        dtmf_pt: int | Keep | None = KEEP,
        direction: Direction | None = None,
        tx_keys: SrtpKeys | Keep | None = KEEP,
        rx_keys: SrtpKeys | Keep | None = KEEP,
        codec_clock: int | None = None,
        codec_params: tuple[tuple[str, str], ...] | None = None,
    ) -> None:
        self._send(
            "update_leg",
            leg=leg_id,
            remote_rtp=list(remote_rtp) if remote_rtp else None,
            remote_rtcp=list(remote_rtcp) if remote_rtcp else None,
            codec_pt=codec_pt,
            codec_name=codec_name,
            dtmf_pt="keep" if isinstance(dtmf_pt, Keep) else dtmf_pt,
            direction=direction.value if direction is not None else None,
            tx_keys=keys_out(tx_keys),
            rx_keys=keys_out(rx_keys),
            codec_clock=codec_clock,
            codec_params=None if codec_params is None else params_out(codec_params),
        )

    def release_leg(self, leg_id: str) -> None:
        if leg_id in self._legs and self.connected.is_set():
            self._send("release_leg", leg=leg_id)
        self._legs.pop(leg_id, None)
        self._leg_stats.pop(leg_id, None)

    def release_conference(self, conference_id: str) -> None:
        for leg_id in [lid for lid, (conf, _, _) in self._legs.items() if conf == conference_id]:
            self.release_leg(leg_id)
        self._floor_control.pop(conference_id, None)
        self._floor_holders.pop(conference_id, None)
        if self.connected.is_set():
            self._send("release_conference", conf=conference_id)

    def leg_stats(self, leg_id: str) -> LegStats:
        """The figures of the mixer's answer to the previous call for this leg (each call asks again):
        MediaEngineError until one arrived, or when the leg is not on the connected mixer."""
        if leg_id not in self._legs:
            raise MediaEngineError(f"no leg {leg_id!r} on the mixer")
        self._send("leg_stats", leg=leg_id)
        stats = self._leg_stats.get(leg_id)
        if stats is None:
            raise MediaEngineError(f"no figures from the mixer for leg {leg_id!r} yet")
        return stats

    def mixer_stats(self) -> MixerStats:
        """The figures the mixer sent with its last heartbeat answer (zeros before the first)."""
        return self._mixer_stats

    def set_leg_mix(self, leg_id: str, *, muted: bool, deaf: bool) -> None:
        """Sent to the mixer (which answers an error for a leg it does not hold); like the other leg
        operations, a leg of an earlier mixer is skipped: the focus sets it again on the re-made leg."""
        self._send("set_leg_mix", leg=leg_id, muted=bool(muted), deaf=bool(deaf))

    def set_event_sink(self, sink: EventSink | None) -> None:
        self._sink = sink

    def set_downlink_mode(self, conference_id: str, mode: DownlinkMode) -> None:
        try:
            mode = DownlinkMode(mode)
        except ValueError:
            raise MediaEngineError(f"unknown downlink mode {mode!r}") from None
        self._send("set_downlink_mode", conf=conference_id, mode=mode.value)

    def add_group_epoch(
        self,
        conference_id: str,
        epoch: int,
        keys: SrtpKeys,
        ssrc: int,
        *,
        codec_name: str = "PCMU",
        codec_pt: int = 0,
    ) -> None:
        self._send(
            "add_group_epoch",
            conf=conference_id,
            epoch=epoch,
            keys=keys_out(keys),
            ssrc=ssrc,
            codec_name=codec_name,
            codec_pt=codec_pt,
        )

    def retire_group_epoch(self, conference_id: str, epoch: int) -> None:
        self._send("retire_group_epoch", conf=conference_id, epoch=epoch)

    def set_listener_stream(
        self, leg_id: str, epoch: int | None, *, speaker_ssrc: int | None = None, keep_own: bool = False
    ) -> None:
        self._send(
            "set_listener_stream", leg=leg_id, epoch=epoch, speaker_ssrc=speaker_ssrc, keep_own=keep_own
        )

    def set_floor_control(self, conference_id: str, enabled: bool) -> None:
        self._floor_control[conference_id] = bool(enabled)
        self._send("set_floor_control", conf=conference_id, enabled=bool(enabled))

    def set_floor_holders(self, conference_id: str, leg_ids: frozenset[str]) -> None:
        self._floor_holders[conference_id] = sorted(leg_ids)
        self._send("set_floor_holders", conf=conference_id, legs=sorted(leg_ids))

    def set_lobby(self, leg_id: str, in_lobby: bool) -> None:
        self._send("set_lobby", leg=leg_id, lobby=bool(in_lobby))

    def play_prompt(self, leg_id: str, name: str | None, loop: bool = True) -> None:
        self._send("play_prompt", leg=leg_id, name=name, loop=bool(loop))
