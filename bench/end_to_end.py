"""End to end: queries accepted over the channel API until the result SMS is
recorded by the SMS-centre simulator, at least 2,000 of them (full run).

All queries are submitted closed loop (`concurrency` in flight) while the
engine works them off, so intake and fan-out share the machine as they do
in service. Completed queries/s is the number completed over the whole span
(first submission to last result SMS): the total work of accepting and
completing them, divided by the time it took, which is the rate the stack
can sustain. The rate between the 10th and 90th percentile of completions
is kept beside it, and the stack's resident memory is sampled throughout
(its peak is the "under load" figure), with each process's CPU seconds and
the span they were read over (so the idle rate can be taken off).
"""

from __future__ import annotations

import time
from pathlib import Path

import aiohttp

from bench import proc_stats, submissions, verification_codes
from bench.profiles import Profile
from bench.profiling import PySpy
from bench.scenario import PhoneBook
from bench.sms_centre import SmsCentre
from bench.stack_under_test import StackUnderTest
from bench.stats import middle_rate, rate, summary_ms
from bench.submissions import DONE, PHONE, QUERY_ID, SENT

# Our gRPC calls per query besides the companies': SubmitQuery, the
# operator's VerifySubscriber, the notifier's Send.
OTHER_GRPC_CALLS = 3


async def measure(stack: StackUnderTest, book: PhoneBook, profile: Profile, work: Path, profile_cpu: bool) -> dict:
    phones = book.take(profile.e2e_queries)
    codes = await verification_codes.prepare(stack, phones, profile.concurrency)
    pids = stack.pids()
    cpu_before = proc_stats.cpu(pids)
    cpu_started = time.monotonic()
    spy = PySpy(pids, work / "profiles") if profile_cpu else None
    with proc_stats.PeakMemory(pids) as memory:
        if spy:
            spy.__enter__()
        try:
            records = await submissions.over_grpc(
                stack, submissions.items(phones, codes), concurrency=profile.concurrency
            )
            ok = submissions.require_accepted(records, "end to end")
            async with aiohttp.ClientSession() as http:
                sms = SmsCentre(http, stack.ports.sim_smsc)
                results = await sms.wait_results([r[PHONE] for r in ok], timeout=120 + len(ok) / 5)
                calls = await stack.company_calls(http)
        finally:
            if spy:
                spy.__exit__(None, None, None)
    cpu_used = proc_stats.cpu_between(cpu_before, proc_stats.cpu(pids))
    cpu_window = time.monotonic() - cpu_started

    start = min(r[SENT] for r in records)
    completed = [results[r[PHONE]] for r in ok if r[PHONE] in results]
    end = max(completed, default=start)
    per_query_calls = [sum(c.get(r[QUERY_ID], 0) for c in calls.values()) for r in ok]
    company_calls = sum(per_query_calls) / len(per_query_calls) if per_query_calls else float("nan")
    done = len(completed)
    found = {
        "queries": len(records),
        "accepted": len(ok),
        "completed": done,
        "refused": submissions.refusals(records),
        "seconds": round(end - start, 2),
        "completed_per_s": round(rate(done, start, end), 2),
        "completed_per_s_10_90": round(middle_rate(completed), 2),
        "accepted_per_s": round(rate(len(ok), start, max(r[DONE] for r in ok)), 2) if ok else float("nan"),
        "accept_to_result": summary_ms([results[r[PHONE]] - r[DONE] for r in ok if r[PHONE] in results]),
        "company_calls_per_query": round(company_calls, 3),
        "grpc_calls_per_query": round(company_calls + OTHER_GRPC_CALLS, 3),
        "cpu_seconds_per_query": {n: round(s / done, 5) for n, s in cpu_used.items()} if done else {},
        "cpu_seconds": cpu_used,
        "cpu_window_seconds": round(cpu_window, 2),
        "memory_under_load": memory.peak,
    }
    if spy:
        found["profiles"] = spy.summaries
    return found
