"""Backlog cost: the stack's CPU per completed query with a large set of open
queries (20,000 in the full run) against none.

The open queries are made as a company outage makes them: `BACKLOG_COMPANY`
is set down on the companies simulator, the backlog's queries are submitted
(closed loop, verification codes prepared in batches that stay within a
code's life), and the bench waits until that company has been asked (and
refused) for every one of them. Then the company is set up again, so the
measured queries can complete; the backlog stays open because the stack
under test was started with that company's retry backoff at hours
(`BACKLOG_POLICY`, in its enterprises file) and a circuit breaker that
never opens. Whether it stayed open is checked at the end: the companies
simulator counts the calls per query, and a backlog query asked again has
been retried (`backlog_retried`; the ratio is void if more than 1 % were).

Both conditions run `backlog_queries` queries closed loop on the same
stack, CPU of every stack process (FerretDB and the simulators included:
a backlog's cost shows first in the database's scans) from the first
submission to the last result SMS, per completed query. Nothing is taken
off for idle: what the stack spends at rest because of the backlog is the
cost measured. The services' share is given beside it, and, on a stack
behind the counting proxy, the work commands per query and at rest.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import aiohttp

from bench import db_round_trips, proc_stats, submissions, verification_codes
from bench.mongo_wire_counter import work_commands
from bench.profiles import Profile
from bench.scenario import PhoneBook
from bench.sms_centre import SmsCentre
from bench.stack_under_test import StackUnderTest
from bench.submissions import PHONE, QUERY_ID
from devstack.stack import ROOT

BACKLOG_COMPANY = "meituan"
# Retry a refused call after 2-4 hours, and never open the circuit: the
# backlog made while the company was down stays open for the measurement.
BACKLOG_POLICY = {"backoff_base_seconds": 14_400, "backoff_max_seconds": 14_400, "breaker_failures": 1_000_000_000}
CODE_BATCH = 2000  # a code lives 5 minutes; a batch is submitted well within that
SERVICES = ("aggregator", "sms_notifier", "gateway", "connector-")


def write_enterprises(path: Path) -> Path:
    """config/enterprises.json with BACKLOG_POLICY for BACKLOG_COMPANY."""
    data = json.loads((ROOT / "config" / "enterprises.json").read_text(encoding="utf-8"))
    for row in data["enterprises"]:
        if row["id"] == BACKLOG_COMPANY:
            row["policy"] = {**row.get("policy", {}), **BACKLOG_POLICY}
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


async def measure(stack: StackUnderTest, book: PhoneBook, profile: Profile) -> dict:
    none = await _condition(stack, book, profile, "no backlog")
    async with aiohttp.ClientSession() as http:
        await stack.set_company(http, BACKLOG_COMPANY, down=True)
        try:
            started = time.monotonic()
            backlog = await _make_backlog(stack, book, profile, http)
            made_in = time.monotonic() - started
        finally:
            await stack.set_company(http, BACKLOG_COMPANY, down=False)
    rest = await db_round_trips.at_rest(stack, profile.idle_seconds) if stack.counter is not None else None
    loaded = await _condition(stack, book, profile, f"{len(backlog)} open")
    async with aiohttp.ClientSession() as http:
        calls = (await stack.company_calls(http)).get(BACKLOG_COMPANY, {})
    retried = sum(1 for qid in backlog if calls.get(qid, 0) > 1)
    ratio = loaded["cpu_ms_per_query"] / none["cpu_ms_per_query"] if none["cpu_ms_per_query"] else float("nan")
    return {
        "company_down": BACKLOG_COMPANY,
        "policy_for_the_run": BACKLOG_POLICY,
        "open_queries": len(backlog),
        "backlog_made_seconds": round(made_in, 1),
        "backlog_retried": retried,
        "no_backlog": none,
        "with_backlog": loaded,
        "idle_with_backlog": rest,
        "cost_ratio": round(ratio, 3) if retried <= len(backlog) / 100 else float("nan"),
        "services_cost_ratio": round(loaded["services_cpu_ms_per_query"] / none["services_cpu_ms_per_query"], 3)
        if none["services_cpu_ms_per_query"]
        else float("nan"),
    }


async def _make_backlog(
    stack: StackUnderTest, book: PhoneBook, profile: Profile, http: aiohttp.ClientSession
) -> list[str]:
    """Query ids of `backlog_open` accepted queries, each refused once by the down company."""
    phones = book.take(profile.backlog_open)
    query_ids: list[str] = []
    for at in range(0, len(phones), CODE_BATCH):
        batch = phones[at : at + CODE_BATCH]
        codes = await verification_codes.prepare(stack, batch, profile.concurrency)
        records = await submissions.over_grpc(stack, submissions.items(batch, codes), concurrency=profile.concurrency)
        query_ids += [r[QUERY_ID] for r in submissions.require_accepted(records, "backlog")]
    deadline = time.monotonic() + 120 + len(query_ids) / 20
    while True:
        asked = (await stack.company_calls(http)).get(BACKLOG_COMPANY, {})
        waiting = sum(1 for qid in query_ids if qid not in asked)
        if not waiting:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"backlog: {waiting} of {len(query_ids)} queries never asked {BACKLOG_COMPANY}")
        await asyncio.sleep(2.0)
    await asyncio.sleep(profile.settle_seconds)  # the rounds that asked it write their retries
    return query_ids


async def _condition(stack: StackUnderTest, book: PhoneBook, profile: Profile, label: str) -> dict:
    phones = book.take(profile.backlog_queries)
    codes = await verification_codes.prepare(stack, phones, profile.concurrency)
    await asyncio.sleep(profile.settle_seconds)  # the codes' SMS and receipts settle
    pids = stack.pids()
    counts_before = stack.counter.snapshot() if stack.counter is not None else None
    cpu_before = proc_stats.cpu(pids)
    started = time.monotonic()
    records = await submissions.over_grpc(stack, submissions.items(phones, codes), concurrency=profile.concurrency)
    ok = submissions.require_accepted(records, f"backlog ({label})")
    async with aiohttp.ClientSession() as http:
        results = await SmsCentre(http, stack.ports.sim_smsc).wait_results(
            [r[PHONE] for r in ok], timeout=120 + len(ok) / 5
        )
    seconds = time.monotonic() - started
    used = proc_stats.cpu_between(cpu_before, proc_stats.cpu(pids))
    done = len(results)
    services = sum(s for n, s in used.items() if n.startswith(SERVICES))
    found = {
        "condition": label,
        "queries": len(records),
        "completed": done,
        "seconds": round(seconds, 2),
        "cpu_ms_per_query": round(sum(used.values()) * 1000 / done, 3) if done else float("nan"),
        "services_cpu_ms_per_query": round(services * 1000 / done, 3) if done else float("nan"),
        "cpu_ms_per_query_by_process": {n: round(s * 1000 / done, 3) for n, s in used.items()} if done else {},
    }
    if counts_before is not None and done:
        assert stack.counter is not None
        counted = work_commands(counts_before, stack.counter.snapshot(), db_round_trips.PIPELINE)
        found["db_round_trips_per_query"] = round(sum(sum(c.values()) for c in counted.values()) / done, 2)
    return found
