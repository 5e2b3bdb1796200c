"""Issue 4's rules through the real channel API (the limits' exact
boundaries are shown with an injected clock in
tests/integration/test_aggregator_stores.py): identity checks, re-routing,
cancelled numbers, the 24-hour lock, one running query per phone, and a
privacy sweep of every collection, log and trace after a run."""

from __future__ import annotations

import asyncio
import json
import re

import aiohttp
import grpc
import pytest
from pymongo import MongoClient

from tests.e2e.channel_client import CODE, channel, requester_for, sms_for, submit_many, write_scenario
from tests.e2e.conftest import latest_code
from yztc.errors import ServiceError
from yztc.v1 import account_query_pb2 as pb
from yztc.v1 import account_query_pb2_grpc


async def _attempt(stack, phone: str, id6: str) -> ServiceError | pb.SubmitQueryResponse:
    async with channel(stack) as ch:
        api = account_query_pb2_grpc.AccountQueryServiceStub(ch)
        try:
            await api.RequestVerificationCode(
                pb.RequestVerificationCodeRequest(phone=phone, requester_id=requester_for(phone)), timeout=10
            )
        except grpc.aio.AioRpcError as error:
            return ServiceError.from_grpc_error(error)
        code = await latest_code(stack, phone)
        try:
            return await api.SubmitQuery(
                pb.SubmitQueryRequest(
                    phone=phone, id_last6=id6, code=code, consent=True, requester_id=requester_for(phone)
                ),
                timeout=10,
            )
        except grpc.aio.AioRpcError as error:
            assert phone not in error.details() and id6 not in error.details()
            return ServiceError.from_grpc_error(error)


async def test_ported_number_is_rerouted_to_its_new_operator(stack):
    answer = await _attempt(stack, "15000150000", "78901X")  # a cmcc segment, ported to ctcc
    assert isinstance(answer, pb.SubmitQueryResponse) and answer.query_id


async def test_cancelled_number_is_refused_pointing_to_customer_service(stack):
    answer = await _attempt(stack, "13700137000", "678901")
    assert isinstance(answer, ServiceError) and answer.code == "NUMBER_CANCELLED"
    assert "客服" in answer.message


async def test_mismatch_locks_the_number_for_24_hours(stack):
    answer = await _attempt(stack, "13300133000", "000000")
    assert isinstance(answer, ServiceError) and answer.code == "VERIFICATION_FAILED"
    assert 86390 <= answer.retry_after <= 86400
    # Locked: the right ID six does not help (the code is not spent by the
    # mismatch, so the person who corrects the ID six is told of the lock).
    code = await latest_code(stack, "13300133000")
    async with channel(stack) as ch:
        api = account_query_pb2_grpc.AccountQueryServiceStub(ch)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await api.SubmitQuery(
                pb.SubmitQueryRequest(
                    phone="13300133000",
                    id_last6="456789",
                    code=code,
                    consent=True,
                    requester_id=requester_for("13300133000"),
                ),
                timeout=10,
            )
        again = ServiceError.from_grpc_error(caught.value)
        assert again.code == "VERIFICATION_FAILED"
        assert again.retry_after <= answer.retry_after
        # Without the valid code nothing of the lock is told (issue 12, state before proof).
        wrong = "000000" if code != "000000" else "111111"
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await api.SubmitQuery(
                pb.SubmitQueryRequest(
                    phone="13300133000",
                    id_last6="456789",
                    code=wrong,
                    consent=True,
                    requester_id=requester_for("13300133000"),
                ),
                timeout=10,
            )
        assert ServiceError.from_grpc_error(caught.value).code == "CODE_INVALID"


async def test_unknown_number_fails_verification(stack):
    answer = await _attempt(stack, "13612345678", "123456")
    assert isinstance(answer, ServiceError) and answer.code == "VERIFICATION_FAILED"


async def test_second_query_while_one_runs_gets_409_with_its_id(make_stack, tmp_path):
    phone = "13800000001"
    slow = {"jd": {"latency_ms": 4000, "mode": "async"}}
    stack = make_stack(write_scenario(tmp_path / "scenario.json", [phone], slow))
    first = (await submit_many(stack, [phone]))[phone]
    code = await latest_code(stack, phone)
    wrong = "000000" if code != "000000" else "111111"
    async with channel(stack) as ch:
        api = account_query_pb2_grpc.AccountQueryServiceStub(ch)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await api.SubmitQuery(
                pb.SubmitQueryRequest(
                    phone=phone, id_last6="12345X", code=code, consent=True, requester_id=requester_for(phone)
                ),
                timeout=10,
            )
        error = ServiceError.from_grpc_error(caught.value)
        assert caught.value.code() == grpc.StatusCode.ALREADY_EXISTS
        assert error.code == "QUERY_IN_PROGRESS" and error.query_id == first
        # A caller without the phone's valid code learns nothing of the running
        # query (issue 12, state before proof).
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await api.SubmitQuery(
                pb.SubmitQueryRequest(
                    phone=phone, id_last6="12345X", code=wrong, consent=True, requester_id=requester_for(phone)
                ),
                timeout=10,
            )
        assert ServiceError.from_grpc_error(caught.value).code == "CODE_INVALID"


async def test_another_replica_sees_an_accept_the_phone_document_does_not_hold_yet(make_stack, tmp_path):
    # After an accept the phone document stays one version behind (the accept
    # claim holds the change): a replica that never saw the phone reads the
    # older document, in which the code is unused and no query runs, and
    # must still answer as if it held the whole chain.
    from devstack.stack import Ports

    phone = "13800000002"
    slow = {"jd": {"latency_ms": 4000, "mode": "async"}}
    stack = make_stack(write_scenario(tmp_path / "scenario.json", [phone], slow))
    second = stack.add(stack.aggregator("aggregator-2", Ports.free().aggregator))
    first = (await submit_many(stack, [phone]))[phone]
    code = await latest_code(stack, phone)
    async with channel(stack, port=second.ready_port) as ch:
        api = account_query_pb2_grpc.AccountQueryServiceStub(ch)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await api.SubmitQuery(
                pb.SubmitQueryRequest(
                    phone=phone, id_last6="12345X", code=code, consent=True, requester_id=requester_for(phone)
                ),
                timeout=10,
            )
    error = ServiceError.from_grpc_error(caught.value)
    assert (error.code, error.query_id) == ("QUERY_IN_PROGRESS", first)
    client = MongoClient(stack.mongodb_uri)
    try:
        db = client.get_default_database()
        doc = db["phones"].find_one({})
        assert doc["code"]["used_by"] is None  # the document is behind ...
        accept = db["claims"].find_one({"_id": f"v:{doc['_id']}:{doc['v'] + 1}"})
        assert accept is not None and accept["kind"] == "accept"  # ... the claim is not
    finally:
        client.close()


async def test_nothing_personal_is_kept_or_logged(stack, scenario):
    """After a run: the raw phone only ever in encrypted form, the ID six and
    the codes nowhere, in any collection, service log or trace."""
    answer = await _attempt(stack, "19200192000", "567890")
    assert isinstance(answer, pb.SubmitQueryResponse)
    await asyncio.sleep(2)  # the query completes; exporters flush
    async with aiohttp.ClientSession() as http:
        codes = {c.group(1) for m in await sms_for(http, stack) if (c := CODE.search(m["text"]))}
    assert codes
    secrets = {s["phone"] for s in scenario["subscribers"]} | {s["id_last6"] for s in scenario["subscribers"]} | codes

    client = MongoClient(stack.mongodb_uri)
    try:
        db = client.get_default_database("yztc")
        dumps = {
            f"collection {name}": json.dumps(list(db[name].find()), default=str, ensure_ascii=False)
            for name in db.list_collection_names()
        }
    finally:
        client.close()
    assert "queries" in " ".join(dumps) and "phones" in " ".join(dumps) and "claims" in " ".join(dumps)
    for path in [*(stack.var / "logs").glob("*.log"), *(stack.var / "traces").glob("*.jsonl")]:
        dumps[str(path.name)] = path.read_text(encoding="utf-8", errors="replace")
    # Whole tokens only: a 6-digit code may occur inside a hex trace id or a
    # timestamp's microseconds by chance; that is not a leak.
    patterns = {s: re.compile(rf"(?<![0-9A-Za-z.]){re.escape(s)}(?![0-9A-Za-z])", re.IGNORECASE) for s in secrets}
    leaks = [(where, s) for where, text in dumps.items() for s, p in patterns.items() if p.search(text)]
    assert not leaks, leaks
