"""POST /api/v1/phone-number with payloads from the Alipay simulator: the
gateway verifies Alipay's signature, decrypts with the app's AES key and
gives the number for the form; anything else is 400 INVALID_ARGUMENT."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Awaitable, Callable

import pytest
from aiohttp.test_utils import TestClient

from gateway.phone_number import NO_NUMBER, NOT_ALIPAYS, NOT_MAINLAND
from tests.integration.gateways import AES_KEY as APP_AES_KEY
from tests.integration.gateways import Gateways, bearer

OTHER_AES_KEY = base64.b64encode(bytes(range(100, 116))).decode()
USER = "2088000000000042"


Start = Callable[..., Awaitable[TestClient]]


@pytest.fixture
def start(gateways: Gateways) -> Start:
    """A gateway and, as `gateway.simulator`, an Alipay simulator making payloads."""

    async def _start(*, simulator_aes: str = APP_AES_KEY, alipay_key: str = "alipay", tamper: bool = False):
        simulator = await gateways.alipay(
            alipay_private_key=gateways.keys[f"{alipay_key}_private"], tamper=tamper, aes_key=simulator_aes
        )
        gateway = await gateways.start(alipay_url=str(simulator.make_url("/gateway.do")), alipay_aes_key=APP_AES_KEY)
        gateway.simulator = simulator  # type: ignore[attr-defined]
        return gateway

    return _start


async def _auth(gateway: TestClient) -> dict[str, str]:
    return await bearer(gateway, USER)


async def _payload(gateway: TestClient, phone: str = "13800138000", **extra) -> dict:
    response = await gateway.simulator.post("/sim/phone-number-payloads", json={"phone": phone, **extra})
    assert response.status == 200
    return await response.json()


async def _invalid(response, message: str) -> None:
    assert response.status == 400, await response.text()
    error = (await response.json())["error"]
    assert error == {"code": "INVALID_ARGUMENT", "message": message}


async def test_valid_payload_gives_the_number_for_the_form(start):
    gateway = await start()
    payload = await _payload(gateway)
    response = await gateway.post("/api/v1/phone-number", json=payload, headers=await _auth(gateway))
    assert response.status == 200
    assert await response.json() == {"phone": "13800138000"}
    assert response.headers["Cache-Control"] == "no-store"


async def test_only_response_and_sign_are_needed_and_numbers_are_normalised(start):
    gateway = await start()
    payload = await _payload(gateway, "+8618600186000")
    body = {"response": payload["response"], "sign": payload["sign"]}
    response = await gateway.post("/api/v1/phone-number", json=body, headers=await _auth(gateway))
    assert await response.json() == {"phone": "18600186000"}


async def test_tampered_signature_is_invalid_argument(start):
    gateway = await start(tamper=True)
    response = await gateway.post("/api/v1/phone-number", json=await _payload(gateway), headers=await _auth(gateway))
    await _invalid(response, NOT_ALIPAYS)


async def test_altered_response_is_invalid_argument(start):
    gateway = await start()
    auth = await _auth(gateway)
    payload = await _payload(gateway)
    other = await _payload(gateway, "13900139000")
    swapped = {**payload, "response": other["response"]}
    await _invalid(await gateway.post("/api/v1/phone-number", json=swapped, headers=auth), NOT_ALIPAYS)


async def test_payload_signed_by_someone_else_is_invalid_argument(start):
    gateway = await start(alipay_key="rogue")
    response = await gateway.post("/api/v1/phone-number", json=await _payload(gateway), headers=await _auth(gateway))
    await _invalid(response, NOT_ALIPAYS)


async def test_payload_for_another_apps_key_has_no_number(start):
    gateway = await start(simulator_aes=OTHER_AES_KEY)
    response = await gateway.post("/api/v1/phone-number", json=await _payload(gateway), headers=await _auth(gateway))
    await _invalid(response, NO_NUMBER)


async def test_user_who_did_not_authorise_has_no_number(start):
    gateway = await start()
    payload = await _payload(gateway, refused=True)
    await _invalid(await gateway.post("/api/v1/phone-number", json=payload, headers=await _auth(gateway)), NO_NUMBER)


async def test_number_outside_the_mainland_is_refused(start):
    gateway = await start()
    payload = await _payload(gateway, "85291234567")
    response = await gateway.post("/api/v1/phone-number", json=payload, headers=await _auth(gateway))
    await _invalid(response, NOT_MAINLAND)


async def test_needs_a_session(start):
    gateway = await start()
    response = await gateway.post("/api/v1/phone-number", json=await _payload(gateway))
    assert response.status == 401
    assert (await response.json())["error"]["code"] == "UNAUTHENTICATED"


@pytest.mark.parametrize(
    "body",
    [{}, {"response": "x"}, {"response": "x", "sign": 5}, {"response": "x", "sign": "y", "encrypt_type": "RSA"}],
)
async def test_malformed_body_is_invalid_argument(start, body):
    gateway = await start()
    response = await gateway.post("/api/v1/phone-number", json=body, headers=await _auth(gateway))
    assert response.status == 400
    assert "手机号授权信息" in (await response.json())["error"]["message"]


async def test_not_json_is_unsupported_media_type(start):
    gateway = await start()
    response = await gateway.post(
        "/api/v1/phone-number",
        data=b"response=x&sign=y",
        headers={**await _auth(gateway), "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status == 415


async def test_the_number_is_never_logged(start, caplog):
    caplog.set_level(logging.DEBUG)
    gateway = await start()
    auth = await _auth(gateway)
    await gateway.post("/api/v1/phone-number", json=await _payload(gateway), headers=auth)
    await gateway.post("/api/v1/phone-number", json=await _payload(gateway, "85291234567"), headers=auth)
    text = "\n".join(r.getMessage() + json.dumps(getattr(r, "fields", {}), default=str) for r in caplog.records)
    assert "13800138000" not in text and "85291234567" not in text
    assert any(getattr(r, "fields", {}).get("route") == "/api/v1/phone-number" for r in caplog.records)
