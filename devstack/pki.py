"""Development PKI made with `cryptography`: two CAs and a certificate per
identity. Production certificates come from the operators' own CAs; these
never leave var/pki.

- `ca.pem` (+ `ca-key.pem`): the internal CA. It signs our services
  (`issue_service`: SAN URI `spiffe://yztc/service/<name>`, server and
  client use), and channels verify the aggregator's server certificate
  with it.
- `channels-ca.pem` (+ `channels-ca-key.pem`): the channels' CA. It signs
  channel client certificates only (`issue_channel`: SAN URI
  `spiffe://yztc/channel/<id>`); only the aggregator's channel port trusts it.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = dt.timedelta(days=365)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "yztc development"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


INTERNAL_CA = "ca"
CHANNELS_CA = "channels-ca"
_CA_NAMES = {INTERNAL_CA: "yztc development CA", CHANNELS_CA: "yztc development channels CA"}
SERVICE_PREFIX = "spiffe://yztc/service/"
CHANNEL_PREFIX = "spiffe://yztc/channel/"


def ensure_ca(folder: Path, name: str = INTERNAL_CA) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """`<name>.pem` and `<name>-key.pem` in folder (reused while valid):
    `ca` the internal CA, `channels-ca` the channels' CA."""
    folder.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = folder / f"{name}.pem", folder / f"{name}-key.pem"
    if cert_path.exists() and key_path.exists():
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        if cert.not_valid_after_utc > dt.datetime.now(dt.UTC) + dt.timedelta(days=1):
            key = serialization.load_pem_private_key(key_path.read_bytes(), None)
            assert isinstance(key, ec.EllipticCurvePrivateKey)
            return cert, key
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(_CA_NAMES.get(name, name)))
        .issuer_name(_name(_CA_NAMES.get(name, name)))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
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
        .sign(key, hashes.SHA256())
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(key, key_path)
    return cert, key


def issue(
    folder: Path,
    common_name: str,
    *,
    server: bool = False,
    validity: dt.timedelta = VALIDITY,
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None = None,
    uris: tuple[str, ...] = (),
    ca_name: str = INTERNAL_CA,
) -> tuple[Path, Path]:
    """`<cn>.pem` and `<cn>-key.pem` in folder, signed by `ca` or else the
    CA `ca_name` there (reused while valid and the same names). Server
    certificates name localhost and 127.0.0.1; `uris` go in the SAN as URIs
    (the identity, see issue_service and issue_channel)."""
    folder.mkdir(parents=True, exist_ok=True)
    ca_cert, ca_key = ca or ensure_ca(folder, ca_name)
    cert_path, key_path = folder / f"{common_name}.pem", folder / f"{common_name}-key.pem"
    if cert_path.exists() and key_path.exists() and ca is None:
        existing = x509.load_pem_x509_certificate(cert_path.read_bytes())
        if (
            existing.issuer == ca_cert.subject
            and existing.not_valid_after_utc > dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
            and _uris(existing) == tuple(uris)
        ):
            return cert_path, key_path
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    usages = [ExtendedKeyUsageOID.CLIENT_AUTH]
    if server:
        usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        # A negative validity makes an already-expired certificate (for tests).
        .not_valid_before(min(now - dt.timedelta(minutes=5), now + validity - dt.timedelta(days=1)))
        .not_valid_after(now + validity)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    )
    names: list[x509.GeneralName] = [x509.DNSName(common_name)]
    if server:
        names += [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    names += [x509.UniformResourceIdentifier(uri) for uri in uris]
    builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(key, key_path)
    return cert_path, key_path


def _uris(cert: x509.Certificate) -> tuple[str, ...]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ()
    return tuple(san.get_values_for_type(x509.UniformResourceIdentifier))


def issue_service(folder: Path, name: str, **options) -> tuple[Path, Path]:
    """An internal service's certificate from the internal CA: SAN URI
    `spiffe://yztc/service/<name>`, DNS `<name>`, localhost and 127.0.0.1,
    server and client use."""
    return issue(folder, name, server=True, uris=(SERVICE_PREFIX + name,), ca_name=INTERNAL_CA, **options)


def issue_channel(folder: Path, channel: str, **options) -> tuple[Path, Path]:
    """A channel's client certificate from the channels' CA: SAN URI
    `spiffe://yztc/channel/<channel>`, client use only."""
    return issue(folder, channel, uris=(CHANNEL_PREFIX + channel,), ca_name=CHANNELS_CA, **options)


def serial_hex(cert_path: Path) -> str:
    """The certificate's serial as the revocation list takes it (lower-case hex)."""
    return format(x509.load_pem_x509_certificate(cert_path.read_bytes()).serial_number, "x")
