"""`python -m bench [--smoke] [--results DIR] [--profile]`: one run of every
measurement of issues 9, 12 and 14, in this order:

1. ceilings (bare servers, no stack): gRPC echo plaintext and mutual TLS
   (with CPU per call), the mutual TLS echo paced at a connector's rate,
   8-way fan-out, aiohttp JSON;
2. the stack as `make run` starts it (own ports, own data folder): its
   configuration stamp, memory and CPU at rest, accept (gRPC and HTTP), end
   to end (memory under load, CPU per process, py-spy profiles with
   --profile), fan-out overhead, the SMS path over SMPP 3.4 and over CMPP
   3.0 (the notifier restarted with each; the link alone as the ceiling),
   isolation (last: its hanging company keeps retrying until the stack
   stops);
3. on a second stack behind the counting proxy: database round trips (at
   rest, per query, FerretDB CPU per round trip, last company answer to the
   SMS), then the backlog cost (20,000 open queries). The smoke run puts its
   only stack behind the proxy and does both there, before isolation.

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

from bench import (
    accept,
    backlog,
    ceilings,
    db_round_trips,
    end_to_end,
    fanout,
    isolation,
    proc_stats,
    report,
    sms_protocols,
)
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


async def _main_stack_phases(
    stack: StackUnderTest, book: PhoneBook, profile: Profile, work: Path, profile_cpu: bool
) -> dict:
    found: dict = {}
    await asyncio.sleep(profile.settle_seconds)
    try:
        found["config"] = stack.config()
    except Exception as error:  # noqa: BLE001 - a stamp, never a reason to stop the run
        found["config"] = _failed("config", error)
    found["memory_at_rest"] = proc_stats.memory(stack.pids())
    _say(f"at rest: CPU of every process for {profile.idle_seconds:g} s")
    found["idle_cpu"] = await _idle_cpu(stack, profile.idle_seconds)
    _say("accept: SubmitQuery and POST /api/v1/queries at offered loads, then at peak")
    await _phase(found, "accept", accept.measure(stack, book, profile, work))
    _say(f"end to end: {profile.e2e_queries} queries, accepted -> result SMS")
    await _phase(found, "end_to_end", end_to_end.measure(stack, book, profile, work, profile_cpu))
    _say("fan-out overhead: companies at 50-200 ms")
    await _phase(found, "fanout", fanout.measure(stack, book, profile))
    _say(f"SMS over SMPP 3.4 and CMPP 3.0: {profile.sms_queries} queries each, the link alone as the ceiling")
    await _phase(found, "sms", sms_protocols.measure(stack, book, profile))
    if stack.counter is not None:
        _say("database round trips per query (counting proxy)")
        await _phase(found, "db_round_trips", db_round_trips.measure(stack, book, profile))
        _say(f"backlog cost: {profile.backlog_open} open queries ({backlog.BACKLOG_COMPANY} down) against none")
        await _phase(found, "backlog", backlog.measure(stack, book, profile))
    _say("isolation: one company hanging, against none")
    await _phase(found, "isolation", isolation.measure(stack, book, profile))
    return found


async def _idle_cpu(stack: StackUnderTest, seconds: float) -> dict:
    pids = stack.pids()
    before = proc_stats.cpu(pids)
    started = time.monotonic()
    await asyncio.sleep(seconds)
    return {
        "seconds": seconds,
        "cpu_ms_per_s": proc_stats.rates(before, proc_stats.cpu(pids), time.monotonic() - started),
    }


async def _count_stack_phases(stack: StackUnderTest, book: PhoneBook, profile: Profile) -> dict:
    found: dict = {}
    await _phase(found, "db_round_trips", db_round_trips.measure(stack, book, profile))
    _say(f"backlog cost: {profile.backlog_open} open queries ({backlog.BACKLOG_COMPANY} down) against none")
    await _phase(found, "backlog", backlog.measure(stack, book, profile))
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
    # The backlog's company retries after hours: only on the stack that measures it.
    backlog_env = {"YZTC_AGGREGATOR_ENTERPRISES_FILE": str(backlog.write_enterprises(work / "enterprises.json"))}
    counted_here = not profile.separate_count_stack
    stack = StackUnderTest(
        work / "stack", scenario, channels, count_db=counted_here, aggregator_env=backlog_env if counted_here else None
    )
    _say("starting the stack")
    try:
        stack.start()
        try:
            found = asyncio.run(_main_stack_phases(stack, book, profile, work, profile_cpu))
        finally:
            stack.stop()
        results.update({k: v for k, v in found.items() if k != "memory_at_rest"})
        results.setdefault("config", {}).update(stack_config_note(profile))
        under_load = results["end_to_end"].get("memory_under_load") or {"error": "no end-to-end run"}
        results["memory"] = {"at_rest": found["memory_at_rest"], "under_load": under_load}
    except Exception as error:  # noqa: BLE001 - the stack did not start
        results["stack"] = _failed("stack", error)

    if profile.separate_count_stack:
        _say("database round trips, then the backlog cost, on a stack behind the counting proxy")
        counted = StackUnderTest(work / "count-stack", scenario, channels, count_db=True, aggregator_env=backlog_env)
        try:
            counted.start()
            try:
                results.update(asyncio.run(_count_stack_phases(counted, book, profile)))
            finally:
                counted.stop()
        except Exception as error:  # noqa: BLE001
            results["db_round_trips"] = _failed("db_round_trips", error)
            results["backlog"] = _failed("backlog", error)

    results["limits_raised"] = RAISED_LIMITS
    results["run"]["seconds"] = round(time.monotonic() - started, 1)
    results["run"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    results["service_cpu"] = report.service_cpu(results)
    values = report.headlines(results)
    targets = report.verdicts(values)
    final = {**values, "config": results.pop("config", None), "targets": targets, **results}
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


def stack_config_note(profile: Profile) -> dict:
    return {
        "database_round_trips_on": "a second stack" if profile.separate_count_stack else "the same stack",
        "backlog_policy": {backlog.BACKLOG_COMPANY: backlog.BACKLOG_POLICY},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--smoke", action="store_true", help="a tiny run of every measurement (seconds; figures meaningless)"
    )
    parser.add_argument("--results", type=Path, default=RESULTS, help=f"where results go (default {RESULTS})")
    parser.add_argument(
        "--profile", action="store_true", help="py-spy the stack's processes during the end-to-end load"
    )
    args = parser.parse_args(argv)
    _, complete = run(SMOKE if args.smoke else FULL, args.results, args.profile)
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main())
