"""A stack of the gateway's own for its e2e tests (imported by them, not a
pytest conftest): the whole system as `make run` starts it, on free ports
with its own data, so fuzzing and flooding touch no other test's state.

Its gateway's rate limits are raised so that the fuzzer, which sends
everything from 127.0.0.1 with one session, explores the API instead of
meeting 429 after the first few hundred requests (the limits themselves are
tested at their boundaries in tests/integration/test_gateway_rate_limits.py).
"""

from __future__ import annotations

import asyncio
import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterator

import aiohttp
import pytest

from devstack.stack import ROOT, Ports, Stack

SCENARIO = ROOT / "simulators" / "default_scenario.json"

GENEROUS_LIMITS = {
    "YZTC_GATEWAY_LIMIT_IP_REQUESTS": "1000000/60",
    "YZTC_GATEWAY_LIMIT_USER_REQUESTS": "1000000/60",
    "YZTC_GATEWAY_LIMIT_USER_SESSIONS": "10000/3600",
    "YZTC_GATEWAY_LIMIT_SESSION_CODES": "10000/3600",
    "YZTC_GATEWAY_LIMIT_IP_CODES": "10000/3600",
    "YZTC_GATEWAY_LIMIT_IP_LOGINS": "100000/600",
    "YZTC_GATEWAY_LIMIT_IP56_LOGINS": "100000/600",
    "YZTC_GATEWAY_LIMIT_IP48_LOGINS": "100000/600",
}


def start_gateway_stack(var, extra_env: dict[str, str] | None = None) -> Stack:
    stack = Stack(var, Ports.free(), scenario=str(SCENARIO), extra_env={**GENEROUS_LIMITS, **(extra_env or {})})
    stack.start()
    return stack


@pytest.fixture(scope="module")
def gateway_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = start_gateway_stack(tmp_path_factory.mktemp("gateway-stack"))
    try:
        yield stack
    finally:
        stack.stop()


def gateway_url(stack: Stack) -> str:
    return f"http://127.0.0.1:{stack.ports.gateway}"


def alipay_simulator_url(stack: Stack) -> str:
    return f"http://127.0.0.1:{stack.ports.sim_alipay}"


def post_json(url: str, body: dict, headers: dict[str, str] | None = None) -> tuple[int, dict]:
    """A blocking POST for set-up steps outside an event loop."""
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **(headers or {})},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read())


def login(stack: Stack, auth_code: str = "demo-auth-code") -> str:
    """A session token of the demo user behind `auth_code`."""
    status, body = post_json(f"{gateway_url(stack)}/api/v1/sessions", {"auth_code": auth_code})
    assert status == 200, body
    return body["token"]


async def sms_code(http: aiohttp.ClientSession, stack: Stack, phone: str, seen: int = 0, wait: float = 15.0) -> str:
    """The verification code of the first SMS after the `seen` ones the SMS
    centre simulator holds for `phone`, waiting for it as a person would."""
    deadline = asyncio.get_running_loop().time() + wait
    while True:
        codes = await _codes(http, stack, phone)
        if len(codes) > seen:
            return codes[seen]
        assert asyncio.get_running_loop().time() < deadline, "no verification SMS reached the SMS centre"
        await asyncio.sleep(0.1)


async def _codes(http: aiohttp.ClientSession, stack: Stack, phone: str) -> list[str]:
    async with http.get(f"http://127.0.0.1:{stack.ports.sim_smsc}/messages", params={"dest": phone}) as response:
        assert response.status == 200
        messages = (await response.json())["messages"]
    return [m.group(1) for m in (re.search(r"验证码为(\d{6})", x["text"]) for x in messages) if m]


async def make_query(stack: Stack, token: str, phone: str, id_last6: str) -> str:
    """A query accepted for the session's user, the way the mini-program makes one."""
    base, headers = gateway_url(stack), {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession() as http:
        seen = len(await _codes(http, stack, phone))
        async with http.post(f"{base}/api/v1/verification-codes", json={"phone": phone}, headers=headers) as r:
            assert r.status == 202, await r.text()
        code = await sms_code(http, stack, phone, seen)
        body = {"phone": phone, "id_last6": id_last6, "code": code, "consent": True}
        async with http.post(f"{base}/api/v1/queries", json=body, headers=headers) as r:
            assert r.status == 202, await r.text()
            return (await r.json())["query_id"]
