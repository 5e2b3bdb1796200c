"""Issue 12's intake faults, through the real channel API on the whole
stack: brute force by concurrency, and a caller's deadline that must not
leave a spent code behind."""

from __future__ import annotations

import asyncio
import random

import grpc
from pymongo import MongoClient

from tests.e2e.channel_client import channel, write_scenario
from tests.e2e.conftest import latest_code
from yztc.errors import ServiceError
from yztc.v1 import account_query_pb2 as pb
from yztc.v1 import account_query_pb2_grpc


async def _submit(api, phone: str, code: str, timeout: float = 30, id6: str = "12345X"):
    try:
        return await api.SubmitQuery(
            pb.SubmitQueryRequest(phone=phone, id_last6=id6, code=code, consent=True), timeout=timeout
        )
    except grpc.aio.AioRpcError as error:
        return error


def _claims_by_kind(stack) -> dict[str, int]:
    client = MongoClient(stack.mongodb_uri)
    try:
        kinds: dict[str, int] = {}
        for doc in client.get_default_database("yztc")["claims"].find({}, {"kind": 1}):
            if doc["_id"].startswith("v:"):
                kinds[doc["kind"]] = kinds.get(doc["kind"], 0) + 1
        return kinds
    finally:
        client.close()


async def test_200_concurrent_guesses_are_counted_before_they_are_judged(make_stack, tmp_path):
    phone = "13800000101"
    stack = make_stack(write_scenario(tmp_path / "scenario.json", [phone], {}))
    async with channel(stack) as ch:
        api = account_query_pb2_grpc.AccountQueryServiceStub(ch)
        await api.RequestVerificationCode(pb.RequestVerificationCodeRequest(phone=phone), timeout=10)
        code = await latest_code(stack, phone)
        rng = random.Random(12)
        wrong = set()
        while len(wrong) < 200:
            guess = f"{rng.randrange(1_000_000):06d}"
            if guess != code:
                wrong.add(guess)
        guesses = sorted(wrong)
        guesses.insert(150, code)  # the right one, among them
        answers = await asyncio.gather(*(_submit(api, phone, g) for g in guesses))

        codes = [
            ServiceError.from_grpc_error(a).code if isinstance(a, grpc.aio.AioRpcError) else "ACCEPTED" for a in answers
        ]
        kinds = _claims_by_kind(stack)
        # Exactly five attempts were ever judged wrong (each counted by its
        # claim before it was answered); every other guess was refused
        # unjudged, as racing another guess or finding the code dead.
        assert kinds.get("wrong") == 5, kinds
        assert set(codes) <= {"CODE_INVALID", "ACCEPTED"}, set(codes)
        assert codes.count("ACCEPTED") <= 1
        again = await _submit(api, phone, code)
        assert isinstance(again, grpc.aio.AioRpcError)
        if "ACCEPTED" in codes:
            # Only the right code, and only by claiming before it had raced
            # a wrong guess (the person's own submission, first in line).
            assert codes.index("ACCEPTED") == 150 and kinds.get("accept") == 1, kinds
            assert ServiceError.from_grpc_error(again).code in ("QUERY_IN_PROGRESS", "QUERY_LIMITED")
        else:
            # Dead for good: the right code alone is refused now too.
            assert kinds.get("accept", 0) == 0, kinds
            assert ServiceError.from_grpc_error(again).code == "CODE_INVALID"


async def test_a_deadline_during_slow_operator_checks_does_not_spend_the_code(make_stack, tmp_path):
    # A ported number: the segment's operator (cmcc) answers "ported to ctcc"
    # after 2.6 s, ctcc answers after 2.6 s more; the caller gives up at 5 s.
    phone = "13800000102"
    scenario = write_scenario(tmp_path / "scenario.json", [phone], {})
    import json

    data = json.loads(scenario.read_text(encoding="utf-8"))
    data["subscribers"][0]["operator"] = "ctcc"
    data["operators"] = {"cmcc": {"latency_ms": 2600}, "ctcc": {"latency_ms": 2600}}
    scenario.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    stack = make_stack(scenario)
    async with channel(stack) as ch:
        api = account_query_pb2_grpc.AccountQueryServiceStub(ch)
        await api.RequestVerificationCode(pb.RequestVerificationCodeRequest(phone=phone), timeout=10)
        code = await latest_code(stack, phone)
        first = await _submit(api, phone, code, timeout=5.0)
        assert isinstance(first, grpc.aio.AioRpcError)
        assert first.code() == grpc.StatusCode.DEADLINE_EXCEEDED

        again = await _submit(api, phone, code, timeout=10)
        if isinstance(again, grpc.aio.AioRpcError):
            error = ServiceError.from_grpc_error(again)
            assert error.code == "QUERY_IN_PROGRESS", error.code
            query_id = error.query_id
        else:
            query_id = again.query_id
        assert query_id
        # The query the first call started is real and runs to its end.
        for _ in range(200):
            try:
                query = await api.GetQuery(pb.GetQueryRequest(query_id=query_id), timeout=5)
                if query.status != pb.QUERY_STATUS_IN_PROGRESS:
                    break
            except grpc.aio.AioRpcError as error:
                assert error.code() == grpc.StatusCode.NOT_FOUND  # not inserted yet
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the query never finished")
        assert query.status == pb.QUERY_STATUS_COMPLETED
