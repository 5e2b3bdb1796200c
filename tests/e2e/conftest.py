"""The whole stack, started the way `make run` starts it (devstack.Stack), on
free ports with its own data folder and FerretDB, for the e2e tests."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import aiohttp
import pytest

from devstack.stack import ROOT, Ports, Stack
from yztc.identifiers import COMPANY_IDS

SCENARIO = ROOT / "simulators" / "default_scenario.json"


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    var = tmp_path_factory.mktemp("stack")
    traces = var / "traces"
    traces.mkdir()
    stack = Stack(
        var,
        Ports.free(),
        scenario=str(SCENARIO),
        extra_env={
            "YZTC_TRACES_EXPORTER": "console",
            "YZTC_TRACES_FILE": str(traces / "{service}.jsonl"),
            # Every query traced: the trace tests look for theirs.
            "YZTC_TRACES_SAMPLE_RATIO": "1.0",
        },
    )
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def make_stack(tmp_path) -> Iterator[Callable[..., Stack]]:
    started: list[Stack] = []

    def make(scenario, *, companies=COMPANY_IDS, aggregator_env=None, policy=None, extra_rows=()) -> Stack:
        env = {"YZTC_AGGREGATOR_LEASE_SECONDS": "10", **(aggregator_env or {})}
        # These tests load the engine, not the quotas: roomy ones.
        channels = json.loads((ROOT / "config" / "channels.json").read_text(encoding="utf-8"))
        for spec in channels["channels"].values():
            spec["quotas"] = {"*": {"per_second": 100000, "per_day": 100000000}}
        (tmp_path / "channels.json").write_text(json.dumps(channels), encoding="utf-8")
        env.setdefault("YZTC_AGGREGATOR_CHANNELS_FILE", str(tmp_path / "channels.json"))
        if policy or extra_rows:
            data = json.loads((ROOT / "config" / "enterprises.json").read_text(encoding="utf-8"))
            data["default_policy"].update(policy or {})
            data["enterprises"].extend(extra_rows)
            path = tmp_path / "enterprises.json"
            path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
            env["YZTC_AGGREGATOR_ENTERPRISES_FILE"] = str(path)
        stack = Stack(tmp_path / "var", Ports.free(tuple(companies)), scenario=str(scenario), aggregator_env=env)
        started.append(stack)
        stack.start()
        return stack

    yield make
    for stack in started:
        stack.stop()


@pytest.fixture(scope="session")
def scenario() -> dict:
    return json.loads(SCENARIO.read_text(encoding="utf-8"))


def expected_counts(scenario: dict, phone: str) -> dict[str, tuple[int, dict[str, int]]]:
    """Per company: (total, per-app counts) for the phone, read from the scenario."""
    accounts = scenario.get("accounts", {}).get(phone, {})
    result = {}
    for company in ("tencent", "alibaba", "alipay", "baidu", "kuaishou", "douyin", "jd", "meituan"):
        value = accounts.get(company, 0)
        if isinstance(value, dict):
            result[company] = (sum(value.values()), value)
        else:
            result[company] = (value, {})
    return result


async def messages_for(stack: Stack, phone: str) -> list[dict]:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{stack.ports.sim_smsc}/messages", params={"dest": phone}) as response:
            assert response.status == 200
            return (await response.json())["messages"]


async def latest_code(stack: Stack, phone: str) -> str:
    """The latest code sent to the phone; the SMS arrives moments after the
    request returns (the notifier queues it), so look for a few seconds."""
    for _ in range(100):
        messages = await messages_for(stack, phone)
        codes = [c.group(1) for m in messages if (c := re.search(r"验证码为(\d{6})", m["text"]))]
        if codes:
            return codes[-1]
        await asyncio.sleep(0.1)
    raise AssertionError("no verification SMS reached the SMS centre")


def traces_dir(stack: Stack) -> Path:
    return stack.var / "traces"
