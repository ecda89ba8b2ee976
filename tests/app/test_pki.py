"""Development PKI: created once, kept byte for byte, verifiable, and usable for (mutual) TLS on loopback."""

from __future__ import annotations

import ipaddress
import socket
import ssl
import stat
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import PolicyBuilder, Store

from imsconf.app.pki import PkiPaths, client_ssl_context, ensure_dev_pki, issue_cert, server_ssl_context


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PkiPaths:
    return ensure_dev_pki(tmp_path_factory.mktemp("data"), ["conf.example.com", "192.0.2.7"])


@pytest.fixture(scope="module")
def other_pki(tmp_path_factory: pytest.TempPathFactory) -> PkiPaths:
    return ensure_dev_pki(tmp_path_factory.mktemp("other"), [])


def _all_files(p: PkiPaths) -> list[Path]:
    return [p.ca_cert, p.ca_key, p.server_cert, p.server_key, p.server_combined]


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_first_start_creates_files_with_modes(pki: PkiPaths) -> None:
    assert pki.directory.name == "pki"
    for f in _all_files(pki):
        assert f.is_file(), f
    for key_file in (pki.ca_key, pki.server_key, pki.server_combined):
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(pki.directory.stat().st_mode) & 0o077 == 0


def test_second_start_keeps_files_byte_for_byte(tmp_path: Path) -> None:
    first = ensure_dev_pki(tmp_path, ["a.example"])
    before = {f: f.read_bytes() for f in _all_files(first)}
    second = ensure_dev_pki(tmp_path, ["b.example"])
    assert second == first
    assert {f: f.read_bytes() for f in _all_files(second)} == before


def test_missing_server_files_are_reissued_from_existing_ca(tmp_path: Path) -> None:
    p = ensure_dev_pki(tmp_path, [])
    ca = p.ca_cert.read_bytes()
    for f in (p.server_cert, p.server_key, p.server_combined):
        f.unlink()
    ensure_dev_pki(tmp_path, ["new.example"])
    assert p.ca_cert.read_bytes() == ca
    assert _cert(p.server_cert).issuer == _cert(p.ca_cert).subject


def test_orphan_key_is_not_overwritten(tmp_path: Path) -> None:
    p = ensure_dev_pki(tmp_path, [])
    p.server_cert.unlink()
    key = p.server_key.read_bytes()
    with pytest.raises(FileExistsError):
        ensure_dev_pki(tmp_path, [])
    assert p.server_key.read_bytes() == key


def test_ca_certificate(pki: PkiPaths) -> None:
    ca = _cert(pki.ca_cert)
    assert ca.subject == ca.issuer
    bc = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca
    assert ca.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    key = ca.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1"


def test_server_cert_sans_and_chain(pki: PkiPaths) -> None:
    leaf = _cert(pki.server_cert)
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(san.get_values_for_type(x509.DNSName)) == {"localhost", "conf.example.com"}
    assert set(san.get_values_for_type(x509.IPAddress)) == {
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
        ipaddress.ip_address("192.0.2.7"),
    }
    assert (
        ExtendedKeyUsageOID.SERVER_AUTH
        in leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    )
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    store = Store([_cert(pki.ca_cert)])
    for name in (
        x509.DNSName("localhost"),
        x509.DNSName("conf.example.com"),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ):
        PolicyBuilder().store(store).build_server_verifier(name).verify(leaf, [])
    with pytest.raises(Exception):  # noqa: B017 - cryptography's VerificationError
        PolicyBuilder().store(Store([_cert(pki.ca_cert)])).build_server_verifier(
            x509.DNSName("evil.example")
        ).verify(leaf, [])


def test_combined_pem_is_cert_then_key(pki: PkiPaths) -> None:
    data = pki.server_combined.read_bytes()
    assert data == pki.server_cert.read_bytes() + pki.server_key.read_bytes()
    assert data.index(b"BEGIN CERTIFICATE") < data.index(b"PRIVATE KEY")
    ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(pki.server_combined)


def test_issue_client_cert(pki: PkiPaths, tmp_path: Path) -> None:
    cert_path, key_path = issue_cert(pki, "mixer-1", tmp_path / "mixer")
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    cert = _cert(cert_path)
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.CLIENT_AUTH in eku and ExtendedKeyUsageOID.SERVER_AUTH not in eku
    assert cert.issuer == _cert(pki.ca_cert).subject
    with pytest.raises(FileExistsError):
        issue_cert(pki, "mixer-1", tmp_path / "mixer")


def test_issue_server_cert_for_a_mixer(pki: PkiPaths, tmp_path: Path) -> None:
    cert_path, _ = issue_cert(pki, "mixer.internal", tmp_path, client=False)
    leaf = _cert(cert_path)
    PolicyBuilder().store(Store([_cert(pki.ca_cert)])).build_server_verifier(
        x509.DNSName("mixer.internal")
    ).verify(leaf, [])


# ---- TLS on loopback -----------------------------------------------------------------------------------


def _handshake(
    server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, server_hostname: str = "localhost"
) -> tuple[bytes, str | None, dict[str, object] | None]:
    """One TLS connection over 127.0.0.1; returns (echo, TLS version, client cert seen by the server)."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(5)
    port = listener.getsockname()[1]
    seen: dict[str, object] = {}

    def serve() -> None:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        conn.settimeout(5)
        try:
            with server_ctx.wrap_socket(conn, server_side=True) as tls:
                seen["peer"] = tls.getpeercert()
                tls.sendall(tls.recv(5).upper())
        except (ssl.SSLError, OSError) as exc:
            seen["error"] = exc

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
            client_ctx.wrap_socket(raw, server_hostname=server_hostname) as tls,
        ):
            tls.sendall(b"hello")
            echo = tls.recv(5)
            if not echo:
                raise ConnectionError("server closed the connection")
            return echo, tls.version(), seen.get("peer")  # type: ignore[return-value]
    finally:
        thread.join(5)
        listener.close()


def test_tls_handshake_works(pki: PkiPaths) -> None:
    echo, version, _ = _handshake(server_ssl_context(pki), client_ssl_context(pki.ca_cert))
    assert echo == b"HELLO"
    assert version in ("TLSv1.2", "TLSv1.3")


def test_tls_handshake_by_ip_address(pki: PkiPaths) -> None:
    echo, _, _ = _handshake(server_ssl_context(pki), client_ssl_context(pki.ca_cert), "127.0.0.1")
    assert echo == b"HELLO"


def test_tls_client_trusting_another_ca_fails(pki: PkiPaths, other_pki: PkiPaths) -> None:
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(server_ssl_context(pki), client_ssl_context(other_pki.ca_cert))


def test_tls_wrong_hostname_fails(pki: PkiPaths) -> None:
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(server_ssl_context(pki), client_ssl_context(pki.ca_cert), "evil.example")


def test_tls_below_1_2_refused(pki: PkiPaths) -> None:
    ctx = server_ssl_context(pki)
    assert ctx.minimum_version >= ssl.TLSVersion.TLSv1_2
    assert client_ssl_context(pki.ca_cert).minimum_version >= ssl.TLSVersion.TLSv1_2


def test_mutual_tls(pki: PkiPaths, other_pki: PkiPaths, tmp_path: Path) -> None:
    server_ctx = server_ssl_context(pki, require_client_cert=True)
    cert, key = issue_cert(pki, "mixer-2", tmp_path)
    echo, _, peer = _handshake(server_ctx, client_ssl_context(pki.ca_cert, cert, key))
    assert echo == b"HELLO"
    assert peer is not None and (("commonName", "mixer-2"),) in peer["subject"]  # type: ignore[operator]

    with pytest.raises((ssl.SSLError, ConnectionError)):
        _handshake(server_ctx, client_ssl_context(pki.ca_cert))  # no client certificate

    foreign_cert, foreign_key = issue_cert(other_pki, "intruder", tmp_path)
    with pytest.raises((ssl.SSLError, ConnectionError)):
        _handshake(server_ctx, client_ssl_context(pki.ca_cert, foreign_cert, foreign_key))


def test_client_key_without_cert_is_an_error(pki: PkiPaths) -> None:
    with pytest.raises(ValueError):
        client_ssl_context(pki.ca_cert, None, pki.server_key)
