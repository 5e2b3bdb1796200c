"""`python -m bench [--smoke] [--results DIR] [--profile]`: one run of every
measurement of issue 9, in this order:

1. ceilings (bare servers, no stack);
2. the stack as `make run` starts it (own ports, own data folder): memory at
   rest, accept (gRPC and HTTP), end to end (memory under load, CPU per
   process, py-spy profiles with --profile), fan-out overhead, isolation
   (last: its hanging company keeps retrying until the stack stops);
3. database round trips, on a second stack behind the counting proxy (the
   smoke run puts its only stack behind the proxy and counts there, before
   isolation).

Results go to DIR/<date>.json and latest.json, latest.md, latest.png; the
headline ratios are printed last.
"""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable
from importlib import metadata
from pathlib import Path

from bench import accept, ceilings, db_round_trips, end_to_end, fanout, isolation, proc_stats, report
from bench.profiles import FULL, SMOKE, Profile
from bench.scenario import PhoneBook, write_roomy_channels, write_scenario
from bench.stack_under_test import RAISED_LIMITS, StackUnderTest
from devstack.stack import ROOT

RESULTS = Path(__file__).resolve().parent / "results"


def _say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def _git(*args: str) -> str | None:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def _run_info(profile: Profile) -> dict:
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d"),
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "profile": profile.name,
        "cores": os.cpu_count(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "grpcio": metadata.version("grpcio"),
        "aiohttp": metadata.version("aiohttp"),
        "pymongo": metadata.version("pymongo"),
        "git_head": _git("rev-parse", "--short", "HEAD"),
        "git_dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
    }


def _failed(name: str, error: BaseException) -> dict:
    """A measurement that failed: the run goes on, its figures stay empty."""
    print(f"bench: {name} failed:", file=sys.stderr)
    traceback.print_exception(error, file=sys.stderr)
    return {"error": f"{type(error).__name__}: {error}"[:500]}


async def _phase(found: dict, name: str, measurement: Awaitable[dict]) -> None:
    try:
        found[name] = await measurement
    except Exception as error:  # noqa: BLE001 - recorded, and the exit status says so
        found[name] = _failed(name, error)


async def _main_stack_phases(stack: StackUnderTest, book: PhoneBook, profile: Profile, work: Path, profile_cpu: bool) -> dict:
    found: dict = {}
    await asyncio.sleep(profile.settle_seconds)
    found["memory_at_rest"] = proc_stats.memory(stack.pids())
    _say("accept: SubmitQuery and POST /api/v1/queries at offered loads, then at peak")
    await _phase(found, "accept", accept.measure(stack, book, profile, work))
    _say(f"end to end: {profile.e2e_queries} queries, accepted -> result SMS")
    await _phase(found, "end_to_end", end_to_end.measure(stack, book, profile, work, profile_cpu))
    _say("fan-out overhead: companies at 50-200 ms")
    await _phase(found, "fanout", fanout.measure(stack, book, profile))
    if stack.counter is not None:
        _say("database round trips per query (counting proxy)")
        await _phase(found, "db_round_trips", db_round_trips.measure(stack, book, profile))
    _say("isolation: one company hanging, against none")
    await _phase(found, "isolation", isolation.measure(stack, book, profile))
    return found


def run(profile: Profile, out: Path, profile_cpu: bool) -> tuple[dict, bool]:
    """Every measurement, then the result files; (results, all measured)."""
    started = time.monotonic()
    results: dict = {"run": {**_run_info(profile), "py_spy_during_end_to_end": profile_cpu}}
    work = Path(tempfile.mkdtemp(prefix="yztc-bench-"))
    _say(f"{profile.name} run; working folder {work}")
    _say("ceilings: bare grpc.aio echo, 8-way fan-out, aiohttp JSON")
    try:
        results["ceilings"] = ceilings.measure(profile, work)
    except Exception as error:  # noqa: BLE001
        results["ceilings"] = _failed("ceilings", error)

    book = PhoneBook(profile.phones_needed)
    scenario = write_scenario(work / "scenario.json", book.size)
    channels = write_roomy_channels(work / "channels.json")
    stack = StackUnderTest(work / "stack", scenario, channels, count_db=not profile.separate_count_stack)
    _say("starting the stack")
    try:
        stack.start()
        try:
            found = asyncio.run(_main_stack_phases(stack, book, profile, work, profile_cpu))
        finally:
            stack.stop()
        results.update({k: v for k, v in found.items() if k != "memory_at_rest"})
        under_load = results["end_to_end"].get("memory_under_load") or {"error": "no end-to-end run"}
        results["memory"] = {"at_rest": found["memory_at_rest"], "under_load": under_load}
    except Exception as error:  # noqa: BLE001 - the stack did not start
        results["stack"] = _failed("stack", error)

    if profile.separate_count_stack:
        _say("database round trips per query, on a stack behind the counting proxy")
        counted = StackUnderTest(work / "count-stack", scenario, channels, count_db=True)
        try:
            counted.start()
            try:
                results["db_round_trips"] = asyncio.run(db_round_trips.measure(counted, book, profile))
            finally:
                counted.stop()
        except Exception as error:  # noqa: BLE001
            results["db_round_trips"] = _failed("db_round_trips", error)

    results["limits_raised"] = RAISED_LIMITS
    results["run"]["seconds"] = round(time.monotonic() - started, 1)
    results["run"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    values = report.headlines(results)
    targets = report.verdicts(values)
    final = {**values, "targets": targets, **results}
    if profile_cpu and (work / "profiles").is_dir():
        shutil.copytree(work / "profiles", out / "profiles", dirs_exist_ok=True)
    files = report.write(final, out, results["run"]["date"])
    complete = all(isinstance(v, (int, float)) for v in values.values())
    if complete:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"bench: some figures are missing; logs and data kept in {work}", file=sys.stderr)
    _say(f"results: {files['dated_json']}, {files['markdown']}, {files['plot']}")
    report.print_headlines(values, targets)
    return final, complete


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="a tiny run of every measurement (seconds; figures meaningless)")
    parser.add_argument("--results", type=Path, default=RESULTS, help=f"where results go (default {RESULTS})")
    parser.add_argument("--profile", action="store_true", help="py-spy the stack's processes during the end-to-end load")
    args = parser.parse_args(argv)
    _, complete = run(SMOKE if args.smoke else FULL, args.results, args.profile)
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main())
