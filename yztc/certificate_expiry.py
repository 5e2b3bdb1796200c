"""`yztc.tls.certificate.expiration_timestamp`, the gauge every service
exports for the TLS certificate files it uses: notAfter in Unix seconds, by
`service` (the service's own name, as its logs give it: `aggregator`,
`sms_notifier`, `gateway`, `connector-<enterprise>`) and `role` (`cert`, `ca`,
the aggregator's `channels_ca`, the notifier's `smsc_cert`, `smsc_ca`).

The alerts `YztcCertificateExpiresSoon` (docs/runbook.md) read it: an
internal certificate that lapses on one connector stops every query that
needs that enterprise, so every service's files are watched, not only the
aggregator's. Files are read at each collection, so a rotated Secret shows at
once; a file that cannot be read (mid-rotation, or missing) gives no sample
that time."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from cryptography import x509
from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Meter, Observation

from yztc.settings import GrpcTlsSettings


def certificate_not_after(path: str) -> float:
    """The earliest notAfter (Unix seconds) of the PEM certificates in `path`
    (a chain, or a CA bundle). OSError if unreadable, ValueError if no PEM
    certificate is in it."""
    certificates = x509.load_pem_x509_certificates(Path(path).read_bytes())
    return min(c.not_valid_after_utc.timestamp() for c in certificates)


class CertificateExpiry:
    """The gauge for one service's files; `watch` adds files by role."""

    def __init__(self, meter: Meter, service: str) -> None:
        self._service = service
        self._files: dict[str, str] = {}
        meter.create_observable_gauge(
            "yztc.tls.certificate.expiration_timestamp",
            [self._observe],
            unit="s",
            description="notAfter (Unix seconds) of this replica's TLS certificate files, by service and role",
        )

    def watch(self, files: Mapping[str, str | None]) -> None:
        """Role -> PEM file; unset (empty or None) paths are left out."""
        self._files.update({role: path for role, path in files.items() if path})

    def _observe(self, options: CallbackOptions):
        for role, path in self._files.items():
            try:
                yield Observation(certificate_not_after(path), {"service": self._service, "role": role})
            except (OSError, ValueError):
                continue


def watch_certificates(service: str, tls: GrpcTlsSettings, **more: str | None) -> CertificateExpiry:
    """The gauge on the global meter provider (set up by
    yztc.telemetry.setup_telemetry) for `tls`'s certificate and CA, and any
    `more` files by role."""
    expiry = CertificateExpiry(metrics.get_meter("yztc.tls"), service)
    expiry.watch({"cert": tls.tls_cert, "ca": tls.tls_ca, **more})
    return expiry
