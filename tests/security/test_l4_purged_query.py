"""L4: purged queries.

The review: retention unsets `requester_id`, `phone_masked` and the rest of
a final record's personal fields; GetQuery then read `doc["requester_id"]`,
raised KeyError, answered UNAVAILABLE (503) and logged "unexpected error"
with a traceback. Reproduction: GetQuery of a query after its retention
period, from the same channel (and requester).

Now a purged query is NOT_FOUND to everyone, the requester that made it
included, and nothing is logged as unexpected. Through the real retention
purge: the aggregator's own loop (aggregator/__main__.py purge_forever) with
a retention period of two seconds.
"""

from __future__ import annotations

import asyncio

import grpc

from tests.e2e.channel_client import channel, requester_for, submit_many, write_scenario
from tests.e2e.conftest import make_stack  # noqa: F401  (fixture)
from tests.security.channel_calls import database, outcome
from yztc.v1 import account_query_pb2 as pb
from yztc.v1 import account_query_pb2_grpc

PHONE = "13800000401"
RETENTION_SECONDS = 2.0


async def _purged_record(stack, query_id: str, timeout: float = 60.0) -> dict:
    client, db = database(stack)
    try:
        for _ in range(int(timeout / 0.2)):
            record = db["queries"].find_one({"_id": query_id})
            if record is not None and record.get("purged_at") is not None:
                return record
            await asyncio.sleep(0.2)
    finally:
        client.close()
    raise AssertionError("the retention purge never reached the query")


async def test_a_purged_query_is_not_found_and_nothing_unexpected_is_logged(make_stack, tmp_path):
    stack = make_stack(
        write_scenario(tmp_path / "scenario.json", [PHONE], {}),
        aggregator_env={
            "YZTC_AGGREGATOR_RETENTION_DAYS": str(RETENTION_SECONDS / 86400),
            "YZTC_AGGREGATOR_PURGE_INTERVAL_SECONDS": "0.5",
        },
    )
    query_id = (await submit_many(stack, [PHONE]))[PHONE]
    async with channel(stack) as ch:
        api = account_query_pb2_grpc.AccountQueryServiceStub(ch)

        def get():
            return api.GetQuery(pb.GetQueryRequest(query_id=query_id, requester_id=requester_for(PHONE)), timeout=10)

        # Before the purge its requester reads it (so NOT_FOUND below is the purge's doing).
        before = await outcome(get())
        assert before.code == "OK" and before.answer.phone == "138****0401"

        record = await _purged_record(stack, query_id)
        assert "requester" not in record and "phone_masked" not in record  # the review's state

        after = await outcome(get())
        assert (after.status, after.code) == (grpc.StatusCode.NOT_FOUND, "NOT_FOUND")
        assert query_id not in after.details
        # Nor anyone else, nor the id with an empty requester (INVALID_ARGUMENT).
        other = await outcome(api.GetQuery(pb.GetQueryRequest(query_id=query_id, requester_id="other"), timeout=10))
        assert other.code == "NOT_FOUND"
        anonymous = await outcome(api.GetQuery(pb.GetQueryRequest(query_id=query_id), timeout=10))
        assert anonymous.code == "INVALID_ARGUMENT"

    log = (stack.var / "logs" / "aggregator.log").read_text(encoding="utf-8", errors="replace")
    assert "personal data purged" in log  # the real purge ran
    assert "unexpected error" not in log and "Traceback" not in log and "KeyError" not in log
