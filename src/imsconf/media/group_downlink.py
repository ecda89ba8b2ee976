"""Group downlink epochs: per conference a downlink mode; in group mode the key manager's epochs (a key and
a fresh SSRC each), the listeners on them, the common packet protected once per epoch and tick, the
listeners' private streams, and the receiver-report evidence that a phone took the epoch key.

In a conference mixed at 16 kHz (:mod:`imsconf.media.wideband`) an epoch has one common stream per
listener codec group: the epoch's own (PCMU/0 listeners, the same SSRC, sequence and timestamp as at
8 kHz, so they notice no change of mix) and one :class:`~imsconf.media.legs.GroupStream` per other
(payload type, codec, clock, format parameters), made when its first listener is seen, on an SSRC the
engine draws (new to the conference, never reused), under the same epoch key: distinct SSRCs keep the
SRTP keystreams apart (RFC 3711 §9.1), as for the private streams. Each is encoded once (the 16 kHz
mix's group frame) and protected once per tick."""

from __future__ import annotations

from collections.abc import Callable

from imsconf.keys.policy import DownlinkMode

from .events import (
    Datagram,
    GroupEpochStats,
    GroupStreamConfirmed,
    GroupStreamFailing,
    LegConfig,
    MediaEngineError,
)
from .g711 import codec_by_name
from .legs import HDR, TS_MASK, Assign, Epoch, GroupStream, Leg, LegTable
from .mixer import CODEC_IDS, FRAME_SAMPLES
from .rtp import (
    ReportBlock,
)
from .srtp import (
    SrtpKeys,
    SrtpSender,
    srtp_lib,
)


class GroupDownlink:
    """Group downlink epochs: a part of the engine that holds the leg table it works on (events go to
    the table's queue). :class:`~imsconf.media.engine.MediaEngine` delegates to it; the receive side
    hands it receiver-report evidence and the send side calls :meth:`send_group` once per live epoch and
    tick."""

    def __init__(self, table: LegTable) -> None:
        self.table = table

    def set_downlink_mode(self, conference_id: str, mode: DownlinkMode) -> None:
        """``per-participant`` (the default: every leg its own stream under its own key) or ``group``
        (listeners may be put on a common stream per epoch). Going back to ``per-participant`` retires
        every epoch of the conference (its listeners return to their own streams)."""
        try:
            mode = DownlinkMode(mode)
        except ValueError:
            raise MediaEngineError(f"unknown downlink mode {mode!r}") from None
        st = self.table.conf_settings(conference_id)
        if mode is DownlinkMode.PER_PARTICIPANT:
            for epoch in list(st.epochs):
                self.retire_group_epoch(conference_id, epoch)
        st.mode = mode

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
        """Create the common listener stream of ``epoch``: SRTP under ``keys`` (the engine keeps only the
        libsrtp context: the caller may wipe ``keys``), SSRC ``ssrc``, random sequence and timestamp
        origins, ``codec_name``/``codec_pt`` for every packet (listeners must have negotiated the same).
        Nobody receives it until :meth:`set_listener_stream`. An epoch number or an SSRC that this
        conference has used before is refused (one (key, SSRC) pair, one packet sequence)."""
        st = self.table.conf_settings(conference_id)
        if st.mode is not DownlinkMode.GROUP:
            raise MediaEngineError(f"conference {conference_id!r} is not in group downlink mode")
        if epoch in st.used_epochs:
            raise MediaEngineError(f"epoch {epoch} of {conference_id!r} exists or existed")
        self.table.check_new_ssrc(st, ssrc)
        if keys.wiped:
            raise MediaEngineError("the epoch keys were wiped")
        codec = codec_by_name(codec_name)
        LegConfig(("0.0.0.0", 9), None, codec_pt, codec_name)  # validates the payload type
        ep = Epoch(conference_id, epoch, ssrc, SrtpSender(keys), CODEC_IDS[codec.name], codec_pt)
        ep.seq = self.table.rng.randrange(1 << 16)
        ep.ts0 = (self.table.rng.randrange(1 << 32) - FRAME_SAMPLES * self.table.ticks) & TS_MASK
        st.epochs[epoch] = ep
        st.used_epochs.add(epoch)
        st.used_ssrcs.add(ssrc)
        self.table.ssrcs_in_use.add(ssrc)
        self.table.burned_ssrcs.add(ssrc)

    def retire_group_epoch(self, conference_id: str, epoch: int) -> None:
        """Stop the epoch's streams and drop its SRTP context (libsrtp zeroes its key schedule when the
        context is deallocated, which happens here: the engine holds the only reference). Legs still
        on it fall back to their own per-participant streams."""
        st = self.table.conf_map.get(conference_id)
        ep = None if st is None else st.epochs.pop(epoch, None)
        if ep is None:
            raise MediaEngineError(f"no live epoch {epoch} in {conference_id!r}")
        for leg in self.table.leg_map.values():
            if leg.group is not None and leg.group.ep is ep:
                self.table.ssrcs_in_use.discard(leg.group.pssrc)
                leg.group = None
        self.table.ssrcs_in_use.discard(ep.ssrc)
        for gs in ep.streams.values():
            self.table.ssrcs_in_use.discard(gs.ssrc)
            gs.listeners = []
        ep.streams = {}
        ep.listeners = []
        ep.handle = None
        ep.tx = None
        self.table.dirty = True

    def set_listener_stream(
        self,
        leg_id: str,
        epoch: int | None,
        *,
        speaker_ssrc: int | None = None,
        keep_own: bool = False,
    ) -> None:
        """Choose what a leg hears its conference on, from the next tick:

        * ``None``: its own per-participant stream (own transmit key, own SSRC), as in per-participant
          mode;
        * an epoch: the epoch's common stream, the same packet as every other listener on it, while it
          is not a speaker; while it is one (or hears a prompt) its private stream: its N-1 mix under the
          *epoch key* on ``speaker_ssrc`` (chosen by the engine when ``None``; it must be new to the
          conference). Calling again with the same epoch keeps the private stream and changes
          ``keep_own`` only.

        ``keep_own=True`` (probation) also keeps its own stream going, so a phone that did not take the
        epoch key is never deaf; evidence arrives as :class:`GroupStreamConfirmed` /
        :class:`GroupStreamFailing`. A leg in the lobby, or whose codec/payload type differs from the
        epoch's, stays on its own stream while that lasts."""
        leg = self.table.get_leg(leg_id)
        old = leg.group
        if epoch is None:
            if old is not None:
                self.table.ssrcs_in_use.discard(old.pssrc)
                leg.group = None
                self.table.dirty = True
            return
        st = self.table.conf_map.get(leg.conference_id)
        ep = None if st is None else st.epochs.get(epoch)
        if st is None or ep is None:
            raise MediaEngineError(f"no live epoch {epoch} in {leg.conference_id!r}")
        if (
            leg.rx is not None
            and leg.wb is None
            and (leg.codec_id != ep.codec_id or leg.codec_pt != ep.codec_pt)
        ):
            raise MediaEngineError(f"leg {leg_id!r} does not use the codec of epoch {epoch}'s stream")
        if old is not None and old.ep is ep and speaker_ssrc in (None, old.pssrc):
            old.keep_own = keep_own
            self.table.dirty = True
            return
        if speaker_ssrc is None:
            speaker_ssrc = self.table.new_ssrc()
            self.table.ssrcs_in_use.discard(speaker_ssrc)
        self.table.check_new_ssrc(st, speaker_ssrc)
        if old is not None:
            self.table.ssrcs_in_use.discard(old.pssrc)
        pts0 = (self.table.rng.randrange(1 << 32) - FRAME_SAMPLES * self.table.ticks) & TS_MASK
        leg.group = Assign(
            ep, speaker_ssrc, self.table.rng.randrange(1 << 16), pts0, keep_own, self.table.ticks
        )
        st.used_ssrcs.add(speaker_ssrc)
        self.table.ssrcs_in_use.add(speaker_ssrc)
        self.table.burned_ssrcs.add(speaker_ssrc)
        self.table.dirty = True

    def group_epochs(self, conference_id: str) -> list[int]:
        st = self.table.conf_map.get(conference_id)
        return [] if st is None else sorted(st.epochs)

    def group_epoch_stats(self, conference_id: str, epoch: int) -> GroupEpochStats:
        st = self.table.conf_map.get(conference_id)
        ep = None if st is None else st.epochs.get(epoch)
        if ep is None:
            raise MediaEngineError(f"no live epoch {epoch} in {conference_id!r}")
        streams = ep.streams.values()
        return GroupEpochStats(
            conference_id,
            epoch,
            ep.ssrc,
            sum(1 for leg in self.table.leg_map.values() if leg.group is not None and leg.group.ep is ep),
            ep.encrypted + sum(gs.encrypted for gs in streams),
            ep.sent + sum(gs.sent for gs in streams),
            ep.private_encrypted,
            ep.private_sent,
        )

    def downlink_mode(self, conference_id: str) -> DownlinkMode:
        st = self.table.conf_map.get(conference_id)
        return DownlinkMode.PER_PARTICIPANT if st is None else st.mode

    def drop_conference(self, conference_id: str) -> None:
        """Forget a conference's settings and retire its epochs (after its legs are gone)."""
        st = self.table.conf_map.get(conference_id)
        if st is None:
            return
        for epoch in list(st.epochs):
            self.retire_group_epoch(conference_id, epoch)
        del self.table.conf_map[conference_id]

    def group_evidence(self, leg: Leg, a: Assign, block: ReportBlock) -> None:
        """A receiver report block about one of the leg's epoch streams."""
        if block.fraction_lost <= self.table.confirm_max_loss:
            if not a.confirmed:
                a.confirmed = True
                self.table.pending_events.append(GroupStreamConfirmed(leg.leg_id, a.ep.epoch))
            return
        if (
            block.ssrc != (a.ep.ssrc if a.stream is None else a.stream.ssrc)
            or a.confirmed
            or a.failing
            or block.fraction_lost < self.table.failing_min_loss
        ):
            return
        # The loss figure counts the common packets it did not get because it was speaking (they went
        # on its private stream): trust it only when the leg was on the common stream most of the time.
        interval = max(1, self.table.ticks - a.rr_tick)
        if a.private_ticks * 2 < interval:
            a.failing = True
            self.table.pending_events.append(
                GroupStreamFailing(leg.leg_id, a.ep.epoch, block.fraction_lost / 256)
            )

    def absent_evidence(self, leg: Leg, a: Assign, own_seen: bool, group_seen: bool) -> None:
        """On probation (both streams sent): reports that keep naming the own stream and never the
        epoch's mean the phone did not take the epoch key."""
        if group_seen or not a.keep_own:
            a.absent = 0
            return
        if self.table.ticks - a.start_tick < 50 or a.confirmed or a.failing:
            return  # give the phone one second of the epoch's stream before judging
        a.absent += 1
        if a.absent >= 2:
            a.failing = True
            self.table.pending_events.append(GroupStreamFailing(leg.leg_id, a.ep.epoch, 1.0, "absent"))

    def send_group(
        self,
        ep: Epoch,
        common: list[list[bytes]],
        ts_now: int,
        direct: bool,
        append: Callable[[Datagram], None],
    ) -> tuple[int, int, int, int]:
        """Send one epoch's streams for this tick: the common packet, protected once and the same bytes
        to every listener that neither speaks nor hears a prompt, and a private packet (N-1 mix or
        prompt) under the epoch key to each of the others. Returns (protect calls, datagrams, dropped,
        refused)."""
        t = self.table
        txb = t.txb
        txc = t.txc
        lenp = t.lenp
        protect = srtp_lib.srtp_protect
        handle = ep.handle
        end = 12 + FRAME_SAMPLES
        tick = t.ticks
        listeners = ep.listeners
        # The listeners that get a private packet this tick: speakers and prompt legs (few).
        private: list[Leg] = []
        for group in (t.speakers, t.prompting):
            for leg in group:
                a = leg.group
                if a is not None and a.live and a.ep is ep and leg.mix_payload is not None:
                    if group is t.prompting and leg.speaker:
                        continue  # already among the speakers (a speaker that hears a prompt or is deaf)
                    private.append(leg)
        protects = sent = dropped = errors = 0
        if len(private) < len(listeners):
            pt = ep.codec_pt
            if ep.last_tick != tick - 1:
                pt |= 0x80  # first packet of the stream, or after ticks nobody needed it
            ep.last_tick = tick
            HDR.pack_into(txb, 0, 0x80, pt, ep.seq, (ep.ts0 + ts_now) & TS_MASK, ep.ssrc)
            txb[12:end] = common[ep.codec_id][listeners[0].conf_idx]
            ep.seq = (ep.seq + 1) & 0xFFFF
            lenp[0] = end
            protects = 1
            if protect(handle, txc, lenp):
                t.protect_failed += 1
            else:
                ep.encrypted += 1
                data = txb[0 : lenp[0]]
                if direct and ep.all_direct and not private:
                    # The hot case: the same bytes to every listener, nothing else per leg.
                    for send in ep.sends:
                        try:
                            send(data)  # type: ignore[misc]
                        except BlockingIOError:
                            dropped += 1
                        except OSError:
                            errors += 1
                    sent = len(listeners)
                else:
                    for leg in listeners:
                        if leg.mix_payload is not None:
                            continue
                        sent += 1
                        send = leg.send
                        if send is None or not direct:
                            append((leg.rtp_port, data, leg.remote_rtp))  # type: ignore[arg-type]
                            continue
                        try:
                            send(data)
                        except BlockingIOError:
                            dropped += 1
                        except OSError:
                            errors += 1
                ep.sent += sent
        for leg in private:
            a = leg.group
            assert a is not None
            pt = ep.codec_pt
            if a.plast != tick - 1:
                pt |= 0x80  # a talkspurt (or prompt) starts on the private stream
            a.plast = tick
            a.private_ticks += 1
            HDR.pack_into(txb, 0, 0x80, pt, a.pseq, (a.pts0 + ts_now) & TS_MASK, a.pssrc)
            txb[12:end] = leg.mix_payload
            a.pseq = (a.pseq + 1) & 0xFFFF
            lenp[0] = end
            protects += 1
            if protect(handle, txc, lenp):
                t.protect_failed += 1
                continue
            n = lenp[0]
            ep.private_encrypted += 1
            ep.private_sent += 1
            sent += 1
            send = leg.send
            if send is None or not direct:
                append((leg.rtp_port, txb[0:n], leg.remote_rtp))  # type: ignore[arg-type]
                continue
            try:
                send(t.txview[:n])
            except BlockingIOError:
                dropped += 1
            except OSError:
                errors += 1
        return protects, sent, dropped, errors

    # ------------------------------------------------------------------------------ the 16 kHz mix

    def wide_stream(self, leg: Leg, a: Assign) -> GroupStream | None:
        """The common stream of the epoch *leg* hears in the 16 kHz mix: None for the epoch's own (a G.711
        leg on its codec), else its codec group's, made on first use."""
        ep = a.ep
        if leg.wb is None:
            return None
        key = (leg.codec_pt, leg.enc_key)
        gs = ep.streams.get(key)
        if gs is None:
            t = self.table
            st = t.conf_settings(ep.conference_id)
            ssrc = t.new_ssrc()
            while ssrc in st.used_ssrcs:
                t.ssrcs_in_use.discard(ssrc)
                t.burned_ssrcs.add(ssrc)
                ssrc = t.new_ssrc()
            st.used_ssrcs.add(ssrc)
            t.burned_ssrcs.add(ssrc)
            step = leg.ts_step
            ts0 = (t.rng.randrange(1 << 32) - step * t.ticks) & TS_MASK
            gs = ep.streams[key] = GroupStream(ssrc, leg.codec_pt, step, t.rng.randrange(1 << 16), ts0)
        return gs

    def send_wide(
        self,
        commons: list[tuple[Epoch, GroupStream | None, bytes, list[Leg]]],
        private: list[tuple[Leg, bytes]],
        direct: list[int] | None,
        append: Callable[[Datagram], None],
    ) -> None:
        """This tick's group streams of the 16 kHz mix: each common stream's frame protected once and the
        same bytes to each of its listeners; each private frame (a speaker's N-1 mix, a prompt) under its
        epoch's key on the leg's private SSRC, at the leg's codec clock. Adds to the tick's figures."""
        t = self.table
        txb, txc, lenp = t.txb, t.txc, t.lenp
        protect = srtp_lib.srtp_protect
        tick = t.ticks
        ticks = tick - 1
        protects = sent = dropped = errors = 0
        for ep, gs, payload, listeners in commons:
            end = 12 + len(payload)
            if end == 12:
                continue  # discontinuous transmission: nothing this tick
            if gs is None:
                pt, seq, ssrc = ep.codec_pt, ep.seq, ep.ssrc
                ts = ep.ts0 + FRAME_SAMPLES * ticks
                if ep.last_tick != tick - 1:
                    pt |= 0x80
                ep.last_tick = tick
                ep.seq = (seq + 1) & 0xFFFF
            else:
                pt, seq, ssrc = gs.pt, gs.seq, gs.ssrc
                ts = gs.ts0 + gs.ts_step * ticks
                if gs.last_tick != tick - 1:
                    pt |= 0x80
                gs.last_tick = tick
                gs.seq = (seq + 1) & 0xFFFF
            HDR.pack_into(txb, 0, 0x80, pt, seq, ts & TS_MASK, ssrc)
            txb[12:end] = payload
            lenp[0] = end
            protects += 1
            if protect(ep.handle, txc, lenp):
                t.protect_failed += 1
                continue
            data = txb[0 : lenp[0]]
            if gs is None:
                ep.encrypted += 1
                ep.sent += len(listeners)
            else:
                gs.encrypted += 1
                gs.sent += len(listeners)
            for leg in listeners:
                d, e = _send_one(leg, data, direct, append)
                dropped += d
                errors += e
            sent += len(listeners)
        for leg, payload in private:
            a = leg.group
            assert a is not None
            end = 12 + len(payload)
            if end == 12:
                continue
            pt = leg.codec_pt
            if a.plast != tick - 1:
                pt |= 0x80
            a.plast = tick
            a.private_ticks += 1
            HDR.pack_into(txb, 0, 0x80, pt, a.pseq, (a.pts0 + leg.ts_step * ticks) & TS_MASK, a.pssrc)
            txb[12:end] = payload
            a.pseq = (a.pseq + 1) & 0xFFFF
            lenp[0] = end
            protects += 1
            if protect(a.ep.handle, txc, lenp):
                t.protect_failed += 1
                continue
            a.ep.private_encrypted += 1
            a.ep.private_sent += 1
            sent += 1
            d, e = _send_one(leg, txb[0 : lenp[0]], direct, append)
            dropped += d
            errors += e
        t.tick_protects += protects
        t.tick_sent += sent
        t.protects_total += protects
        if direct is not None:
            direct[0] += dropped
            direct[1] += errors


def _send_one(
    leg: Leg, data: bytes, direct: list[int] | None, append: Callable[[Datagram], None]
) -> tuple[int, int]:
    send = leg.send
    if send is None or direct is None:
        append((leg.rtp_port, data, leg.remote_rtp))  # type: ignore[arg-type]
        return 0, 0
    try:
        send(data)
    except BlockingIOError:
        return 1, 0
    except OSError:
        return 0, 1
    return 0, 0
