"""L8: a session lasted a fixed 2 h however long unused, and a user could
hold any number of live sessions (20 new ones an hour). Now a user holds at
most `max_sessions_per_user` (a new login ends the oldest), a session unused
for `session_idle_seconds` has ended, and DELETE /api/v1/sessions ends one."""

from __future__ import annotations

import datetime as dt

from aiohttp.test_utils import TestClient

from gateway.keys import MONGO, SESSIONS
from gateway.sessions import session_id
from simulators.scenario import parse_scenario
from tests.integration.conftest import gateways, keys  # noqa: F401  (fixtures)
from tests.integration.gateways import Gateways
from tests.integration.test_gateway_aggregator import StubAggregator

USER, OTHER = "2088000000000777", "2088000000000778"
SCENARIO = parse_scenario({"alipay": {"auth_codes": {"code-user": USER, "code-other": OTHER}}})


async def _gateway(gateways: Gateways, **settings) -> TestClient:
    service = await gateways.aggregator(StubAggregator())
    simulator = await gateways.alipay(SCENARIO)
    return await gateways.start(
        aggregator_target=f"127.0.0.1:{service.port}", alipay_url=str(simulator.make_url("/gateway.do")), **settings
    )


async def _login(gateway: TestClient, code: str = "code-user") -> str:
    response = await gateway.post("/api/v1/sessions", json={"auth_code": code})
    assert response.status == 200, await response.text()
    return (await response.json())["token"]


async def _status(gateway: TestClient, token: str) -> int:
    response = await gateway.get("/api/v1/queries/q1", headers={"Authorization": f"Bearer {token}"})
    return response.status  # 404: a live session (the stub knows no q1); 401: none


async def test_a_user_holds_at_most_the_cap_and_the_oldest_ends(gateways: Gateways) -> None:  # noqa: F811
    gateway = await _gateway(gateways, max_sessions_per_user=3)
    tokens = [await _login(gateway) for _ in range(5)]
    other = await _login(gateway, "code-other")
    assert [await _status(gateway, t) for t in tokens] == [401, 401, 404, 404, 404]
    assert await _status(gateway, other) == 404  # another user's sessions are their own
    db = gateway.app[MONGO].get_default_database()
    assert await db["sessions"].count_documents({}) == 4


async def test_an_idle_session_has_ended(gateways: Gateways) -> None:  # noqa: F811
    gateway = await _gateway(gateways, session_idle_seconds=120)
    idle, used = await _login(gateway), await _login(gateway)
    db = gateway.app[MONGO].get_default_database()
    # Both were last used 100 s ago (20 s of idle time left); one is used now.
    past = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=100)
    await db["sessions"].update_many({}, {"$set": {"idle_until": past + dt.timedelta(seconds=120)}})
    assert await _status(gateway, used) == 404  # used: its idle time starts again
    doc = await db["sessions"].find_one({"_id": session_id(used)})
    assert doc["idle_until"] > dt.datetime.now(dt.UTC) + dt.timedelta(seconds=110)
    await db["sessions"].update_one({"_id": session_id(idle)}, {"$set": {"idle_until": past}})
    assert await _status(gateway, idle) == 401
    assert await gateway.app[SESSIONS].purge_expired() == 1
    assert await _status(gateway, used) == 404


async def test_logout_ends_the_session(gateways: Gateways) -> None:  # noqa: F811
    gateway = await _gateway(gateways)
    token = await _login(gateway)
    response = await gateway.delete("/api/v1/sessions", headers={"Authorization": f"Bearer {token}"})
    assert response.status == 204
    assert await _status(gateway, token) == 401
