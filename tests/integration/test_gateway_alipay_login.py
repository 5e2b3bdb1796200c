"""POST /api/v1/sessions against the Alipay OpenAPI simulator: the real SDK
signs and verifies, aiohttp carries, sessions land in a real FerretDB."""
from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from devstack.stack import free_port
from gateway.app import RUNNER_OPTIONS, create_app
from gateway.keys import MONGO, SESSIONS
from gateway.settings import GatewaySettings
from simulators import alipay_openapi
from simulators.scenario import parse_scenario
from yztc.settings import GrpcTlsSettings

AES_KEY = base64.b64encode(bytes(range(16))).decode()

APP_ID = "2021000000000001"
USER = "2088000000000042"
SCENARIO = parse_scenario({"alipay": {"auth_codes": {"demo-auth-code": "2088000000000001"}}})


Gateway = Callable[..., Awaitable[TestClient]]


@pytest.fixture
async def start(mongodb_uri: str, keys: dict[str, Path]) -> AsyncIterator[Gateway]:
    """A gateway client with an Alipay simulator beside it (`gateway.simulator`);
    `url` instead points the gateway elsewhere (a dead port, a broken server)."""
    clients: list[TestClient] = []

    async def _start(
        *,
        tamper: bool = False,
        alipay_public: str = "alipay_public",
        app_public: str = "app_public",
        url: str | None = None,
    ) -> TestClient:
        alipay = url is None
        if alipay:
            simulator = TestClient(
                TestServer(
                    alipay_openapi.create_app(
                        SCENARIO,
                        app_id=APP_ID,
                        app_public_key=keys[app_public],
                        alipay_private_key=keys["alipay_private"],
                        tamper=tamper,
                    )
                )
            )
            await simulator.start_server()
            clients.append(simulator)
            url = str(simulator.make_url("/gateway.do"))
        settings = GatewaySettings(
            mongodb_uri=mongodb_uri,
            aggregator_target=f"127.0.0.1:{free_port()}",
            alipay_url=url,
            alipay_app_id=APP_ID,
            alipay_app_private_key_file=keys["app_private"],
            alipay_public_key_file=keys[alipay_public],
            alipay_aes_key=AES_KEY,
            alipay_timeout_seconds=0.5,
            tls=GrpcTlsSettings(tls_ca="", tls_cert="", tls_key=""),
        )
        server = TestServer(create_app(settings))
        await server.start_server(**RUNNER_OPTIONS)
        gateway = TestClient(server)
        await gateway.start_server()
        clients.append(gateway)
        gateway.simulator = clients[-2] if alipay else None  # type: ignore[attr-defined]
        return gateway

    yield _start
    for client in reversed(clients):
        await client.close()


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
