"""The 16 kHz mix: conferences with at least one leg on a non-G.711 codec (:mod:`imsconf.media.codec_port`).

A conference whose legs are all G.711 never comes here: it keeps the 8 kHz path of
:mod:`imsconf.media.mixdown` (and the C path). A conference with a codec leg is taken out of that path at
the tick's rebuild and mixed here, at 16 kHz (320 samples per tick), every such conference in one batch:

* play-out: each mixed leg's jitter buffer (Python: codec frames have any length). A G.711 leg is decoded
  with the engine's tables (a repeated frame fades as on the 8 kHz path); a codec leg's frame is decoded
  by its own :class:`~imsconf.media.codec_port.Codec`, a lost one concealed by the codec
  (``decode(None)``), and a frame it cannot decode is counted (``LegStats.corrupt``) and concealed;
* 8 kHz inputs (G.711, narrowband codecs) are upsampled with :mod:`imsconf.media.resample`, in one batch;
* speaker choice and the common and N-1 mixes: the same :class:`~imsconf.media.mixer.Mixer` as at 8 kHz;
* output: listeners that do not speak and share a codec (name, clock, format parameters) get one frame,
  encoded once per conference and tick by a codec instance the conference keeps for that group, as
  Asterisk shares one translation per write format; a speaker gets its own N-1 mix encoded by its own
  codec. 8 kHz listeners get the mix downsampled: once per conference for the common mix (the group's
  stream keeps the filter's history), per speaker for its N-1 mix (with the history of what it heard).

Prompts reach G.711 legs as on the 8 kHz path; a codec leg hears its prompt encoded by its own codec
(the prompt's 8 kHz frame, upsampled with the leg's own history for a 16 kHz codec), and silence in the
lobby or deaf.

Group downlink: a listener on a live epoch hears its codec group's common stream of the epoch
(:meth:`~imsconf.media.group_downlink.GroupDownlink.wide_stream`: the epoch's own stream for PCMU/0, one
per other codec group): the group's frame, encoded once, is protected once and the same bytes go to each
listener of the group. A speaker's N-1 mix, a prompt, or silence (lobby, deaf) goes on its private stream
under the epoch key; on probation (``keep_own``) its own stream is sent as well.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np
import numpy.typing as npt

from .codec_port import Codec, CodecError, CodecFactory
from .events import Datagram
from .legs import ENCODE_TABLES, SILENCE_FRAMES, Assign, Epoch, GroupStream, Leg, LegTable
from .mixer import FRAME_SAMPLES, decode_codes, encode_rows
from .resample import DOWN_HISTORY, UP_HISTORY, downsample2, upsample2

__all__ = ["WIDE_SAMPLES", "FrameSend", "WidebandMix"]

WIDE_SAMPLES = 2 * FRAME_SAMPLES  # 20 ms at 16 kHz
assert DOWN_HISTORY < WIDE_SAMPLES  # a stream's downsampling history lies within its last frame

Int16Array = npt.NDArray[np.int16]
Float32Array = npt.NDArray[np.float32]


class FrameSend(Protocol):
    """What the 16 kHz mix asks of the send side (:class:`~imsconf.media.egress.Egress` implements it)."""

    def send_frames(
        self,
        legs: list[Leg],
        payloads: list[bytes],
        direct: list[int] | None,
        append: Callable[[Datagram], None],
    ) -> None: ...


class WideGroup(Protocol):
    """What the 16 kHz mix asks of the group downlink (:class:`~imsconf.media.group_downlink.GroupDownlink`
    implements it): a listener's common stream of its epoch, and this tick's group streams sent."""

    def wide_stream(self, leg: Leg, a: Assign) -> GroupStream | None: ...

    def send_wide(
        self,
        commons: list[tuple[Epoch, GroupStream | None, bytes, list[Leg]]],
        private: list[tuple[Leg, bytes]],
        direct: list[int] | None,
        append: Callable[[Datagram], None],
    ) -> None: ...


class _LegState:
    """A leg's filter state in the 16 kHz mix."""

    __slots__ = ("heard", "in_tick", "prompt_up", "up")

    def __init__(self) -> None:
        self.up = np.zeros(UP_HISTORY, dtype=np.float32)  # its 8 kHz input's tail (upsampler)
        self.prompt_up = np.zeros(UP_HISTORY, dtype=np.float32)  # the 8 kHz prompt it hears: tail
        self.heard = np.zeros(DOWN_HISTORY, dtype=np.float32)  # the 16 kHz mix it heard as speaker: tail
        self.in_tick = -2  # the last tick its input was in the mix


class _ConfState:
    """A conference's state in the 16 kHz mix: the common mix's tail (for its downsampling) and one
    encoder per listener group."""

    __slots__ = ("common_tail", "encoders")

    def __init__(self) -> None:
        self.common_tail = np.zeros(DOWN_HISTORY, dtype=np.float32)
        self.encoders: dict[tuple[object, ...], Codec] = {}


class WidebandMix:
    """The 16 kHz mix of the conferences in ``table.wide_order``: a part of the engine over the shared
    leg table, sending through the :class:`FrameSend` port (own streams) and the :class:`WideGroup` port
    (group downlink streams); group encoders come from ``codecs``."""

    def __init__(self, table: LegTable, send: FrameSend, codecs: CodecFactory, group: WideGroup) -> None:
        self.table = table
        self.send = send
        self.codecs = codecs
        self.group = group
        self.legs: dict[Leg, _LegState] = {}
        self.confs: dict[str, _ConfState] = {}
        self.conf_ids: list[str] = []  # conference of each index (rebuilt)
        self.speakers: list[Leg] = []
        self.prev_speakers: set[Leg] = set()  # last tick's (the N-1 stream's downsampling history)
        self.common = np.zeros((0, WIDE_SAMPLES), dtype=np.int16)
        self.speaker_mix: dict[Leg, Int16Array] = {}

    def rebuild(self, legs: list[Leg]) -> None:
        """The legs of the 16 kHz conferences (configured, by conference): states made and dropped."""
        ids: dict[str, int] = {}
        t = self.table
        tick = t.ticks
        for leg in legs:
            leg.conf_idx = ids.setdefault(leg.conference_id, len(ids))
            if leg not in self.legs:
                self.legs[leg] = _LegState()
            a = leg.group
            gt = leg.group_ticks
            if a is not None:
                a.live = leg.sends and t.group_effective(leg, a)
                a.stream = self.group.wide_stream(leg, a) if a.live else None
                if a.live and gt.live_from < 0:
                    gt.live_from = tick
            if gt.live_from >= 0 and (a is None or not a.live):
                gt.before += tick - gt.live_from
                gt.live_from = -1
        keep = set(legs)
        for leg in [leg for leg in self.legs if leg not in keep]:
            del self.legs[leg]
        for cid in ids:
            if cid not in self.confs:
                self.confs[cid] = _ConfState()
        for cid in [cid for cid in self.confs if cid not in ids]:
            del self.confs[cid]
        self.conf_ids = list(ids)

    # ------------------------------------------------------------------------------ the tick

    def mix(self, now: float) -> list[Leg]:
        """Play out, decode, resample and mix every 16 kHz conference; returns this tick's speakers."""
        t = self.table
        tick = t.ticks
        for leg in self.speakers:
            leg.speaker = False
        self.prev_speakers = set(self.speakers)
        self.speaker_mix = {}
        n_conf = len(self.conf_ids)
        codes: list[bytes] = []
        narrow_legs: list[Leg] = []
        gains: list[float] = []
        narrow_pcm: list[Int16Array] = []
        narrow_pcm_legs: list[Leg] = []
        wide_pcm: list[Int16Array] = []
        wide_legs: list[Leg] = []
        for leg in t.wide_order:
            if not leg.mixes_in:
                continue
            jb = leg.jitter
            p = jb.pop_payload(now)
            wb = leg.wb
            if wb is None:
                if p is None:
                    continue
                if len(p) != FRAME_SAMPLES:
                    p = (p + bytes([leg.codec.silence]) * FRAME_SAMPLES)[:FRAME_SAMPLES]
                codes.append(p)
                narrow_legs.append(leg)
                gains.append(1.0 if jb.conceal_gain is None else jb.conceal_gain)
                continue
            if p is None:
                continue
            pcm = self.decode(leg, wb, None if jb.conceal_gain is not None else p)
            if wb.sample_rate == 16000:
                wide_pcm.append(pcm)
                wide_legs.append(leg)
            else:
                narrow_pcm.append(pcm)
                narrow_pcm_legs.append(leg)
        rows: list[npt.NDArray[np.int32]] = []
        in_legs: list[Leg] = []
        up_legs = narrow_legs + narrow_pcm_legs
        if up_legs:
            parts: list[npt.NDArray[np.float32]] = []
            if narrow_legs:
                mat = np.frombuffer(b"".join(codes), dtype=np.uint8).reshape(-1, FRAME_SAMPLES)
                ids = None
                if any(leg.codec_id for leg in narrow_legs):
                    ids = np.array([leg.codec_id for leg in narrow_legs], dtype=np.intp)
                dec = decode_codes(mat, ids)
                g = np.asarray(gains, dtype=np.float32)[:, None]
                parts.append(dec.astype(np.float32) * g)
            if narrow_pcm_legs:
                parts.append(np.stack(narrow_pcm).astype(np.float32))
            x = np.concatenate(parts) if len(parts) > 1 else parts[0]
            states = [self.legs[leg] for leg in up_legs]
            zero = np.zeros(UP_HISTORY, np.float32)
            hist = np.stack([st.up if st.in_tick == tick - 1 else zero for st in states])
            up = upsample2(x, hist)
            for st, h in zip(states, hist, strict=True):
                st.up = h
                st.in_tick = tick
            rows.append(np.clip(np.rint(up), -32768, 32767).astype(np.int32))
            in_legs.extend(up_legs)
        if wide_legs:
            rows.append(np.stack(wide_pcm).astype(np.int32))  # int16 PCM: nothing to round or clip
            in_legs.extend(wide_legs)
        m = len(in_legs)
        if m == 0:
            self.common = np.zeros((n_conf, WIDE_SAMPLES), dtype=np.int16)
            self.speakers = []
            return []
        frames = np.concatenate(rows) if len(rows) > 1 else rows[0]
        conf_index = np.fromiter((leg.conf_idx for leg in in_legs), dtype=np.intp, count=m)
        prev = np.fromiter((leg.chosen_tick == tick - 1 for leg in in_legs), dtype=np.bool_, count=m)
        res = t.mixer.mix(frames, conf_index, max(n_conf, 1), prev)
        self.common = res.common
        speakers = [in_legs[i] for i in res.speakers.tolist()]
        for leg, row in zip(speakers, res.speaker_mix, strict=True):
            leg.speaker = True
            self.speaker_mix[leg] = row
        self.speakers = speakers
        return speakers

    def decode(self, leg: Leg, wb: Codec, payload: bytes | None) -> Int16Array:
        """One frame of the leg's PCM: decoded, concealed by the codec, or (a corrupt frame) counted and
        concealed; always ``frame_samples`` long."""
        try:
            pcm, concealed = wb.decode(payload)
            if concealed and payload is not None:
                leg.corrupt += 1  # a frame it could not decode, concealed by the codec
        except (CodecError, ValueError):
            leg.corrupt += 1
            try:
                pcm, _ = wb.decode(None)
            except (CodecError, ValueError):
                pcm = np.zeros(wb.frame_samples, dtype=np.int16)
        n = wb.frame_samples
        if len(pcm) != n:
            pcm = np.resize(np.asarray(pcm, dtype=np.int16), n) if len(pcm) else np.zeros(n, dtype=np.int16)
        return pcm

    def send_tick(self, direct: list[int] | None, append: Callable[[Datagram], None]) -> None:
        """Encode and send every 16 kHz conference's frames of this tick."""
        t = self.table
        legs: list[Leg] = []
        payloads: list[bytes] = []
        shared: dict[tuple[int, tuple[object, ...]], bytes] = {}
        down_common: dict[int, Int16Array] = {}
        common = self.common
        per_leg = not t.wide_shared_encode
        streams: dict[tuple[Epoch, GroupStream | None], tuple[bytes, list[Leg]]] = {}
        private: list[tuple[Leg, bytes]] = []
        for leg in t.wide_order:
            if not leg.sends:
                continue
            a = leg.group
            if a is not None and a.live:
                if not (leg.speaker or leg.lobby or leg.deaf or leg.prompt is not None):
                    key = (leg.conf_idx, leg.enc_key)
                    got = shared.get(key)
                    if got is None:
                        got = shared[key] = self.encode_group(leg, down_common)
                    entry = streams.get((a.ep, a.stream))
                    if entry is None:
                        streams[(a.ep, a.stream)] = (got, [leg])
                    else:
                        entry[1].append(leg)
                    if a.keep_own:  # probation: its own stream too
                        legs.append(leg)
                        payloads.append(got)
                    continue
                payload = self.own_frame(leg, common, shared, down_common, per_leg)
                private.append((leg, payload))  # a speaker's N-1 mix, a prompt or silence
                if a.keep_own:
                    legs.append(leg)
                    payloads.append(payload)
                continue
            legs.append(leg)
            payloads.append(self.own_frame(leg, common, shared, down_common, per_leg))
        # A downsampler's history is the last DOWN_HISTORY samples of what the stream carried, all of them
        # in this tick's frame (DOWN_HISTORY < WIDE_SAMPLES): one slice for every conference at once.
        confs = self.confs
        tails = common[:, -DOWN_HISTORY:].astype(np.float32)
        have = len(tails)
        for ci, cid in enumerate(self.conf_ids):
            confs[cid].common_tail = tails[ci] if ci < have else np.zeros(DOWN_HISTORY, np.float32)
        states = self.legs
        speaker_mix = self.speaker_mix
        for leg in self.speakers:
            states[leg].heard = speaker_mix[leg][-DOWN_HISTORY:].astype(np.float32)
        if legs:
            self.send.send_frames(legs, payloads, direct, append)
        if streams or private:
            commons = [(ep, gs, got, ls) for (ep, gs), (got, ls) in streams.items()]
            self.group.send_wide(commons, private, direct, append)

    def own_frame(
        self,
        leg: Leg,
        common: Int16Array,
        shared: dict[tuple[int, tuple[object, ...]], bytes],
        down_common: dict[int, Int16Array],
        per_leg: bool,
    ) -> bytes:
        """This tick's frame for *leg*: its prompt, silence, its N-1 mix, or its listener group's frame."""
        wb = leg.wb
        payload = leg.mix_payload if wb is None else None  # a G.711 leg's prompt or silence
        if payload is not None:
            return payload
        if leg.prompt is not None and wb is not None:
            return self.prompt_frame(leg, wb)
        if leg.lobby or leg.deaf or leg.prompt is not None:
            return self.silence(leg)
        if leg.speaker:
            return self.encode_own(leg, self.speaker_mix[leg])
        if per_leg and wb is not None:
            return self.encode_own(leg, common[leg.conf_idx])
        key = (leg.conf_idx, leg.enc_key)
        got = shared.get(key)
        if got is None:
            got = shared[key] = self.encode_group(leg, down_common)
        return got

    def silence(self, leg: Leg) -> bytes:
        wb = leg.wb
        if wb is None:
            return SILENCE_FRAMES[leg.codec_id]
        return wb.encode(np.zeros(wb.frame_samples, dtype=np.int16))

    def prompt_frame(self, leg: Leg, wb: Codec) -> bytes:
        """This tick's frame of the leg's prompt (the one the lobby part just stepped past), by its codec."""
        play = leg.prompt
        assert play is not None
        i = max(play.pos - 1, 0) * FRAME_SAMPLES
        pcm8 = play.prompt.pcm[i : i + FRAME_SAMPLES]
        if wb.sample_rate == 8000:
            return wb.encode(pcm8)
        up = upsample2(pcm8.astype(np.float32)[None, :], self.legs[leg].prompt_up[None, :])[0]
        return wb.encode(np.clip(np.rint(up), -32768, 32767).astype(np.int16))

    def encode_own(self, leg: Leg, mix16: Int16Array) -> bytes:
        """A speaker's N-1 mix (or, for comparison, a listener's common mix) by the leg's own codec."""
        wb = leg.wb
        if wb is not None and wb.sample_rate == 16000:
            return wb.encode(mix16)
        st = self.legs[leg]
        hist = st.heard if leg in self.prev_speakers else self.confs[leg.conference_id].common_tail
        down = self.down(mix16[None, :], hist[None, :])[0]
        if wb is not None:
            return wb.encode(down)
        return encode_rows(down[None, :], ENCODE_TABLES[leg.codec_id])[0]

    def encode_group(self, leg: Leg, down_common: dict[int, Int16Array]) -> bytes:
        """The frame of the leg's listener group (its conference, its codec): encoded once per tick."""
        ci = leg.conf_idx
        wb = leg.wb
        mix16 = self.common[ci]
        if wb is None or wb.sample_rate == 8000:
            down = down_common.get(ci)
            if down is None:
                tail = self.confs[leg.conference_id].common_tail
                down = down_common[ci] = self.down(mix16[None, :], tail[None, :])[0]
            if wb is None:
                return encode_rows(down[None, :], ENCODE_TABLES[leg.codec_id])[0]
            return self.group_encoder(leg, wb).encode(down)
        return self.group_encoder(leg, wb).encode(mix16)

    def group_encoder(self, leg: Leg, wb: Codec) -> Codec:
        encoders = self.confs[leg.conference_id].encoders
        enc = encoders.get(leg.enc_key)
        if enc is None:
            name, clock, params = leg.enc_key
            assert isinstance(name, str) and isinstance(clock, int) and isinstance(params, tuple)
            try:
                enc = self.codecs(name, clock, dict(params))
            except CodecError:
                enc = wb  # cannot happen for a codec the leg has; its own instance then
            encoders[leg.enc_key] = enc
        return enc

    @staticmethod
    def down(mix16: Int16Array, hist: Float32Array) -> Int16Array:
        out = downsample2(mix16.astype(np.float32), hist)
        return np.clip(np.rint(out), -32768, 32767).astype(np.int16)
