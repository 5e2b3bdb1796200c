"""The happy path over HTTP, as the mini-program walks it: session, code by
SMS, query, result SMS from 10699000, and the query COMPLETED with the
scenario's counts."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp

from tests.e2e.conftest import expected_counts, latest_code, messages_for, traces_dir

PHONE = "13800138000"


async def _wait_completed(http, base, headers, query_id, timeout=60.0):
    deadline = time.monotonic() + timeout
    while True:
        async with http.get(f"{base}/api/v1/queries/{query_id}", headers=headers) as response:
            assert response.status == 200
            query = await response.json()
        if query["status"] != "IN_PROGRESS" and query["sms"]["state"] != "PENDING":
            return query
        assert time.monotonic() < deadline, f"query still {query['status']}"
        await asyncio.sleep(0.2)


async def test_happy_path_over_http(stack, scenario):
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
    assert query["sms"]["state"] in ("SENT", "DELIVERED")
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
    for company, (total, _) in expected.items():
        assert f"{names[company]}{total}个" in sms["text"]
    assert "解绑与明细查询" in sms["text"]

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
