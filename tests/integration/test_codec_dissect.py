"""tshark's own AMR-WB and Opus dissectors read our RTP payloads without a warning.

The packets are made here (our encoders, RTP headers by ``imsconf.media.rtp``) and written to a classic
pcap; tshark decodes them as RTP with ``-d udp.port==P,rtp -d rtp.pt==PT,amr_wb|opus`` and, for AMR,
the payload layout preference ``amr.encoding.version`` ("RFC 3267 BW-efficient" or "RFC 3267 octet
aligned"; RFC 3267 is the predecessor of RFC 4867, same layouts).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from capture import UdpPacket, write_pcap

from imsconf.media.codecs.amr import Amr, AmrSettings
from imsconf.media.codecs.base import Codec
from imsconf.media.codecs.opus import Opus
from imsconf.media.rtp import pack_rtp_header
from peers import require_peer

pytestmark = pytest.mark.peer
FRAMES = 8


def rtp_stream(codec: Codec, pt: int, port: int) -> list[UdpPacket]:
    n = codec.frame_samples
    t = np.arange(n * FRAMES) / codec.sample_rate
    pcm = (8000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
    out = []
    for i in range(FRAMES):
        payload = codec.encode(pcm[i * n : (i + 1) * n])
        header = pack_rtp_header(pt, i, i * codec.timestamp_step, 0x1000 + port, marker=i == 0)
        out.append(UdpPacket(1.0 + 0.02 * i, "127.0.0.1", port, "127.0.0.1", port, header + payload))
    return out


def dissect(pcap: Path, *args: str) -> str:
    tshark = require_peer("tshark")
    res = subprocess.run([tshark, "-r", str(pcap), "-V", *args], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    return res.stdout


@pytest.mark.parametrize(
    ("octet_aligned", "layout"), [(False, "RFC 3267 BW-efficient"), (True, "RFC 3267 octet aligned")]
)
def test_tshark_reads_our_amr_wb(tmp_path: Path, octet_aligned: bool, layout: str) -> None:
    pcap = write_pcap(
        tmp_path / "amrwb.pcap", rtp_stream(Amr(AmrSettings(octet_aligned=octet_aligned)), 97, 40000)
    )
    text = dissect(
        pcap, "-d", "udp.port==40000,rtp", "-d", "rtp.pt==97,amr_wb", "-o", f"amr.encoding.version:{layout}"
    )
    assert text.count("Adaptive Multi-Rate") == FRAMES
    assert text.count("FT bits: AMR-WB 23.85 kbit/s (8)") == FRAMES
    assert text.count("CMR: No mode request (15)") == FRAMES
    assert "Malformed" not in text and "Expert Info" not in text, text


def test_tshark_reads_our_opus(tmp_path: Path) -> None:
    pcap = write_pcap(tmp_path / "opus.pcap", rtp_stream(Opus(), 111, 40004))
    text = dissect(pcap, "-d", "udp.port==40004,rtp", "-d", "rtp.pt==111,opus")
    assert text.count("Opus Interactive Audio Codec") == FRAMES
    assert text.count("TOC.config: WB, SILK-only ptime=20") == FRAMES
    assert "Malformed" not in text and "Expert Info" not in text, text
