"""The receive side of the engine, behind one entry point (:meth:`Ingress.receive_batch`): a datagram from a
local port (full path: source check, latching, unprotect, RTP or RTCP), the in-place path of a datagram from a
connected socket, and the C drain over the adapter's epoll set; RTP goes to the jitter buffer or the DTMF
receiver, RTCP to reports and group evidence."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from .dtmf import DtmfError
from .events import (
    Addr,
    DtmfReceived,
    InboundKeyConfirmed,
    RtcpReport,
    SourceLatched,
)
from .legs import CN_PT, HDR, MAX_SRTP_IN, Assign, Leg, LegTable
from .rtp import ReceiverReport as RtcpReceiverReport
from .rtp import (
    ReportBlock,
    RtpError,
    SenderReport,
    ntp_middle32,
    parse_rtcp,
    parse_rtp_fast,
)
from .srtp import (
    SrtpError,
    SrtpReceiver,
    error_kind,
    srtp_lib,
)

Received = tuple[int, bytes, "Addr | None"]  # (local port, datagram, source; None: a connected socket)


class GroupEvidence(Protocol):
    """What the receive side hands the group downlink (:class:`~imsconf.media.group_downlink.GroupDownlink`
    implements it): receiver-report evidence about a listener's epoch streams."""

    def group_evidence(self, leg: Leg, a: Assign, block: ReportBlock) -> None: ...

    def absent_evidence(self, leg: Leg, a: Assign, own_seen: bool, group_seen: bool) -> None: ...


class Ingress:
    """The receive paths: a part of the engine over the shared leg table, handing receiver-report
    evidence to the group downlink through the :class:`GroupEvidence` port."""

    def __init__(self, table: LegTable, group: GroupEvidence) -> None:
        self.table = table
        self.group = group

    def receive_batch(
        self, now: float, datagrams: Iterable[Received] = (), epfd: int = -1
    ) -> tuple[int, int, list[int]]:
        """The one receive entry point: the ``datagrams`` that arrived, each ``(local_port, data, src)``
        (``src`` ``None``: read from the leg's RTP socket while it was connected to the leg's remote RTP
        address, so the kernel delivered only datagrams from that address and the source needs no
        check), then, with ``epfd`` (the adapter's epoll set) and the C path, one round of the C drain
        over it: every ready socket mapped by :meth:`map_fast_fd` is read, unprotected, checked, counted
        and buffered in C, anything unusual takes the Python path. Returns (datagrams received, receive
        errors, the ready descriptors the C drain did not read: the adapter reads those and hands their
        datagrams in)."""
        got = 0
        connected = self._receive_connected
        full = self._receive_datagram
        for port, data, src in datagrams:
            if src is None:
                connected(port, data, now)
            else:
                full(port, data, src, now)
            got += 1
        if epfd < 0 or not self.table.c_path:
            return got, 0, []
        n, errors, fds = self._drain_c(epfd, now)
        return got + n, errors, fds

    def _receive_datagram(self, local_port: int, data: bytes, src: Addr, now: float) -> None:
        """The full path: one datagram that arrived on ``local_port`` from ``src``."""
        t = self.table
        entry = t.port_map.get(local_port)
        if entry is None:
            t.unknown_port += 1
            return
        leg, on_rtcp_port = entry
        c = leg.c
        rx = leg.rx
        if rx is None:
            c.unconfigured += 1
            return
        rtcp = on_rtcp_port or (leg.rtcp_mux and len(data) > 1 and 192 <= data[1] <= 223)
        expected = leg.remote_rtcp if rtcp else leg.remote_rtp
        latching = False
        if src != expected and (src[0], src[1]) != expected:
            if not leg.latch or leg.latched:
                c.wrong_source += 1
                return
            latching = True
        try:
            plain = rx.unprotect_rtcp(data) if rtcp else rx.unprotect(data)
        except SrtpError as exc:
            c.srtp_refused(exc.kind)
            return
        if leg.rekey_pending and isinstance(rx, SrtpReceiver) and not rx.rekey_pending:
            leg.rekey_pending = False
            t.refresh_fast(leg)
            t.pending_events.append(InboundKeyConfirmed(leg.leg_id))
        if leg.latch and not leg.latched:
            leg.latched = True
            t.refresh_fast(leg)
            if latching:
                addr: Addr = (src[0], src[1])
                if rtcp:
                    leg.remote_rtcp = addr
                else:
                    leg.remote_rtp = addr
                    if leg.rtcp_mux:
                        leg.remote_rtcp = addr
                if not rtcp:
                    t.notify_remote(leg)
                t.pending_events.append(SourceLatched(leg.leg_id, rtcp, addr))
        if rtcp:
            self.receive_rtcp(leg, plain, now)
            return
        self.receive_rtp(leg, plain, now)

    def _receive_connected(self, local_port: int, data: bytes, now: float) -> None:
        """A datagram from the leg's connected RTP socket: unprotected in place in the engine's receive
        buffer, no source check. Same counters, events and effects as the full path."""
        t = self.table
        rxb = t.rxb
        n = len(data)
        if n <= MAX_SRTP_IN:
            rxb[0:n] = data
        entry = t.port_map.get(local_port)
        if entry is None:
            t.unknown_port += 1
            return
        leg, on_rtcp_port = entry
        rxc = t.rxc
        if not leg.fast or on_rtcp_port or n < 12 or n > MAX_SRTP_IN or 192 <= rxc[1] <= 223:
            src = leg.remote_rtcp if on_rtcp_port else leg.remote_rtp
            self._receive_datagram(local_port, data, src or ("", 0), now)
            return
        handle = leg.rx.handle  # type: ignore[union-attr]
        if handle is not None:
            lenp = t.lenp
            lenp[0] = n
            rc = srtp_lib.srtp_unprotect(handle, rxc, lenp)
            if rc:
                leg.c.srtp_refused(error_kind(rc))
                return
            n = lenp[0]
        b0, b1, seq, ts, ssrc = HDR.unpack_from(rxb)
        if b0 != 0x80 or n < 12 or (b1 & 0x7F) != leg.codec_pt or ssrc != leg.remote_ssrc:
            self.receive_rtp(leg, rxb[0:n], now)
            return
        leg.c.received += 1
        leg.rstats.update(seq, ts, int(now * 8000))
        if leg.mixes_in:
            leg.jitter.push(seq, rxb[12:n], now)

    def _drain_c(self, epfd: int, now: float) -> tuple[int, int, list[int]]:
        """One round of the C receive path over the epoll set ``epfd`` (see :meth:`receive_batch`)."""
        t = self.table
        slots = t.slots
        fast, other, fds = slots.drain(epfd, now, t.jitter_frames, t.jitter_delay)
        if not other:
            return fast, 0, fds
        tag = slots.tag
        errors = 0
        for kind, slot, value, data in other:
            leg = tag[slot]
            if kind == 1:  # decrypted, not the plain case
                self.receive_rtp(leg, data, now)
            elif kind == 2:  # the full path, from the leg's remote RTP address (the socket is connected)
                self._receive_datagram(leg.rtp_port, data, leg.remote_rtp or ("", 0), now)
            elif kind == 3:
                leg.c.srtp_refused(error_kind(value))
            else:
                errors += 1
        return fast + len(other), errors, fds

    def receive_rtp(self, leg: Leg, plain: bytes, now: float) -> None:
        c = leg.c
        try:
            pt, _marker, seq, ts, ssrc, payload = parse_rtp_fast(plain)
        except RtpError:
            c.malformed += 1
            return
        if ssrc != leg.remote_ssrc:
            if leg.remote_ssrc is not None:  # a new source (e.g. a new key epoch): new sequence space
                leg.jitter.reset()
                leg.rstats.reset()
            leg.remote_ssrc = ssrc
            self.table.refresh_fast(leg)
        c.received += 1
        if pt == leg.codec_pt:
            leg.rstats.update(seq, ts, int(now * leg.clock))
            if leg.mixes_in:
                leg.jitter.push(seq, payload, now)
        elif pt == leg.dtmf_pt:
            try:
                dtmf = leg.dtmf.feed(payload, ts, now)
            except DtmfError:
                c.malformed += 1
                return
            t = self.table
            for ev in dtmf:
                c.dtmf_events += 1
                t.pending_events.append(DtmfReceived(leg.leg_id, leg.conference_id, ev))
            if leg.dtmf.active:
                t.dtmf_active.add(leg)
            else:
                t.dtmf_active.discard(leg)
        elif pt != CN_PT:
            c.unknown_pt += 1

    def receive_rtcp(self, leg: Leg, plain: bytes, now: float) -> None:
        try:
            packets = parse_rtcp(plain)
        except RtpError:
            leg.c.malformed += 1
            return
        t = self.table
        leg.c.rtcp_received += 1
        a = leg.group
        own_seen = group_seen = False
        for p in packets:
            if isinstance(p, SenderReport):
                leg.rtcp.last_sr_mid = ntp_middle32(p.ntp_timestamp)
                leg.rtcp.last_sr_at = now
            if isinstance(p, SenderReport | RtcpReceiverReport):
                for block in p.reports:
                    if block.ssrc == leg.ssrc:
                        own_seen = True
                        leg.rr = block
                        t.pending_events.append(RtcpReport(leg.leg_id, block))
                    elif a is not None and (block.ssrc == a.pssrc or a.ep.has_ssrc(block.ssrc)):
                        group_seen = True
                        leg.rr = block
                        self.group.group_evidence(leg, a, block)
        if a is not None and (own_seen or group_seen):
            self.group.absent_evidence(leg, a, own_seen, group_seen)
            a.private_ticks = 0
            a.rr_tick = t.ticks

    def map_fast_fd(self, fd: int, rtp_port: int) -> bool:
        """The adapter's socket ``fd`` is connected to the remote RTP address of the leg on ``rtp_port``:
        let the C drain of :meth:`receive_batch` read it. False when there is no C path (or no such
        leg)."""
        t = self.table
        entry = t.port_map.get(rtp_port)
        if not t.c_path or entry is None or entry[1]:
            return False
        t.slots.map_fd(fd, entry[0].slot)
        return True

    def unmap_fast_fd(self, fd: int) -> None:
        self.table.slots.unmap_fd(fd)
