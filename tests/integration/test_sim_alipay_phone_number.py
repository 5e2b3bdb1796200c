"""The Alipay simulator's my.getPhoneNumber payloads (POST
/sim/phone-number-payloads): encrypted with the app's AES key, signed like
Alipay over the quoted response, checked here with alipay-sdk-python's own
RSA verification."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import rsa
from aiohttp.test_utils import TestClient, TestServer
from alipay.aop.api.util.SignatureUtils import verify_with_rsa

from devstack.secrets import pem_body
from simulators import alipay_openapi
from simulators.alipay_phone_number import decrypt_content
from simulators.scenario import parse_scenario

AES_KEY = base64.b64encode(bytes(range(16))).decode()
SCENARIO = parse_scenario({})


Start = Callable[..., Awaitable[TestClient]]


@pytest.fixture
async def start(keys: dict[str, Path]) -> AsyncIterator[Start]:
    clients: list[TestClient] = []

    async def _start(**options) -> TestClient:
        client = TestClient(
            TestServer(
                alipay_openapi.create_app(
                    SCENARIO,
                    app_id="2021000000000001",
                    app_public_key=keys["app_public"],
                    alipay_private_key=keys["alipay_private"],
                    **options,
                )
            )
        )
        await client.start_server()
        clients.append(client)
        return client

    yield _start
    for client in clients:
        await client.close()


def _verified(keys, payload: dict) -> bool:
    """The SDK's check, over the response with its quotes as Alipay signs it."""
    signed = ('"' + payload["response"] + '"').encode("utf-8")
    try:
        return bool(verify_with_rsa(pem_body(keys["alipay_public"]), signed, payload["sign"]))
    except rsa.VerificationError:
        return False


async def test_payload_is_encrypted_and_signed_like_alipays(start, keys):
    simulator = await start(aes_key=AES_KEY)
    response = await simulator.post("/sim/phone-number-payloads", json={"phone": "13800138000"})
    assert response.status == 200
    payload = await response.json()
    assert set(payload) == {"response", "sign", "sign_type", "encrypt_type", "charset"}
    assert (payload["sign_type"], payload["encrypt_type"], payload["charset"]) == ("RSA2", "AES", "UTF-8")
    assert "13800138000" not in payload["response"]
    content = json.loads(decrypt_content(base64.b64decode(AES_KEY), payload["response"]))
    assert content == {"code": "10000", "msg": "Success", "mobile": "13800138000"}
    assert _verified(keys, payload)
    with pytest.raises(rsa.VerificationError):  # without the quotes it is not what was signed
        verify_with_rsa(pem_body(keys["alipay_public"]), payload["response"].encode(), payload["sign"])


async def test_refused_payload_holds_no_number(start, keys):
    simulator = await start(aes_key=AES_KEY)
    response = await simulator.post("/sim/phone-number-payloads", json={"phone": "13800138000", "refused": True})
    payload = await response.json()
    content = json.loads(decrypt_content(base64.b64decode(AES_KEY), payload["response"]))
    assert content["code"] == "40003" and "mobile" not in content
    assert _verified(keys, payload)


async def test_tampering_simulator_signs_wrongly(start, keys):
    simulator = await start(aes_key=AES_KEY, tamper=True)
    payload = await (await simulator.post("/sim/phone-number-payloads", json={"phone": "13800138000"})).json()
    assert not _verified(keys, payload)


async def test_key_comes_from_the_environment(start, monkeypatch):
    monkeypatch.setenv(alipay_openapi.AES_KEY_ENV, AES_KEY)
    simulator = await start()
    payload = await (await simulator.post("/sim/phone-number-payloads", json={"phone": "19200192000"})).json()
    assert json.loads(decrypt_content(bytes(range(16)), payload["response"]))["mobile"] == "19200192000"


async def test_without_a_key_there_are_no_payloads(start, monkeypatch):
    monkeypatch.delenv(alipay_openapi.AES_KEY_ENV, raising=False)
    simulator = await start()
    response = await simulator.post("/sim/phone-number-payloads", json={"phone": "13800138000"})
    assert response.status == 503
    assert alipay_openapi.AES_KEY_ENV in (await response.json())["error"]


@pytest.mark.parametrize("key", ["not base64!", base64.b64encode(b"short").decode()])
def test_malformed_key_stops_start_up(keys, key):
    with pytest.raises(ValueError, match="AES key"):
        alipay_openapi.create_app(
            SCENARIO,
            app_id="2021000000000001",
            app_public_key=keys["app_public"],
            alipay_private_key=keys["alipay_private"],
            aes_key=key,
        )


@pytest.mark.parametrize(
    "body", [{}, {"phone": 13800138000}, {"phone": "abc"}, {"phone": "13800138000", "refused": "yes"}]
)
async def test_malformed_request_is_400(start, body):
    simulator = await start(aes_key=AES_KEY)
    response = await simulator.post("/sim/phone-number-payloads", json=body)
    assert response.status == 400
