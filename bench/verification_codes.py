"""Verification codes prepared before a measurement, as a channel would get
them: RequestVerificationCode over the channel API for every phone (or, for
queries that go over HTTP, POST /api/v1/verification-codes as the bench
user who will submit it: a code counts only for the channel and requester
that asked for it), then the code read from the SMS it sent (the SMS-centre
simulator's inspection API). A code lives 5 minutes, so each measurement
prepares its own just before."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import grpc

from bench.scenario import REQUESTER
from bench.sms_centre import SmsCentre
from bench.stack_under_test import StackUnderTest
from yztc.v1 import account_query_pb2 as pb
from yztc.v1 import account_query_pb2_grpc


def owners(phones: list[str], tokens: list[str]) -> dict[str, str]:
    """Which bench user (bearer token) asks for, and submits, each phone's code over HTTP."""
    return {phone: tokens[i % len(tokens)] for i, phone in enumerate(phones)}


async def prepare(
    stack: StackUnderTest,
    phones: list[str],
    concurrency: int = 32,
    timeout: float = 300.0,
    *,
    over_http: dict[str, str] | None = None,
) -> dict[str, str]:
    """{phone: code} for every phone; the SMS centre is emptied first, so the
    codes read back are only these. `over_http`: {phone: bearer token}, the
    codes asked over the HTTP API by those users instead (see owners)."""
    gate = asyncio.Semaphore(concurrency)
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as http, stack.channel() as channel:
        sms = SmsCentre(http, stack.ports.sim_smsc)
        await sms.forget()
        api = account_query_pb2_grpc.AccountQueryServiceStub(channel)

        async def request_over_http(phone: str, token: str) -> None:
            url = f"{stack.gateway_url}/api/v1/verification-codes"
            async with gate:
                for attempt in range(5):
                    async with http.post(
                        url, json={"phone": phone}, headers={"Authorization": f"Bearer {token}"}
                    ) as response:
                        # After a 503, 429 (one code a minute) means the first went through.
                        if response.status == 202 or (attempt and response.status == 429):
                            return
                        if response.status != 503 or attempt == 4:
                            raise RuntimeError(f"code not sent over HTTP: {response.status} {await response.text()}")
                    await asyncio.sleep(1 + attempt)

        async def request(phone: str) -> None:
            if over_http is not None:
                await request_over_http(phone, over_http[phone])
                return
            async with gate:
                for attempt in range(5):
                    try:
                        await api.RequestVerificationCode(
                            pb.RequestVerificationCodeRequest(phone=phone, requester_id=REQUESTER), timeout=30
                        )
                        return
                    except grpc.aio.AioRpcError as error:
                        # After an UNAVAILABLE, RESOURCE_EXHAUSTED (one code a
                        # minute) means the first request went through after all.
                        if attempt and error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                            return
                        if error.code() != grpc.StatusCode.UNAVAILABLE or attempt == 4:
                            raise
                        await asyncio.sleep(1 + attempt)

        await asyncio.gather(*(request(p) for p in phones))
        wanted = set(phones)
        while True:
            codes = {p: c for p, c in (await sms.codes()).items() if p in wanted}
            if len(codes) == len(wanted):
                return codes
            if time.monotonic() > deadline:
                raise RuntimeError(f"verification SMS missing for {len(wanted) - len(codes)} of {len(wanted)} phones")
            await asyncio.sleep(0.5)
