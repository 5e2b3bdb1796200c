"""yztc.certificate_expiry: the gauge every service exports for its TLS
files (the YztcCertificateExpiresSoon alerts read it)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from tests.unit.test_objective_metrics import collected
from yztc.certificate_expiry import CertificateExpiry, certificate_not_after

T0 = dt.datetime(2026, 11, 30, 8, 0, tzinfo=dt.UTC)


def _certificate(path: Path, not_after: dt.datetime) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "aggregator")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(T0 - dt.timedelta(days=1))
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )
    with path.open("ab") as out:
        out.write(cert.public_bytes(serialization.Encoding.PEM))


def test_certificate_expiry_is_the_earliest_of_the_file(tmp_path: Path) -> None:
    chain = tmp_path / "chain.pem"
    _certificate(chain, T0 + dt.timedelta(days=90))
    _certificate(chain, T0 + dt.timedelta(days=10))
    assert certificate_not_after(str(chain)) == (T0 + dt.timedelta(days=10)).timestamp()


def test_certificate_gauge_reads_the_files_at_each_collection(tmp_path: Path) -> None:
    reader = InMemoryMetricReader()
    expiry = CertificateExpiry(MeterProvider(metric_readers=[reader]).get_meter("test"), "connector-jd")
    cert = tmp_path / "tls.crt"
    _certificate(cert, T0 + dt.timedelta(days=30))
    expiry.watch({"cert": str(cert), "ca": str(tmp_path / "missing.pem"), "unset": "", "none": None})
    [point] = collected(reader)["yztc.tls.certificate.expiration_timestamp"]
    assert (
        dict(point.attributes) == {"service": "connector-jd", "role": "cert"}
        and point.value == (T0 + dt.timedelta(days=30)).timestamp()
    )
    cert.unlink()
    _certificate(cert, T0 + dt.timedelta(days=400))  # rotated: seen at the next collection
    [point] = collected(reader)["yztc.tls.certificate.expiration_timestamp"]
    assert point.value == (T0 + dt.timedelta(days=400)).timestamp()
