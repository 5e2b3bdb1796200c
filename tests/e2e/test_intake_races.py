"""Issue 12's intake faults, through the real channel API on the whole
stack: brute force by concurrency, and a caller's deadline that must not
leave a spent code behind. Every call is the phone's own requester's
(channel_client.requester_for): a code answers only to the requester that
asked for it (phone_rules.judge_code)."""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path

import grpc
from pymongo import MongoClient

from devstack.stack import ROOT
from tests.e2e.channel_client import channel, requester_for, write_scenario
from tests.e2e.conftest import latest_code
from yztc.errors import ServiceError
from yztc.v1 import account_query_pb2 as pb
from yztc.v1 import account_query_pb2_grpc


async def _submit(api, phone: str, code: str, timeout: float = 30, id6: str = "12345X", requester: str | None = None):
    try:
        return await api.SubmitQuery(
            pb.SubmitQueryRequest(
                phone=phone, id_last6=id6, code=code, consent=True, requester_id=requester or requester_for(phone)
            ),
            timeout=timeout,
        )
    except grpc.aio.AioRpcError as error:
        return error


async def _request_code(api, phone: str, requester: str | None = None):
    return await api.RequestVerificationCode(
        pb.RequestVerificationCodeRequest(phone=phone, requester_id=requester or requester_for(phone)), timeout=10
    )


def channels_without_requester_limits(tmp_path: Path) -> dict[str, str]:
    """Aggregator settings for a channels file with roomy quotas and no
    per-requester limits: the code's own attempt cap shown alone, with one
    requester guessing as fast as it can (the per-requester limits would
    refuse most of the burst first: tests/security/test_h2_m1_m6_intake.py)."""
    channels = json.loads((ROOT / "config" / "channels.json").read_text(encoding="utf-8"))
    for spec in channels["channels"].values():
        spec["quotas"] = {"*": {"per_second": 100000, "per_day": 100000000}}
        spec.pop("requester_limits", None)
    path = tmp_path / "channels-no-requester-limits.json"
    path.write_text(json.dumps(channels), encoding="utf-8")
    return {"YZTC_AGGREGATOR_CHANNELS_FILE": str(path)}


def claims_by_kind(stack) -> dict[str, int]:
    """How many phone-version claims of each kind (code, wrong, accept, ...)
    the stack's database holds: the attempts that were judged."""
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
    stack = make_stack(
        write_scenario(tmp_path / "scenario.json", [phone], {}),
        aggregator_env=channels_without_requester_limits(tmp_path),
    )
    async with channel(stack) as ch:
        api = account_query_pb2_grpc.AccountQueryServiceStub(ch)
        await _request_code(api, phone)
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
        kinds = claims_by_kind(stack)
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
    data = json.loads(scenario.read_text(encoding="utf-8"))
    data["subscribers"][0]["operator"] = "ctcc"
    data["operators"] = {"cmcc": {"latency_ms": 2600}, "ctcc": {"latency_ms": 2600}}
    scenario.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    stack = make_stack(scenario)
    async with channel(stack) as ch:
        api = account_query_pb2_grpc.AccountQueryServiceStub(ch)
        await _request_code(api, phone)
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
                query = await api.GetQuery(
                    pb.GetQueryRequest(query_id=query_id, requester_id=requester_for(phone)), timeout=5
                )
                if query.status != pb.QUERY_STATUS_IN_PROGRESS:
                    break
            except grpc.aio.AioRpcError as error:
                assert error.code() == grpc.StatusCode.NOT_FOUND  # not inserted yet
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the query never finished")
        assert query.status == pb.QUERY_STATUS_COMPLETED
