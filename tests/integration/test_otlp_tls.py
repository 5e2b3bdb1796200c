"""Spans leave a service in mutual TLS, as the manifests configure it
(deploy/k8s/base/kustomization.yaml, yztc-common): the OTLP/HTTP exporter
the services use (yztc.telemetry, `YZTC_TRACES_EXPORTER=otlp`) verifies the
collector by the internal CA in OTEL_EXPORTER_OTLP_CERTIFICATE and presents
the pod's certificate from OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE and _KEY.

yztc.telemetry hands the exporter a requests session that ignores
REQUESTS_CA_BUNDLE, which would otherwise replace that CA.

The collector here is a stand-in that does what the collector's receiver
is configured to (otel-collector-config.yaml, `tls.client_ca_file`): HTTPS
with its internal certificate, admitting clients of the internal CA only.
The control: a service without its client certificate delivers nothing."""

from __future__ import annotations

import asyncio
import os
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import requests
from aiohttp import web
from cryptography import x509

from devstack import pki
from devstack.stack import ROOT

# One span, exported and flushed the way a service does at shutdown.
EMIT = """
from yztc import telemetry
from yztc.settings import CommonSettings
telemetry.setup_telemetry("otlp-tls-probe", CommonSettings())
with telemetry.tracer().start_as_current_span("probe"):
    pass
telemetry.shutdown_telemetry()
"""


@pytest.fixture
async def collector(tmp_path: Path) -> AsyncIterator[tuple[str, list[str]]]:
    """(endpoint, SAN URIs of the clients whose spans arrived)."""
    folder = tmp_path / "pki"
    cert, key = pki.issue_service(folder, "otel-collector")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(folder / "ca.pem"))
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_cert_chain(cert, key)
    senders: list[str] = []

    async def traces(request: web.Request) -> web.Response:
        await request.read()
        peer = x509.load_der_x509_certificate(request.transport.get_extra_info("ssl_object").getpeercert(True))
        names = peer.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        senders.extend(names.get_values_for_type(x509.UniformResourceIdentifier))
        return web.Response(body=b"", content_type="application/x-protobuf")

    app = web.Application()
    app.router.add_post("/v1/traces", traces)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"https://localhost:{port}", senders
    finally:
        await runner.cleanup()


def _emit(endpoint: str, folder: Path, client_certificate: bool) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("YZTC_", "OTEL_"))}
    env.update(
        # A bundle of public roots here must not replace the internal CA
        # (requests lets it: psf/requests#3829; yztc.telemetry keeps ours).
        REQUESTS_CA_BUNDLE=requests.certs.where(),
        YZTC_TRACES_EXPORTER="otlp",
        YZTC_TRACES_SAMPLE_RATIO="1",
        OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
        OTEL_EXPORTER_OTLP_CERTIFICATE=str(folder / "ca.pem"),
    )
    if client_certificate:
        cert, key = pki.issue_service(folder, "aggregator")
        env.update(OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE=str(cert), OTEL_EXPORTER_OTLP_CLIENT_KEY=str(key))
    return subprocess.run([sys.executable, "-c", EMIT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


async def test_spans_reach_the_collector_only_in_mutual_tls(collector, tmp_path) -> None:
    endpoint, senders = collector
    folder = tmp_path / "pki"
    # The control first: no client certificate, no span (the exporter logs its failure and goes on).
    done = await _run(endpoint, folder, client_certificate=False)
    assert done.returncode == 0, done.stderr
    assert senders == []
    done = await _run(endpoint, folder, client_certificate=True)
    assert done.returncode == 0, done.stderr
    assert senders == ["spiffe://yztc/service/aggregator"], done.stderr


async def _run(endpoint: str, folder: Path, client_certificate: bool) -> subprocess.CompletedProcess[str]:
    """`_emit` off the event loop, which serves the stand-in collector."""
    return await asyncio.to_thread(_emit, endpoint, folder, client_certificate)
