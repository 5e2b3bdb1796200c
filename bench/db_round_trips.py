"""Database round trips, counted on the wire by the proxy in front of
FerretDB (mongo_wire_counter.py), by the client's application name and
command, never by collection name (the storage model may change under it).

Four figures, on a stack behind the proxy:

- at rest: work commands a second per application (handshakes, heartbeats,
  pings left out), and per replica (`idle_db_ops_per_s` is the largest);
- per query (`db_round_trips_per_query`): aggregator + notifier, counted
  from the first SubmitQuery to the last result SMS at the SMS centre and a
  moment after (the notifier records delivery receipts), for queries
  submitted closed loop like the end-to-end run. Getting the verification
  code is not part of it (the issue counts a query from its submission on)
  but is reported beside it, per code. The idle commands of the window are
  in the count (their share is reported beside it);
- FerretDB's CPU per round trip: its CPU over that window / every request
  it served in it (plumbing included: it answers those too);
- between the last company answer and the result SMS
  (`db_round_trips_last_answer_to_sms`): single queries one at a time on the
  otherwise idle stack. For each, the companies simulator's log gives when
  the last company answered (its "count answered" line for our query id,
  wall clock, millisecond), the SMS centre's /sim/submits when the result
  SMS's first submit_sm arrived (the first to the phone after that answer),
  and the proxy the time of every command: the aggregator's and notifier's
  work commands strictly between the two, less what the idle rate would have
  put in that window, averaged over the queries. On an idle stack nothing
  else runs, so every such command is one the hand-over waited for.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from collections import Counter
from pathlib import Path

import aiohttp

from bench import proc_stats, submissions, verification_codes
from bench.mongo_wire_counter import WireCounter, all_requests, is_work, work_commands
from bench.profiles import Profile
from bench.scenario import ID_LAST6, REQUESTER, PhoneBook
from bench.sms_centre import SmsCentre
from bench.stack_under_test import StackUnderTest
from bench.stats import summary_ms
from bench.submissions import PHONE
from yztc.v1 import account_query_pb2 as pb
from yztc.v1 import account_query_pb2_grpc

PIPELINE = ("yztc-aggregator", "yztc-sms-notifier")
APPS = (*PIPELINE, "gateway")
# Application name -> the stack's children it runs as (replicas).
REPLICA_PREFIX = {"yztc-aggregator": "aggregator", "yztc-sms-notifier": "sms_notifier", "gateway": "gateway"}
SETTLE_SECONDS = 2.0
# The companies simulator logs this, with our query id as request_id, when it answers.
ANSWER_LOG = "count answered"


def _total(found: dict[str, dict[str, int]], apps: tuple[str, ...] = PIPELINE) -> int:
    return sum(sum(found.get(app, {}).values()) for app in apps)


def _per(found: dict[str, dict[str, int]], n: int) -> dict[str, dict[str, float]]:
    return {app: {cmd: round(c / n, 2) for cmd, c in cmds.items()} for app, cmds in found.items()} if n else {}


async def at_rest(stack: StackUnderTest, seconds: float) -> dict:
    """Work commands a second of each application, the stack doing nothing
    the bench asked; and per replica of each."""
    counter = _counter(stack)
    before = counter.snapshot()
    await asyncio.sleep(seconds)
    after = counter.snapshot()
    apps = tuple(sorted(set(after) | set(APPS)))
    found = work_commands(before, after, apps)
    plumbing = all_requests(before, after) - _total(found, apps)
    names = list(stack.pids())
    per_replica = {}
    for app, commands in found.items():
        replicas = sum(n.startswith(REPLICA_PREFIX.get(app, "\0")) for n in names) or 1
        per_replica[app] = round(sum(commands.values()) / seconds / replicas, 2)
    return {
        "seconds": seconds,
        "per_s": round(_total(found, apps) / seconds, 2),
        "per_s_by_app": {app: round(sum(c.values()) / seconds, 2) for app, c in found.items()},
        "per_s_per_replica": per_replica,
        "per_s_by_command": {app: {cmd: round(n / seconds, 2) for cmd, n in c.items()} for app, c in found.items()},
        "plumbing_per_s": round(plumbing / seconds, 2),
    }


def _counter(stack: StackUnderTest) -> WireCounter:
    assert stack.counter is not None, "the stack must run behind the counting proxy"
    return stack.counter


async def measure(stack: StackUnderTest, book: PhoneBook, profile: Profile) -> dict:
    counter = _counter(stack)
    phones = book.take(profile.db_queries)
    one_by_one = book.take(profile.sequential_queries)

    await asyncio.sleep(SETTLE_SECONDS)
    rest = await at_rest(stack, profile.idle_seconds)

    before_codes = counter.snapshot()
    codes = await verification_codes.prepare(stack, phones, profile.concurrency)
    await asyncio.sleep(SETTLE_SECONDS)
    per_code = work_commands(before_codes, counter.snapshot(), APPS)

    ferretdb = {"ferretdb": stack.pids()["ferretdb"]}
    before = counter.snapshot()
    cpu_before = proc_stats.cpu(ferretdb)
    started = time.monotonic()
    records = await submissions.over_grpc(stack, submissions.items(phones, codes), concurrency=profile.concurrency)
    ok = submissions.require_accepted(records, "database round trips")
    async with aiohttp.ClientSession() as http:
        results = await SmsCentre(http, stack.ports.sim_smsc).wait_results([r[PHONE] for r in ok], timeout=300)
    await asyncio.sleep(SETTLE_SECONDS)
    window = time.monotonic() - started
    after = counter.snapshot()
    ferretdb_cpu = proc_stats.cpu(ferretdb)["ferretdb"] - cpu_before["ferretdb"]
    counted = work_commands(before, after, APPS)
    served = all_requests(before, after)

    done = len(results)
    idle_per_s = sum(rest["per_s_by_app"].get(app, 0.0) for app in PIPELINE)
    found = {
        "how": "MongoDB wire requests through a counting proxy in front of FerretDB, by client appname; "
        "handshakes, heartbeats, pings and endSessions left out; getting the verification code not included",
        "queries": len(records),
        "completed": done,
        "window_seconds": round(window, 2),
        "per_query": round(_total(counted) / done, 2) if done else float("nan"),
        "per_query_by_app": {app: round(sum(c.values()) / done, 2) for app, c in counted.items()} if done else {},
        "per_query_by_command": _per(counted, done),
        "per_code": round(_total(per_code) / len(codes), 2) if codes else float("nan"),
        "per_code_by_command": _per(per_code, len(codes)),
        "idle": rest,
        "idle_per_s": rest["per_s"],
        "idle_share_of_per_query": round(idle_per_s * window / _total(counted), 3) if _total(counted) else float("nan"),
        "ferretdb": {
            "cpu_seconds": round(ferretdb_cpu, 3),
            "requests_served": served,
            "cpu_ms_per_round_trip": round(ferretdb_cpu * 1000 / served, 4) if served else float("nan"),
            "how": "FerretDB's CPU over the per-query window / every request it served in it (plumbing included)",
        },
    }
    seq_codes = await verification_codes.prepare(stack, one_by_one, profile.concurrency)
    await asyncio.sleep(SETTLE_SECONDS)  # the codes' SMS and receipts settle
    found["last_answer_to_sms"] = await one_at_a_time(
        stack, one_by_one, seq_codes, {app: rest["per_s_by_app"].get(app, 0.0) for app in PIPELINE}
    )
    return found


class CompanyAnswers:
    """When each company answered each query, from the companies simulator's
    log ("count answered" lines, JSON, `ts` to the millisecond), read on from
    where the last read stopped."""

    def __init__(self, log: Path) -> None:
        self._log = log
        self._at = 0
        self.answered: dict[str, list[float]] = {}

    def read(self) -> None:
        with self._log.open("rb") as file:
            file.seek(self._at)
            chunk = file.read()
        complete = chunk.rfind(b"\n") + 1
        self._at += complete
        for line in chunk[:complete].splitlines():
            if ANSWER_LOG.encode() not in line:
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("msg") == ANSWER_LOG and entry.get("request_id") and entry.get("ts"):
                at = dt.datetime.fromisoformat(entry["ts"].replace("Z", "+00:00")).timestamp()
                self.answered.setdefault(entry["request_id"], []).append(at)

    def last(self, query_id: str) -> float | None:
        self.read()
        times = self.answered.get(query_id)
        return max(times) if times else None


async def one_at_a_time(
    stack: StackUnderTest,
    phones: list[str],
    codes: dict[str, str],
    idle_per_s: dict[str, float],
    trailing: float = 0.5,
    timeout: float = 60.0,
) -> dict:
    """Queries submitted one at a time, each after the last one's result SMS
    (and `trailing` seconds for its receipts): per query the round trips of
    the pipeline from submission to `trailing` after the SMS, and those
    between the last company answer and the result SMS's first submit_sm.
    Both net of the idle rate (`idle_per_s` by application) over their
    windows; the raw counts are kept beside them."""
    counter = _counter(stack)
    answers = CompanyAnswers(stack.log_path("simulators"))
    idle_rate = sum(idle_per_s.get(app, 0.0) for app in PIPELINE)
    queries: list[dict] = []
    whole: Counter[str] = Counter()
    gap: Counter[str] = Counter()
    others: Counter[str] = Counter()  # work commands of any other application: a renamed service shows here
    async with aiohttp.ClientSession() as http, stack.channel() as channel:
        api = account_query_pb2_grpc.AccountQueryServiceStub(channel)
        sms = SmsCentre(http, stack.ports.sim_smsc)
        await api.ListEnterprises(pb.ListEnterprisesRequest(), timeout=20)  # TLS and first stream first
        for phone in phones:
            if phone not in codes:
                continue
            with counter.recording() as log:
                sent = time.time()
                answer = await api.SubmitQuery(
                    pb.SubmitQueryRequest(
                        phone=phone, id_last6=ID_LAST6, code=codes[phone], consent=True, requester_id=REQUESTER
                    ),
                    timeout=30,
                )
                accepted = time.time()
                deadline = time.monotonic() + timeout
                while not await sms.has_result(phone):
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"no result SMS for query {answer.query_id} in {timeout:.0f} s")
                    await asyncio.sleep(0.02)
                await asyncio.sleep(trailing)
                ended = time.time()
            pipeline = [(t, f"{app}: {cmd}") for t, app, cmd in log if app in PIPELINE and is_work(cmd)]
            whole.update(label for _, label in pipeline)
            others.update(f"{app}: {cmd}" for _, app, cmd in log if app not in PIPELINE and is_work(cmd))
            found = {
                "query_id": answer.query_id,
                "accept_ms": round((accepted - sent) * 1000, 2),
                "round_trips": len(pipeline),
                "round_trips_net": round(len(pipeline) - idle_rate * (ended - sent), 2),
            }
            last = answers.last(answer.query_id)
            later = [s["at"] for s in await stack.submits(http, phone) if last is not None and s["at"] > last]
            if last is not None and later:
                submit = min(later)
                between = [label for t, label in pipeline if last < t < submit]
                gap.update(between)
                found.update(
                    last_answer_to_sms_ms=round((submit - last) * 1000, 2),
                    gap_round_trips=len(between),
                    gap_round_trips_net=round(len(between) - idle_rate * (submit - last), 3),
                )
            queries.append(found)
    n = len(queries)
    timed = [q for q in queries if "gap_round_trips" in q]
    return {
        "how": "single queries one at a time on an otherwise idle stack behind the counting proxy: aggregator + "
        'notifier work commands strictly between the companies simulator\'s last "count answered" log '
        "line for the query and the SMS centre's first submit_sm to the phone after it, less the idle "
        "rate times that window; mean over the queries",
        "queries": n,
        "timed": len(timed),
        "idle_per_s": round(idle_rate, 2),
        "per_query_raw": round(sum(q["round_trips"] for q in queries) / n, 2) if n else float("nan"),
        "per_query": round(sum(q["round_trips_net"] for q in queries) / n, 2) if n else float("nan"),
        "per_query_by_command": {k: round(v / n, 2) for k, v in sorted(whole.items())} if n else {},
        "other_apps_by_command": {k: round(v / n, 2) for k, v in sorted(others.items())} if n else {},
        "gap_raw": round(sum(q["gap_round_trips"] for q in timed) / len(timed), 3) if timed else float("nan"),
        "gap": round(max(0.0, sum(q["gap_round_trips_net"] for q in timed) / len(timed)), 1) if timed else float("nan"),
        "gap_by_command": {k: round(v / len(timed), 2) for k, v in sorted(gap.items())} if timed else {},
        "last_answer_to_sms": summary_ms([q["last_answer_to_sms_ms"] / 1000 for q in timed]),
        "accept": summary_ms([q["accept_ms"] / 1000 for q in queries]),
        "each": queries,
    }
