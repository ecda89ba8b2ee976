"""The send side of the engine outside the tick's packet loop: the send functions the UDP adapter
registers per leg, and RTCP (sender/receiver reports, from the private SSRC on a group epoch)."""

from __future__ import annotations

from collections.abc import Callable

from .events import (
    Addr,
    Datagram,
)
from .ingress import Ingress
from .legs import TS_MASK, Leg, SendFunc
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
)


class Egress(Ingress):
    """Send functions and RTCP over the leg table."""

    def set_send(self, rtp_port: int, send: SendFunc | None, fd: int = -1) -> None:
        """Let :meth:`tick_send` hand the leg's RTP packets to ``send`` (the ``send`` of a socket
        connected to the leg's remote RTP address), or stop doing so (``None``). ``fd`` is that
        socket's descriptor: with it, the C path sends the leg's RTP itself."""
        entry = self.port_map.get(rtp_port)
        if entry is not None and not entry[1]:
            entry[0].send = send
            self.slots.set_fd(entry[0].slot, fd if send is not None else -1)
            self.dirty = True  # the epochs' fan-out lists hold the send functions

    def remote_rtp(self, rtp_port: int) -> Addr | None:
        """The address the leg on ``rtp_port`` currently sends to and accepts RTP from."""
        entry = self.port_map.get(rtp_port)
        return None if entry is None else entry[0].remote_rtp

    def send_rtcp(self, leg: Leg, now: float, append: Callable[[Datagram], None]) -> None:
        self.schedule_rtcp(leg, now + self.rtcp_delay())
        block = None
        if leg.remote_ssrc is not None:
            lsr = leg.last_sr_mid
            dlsr = int((now - leg.last_sr_at) * 65536) if lsr else 0
            block = leg.rstats.report_block(leg.remote_ssrc, lsr, dlsr)
        blocks = (block,) if block is not None else ()
        first: RtcpPacket
        a = leg.group
        if a is not None and not a.keep_own and a.ep.tx is not None and self.group_effective(leg, a):
            # The phone holds only the epoch key for our direction: report from its private SSRC.
            data = serialize_rtcp(
                [RtcpReceiverReport(a.pssrc, blocks), SourceDescription(((a.pssrc, self.cname),))]
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
                ntp_from_unix(self.wallclock()),
                (leg.ts0 + FRAME_SAMPLES * self.ticks) & TS_MASK,
                leg.packets_sent,
                leg.packets_sent * FRAME_SAMPLES,
                blocks,
            )
        else:
            first = RtcpReceiverReport(leg.ssrc, blocks)
        data = serialize_rtcp([first, SourceDescription(((leg.ssrc, self.cname),))])
        tx = leg.tx
        assert tx is not None and leg.remote_rtcp is not None
        try:
            protected = tx.protect_rtcp(data)
        except SrtpError:
            return
        append((leg.rtcp_port, protected, leg.remote_rtcp))
        leg.c.rtcp_sent += 1
