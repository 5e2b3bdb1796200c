"""The whole query flow with grpcurl as channel `wechat-demo`, as the
channel guide shows it: list through reflection, code, submit, get."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time

from devstack.stack import ROOT
from tests.e2e.conftest import latest_code

GRPCURL = ROOT / ".tools" / "bin" / "grpcurl"
PHONE = "13900139000"
REQUESTER = "grpcurl-user-1"  # the channel's id of the person (CONTRACT: required on every call)


def grpcurl(stack, *args: str, data: dict | None = None) -> subprocess.CompletedProcess:
    if not GRPCURL.exists():
        subprocess.run(["make", "grpcurl"], cwd=ROOT, check=True)
    pki = stack.pki_dir
    command = [
        str(GRPCURL),
        "-cacert",
        str(pki / "ca.pem"),
        "-cert",
        str(pki / "wechat-demo.pem"),
        "-key",
        str(pki / "wechat-demo-key.pem"),
    ]
    if data is not None:
        command += ["-d", json.dumps(data)]
    command += [f"127.0.0.1:{stack.ports.aggregator}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=30)


async def test_query_flow_with_grpcurl(stack, scenario):
    listed = grpcurl(stack, "list")
    assert listed.returncode == 0, listed.stderr
    assert "yztc.v1.AccountQueryService" in listed.stdout.split()
    assert "grpc.health.v1.Health" in listed.stdout.split()

    described = grpcurl(stack, "describe", "yztc.v1.AccountQueryService")
    assert "rpc SubmitQuery" in described.stdout

    sent = grpcurl(
        stack, "yztc.v1.AccountQueryService/RequestVerificationCode", data={"phone": PHONE, "requester_id": REQUESTER}
    )
    assert sent.returncode == 0, sent.stderr
    assert json.loads(sent.stdout) == {"resend_after": 60}, sent.stdout
    code = await latest_code(stack, PHONE)

    id6 = next(s["id_last6"] for s in scenario["subscribers"] if s["phone"] == PHONE)
    submitted = grpcurl(
        stack,
        "yztc.v1.AccountQueryService/SubmitQuery",
        data={"phone": PHONE, "id_last6": id6, "code": code, "consent": True, "requester_id": REQUESTER},
    )
    assert submitted.returncode == 0, submitted.stderr
    query_id = json.loads(submitted.stdout)["query_id"]

    deadline = time.monotonic() + 30
    while True:
        got = grpcurl(
            stack, "yztc.v1.AccountQueryService/GetQuery", data={"query_id": query_id, "requester_id": REQUESTER}
        )
        assert got.returncode == 0, got.stderr
        query = json.loads(got.stdout)
        if query["status"] == "QUERY_STATUS_COMPLETED":
            break
        assert time.monotonic() < deadline
        await asyncio.sleep(0.3)
    assert query["phone"] == "139****9000"
    assert len(query["enterprises"]) == 8
    # grpcurl leaves zero values out of its JSON: every company answered 0.
    assert all(e["state"] == "ENTERPRISE_STATE_DONE" and e.get("count", 0) == 0 for e in query["enterprises"])

    refused = grpcurl(
        stack,
        "yztc.v1.AccountQueryService/SubmitQuery",
        data={"phone": "12", "consent": True, "requester_id": REQUESTER},
    )
    assert refused.returncode != 0 and "InvalidArgument" in refused.stderr
    # Without a requester_id nothing is read (CONTRACT: required on every call).
    anonymous = grpcurl(stack, "yztc.v1.AccountQueryService/GetQuery", data={"query_id": query_id})
    assert anonymous.returncode != 0 and "InvalidArgument" in anonymous.stderr
