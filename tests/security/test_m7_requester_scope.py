"""M7: cross-user reads within a channel.

The review: `requester_id` was optional (empty), so a channel that omitted
it read any of its queries by id alone, and M1 handed out other people's
query ids:

    grpcurl $CERTS -d '{"phone":"13800138000","id_last6":"000000","code":"000000","consent":true}' \
        host:443 yztc.v1.AccountQueryService/SubmitQuery   # ALREADY_EXISTS, query_id = Q
    grpcurl $CERTS -d '{"query_id":"Q"}' host:443 yztc.v1.AccountQueryService/GetQuery

Now (CONTRACT: "`requester_id` is required on every call; a channel reads
only its own requesters' queries"): every call without one is
INVALID_ARGUMENT, and GetQuery answers only the channel's requester that
made the query; anyone else, and a query stored without a requester, is
NOT_FOUND. Against the real aggregator over gRPC (mutual TLS, `wechat-demo`).
"""

from __future__ import annotations

import asyncio
import datetime as dt

import grpc

from tests.e2e.channel_client import channel, requester_for, submit_many, write_scenario
from tests.e2e.conftest import make_stack  # noqa: F401  (fixture)
from tests.security.channel_calls import database, outcome
from yztc.v1 import account_query_pb2 as pb
from yztc.v1 import account_query_pb2_grpc

PHONE = "13800000701"


async def test_every_call_without_a_requester_id_is_invalid_argument(make_stack, tmp_path):
    stack = make_stack(write_scenario(tmp_path / "scenario.json", [PHONE], {}))
    query_id = (await submit_many(stack, [PHONE]))[PHONE]
    async with channel(stack) as ch:
        api = account_query_pb2_grpc.AccountQueryServiceStub(ch)
        calls = {
            "RequestVerificationCode": api.RequestVerificationCode(
                pb.RequestVerificationCodeRequest(phone="13800000702"), timeout=10
            ),
            # The review's first step, as written.
            "SubmitQuery": api.SubmitQuery(
                pb.SubmitQueryRequest(phone=PHONE, id_last6="000000", code="000000", consent=True), timeout=10
            ),
            # The review's second step: the query id alone.
            "GetQuery": api.GetQuery(pb.GetQueryRequest(query_id=query_id), timeout=10),
        }
        for method, call in calls.items():
            found = await outcome(call)
            assert (found.status, found.code) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT"), method
            assert "query_id" not in found.metadata, method
            assert "requester_id" in found.details, method  # the person is told which field


async def test_a_query_is_read_only_by_the_requester_that_made_it(make_stack, tmp_path):
    stack = make_stack(write_scenario(tmp_path / "scenario.json", [PHONE], {}))
    query_id = (await submit_many(stack, [PHONE]))[PHONE]
    async with channel(stack) as ch:
        api = account_query_pb2_grpc.AccountQueryServiceStub(ch)

        def get(requester: str, qid: str = query_id):
            return api.GetQuery(pb.GetQueryRequest(query_id=qid, requester_id=requester), timeout=10)

        own = await outcome(get(requester_for(PHONE)))
        assert own.code == "OK" and own.answer.query_id == query_id
        assert own.answer.phone == "138****0701"
        for other in ("someone-else", requester_for(PHONE).upper(), requester_for(PHONE) + "x"):
            found = await outcome(get(other))
            assert (found.status, found.code) == (grpc.StatusCode.NOT_FOUND, "NOT_FOUND"), other
        assert (await outcome(get(" "))).code == "INVALID_ARGUMENT"
        # A made-up id of the form, and one of no query's form: NOT_FOUND alike.
        for qid in ("0" * 32, "../" + query_id, query_id + "\n"):
            assert (await outcome(get(requester_for(PHONE), qid))).code == "NOT_FOUND", qid


async def test_a_query_stored_without_a_requester_is_read_by_nobody(make_stack, tmp_path):
    """A record made when requester_id was optional (stored as ""): the
    query id alone read it then; now no requester reads it."""
    stack = make_stack(write_scenario(tmp_path / "scenario.json", [PHONE], {}))
    query_id = (await submit_many(stack, [PHONE]))[PHONE]
    client, db = database(stack)
    try:
        for _ in range(100):  # the final record, once the query completed
            if db["queries"].find_one({"_id": query_id}) is not None:
                break
            await asyncio.sleep(0.1)
        record = db["queries"].find_one({"_id": query_id})
        assert record is not None, "the query never completed"
        legacy = {k: v for k, v in record.items() if k != "requester"}
        legacy.update(_id="legacyq" + query_id[:20], requester_id="")
        legacy["completed_at"] = dt.datetime.now(dt.UTC)
        db["queries"].insert_one(legacy)
    finally:
        client.close()
    async with channel(stack) as ch:
        api = account_query_pb2_grpc.AccountQueryServiceStub(ch)
        for requester in (requester_for(PHONE), "anyone"):
            found = await outcome(
                api.GetQuery(pb.GetQueryRequest(query_id=legacy["_id"], requester_id=requester), timeout=10)
            )
            assert (found.status, found.code) == (grpc.StatusCode.NOT_FOUND, "NOT_FOUND"), requester
        found = await outcome(api.GetQuery(pb.GetQueryRequest(query_id=legacy["_id"]), timeout=10))
        assert found.code == "INVALID_ARGUMENT"
