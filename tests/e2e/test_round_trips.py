"""The database round trips of a query stay pinned (issue 12: at most 8,
aggregator and notifier together, from SubmitQuery to the result SMS and its
receipts), so they cannot creep back.

The whole stack runs as the bench runs it, behind the bench's counting proxy
in front of FerretDB (bench/mongo_wire_counter.py: requests counted on the
wire by the client's application name, driver plumbing left out). Queries
go one at a time on an otherwise idle stack; what the stack does at rest,
measured just before, is taken off (bench/db_round_trips.py:
one_at_a_time). The lower bound makes the test fail both ways: a count of
zero means the proxy saw nothing of the services (a renamed application,
a harness fault), not a perfect pipeline.
"""

from __future__ import annotations

import asyncio
import json

from bench import db_round_trips, verification_codes
from bench.scenario import PhoneBook, write_roomy_channels, write_scenario
from bench.stack_under_test import StackUnderTest

QUERIES = 10
MAX_PER_QUERY = 8
IDLE_SECONDS = 5.0


async def _count(stack: StackUnderTest, phones: list[str]) -> tuple[dict, dict]:
    codes = await verification_codes.prepare(stack, phones, concurrency=8)
    await asyncio.sleep(2.0)  # the codes' SMS and their receipts settle
    rest = await db_round_trips.at_rest(stack, IDLE_SECONDS)
    found = await db_round_trips.one_at_a_time(stack, phones, codes, rest["per_s_by_app"])
    return found, rest


def test_db_round_trips_per_query_are_pinned(tmp_path):
    phones = PhoneBook(QUERIES).take(QUERIES)
    scenario = write_scenario(tmp_path / "scenario.json", QUERIES)
    channels = write_roomy_channels(tmp_path / "channels.json")
    stack = StackUnderTest(tmp_path / "stack", scenario, channels, count_db=True)
    stack.start()
    try:
        found, rest = asyncio.run(_count(stack, phones))
    finally:
        stack.stop()

    explained = json.dumps(
        {
            "per query, net of idle": found["per_query"],
            "per query, counted": found["per_query_raw"],
            "per query by command (counted)": found["per_query_by_command"],
            "other applications' commands per query": found["other_apps_by_command"],
            "at rest, per s by command": rest["per_s_by_command"],
            "last company answer -> SMS, net of idle": found["gap"],
            "in that gap, by command": found["gap_by_command"],
        },
        ensure_ascii=False,
        indent=1,
    )
    assert found["queries"] == QUERIES, explained
    per_query = found["per_query"]
    assert 1 <= per_query <= MAX_PER_QUERY, (
        f"{per_query} database round trips per query (aggregator + notifier), expected 1..{MAX_PER_QUERY}:\n{explained}"
    )
