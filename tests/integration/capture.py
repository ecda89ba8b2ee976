"""Capture loopback UDP media with dumpcap/tshark and prove it is SRTP, not clear RTP.

``Capture`` runs ``dumpcap -i lo -f "udp and (src portrange A-B or ...) and (dst portrange A-B or ...)" -P``
in the background (PID kept, only that process is ever signalled). ``read_pcap`` is a small classic-pcap
reader giving UDP datagrams. ``analyse_media`` sorts the datagrams into RTP streams (per 5-tuple and SSRC),
RTCP and anything else; ``assert_srtp_only`` then demands, for every RTP stream:

* in a G.711 stream (payload type 0 or 8), no payload of exactly a clear G.711 frame size (80/160/240 bytes
  for 10/20/30 ms), while the SRTP form is clear payload + auth tag (170 bytes for 20 ms with
  AES_CM_128_HMAC_SHA1_80);
* a byte distribution that looks random (Shannon entropy of the concatenated payloads >= 7.5 bits/byte;
  G.711 of one or two tones is far lower);
* decoded as if it were PCMU, none of the known tones stands out of the spectrum (clear PCMU of a tone
  would be 30+ dB above its floor);

and for RTCP: the SRTCP E flag set in the index word in front of the auth tag, and the packet does not parse
as a plain compound RTCP packet.

baresip 1.0.0 itself sends two kinds of clear RTCP even with ``srtp-mand`` (seen on the wire): a 16-byte APP
packet ``PING``/``PONG`` when the stream starts (it sends the SRTCP form right after it), and the RTCP
BYE + SDES (CNAME) compound at hang-up. ``assert_srtp_only(..., baresip_rtcp_from=[phone RTP ranges])``
tolerates exactly these two forms, and only from those ports; anything the server sends must be SRTCP.
"""

from __future__ import annotations

import math
import shutil
import signal
import struct
import subprocess
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from audio import pcmu_decode, spectrum_levels

__all__ = [
    "Capture",
    "MediaReport",
    "RtpStream",
    "UdpPacket",
    "analyse_media",
    "assert_srtp_only",
    "baresip_clear_rtcp_quirk",
    "byte_entropy",
    "read_pcap",
    "write_pcap",
]

G711_CLEAR_SIZES = (80, 160, 240)


@dataclass(frozen=True)
class UdpPacket:
    ts: float
    src: str
    sport: int
    dst: str
    dport: int
    payload: bytes


class Capture:
    """Background dumpcap (or tshark) on ``lo`` for UDP on the given port ranges."""

    def __init__(self, pcap: Path, port_ranges: Sequence[tuple[int, int]], *, iface: str = "lo") -> None:
        self.pcap = pcap
        self.port_ranges = list(port_ranges)
        self.iface = iface
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = pcap.with_suffix(".dumpcap.log")

    @property
    def bpf(self) -> str:
        """Both ends inside the given ranges: other tests running at the same time on loopback use ephemeral
        ports that may fall inside one of our ranges, but never talk between two of them."""
        src = " or ".join(f"src portrange {lo}-{hi}" for lo, hi in self.port_ranges)
        dst = " or ".join(f"dst portrange {lo}-{hi}" for lo, hi in self.port_ranges)
        return f"udp and ({src}) and ({dst})"

    def start(self, timeout: float = 10.0) -> Capture:
        tool = shutil.which("dumpcap") or shutil.which("tshark")
        if tool is None:
            raise RuntimeError("neither dumpcap nor tshark is installed")
        self.pcap.parent.mkdir(parents=True, exist_ok=True)
        # -P: classic pcap (not pcapng), so read_pcap can parse it; -q: no packet count on stderr
        cmd = [tool, "-i", self.iface, "-f", self.bpf, "-P", "-q", "-w", str(self.pcap)]
        if tool.endswith("tshark"):
            cmd = [tool, "-i", self.iface, "-f", self.bpf, "-F", "pcap", "-q", "-w", str(self.pcap)]
        log = open(self.log_path, "wb")  # noqa: SIM115 - kept open for the process lifetime
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"capture exited with {self.proc.returncode}: {self.log()}")
            if "Capturing on" in self.log():
                time.sleep(0.2)  # the filter is attached before the message, but give the ring a moment
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"capture did not start within {timeout} s: {self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout: float = 5.0) -> Path:
        """Stop the capture (SIGINT to our PID only) and return the pcap path."""
        if self.proc is not None and self.proc.poll() is None:
            time.sleep(0.3)  # let the last packets reach the ring buffer
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.pcap

    def packets(self) -> list[UdpPacket]:
        return list(read_pcap(self.pcap))

    def __enter__(self) -> Capture:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _ip_udp(frame: bytes, ts: float) -> UdpPacket | None:
    if len(frame) < 1:
        return None
    version = frame[0] >> 4
    if version == 4:
        ihl = (frame[0] & 0x0F) * 4
        if len(frame) < ihl + 8 or frame[9] != 17:
            return None
        frag = struct.unpack_from("!H", frame, 6)[0]
        if frag & 0x1FFF or frag & 0x2000:  # a fragment: not expected on loopback for media sizes
            return None
        src = ".".join(str(b) for b in frame[12:16])
        dst = ".".join(str(b) for b in frame[16:20])
        udp = frame[ihl:]
    elif version == 6:
        if len(frame) < 48 or frame[6] != 17:
            return None
        src = frame[8:24].hex()
        dst = frame[24:40].hex()
        udp = frame[40:]
    else:
        return None
    sport, dport, ulen = struct.unpack_from("!HHH", udp, 0)
    return UdpPacket(ts, src, sport, dst, dport, bytes(udp[8:ulen]))


def read_pcap(path: Path) -> Iterator[UdpPacket]:
    """UDP datagrams from a classic pcap (Ethernet, Linux cooked v1/v2, BSD null or raw IP link types)."""
    raw = path.read_bytes()
    if len(raw) < 24:
        return
    magic = raw[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        e = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        e = ">"
    else:
        raise ValueError(f"{path}: not a classic pcap file (pcapng? magic {magic.hex()})")
    nsec = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    linktype = struct.unpack_from(e + "I", raw, 20)[0] & 0x0FFFFFFF
    pos = 24
    while pos + 16 <= len(raw):
        sec, frac, incl, _orig = struct.unpack_from(e + "IIII", raw, pos)
        pos += 16
        frame = raw[pos : pos + incl]
        pos += incl
        ts = sec + frac / (1e9 if nsec else 1e6)
        if linktype == 1:  # Ethernet
            if len(frame) < 14:
                continue
            ethertype = struct.unpack_from("!H", frame, 12)[0]
            off = 14
            if ethertype == 0x8100:
                ethertype = struct.unpack_from("!H", frame, 16)[0]
                off = 18
            if ethertype not in (0x0800, 0x86DD):
                continue
            ip = frame[off:]
        elif linktype == 113:  # Linux cooked v1
            ip = frame[16:]
        elif linktype == 276:  # Linux cooked v2
            ip = frame[20:]
        elif linktype == 0:  # BSD loopback
            ip = frame[4:]
        elif linktype in (12, 101, 228, 229):  # raw IP
            ip = frame
        else:
            raise ValueError(f"{path}: unsupported link type {linktype}")
        pkt = _ip_udp(ip, ts)
        if pkt is not None:
            yield pkt


def byte_entropy(data: bytes) -> float:
    """Shannon entropy in bits per byte (8.0 = uniformly random)."""
    if not data:
        return 0.0
    counts = np.bincount(np.frombuffer(data, dtype=np.uint8), minlength=256).astype(np.float64)
    p = counts[counts > 0] / len(data)
    return float(-(p * np.log2(p)).sum())


def _rtp_payload(p: bytes) -> bytes | None:
    if len(p) < 12:
        return None
    cc = p[0] & 0x0F
    off = 12 + 4 * cc
    if p[0] & 0x10:  # header extension
        if len(p) < off + 4:
            return None
        off += 4 + 4 * struct.unpack_from("!H", p, off + 2)[0]
    return p[off:] if off <= len(p) else None


def _is_plain_rtcp_compound(p: bytes) -> bool:
    """True when the whole datagram parses as a plain RTCP compound packet (which SRTCP, with its trailer,
    never does except by a 1-in-many chance)."""
    pos = 0
    while pos + 4 <= len(p):
        if p[pos] >> 6 != 2 or not 192 <= p[pos + 1] <= 223:
            return False
        pos += 4 * (struct.unpack_from("!H", p, pos + 2)[0] + 1)
    return pos == len(p)


def baresip_clear_rtcp_quirk(p: bytes) -> str | None:
    """Which known clear RTCP packet of baresip 1.0.0 *p* is (``APP PING`` or ``BYE+SDES``), or None."""
    if not _is_plain_rtcp_compound(p):
        return None
    if len(p) == 16 and p[1] == 204 and p[8:16] == b"PINGPONG":
        return "APP PING"
    types: set[int] = set()
    pos = 0
    while pos + 4 <= len(p):
        types.add(p[pos + 1])
        pos += 4 * (struct.unpack_from("!H", p, pos + 2)[0] + 1)
    if 203 in types and types <= {202, 203}:
        return "BYE+SDES"
    return None


@dataclass
class RtpStream:
    src: str
    sport: int
    dst: str
    dport: int
    ssrc: int
    payload_types: Counter[int] = field(default_factory=Counter)
    sizes: Counter[int] = field(default_factory=Counter)
    payloads: list[bytes] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.src}:{self.sport}->{self.dst}:{self.dport} ssrc={self.ssrc:08x}"

    def describe(self) -> str:
        return (
            f"{self.key}: {len(self.payloads)} pkts, pt={dict(self.payload_types)}, "
            f"payload sizes={dict(self.sizes.most_common(4))}"
        )


@dataclass
class MediaReport:
    rtp: dict[tuple[str, int, str, int, int], RtpStream] = field(default_factory=dict)
    rtcp: list[UdpPacket] = field(default_factory=list)
    other: list[UdpPacket] = field(default_factory=list)

    @property
    def rtp_packets(self) -> int:
        return sum(len(s.payloads) for s in self.rtp.values())

    def describe(self) -> str:
        lines = [
            f"{self.rtp_packets} RTP pkts in {len(self.rtp)} streams, "
            f"{len(self.rtcp)} RTCP, {len(self.other)} other"
        ]
        lines += ["  " + s.describe() for s in self.rtp.values()]
        if self.rtcp:
            sizes = Counter(len(p.payload) for p in self.rtcp)
            lines.append(f"  RTCP sizes: {dict(sizes.most_common(6))}")
        for p in self.other[:5]:
            lines.append(
                f"  other: {p.src}:{p.sport}->{p.dst}:{p.dport} {len(p.payload)} bytes {p.payload[:16].hex()}"
            )
        return "\n".join(lines)


def analyse_media(packets: Iterable[UdpPacket]) -> MediaReport:
    rep = MediaReport()
    for pkt in packets:
        p = pkt.payload
        if len(p) < 8 or p[0] >> 6 != 2:
            rep.other.append(pkt)
            continue
        if 192 <= p[1] <= 223:  # RTCP packet types 192..223 (SR=200, RR=201, ...)
            rep.rtcp.append(pkt)
            continue
        payload = _rtp_payload(p)
        if payload is None:
            rep.other.append(pkt)
            continue
        ssrc = struct.unpack_from("!I", p, 8)[0]
        key = (pkt.src, pkt.sport, pkt.dst, pkt.dport, ssrc)
        st = rep.rtp.get(key)
        if st is None:
            st = rep.rtp[key] = RtpStream(pkt.src, pkt.sport, pkt.dst, pkt.dport, ssrc)
        st.payload_types[p[1] & 0x7F] += 1
        st.sizes[len(payload)] += 1
        st.payloads.append(payload)
    return rep


def assert_srtp_only(
    rep: MediaReport,
    *,
    tones: Sequence[float] = (),
    auth_tag_len: int = 10,
    min_streams: int = 1,
    min_packets_per_stream: int = 50,
    min_entropy: float = 7.5,
    max_tone_snr_db: float = 15.0,
    baresip_rtcp_from: Sequence[tuple[int, int]] = (),
    where: str = "",
) -> None:
    """Fail unless every RTP stream in *rep* is encrypted and authenticated (see the module docstring)."""
    problems: list[str] = []
    if rep.other:
        problems.append(f"{len(rep.other)} UDP datagrams on the media ports are neither RTP nor RTCP")
    streams = [s for s in rep.rtp.values() if len(s.payloads) >= min_packets_per_stream]
    if len(streams) < min_streams:
        problems.append(
            f"expected >= {min_streams} RTP streams with >= {min_packets_per_stream} packets, "
            f"found {len(streams)}"
        )
    for st in rep.rtp.values():
        # the size rule is for G.711 streams (static payload types 0 and 8): a variable-rate codec's SRTP
        # packet (Opus, AMR-WB) may have any size, 80 octets among them
        g711 = set(st.payload_types) <= {0, 8}
        clear = {n: c for n, c in st.sizes.items() if n in G711_CLEAR_SIZES} if g711 else {}
        if clear:
            problems.append(f"{st.key}: payloads of a clear G.711 frame size {clear}")
        short = {n: c for n, c in st.sizes.items() if n <= auth_tag_len}
        if short:
            problems.append(f"{st.key}: payloads too short to carry a {auth_tag_len}-byte auth tag {short}")
        if len(st.payloads) < min_packets_per_stream:
            continue
        body = b"".join(p[:-auth_tag_len] for p in st.payloads if len(p) > auth_tag_len)
        ent = byte_entropy(body)
        if ent < min_entropy:
            problems.append(
                f"{st.key}: payload entropy {ent:.2f} bits/byte < {min_entropy} (looks like clear audio)"
            )
        if tones and len(body) >= 4000:
            x = pcmu_decode(body)
            levels, floor = spectrum_levels(x, 8000, tones)
            loud = {f: round(v - floor, 1) for f, v in levels.items() if v - floor > max_tone_snr_db}
            if loud:
                problems.append(f"{st.key}: decoded as PCMU the payload carries tones {loud} dB above floor")
    for pkt in rep.rtcp:
        p = pkt.payload
        from_phone = any(lo <= pkt.sport <= hi for lo, hi in baresip_rtcp_from)
        if from_phone and baresip_clear_rtcp_quirk(p) is not None:
            continue
        if _is_plain_rtcp_compound(p):
            problems.append(
                f"RTCP {pkt.src}:{pkt.sport}->{pkt.dst}:{pkt.dport} {len(p)} bytes parses as plain RTCP: "
                f"{p[:24].hex()}"
            )
        elif len(p) < 8 + 4 + auth_tag_len or not p[-auth_tag_len - 4] & 0x80:
            problems.append(
                f"RTCP {pkt.src}:{pkt.sport}->{pkt.dst}:{pkt.dport} {len(p)} bytes lacks the SRTCP E flag: "
                f"{p.hex()}"
            )
    if problems:
        prefix = f"{where}: " if where else ""
        shown = problems[:12] + ([f"... {len(problems) - 12} more"] if len(problems) > 12 else [])
        raise AssertionError(
            prefix + "media is not SRTP-only:\n  " + "\n  ".join(shown) + "\n" + rep.describe()
        )


def entropy_of_tone_pcmu(freqs: Sequence[float], seconds: float = 2.0) -> float:
    """Entropy of clear PCMU carrying the sum of *freqs* (for self-tests: shows the threshold's margin)."""
    from audio import pcmu_encode

    t = np.arange(int(8000 * seconds)) / 8000.0
    x = sum((0.25 * np.sin(2 * math.pi * f * t) for f in freqs), np.zeros_like(t))
    return byte_entropy(pcmu_encode(x))


def write_pcap(path: Path, packets: Iterable[UdpPacket]) -> Path:
    """A classic Ethernet pcap of IPv4/UDP datagrams (for self-tests of the analysis)."""
    out = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    for pkt in packets:
        udp = struct.pack("!HHHH", pkt.sport, pkt.dport, 8 + len(pkt.payload), 0) + pkt.payload
        ip = struct.pack(
            "!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0x4000, 64, 17, 0,
            bytes(int(x) for x in pkt.src.split(".")), bytes(int(x) for x in pkt.dst.split(".")),
        )  # fmt: skip
        frame = b"\x00" * 12 + b"\x08\x00" + ip + udp
        sec = int(pkt.ts)
        out += struct.pack("<IIII", sec, int((pkt.ts - sec) * 1e6), len(frame), len(frame)) + frame
    path.write_bytes(bytes(out))
    return path
