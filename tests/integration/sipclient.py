"""A tiny blocking SIP test client over UDP, TCP or TLS (independent of the server's transport code)."""

from __future__ import annotations

import hashlib
import re
import secrets
import socket
import ssl
import time
from pathlib import Path
from typing import Any


def build_request(
    method: str,
    ruri: str,
    *,
    transport: str,
    local: tuple[str, int],
    extra: list[str] | None = None,
    body: bytes = b"",
    cseq: int = 1,
    call_id: str | None = None,
    from_tag: str | None = None,
) -> bytes:
    via_t = {"udp": "UDP", "tcp": "TCP", "tls": "TLS"}[transport]
    lines = [
        f"{method} {ruri} SIP/2.0",
        f"Via: SIP/2.0/{via_t} {local[0]}:{local[1]};branch=z9hG4bK{secrets.token_hex(8)};rport",
        f"From: <sip:alice@localhost>;tag={from_tag or secrets.token_hex(4)}",
        f"To: <{ruri}>",
        f"Call-ID: {call_id or secrets.token_hex(8)}",
        f"CSeq: {cseq} {method}",
        "Max-Forwards: 70",
        f"Contact: <sip:alice@{local[0]}:{local[1]};transport={transport}>",
        *(extra or []),
        f"Content-Length: {len(body)}",
        "",
        "",
    ]
    return "\r\n".join(lines).encode() + body


class SipClient:
    def __init__(self, transport: str, server: tuple[str, int], ca: Path | None = None) -> None:
        self.transport = transport
        self.server = server
        self.buf = b""
        if transport == "udp":
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.sock.bind(("127.0.0.1", 0))
        else:
            raw = socket.create_connection(server, timeout=5)
            if transport == "tls":
                ctx = ssl.create_default_context(cafile=str(ca) if ca else None)
                if ca is None:
                    ctx.check_hostname = False
                    ctx.verify_mode = ssl.CERT_NONE
                self.sock = ctx.wrap_socket(raw, server_hostname="localhost")
            else:
                self.sock = raw
        self.sock.settimeout(5)
        self.local: tuple[str, int] = self.sock.getsockname()[:2]

    def close(self) -> None:
        self.sock.close()

    def send_raw(self, data: bytes) -> None:
        if self.transport == "udp":
            self.sock.sendto(data, self.server)
        else:
            self.sock.sendall(data)

    def recv_message(self, timeout: float = 5.0) -> bytes | None:
        """One whole message, or None on timeout (stream: framed by Content-Length)."""
        self.sock.settimeout(timeout)
        try:
            if self.transport == "udp":
                data, _ = self.sock.recvfrom(65535)
                return data
            deadline = time.monotonic() + timeout
            while True:
                while self.buf.startswith(b"\r\n"):
                    self.buf = self.buf[2:]
                idx = self.buf.find(b"\r\n\r\n")
                if idx >= 0:
                    m = re.search(rb"(?im)^(?:content-length|l)\s*:\s*(\d+)", self.buf[:idx])
                    clen = int(m.group(1)) if m else 0
                    end = idx + 4 + clen
                    if len(self.buf) >= end:
                        msg, self.buf = self.buf[:end], self.buf[end:]
                        return msg
                self.sock.settimeout(max(0.01, deadline - time.monotonic()))
                chunk = self.sock.recv(65535)
                if not chunk:
                    return None
                self.buf += chunk
        except TimeoutError:
            return None

    def recv_final(self, timeout: float = 5.0) -> bytes | None:
        """Skip provisional responses."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            msg = self.recv_message(left)
            if msg is None:
                return None
            if not re.match(rb"SIP/2.0 1\d\d ", msg):
                return msg
        return None

    def request(self, method: str, ruri: str, **kw: Any) -> bytes | None:
        """Send a request and return its final response (matched by Call-ID and CSeq, so that stale
        retransmissions of earlier responses are skipped); a non-2xx answer to INVITE is ACKed."""
        data = build_request(method, ruri, transport=self.transport, local=self.local, **kw)
        self.send_raw(data)
        head = data.split(b"\r\n\r\n")[0].decode()
        call_id = next(ln.split(":", 1)[1].strip() for ln in head.split("\r\n") if ln.startswith("Call-ID:"))
        cseq = next(ln.split(":", 1)[1].strip() for ln in head.split("\r\n") if ln.startswith("CSeq:"))
        deadline = time.monotonic() + 5.0
        while (left := deadline - time.monotonic()) > 0:
            resp = self.recv_final(left)
            if resp is None:
                return None
            if header(resp, "Call-ID") == [call_id] and header(resp, "CSeq") == [cseq]:
                status = status_of(resp) or 0
                if method == "INVITE" and status >= 300:
                    self._ack(data, resp)
                return resp
        return None

    def _ack(self, invite: bytes, resp: bytes) -> None:
        """ACK for a non-2xx final response (RFC 3261 §17.1.1.3): same branch, the response's To."""
        lines = invite.split(b"\r\n\r\n")[0].decode().split("\r\n")
        ruri = lines[0].split(" ")[1]
        keep = [ln for ln in lines[1:] if ln.split(":")[0] in ("Via", "From", "Call-ID", "Max-Forwards")]
        cseq_n = next(ln for ln in lines if ln.startswith("CSeq:")).split()[1]
        ack = [f"ACK {ruri} SIP/2.0", *keep, f"To: {header(resp, 'To')[0]}", f"CSeq: {cseq_n} ACK",
               "Content-Length: 0", "", ""]  # fmt: skip
        self.send_raw("\r\n".join(ack).encode())


def status_of(msg: bytes | None) -> int | None:
    if msg is None:
        return None
    m = re.match(rb"SIP/2.0 (\d{3})", msg)
    return int(m.group(1)) if m else None


def header(msg: bytes, name: str) -> list[str]:
    return [
        m.group(1).decode().strip()
        for m in re.finditer(rf"(?im)^{re.escape(name)}\s*:\s*(.*?)\r?$".encode(), msg.split(b"\r\n\r\n")[0])
    ]


def digest_authorization(
    challenge: str, method: str, uri: str, username: str, password: str, algorithm: str
) -> str:
    """Authorization value answering one WWW-Authenticate challenge (RFC 7616), written independently."""
    params = dict(re.findall(r'(\w+)="?([^",]*)"?', challenge))

    def h(s: str) -> str:
        return (hashlib.sha256 if algorithm == "SHA-256" else hashlib.md5)(s.encode()).hexdigest()

    ha1 = h(f"{username}:{params['realm']}:{password}")
    ha2 = h(f"{method}:{uri}")
    cnonce = secrets.token_hex(8)
    nc = "00000001"
    resp = h(f"{ha1}:{params['nonce']}:{nc}:{cnonce}:auth:{ha2}")
    return (
        f'Digest username="{username}", realm="{params["realm"]}", nonce="{params["nonce"]}", uri="{uri}", '
        f'response="{resp}", algorithm={algorithm}, cnonce="{cnonce}", nc={nc}, qop=auth, '
        f'opaque="{params.get("opaque", "")}"'
    )
