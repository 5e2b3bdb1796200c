"""Given a certificate, the notifier serves mutual TLS and answers only the
aggregator (the client certificate's common name), as the connectors do."""

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


def _channel(folder: Path, target: str, common_name: str) -> grpc.aio.Channel:
    cert, key = pki.issue(folder, common_name)
    creds = grpc.ssl_channel_credentials(
        root_certificates=(folder / "ca.pem").read_bytes(),
        private_key=key.read_bytes(),
        certificate_chain=cert.read_bytes(),
    )
    return grpc.aio.secure_channel(target, creds)


async def test_mutual_tls_answers_the_aggregator_only(tmp_path, sms_centre_factory, notifier_factory):
    folder = tmp_path / "pki"
    cert, key = pki.issue(folder, "sms_notifier", server=True)
    centre = sms_centre_factory()
    notifier = notifier_factory(
        centre.smpp_port,
        extra_env={"YZTC_TLS_CA": str(folder / "ca.pem"), "YZTC_TLS_CERT": str(cert), "YZTC_TLS_KEY": str(key)},
    )
    async with _channel(folder, notifier.target, "aggregator") as channel:
        accepted = await send(channel, "code:tls", PHONE, "您的验证码为123456，5分钟内有效。")
        assert STATES[accepted.state] == "SENT"
    async with _channel(folder, notifier.target, "gateway") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await send(channel, "code:tls-2", PHONE, "x")
        assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    async with notifier.channel() as plaintext:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await send(plaintext, "code:tls-3", PHONE, "x")
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
