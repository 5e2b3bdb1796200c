"""Fan-out overhead: with the eight companies answering in 50-200 ms (set on
the running companies simulator), how much longer than the slowest company
a query takes from accepted to its result SMS at the SMS centre. Queries go
in at a low rate, so none waits behind another: what is left over the
slowest company is our own work (intake to engine, the round's writes, the
notifier, the SMS)."""

from __future__ import annotations

import aiohttp

from bench import submissions, verification_codes
from bench.profiles import Profile
from bench.scenario import BASE_LATENCY_MS, PhoneBook
from bench.sms_centre import SmsCentre
from bench.stack_under_test import StackUnderTest
from bench.stats import percentile, summary_ms
from bench.submissions import DONE, PHONE

SPREAD_MS = {
    "tencent": 50,
    "alibaba": 70,
    "alipay": 90,
    "baidu": 110,
    "kuaishou": 130,
    "douyin": 150,
    "jd": 175,
    "meituan": 200,
}


async def measure(stack: StackUnderTest, book: PhoneBook, profile: Profile) -> dict:
    phones = book.take(profile.fanout_queries)
    codes = await verification_codes.prepare(stack, phones, profile.concurrency)
    async with aiohttp.ClientSession() as http:
        for company, ms in SPREAD_MS.items():
            await stack.set_company(http, company, latency_ms=ms)
        try:
            records = await submissions.over_grpc(stack, submissions.items(phones, codes), rate=profile.fanout_rate)
            ok = submissions.require_accepted(records, "fan-out")
            results = await SmsCentre(http, stack.ports.sim_smsc).wait_results([r[PHONE] for r in ok], timeout=120)
        finally:
            for company, ms in BASE_LATENCY_MS.items():
                await stack.set_company(http, company, latency_ms=ms)
    latencies = [results[r[PHONE]] - r[DONE] for r in ok if r[PHONE] in results]
    slowest = max(SPREAD_MS.values()) / 1000
    return {
        "company_latency_ms": SPREAD_MS,
        "offered_per_s": profile.fanout_rate,
        "queries": len(records),
        "completed": len(latencies),
        "accept_to_result": summary_ms(latencies),
        "overhead_p50": round(percentile(latencies, 50) / slowest, 3),
        "overhead_p90": round(percentile(latencies, 90) / slowest, 3),
    }
