"""The live gateway fuzzed by schemathesis from its own OpenAPI document.

The whole stack runs (devstack.Stack on free ports, its own data), and
schemathesis runs its four phases (examples, coverage, fuzzing, stateful)
against /api/v1/openapi.json with every check but `positive_data_acceptance`
(a schema cannot say which auth codes Alipay knows or which signatures are
Alipay's): no 5xx, every status, content type, header and body as the
document says, bad input refused, secured routes refusing missing auth.

To reach past "404 unknown query" and "400 not Alipay's signature", the
run gets real values to mix in (schemathesis dictionaries): two real
queries, the session user's own and another user's (which must stay 404),
and one real my.getPhoneNumber payload from the Alipay simulator. The run
is bounded by examples per operation and a fixed seed: about 10 s on an
idle machine of 2 cores, some 40 s when it is shared with other test runs.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import aiohttp

from tests.e2e.conftest_gateway import (  # noqa: F401  (gateway_stack is a fixture)
    alipay_simulator_url,
    gateway_stack,
    gateway_url,
    login,
    make_query,
)

MAX_EXAMPLES = 20
SEED = 20261201
# Every check schemathesis has, but the one a schema cannot make true (see above).
EXCLUDED_CHECKS = "positive_data_acceptance"


def _toml_list(values: list[str]) -> str:
    return "[" + ", ".join(json.dumps(v) for v in values) + "]"


async def _real_values(stack) -> dict[str, list[str]]:
    token = login(stack, "demo-auth-code")
    other = login(stack, "demo-auth-code-2")
    mine = await make_query(stack, token, "19200192000", "567890")
    theirs = await make_query(stack, other, "15000150000", "78901X")
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{alipay_simulator_url(stack)}/sim/phone-number-payloads", json={"phone": "13900139000"}
        ) as response:
            assert response.status == 200
            payload = await response.json()
    return {
        "token": [token],
        "query_ids": [mine, theirs],
        "responses": [payload["response"]],
        "signs": [payload["sign"]],
    }


def _config(values: dict[str, list[str]]) -> str:
    return f"""
[dictionaries.query_ids]
values = {_toml_list(values["query_ids"])}

[dictionaries.phone_responses]
values = {_toml_list(values["responses"])}

[dictionaries.phone_signs]
values = {_toml_list(values["signs"])}

[parameters]
"path.query_id" = {{ dictionary = "query_ids", probability = 0.5 }}
"body.response" = {{ dictionary = "phone_responses", probability = 0.5 }}
"body.sign" = {{ dictionary = "phone_signs", probability = 0.5 }}
"""


async def test_live_gateway_keeps_to_its_openapi_document(gateway_stack, tmp_path: Path):
    values = await _real_values(gateway_stack)
    config = tmp_path / "schemathesis.toml"
    config.write_text(_config(values), encoding="utf-8")
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(config),
        "run",
        f"{gateway_url(gateway_stack)}/api/v1/openapi.json",
        "--header",
        f"Authorization: Bearer {values['token'][0]}",
        "--phases",
        "examples,coverage,fuzzing,stateful",
        "--checks",
        "all",
        "--exclude-checks",
        EXCLUDED_CHECKS,
        # Logging out ends the one session every other operation is fuzzed
        # with (then each answers only 401); it is covered in
        # tests/integration/test_gateway_http.py.
        "--exclude-operation-id",
        "endSession",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        str(SEED),
        "--generation-database",
        "none",
        "--workers",
        "1",
        "--request-timeout",
        "10",
        "--no-color",
        "--report",
        "junit",
        "--report-dir",
        str(tmp_path / "report"),
    ]
    # cwd: schemathesis and Hypothesis leave their working files there.
    run = await asyncio.to_thread(subprocess.run, command, cwd=tmp_path, capture_output=True, text=True, timeout=180)
    report = run.stdout[-20000:] + run.stderr[-5000:]
    print(report)  # shown with -s, or by pytest on failure
    assert run.returncode == 0, report
    assert "Test cases:" in run.stdout and " failed" not in run.stdout.split("Test cases:")[1], report

    # The gateway's own access log agrees: no 5xx at all, and the real values
    # reached past validation (answers only they can give).
    answers = _access_log(gateway_stack)
    assert answers, "no access log lines"
    assert not [a for a in answers if a[1] >= 500], report
    assert ("/api/v1/queries/{query_id}", 200) in answers
    assert ("/api/v1/queries/{query_id}", 404) in answers
    assert ("/api/v1/phone-number", 200) in answers


def _access_log(stack) -> set[tuple[str, int]]:
    """(route, status) of every request the gateway logged."""
    seen = set()
    for line in (stack.var / "logs" / "gateway.log").read_text(encoding="utf-8").splitlines():
        if '"gateway.access"' in line:
            entry = json.loads(line)
            seen.add((entry["route"], entry["status"]))
    return seen
