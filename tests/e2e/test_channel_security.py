"""Who may call the channel API, how much, and what health says (issue 7)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from devstack import pki
from devstack.stack import ROOT
from tests.e2e.channel_client import write_scenario
from yztc.v1 import account_query_pb2 as pb
from yztc.v1 import account_query_pb2_grpc


def _open(stack, cert: str | None, key: str | None, ca: str | None = None, port: int | None = None) -> grpc.aio.Channel:
    """To the public channel port (or `port`), verifying the server with the internal CA."""
    creds = grpc.ssl_channel_credentials(
        root_certificates=Path(ca or stack.pki_dir / "ca.pem").read_bytes(),
        private_key=Path(key).read_bytes() if key else None,
        certificate_chain=Path(cert).read_bytes() if cert else None,
    )
    return grpc.aio.secure_channel(f"127.0.0.1:{port or stack.ports.aggregator}", creds)


async def _list(channel: grpc.aio.Channel) -> pb.ListEnterprisesResponse:
    return await account_query_pb2_grpc.AccountQueryServiceStub(channel).ListEnterprises(
        pb.ListEnterprisesRequest(), timeout=5
    )


async def test_only_configured_channels_with_our_valid_certificates_get_in(stack, tmp_path):
    cert, key = stack.pki_dir / "wechat-demo.pem", stack.pki_dir / "wechat-demo-key.pem"
    async with _open(stack, cert, key) as channel:
        assert len((await _list(channel)).enterprises) == 8

    refused = {
        "no certificate": (None, None),
        "another CA": pki.issue_channel(tmp_path / "other-ca", "wechat-demo"),
        "expired": pki.issue_channel(
            tmp_path / "expired",
            "wechat-demo",
            validity=-dt.timedelta(days=1),
            ca=pki.ensure_ca(stack.pki_dir, pki.CHANNELS_CA),
        ),
        # The internal CA signs nothing a channel may use (M2).
        "internal CA": pki.issue_channel(tmp_path / "internal", "wechat-demo", ca=pki.ensure_ca(stack.pki_dir)),
    }
    for why, (c, k) in refused.items():
        async with _open(stack, c, k) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await _list(channel)
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE, why  # the handshake fails

    rogue_cert, rogue_key = pki.issue_channel(
        tmp_path / "rogue", "rogue-channel", ca=pki.ensure_ca(stack.pki_dir, pki.CHANNELS_CA)
    )
    async with _open(stack, rogue_cert, rogue_key) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await _list(channel)
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_quota_exceeded_is_resource_exhausted_and_other_channels_are_unaffected(make_stack, tmp_path):
    channels = json.loads((ROOT / "config" / "channels.json").read_text(encoding="utf-8"))
    channels["channels"]["wechat-demo"]["quotas"]["ListEnterprises"] = {"per_second": 3, "per_day": 1000}
    (tmp_path / "tight.json").write_text(json.dumps(channels), encoding="utf-8")
    stack = make_stack(
        write_scenario(tmp_path / "scenario.json", [], {}),
        aggregator_env={"YZTC_AGGREGATOR_CHANNELS_FILE": str(tmp_path / "tight.json")},
    )
    demo = (stack.pki_dir / "wechat-demo.pem", stack.pki_dir / "wechat-demo-key.pem")
    # The gateway: its internal identity, on the aggregator's internal port (channel alipay-gateway).
    gateway = (stack.pki_dir / "gateway.pem", stack.pki_dir / "gateway-key.pem")
    async with _open(stack, *demo) as channel:
        # Within one second: three pass, the rest are refused.
        second = int(time.time()) + 1
        await asyncio.sleep(second - time.time())
        outcomes = await asyncio.gather(*(_list(channel) for _ in range(6)), return_exceptions=True)
    refused = [o for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
    assert len(outcomes) - len(refused) == 3
    error = refused[0]
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    details = {d.TypeName(): d for d in rpc_status.from_call(error).details}
    info, retry = error_details_pb2.ErrorInfo(), error_details_pb2.RetryInfo()
    details["google.rpc.ErrorInfo"].Unpack(info)
    details["google.rpc.RetryInfo"].Unpack(retry)
    assert info.reason == "RATE_LIMITED" and info.metadata["retry_after"] == "1"
    assert retry.retry_delay.seconds == 1

    async with _open(stack, *gateway, port=stack.ports.aggregator_internal) as channel:
        results = await asyncio.gather(*(_list(channel) for _ in range(6)))
    assert all(len(r.enterprises) == 8 for r in results)


async def test_health_follows_the_database(make_stack, tmp_path):
    stack = make_stack(write_scenario(tmp_path / "scenario.json", [], {}))
    cert, key = stack.pki_dir / "wechat-demo.pem", stack.pki_dir / "wechat-demo-key.pem"

    async def status() -> int:
        async with _open(stack, cert, key) as channel:
            answer = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
            return answer.status

    async def wait_for(expected: int) -> None:
        deadline = time.monotonic() + 30
        while await status() != expected:
            assert time.monotonic() < deadline, f"health never became {expected}"
            await asyncio.sleep(0.5)

    assert await status() == health_pb2.HealthCheckResponse.SERVING
    stack.kill("ferretdb")
    await wait_for(health_pb2.HealthCheckResponse.NOT_SERVING)
    stack.restart("ferretdb")
    await wait_for(health_pb2.HealthCheckResponse.SERVING)


async def test_internal_services_answer_only_the_aggregator(stack):
    """Connectors and the notifier serve mutual TLS and refuse any other
    certificate: another internal service's (PERMISSION_DENIED), a
    channel's (the channels' CA: the handshake fails); and plaintext not at all."""
    from yztc.v1 import company_connector_pb2, company_connector_pb2_grpc

    port = stack.ports.companies["tencent"]
    request = company_connector_pb2.CountAccountsRequest(query_id="q", phone="13800138000")
    for name, expected in (
        ("gateway", grpc.StatusCode.PERMISSION_DENIED),
        ("wechat-demo", grpc.StatusCode.UNAVAILABLE),
    ):
        creds = grpc.ssl_channel_credentials(
            root_certificates=(stack.pki_dir / "ca.pem").read_bytes(),
            private_key=(stack.pki_dir / f"{name}-key.pem").read_bytes(),
            certificate_chain=(stack.pki_dir / f"{name}.pem").read_bytes(),
        )
        async with grpc.aio.secure_channel(f"127.0.0.1:{port}", creds) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await company_connector_pb2_grpc.CompanyConnectorStub(channel).CountAccounts(request, timeout=5)
        assert caught.value.code() == expected, name
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await company_connector_pb2_grpc.CompanyConnectorStub(channel).CountAccounts(request, timeout=5)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
