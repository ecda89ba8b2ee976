"""Development PKI: a local CA, the server certificate, client/mixer certificates, TLS contexts.

Made on first start under ``DATA_DIR/pki``; an existing file is never overwritten (files are created with
``O_EXCL``), so a second start reuses the same CA and certificates byte for byte.  Keys are EC P-256, mode
0600.  This is for development and testing; production deployments point the settings at real
certificates instead.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "PkiPaths",
    "certificate_fingerprint",
    "client_ssl_context",
    "ensure_dev_pki",
    "issue_cert",
    "reload_server_certificate",
    "server_ssl_context",
]

CA_VALIDITY = dt.timedelta(days=3650)
LEAF_VALIDITY = dt.timedelta(days=825)
_BACKDATE = dt.timedelta(hours=1)  # tolerate peers whose clock is a little behind
DEFAULT_NAMES = ("localhost", "127.0.0.1", "::1")

# TLS 1.2 suites: forward secret AEAD only (TLS 1.3 suites are all fine and left at OpenSSL's default).
_TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!eNULL:!MD5:!DSS"


@dataclass(frozen=True, slots=True)
class PkiPaths:
    directory: Path
    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    server_combined: Path  # certificate followed by key, the form baresip's sip_certificate wants

    @classmethod
    def under(cls, data_dir: Path) -> PkiPaths:
        d = Path(data_dir) / "pki"
        return cls(
            d, d / "ca.pem", d / "ca.key", d / "server.pem", d / "server.key", d / "server-combined.pem"
        )


# ---- file helpers --------------------------------------------------------------------------------------


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Create *path* with *mode*; FileExistsError if it exists (never overwrite)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.fchmod(fd, mode)  # umask must not widen or narrow what we ask for
        with os.fdopen(fd, "wb", closefd=False) as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        os.close(fd)
        path.unlink(missing_ok=True)
        raise
    os.close(fd)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{path} is not an EC private key")
    return key


def _general_names(names: list[str]) -> list[x509.GeneralName]:
    out: list[x509.GeneralName] = []
    seen: set[str] = set()
    for name in names:
        name = name.strip().strip("[]")
        if not name or name.lower() in seen:
            continue
        seen.add(name.lower())
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            if not re.fullmatch(r"(\*\.)?[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?", name):
                raise ValueError(f"{name!r} is neither an IP address nor a DNS name") from None
            out.append(x509.DNSName(name.lower()))
    return out


# ---- certificate building ------------------------------------------------------------------------------


def _make_ca(now: dt.datetime) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "imsconf development"),
            x509.NameAttribute(NameOID.COMMON_NAME, "imsconf development CA"),
        ]
    )
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _make_leaf(
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    common_name: str,
    san: list[str],
    *,
    server: bool,
    client: bool,
    now: dt.datetime,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    usages = ([ExtendedKeyUsageOID.SERVER_AUTH] if server else []) + (
        [ExtendedKeyUsageOID.CLIENT_AUTH] if client else []
    )
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "imsconf development"),
                    x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                ]
            )
        )
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(min(now + LEAF_VALIDITY, ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
    )
    names = _general_names(san)
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


# ---- public API ----------------------------------------------------------------------------------------


def ensure_dev_pki(data_dir: Path, hostnames: list[str]) -> PkiPaths:
    """Create what is missing of the dev CA and server certificate under ``data_dir/pki``; keep the rest.

    The server certificate names ``localhost``, ``127.0.0.1``, ``::1`` and every entry of *hostnames*
    (DNS names or IP addresses).  Names added to *hostnames* later do not re-issue an existing certificate:
    delete ``server.pem`` / ``server.key`` / ``server-combined.pem`` to get a new one.
    """
    paths = PkiPaths.under(Path(data_dir))
    paths.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    now = dt.datetime.now(dt.UTC)

    if not paths.ca_cert.exists():
        if paths.ca_key.exists():
            raise FileExistsError(
                f"{paths.ca_key} exists without {paths.ca_cert}; remove it or restore the CA"
            )
        ca_cert, ca_key = _make_ca(now)
        _write_new(paths.ca_key, _key_pem(ca_key), 0o600)
        _write_new(paths.ca_cert, ca_cert.public_bytes(serialization.Encoding.PEM), 0o644)

    if not paths.server_cert.exists():
        if paths.server_key.exists():
            raise FileExistsError(
                f"{paths.server_key} exists without {paths.server_cert}; remove it to issue a new one"
            )
        if not paths.ca_key.exists():
            raise FileNotFoundError(f"cannot issue a server certificate: {paths.ca_key} is missing")
        ca_cert = x509.load_pem_x509_certificate(paths.ca_cert.read_bytes())
        names = list(DEFAULT_NAMES) + list(hostnames)
        cn = next((h for h in hostnames if h), "localhost")
        cert, key = _make_leaf(ca_cert, _load_key(paths.ca_key), cn, names, server=True, client=True, now=now)
        _write_new(paths.server_key, _key_pem(key), 0o600)
        _write_new(paths.server_cert, cert.public_bytes(serialization.Encoding.PEM), 0o644)

    if not paths.server_combined.exists():
        _write_new(
            paths.server_combined, paths.server_cert.read_bytes() + paths.server_key.read_bytes(), 0o600
        )
    return paths


def _safe_file_stem(common_name: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", common_name).strip("._")
    if not stem:
        raise ValueError(f"common name {common_name!r} gives no usable file name")
    return stem


def issue_cert(
    pki: PkiPaths,
    common_name: str,
    out_dir: Path,
    client: bool = True,
    *,
    hostnames: list[str] | None = None,
) -> tuple[Path, Path]:
    """Issue a certificate from the dev CA: ``out_dir/<cn>.pem`` and ``out_dir/<cn>.key`` (0600).

    ``client=True`` gives a TLS client certificate (clientAuth) for mutual TLS; ``client=False`` a server
    one (serverAuth) whose SANs are *hostnames* (default: the common name).  FileExistsError when the files
    exist: certificates are never silently replaced.
    """
    if not common_name or len(common_name) > 64:
        raise ValueError("common name must be 1 to 64 characters")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    stem = _safe_file_stem(common_name)
    cert_path, key_path = out_dir / f"{stem}.pem", out_dir / f"{stem}.key"
    for p in (cert_path, key_path):
        if p.exists():
            raise FileExistsError(f"{p} already exists")
    ca_cert = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    san = hostnames if hostnames is not None else ([] if client else [common_name])
    cert, key = _make_leaf(
        ca_cert,
        _load_key(pki.ca_key),
        common_name,
        san,
        server=not client,
        client=client,
        now=dt.datetime.now(dt.UTC),
    )
    _write_new(key_path, _key_pem(key), 0o600)
    _write_new(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return cert_path, key_path


def _harden(ctx: ssl.SSLContext) -> ssl.SSLContext:
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(_TLS12_CIPHERS)
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    return ctx


def server_ssl_context(paths: PkiPaths, require_client_cert: bool = False) -> ssl.SSLContext:
    """TLS ≥ 1.2 server context with the server certificate.

    With *require_client_cert*, clients must present a certificate issued by the dev CA (mutual TLS for
    the mixer control link); without it, no client certificate is asked for.
    """
    ctx = _harden(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
    ctx.options |= ssl.OP_CIPHER_SERVER_PREFERENCE | ssl.OP_SINGLE_ECDH_USE
    ctx.load_cert_chain(paths.server_cert, paths.server_key)
    if require_client_cert:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(cafile=paths.ca_cert)
    else:
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def client_ssl_context(ca_path: Path, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    """TLS ≥ 1.2 client context trusting only *ca_path*, checking host names; optional client cert."""
    ctx = _harden(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))  # CERT_REQUIRED and check_hostname by default
    ctx.load_verify_locations(cafile=ca_path)
    if cert is not None:
        ctx.load_cert_chain(cert, key)
    elif key is not None:
        raise ValueError("a client key without a certificate")
    return ctx


def certificate_fingerprint(path: Path) -> str:
    """SHA-256 of the first certificate in the PEM file *path* (hex): tells whether a re-read changed it."""
    cert = x509.load_pem_x509_certificate(Path(path).read_bytes())
    return cert.fingerprint(hashes.SHA256()).hex()


def reload_server_certificate(ctx: ssl.SSLContext, paths: PkiPaths) -> str:
    """Read the server certificate and key again into the live server context *ctx*: handshakes from now on
    present them, connections already up keep theirs. The pair is first tried in a fresh context, so a
    missing file, a broken PEM or a key that does not match leaves *ctx* as it was (OSError, ssl.SSLError
    or ValueError). Returns the new certificate's fingerprint."""
    server_ssl_context(paths)  # the whole check, on a context nobody uses
    fingerprint = certificate_fingerprint(paths.server_cert)
    ctx.load_cert_chain(paths.server_cert, paths.server_key)
    return fingerprint
