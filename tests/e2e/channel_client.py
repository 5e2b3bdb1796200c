"""A channel client for the e2e tests: many queries through the gRPC channel
API as channel `wechat-demo`, codes read from the SMS-centre simulator. Each
phone's person is a requester of their own (`requester_for`): the
requester_id every call carries (CONTRACT), so that the per-requester limits
of config/channels.json are not spent by one test user for all phones."""

from __future__ import annotations

import asyncio
import hashlib
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


def requester_for(phone: str) -> str:
    """The channel's id of the person asking about `phone` in these tests:
    one per phone, and not the phone itself (the privacy sweeps look for
    phones everywhere; the aggregator keeps requester ids only as keyed
    tags)."""
    return "e2e-" + hashlib.sha256(phone.encode()).hexdigest()[:24]


def phones(n: int, prefix: str = "1380") -> list[str]:
    return [f"{prefix}{i:07d}" for i in range(1, n + 1)]


def write_scenario(path: Path, phones_: list[str], companies: dict, accounts: dict | None = None) -> Path:
    """Subscribers for the phones (cmcc, ID six 12345X), and per phone a few accounts."""
    scenario = {
        "subscribers": [{"phone": p, "id_last6": "12345X", "operator": "cmcc", "status": "active"} for p in phones_],
        "accounts": accounts
        if accounts is not None
        else {p: {"tencent": {"微信": 1, "QQ": i % 3}, "jd": i % 4} for i, p in enumerate(phones_)},
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


async def submit_many(stack: Stack, phones_: list[str], port: int | None = None, parallel: int = 16) -> dict[str, str]:
    """phone -> query id, every phone through code request, code, submit."""
    gate = asyncio.Semaphore(parallel)
    ids: dict[str, str] = {}
    async with channel(stack, port) as ch, aiohttp.ClientSession() as http:
        api = account_query_pb2_grpc.AccountQueryServiceStub(ch)

        async def one(phone: str) -> None:
            async with gate:
                # As a channel would: retry what the API calls retryable
                # (UNAVAILABLE), and never ask for a second code when the
                # first one arrived after all.
                for attempt in range(5):
                    try:
                        await api.RequestVerificationCode(
                            pb.RequestVerificationCodeRequest(phone=phone, requester_id=requester_for(phone)),
                            timeout=20,
                        )
                        break
                    except grpc.aio.AioRpcError as error:
                        # After an UNAVAILABLE, RATE_LIMITED means the first
                        # request went through after all: its code is coming.
                        if attempt and error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                            break
                        if error.code() != grpc.StatusCode.UNAVAILABLE or attempt == 4:
                            raise
                        await asyncio.sleep(1 + attempt)
                        if await _code_for(phone):
                            break
                code = None
                for _ in range(100):
                    await asyncio.sleep(0.2)
                    code = await _code_for(phone)
                    if code:
                        break
                assert code, "no verification SMS"
                for attempt in range(5):
                    try:
                        accepted = await api.SubmitQuery(
                            pb.SubmitQueryRequest(
                                phone=phone,
                                id_last6="12345X",
                                code=code,
                                consent=True,
                                requester_id=requester_for(phone),
                            ),
                            timeout=20,
                        )
                        break
                    except grpc.aio.AioRpcError as error:
                        if error.code() != grpc.StatusCode.UNAVAILABLE or attempt == 4:
                            raise
                        await asyncio.sleep(1 + attempt)
                ids[phone] = accepted.query_id

        async def _code_for(phone: str) -> str | None:
            found = [CODE.search(m["text"]) for m in await sms_for(http, stack, phone)]
            found = [c.group(1) for c in found if c]
            return found[-1] if found else None

        await asyncio.gather(*(one(p) for p in phones_))
    return ids


async def states(stack: Stack, ids: dict[str, str]) -> dict[str, pb.Query]:
    gate = asyncio.Semaphore(16)
    async with channel(stack) as ch:
        api = account_query_pb2_grpc.AccountQueryServiceStub(ch)

        async def get(phone: str, qid: str) -> pb.Query:
            async with gate:
                return await api.GetQuery(
                    pb.GetQueryRequest(query_id=qid, requester_id=requester_for(phone)), timeout=20
                )

        found = await asyncio.gather(*(get(phone, qid) for phone, qid in ids.items()))
    return dict(zip(ids, found, strict=False))


# SENT: the SMS centre has taken every part (so its simulator holds the text).
SMS_SETTLED = (pb.SMS_STATE_SENT, pb.SMS_STATE_DELIVERED, pb.SMS_STATE_FAILED)


async def wait_until_finished(stack: Stack, ids: dict[str, str], timeout: float) -> dict[str, pb.Query]:
    """Every query ended and its result SMS with the SMS centre: a query ends
    before its SMS leaves the outbox, so reading the SMS centre on the
    status alone races the notifier."""
    deadline = time.monotonic() + timeout
    while True:
        found = await states(stack, ids)
        running = [p for p, q in found.items() if q.status == pb.QUERY_STATUS_IN_PROGRESS]
        unsent = [
            p for p, q in found.items() if q.status != pb.QUERY_STATUS_IN_PROGRESS and q.sms_state not in SMS_SETTLED
        ]
        if not running and not unsent:
            return found
        assert time.monotonic() < deadline, (
            f"{len(running)} queries still in progress, {len(unsent)} result SMS not settled"
        )
        await asyncio.sleep(1.0)


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
