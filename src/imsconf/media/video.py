"""Presentation video switching, sans-I/O: the presentation floor holder's video goes to all.

No transcoding and no mixing: per conference one *source* leg (the holder of the BFCP presentation floor, or
nobody) has its video RTP forwarded to every other leg of the conference that negotiated video and may
receive it.  Per packet: SRTP-unprotect with the source's key, rewrite the header for each receiver, and
SRTP-protect with that receiver's own key (one libsrtp context per leg and direction; keys come from the
key authority through :class:`~imsconf.media.control.MediaControl`, never from here).

Header rewriting, per receiver stream:

* **SSRC**: one outgoing SSRC per receiver video stream, random, kept across source switches (the
  receiver sees one stream whose content changes).  A new transmit key starts a new SSRC, so one (key,
  SSRC) pair only ever carries one packet sequence (an SRTP keystream is never reused).
* **Sequence numbers** continue across switches: the first packet of a new source gets the next number;
  within one source the offset is fixed, so upstream loss stays visible as a gap.  Packets older than the
  first one forwarded from the current source are dropped.
* **Timestamps** are rebased at a switch: the new source's first timestamp maps to the last timestamp
  sent plus the wall-clock time since then (at the codec clock rate, at least 1), so the receiver's
  jitter buffer sees a continuous clock.
* **Payload type**: the receiver's payload type for the conference codec (each leg keeps its own number).

Key frames: at a switch (and when a receiver sends a PLI or FIR) the switch sends an RTCP PLI (RFC 4585)
to the source, when the source negotiated ``a=rtcp-fb ... pli``, at most every ``PLI_INTERVAL`` seconds.
RTCP from the legs is otherwise only authenticated and counted.

Driven like the audio engine: :meth:`VideoSwitch.receive` takes a datagram (local port, data, source
address, now) and returns the datagrams to send, ``(local_port, data, remote_addr)``: the receiver legs'
own ports, so symmetric RTP holds.
"""

from __future__ import annotations

import hashlib
import random
import struct
from dataclasses import dataclass, field

from imsconf.sdp.direction import Direction

from .events import Addr, Datagram, MediaEngineError
from .rtp import is_rtcp
from .srtp import (
    NullReceiver,
    NullSender,
    SrtpError,
    SrtpKeys,
    SrtpReceiver,
    SrtpSender,
    make_receiver,
    make_sender,
)

__all__ = [
    "PLI_INTERVAL",
    "VideoLegConfig",
    "VideoLegStats",
    "VideoSwitch",
    "build_pli",
    "keyframe_requested",
]

PLI_INTERVAL = 0.5  # seconds between two PLIs to the same source
_RTP_MIN = 12
_HDR = struct.Struct("!BBHII")


@dataclass(frozen=True, slots=True)
class VideoLegConfig:
    """One leg's negotiated video: where to send, its payload type for the conference codec, our direction."""

    remote_rtp: Addr
    remote_rtcp: Addr | None  # None: rtcp-mux, or RTP port + 1 when the leg is not muxed
    payload_type: int
    codec_name: str
    clock_rate: int = 90000
    direction: Direction = Direction.SENDRECV
    pli: bool = False  # the leg accepts PLI (a=rtcp-fb pli)


@dataclass(slots=True)
class VideoLegStats:
    received: int = 0  # RTP packets authenticated from this leg
    forwarded_from: int = 0  # its packets forwarded (counted once per packet, not per receiver)
    sent: int = 0  # packets sent to this leg
    dropped_not_source: int = 0
    dropped_other: int = 0  # wrong payload type, old sequence number, direction
    srtp_failures: int = 0
    wrong_source: int = 0
    malformed: int = 0
    rtcp_received: int = 0
    pli_sent: int = 0
    keyframe_requests: int = 0  # PLI/FIR received from this leg
    out_ssrc: int = 0


@dataclass(slots=True)
class _Out:
    """The stream we send to one receiver."""

    ssrc: int
    seq: int  # next sequence number
    last_ts: int | None = None
    last_at: float = 0.0
    source: tuple[str, int] | None = None  # (source leg, its SSRC) the offsets belong to
    seq_offset: int = 0
    ts_offset: int = 0
    first_seq: int = 0  # the source's first forwarded sequence number (extended by the offset)


@dataclass(slots=True)
class _VLeg:
    leg_id: str
    conf_id: str
    rtp_port: int
    rtcp_port: int
    rtcp_mux: bool
    config: VideoLegConfig | None = None
    sender: SrtpSender | NullSender | None = None
    receiver: SrtpReceiver | NullReceiver | None = None
    tx_salt: bytes | None = None
    rx_salt: bytes | None = None
    out: _Out | None = None
    in_ssrc: int | None = None  # the SSRC this leg was last seen sending
    rtcp_ssrc: int = 0  # our SSRC for RTCP we send to this leg (its out SSRC)
    last_pli: float = -1e9
    want_keyframe: bool = False
    stats: VideoLegStats = field(default_factory=VideoLegStats)

    @property
    def rtcp_dest(self) -> Addr | None:
        c = self.config
        if c is None:
            return None
        if c.remote_rtcp is not None:
            return c.remote_rtcp
        if self.rtcp_mux:
            return c.remote_rtp
        return (c.remote_rtp[0], c.remote_rtp[1] + 1)


def build_pli(sender_ssrc: int, media_ssrc: int) -> bytes:
    """A compound RTCP packet: an empty receiver report, then a PLI (PSFB, FMT 1) for ``media_ssrc``."""
    rr = struct.pack("!BBHI", 0x80, 201, 1, sender_ssrc)
    pli = struct.pack("!BBHII", 0x80 | 1, 206, 2, sender_ssrc, media_ssrc)
    return rr + pli


def keyframe_requested(rtcp: bytes) -> bool:
    """True when the (plain) compound RTCP packet carries a PLI or a FIR (RFC 4585, RFC 5104)."""
    pos = 0
    while pos + 4 <= len(rtcp):
        b0, pt, words = struct.unpack_from("!BBH", rtcp, pos)
        if b0 >> 6 != 2:
            return False
        if pt == 206 and (b0 & 0x1F) in (1, 4):
            return True
        pos += 4 * (words + 1)
    return False


class VideoSwitch:
    """Video legs and the presentation source of each conference; see the module docstring."""

    def __init__(self, *, allow_plain_rtp: bool = False, rng: random.Random | None = None) -> None:
        self.allow_plain_rtp = allow_plain_rtp
        self._rng = rng or random.SystemRandom()
        self._legs: dict[str, _VLeg] = {}
        self._by_port: dict[int, _VLeg] = {}
        self._sources: dict[str, str | None] = {}  # conference -> source leg
        self._used_ssrcs: set[int] = set()

    # ------------------------------------------------------------------ control

    def add_leg(self, leg_id: str, conference_id: str, rtp_port: int, rtcp_port: int, rtcp_mux: bool) -> None:
        if leg_id in self._legs:
            raise MediaEngineError(f"video leg {leg_id!r} exists")
        leg = _VLeg(leg_id, conference_id, rtp_port, rtp_port if rtcp_mux else rtcp_port, rtcp_mux)
        self._legs[leg_id] = leg
        self._by_port[rtp_port] = leg
        self._by_port[leg.rtcp_port] = leg

    def configure_leg(
        self, leg_id: str, config: VideoLegConfig, tx_keys: SrtpKeys | None, rx_keys: SrtpKeys | None
    ) -> None:
        """Set (or change: re-INVITE) a leg's video.  A new transmit key starts a new outgoing SSRC."""
        leg = self._leg(leg_id)
        if (tx_keys is None or rx_keys is None) and not self.allow_plain_rtp:
            raise MediaEngineError("plain RTP video refused (SRTP required)")
        tx_salt = _fingerprint(tx_keys)  # to see a change without keeping a copy of the key
        rx_salt = _fingerprint(rx_keys)
        if leg.out is None or tx_salt != leg.tx_salt or leg.sender is None:
            leg.sender = make_sender(tx_keys)
            leg.tx_salt = tx_salt
            ssrc = self._new_ssrc()
            leg.out = _Out(ssrc, self._rng.randrange(0x10000))
            leg.rtcp_ssrc = ssrc
            leg.stats.out_ssrc = ssrc
        if leg.receiver is None or rx_salt != leg.rx_salt:
            if isinstance(leg.receiver, SrtpReceiver) and rx_keys is not None:
                leg.receiver.rekey(rx_keys)  # packets in flight under the old key still play
            else:
                leg.receiver = make_receiver(rx_keys)
            leg.rx_salt = rx_salt
        leg.config = config

    def remove_leg(self, leg_id: str) -> None:
        leg = self._legs.pop(leg_id, None)
        if leg is None:
            return
        self._by_port.pop(leg.rtp_port, None)
        self._by_port.pop(leg.rtcp_port, None)
        if self._sources.get(leg.conf_id) == leg_id:
            self._sources[leg.conf_id] = None

    def drop_conference(self, conference_id: str) -> list[str]:
        """Forget a conference; returns the ids of the legs removed."""
        gone = [lid for lid, leg in self._legs.items() if leg.conf_id == conference_id]
        for lid in gone:
            self.remove_leg(lid)
        self._sources.pop(conference_id, None)
        return gone

    def set_source(self, conference_id: str, leg_id: str | None, now: float = 0.0) -> list[Datagram]:
        """Make ``leg_id`` (or nobody) the presentation source; returns a PLI to the new source if any."""
        if self._sources.get(conference_id) == leg_id:
            return []
        self._sources[conference_id] = leg_id
        leg = self._legs.get(leg_id) if leg_id is not None else None
        if leg is None:
            return []
        leg.want_keyframe = True
        return self._pli(leg, now, force=True)

    def source(self, conference_id: str) -> str | None:
        return self._sources.get(conference_id)

    def legs(self) -> list[str]:
        return list(self._legs)

    def leg_ports(self, leg_id: str) -> tuple[int, int]:
        leg = self._leg(leg_id)
        return leg.rtp_port, leg.rtcp_port

    def leg_conference(self, leg_id: str) -> str:
        return self._leg(leg_id).conf_id

    def stats(self, leg_id: str) -> VideoLegStats:
        return self._leg(leg_id).stats

    # ------------------------------------------------------------------ packets

    def receive(self, local_port: int, data: bytes, src: Addr, now: float) -> list[Datagram]:
        leg = self._by_port.get(local_port)
        if leg is None or leg.config is None or leg.receiver is None:
            return []
        src = (src[0], src[1])
        rtcp = local_port != leg.rtp_port or (leg.rtcp_mux and is_rtcp(data))
        expected = leg.rtcp_dest if rtcp else leg.config.remote_rtp
        if src != expected:
            leg.stats.wrong_source += 1
            return []
        receiver = leg.receiver
        try:
            plain = receiver.unprotect_rtcp(data) if rtcp else receiver.unprotect(data)
        except SrtpError:
            leg.stats.srtp_failures += 1
            return []
        except ValueError:
            leg.stats.malformed += 1
            return []
        if rtcp:
            return self._on_rtcp(leg, plain, now)
        return self._on_rtp(leg, plain, now)

    def _on_rtcp(self, leg: _VLeg, plain: bytes, now: float) -> list[Datagram]:
        leg.stats.rtcp_received += 1
        if not keyframe_requested(plain):
            return []
        leg.stats.keyframe_requests += 1
        source_id = self._sources.get(leg.conf_id)
        source = self._legs.get(source_id) if source_id is not None else None
        if source is None or source is leg:
            return []
        return self._pli(source, now)

    def _on_rtp(self, leg: _VLeg, plain: bytes, now: float) -> list[Datagram]:
        if len(plain) < _RTP_MIN or plain[0] >> 6 != 2:
            leg.stats.malformed += 1
            return []
        cfg = leg.config
        assert cfg is not None
        b0, b1, seq, ts, ssrc = _HDR.unpack_from(plain)
        leg.stats.received += 1
        out: list[Datagram] = []
        if leg.in_ssrc != ssrc:
            leg.in_ssrc = ssrc
        if self._sources.get(leg.conf_id) != leg.leg_id:
            leg.stats.dropped_not_source += 1
            return out
        if (b1 & 0x7F) != cfg.payload_type or not _receives(cfg.direction):
            leg.stats.dropped_other += 1
            return out
        if leg.want_keyframe:
            out += self._pli(leg, now)
        leg.stats.forwarded_from += 1
        marker = b1 & 0x80
        rest = plain[_RTP_MIN:]  # CSRCs, extension, payload, padding: as they came (b0 says which)
        for r in self._legs.values():
            if r is leg or r.conf_id != leg.conf_id or r.config is None or r.out is None:
                continue
            if not r.config.direction.sends or r.config.codec_name != cfg.codec_name:
                continue
            o = r.out
            key = (leg.leg_id, ssrc)
            if o.source != key:  # a new source (or it restarted its stream): continue seq, rebase ts
                o.source = key
                o.seq_offset = (o.seq - seq) & 0xFFFF
                o.first_seq = seq
                if o.last_ts is None:
                    o.ts_offset = self._rng.randrange(1 << 32) - ts
                else:
                    gap = max(1, int((now - o.last_at) * cfg.clock_rate))
                    o.ts_offset = o.last_ts + gap - ts
            elif ((seq - o.first_seq) & 0xFFFF) >= 0x8000:
                r.stats.dropped_other += 1  # older than the switch: it belongs to the previous source
                continue
            out_seq = (seq + o.seq_offset) & 0xFFFF
            out_ts = (ts + o.ts_offset) & 0xFFFF_FFFF
            if ((out_seq - o.seq) & 0xFFFF) < 0x8000:
                o.seq = (out_seq + 1) & 0xFFFF
                o.last_ts, o.last_at = out_ts, now
            packet = _HDR.pack(b0, marker | r.config.payload_type, out_seq, out_ts, o.ssrc) + rest
            if r.sender is None:
                continue
            try:
                protected = r.sender.protect(packet)
            except SrtpError:
                r.stats.srtp_failures += 1
                continue
            r.stats.sent += 1
            out.append((r.rtp_port, protected, r.config.remote_rtp))
        return out

    def _pli(self, leg: _VLeg, now: float, *, force: bool = False) -> list[Datagram]:
        cfg = leg.config
        dest = leg.rtcp_dest
        if cfg is None or dest is None or not cfg.pli or leg.in_ssrc is None or leg.sender is None:
            return []  # no feedback negotiated, or nothing seen from it yet (retried on its first packet)
        if not force and now - leg.last_pli < PLI_INTERVAL:
            return []
        leg.last_pli = now
        leg.want_keyframe = False
        try:
            data = leg.sender.protect_rtcp(build_pli(leg.rtcp_ssrc, leg.in_ssrc))
        except SrtpError:
            return []
        leg.stats.pli_sent += 1
        return [(leg.rtcp_port, data, dest)]

    # ------------------------------------------------------------------ internals

    def _leg(self, leg_id: str) -> _VLeg:
        leg = self._legs.get(leg_id)
        if leg is None:
            raise MediaEngineError(f"no video leg {leg_id!r}")
        return leg

    def _new_ssrc(self) -> int:
        while True:
            ssrc = self._rng.randrange(1, 1 << 32)
            if ssrc not in self._used_ssrcs:
                self._used_ssrcs.add(ssrc)
                return ssrc


def _fingerprint(keys: SrtpKeys | None) -> bytes | None:
    return None if keys is None else hashlib.sha256(b"imsconf-video-key\x00" + keys.key_salt()).digest()


def _receives(direction: Direction) -> bool:
    """The leg sends us video (our side receives)."""
    return direction in (Direction.SENDRECV, Direction.RECVONLY)
