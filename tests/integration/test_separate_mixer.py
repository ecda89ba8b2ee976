"""``imsconf mixer`` in its own process: the control channel is mutual TLS with the conference CA only.

The three-phone conference through a separate mixer is in test_baresip_conference.py (``separate-mixer``).
"""

from __future__ import annotations

import json
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import MixerProcess, ServerProcess, free_port_pair, free_tcp_port

from imsconf.app.pki import PkiPaths, client_ssl_context, ensure_dev_pki, issue_cert


@pytest.fixture
def mixer(tmp_path: Path) -> Iterator[MixerProcess]:
    m = MixerProcess(tmp_path / "var", f"127.0.0.1:{free_tcp_port()}")
    m.start()
    yield m
    m.stop()


def _connect(m: MixerProcess, ctx: ssl.SSLContext) -> bytes:
    host, port = m.listen.rsplit(":", 1)
    with (
        socket.create_connection((host, int(port)), timeout=5) as raw,
        ctx.wrap_socket(raw, server_hostname=host) as tls,
    ):
        tls.settimeout(5)
        return tls.recv(4096)  # the mixer's hello (or an alert / EOF when it refuses us)


def test_focus_certificate_from_the_conference_ca_is_accepted(mixer: MixerProcess) -> None:
    pki = PkiPaths.under(mixer.data_dir)
    cert, key = issue_cert(pki, "focus-test", mixer.data_dir / "certs", client=True)
    hello = _connect(mixer, client_ssl_context(pki.ca_cert, cert, key))
    first = json.loads(hello.split(b"\n")[0])
    assert first["hello"]["version"] == 1


def test_client_without_certificate_is_refused(mixer: MixerProcess) -> None:
    pki = PkiPaths.under(mixer.data_dir)
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        data = _connect(mixer, client_ssl_context(pki.ca_cert))
        if not data:  # TLS 1.3: the refusal can surface as an alert on the first read, or EOF
            raise ConnectionError("closed by the mixer")


def test_client_certificate_from_another_ca_is_refused(mixer: MixerProcess, tmp_path: Path) -> None:
    other = ensure_dev_pki(tmp_path / "other", ["localhost"])
    cert, key = issue_cert(other, "intruder", tmp_path / "other" / "certs", client=True)
    ctx = client_ssl_context(PkiPaths.under(mixer.data_dir).ca_cert, cert, key)
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        data = _connect(mixer, ctx)
        if not data:
            raise ConnectionError("closed by the mixer")
    assert "focus_connected" not in mixer.log()


def test_focus_refuses_a_mixer_from_another_ca(mixer: MixerProcess, tmp_path: Path) -> None:
    """The server's own data directory holds another CA: it must not trust that mixer (nor send it keys)."""
    cfg = tmp_path / "focus.toml"
    cfg.write_text(f'mixer = "{mixer.listen}"\n')
    srv = ServerProcess(tmp_path / "focus-var", free_port_pair())
    with pytest.raises(RuntimeError, match="exited"):
        srv.start("--config", str(cfg), auth="none", timeout=15)
    assert "cannot start" in srv.log() and "SSL" in srv.log(), srv.log()[-1000:]
    assert "focus_connected" not in mixer.log()
