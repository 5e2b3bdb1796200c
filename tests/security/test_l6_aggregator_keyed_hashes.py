"""L6, the aggregator's half: it kept the channel's `requester_id` (for the
Alipay gateway, the user id) in the clear in every query record, and in its
per-requester quota slots as an unkeyed SHA-256 of the channel and the id
(`sha256(channel\\0requester)`: an Alipay user id of 16 digits is recovered
by hashing them all); its phone look-up hash carried no key id, so rotating
that key forgot every phone's limits at once.

Now every requester id is stored only as a keyed tag and every keyed hash
names its key ("h1.<hex>"); a rotation (new key current, old one kept
beside it) keeps what was stored under the old key: a phone's limits, a
requester's queries, a requester's quota. Against the real aggregator over
gRPC (mutual TLS, `wechat-demo`), a second replica started with the rotated
keys as a rolling update would start it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os

import grpc

from devstack import secrets
from devstack.stack import Ports
from tests.e2e.channel_client import channel, requester_for, submit_many, write_scenario
from tests.e2e.conftest import latest_code, make_stack  # noqa: F401  (fixture)
from tests.security.channel_calls import database, outcome
from yztc.v1 import account_query_pb2 as pb
from yztc.v1 import account_query_pb2_grpc

PHONE, NEW_PHONE, CODE_PHONE = "13800000761", "13800000762", "13800000763"
H2 = base64.b64encode(os.urandom(32)).decode()


def _stored(stack) -> str:
    """Every document of every collection, as one text."""
    client, db = database(stack)
    try:
        return json.dumps({name: list(db[name].find()) for name in db.list_collection_names()}, default=str)
    finally:
        client.close()


def _replica(stack, name: str, hash_keys: dict[str, str], current: str) -> int:
    """Another aggregator replica with its own hash keys; its channel port."""
    port = Ports.free().aggregator
    env = {"YZTC_AGGREGATOR_HASH_KEYS": json.dumps(hash_keys), "YZTC_AGGREGATOR_HASH_KEY_ID": current}
    stack.add(stack.aggregator(name, port, env=env))
    return port


async def test_requester_ids_are_stored_only_as_keyed_tags_and_survive_a_key_rotation(make_stack, tmp_path):
    stack = make_stack(write_scenario(tmp_path / "scenario.json", [PHONE, NEW_PHONE, CODE_PHONE], {}))
    requester = requester_for(PHONE)
    query_id = (await submit_many(stack, [PHONE]))[PHONE]
    # A code sent before the rotation, to be presented after it.
    async with channel(stack) as ch:
        api = account_query_pb2_grpc.AccountQueryServiceStub(ch)
        request = pb.RequestVerificationCodeRequest(phone=CODE_PHONE, requester_id=requester_for(CODE_PHONE))
        assert (await outcome(api.RequestVerificationCode(request, timeout=10))).code == "OK"
    code = await latest_code(stack, CODE_PHONE)

    stored = _stored(stack)
    # What the review found: the id itself, and the unkeyed hash of the quota slots.
    assert requester not in stored
    assert hashlib.sha256(f"wechat-demo\0{requester}".encode()).hexdigest()[:24] not in stored
    assert PHONE not in stored
    client, db = database(stack)
    try:
        record = db["work"].find_one({"_id": query_id}) or db["queries"].find_one({"_id": query_id})
        assert record is not None and "requester_id" not in record
        assert record["requester"].startswith("h1.") and record["phone_hash"].startswith("h1.")
        assert {d["_id"][:3] for d in db["phones"].find()} == {"h1."}
        claim_ids = [d["_id"] for d in db["claims"].find()]
        assert {i.split(":")[1][:3] for i in claim_ids if i.startswith(("v:", "r:"))} == {"h1."}
        assert any(i.startswith("r:") for i in claim_ids)  # wechat-demo limits requesters
    finally:
        client.close()

    # The runbook's rotation: h2 current, h1 kept beside it.
    h1 = secrets.symmetric_key(stack.keys_dir, "hash-h1")
    rotated = _replica(stack, "aggregator-rotated", {"h1": h1, "h2": H2}, "h2")
    async with channel(stack, rotated) as ch:
        api = account_query_pb2_grpc.AccountQueryServiceStub(ch)
        # The query made under h1 is still its requester's, and no one else's.
        own = await outcome(api.GetQuery(pb.GetQueryRequest(query_id=query_id, requester_id=requester), timeout=10))
        assert own.code == "OK" and own.answer.query_id == query_id
        other = await outcome(api.GetQuery(pb.GetQueryRequest(query_id=query_id, requester_id="someone"), timeout=10))
        assert other.code == "NOT_FOUND"
        # The phone's limits counted under h1 hold: a code was sent moments ago.
        again = await outcome(
            api.RequestVerificationCode(pb.RequestVerificationCodeRequest(phone=PHONE, requester_id=requester))
        )
        assert (again.status, again.code) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "RATE_LIMITED")
        # A phone new to the service starts under the current key.
        fresh = await outcome(
            api.RequestVerificationCode(
                pb.RequestVerificationCodeRequest(phone=NEW_PHONE, requester_id=requester_for(NEW_PHONE))
            )
        )
        assert fresh.code == "OK"
        # The code sent under h1 (bound to its requester under h1) is still good.
        submitted = await outcome(
            api.SubmitQuery(
                pb.SubmitQueryRequest(
                    phone=CODE_PHONE, id_last6="12345X", code=code, consent=True, requester_id=requester_for(CODE_PHONE)
                ),
                timeout=10,
            )
        )
        assert submitted.code == "OK" and submitted.answer.query_id
    client, db = database(stack)
    try:
        assert sorted(d["_id"][:3] for d in db["phones"].find()) == ["h1.", "h1.", "h2."]
    finally:
        client.close()

    # What keeping h1 prevents: a replica without it knows neither the
    # requester's query nor the phone's limits.
    dropped = _replica(stack, "aggregator-h2-only", {"h2": H2}, "h2")
    async with channel(stack, dropped) as ch:
        api = account_query_pb2_grpc.AccountQueryServiceStub(ch)
        own = await outcome(api.GetQuery(pb.GetQueryRequest(query_id=query_id, requester_id=requester), timeout=10))
        assert own.code == "NOT_FOUND"
        again = await outcome(
            api.RequestVerificationCode(pb.RequestVerificationCodeRequest(phone=PHONE, requester_id=requester))
        )
        assert again.code == "OK"
