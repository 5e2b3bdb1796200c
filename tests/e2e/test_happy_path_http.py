"""The happy path over HTTP, as the mini-program walks it: session, code by
SMS, query, result SMS from 10699000, and the query COMPLETED with the
scenario's counts and its SMS DELIVERED; with the notifier on SMPP 3.4 (the
default) and on CMPP 3.0 (YZTC_NOTIFIER_SMSC_PROTOCOL=cmpp30, as `make run`
takes it from the environment)."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Iterator

import aiohttp
import pytest

from devstack.stack import Ports, Stack
from tests.e2e.conftest import SCENARIO, expected_counts, latest_code, messages_for, traces_dir

PHONE = "13800138000"


@pytest.fixture(scope="module")
def cmpp_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The stack as conftest's `stack` (every query traced), with the notifier
    told to speak CMPP 3.0 the way `make run` is: by the environment."""
    var = tmp_path_factory.mktemp("cmpp-stack")
    (var / "traces").mkdir()
    stack = Stack(
        var,
        Ports.free(),
        scenario=str(SCENARIO),
        extra_env={
            "YZTC_TRACES_EXPORTER": "console",
            "YZTC_TRACES_FILE": str(var / "traces" / "{service}.jsonl"),
            "YZTC_TRACES_SAMPLE_RATIO": "1.0",
        },
        environ={**os.environ, "YZTC_NOTIFIER_SMSC_PROTOCOL": "cmpp30"},
    )
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture(params=["smpp34", "cmpp30"])
def either_stack(request: pytest.FixtureRequest) -> tuple[str, Stack]:
    """(protocol, a running stack whose notifier speaks it)."""
    return request.param, request.getfixturevalue("stack" if request.param == "smpp34" else "cmpp_stack")


async def _centre_counters(stack: Stack) -> dict[str, int]:
    """The SMS-centre simulator's session counters (GET /sim/smpp: SMPP binds
    and receipts, CMPP connects and status reports)."""
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{stack.ports.sim_smsc}/sim/smpp") as response:
            assert response.status == 200
            return await response.json()


async def _wait_completed(http, base, headers, query_id, timeout=60.0):
    deadline = time.monotonic() + timeout
    while True:
        async with http.get(f"{base}/api/v1/queries/{query_id}", headers=headers) as response:
            assert response.status == 200
            query = await response.json()
        # Done, and the SMS settled by the centre's receipts (SENT is not final).
        if query["status"] != "IN_PROGRESS" and query["sms"]["state"] not in ("PENDING", "SENT"):
            return query
        assert time.monotonic() < deadline, f"query still {query['status']}, SMS {query['sms']['state']}"
        await asyncio.sleep(0.2)


async def test_happy_path_over_http(either_stack, scenario):
    protocol, stack = either_stack
    base = f"http://127.0.0.1:{stack.ports.gateway}"
    id_last6 = next(s["id_last6"] for s in scenario["subscribers"] if s["phone"] == PHONE)
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{base}/api/v1/sessions", json={"auth_code": "demo-auth-code"}) as r:
            assert r.status == 200, await r.text()
            session = await r.json()
        assert session["expires_in"] > 0
        headers = {"Authorization": f"Bearer {session['token']}"}

        async with http.post(f"{base}/api/v1/verification-codes", json={"phone": PHONE}, headers=headers) as r:
            assert r.status == 202, await r.text()
            assert (await r.json())["resend_after"] > 0
        code = await latest_code(stack, PHONE)

        body = {"phone": "+86 138-0013-8000", "id_last6": id_last6.lower(), "code": code, "consent": True}
        async with http.post(f"{base}/api/v1/queries", json=body, headers=headers) as r:
            assert r.status == 202, await r.text()
            accepted = await r.json()
        assert accepted["status"] == "IN_PROGRESS" and accepted["deliver_by"]

        query = await _wait_completed(http, base, headers, accepted["query_id"])

        # The phone cannot be queried again within 24 hours.
        async with http.post(f"{base}/api/v1/queries", json=body, headers=headers) as r:
            assert r.status == 429
            error = (await r.json())["error"]
            assert error["code"] == "QUERY_LIMITED" and 86000 < error["retry_after"] <= 86400
            assert int(r.headers["Retry-After"]) == error["retry_after"]

        # Another user of the mini-program cannot see this query.
        async with http.post(f"{base}/api/v1/sessions", json={"auth_code": "demo-auth-code-2"}) as r:
            other = {"Authorization": f"Bearer {(await r.json())['token']}"}
        async with http.get(f"{base}/api/v1/queries/{accepted['query_id']}", headers=other) as r:
            assert r.status == 404

    assert query["status"] == "COMPLETED"
    assert query["phone"] == "138****8000"
    assert query["sms"]["state"] == "DELIVERED"
    expected = expected_counts(scenario, PHONE)
    assert [e["id"] for e in query["enterprises"]] == list(expected)
    for enterprise in query["enterprises"]:
        total, apps = expected[enterprise["id"]]
        assert enterprise["state"] == "DONE"
        assert enterprise["count"] == total
        assert {a["name"]: a["count"] for a in enterprise["apps"]} == apps

    results = [m for m in await messages_for(stack, PHONE) if "关联的互联网账号" in m["text"]]
    assert len(results) == 1
    sms = results[0]
    assert sms["source"] == "10699000"
    assert "138****8000" in sms["text"] and PHONE not in sms["text"]
    names = {e["id"]: e["name"] for e in query["enterprises"]}
    for company, (total, apps) in expected.items():
        split = "（" + "，".join(f"{app}{n}个" for app, n in apps.items()) + "）" if apps and total else ""
        assert f"{names[company]}{total}个{split}" in sms["text"]  # 腾讯3个（微信1个，QQ2个）
    assert "解绑与明细查询" in sms["text"]

    # It went over the protocol asked for, and the start-up table says so.
    counters = await _centre_counters(stack)
    notifier_line = next(line for line in stack.describe().splitlines() if line.split()[0] == "sms_notifier")
    if protocol == "cmpp30":
        assert counters.get("cmpp_connects", 0) >= 1 and counters.get("binds", 0) == 0, counters
        assert counters.get("cmpp_reports", 0) >= sms["segments"], counters  # one report per part
        assert "SMS centre over CMPP 3.0 to cmpp://" in notifier_line
    else:
        assert counters.get("binds", 0) >= 1 and counters.get("cmpp_connects", 0) == 0, counters
        assert counters.get("receipts", 0) >= sms["segments"], counters
        assert "SMS centre over SMPP 3.4 to smpp://" in notifier_line

    await _assert_one_trace(stack, accepted["query_id"], id_last6)


async def _assert_one_trace(stack, query_id: str, id_last6: str) -> None:
    """The query made one trace, with spans from the gateway, the aggregator,
    company connectors and the notifier; and no span carries the phone."""
    await asyncio.sleep(1.0)  # batch exporters flush every 200 ms
    spans = []
    for path in traces_dir(stack).glob("*.jsonl"):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                spans.append(json.loads(line))
    fanout = [s for s in spans if s["attributes"].get("yztc.query_id") == query_id and s["name"] == "query.round"]
    assert fanout, "no round span for the query"
    trace_id = fanout[0]["context"]["trace_id"]
    services = {s["resource"]["attributes"]["service.name"] for s in spans if s["context"]["trace_id"] == trace_id}
    assert "gateway" in services
    assert "aggregator" in services
    assert "sms_notifier" in services
    assert any(name.startswith("connector-") and name[10:] in ("tencent", "alipay", "douyin") for name in services)
    assert len([n for n in services if n.startswith("connector-")]) >= 9  # 8 companies + the operator
    everything = "\n".join(json.dumps(s, ensure_ascii=False) for s in spans)
    assert PHONE not in everything and id_last6 not in everything.upper()
