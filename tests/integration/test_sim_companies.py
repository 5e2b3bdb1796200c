"""The companies' account-count simulator, served for real and called over HTTP."""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from simulators import companies
from simulators.scenario import parse_scenario
from tests.integration.signed_partner import clients, signed
from yztc.identifiers import COMPANY_IDS

SCENARIO = parse_scenario(
    {
        "accounts": {"13800138000": {"tencent": {"微信": 1, "QQ": 2}, "jd": 5, "douyin": 1}},
        "companies": {
            "tencent": {"latency_ms": 50},
            "jd": {"latency_ms": 1000, "mode": "async"},
            "baidu": {"down": True},
            "kuaishou": {"fail_rate": 1.0},
            "douyin": {"fail_rate": 0.3},
        },
    }
)
PHONE = "13800138000"
# Each company accepts its own connector's key (docs/partner-api.md).
KEYS, SIGNERS = clients(*COMPANY_IDS)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def client(clock: FakeClock) -> AsyncIterator[TestClient]:
    app = companies.create_app(SCENARIO, rng=random.Random(20240501), clock=clock, partner_keys=KEYS)
    async with TestClient(TestServer(app)) as c:
        yield c


async def _count(client: TestClient, company: str, request_id: str, phone: str = PHONE) -> tuple[int, dict]:
    return await signed(
        client,
        "POST",
        f"/companies/{company}/accounts/count",
        SIGNERS.get(company, SIGNERS["tencent"]),
        {"request_id": request_id, "phone": phone},
    )


async def _poll(client: TestClient, company: str, ticket: str) -> tuple[int, dict]:
    return await signed(client, "GET", f"/companies/{company}/accounts/count/{ticket}", SIGNERS[company])


async def test_sync_company_answers_total_and_apps_after_its_latency(client: TestClient) -> None:
    started = time.monotonic()
    status, body = await _count(client, "tencent", "r1")
    assert time.monotonic() - started >= 0.05
    assert status == 200
    assert body == {"status": "done", "total": 3, "apps": [{"name": "微信", "count": 1}, {"name": "QQ", "count": 2}]}


async def test_phone_without_accounts_counts_zero(client: TestClient) -> None:
    assert await _count(client, "alibaba", "r1", "13900139000") == (200, {"status": "done", "total": 0, "apps": []})
    assert await _count(client, "tencent", "r2", "13900139000") == (200, {"status": "done", "total": 0, "apps": []})


async def test_async_company_accepts_then_is_pending_then_done(client: TestClient, clock: FakeClock) -> None:
    status, body = await _count(client, "jd", "r1")
    assert status == 202 and body["status"] == "accepted"
    clock.now += 5  # well past latency_ms, yet the first poll is still pending
    assert await _poll(client, "jd", body["ticket"]) == (200, {"status": "pending"})
    assert await _poll(client, "jd", body["ticket"]) == (200, {"status": "done", "total": 5, "apps": []})


async def test_async_count_is_pending_until_latency_has_passed(client: TestClient, clock: FakeClock) -> None:
    _, body = await _count(client, "jd", "r1")
    for _ in range(3):
        assert (await _poll(client, "jd", body["ticket"]))[1] == {"status": "pending"}
    clock.now += 1.0
    assert (await _poll(client, "jd", body["ticket"]))[1]["status"] == "done"


async def test_unknown_ticket_or_another_companys_ticket_is_404(client: TestClient) -> None:
    _, body = await _count(client, "jd", "r1")
    assert (await _poll(client, "jd", "nope"))[0] == 404
    assert (await _poll(client, "tencent", body["ticket"]))[0] == 404


async def test_down_company_answers_503(client: TestClient) -> None:
    assert await _count(client, "baidu", "r1") == (503, {"error": "down"})


async def test_fail_rate_one_always_fails(client: TestClient) -> None:
    for i in range(5):
        status, _ = await _count(client, "kuaishou", f"r{i}")
        assert status == 503


async def test_fail_rate_fails_about_that_share_of_requests(client: TestClient) -> None:
    statuses = [(await _count(client, "douyin", f"r{i}"))[0] for i in range(200)]
    assert set(statuses) == {200, 503}
    assert 40 <= statuses.count(503) <= 80


async def test_repeated_request_id_gets_the_same_answer(client: TestClient) -> None:
    first = await _count(client, "tencent", "same")
    assert await _count(client, "tencent", "same") == first
    # Request ids are per company: jd gives its own (async) answer to "same",
    # and the same ticket again on a retry.
    accepted = await _count(client, "jd", "same")
    assert accepted[0] == 202
    assert await _count(client, "jd", "same") == accepted


async def test_request_id_reused_for_another_phone_is_409(client: TestClient) -> None:
    await _count(client, "tencent", "r1")
    status, _ = await _count(client, "tencent", "r1", "13900139000")
    assert status == 409


async def test_unknown_company_is_404(client: TestClient) -> None:
    status, body = await _count(client, "taobao", "r1")
    assert status == 404 and body == {"error": "unknown company"}


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"[]",
        b'{"phone": "13800138000"}',
        b'{"request_id": "r1"}',
        b'{"request_id": "r1", "phone": "1380013800"}',
        b'{"request_id": 7, "phone": "13800138000"}',
    ],
)
async def test_malformed_body_is_400(client: TestClient, payload: bytes) -> None:
    status, answer = await signed(client, "POST", "/companies/tencent/accounts/count", SIGNERS["tencent"], raw=payload)
    assert status == 400
    assert "error" in answer


async def test_unsigned_count_and_poll_are_401_and_not_counted(client: TestClient) -> None:
    _, body = await _count(client, "jd", "r1")
    path = "/companies/tencent/accounts/count"
    status, answer = await signed(client, "POST", path, None, {"request_id": "r2", "phone": PHONE})
    assert (status, answer) == (401, {"error": "unauthenticated", "reason": "unsigned"})
    status, answer = await signed(client, "GET", f"/companies/jd/accounts/count/{body['ticket']}", None)
    assert status == 401 and "total" not in answer and "status" not in answer
    async with client.get("/sim/companies/calls") as resp:
        assert "tencent" not in (await resp.json())["calls"]


async def test_a_companys_key_is_refused_at_another_company(client: TestClient) -> None:
    status, answer = await signed(
        client, "POST", "/companies/jd/accounts/count", SIGNERS["tencent"], {"request_id": "r1", "phone": PHONE}
    )
    assert (status, answer["reason"]) == (401, "unknown key")
