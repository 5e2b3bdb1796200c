"""GET /api/v1/enterprises in front of a stub aggregator: public, cacheable
(ETag, Cache-Control), 304 on If-None-Match, asked of the aggregator once
per cache period."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient

from tests.integration.gateways import Gateways
from tests.integration.test_gateway_aggregator import StubAggregator


@pytest.fixture
async def gateway(gateways: Gateways) -> tuple[TestClient, StubAggregator]:
    stub = StubAggregator()
    service = await gateways.aggregator(stub)
    client = await gateways.start(aggregator_target=f"127.0.0.1:{service.port}", enterprises_cache_seconds=120)
    return client, stub


def _listings(stub: StubAggregator) -> int:
    return sum(1 for name, _ in stub.calls if name == "ListEnterprises")


async def test_answer_is_cacheable_with_an_etag(gateway):
    client, stub = gateway
    response = await client.get("/api/v1/enterprises")
    assert response.status == 200
    assert response.content_type == "application/json" and response.charset == "utf-8"
    assert (await response.json())["enterprises"][0] == {
        "id": "tencent",
        "name": "腾讯",
        "hotline": "95017",
        "detail_and_unbind": "微信：我-设置",
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
