"""The SMS centre simulator: submission, the CONTRACT's inspection API, segments."""

from __future__ import annotations

import datetime as dt
import logging
import random
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from simulators import sms_centre
from simulators.scenario import parse_scenario

LONG_TEXT = (
    "【一证通查】138****0000 名下互联网账号：腾讯3个、阿里巴巴0个、支付宝1个、百度0个、快手0个、"
    "抖音1个、京东暂未返回、美团2个。如需查看明细或解绑，请在一证通查小程序进入“解绑与明细查询”，"
    "按各企业指引办理。"
)


class StepClock:
    """A clock that moves one second per reading, so order is visible in received_at."""

    def __init__(self) -> None:
        self.now = dt.datetime(2024, 5, 1, 4, 0, 0, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        self.now += dt.timedelta(seconds=1)
        return self.now


@pytest.fixture
async def client() -> AsyncIterator[TestClient]:
    app = sms_centre.create_app(parse_scenario({}), now=StepClock())
    async with TestClient(TestServer(app)) as c:
        yield c


async def _submit(client: TestClient, dest: str, text: str, source: str = "10699000") -> tuple[int, dict]:
    async with client.post("/submit", json={"source": source, "dest": dest, "text": text}) as resp:
        return resp.status, await resp.json()


async def _messages(client: TestClient, dest: str | None = None) -> list[dict]:
    async with client.get("/messages", params={"dest": dest} if dest else None) as resp:
        assert resp.status == 200
        return (await resp.json())["messages"]


async def test_submit_then_inspect_by_destination(client: TestClient) -> None:
    status, body = await _submit(client, "13800138000", "您的验证码为123456，5分钟内有效。")
    assert status == 200 and body["segments"] == 1 and body["message_id"]
    await _submit(client, "13900139000", "另一条")
    await _submit(client, "13800138000", "第二条")

    assert await _messages(client, "13800138000") == [
        {
            "source": "10699000",
            "dest": "13800138000",
            "text": "您的验证码为123456，5分钟内有效。",
            "segments": 1,
            "received_at": "2024-05-01T04:00:01.000Z",
        },
        {
            "source": "10699000",
            "dest": "13800138000",
            "text": "第二条",
            "segments": 1,
            "received_at": "2024-05-01T04:00:03.000Z",
        },
    ]
    assert [m["dest"] for m in await _messages(client)] == ["13800138000", "13900139000", "13800138000"]
    assert await _messages(client, "13300133000") == []


async def test_long_chinese_text_counts_its_parts(client: TestClient) -> None:
    assert 70 < len(LONG_TEXT) <= 134  # two parts of 67
    status, body = await _submit(client, "13800138000", LONG_TEXT)
    assert (status, body["segments"]) == (200, 2)
    [message] = await _messages(client, "13800138000")
    assert message["text"] == LONG_TEXT and message["segments"] == 2


async def test_delete_clears_everything(client: TestClient) -> None:
    await _submit(client, "13800138000", "x")
    async with client.delete("/messages") as resp:
        assert resp.status == 204
    assert await _messages(client) == []


@pytest.mark.parametrize(
    "payload",
    [
        {"dest": "13800138000", "text": "x"},
        {"source": "10699000", "dest": "+8613800138000", "text": "x"},
        {"source": "10699000", "dest": "13800138000", "text": ""},
        {"source": "10699000", "dest": "13800138000"},
    ],
)
async def test_malformed_submission_is_400(client: TestClient, payload: dict) -> None:
    async with client.post("/submit", json=payload) as resp:
        assert resp.status == 400
    assert await _messages(client) == []


async def test_failing_centre_refuses_and_records_nothing() -> None:
    app = sms_centre.create_app(parse_scenario({"sms_centre": {"fail_rate": 1.0}}), rng=random.Random(3))
    async with TestClient(TestServer(app)) as client:
        assert (await _submit(client, "13800138000", "x"))[0] == 503
        assert await _messages(client) == []


async def test_neither_phone_nor_text_is_logged(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    await _submit(client, "13800138000", "验证码654321")
    logged = " ".join(r.getMessage() + repr(getattr(r, "fields", {})) for r in caplog.records)
    assert "sms accepted" in logged
    assert "13800138000" not in logged and "654321" not in logged
