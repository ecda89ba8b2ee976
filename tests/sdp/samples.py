"""SDP bodies shaped like those the real peers send (baresip 1.0.0, SIPp)."""

from __future__ import annotations

import base64

KEY80 = bytes(range(30))
KEY80_B64 = base64.b64encode(KEY80).decode()
KEY_GCM = bytes(range(100, 128))
KEY_GCM_B64 = base64.b64encode(KEY_GCM).decode()


def crlf(text: str) -> bytes:
    return "".join(line.strip() + "\r\n" for line in text.strip().splitlines()).encode()


# baresip 1.0.0, mediaenc=srtp-mand, audio_codecs=pcmu, rtcp_mux no
BARESIP_OFFER = crlf(f"""
v=0
o=- 1441271342 3375293862 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
a=tool:baresip 1.0.0
m=audio 10000 RTP/SAVP 0 101
b=AS:64
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=sendrecv
a=label:1
a=ssrc:1840353120 cname:a1b2c3
a=rtcp-rsize
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{KEY80_B64}
a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:{KEY80_B64}
a=crypto:3 AEAD_AES_128_GCM inline:{KEY_GCM_B64}
""")

# SIPp built-in uac
SIPP_OFFER = crlf("""
v=0
o=user1 53655765 2353687637 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio 6000 RTP/AVP 0
a=rtpmap:0 PCMU/8000
""")
