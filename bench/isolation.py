"""Isolation: what one hanging company (it holds every request for a minute,
far past the 5 s call deadline) costs the queries' other seven answers.

A query with a hanging company cannot complete (it waits for that company
until the 48-hour deadline), so both figures are about the other seven,
read over the channel API (GetQuery), the same way with and without the
hanging company:

- answer latency, first, on an idle pipeline: probe queries at a low rate,
  each polled every 20 ms from its acceptance until its seven others are
  DONE (with the hang, these meet it before any circuit breaker opens);
- throughput: `isolation_queries` submitted closed loop; done when the
  latest accepted of them (the engine works in acceptance order) show all
  seven others DONE; queries / (that moment - first submission).

isolation_ratio = throughput with the hang / without; the latency ratio is
hang / without (1.0 is perfect isolation for both).
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
import grpc

from bench import submissions, verification_codes
from bench.load_client import Clock
from bench.profiles import Profile
from bench.scenario import BASE_LATENCY_MS, ID_LAST6, REQUESTER, PhoneBook
from bench.sms_centre import SmsCentre
from bench.stack_under_test import StackUnderTest
from bench.stats import rate, summary_ms
from bench.submissions import PHONE, QUERY_ID, SENT
from yztc.v1 import account_query_pb2 as pb
from yztc.v1 import account_query_pb2_grpc

HANGING = "tencent"
HANG_MS = 60_000
OTHERS = tuple(c for c in BASE_LATENCY_MS if c != HANGING)
TAIL = 10  # the latest accepted queries watched for the end of a run


async def measure(stack: StackUnderTest, book: PhoneBook, profile: Profile) -> dict:
    baseline = await _condition(stack, book, profile)
    async with aiohttp.ClientSession() as http:
        # Let the baseline's queries finish first: the hang starts on an idle pipeline.
        sms = SmsCentre(http, stack.ports.sim_smsc)
        await sms.wait_results(baseline.pop("phones"), timeout=120)
        await stack.set_company(http, HANGING, latency_ms=HANG_MS)
    hanging = await _condition(stack, book, profile)
    hanging.pop("phones")
    # The hanging company stays as it is: its queries retry it until the
    # stack stops, so this is the last measurement on the stack.
    return {
        "hanging_company": HANGING,
        "hang_ms": HANG_MS,
        "baseline": baseline,
        "hanging": hanging,
        "throughput_ratio": round(hanging["others_answered_per_s"] / baseline["others_answered_per_s"], 3),
        "latency_ratio_p50": round(hanging["probe_latency"]["p50_ms"] / baseline["probe_latency"]["p50_ms"], 3),
    }


async def _condition(stack: StackUnderTest, book: PhoneBook, profile: Profile) -> dict:
    phones = book.take(profile.isolation_queries + profile.isolation_probes)
    codes = await verification_codes.prepare(stack, phones, profile.concurrency)
    load, probes = phones[: profile.isolation_queries], phones[profile.isolation_queries :]

    await asyncio.sleep(profile.settle_seconds)  # the codes' SMS and receipts settle
    clock = Clock()
    async with stack.channel() as channel:
        api = account_query_pb2_grpc.AccountQueryServiceStub(channel)
        latencies = await _probe(api, probes, codes, profile.probe_rate, clock)
        records = await submissions.over_grpc(stack, submissions.items(load, codes), concurrency=profile.concurrency)
        ok = submissions.require_accepted(records, "isolation")
        try:
            await asyncio.gather(*(_others_answered(api, r[QUERY_ID], clock, every=0.1) for r in ok[-TAIL:]))
            timed_out = False
        except TimeoutError:
            timed_out = True  # then the rate below is an upper bound
        finished = clock.now()
    start = min(r[SENT] for r in records)
    answered = [x for x in latencies if x is not None]
    return {
        "queries": len(records),
        "accepted": len(ok),
        "refused": submissions.refusals(records),
        "seconds": round(finished - start, 2),
        "others_answered_per_s": round(rate(len(ok), start, finished), 2),
        "timed_out": timed_out,
        "probes": len(latencies),
        "probes_unanswered": len(latencies) - len(answered),
        "probe_latency": summary_ms(answered),
        "phones": [r[PHONE] for r in ok],
    }


async def _others_answered(api, query_id: str, clock: Clock, every: float, timeout: float = 300.0) -> float:
    """When GetQuery first shows the seven other companies DONE."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            query = await api.GetQuery(pb.GetQueryRequest(query_id=query_id, requester_id=REQUESTER), timeout=10)
        except grpc.aio.AioRpcError as error:
            # An overloaded aggregator answers late or not at all: ask again.
            if error.code() not in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE):
                raise
        else:
            states = {e.id: e.state for e in query.enterprises}
            if all(states.get(c) == pb.ENTERPRISE_STATE_DONE for c in OTHERS):
                return clock.now()
        if time.monotonic() > deadline:
            raise TimeoutError(f"query {query_id}: the other companies did not answer in {timeout:.0f} s")
        await asyncio.sleep(every)


async def _probe(api, phones: list[str], codes: dict[str, str], per_second: float, clock: Clock) -> list[float | None]:
    """Accept-to-others-answered latency of queries submitted at `per_second`
    (None for a probe refused, or whose others did not answer in time)."""

    async def one(phone: str, delay: float) -> float | None:
        await asyncio.sleep(delay)
        try:
            answer = await api.SubmitQuery(
                pb.SubmitQueryRequest(
                    phone=phone, id_last6=ID_LAST6, code=codes[phone], consent=True, requester_id=REQUESTER
                ),
                timeout=30,
            )
            accepted = clock.now()
            return await _others_answered(api, answer.query_id, clock, every=0.02, timeout=120) - accepted
        except (grpc.aio.AioRpcError, TimeoutError):
            return None

    return list(await asyncio.gather(*(one(p, i / per_second) for i, p in enumerate(phones))))
