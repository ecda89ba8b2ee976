"""The send side of the engine: packetise, protect and send each tick's RTP (through the C batch for legs
with a connected socket, the send functions the UDP adapter registers per leg, or datagrams), and RTCP
(sender/receiver reports, from the private SSRC on a group epoch)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np
import numpy.typing as npt

from .events import (
    Addr,
    Datagram,
)
from .fastpath import FD
from .legs import BUFFER_SIZE, HDR, TS_MASK, Epoch, Leg, LegTable, SendFunc
from .mixer import FRAME_SAMPLES
from .rtp import ReceiverReport as RtcpReceiverReport
from .rtp import (
    RtcpPacket,
    SenderReport,
    SourceDescription,
    ntp_from_unix,
    serialize_rtcp,
)
from .srtp import (
    SrtpError,
    srtp_lib,
)

MAX_PLAIN = BUFFER_SIZE - 16  # longest plain RTP packet: room for the SRTP authentication tag


class PacketSink(Protocol):
    """The egress port: where a tick's protected packets go that neither the C batch nor a leg's send
    function sends. The UDP adapter implements it with ``sendto`` on the local ports' sockets."""

    def send_datagrams(self, datagrams: list[Datagram]) -> tuple[int, int]:
        """Send each ``(local_port, data, remote_addr)``; returns (dropped, refused) counts."""
        ...


class RtpBatchSink(Protocol):
    """The egress port of the C path: header, protect and send one RTP packet per slot on the slot's
    connected socket, one call per tick (:class:`~imsconf.media.fastpath.SlotTable` implements it)."""

    def send(
        self, slots: npt.NDArray[np.int64], payloads: list[bytes], ts_now: int
    ) -> tuple[int, int, int, int]:
        """Returns (dropped, refused, protect failures, protect calls)."""
        ...

    def send_frames(
        self, slots: npt.NDArray[np.int64], payloads: list[bytes], ts: npt.NDArray[np.int64]
    ) -> tuple[int, int, int, int]:
        """The same for payloads of any length (empty: nothing sent), ``ts`` each slot's timestamp
        offset from its first; returns (dropped, refused, protect failures, protect calls)."""
        ...


class CollectingSink:
    """A :class:`PacketSink` that keeps the datagrams (tests, benchmarks, the sans-I/O :meth:`tick`)."""

    def __init__(self) -> None:
        self.datagrams: list[Datagram] = []

    def send_datagrams(self, datagrams: list[Datagram]) -> tuple[int, int]:
        self.datagrams.extend(datagrams)
        return 0, 0


class GroupSend(Protocol):
    """What the send side asks of the group downlink (:class:`~imsconf.media.group_downlink.GroupDownlink`
    implements it): one live epoch's streams for this tick."""

    def send_group(
        self,
        ep: Epoch,
        common: list[list[bytes]],
        ts_now: int,
        direct: bool,
        append: Callable[[Datagram], None],
    ) -> tuple[int, int, int, int]: ...


class Egress:
    """Send functions, the tick's packet loop and RTCP: a part of the engine over the shared leg table.
    RTP of legs with a connected socket goes through the C batch (:class:`RtpBatchSink`, the table's
    slot table) or the leg's send function; the group epochs' streams through the :class:`GroupSend`
    port; everything else through the :class:`PacketSink` the tick is given."""

    def __init__(self, table: LegTable, group: GroupSend, rtp_batch: RtpBatchSink | None = None) -> None:
        self.table = table
        self.group = group
        self.rtp_batch: RtpBatchSink = table.slots if rtp_batch is None else rtp_batch

    def send_packets(self, common: list[list[bytes]], direct: list[int] | None) -> list[Datagram]:
        """Packetise, protect and send this tick's RTP: every sending leg its N-1 mix, prompt or its
        conference's common mix (``common[codec][conference]``) on its own stream (the C batch for legs
        with a connected socket when ``direct``), then each live group epoch's streams. Returns the
        datagrams without a send function; adds the dropped and refused sends to ``direct``."""
        t = self.table
        out: list[Datagram] = []
        append = out.append
        ts_now = FRAME_SAMPLES * (t.ticks - 1)
        dropped = errors = protects = failed = 0
        sending = all_sending = t.sending
        c_legs = t.c_legs
        if direct is not None and c_legs:
            # The C path: header, protect and send for every leg with a connected socket.
            payloads = [leg.mix_payload or common[leg.codec_id][leg.conf_idx] for leg in c_legs]
            dropped, errors, failed, protects = self.rtp_batch.send(t.c_slots, payloads, ts_now)
            sending = t.py_sending
        if sending:
            payloads = [leg.mix_payload or common[leg.codec_id][leg.conf_idx] for leg in sending]
            p, d, e, f = self.send_own(sending, payloads, direct, append)
            protects += p
            dropped += d
            errors += e
            failed += f
        if failed:
            t.protect_failed += failed
        sent = len(all_sending)
        group_live = t.group_live
        if group_live:
            send_group = self.group.send_group
            is_direct = direct is not None
            for ep in group_live:
                n_prot, n_sent, d, e = send_group(ep, common, ts_now, is_direct, append)
                protects += n_prot
                sent += n_sent
                dropped += d
                errors += e
        t.tick_protects = protects
        t.tick_sent = sent
        t.protects_total += protects
        if direct is not None:
            direct[0] += dropped
            direct[1] += errors
        return out

    def send_frames(
        self,
        legs: list[Leg],
        payloads: list[bytes],
        direct: list[int] | None,
        append: Callable[[Datagram], None],
    ) -> None:
        """Packetise, protect and send one frame per leg on its own stream (the 16 kHz conferences of
        :mod:`imsconf.media.wideband`): payloads of any length, the timestamp at the leg's codec clock.
        Adds to the tick's figures; the dropped and refused sends to ``direct``."""
        t = self.table
        protects = dropped = errors = failed = 0
        if direct is not None and t.c_path:
            # The C path for every leg with a connected socket: header, protect and send in one call.
            fds = t.slots.tab[:, FD]
            c_legs = [i for i, leg in enumerate(legs) if leg.send is not None and fds[leg.slot] >= 0]
            if c_legs:
                ticks = t.ticks - 1
                slots = np.fromiter((legs[i].slot for i in c_legs), dtype=np.int64, count=len(c_legs))
                ts = np.fromiter((legs[i].ts_step * ticks for i in c_legs), dtype=np.int64, count=len(c_legs))
                dropped, errors, failed, protects = self.rtp_batch.send_frames(
                    slots, [payloads[i] for i in c_legs], ts
                )
                if len(c_legs) < len(legs):
                    taken = set(c_legs)
                    rest = [i for i in range(len(legs)) if i not in taken]
                    legs = [legs[i] for i in rest]
                    payloads = [payloads[i] for i in rest]
                else:
                    legs, payloads = [], []
        if legs:
            p, d, e, f = self.send_own(legs, payloads, direct, append)
            protects += p
            dropped += d
            errors += e
            failed += f
        if failed:
            t.protect_failed += failed
        t.tick_protects += protects
        t.tick_sent += len(legs)
        t.protects_total += protects
        if direct is not None:
            direct[0] += dropped
            direct[1] += errors

    def send_own(
        self,
        legs: list[Leg],
        payloads: list[bytes],
        direct: list[int] | None,
        append: Callable[[Datagram], None],
    ) -> tuple[int, int, int, int]:
        """The Python path of a leg's own stream: header (the timestamp at the leg's codec clock), protect
        and send one payload per leg (any length; an empty one is discontinuous transmission and sends
        nothing); a leg without a send function, or with ``direct`` None, goes to ``append``. Returns
        (protect calls, sends dropped, sends refused, protections failed)."""
        t = self.table
        pack_into = HDR.pack_into
        txb = t.txb
        txc = t.txc
        view = t.txview
        lenp = t.lenp
        protect = srtp_lib.srtp_protect
        ticks = t.ticks - 1
        dropped = errors = protects = failed = 0
        for leg, payload in zip(legs, payloads, strict=True):
            end = 12 + len(payload)
            if end == 12:
                continue
            if end > MAX_PLAIN:
                failed += 1
                continue
            seq = leg.seq
            pt = leg.codec_pt
            if leg.marker:
                pt |= 0x80
                leg.marker = False
            pack_into(txb, 0, 0x80, pt, seq, (leg.ts0 + leg.ts_step * ticks) & TS_MASK, leg.ssrc)
            txb[12:end] = payload
            leg.seq = (seq + 1) & 0xFFFF
            handle = leg.tx.handle  # type: ignore[union-attr]
            n = end
            if handle is not None:
                lenp[0] = end
                protects += 1
                if protect(handle, txc, lenp):
                    failed += 1
                    continue
                n = lenp[0]
            leg.packets_sent += 1
            send = leg.send
            if send is None or direct is None:
                assert leg.remote_rtp is not None
                append((leg.rtp_port, txb[0:n], leg.remote_rtp))
                continue
            try:
                send(view[:n])
            except BlockingIOError:
                dropped += 1
            except OSError:
                errors += 1
        return protects, dropped, errors, failed

    def set_send(self, rtp_port: int, send: SendFunc | None, fd: int = -1) -> None:
        """Let :meth:`~imsconf.media.mixdown.Mixdown.tick_send` hand the leg's RTP packets to ``send``
        (the ``send`` of a socket connected to the leg's remote RTP address), or stop doing so
        (``None``). ``fd`` is that socket's descriptor: with it, the C path sends the leg's RTP itself."""
        t = self.table
        entry = t.port_map.get(rtp_port)
        if entry is not None and not entry[1]:
            entry[0].send = send
            t.slots.set_fd(entry[0].slot, fd if send is not None else -1)
            t.dirty = True  # the epochs' fan-out lists hold the send functions

    def remote_rtp(self, rtp_port: int) -> Addr | None:
        """The address the leg on ``rtp_port`` currently sends to and accepts RTP from."""
        entry = self.table.port_map.get(rtp_port)
        return None if entry is None else entry[0].remote_rtp

    def send_rtcp(self, leg: Leg, now: float, append: Callable[[Datagram], None]) -> None:
        t = self.table
        t.schedule_rtcp(leg, now + t.rtcp_delay())
        block = None
        if leg.remote_ssrc is not None:
            lsr = leg.rtcp.last_sr_mid
            dlsr = int((now - leg.rtcp.last_sr_at) * 65536) if lsr else 0
            block = leg.rstats.report_block(leg.remote_ssrc, lsr, dlsr)
        blocks = (block,) if block is not None else ()
        first: RtcpPacket
        a = leg.group
        if a is not None and not a.keep_own and a.ep.tx is not None and t.group_effective(leg, a):
            # The phone holds only the epoch key for our direction: report from its private SSRC.
            data = serialize_rtcp(
                [RtcpReceiverReport(a.pssrc, blocks), SourceDescription(((a.pssrc, t.cname),))]
            )
            try:
                protected = a.ep.tx.protect_rtcp(data)
            except SrtpError:
                return
            assert leg.remote_rtcp is not None
            append((leg.rtcp_port, protected, leg.remote_rtcp))
            leg.c.rtcp_sent += 1
            return
        if leg.sends and leg.packets_sent:
            first = SenderReport(
                leg.ssrc,
                ntp_from_unix(t.wallclock()),
                (leg.ts0 + leg.ts_step * t.ticks) & TS_MASK,
                leg.packets_sent,
                leg.packets_sent * FRAME_SAMPLES,
                blocks,
            )
        else:
            first = RtcpReceiverReport(leg.ssrc, blocks)
        data = serialize_rtcp([first, SourceDescription(((leg.ssrc, t.cname),))])
        tx = leg.tx
        assert tx is not None and leg.remote_rtcp is not None
        try:
            protected = tx.protect_rtcp(data)
        except SrtpError:
            return
        append((leg.rtcp_port, protected, leg.remote_rtcp))
        leg.c.rtcp_sent += 1
