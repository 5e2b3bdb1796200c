"""Submitting prepared queries through a load-client process, over the channel
API or the HTTP API, and reading its records back.

A record is [phone, due, sent, done, outcome, query_id] (load_client.py):
times in Unix seconds, outcome "OK" when the query was accepted.
"""

from __future__ import annotations

from collections import Counter

import aiohttp

from bench import processes
from bench.scenario import AUTH_CODES, ID_LAST6, REQUESTER
from bench.stack_under_test import StackUnderTest

PHONE, DUE, SENT, DONE, OUTCOME, QUERY_ID = range(6)


def items(phones: list[str], codes: dict[str, str], owners: dict[str, str] | None = None) -> list[list[str]]:
    """[phone, code] work items; with `owners` ({phone: bearer token}, for
    HTTP) [phone, code, token]: the code counts only for the user who asked."""
    if owners is not None:
        return [[p, codes[p], owners[p]] for p in phones if p in codes]
    return [[p, codes[p]] for p in phones if p in codes]


async def over_grpc(stack: StackUnderTest, work: list[list[str]], **mode) -> list[list]:
    """mode: concurrency=N [seconds=S] (closed loop) or rate=R [max_in_flight=M] (open loop)."""
    job = {
        "kind": "grpc_submit",
        "target": stack.aggregator_target,
        "pki": str(stack.pki_dir),
        "items": work,
        "id_last6": ID_LAST6,
        "requester_id": REQUESTER,
        **mode,
    }
    return (await processes.run_load_async(job))["records"]


async def over_http(stack: StackUnderTest, tokens: list[str], work: list[list[str]], **mode) -> list[list]:
    job = {
        "kind": "http_submit",
        "url": f"{stack.gateway_url}/api/v1/queries",
        "tokens": tokens,
        "items": work,
        "id_last6": ID_LAST6,
        **mode,
    }
    return (await processes.run_load_async(job))["records"]


async def sessions(stack: StackUnderTest) -> list[str]:
    """A bearer token for each bench user (POST /api/v1/sessions)."""
    tokens = []
    async with aiohttp.ClientSession() as http:
        for auth_code in AUTH_CODES:
            async with http.post(f"{stack.gateway_url}/api/v1/sessions", json={"auth_code": auth_code}) as response:
                if response.status != 200:
                    raise RuntimeError(f"no session for {auth_code}: {response.status} {await response.text()}")
                tokens.append((await response.json())["token"])
    return tokens


def accepted(records: list[list]) -> list[list]:
    return [r for r in records if r[OUTCOME] == "OK"]


def refusals(records: list[list]) -> dict[str, int]:
    return dict(Counter(r[OUTCOME] for r in records if r[OUTCOME] != "OK"))


def require_accepted(records: list[list], what: str) -> list[list]:
    """The accepted records, in acceptance order; an error naming the
    refusals when none was accepted (the stack is not working)."""
    ok = sorted(accepted(records), key=lambda r: r[DONE])
    if not ok:
        raise RuntimeError(f"{what}: none of {len(records)} queries accepted; refusals {refusals(records)}")
    return ok
