"""Verification codes prepared before a measurement, as a channel would get
them: RequestVerificationCode over the channel API for every phone, then the
code read from the SMS it sent (the SMS-centre simulator's inspection API).
A code lives 5 minutes, so each measurement prepares its own just before."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import grpc

from bench.sms_centre import SmsCentre
from bench.stack_under_test import StackUnderTest
from yztc.v1 import account_query_pb2 as pb
from yztc.v1 import account_query_pb2_grpc


async def prepare(
    stack: StackUnderTest, phones: list[str], concurrency: int = 32, timeout: float = 300.0
) -> dict[str, str]:
    """{phone: code} for every phone; the SMS centre is emptied first, so the
    codes read back are only these."""
    gate = asyncio.Semaphore(concurrency)
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as http, stack.channel() as channel:
        sms = SmsCentre(http, stack.ports.sim_smsc)
        await sms.forget()
        api = account_query_pb2_grpc.AccountQueryServiceStub(channel)

        async def request(phone: str) -> None:
            async with gate:
                for attempt in range(5):
                    try:
                        await api.RequestVerificationCode(pb.RequestVerificationCodeRequest(phone=phone), timeout=30)
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
