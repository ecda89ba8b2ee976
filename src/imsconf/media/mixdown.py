"""One 20 ms tick: play-out of every mixed leg's jitter buffer (in C with the slot table, or in Python),
speaker choice and the common and N-1 mixes, prompts, then packetise, protect and send every leg's
packet (the C batch for legs with a connected socket) and each group epoch's streams, RTCP and DTMF ends."""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import Protocol

import numpy as np
import numpy.typing as npt

from .egress import PacketSink
from .events import (
    Datagram,
    DtmfReceived,
    SpeakingChanged,
)
from .fastpath import (
    FD,
)
from .legs import ENCODE_TABLES, Epoch, Leg, LegTable
from .mixer import FRAME_SAMPLES, decode_codes, encode_rows

QUIET_TICKS = 15  # 300 ms without being chosen: the leg no longer speaks (SpeakingChanged)


class TickSend(Protocol):
    """What the tick asks of the send side (:class:`~imsconf.media.egress.Egress` implements it)."""

    def send_packets(self, common: list[list[bytes]], direct: list[int] | None) -> list[Datagram]: ...

    def send_rtcp(self, leg: Leg, now: float, append: Callable[[Datagram], None]) -> None: ...


class PromptFrames(Protocol):
    """What the tick asks of the lobby (:class:`~imsconf.media.lobby.Lobby` implements it): this tick's
    frame for every leg in the lobby or hearing a prompt."""

    def play_prompts(self) -> None: ...


class WideTick(Protocol):
    """What the tick asks of the 16 kHz mix (:class:`~imsconf.media.wideband.WidebandMix` implements it)
    for the conferences with a non-G.711 leg, which the 8 kHz path leaves out."""

    def rebuild(self, legs: list[Leg]) -> None: ...

    def mix(self, now: float) -> list[Leg]: ...

    def send_tick(self, direct: list[int] | None, append: Callable[[Datagram], None]) -> None: ...


class Mixdown:
    """The tick: a part of the engine over the shared leg table, sending through the :class:`TickSend`
    port and asking the :class:`PromptFrames` port for prompt frames."""

    def __init__(self, table: LegTable, egress: TickSend, prompts: PromptFrames, wide: WideTick) -> None:
        self.table = table
        self.egress = egress
        self.prompts = prompts
        self.wide = wide

    def rebuild(self) -> None:
        """Rebuild the lists the tick works from (the legs in conference order, the mixing and sending
        legs, the C batch's slots, the live epochs and their listeners, the prompt legs)."""
        t = self.table
        order = sorted(
            (leg for leg in t.leg_map.values() if leg.rx is not None),
            key=lambda leg: leg.conference_id,
        )
        wide_confs = {leg.conference_id for leg in order if leg.wb is not None}
        if wide_confs:  # conferences with a codec leg mix at 16 kHz (imsconf.media.wideband)
            t.wide_order = [leg for leg in order if leg.conference_id in wide_confs]
            order = [leg for leg in order if leg.conference_id not in wide_confs]
            for leg in t.wide_order:
                leg.mix_pos = -1
                if leg.group is not None:
                    leg.group.live = False
        else:
            t.wide_order = []
        self.wide.rebuild(t.wide_order)
        conf_ids: dict[str, int] = {}
        for leg in order:
            leg.conf_idx = conf_ids.setdefault(leg.conference_id, len(conf_ids))
            leg.mix_pos = -1
        t.order = order
        mixing = t.mixing = [leg for leg in order if leg.mixes_in]
        sending: list[Leg] = []
        live: list[Epoch] = []
        for st in t.conf_map.values():
            for ep in st.epochs.values():
                ep.listeners = []
        tick = t.ticks
        group_effective = t.group_effective
        for leg in order:
            a = leg.group
            if a is not None:
                a.stream = None  # the epoch's own stream (a codec group's is the 16 kHz mix's)
                a.live = leg.sends and group_effective(leg, a)
                if a.live:
                    if leg.group_ticks.live_from < 0:
                        leg.group_ticks.live_from = tick
                    if not a.ep.listeners:
                        live.append(a.ep)
                    a.ep.listeners.append(leg)
                    if not a.keep_own:
                        continue
            if leg.group_ticks.live_from >= 0 and (a is None or not a.live):
                leg.group_ticks.before += tick - leg.group_ticks.live_from
                leg.group_ticks.live_from = -1
            if leg.sends:
                sending.append(leg)
        for ep in live:
            ep.sends = [leg.send for leg in ep.listeners]
            ep.all_direct = all(send is not None for send in ep.sends)
        t.sending = sending
        if t.c_path:
            fds = t.slots.tab[:, FD]
            t.c_legs = [leg for leg in sending if leg.send is not None and fds[leg.slot] >= 0]
            t.py_sending = [leg for leg in sending if leg.send is None or fds[leg.slot] < 0]
        else:
            t.c_legs, t.py_sending = [], sending
        t.c_slots = np.array([leg.slot for leg in t.c_legs], dtype=np.int64)
        t.group_live = live
        t.prompting = [
            leg
            for legs in (order, t.wide_order)
            for leg in legs
            if leg.lobby or leg.prompt is not None or leg.deaf
        ]
        for i, leg in enumerate(mixing):
            leg.mix_pos = i
        t.mix_slots = np.array([leg.slot for leg in mixing], dtype=np.int64)
        if len(t.pop_gain) < len(mixing):
            size = max(64, 2 * len(mixing))
            t.pop_out = np.zeros((size, FRAME_SAMPLES), dtype=np.uint8)
            t.pop_gain = np.zeros(size, dtype=np.float64)
            t.pop_index = np.zeros(size, dtype=np.int64)
        t.mix_conf = np.array([leg.conf_idx for leg in mixing], dtype=np.intp)
        t.n_conf = len(conf_ids)
        t.codecs_used = sorted({leg.codec_id for leg in order})
        t.mixed_codecs = len(t.codecs_used) > 1
        t.dirty = False

    # ------------------------------------------------------------------------------ tick

    def tick(self, now: float) -> list[Datagram]:
        """Play out one 20 ms frame per input, mix, and return the datagrams to send."""
        return self.run_tick(now, None)

    def tick_send(self, now: float, sink: PacketSink) -> tuple[int, int]:
        """:meth:`tick`, sending: a leg with a send function (:meth:`~imsconf.media.egress.Egress.set_send`)
        gets its RTP packet through it (or through the C batch), every other datagram (RTCP, legs
        without one) goes to ``sink``. Returns the numbers of packets dropped (a full socket buffer)
        and refused (other socket errors), the sink's included."""
        errors = [0, 0]
        rest = self.run_tick(now, errors)
        dropped, refused = sink.send_datagrams(rest) if rest else (0, 0)
        return errors[0] + dropped, errors[1] + refused

    def run_tick(self, now: float, direct: list[int] | None) -> list[Datagram]:
        t = self.table
        if t.dirty:
            self.rebuild()
        t.ticks += 1
        mixing = t.mixing
        in_legs: list[Leg]
        if t.c_path:
            # Every mixed leg's jitter buffer plays out in C, straight into the mixer's input rows.
            m = t.slots.pop_all(t.mix_slots, now, t.pop_out, t.pop_gain, t.pop_index)
            codes = t.pop_out[:m]
            in_legs = [mixing[i] for i in t.pop_index[:m].tolist()]
            gains = t.pop_gain[:m]
            rows = np.flatnonzero(gains != 1.0)
            concealed = (rows, gains[rows]) if len(rows) else None
        else:
            payloads: list[bytes] = []
            in_legs = []
            fading: list[tuple[int, float]] = []
            for leg in mixing:
                jb = leg.jitter
                p = jb.pop_payload(now)
                if p is not None:
                    if len(p) != FRAME_SAMPLES:
                        p = (p + bytes([leg.codec.silence]) * FRAME_SAMPLES)[:FRAME_SAMPLES]
                    gain = jb.conceal_gain
                    if gain is not None:
                        fading.append((len(payloads), gain))
                    payloads.append(p)
                    in_legs.append(leg)
            codes = np.frombuffer(b"".join(payloads), dtype=np.uint8).reshape(-1, FRAME_SAMPLES)
            concealed = None
            if fading:
                concealed = (
                    np.fromiter((r for r, _ in fading), dtype=np.intp, count=len(fading)),
                    np.fromiter((g for _, g in fading), dtype=np.float64, count=len(fading)),
                )
        # Last tick's speakers (hysteresis), then forget their N-1 mixes.
        n_in = len(in_legs)
        speakers = t.speakers
        if n_in == len(mixing):
            prev = np.zeros(n_in, dtype=np.bool_)
            if speakers:
                prev[[leg.mix_pos for leg in speakers if leg.mix_pos >= 0]] = True
        else:
            prev = np.fromiter((leg.speaker for leg in in_legs), dtype=np.bool_, count=n_in)
        for leg in speakers:
            leg.speaker = False
            leg.mix_payload = None
        t.speakers = []
        wide = t.wide_order
        wide_speakers = self.wide.mix(now) if wide else []
        common = self.mix_frames(codes, in_legs, concealed, prev, wide_speakers)
        if t.prompting:
            self.prompts.play_prompts()
        egress = self.egress
        out = egress.send_packets(common, direct)
        append = out.append
        if wide:
            self.wide.send_tick(direct, append)
        due = t.rtcp_due
        while due and due[0][0] <= now:
            at, _, leg = heapq.heappop(due)
            if at == leg.rtcp.next_at and leg.rx is not None and t.leg_map.get(leg.leg_id) is leg:
                egress.send_rtcp(leg, now, append)
        if t.dtmf_active:
            for leg in list(t.dtmf_active):
                for ev in leg.dtmf.poll(now):
                    leg.c.dtmf_events += 1
                    t.pending_events.append(DtmfReceived(leg.leg_id, leg.conference_id, ev))
                if not leg.dtmf.active:
                    t.dtmf_active.discard(leg)
        return out

    def mix_frames(
        self,
        codes: npt.NDArray[np.uint8],
        in_legs: list[Leg],
        concealed: tuple[npt.NDArray[np.intp], npt.NDArray[np.float64]] | None,
        prev: npt.NDArray[np.bool_],
        wide_speakers: list[Leg] | None = None,
    ) -> list[list[bytes]]:
        """Mix the (M, 160) G.711 input rows (concealed rows: (row indices, gains)); mark speakers with
        their N-1 payload; return the common payload per [codec][conference]."""
        t = self.table
        mixed_codecs = t.mixed_codecs
        codec_ids = None
        if mixed_codecs and len(in_legs):
            codec_ids = np.fromiter((leg.codec_id for leg in in_legs), dtype=np.intp, count=len(in_legs))
        frames = decode_codes(codes, codec_ids)
        if concealed is not None:
            rows, gains = concealed
            frames[rows] = (frames[rows] * gains.astype(np.float32)[:, None]).astype(np.int32)
        n = len(in_legs)
        if n == len(t.mixing):
            conf_index = t.mix_conf
        else:
            conf_index = np.fromiter((leg.conf_idx for leg in in_legs), dtype=np.intp, count=n)
        res = t.mixer.mix(frames, conf_index, max(t.n_conf, 1), prev)
        common: list[list[bytes]] = [[], []]
        tables = ENCODE_TABLES
        for cid in t.codecs_used:
            common[cid] = encode_rows(res.common, tables[cid])
        speakers = [in_legs[i] for i in res.speakers.tolist()]
        if speakers:
            if mixed_codecs:
                for leg, row in zip(speakers, res.speaker_mix, strict=True):
                    leg.mix_payload = encode_rows(row[None, :], tables[leg.codec_id])[0]
            else:
                encoded = encode_rows(res.speaker_mix, tables[speakers[0].codec_id])
                for leg, enc in zip(speakers, encoded, strict=True):
                    leg.mix_payload = enc
        tick = t.ticks
        talking = t.talking
        chosen_talking = 0  # talking legs chosen this tick: when that is all of them, none goes quiet
        chosen = speakers + wide_speakers if wide_speakers else speakers
        if chosen:
            before = tick - 1
            for leg in chosen:
                leg.speaker = True
                if leg.speaking:
                    chosen_talking += 1
                elif leg.chosen_tick == before:  # chosen on two consecutive ticks: it speaks
                    leg.speaking = True
                    talking.add(leg)
                    chosen_talking += 1
                    t.pending_events.append(SpeakingChanged(leg.leg_id, leg.conference_id, True))
                leg.chosen_tick = tick
        t.speakers = speakers
        if len(talking) > chosen_talking:
            self.quiet(tick)
        return common

    def quiet(self, tick: int) -> None:
        """Legs reported speaking that were not chosen for :data:`QUIET_TICKS` ticks stop speaking."""
        t = self.table
        gone = [leg for leg in t.talking if tick - leg.chosen_tick >= QUIET_TICKS]
        for leg in gone:
            leg.speaking = False
            t.talking.discard(leg)
            t.pending_events.append(SpeakingChanged(leg.leg_id, leg.conference_id, False))
