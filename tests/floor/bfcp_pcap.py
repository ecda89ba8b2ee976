"""A minimal pcap writer for a synthesised TCP conversation (test helper, no dependencies).

Ethernet + IPv4 + TCP, a three-way handshake, then one segment per payload with correct sequence and
acknowledgement numbers, so Wireshark's TCP analysis sees a clean stream.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

_PCAP_HEADER = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)  # LINKTYPE_ETHERNET


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return int(~total & 0xFFFF)


def _ip4(addr: str) -> bytes:
    return bytes(int(x) for x in addr.split("."))


class TcpConversation:
    def __init__(self, client: tuple[str, int], server: tuple[str, int]) -> None:
        self.client = client
        self.server = server
        self._seq = {True: 1000, False: 5000}  # key: from_client
        self._frames: list[bytes] = []
        self._t = 0
        self._segment(True, b"", 0x02)  # SYN
        self._seq[True] += 1
        self._segment(False, b"", 0x12)  # SYN-ACK
        self._seq[False] += 1
        self._segment(True, b"", 0x10)  # ACK

    def _segment(self, from_client: bool, payload: bytes, flags: int) -> None:
        src, dst = (self.client, self.server) if from_client else (self.server, self.client)
        seq = self._seq[from_client]
        ack = self._seq[not from_client] if flags & 0x10 else 0
        tcp = struct.pack("!HHIIBBHHH", src[1], dst[1], seq, ack, 5 << 4, flags, 65535, 0, 0) + payload
        pseudo = _ip4(src[0]) + _ip4(dst[0]) + struct.pack("!BBH", 0, 6, len(tcp))
        tcp = tcp[:16] + struct.pack("!H", _checksum(pseudo + tcp)) + tcp[18:]
        ip = struct.pack(
            "!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0x4000, 64, 6, 0, _ip4(src[0]), _ip4(dst[0])
        )
        ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
        eth = b"\x02\0\0\0\0\x02" + b"\x02\0\0\0\0\x01" + b"\x08\x00"
        frame = eth + ip + tcp
        self._t += 1000
        self._frames.append(
            struct.pack("<IIII", self._t // 1_000_000, self._t % 1_000_000, len(frame), len(frame)) + frame
        )
        self._seq[from_client] += len(payload)

    def send(self, from_client: bool, payload: bytes) -> None:
        self._segment(from_client, payload, 0x18)  # PSH-ACK

    def pcap(self) -> bytes:
        return _PCAP_HEADER + b"".join(self._frames)


def write_pcap(
    path: str, client: tuple[str, int], server: tuple[str, int], segments: Iterable[tuple[bool, bytes]]
) -> None:
    conv = TcpConversation(client, server)
    for from_client, payload in segments:
        conv.send(from_client, payload)
    with open(path, "wb") as f:
        f.write(conv.pcap())
