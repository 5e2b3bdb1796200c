"""Given a certificate, the notifier serves mutual TLS (internal CA only) and
answers only the aggregator: the client certificate's SAN URI
spiffe://yztc/service/aggregator, never its common name (H1, M2)."""

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


def _channel(folder: Path, target: str, cert_and_key: tuple[Path, Path]) -> grpc.aio.Channel:
    cert, key = cert_and_key
    creds = grpc.ssl_channel_credentials(
        root_certificates=(folder / "ca.pem").read_bytes(),
        private_key=key.read_bytes(),
        certificate_chain=cert.read_bytes(),
    )
    return grpc.aio.secure_channel(target, creds)


async def test_mutual_tls_answers_the_aggregator_only(tmp_path, sms_centre_factory, notifier_factory):
    folder = tmp_path / "pki"
    cert, key = pki.issue_service(folder, "sms-notifier")
    centre = sms_centre_factory()
    notifier = notifier_factory(
        centre.smpp_port,
        extra_env={
            "YZTC_DEVELOPMENT": "0",  # production: certificates required, and given
            "YZTC_NOTIFIER_SMSC_PRIVATE_LINE": "true",  # SMPP in clear to the local centre
            "YZTC_TLS_CA": str(folder / "ca.pem"),
            "YZTC_TLS_CERT": str(cert),
            "YZTC_TLS_KEY": str(key),
        },
    )
    async with _channel(folder, notifier.target, pki.issue_service(folder, "aggregator")) as channel:
        accepted = await send(channel, "code:tls", PHONE, "您的验证码为123456，5分钟内有效。")
        # Submitted: SENT, or DELIVERED when the immediate receipt beat the answer.
        assert STATES[accepted.state] in {"SENT", "DELIVERED"}
    refused = {
        "another internal service": pki.issue_service(folder / "gw", "gateway", ca=pki.ensure_ca(folder)),
        # The old identity: CN "aggregator" without the SAN URI is nobody.
        "CN aggregator, no SAN URI": pki.issue(folder / "cn", "aggregator", ca=pki.ensure_ca(folder)),
    }
    for why, pair in refused.items():
        async with _channel(folder, notifier.target, pair) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await send(channel, "code:tls-2", PHONE, "x")
            assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED, why
    # A channel certificate (the channels' CA) fails the handshake: the notifier trusts the internal CA only.
    channel_pair = pki.issue(
        folder / "ch", "x", uris=(pki.SERVICE_PREFIX + "aggregator",), ca=pki.ensure_ca(folder, pki.CHANNELS_CA)
    )
    async with _channel(folder, notifier.target, channel_pair) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await send(channel, "code:tls-4", PHONE, "x")
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    async with notifier.channel() as plaintext:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await send(plaintext, "code:tls-3", PHONE, "x")
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
