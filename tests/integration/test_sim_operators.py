"""The operators' real-name check simulator, served for real and called over HTTP."""

from __future__ import annotations

import logging
import random
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from simulators import operators
from simulators.scenario import parse_scenario
from tests.integration.signed_partner import clients, signed
from yztc.identifiers import OPERATOR_IDS

SCENARIO = parse_scenario(
    {
        "subscribers": [
            {"phone": "13800138000", "id_last6": "12345X", "operator": "cmcc", "status": "active"},
            {"phone": "13700137000", "id_last6": "678901", "operator": "cmcc", "status": "cancelled"},
            {"phone": "15000150000", "id_last6": "78901X", "operator": "ctcc", "status": "active"},
        ],
        "operators": {"cbn": {"down": True}},
    }
)
# Each operator accepts its own connector's key (docs/partner-api.md).
KEYS, SIGNERS = clients(*OPERATOR_IDS)


@pytest.fixture
async def client() -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(operators.create_app(SCENARIO, rng=random.Random(1), partner_keys=KEYS))) as c:
        yield c


async def _verify(client: TestClient, operator: str, phone: str, id_last6: str) -> tuple[int, dict]:
    return await signed(
        client,
        "POST",
        f"/operators/{operator}/subscribers/verify",
        SIGNERS.get(operator, SIGNERS["cmcc"]),
        {"phone": phone, "id_last6": id_last6},
    )


@pytest.mark.parametrize(
    ("operator", "phone", "id_last6", "answer"),
    [
        ("cmcc", "13800138000", "12345X", {"result": "match"}),
        ("cmcc", "13800138000", "12345x", {"result": "match"}),
        ("cmcc", "13800138000", "123450", {"result": "mismatch"}),
        ("cmcc", "13700137000", "678901", {"result": "cancelled"}),
        ("cmcc", "13500135000", "123456", {"result": "unknown"}),
        # 携号转网: the cmcc segment's operator points to where the number went...
        ("cmcc", "15000150000", "78901X", {"result": "ported", "ported_to": "ctcc"}),
        # ...and the new operator checks it as its own.
        ("ctcc", "15000150000", "78901x", {"result": "match"}),
        ("ctcc", "15000150000", "789010", {"result": "mismatch"}),
    ],
)
async def test_verdicts(client: TestClient, operator: str, phone: str, id_last6: str, answer: dict) -> None:
    assert await _verify(client, operator, phone, id_last6) == (200, answer)


async def test_unknown_operator_is_404(client: TestClient) -> None:
    status, body = await _verify(client, "chinamobile", "13800138000", "12345X")
    assert status == 404 and body == {"error": "unknown operator"}


async def test_down_operator_is_503(client: TestClient) -> None:
    assert await _verify(client, "cbn", "19200192000", "567890") == (503, {"error": "down"})


@pytest.mark.parametrize(
    "payload",
    [{"phone": "13800138000"}, {"phone": "13800138000", "id_last6": "12345Y"}, {"phone": "138", "id_last6": "123456"}],
)
async def test_malformed_body_is_400(client: TestClient, payload: dict) -> None:
    status, _ = await signed(client, "POST", "/operators/cmcc/subscribers/verify", SIGNERS["cmcc"], payload)
    assert status == 400


async def test_neither_phone_nor_id_six_is_logged(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    await _verify(client, "cmcc", "13800138000", "12345X")
    logged = " ".join(r.getMessage() + repr(getattr(r, "fields", {})) for r in caplog.records)
    assert "verify answered" in logged and "match" in logged
    assert "13800138000" not in logged and "12345X" not in logged


async def test_unsigned_or_another_operators_key_is_401_without_a_verdict(client: TestClient) -> None:
    body = {"phone": "13800138000", "id_last6": "12345X"}
    for signer in (None, SIGNERS["ctcc"]):
        status, answer = await signed(client, "POST", "/operators/cmcc/subscribers/verify", signer, body)
        assert status == 401 and answer["error"] == "unauthenticated" and "result" not in answer
