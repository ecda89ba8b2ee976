"""The runtime's MSRP listeners (imsconf.app.msrp) and their settings."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest

from imsconf.app.config import Settings, load_settings, parse_msrp_listen
from imsconf.app.msrp import self_signed, start_msrp_listeners
from imsconf.app.pki import ensure_dev_pki
from imsconf.focus.chat import FocusChat
from imsconf.transport.limits import StreamLimits


def test_settings() -> None:
    s = Settings()
    assert (s.msrp_listen, s.allow_plain_msrp, s.chat_history) == (("tls",), False, 20)
    assert parse_msrp_listen("tls:127.0.0.1:2855") == ("tls", "127.0.0.1", 2855)
    assert parse_msrp_listen("tcp") == ("tcp", None, 0)
    with pytest.raises(ValueError, match="allow_plain_msrp"):
        Settings(msrp_listen=("tcp",))
    assert Settings(msrp_listen=("tcp",), allow_plain_msrp=True).msrp_listen == ("tcp",)
    with pytest.raises(ValueError):
        parse_msrp_listen("udp:1.2.3.4:5")
    loaded = load_settings(None, {"msrp_listen": "tls,tcp", "allow_plain_msrp": "true", "chat_history": "3"})
    assert (loaded.msrp_listen, loaded.allow_plain_msrp, loaded.chat_history) == (("tls", "tcp"), True, 3)


def test_listeners_offer_their_ports_and_a_fingerprint_only_when_self_signed(tmp_path: Path) -> None:
    pki = ensure_dev_pki(tmp_path, ["localhost"])
    der = ssl.PEM_cert_to_DER_cert(pki.server_cert.read_text())
    assert not self_signed(der)  # issued by the conference CA
    assert self_signed(ssl.PEM_cert_to_DER_cert(pki.ca_cert.read_text()))

    async def run() -> None:
        chat = FocusChat(allow_plain=True)
        listeners = await start_msrp_listeners(
            chat,
            ["tls:127.0.0.1:0", "tcp:127.0.0.1:0"],
            media_host="127.0.0.1",
            cert=pki.server_cert,
            key=pki.server_key,
            ca=pki.ca_cert,
        )
        try:
            kinds = [kind for kind, _, _ in listeners.bound]
            assert kinds == ["msrp-tls", "msrp-tcp"]
            tcp_port = listeners.bound[1][2]
            # a stranger's first SEND names no session the switch handed out: 481, then closed
            reader, writer = await asyncio.open_connection("127.0.0.1", tcp_port)
            writer.write(
                b"MSRP abcd1234 SEND\r\nTo-Path: msrp://127.0.0.1/nobody;tcp\r\n"
                b"From-Path: msrp://127.0.0.1:9/me;tcp\r\n-------abcd1234$\r\n"
            )
            data = await asyncio.wait_for(reader.read(), 5)
            assert data.startswith(b"MSRP abcd1234 481 ")
            writer.close()
        finally:
            await listeners.close()

    asyncio.run(run())


def test_connections_over_the_per_source_cap_are_closed(tmp_path: Path) -> None:
    pki = ensure_dev_pki(tmp_path, ["localhost"])

    async def run() -> None:
        listeners = await start_msrp_listeners(
            FocusChat(allow_plain=True),
            ["tcp:127.0.0.1:0"],
            media_host="127.0.0.1",
            cert=pki.server_cert,
            key=pki.server_key,
            ca=pki.ca_cert,
            limits=StreamLimits(max_per_source=1, max_total=10),
        )
        try:
            port = listeners.bound[0][2]
            _r1, w1 = await asyncio.open_connection("127.0.0.1", port)
            r2, w2 = await asyncio.open_connection("127.0.0.1", port)
            assert await asyncio.wait_for(r2.read(), 5) == b""  # closed: one per source
            w2.close()
            w1.close()
            await asyncio.sleep(0.1)  # the first one's place is free again
            r3, w3 = await asyncio.open_connection("127.0.0.1", port)
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(r3.read(1), 0.3)
            w3.close()
        finally:
            await listeners.close()

    asyncio.run(run())
