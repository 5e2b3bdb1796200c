"""L6: the gateway stored client addresses and user ids as bare SHA-256
(`sha256(rule\\0ip)`: an IPv4 address is recovered by hashing all 2^32), and
its hash could not be rotated. Now every address, user id and session id is
stored only as an HMAC under a secret key that carries its key id, and a
rotation (new key current, old one previous) keeps every limit counted."""

from __future__ import annotations

import base64
import hashlib
import json
import os

import pytest
from aiohttp.test_utils import TestClient

from gateway.keys import HASHER, MONGO
from simulators.scenario import parse_scenario
from tests.integration.conftest import gateways, keys  # noqa: F401  (fixtures)
from tests.integration.gateways import Gateways
from tests.integration.test_gateway_aggregator import StubAggregator

USER = "2088000000000321"
SCENARIO = parse_scenario({"alipay": {"auth_codes": {"code-user": USER}}})
K1 = base64.b64encode(os.urandom(32)).decode()
K2 = base64.b64encode(os.urandom(32)).decode()
PHONE = {"phone": "13800138000"}
CLIENT_IP = "127.0.0.1"  # the test client's address: the peer the gateway sees


async def _backends(gateways: Gateways) -> dict[str, str]:
    service = await gateways.aggregator(StubAggregator())
    simulator = await gateways.alipay(SCENARIO)
    return {"aggregator_target": f"127.0.0.1:{service.port}", "alipay_url": str(simulator.make_url("/gateway.do"))}


async def _login(gateway: TestClient) -> tuple[int, str | None]:
    response = await gateway.post("/api/v1/sessions", json={"auth_code": "code-user"})
    body = await response.json()
    return response.status, body.get("token")


async def _everything(gateway: TestClient) -> str:
    """Every document of every collection the gateway wrote, as one text."""
    db = gateway.app[MONGO].get_default_database()
    docs = {}
    for name in await db.list_collection_names():
        docs[name] = await db[name].find().to_list()
    return json.dumps(docs, default=str)


async def test_no_address_or_user_id_is_stored_in_the_clear_or_unkeyed(gateways: Gateways) -> None:  # noqa: F811
    gateway = await gateways.start(**await _backends(gateways), hash_keys={"k1": K1}, hash_key_id="k1")
    status, token = await _login(gateway)
    assert status == 200
    auth = {"Authorization": f"Bearer {token}"}
    assert (await gateway.post("/api/v1/verification-codes", json=PHONE, headers=auth)).status == 202
    assert (await gateway.get("/api/v1/queries/q1", headers=auth)).status == 404

    stored = await _everything(gateway)
    assert "rate_limit_slots" in stored and "sessions" in stored
    session = hashlib.sha256(token.encode()).hexdigest()
    for value in (CLIENT_IP, USER):
        assert value not in stored
    # What the review found: the bare SHA-256 of each rule and subject.
    for rule in ("ip_requests", "ip_codes", "ip_logins", "user_requests", "user_sessions", "session_codes"):
        for subject in (CLIENT_IP, USER, session):
            bare = hashlib.sha256(f"{rule}\0{subject}".encode()).hexdigest()[:32]
            assert bare not in stored
    # Every slot names the key its hash was made with.
    db = gateway.app[MONGO].get_default_database()
    slot_ids = [d["_id"] for d in await db["rate_limit_slots"].find().to_list()]
    assert slot_ids and all(s.split(":")[3].startswith("k1.") for s in slot_ids)
    (doc,) = await db["sessions"].find().to_list()
    assert doc["user"].startswith("k1.")


@pytest.mark.parametrize("keep_previous", [True, False])
async def test_rotating_the_key_keeps_the_limits(gateways: Gateways, keep_previous: bool) -> None:  # noqa: F811
    backends = await _backends(gateways)
    limits = {"limit_user_sessions": "2/3600"}
    before = await gateways.start(**backends, **limits, hash_keys={"k1": K1}, hash_key_id="k1")
    assert [(await _login(before))[0] for _ in range(2)] == [200, 200]
    assert (await _login(before))[0] == 429

    # The runbook's rotation: k2 becomes current, k1 stays as previous.
    rotated_keys = {"k1": K1, "k2": K2} if keep_previous else {"k2": K2}
    after = await gateways.start(**backends, **limits, hash_keys=rotated_keys, hash_key_id="k2")
    assert after.app[HASHER].current == "k2"
    status, _ = await _login(after)
    if keep_previous:
        assert status == 429  # the two logins under k1 still count
    else:
        # Without the previous key the limit starts afresh: what keeping it prevents.
        assert status == 200
