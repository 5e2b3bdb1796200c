"""The gateway in the whole stack (devstack.Stack on free ports): Alipay login
through the Alipay simulator, phone authorisation with payloads the
simulator made (valid and tampered), a query visible only to the user who
made it, and the enterprise directory from config/enterprises.json served
with an ETag."""

from __future__ import annotations

import base64
import json

import aiohttp

from devstack.stack import ROOT
from tests.e2e.conftest_gateway import (  # noqa: F401  (gateway_stack is a fixture)
    alipay_simulator_url,
    gateway_stack,
    gateway_url,
    make_query,
)

USER_A_PHONE, USER_A_ID6 = "13300133000", "456789"


async def _login(http: aiohttp.ClientSession, base: str, auth_code: str) -> dict[str, str]:
    async with http.post(f"{base}/api/v1/sessions", json={"auth_code": auth_code}) as response:
        assert response.status == 200, await response.text()
        return {"Authorization": f"Bearer {(await response.json())['token']}"}


async def test_login_refused_code_is_unauthenticated(gateway_stack):
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{gateway_url(gateway_stack)}/api/v1/sessions", json={"auth_code": "no-such-code"}) as r:
            assert r.status == 401
            assert (await r.json())["error"]["code"] == "UNAUTHENTICATED"


async def test_phone_authorisation_valid_and_tampered(gateway_stack):
    base = gateway_url(gateway_stack)
    async with aiohttp.ClientSession() as http:
        headers = await _login(http, base, "demo-auth-code")
        async with http.post(
            f"{alipay_simulator_url(gateway_stack)}/sim/phone-number-payloads", json={"phone": USER_A_PHONE}
        ) as r:
            assert r.status == 200
            payload = await r.json()

        async with http.post(f"{base}/api/v1/phone-number", json=payload, headers=headers) as r:
            assert r.status == 200, await r.text()
            assert await r.json() == {"phone": USER_A_PHONE}

        signature = bytearray(base64.b64decode(payload["sign"]))
        signature[-1] ^= 0x01
        tampered = [
            {**payload, "sign": base64.b64encode(bytes(signature)).decode()},
            {**payload, "response": payload["response"][::-1]},
        ]
        for body in tampered:
            async with http.post(f"{base}/api/v1/phone-number", json=body, headers=headers) as r:
                assert r.status == 400
                assert (await r.json())["error"]["code"] == "INVALID_ARGUMENT"

        async with http.post(f"{base}/api/v1/phone-number", json=payload) as r:
            assert r.status == 401


async def test_query_is_visible_only_to_its_user(gateway_stack):
    base = gateway_url(gateway_stack)
    async with aiohttp.ClientSession() as http:
        mine, theirs = await _login(http, base, "demo-auth-code"), await _login(http, base, "demo-auth-code-2")
        query_id = await make_query(gateway_stack, mine["Authorization"].split()[1], USER_A_PHONE, USER_A_ID6)
        async with http.get(f"{base}/api/v1/queries/{query_id}", headers=mine) as r:
            assert r.status == 200
            query = await r.json()
        assert query["query_id"] == query_id and query["phone"] == "133****3000"
        async with http.get(f"{base}/api/v1/queries/{query_id}", headers=theirs) as r:
            assert r.status == 404
            assert (await r.json())["error"]["code"] == "NOT_FOUND"
        async with http.get(f"{base}/api/v1/queries/{query_id}") as r:
            assert r.status == 401


async def test_enterprise_directory_from_the_catalogue_with_an_etag(gateway_stack):
    catalogue = json.loads((ROOT / "config" / "enterprises.json").read_text(encoding="utf-8"))
    expected = {e["id"]: e["name"] for e in catalogue["enterprises"]}
    url = f"{gateway_url(gateway_stack)}/api/v1/enterprises"
    async with aiohttp.ClientSession() as http:
        async with http.get(url) as r:
            assert r.status == 200
            listing = (await r.json())["enterprises"]
            etag, cache_control = r.headers["ETag"], r.headers["Cache-Control"]
        assert {e["id"]: e["name"] for e in listing} == expected
        assert all(e["hotline"] and e["detail_and_unbind"] for e in listing)
        assert cache_control.startswith("public, max-age=")
        async with http.get(url, headers={"If-None-Match": etag}) as r:
            assert r.status == 304
            assert r.headers["ETag"] == etag
