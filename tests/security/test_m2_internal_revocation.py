"""M2 for our own services: an internal certificate could not be revoked
one by one; a leaked aggregator certificate could call the connectors and
the notifier (phone numbers to every enterprise, texts from 10699000) until
the whole internal CA was rotated.

Now the servers that admit internal callers refuse a certificate whose
serial is in YZTC_TLS_REVOKED_SERIALS_FILE, read again when the file
changes (the ConfigMap yztc-internal-revocations), without a restart. Here
through the real notifier in production mode (mutual TLS), and a real
company connector: the aggregator's certificate works, is refused once its
serial is listed, and the newly issued one works."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from devstack import pki
from tests.integration.test_sms_support import (  # noqa: F401  (fixtures)
    PHONE,
    STATES,
    alipay_keys,
    notifier_factory,
    send,
    sms_centre_factory,
)
from tests.security.services import (
    clean_env,
    internal_identity,
    mtls_channel,
    service_env,
    start_until,
    stop,
    write_atomically,
)
from yztc.v1 import company_connector_pb2, company_connector_pb2_grpc


def _revoke(path: Path, *certificates: Path) -> None:
    """Lists the certificates' serials, replacing the file atomically (as the kubelet does)."""
    write_atomically(path, {"revoked_serials": [pki.serial_hex(c) for c in certificates]})


async def test_a_revoked_aggregator_certificate_is_refused_by_the_notifier(
    tmp_path, sms_centre_factory, notifier_factory
):
    folder = tmp_path / "pki"
    revocations = tmp_path / "revoked.json"
    _revoke(revocations)
    cert, key = pki.issue_service(folder, "sms-notifier")
    centre = sms_centre_factory()
    notifier = notifier_factory(
        centre.smpp_port,
        extra_env={
            "YZTC_DEVELOPMENT": "0",
            "YZTC_NOTIFIER_SMSC_PRIVATE_LINE": "true",  # SMPP in clear to the local centre
            "YZTC_TLS_CA": str(folder / "ca.pem"),
            "YZTC_TLS_CERT": str(cert),
            "YZTC_TLS_KEY": str(key),
            "YZTC_TLS_REVOKED_SERIALS_FILE": str(revocations),
        },
    )
    leaked = pki.issue_service(folder / "leaked", "aggregator", ca=pki.ensure_ca(folder))
    async with mtls_channel(folder / "ca.pem", notifier.target, *leaked) as channel:
        assert STATES[(await send(channel, "code:rev-1", PHONE, "x")).state] in {"SENT", "DELIVERED"}
        _revoke(revocations, leaked[0])
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await send(channel, "code:rev-2", PHONE, "x")
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    renewed = pki.issue_service(folder / "renewed", "aggregator", ca=pki.ensure_ca(folder))
    async with mtls_channel(folder / "ca.pem", notifier.target, *renewed) as channel:
        assert STATES[(await send(channel, "code:rev-3", PHONE, "x")).state] in {"SENT", "DELIVERED"}


async def test_a_revoked_aggregator_certificate_is_refused_by_a_connector(tmp_path):
    folder = tmp_path / "pki"
    revocations = tmp_path / "revoked.json"
    leaked = pki.issue_service(folder / "leaked", "aggregator", ca=pki.ensure_ca(folder))
    renewed = pki.issue_service(folder / "renewed", "aggregator", ca=pki.ensure_ca(folder))
    _revoke(revocations, leaked[0])
    env = clean_env(
        **service_env("company connector", tmp_path, ""),
        **internal_identity(folder, "connector-jd"),
        YZTC_TLS_REVOKED_SERIALS_FILE=str(revocations),
    )
    proc = start_until(["platform_connectors", "company", "jd"], env, "listening on port")
    try:
        for pair, admitted in ((leaked, False), (renewed, True)):
            async with mtls_channel(folder / "ca.pem", env["YZTC_CONNECTOR_LISTEN"], *pair) as channel:
                stub = company_connector_pb2_grpc.CompanyConnectorStub(channel)
                request = company_connector_pb2.CountAccountsRequest(query_id="q-rev", phone=PHONE)
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await stub.CountAccounts(request, timeout=10)
                if admitted:  # past admission: only the company (at a dead address) fails it
                    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE, caught.value
                else:
                    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED, caught.value
    finally:
        stop(proc)
