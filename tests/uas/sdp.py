"""Minimal SDP (RFC 8866) for one audio stream, with SDES a=crypto (RFC 4568). Independent of imsconf.sdp."""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass, field

from pylibsrtp import Policy

# suite name -> (pylibsrtp profile, master key length, master salt length)
SUITES: dict[str, tuple[int, int, int]] = {
    "AES_CM_128_HMAC_SHA1_80": (Policy.SRTP_PROFILE_AES128_CM_SHA1_80, 16, 14),
    "AES_CM_128_HMAC_SHA1_32": (Policy.SRTP_PROFILE_AES128_CM_SHA1_32, 16, 14),
    "AEAD_AES_128_GCM": (Policy.SRTP_PROFILE_AEAD_AES_128_GCM, 16, 12),
    "AEAD_AES_256_GCM": (Policy.SRTP_PROFILE_AEAD_AES_256_GCM, 32, 12),
}
DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")


@dataclass(frozen=True)
class Crypto:
    """One ``a=crypto`` line: tag, suite, master key||salt (raw bytes)."""

    tag: int
    suite: str
    key_salt: bytes = field(repr=False)

    @classmethod
    def generate(cls, suite: str = "AES_CM_128_HMAC_SHA1_80", tag: int = 1) -> Crypto:
        _, klen, slen = SUITES[suite]
        return cls(tag, suite, secrets.token_bytes(klen + slen))

    @property
    def b64(self) -> str:
        return base64.b64encode(self.key_salt).decode()

    @classmethod
    def parse(cls, value: str) -> Crypto | None:
        """``1 AES_CM_128_HMAC_SHA1_80 inline:KEY|2^31|1:1`` -> Crypto (None for unsupported suites)."""
        parts = value.split()
        if len(parts) < 3 or not parts[0].isdigit() or parts[1] not in SUITES:
            return None
        kp = parts[2]
        if not kp.startswith("inline:"):
            return None
        b64 = kp[7:].split("|")[0]
        try:
            raw = base64.b64decode(b64 + "=" * (-len(b64) % 4), validate=True)
        except ValueError:
            return None
        _, klen, slen = SUITES[parts[1]]
        if len(raw) != klen + slen:
            return None
        return cls(int(parts[0]), parts[1], raw)

    def line(self) -> str:
        return f"a=crypto:{self.tag} {self.suite} inline:{self.b64}"


@dataclass
class AudioSdp:
    """The parts of an SDP this UA cares about (the first audio m-line)."""

    ip: str
    port: int
    proto: str
    payload_types: list[int]
    rtpmap: dict[int, str] = field(default_factory=dict)
    direction: str = "sendrecv"
    cryptos: list[Crypto] = field(default_factory=list)
    rtcp_port: int | None = None
    session_id: str = "0"
    version: int = 0
    attributes: list[str] = field(default_factory=list)

    @property
    def telephone_event_pt(self) -> int | None:
        for pt, enc in self.rtpmap.items():
            if enc.lower().startswith("telephone-event/"):
                return pt
        return None

    @property
    def srtp(self) -> bool:
        return "SAVP" in self.proto


def build_sdp(
    ip: str,
    port: int,
    *,
    session_id: str,
    version: int,
    crypto: Crypto | list[Crypto] | None,
    direction: str = "sendrecv",
    payload_types: tuple[int, ...] = (0, 101),
    dtmf_pt: int = 101,
    rtcp_port: int | None = None,
    username: str = "-",
) -> bytes:
    cryptos = [crypto] if isinstance(crypto, Crypto) else list(crypto or [])
    proto = "RTP/SAVP" if cryptos else "RTP/AVP"
    lines = [
        "v=0",
        f"o={username} {session_id} {version} IN IP4 {ip}",
        "s=-",
        f"c=IN IP4 {ip}",
        "t=0 0",
        f"m=audio {port} {proto} {' '.join(str(p) for p in payload_types)}",
    ]
    for pt in payload_types:
        if pt == 0:
            lines.append("a=rtpmap:0 PCMU/8000")
        elif pt == 8:
            lines.append("a=rtpmap:8 PCMA/8000")
        elif pt == dtmf_pt:
            lines += [f"a=rtpmap:{pt} telephone-event/8000", f"a=fmtp:{pt} 0-15"]
    lines.append("a=ptime:20")
    if rtcp_port is not None:
        lines.append(f"a=rtcp:{rtcp_port}")
    lines += [c.line() for c in cryptos]
    lines.append(f"a={direction}")
    return ("\r\n".join(lines) + "\r\n").encode()


def parse_sdp(body: bytes) -> AudioSdp:
    text = body.decode("utf-8", errors="replace")
    sess_ip, media_ip = "0.0.0.0", None
    sess_dir, media_dir = "sendrecv", None
    sdp: AudioSdp | None = None
    in_audio = False
    session_id, version = "0", 0
    for raw in text.splitlines():
        line = raw.strip()
        if len(line) < 2 or line[1] != "=":
            continue
        kind, value = line[0], line[2:]
        if kind == "o":
            parts = value.split()
            if len(parts) >= 3:
                session_id = parts[1]
                version = int(parts[2]) if parts[2].isdigit() else 0
        elif kind == "m":
            if sdp is not None:  # only the first audio stream is used
                in_audio = False
                continue
            parts = value.split()
            in_audio = parts[0] == "audio"
            if in_audio:
                pts = [int(p) for p in parts[3:] if p.isdigit()]
                sdp = AudioSdp("", int(parts[1]), parts[2], pts)
        elif kind == "c":
            ip = value.split()[-1].split("/")[0]
            if sdp is None:
                sess_ip = ip
            elif in_audio:
                media_ip = ip
        elif kind == "a":
            name, _, arg = value.partition(":")
            if name in DIRECTIONS:
                if sdp is None:
                    sess_dir = name
                elif in_audio:
                    media_dir = name
                continue
            if sdp is None or not in_audio:
                continue
            sdp.attributes.append(value)
            if name == "rtpmap":
                pt, _, enc = arg.partition(" ")
                if pt.isdigit():
                    sdp.rtpmap[int(pt)] = enc.strip()
            elif name == "crypto":
                c = Crypto.parse(arg)
                if c is not None:
                    sdp.cryptos.append(c)
            elif name == "rtcp":
                first = arg.split()[0] if arg.split() else ""
                if first.isdigit():
                    sdp.rtcp_port = int(first)
    if sdp is None:
        raise ValueError("SDP without an audio m-line")
    sdp.ip = media_ip or sess_ip
    sdp.direction = media_dir or sess_dir
    sdp.session_id, sdp.version = session_id, version
    return sdp


def answer_direction(offered: str, want: str = "sendrecv") -> str:
    """RFC 3264 §6.1: the answer's direction given the offer's and what we would like."""
    can_send = offered in ("sendrecv", "recvonly") and want in ("sendrecv", "sendonly")
    can_recv = offered in ("sendrecv", "sendonly") and want in ("sendrecv", "recvonly")
    return {(True, True): "sendrecv", (True, False): "sendonly", (False, True): "recvonly"}.get(
        (can_send, can_recv), "inactive"
    )
