"""Accepting queries: SubmitQuery over the channel API and POST
/api/v1/queries over HTTP, with verification codes prepared beforehand.

For each API: a few offered loads, open loop (a Python load client in its
own process; latency counted from when each query was due), giving accepted
queries/s and p50/p99; then the peak, closed loop with `concurrency` in
flight (over HTTP by wrk, the same tool as the aiohttp ceiling, so the ratio
compares like with like). After every load the engine is let finish the
queries it accepted (their result SMS arrive), so the next load starts on
an idle pipeline.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

import aiohttp

from bench import ceilings, processes, submissions, verification_codes
from bench.ceilings import WRK_DIR
from bench.profiles import Profile
from bench.scenario import ID_LAST6, PhoneBook
from bench.sms_centre import SmsCentre
from bench.stack_under_test import StackUnderTest
from bench.stats import rate, summary_ms
from bench.submissions import DONE, DUE, PHONE, SENT


async def measure(stack: StackUnderTest, book: PhoneBook, profile: Profile, work: Path) -> dict:
    tokens = await submissions.sessions(stack)
    return {
        "grpc": await _series(stack, book, profile, work, None),
        "http": await _series(stack, book, profile, work, tokens),
    }


async def _series(
    stack: StackUnderTest, book: PhoneBook, profile: Profile, work: Path, tokens: list[str] | None
) -> dict:
    sizes = [max(1, round(load * profile.accept_level_seconds)) for load in profile.accept_loads]
    phones = book.take(sum(sizes) + profile.accept_peak_queries)
    owners = verification_codes.owners(phones, tokens) if tokens is not None else None
    codes = await verification_codes.prepare(stack, phones, profile.concurrency, over_http=owners)
    levels = []
    at = 0
    for load, size in zip(profile.accept_loads, sizes, strict=False):
        work_items = submissions.items(phones[at : at + size], codes, owners)
        at += size
        mode = {"rate": load, "max_in_flight": 512}
        if tokens is None:
            records = await submissions.over_grpc(stack, work_items, **mode)
        else:
            records = await submissions.over_http(stack, tokens, work_items, **mode)
        levels.append({"offered_per_s": load, **_level(records), **await _drain(stack, records)})
    peak_items = submissions.items(phones[at:], codes, owners)
    if tokens is None:
        records = await submissions.over_grpc(
            stack, peak_items, concurrency=profile.concurrency, seconds=profile.accept_peak_seconds
        )
        peak = {
            "tool": "python grpc.aio load client",
            "concurrency": profile.concurrency,
            **_level(records, closed=True),
        }
        peak.update(await _drain(stack, records))
    else:
        peak = await _http_peak(stack, tokens, peak_items, profile, work)
    return {"levels": levels, "peak": peak}


def _level(records: list[list], closed: bool = False) -> dict:
    ok = submissions.accepted(records)
    start = min((r[SENT if closed else DUE] for r in records), default=0.0)
    end = max((r[DONE] for r in ok), default=0.0)
    return {
        "sent": len(records),
        "accepted": len(ok),
        "accepted_per_s": round(rate(len(ok), start, end), 1),
        **summary_ms([r[DONE] - r[DUE] for r in records]),
        "refused": submissions.refusals(records),
    }


async def _drain(stack: StackUnderTest, records: list[list]) -> dict:
    """Waits until every accepted query's result SMS is in."""
    phones = [r[PHONE] for r in sorted(submissions.accepted(records), key=lambda r: r[DONE])]
    async with aiohttp.ClientSession() as http:
        found = await SmsCentre(http, stack.ports.sim_smsc).wait_results(phones, timeout=120 + len(phones) / 5)
    return {"drained": len(found) == len(phones)}


async def _http_peak(
    stack: StackUnderTest, tokens: list[str], work_items: list[list[str]], profile: Profile, work: Path
) -> dict:
    wrk = processes.tool("wrk")
    if wrk is None:
        records = await submissions.over_http(
            stack, tokens, work_items, concurrency=profile.concurrency, seconds=profile.accept_peak_seconds
        )
        peak = {
            "tool": "python aiohttp load client (wrk not installed)",
            "concurrency": profile.concurrency,
            **_level(records, closed=True),
        }
        peak.update(await _drain(stack, records))
        return peak
    with tempfile.NamedTemporaryFile("w", dir=work, suffix=".forms", delete=False, encoding="utf-8") as forms:
        for i, (phone, code, *owner) in enumerate(work_items):
            body = f'{{"phone":"{phone}","id_last6":"{ID_LAST6}","code":"{code}","consent":true}}'
            forms.write(f"{owner[0] if owner else tokens[i % len(tokens)]}\t{body}\n")
    found = ceilings.run_wrk(
        wrk,
        stack.gateway_url,
        WRK_DIR / "submit_queries.lua",
        [forms.name, "1"],
        profile,
        seconds=profile.accept_peak_seconds,
    )
    # Which phones were accepted is not known to wrk; the first `sent` were sent.
    drained = await _drain_phones(stack, [item[0] for item in work_items[: found["sent"]]], found["accepted"])
    return {
        "tool": "wrk",
        "concurrency": profile.concurrency,
        "sent": found["sent"],
        "accepted": found["accepted"],
        "accepted_per_s": round(found["accepted"] / found["seconds"], 1) if found["seconds"] else float("nan"),
        "p50_ms": round(found["p50_us"] / 1000, 2),
        "p99_ms": round(found["p99_us"] / 1000, 2),
        "refused": found["refused"],
        "refusals": found["refusals"],
        "errors": found["errors"],
        # Every prepared form went before wrk's time was up: its latency
        # figures then include the idle /healthz requests that followed.
        "forms_exhausted": found["sent"] >= len(work_items),
        "drained": drained,
    }


async def _drain_phones(stack: StackUnderTest, phones: list[str], expected: int, quiet: float = 5.0) -> bool:
    """As _drain, when only the phones tried are known (wrk's last requests
    may have been accepted after it stopped counting): until at least
    `expected` results are in and no more came for `quiet` seconds."""
    deadline = time.monotonic() + 120 + len(phones) / 5
    wanted = set(phones)
    async with aiohttp.ClientSession() as http:
        sms = SmsCentre(http, stack.ports.sim_smsc)
        found = await sms.wait_results(phones, timeout=120 + expected / 5, poll=1.0, until=expected)
        seen, since = len(found), time.monotonic()
        while len(found) < len(phones) and time.monotonic() - since < quiet and time.monotonic() < deadline:
            await asyncio.sleep(1.0)
            found = {p: t for p, t in (await sms.results()).items() if p in wanted}
            if len(found) > seen:
                seen, since = len(found), time.monotonic()
    return len(found) >= expected
