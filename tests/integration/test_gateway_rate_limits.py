"""Rate limits at their boundaries, against a real FerretDB: per client IP on
every API route, per Alipay user, logins per user, codes per session and
per IP; X-Forwarded-For only from trusted proxies; limits shared by
replicas; and exact counting under concurrency on FerretDB (whose $inc
would lose updates)."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Awaitable, Callable

import pytest
from aiohttp.test_utils import TestClient

from gateway.keys import HASHER, MONGO, RATE_LIMIT_SLOTS
from gateway.rate_limits import Claim, MongoSlotStore, RateLimiter
from gateway.settings import RateLimit
from simulators.scenario import parse_scenario
from tests.integration.gateways import Gateways, bearer
from tests.integration.test_gateway_aggregator import StubAggregator
from yztc.errors import ServiceError
from yztc.mongo import connect

USER, OTHER_USER = "2088000000000001", "2088000000000002"
SCENARIO = parse_scenario({"alipay": {"auth_codes": {"code-user": USER, "code-other": OTHER_USER}}})
PHONE = {"phone": "13800138000"}


Start = Callable[..., Awaitable[TestClient]]


@pytest.fixture
def start(gateways: Gateways) -> Start:
    """start(**settings) -> a gateway with a stub aggregator and an Alipay
    simulator; every gateway started in one test shares them and the database."""
    backends: dict[str, str] = {}

    async def _start(**overrides) -> TestClient:
        if not backends:
            service = await gateways.aggregator(StubAggregator())
            simulator = await gateways.alipay(SCENARIO)
            backends.update(
                aggregator_target=f"127.0.0.1:{service.port}", alipay_url=str(simulator.make_url("/gateway.do"))
            )
        return await gateways.start(**backends, **overrides)

    return _start


async def _auth(client: TestClient, user: str = USER) -> dict[str, str]:
    return await bearer(client, user)


async def _limited(response, window: int) -> None:
    assert response.status == 429, await response.text()
    error = (await response.json())["error"]
    assert error["code"] == "RATE_LIMITED"
    assert 1 <= error["retry_after"] <= window
    assert response.headers["Retry-After"] == str(error["retry_after"])


# -- per client IP --------------------------------------------------------------


async def test_ip_limit_on_every_api_route_at_its_boundary(start):
    client = await start(limit_ip_requests="4/60")
    for path in ("/api/v1/openapi.json", "/api/v1/nothing", "/api/v1/queries/q1", "/api/v1/enterprises"):
        response = await client.get(path)
        assert response.status in (200, 401, 404), path
    await _limited(await client.get("/api/v1/openapi.json"), 60)
    # Refused before anything else is looked at: no session, no body.
    await _limited(await client.post("/api/v1/sessions", data=b"garbage"), 60)
    # Probes are never limited.
    assert (await client.get("/healthz")).status == 200
    assert (await client.get("/readyz")).status == 200


async def test_a_client_over_its_address_limit_waits_for_its_refusal(start):
    client = await start(limit_ip_requests="1/60", limit_refusal_delay_seconds=0.4)
    assert (await client.get("/api/v1/openapi.json")).status == 200
    started = time.monotonic()
    await _limited(await client.get("/api/v1/openapi.json"), 60)
    assert time.monotonic() - started >= 0.4
    prompt = await start(limit_ip_requests="1/60", limit_refusal_delay_seconds=0)
    started = time.monotonic()
    await _limited(await prompt.get("/api/v1/openapi.json"), 60)  # the same address: shared limit
    assert time.monotonic() - started < 0.4


async def test_forwarded_for_counts_only_behind_a_trusted_proxy(start):
    trusting = await start(limit_ip_requests="2/60", trusted_proxies=["127.0.0.1"])
    first = {"X-Forwarded-For": "198.51.100.1"}
    for _ in range(2):
        assert (await trusting.get("/api/v1/openapi.json", headers=first)).status == 200
    await _limited(await trusting.get("/api/v1/openapi.json", headers=first), 60)
    # A client-written prefix does not change who is counted.
    await _limited(await trusting.get("/api/v1/openapi.json", headers={"X-Forwarded-For": "1.2.3.4, 198.51.100.1"}), 60)
    second = {"X-Forwarded-For": "198.51.100.2"}
    assert (await trusting.get("/api/v1/openapi.json", headers=second)).status == 200


async def test_forwarded_for_from_an_untrusted_peer_is_ignored(start):
    client = await start(limit_ip_requests="2/60")
    for i in range(2):
        headers = {"X-Forwarded-For": f"198.51.100.{i}"}
        assert (await client.get("/api/v1/openapi.json", headers=headers)).status == 200
    await _limited(await client.get("/api/v1/openapi.json", headers={"X-Forwarded-For": "198.51.100.99"}), 60)


async def test_replicas_share_the_ip_limit(start):
    one = await start(limit_ip_requests="5/60")
    two = await start(limit_ip_requests="5/60")
    statuses = [(await (one if i % 2 else two).get("/api/v1/openapi.json")).status for i in range(8)]
    assert statuses == [200] * 5 + [429] * 3


# -- per Alipay user and per session --------------------------------------------


async def test_user_limit_across_sessions_and_routes(start):
    client = await start(limit_user_requests="3/60")
    first, second = await _auth(client), await _auth(client)
    # (The stub aggregator knows no query of this user: 404 is an answer, not a limit.)
    assert (await client.get("/api/v1/queries/q1", headers=first)).status == 404
    assert (await client.post("/api/v1/verification-codes", json=PHONE, headers=second)).status == 202
    assert (await client.get("/api/v1/queries/q1", headers=second)).status == 404
    await _limited(await client.get("/api/v1/queries/q1", headers=first), 60)
    # Another user is not affected.
    assert (await client.get("/api/v1/queries/q2", headers=await _auth(client, OTHER_USER))).status == 404


async def test_logins_per_user(start):
    client = await start(limit_user_sessions="2/3600")
    for _ in range(2):
        assert (await client.post("/api/v1/sessions", json={"auth_code": "code-user"})).status == 200
    response = await client.post("/api/v1/sessions", json={"auth_code": "code-user"})
    await _limited(response, 3600)
    user = client.app[HASHER].digest("user", USER)  # stored only as a keyed hash (L6)
    assert await client.app[MONGO].get_default_database()["sessions"].count_documents({"user": user}) == 2
    assert (await client.post("/api/v1/sessions", json={"auth_code": "code-other"})).status == 200


async def test_codes_per_session(start):
    client = await start(limit_session_codes="2/3600")
    session = await _auth(client)
    # A malformed request is refused before it counts.
    assert (await client.post("/api/v1/verification-codes", json={"phone": "1"}, headers=session)).status == 400
    for _ in range(2):
        assert (await client.post("/api/v1/verification-codes", json=PHONE, headers=session)).status == 202
    await _limited(await client.post("/api/v1/verification-codes", json=PHONE, headers=session), 3600)
    # Other routes of the session are not limited by it.
    assert (await client.get("/api/v1/queries/q1", headers=session)).status == 404
    assert (await client.post("/api/v1/verification-codes", json=PHONE, headers=await _auth(client))).status == 202


async def test_codes_per_ip_across_sessions_and_users(start):
    client = await start(limit_ip_codes="3/3600")
    for user in (USER, USER, OTHER_USER):
        headers = await _auth(client, user)
        assert (await client.post("/api/v1/verification-codes", json=PHONE, headers=headers)).status == 202
    response = await client.post("/api/v1/verification-codes", json=PHONE, headers=await _auth(client, OTHER_USER))
    await _limited(response, 3600)


async def test_aggregators_per_phone_limit_passes_through(start):
    client = await start()
    response = await client.post(
        "/api/v1/verification-codes", json={"phone": "13900139000"}, headers=await _auth(client)
    )
    await _limited(response, 60)
    assert response.headers["Retry-After"] == "42"


# -- the store on FerretDB ---------------------------------------------------------


async def test_concurrent_replicas_on_ferretdb_count_exactly(mongodb_uri):
    """300 events at once through 3 limiters (replicas) on one FerretDB, limit
    100: exactly 100 allowed and 100 slots stored, none lost, none extra."""
    client = connect(mongodb_uri, "test")
    try:
        store = MongoSlotStore(client.get_default_database())
        await store.ensure_indexes()
        limiters = [RateLimiter(store) for _ in range(3)]
        claim = Claim("ip_requests", RateLimit(count=100, seconds=3600), "203.0.113.7")

        async def one(i: int) -> bool:
            try:
                await limiters[i % 3].claim(claim)
            except ServiceError as error:
                assert error.code == "RATE_LIMITED"
                return False
            return True

        allowed = await asyncio.gather(*(one(i) for i in range(300)))
        slots = await client.get_default_database()["rate_limit_slots"].find().to_list()
        assert sum(allowed) == 100
        assert len(slots) == 100
        assert sorted(int(s["_id"].rsplit(":", 1)[1]) for s in slots) == list(range(1, 101))
    finally:
        await client.close()


async def test_fresh_replicas_catch_up_with_a_busy_window(mongodb_uri):
    client = connect(mongodb_uri, "test")
    try:
        store = MongoSlotStore(client.get_default_database())
        claim = Claim("user_requests", RateLimit(count=50, seconds=3600), USER)
        busy = RateLimiter(store)
        for _ in range(40):
            await busy.claim(claim)
        late = RateLimiter(store)
        for _ in range(10):
            await late.claim(claim)
        with pytest.raises(ServiceError):
            await late.claim(claim)
        with pytest.raises(ServiceError):
            await busy.claim(claim)
    finally:
        await client.close()


async def test_expired_slots_are_purged(start):
    client = await start(limit_ip_requests="10/60")
    await client.get("/api/v1/openapi.json")
    slots = client.app[RATE_LIMIT_SLOTS]
    assert await slots.purge_expired() == 0
    later = dt.datetime.fromtimestamp(time.time() + 60 + 121, dt.UTC)
    assert await slots.purge_expired(later) == 1
    assert await client.app[MONGO].get_default_database()["rate_limit_slots"].count_documents({}) == 0


async def test_round_trips_per_request(start, monkeypatch):
    """Limits cost one insert per request: the address's (public routes), or
    the address's and the user's together after the session look-up."""
    client = await start()
    slots = client.app[RATE_LIMIT_SLOTS]
    inserts: list[int] = []
    original = slots.insert

    async def counting(batch):
        inserts.append(len(batch))
        return await original(batch)

    monkeypatch.setattr(slots, "insert", counting)
    auth = await _auth(client)
    await client.get("/api/v1/enterprises")
    assert inserts == [1]
    inserts.clear()
    await client.get("/api/v1/queries/q1", headers=auth)
    assert inserts == [2]
    inserts.clear()
    await client.get("/api/v1/queries/q1", headers={"Authorization": "Bearer " + "A" * 43})
    assert inserts == [1]
    inserts.clear()
    await client.post("/api/v1/verification-codes", json=PHONE, headers=auth)
    assert inserts == [2, 2]  # + the session's and the address's code limits
