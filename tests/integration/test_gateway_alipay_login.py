"""POST /api/v1/sessions against the Alipay OpenAPI simulator: the real SDK
signs and verifies, aiohttp carries, sessions land in a real FerretDB; the
user is keyed by user_id or open_id, whichever Alipay gives (and the
settings prefer), and what the session does is bound to that key."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from devstack.stack import free_port
from gateway.alipay_login import OPEN_ID_PREFIX
from gateway.keys import MONGO, SESSIONS
from simulators.alipay_openapi import open_id_for
from simulators.scenario import parse_scenario
from tests.integration.gateways import APP_ID, Gateways
from yztc.errors import ServiceError
from yztc.v1 import account_query_pb2 as pb
from yztc.v1 import account_query_pb2_grpc as pb_grpc

USER, OTHER_USER = "2088000000000042", "2088000000000043"
SCENARIO = parse_scenario({"alipay": {"auth_codes": {"demo-auth-code": "2088000000000001"}}})


Gateway = Callable[..., Awaitable[TestClient]]


@pytest.fixture
def start(gateways: Gateways) -> Gateway:
    """A gateway with an Alipay simulator beside it (`gateway.simulator`;
    `tamper`, `app_public` and `ids` are the simulator's); `url` instead
    points the gateway elsewhere (a dead port, a broken server); other
    keywords are the gateway's settings."""

    async def _start(
        *,
        tamper: bool = False,
        alipay_public: str = "alipay_public",
        app_public: str = "app_public",
        ids: str | None = None,
        url: str | None = None,
        **settings,
    ) -> TestClient:
        simulator = None
        if url is None:
            simulator = await gateways.alipay(
                SCENARIO, app_public_key=gateways.keys[app_public], tamper=tamper, ids=ids
            )
            url = str(simulator.make_url("/gateway.do"))
        gateway = await gateways.start(
            alipay_url=url, alipay_public_key_file=gateways.keys[alipay_public], alipay_timeout_seconds=0.5, **settings
        )
        gateway.simulator = simulator  # type: ignore[attr-defined]
        return gateway

    return _start


async def _mint(gateway: TestClient, user_id: str = USER) -> str:
    response = await gateway.simulator.post("/sim/auth-codes", json={"user_id": user_id})
    assert response.status == 200
    return (await response.json())["auth_code"]


async def test_good_code_gives_a_session_for_the_alipay_user(start):
    gateway = await start()
    code = await _mint(gateway)
    response = await gateway.post("/api/v1/sessions", json={"auth_code": code})
    assert response.status == 200, await response.text()
    body = await response.json()
    assert set(body) == {"token", "expires_in"}
    assert body["expires_in"] == 7200
    assert await gateway.app[SESSIONS].lookup(body["token"]) == USER
    doc = await gateway.app[MONGO].get_default_database()["sessions"].find_one()
    assert doc["_id"] == hashlib.sha256(body["token"].encode()).hexdigest()
    # The token opens the authenticated endpoints (the aggregator is down here).
    response = await gateway.post(
        "/api/v1/verification-codes",
        json={"phone": "13800138000"},
        headers={"Authorization": f"Bearer {body['token']}"},
    )
    assert response.status == 503


async def test_demo_code_works_again_and_gives_new_tokens(start):
    gateway = await start()
    tokens = set()
    for _ in range(2):
        response = await gateway.post("/api/v1/sessions", json={"auth_code": "demo-auth-code"})
        assert response.status == 200
        tokens.add((await response.json())["token"])
    assert len(tokens) == 2


async def test_used_or_unknown_code_is_unauthenticated(start):
    gateway = await start()
    code = await _mint(gateway)
    assert (await gateway.post("/api/v1/sessions", json={"auth_code": code})).status == 200
    for bad in (code, "no-such-code"):
        response = await gateway.post("/api/v1/sessions", json={"auth_code": bad})
        assert response.status == 401
        assert (await response.json())["error"]["code"] == "UNAUTHENTICATED"
    assert await gateway.app[MONGO].get_default_database()["sessions"].count_documents({}) == 1


async def test_tampered_answer_is_unauthenticated(start):
    gateway = await start(tamper=True)
    response = await gateway.post("/api/v1/sessions", json={"auth_code": await _mint(gateway)})
    assert response.status == 401
    assert (await response.json())["error"]["code"] == "UNAUTHENTICATED"


async def test_answer_signed_by_another_key_is_unauthenticated(start):
    gateway = await start(alipay_public="rogue_public")
    response = await gateway.post("/api/v1/sessions", json={"auth_code": await _mint(gateway)})
    assert response.status == 401


async def test_alipay_refusing_our_signature_is_unauthenticated(start):
    # Alipay knows another key for our app: its answer is a signed error_response.
    gateway = await start(app_public="rogue_public")
    response = await gateway.post("/api/v1/sessions", json={"auth_code": "demo-auth-code"})
    assert response.status == 401
    assert (await response.json())["error"]["code"] == "UNAUTHENTICATED"


async def test_alipay_unreachable_is_unavailable(start):
    gateway = await start(url=f"http://127.0.0.1:{free_port()}/gateway.do")
    response = await gateway.post("/api/v1/sessions", json={"auth_code": "demo-auth-code"})
    assert response.status == 503
    assert (await response.json())["error"]["code"] == "UNAVAILABLE"


async def _broken_alipay(handler) -> TestServer:
    app = web.Application()
    app.router.add_post("/gateway.do", handler)
    server = TestServer(app)
    await server.start_server()
    return server


@pytest.mark.parametrize("status", [500, 502, 404, 302])
async def test_alipay_http_error_is_unavailable(start, status):
    async def fail(request: web.Request) -> web.Response:
        return web.Response(status=status, headers={"Location": "http://127.0.0.1:1/"})

    server = await _broken_alipay(fail)
    try:
        gateway = await start(url=str(server.make_url("/gateway.do")))
        response = await gateway.post("/api/v1/sessions", json={"auth_code": "demo-auth-code"})
        assert response.status == 503
    finally:
        await server.close()


async def test_alipay_too_slow_is_unavailable(start):
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.Response(text="{}")

    server = await _broken_alipay(slow)
    try:
        gateway = await start(url=str(server.make_url("/gateway.do")))
        response = await gateway.post("/api/v1/sessions", json={"auth_code": "demo-auth-code"})
        assert response.status == 503
    finally:
        await server.close()


async def test_unsigned_answer_is_unauthenticated(start):
    async def unsigned(request: web.Request) -> web.Response:
        return web.json_response({"alipay_system_oauth_token_response": {"user_id": USER}})

    server = await _broken_alipay(unsigned)
    try:
        gateway = await start(url=str(server.make_url("/gateway.do")))
        response = await gateway.post("/api/v1/sessions", json={"auth_code": "demo-auth-code"})
        assert response.status == 401
    finally:
        await server.close()


async def test_no_auth_code_or_user_id_in_logs(start, caplog):
    gateway = await start()
    code = await _mint(gateway)
    await gateway.post("/api/v1/sessions", json={"auth_code": code})
    await gateway.post("/api/v1/sessions", json={"auth_code": code})  # refused
    text = "\n".join(r.getMessage() + str(getattr(r, "fields", "")) for r in caplog.records)
    assert code not in text
    assert USER not in text


# -- which id keys the user (issue 17, case 1) ----------------------------------


class OwnerAggregator(pb_grpc.AccountQueryServiceServicer):
    """Records the requester of every call; query "q1" belongs to `owner`."""

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self.requesters: list[str] = []

    async def RequestVerificationCode(self, request, context):
        self.requesters.append(request.requester_id)
        return pb.RequestVerificationCodeResponse(resend_after=60)

    async def GetQuery(self, request, context):
        self.requesters.append(request.requester_id)
        if request.requester_id != self.owner:
            await context.abort_with_status(ServiceError("NOT_FOUND").to_grpc_status())
        return pb.Query(query_id=request.query_id, status=pb.QUERY_STATUS_IN_PROGRESS, phone="138****8000")


async def _login(gateway: TestClient, user_id: str = USER) -> str:
    response = await gateway.post("/api/v1/sessions", json={"auth_code": await _mint(gateway, user_id)})
    assert response.status == 200, await response.text()
    return (await response.json())["token"]


OPEN_KEY = OPEN_ID_PREFIX + open_id_for(APP_ID, USER)


async def test_open_id_only_logs_in_and_binds_queries_to_the_open_id(start, gateways):
    # Alipay apps on the openid scheme get no user_id: today's main answered 401.
    aggregator = OwnerAggregator(owner=OPEN_KEY)
    service = await gateways.aggregator(aggregator)
    gateway = await start(ids="open_id", aggregator_target=f"127.0.0.1:{service.port}")
    token = await _login(gateway)
    assert await gateway.app[SESSIONS].lookup(token) == OPEN_KEY
    headers = {"Authorization": f"Bearer {token}"}
    response = await gateway.post("/api/v1/verification-codes", json={"phone": "13800138000"}, headers=headers)
    assert response.status == 202
    assert (await gateway.get("/api/v1/queries/q1", headers=headers)).status == 200
    # Stable: a later login of the same person is the same user, another person is not.
    again = {"Authorization": f"Bearer {await _login(gateway)}"}
    assert (await gateway.get("/api/v1/queries/q1", headers=again)).status == 200
    other = {"Authorization": f"Bearer {await _login(gateway, OTHER_USER)}"}
    assert (await gateway.get("/api/v1/queries/q1", headers=other)).status == 404
    assert aggregator.requesters[:3] == [OPEN_KEY] * 3
    assert aggregator.requesters[3] == OPEN_ID_PREFIX + open_id_for(APP_ID, OTHER_USER)


@pytest.mark.parametrize(
    ("ids", "preferred", "key"),
    [
        ("both", None, USER),  # the default keeps the users of before open_id
        ("both", "user_id", USER),
        ("both", "open_id", OPEN_KEY),
        ("user_id", "open_id", USER),  # the preference only chooses between two
        ("open_id", "user_id", OPEN_KEY),
    ],
)
async def test_the_key_is_the_preferred_id_while_both_come(start, ids, preferred, key):
    settings = {} if preferred is None else {"alipay_user_key": preferred}
    gateway = await start(ids=ids, **settings)
    assert await gateway.app[SESSIONS].lookup(await _login(gateway)) == key


async def test_no_open_id_in_logs(start, caplog):
    gateway = await start(ids="open_id")
    await _login(gateway)
    text = "\n".join(r.getMessage() + str(getattr(r, "fields", "")) for r in caplog.records)
    assert open_id_for(APP_ID, USER) not in text and USER not in text
