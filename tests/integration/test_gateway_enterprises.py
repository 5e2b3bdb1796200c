"""GET /api/v1/enterprises in front of a stub aggregator: public, cacheable
(ETag, Cache-Control), 304 on If-None-Match, asked of the aggregator once
per cache period."""
from __future__ import annotations

import base64
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from devstack.stack import free_port
from gateway.app import RUNNER_OPTIONS, create_app
from gateway.settings import GatewaySettings
from tests.integration.test_gateway_aggregator import StubAggregator
from yztc.grpc_server import GrpcService
from yztc.settings import GrpcTlsSettings
from yztc.v1 import account_query_pb2 as pb
from yztc.v1 import account_query_pb2_grpc as pb_grpc

AES_KEY = base64.b64encode(bytes(range(16))).decode()


@pytest.fixture
async def gateway(mongodb_uri: str, key_files) -> AsyncIterator[tuple[TestClient, StubAggregator]]:
    stub = StubAggregator()
    service = GrpcService(
        "127.0.0.1:0",
        lambda server: pb_grpc.add_AccountQueryServiceServicer_to_server(stub, server),
        [pb.DESCRIPTOR.services_by_name["AccountQueryService"].full_name],
        grace_seconds=0.5,
    )
    await service.start()
    dead = free_port()
    settings = GatewaySettings(
        mongodb_uri=mongodb_uri,
        aggregator_target=f"127.0.0.1:{service.port}",
        alipay_url=f"http://127.0.0.1:{dead}/gateway.do",
        alipay_app_private_key_file=key_files[0],
        alipay_public_key_file=key_files[1],
        alipay_aes_key=AES_KEY,
        enterprises_cache_seconds=120,
        tls=GrpcTlsSettings(tls_ca="", tls_cert="", tls_key=""),
    )
    server = TestServer(create_app(settings))
    await server.start_server(**RUNNER_OPTIONS)
    client = TestClient(server)
    await client.start_server()
    try:
        yield client, stub
    finally:
        await client.close()
        await service.stop()


def _listings(stub: StubAggregator) -> int:
    return sum(1 for name, _ in stub.calls if name == "ListEnterprises")


async def test_answer_is_cacheable_with_an_etag(gateway):
    client, stub = gateway
    response = await client.get("/api/v1/enterprises")
    assert response.status == 200
    assert response.content_type == "application/json" and response.charset == "utf-8"
    assert (await response.json())["enterprises"][0] == {
        "id": "tencent", "name": "腾讯", "hotline": "95017", "detail_and_unbind": "微信：我-设置",
    }
    assert response.headers["Cache-Control"] == "public, max-age=120"
    etag = response.headers["ETag"]
    assert etag.startswith('"') and etag.endswith('"')
    # The other security headers are still there.
    assert response.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("form", ["{etag}", "W/{etag}", '"other", {etag}', "*"])
async def test_if_none_match_gives_304_without_a_body(gateway, form):
    client, _ = gateway
    etag = (await client.get("/api/v1/enterprises")).headers["ETag"]
    response = await client.get("/api/v1/enterprises", headers={"If-None-Match": form.format(etag=etag)})
    assert response.status == 304
    assert await response.read() == b""
    assert response.headers["ETag"] == etag
    assert response.headers["Cache-Control"] == "public, max-age=120"


async def test_stale_etag_gets_the_whole_answer(gateway):
    client, _ = gateway
    response = await client.get("/api/v1/enterprises", headers={"If-None-Match": '"not-ours"'})
    assert response.status == 200
    assert (await response.json())["enterprises"]


async def test_aggregator_asked_once_per_cache_period(gateway):
    client, stub = gateway
    for _ in range(5):
        assert (await client.get("/api/v1/enterprises")).status == 200
    assert (await client.head("/api/v1/enterprises")).status == 200
    assert _listings(stub) == 1


async def test_revalidation_within_the_period_needs_no_aggregator_call(gateway):
    client, stub = gateway
    etag = (await client.get("/api/v1/enterprises")).headers["ETag"]
    stub.calls.clear()
    response = await client.get("/api/v1/enterprises", headers={"If-None-Match": etag})
    assert response.status == 304 and _listings(stub) == 0
