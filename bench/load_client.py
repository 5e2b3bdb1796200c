"""A load generator in a process of its own, so its CPU is never the
orchestrator's: `python -m bench.load_client` reads one job as JSON on
stdin and prints its result as JSON on stdout.

Jobs (`kind`):

- `grpc_echo` {target, method, concurrency, seconds, payload, [pki]}: a
  closed loop of unary calls carrying raw bytes (the ceilings); with `pki`,
  over mutual TLS as `echo-client`. Its answer carries the client's own CPU
  seconds over the timed loop (`cpu_seconds`).
- `grpc_submit` {target, pki, items: [[phone, code]], id_last6, requester_id, ...}:
  SubmitQuery over the channel API as channel `wechat-demo` (mutual TLS).
- `http_submit` {url, tokens, items, id_last6, ...}: POST /api/v1/queries,
  as the item's own token ([phone, code, token]) or the tokens in turn.
- `http_post` {url, body, concurrency, seconds}: a closed loop of JSON posts
  (the aiohttp ceiling when wrk is missing).

A submit job runs either open loop, `rate` queries/s whatever the answers
(latency counted from when each was due, so a slow server cannot hide its
queueing), with at most `max_in_flight` outstanding; or closed loop,
`concurrency` in flight, until the items or `seconds` run out. It answers
{"records": [[phone, due, sent, done, outcome, query_id], ...]}, times in
Unix seconds, outcome "OK" or the refusal (gRPC status:ErrorInfo reason, or
HTTP status:error code).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from itertools import cycle
from pathlib import Path
from typing import Any

import aiohttp
import grpc
from google.rpc import error_details_pb2, status_pb2

Record = list[Any]


class Clock:
    """Unix time at perf_counter resolution: comparable with the SMS
    centre's timestamps, and precise enough for millisecond latencies."""

    def __init__(self) -> None:
        self._epoch = time.time()
        self._base = time.perf_counter()

    def now(self) -> float:
        return self._epoch + (time.perf_counter() - self._base)


def grpc_refusal(error: grpc.aio.AioRpcError) -> str:
    reason = ""
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            for detail in status_pb2.Status.FromString(value).details:
                info = error_details_pb2.ErrorInfo()
                if detail.Unpack(info):
                    reason = info.reason
    return f"{error.code().name}:{reason}" if reason else error.code().name


async def open_loop(
    items: list, rate: float, max_in_flight: int, call: Callable[[Any], Awaitable[tuple[str, str]]], clock: Clock
) -> list[Record]:
    """Item i is due at start + i/rate; each record's latency runs from when it was due."""
    gate = asyncio.Semaphore(max_in_flight)
    records: list[Record] = []
    start = clock.now() + 0.05

    async def one(item: Any, due: float) -> None:
        async with gate:
            sent = clock.now()
            outcome, query_id = await call(item)
            records.append([item[0], due, sent, clock.now(), outcome, query_id])

    tasks = []
    for i, item in enumerate(items):
        due = start + i / rate
        wait = due - clock.now()
        if wait > 0:
            await asyncio.sleep(wait)
        tasks.append(asyncio.create_task(one(item, due)))
    await asyncio.gather(*tasks)
    return records


async def closed_loop(
    items: list,
    concurrency: int,
    seconds: float | None,
    call: Callable[[Any], Awaitable[tuple[str, str]]],
    clock: Clock,
) -> list[Record]:
    """`concurrency` workers take the next item as soon as their last is answered."""
    records: list[Record] = []
    pending = iter(items)
    stop_at = clock.now() + seconds if seconds else float("inf")

    async def worker() -> None:
        for item in pending:
            if clock.now() >= stop_at:
                return
            sent = clock.now()
            outcome, query_id = await call(item)
            records.append([item[0], sent, sent, clock.now(), outcome, query_id])

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return records


async def run_submits(job: dict, call: Callable[[Any], Awaitable[tuple[str, str]]], clock: Clock) -> list[Record]:
    if job.get("rate"):
        return await open_loop(job["items"], float(job["rate"]), int(job.get("max_in_flight", 256)), call, clock)
    return await closed_loop(job["items"], int(job["concurrency"]), job.get("seconds"), call, clock)


async def grpc_submit(job: dict, clock: Clock) -> dict:
    from yztc.v1 import account_query_pb2 as pb
    from yztc.v1 import account_query_pb2_grpc

    pki = Path(job["pki"])
    creds = grpc.ssl_channel_credentials(
        root_certificates=(pki / "ca.pem").read_bytes(),
        private_key=(pki / "wechat-demo-key.pem").read_bytes(),
        certificate_chain=(pki / "wechat-demo.pem").read_bytes(),
    )
    id_last6 = job["id_last6"]
    async with grpc.aio.secure_channel(job["target"], creds) as channel:
        api = account_query_pb2_grpc.AccountQueryServiceStub(channel)
        # The TLS handshake and first stream are not what we measure.
        await api.ListEnterprises(pb.ListEnterprisesRequest(), timeout=20)

        async def call(item: list[str]) -> tuple[str, str]:
            phone, code = item
            try:
                answer = await api.SubmitQuery(
                    pb.SubmitQueryRequest(
                        phone=phone, id_last6=id_last6, code=code, consent=True, requester_id=job["requester_id"]
                    ),
                    timeout=30,
                )
            except grpc.aio.AioRpcError as error:
                return grpc_refusal(error), ""
            return "OK", answer.query_id

        return {"records": await run_submits(job, call, clock)}


async def http_submit(job: dict, clock: Clock) -> dict:
    tokens = cycle(job["tokens"])
    id_last6 = job["id_last6"]
    limit = int(job.get("max_in_flight") or job.get("concurrency") or 256)
    connector = aiohttp.TCPConnector(limit=limit)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as http:
        async with http.get(job["url"].split("/api/")[0] + "/healthz") as warm:
            await warm.read()

        async def call(item: list[str]) -> tuple[str, str]:
            phone, code = item[:2]
            body = {"phone": phone, "id_last6": id_last6, "code": code, "consent": True}
            # [phone, code, token]: the user who asked for the code submits it.
            headers = {"Authorization": f"Bearer {item[2] if len(item) > 2 else next(tokens)}"}
            try:
                async with http.post(job["url"], json=body, headers=headers) as response:
                    answer = await response.json(content_type=None)
                    if response.status == 202:
                        return "OK", answer["query_id"]
                    return f"{response.status}:{answer.get('error', {}).get('code', '')}", ""
            except (TimeoutError, aiohttp.ClientError) as error:
                return type(error).__name__, ""

        return {"records": await run_submits(job, call, clock)}


def _echo_channel(job: dict) -> grpc.aio.Channel:
    if not job.get("pki"):
        return grpc.aio.insecure_channel(job["target"])
    pki = Path(job["pki"])
    creds = grpc.ssl_channel_credentials(
        root_certificates=(pki / "ca.pem").read_bytes(),
        private_key=(pki / "echo-client-key.pem").read_bytes(),
        certificate_chain=(pki / "echo-client.pem").read_bytes(),
    )
    return grpc.aio.secure_channel(job["target"], creds)


async def grpc_echo(job: dict, clock: Clock) -> dict:
    """Closed loop (`concurrency` callers), or with `rate` one call every
    1/rate s whatever the answers (open loop)."""
    payload = b"x" * int(job.get("payload", 64))
    async with _echo_channel(job) as channel:
        echo = channel.unary_unary(job["method"])
        await echo(payload, timeout=20)
        if job.get("rate"):
            return await _paced_loop(job, clock, lambda: echo(payload, timeout=20), grpc.aio.AioRpcError)
        return await _timed_loop(job, clock, lambda: echo(payload, timeout=20), grpc.aio.AioRpcError)


async def http_post(job: dict, clock: Clock) -> dict:
    body = json.dumps(job["body"]).encode()
    connector = aiohttp.TCPConnector(limit=int(job["concurrency"]))
    async with aiohttp.ClientSession(connector=connector) as http:

        async def call() -> None:
            async with http.post(job["url"], data=body, headers={"Content-Type": "application/json"}) as response:
                await response.read()
                response.raise_for_status()

        await call()
        return await _timed_loop(job, clock, call, aiohttp.ClientError)


async def _timed_loop(job: dict, clock: Clock, call: Callable[[], Awaitable[Any]], failure: type[Exception]) -> dict:
    """`concurrency` callers for `seconds`: calls answered, failures,
    latencies, and this process's CPU seconds over the loop."""
    latencies: list[float] = []
    errors = 0
    cpu_start = time.process_time()
    start = clock.now()
    stop_at = start + float(job["seconds"])

    async def worker() -> None:
        nonlocal errors
        while (sent := clock.now()) < stop_at:
            try:
                await call()
            except failure:
                errors += 1
                continue
            latencies.append(clock.now() - sent)

    await asyncio.gather(*(worker() for _ in range(int(job["concurrency"]))))
    return {
        "calls": len(latencies),
        "errors": errors,
        "seconds": clock.now() - start,
        "latencies": latencies,
        "cpu_seconds": time.process_time() - cpu_start,
    }


async def _paced_loop(job: dict, clock: Clock, call: Callable[[], Awaitable[Any]], failure: type[Exception]) -> dict:
    """One call due every 1/`rate` s for `seconds`: the same figures as
    `_timed_loop`."""
    latencies: list[float] = []
    errors = 0
    rate, seconds = float(job["rate"]), float(job["seconds"])
    cpu_start = time.process_time()
    start = clock.now()

    async def one() -> None:
        nonlocal errors
        sent = clock.now()
        try:
            await call()
        except failure:
            errors += 1
            return
        latencies.append(clock.now() - sent)

    tasks = []
    for i in range(max(1, int(rate * seconds))):
        await asyncio.sleep(max(0.0, start + i / rate - clock.now()))
        tasks.append(asyncio.ensure_future(one()))
    await asyncio.gather(*tasks)
    return {
        "calls": len(latencies),
        "errors": errors,
        "seconds": clock.now() - start,
        "latencies": latencies,
        "cpu_seconds": time.process_time() - cpu_start,
    }


JOBS = {"grpc_echo": grpc_echo, "grpc_submit": grpc_submit, "http_submit": http_submit, "http_post": http_post}


def main() -> None:
    job = json.load(sys.stdin)
    result = asyncio.run(JOBS[job["kind"]](job, Clock()))
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
