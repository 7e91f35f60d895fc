"""Self-signed test certificates, and TLS helpers shared by the TLS, tap and HTTP/2 tests."""

from __future__ import annotations

import datetime
import ipaddress
import os
import shutil
import ssl
import tempfile
from pathlib import Path

from attrs import frozen
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from OpenSSL import SSL
from twisted.trial.unittest import SynchronousTestCase


@frozen
class Credentials:
    """A self-signed certificate for localhost and 127.0.0.1, and its key, as PEM files."""

    key_path: Path
    cert_path: Path
    cert_pem: bytes
    der: bytes
    common_name: str


def make_credentials(directory: Path, common_name: str) -> Credentials:
    """Write C{<common_name>.key} and C{<common_name>.pem} into C{directory}."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    public = key.public_key()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        # Its own trust anchor: a CA that the client trusts directly.
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_path = directory / f"{common_name}.key"
    cert_path = directory / f"{common_name}.pem"
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cert_pem = certificate.public_bytes(serialization.Encoding.PEM)
    cert_path.write_bytes(cert_pem)
    return Credentials(
        key_path, cert_path, cert_pem, certificate.public_bytes(serialization.Encoding.DER), common_name
    )


def temporary_directory(case: SynchronousTestCase) -> Path:
    """A new directory, removed when C{case} ends (trial's mktemp would write under the working directory)."""
    path = Path(tempfile.mkdtemp(prefix="sillyproxy-tls-"))
    case.addCleanup(shutil.rmtree, path, True)
    return path


def install(credentials: Credentials, key_path: Path, cert_path: Path) -> None:
    """Put credentials where the proxy reads them, each file replaced at once (as certbot and Swarm do)."""
    for source, target in ((credentials.key_path, key_path), (credentials.cert_path, cert_path)):
        temporary = target.with_suffix(".new")
        temporary.write_bytes(source.read_bytes())
        os.replace(temporary, target)


def ssl_description(port: int, key_path: Path, cert_path: Path) -> str:
    return f"ssl:{port}:privateKey={key_path}:certKey={cert_path}:interface=127.0.0.1"


def common_name(connection: SSL.Connection) -> str:
    """The common name of the certificate that C{connection} presents."""
    certificate = connection.get_certificate(as_cryptography=True)
    assert certificate is not None
    [attribute] = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(attribute.value)


def served_common_name(creator: object) -> str:
    """The common name of the certificate a new connection from C{creator} would present."""
    return common_name(creator.serverConnectionForTLS(None))  # type: ignore[attr-defined]


def client_context(*trusted: Credentials) -> ssl.SSLContext:
    context = ssl.create_default_context(cadata="".join(c.cert_pem.decode("ascii") for c in trusted))
    return context
