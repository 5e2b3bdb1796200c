"""Database round trips per query, aggregator and notifier together, counted
on the wire by the proxy in front of FerretDB (mongo_wire_counter.py).

Counted from the first SubmitQuery to the last result SMS at the SMS
centre, and a moment after (the notifier records delivery receipts), for
queries submitted closed loop like the end-to-end run. Getting the
verification code is not part of it (the issue counts a query's gRPC calls
from the submission on) but is reported beside it, per code. The idle
commands a second (dispatch polls, health probes) are reported too: they
are in the per-query count, spread over the queries of the window.
"""
from __future__ import annotations

import asyncio
import time

import aiohttp

from bench import submissions, verification_codes
from bench.mongo_wire_counter import WireCounter, work_commands
from bench.profiles import Profile
from bench.scenario import PhoneBook
from bench.sms_centre import SmsCentre
from bench.stack_under_test import StackUnderTest
from bench.submissions import PHONE

PIPELINE = ("yztc-aggregator", "yztc-sms-notifier")
APPS = (*PIPELINE, "gateway")
SETTLE_SECONDS = 2.0


def _total(found: dict[str, dict[str, int]], apps: tuple[str, ...] = PIPELINE) -> int:
    return sum(sum(found.get(app, {}).values()) for app in apps)


async def measure(stack: StackUnderTest, book: PhoneBook, profile: Profile) -> dict:
    counter: WireCounter | None = stack.counter
    assert counter is not None, "the stack must run behind the counting proxy"
    phones = book.take(profile.db_queries)

    idle_before = counter.snapshot()
    await asyncio.sleep(SETTLE_SECONDS)
    idle = work_commands(idle_before, counter.snapshot(), APPS)

    before_codes = counter.snapshot()
    codes = await verification_codes.prepare(stack, phones, profile.concurrency)
    await asyncio.sleep(SETTLE_SECONDS)
    per_code = work_commands(before_codes, counter.snapshot(), APPS)

    before = counter.snapshot()
    started = time.monotonic()
    records = await submissions.over_grpc(stack, submissions.items(phones, codes), concurrency=profile.concurrency)
    ok = submissions.require_accepted(records, "database round trips")
    async with aiohttp.ClientSession() as http:
        results = await SmsCentre(http, stack.ports.sim_smsc).wait_results([r[PHONE] for r in ok], timeout=300)
    await asyncio.sleep(SETTLE_SECONDS)
    window = time.monotonic() - started
    counted = work_commands(before, counter.snapshot(), APPS)

    done = len(results)
    idle_per_s = _total(idle) / SETTLE_SECONDS
    return {
        "how": "MongoDB wire requests through a counting proxy in front of FerretDB, by client appname; "
               "handshakes, heartbeats, pings and endSessions left out",
        "queries": len(records),
        "completed": done,
        "window_seconds": round(window, 2),
        "per_query": round(_total(counted) / done, 2) if done else float("nan"),
        "per_query_by_app": {app: round(sum(c.values()) / done, 2) for app, c in counted.items()} if done else {},
        "per_query_by_command": {
            app: {cmd: round(n / done, 2) for cmd, n in c.items()} for app, c in counted.items()
        } if done else {},
        "per_code": round(_total(per_code) / len(codes), 2) if codes else float("nan"),
        "per_code_by_command": {
            app: {cmd: round(n / len(codes), 2) for cmd, n in c.items()} for app, c in per_code.items()
        } if codes else {},
        "idle_per_s": round(idle_per_s, 1),
        "idle_share_of_per_query": round(idle_per_s * window / _total(counted), 3) if _total(counted) else float("nan"),
    }
