"""A channel client for the e2e tests: many queries through the gRPC channel
API as channel `wechat-demo`, codes read from the SMS-centre simulator."""
from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path

import aiohttp
import grpc

from devstack.stack import Stack
from yztc.v1 import account_query_pb2 as pb
from yztc.v1 import account_query_pb2_grpc

CODE = re.compile(r"验证码为(\d{6})")


def phones(n: int, prefix: str = "1380") -> list[str]:
    return [f"{prefix}{i:07d}" for i in range(1, n + 1)]


def write_scenario(path: Path, phones_: list[str], companies: dict, accounts: dict | None = None) -> Path:
    """Subscribers for the phones (cmcc, ID six 12345X), and per phone a few accounts."""
    scenario = {
        "subscribers": [{"phone": p, "id_last6": "12345X", "operator": "cmcc", "status": "active"} for p in phones_],
        "accounts": accounts if accounts is not None else {p: {"tencent": {"微信": 1, "QQ": i % 3}, "jd": i % 4} for i, p in enumerate(phones_)},
        "companies": companies,
    }
    path.write_text(json.dumps(scenario, ensure_ascii=False), encoding="utf-8")
    return path


def channel(stack: Stack, port: int | None = None) -> grpc.aio.Channel:
    pki = stack.pki_dir
    creds = grpc.ssl_channel_credentials(
        root_certificates=(pki / "ca.pem").read_bytes(),
        private_key=(pki / "wechat-demo-key.pem").read_bytes(),
        certificate_chain=(pki / "wechat-demo.pem").read_bytes(),
    )
    return grpc.aio.secure_channel(f"127.0.0.1:{port or stack.ports.aggregator}", creds)


async def sms_for(http: aiohttp.ClientSession, stack: Stack, phone: str | None = None) -> list[dict]:
    params = {"dest": phone} if phone else {}
    async with http.get(f"http://127.0.0.1:{stack.ports.sim_smsc}/messages", params=params) as response:
        return (await response.json())["messages"]


async def submit_many(stack: Stack, phones_: list[str], port: int | None = None, parallel: int = 24) -> dict[str, str]:
    """phone -> query id, every phone through code request, code, submit."""
    gate = asyncio.Semaphore(parallel)
    ids: dict[str, str] = {}
    async with channel(stack, port) as ch, aiohttp.ClientSession() as http:
        api = account_query_pb2_grpc.AccountQueryServiceStub(ch)

        async def one(phone: str) -> None:
            async with gate:
                await api.RequestVerificationCode(pb.RequestVerificationCodeRequest(phone=phone), timeout=20)
                code = None
                for _ in range(100):
                    found = [CODE.search(m["text"]) for m in await sms_for(http, stack, phone)]
                    found = [c.group(1) for c in found if c]
                    if found:
                        code = found[-1]
                        break
                    await asyncio.sleep(0.05)
                assert code, "no verification SMS"
                accepted = await api.SubmitQuery(
                    pb.SubmitQueryRequest(phone=phone, id_last6="12345X", code=code, consent=True), timeout=20
                )
                ids[phone] = accepted.query_id

        await asyncio.gather(*(one(p) for p in phones_))
    return ids


async def states(stack: Stack, ids: dict[str, str]) -> dict[str, pb.Query]:
    async with channel(stack) as ch:
        api = account_query_pb2_grpc.AccountQueryServiceStub(ch)
        found = await asyncio.gather(
            *(api.GetQuery(pb.GetQueryRequest(query_id=qid), timeout=20) for qid in ids.values())
        )
    return dict(zip(ids, found))


async def wait_until_finished(stack: Stack, ids: dict[str, str], timeout: float) -> dict[str, pb.Query]:
    deadline = time.monotonic() + timeout
    while True:
        found = await states(stack, ids)
        unfinished = [p for p, q in found.items() if q.status == pb.QUERY_STATUS_IN_PROGRESS]
        if not unfinished:
            return found
        assert time.monotonic() < deadline, f"{len(unfinished)} queries still in progress"
        await asyncio.sleep(0.5)


async def result_sms_by_phone(stack: Stack) -> dict[str, list[str]]:
    async with aiohttp.ClientSession() as http:
        messages = await sms_for(http, stack)
    found: dict[str, list[str]] = {}
    for m in messages:
        if "关联的互联网账号" in m["text"]:
            found.setdefault(m["dest"], []).append(m["text"])
    return found


async def company_calls(stack: Stack) -> dict[str, dict[str, int]]:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{stack.ports.sim_companies}/sim/companies/calls") as r:
            return (await r.json())["calls"]


async def change_company(stack: Stack, company: str, **behaviour) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.put(
            f"http://127.0.0.1:{stack.ports.sim_companies}/sim/companies/{company}/behaviour", json=behaviour
        ) as r:
            assert r.status == 200, await r.text()
