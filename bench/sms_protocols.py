"""The SMS path over each protocol the notifier speaks: SMPP 3.4 and CMPP
3.0 (issue 14), on the same stack and the same SMS-centre simulator, the
notifier restarted with YZTC_NOTIFIER_SMSC_PROTOCOL between the two (as
`make run` takes it), then back to SMPP for the measurements after.

For each protocol:

- the ceiling, the link alone (sms_link_client.py): the notifier's own link
  class, in a process of its own, sends the same result texts to the same
  simulator face with the notifier's settings, every message at once; its
  messages/s and its CPU per message (submits and receipts);
- through the stack: queries submitted over the channel API (codes prepared
  first), closed loop, until every result SMS is at the SMS centre and a
  moment after (the receipts recorded): result SMS/s (first submission to
  last result SMS) and the notifier's CPU per result SMS (its CPU at rest
  over the same span taken off);
- settling: each query's `sms_state` read back over GetQuery (after the CPU
  window: a GetQuery may ask the notifier) until final or `SETTLE_TIMEOUT`;
  the share DELIVERED.

Headlines (report.py), for `smpp` and `cmpp`: result SMS/s through the
stack / the link alone's messages/s; the notifier's CPU per result SMS /
the link alone's CPU per message; DELIVERED / result SMS sent.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

import aiohttp
import grpc

from bench import proc_stats, verification_codes
from bench.profiles import Profile
from bench.scenario import ID_LAST6, REQUESTER, PhoneBook
from bench.sms_centre import RESULT_MARK, SmsCentre
from bench.stack_under_test import NOTIFIER, StackUnderTest
from bench.stats import rate
from devstack.stack import ROOT
from yztc.v1 import account_query_pb2 as pb
from yztc.v1 import account_query_pb2_grpc

# The protocols, as YZTC_NOTIFIER_SMSC_PROTOCOL names them, and their
# headline suffix. The first is the stack's own (no restart).
PROTOCOLS = {"smpp34": "smpp", "cmpp30": "cmpp"}
# After the last result SMS: receipts come at once from the simulator
# (receipt_delay_ms 0), the notifier writes final states every 50 ms.
RECEIPTS_SETTLE_SECONDS = 1.0
SETTLE_TIMEOUT = 30.0
FINAL = {pb.SMS_STATE_DELIVERED: "DELIVERED", pb.SMS_STATE_FAILED: "FAILED"}
# Destinations of the link alone's messages: a segment the bench's phones never use.
LINK_SEGMENT = "139"


async def measure(stack: StackUnderTest, book: PhoneBook, profile: Profile) -> dict:
    found: dict = {
        "how": "per protocol on the same stack, the notifier restarted with YZTC_NOTIFIER_SMSC_PROTOCOL; "
        "ceiling: the notifier's own link class alone (no service, database or pacing) sending the same "
        "texts to the same simulator face, every message at once within its window",
    }
    try:
        for protocol in PROTOCOLS:
            await asyncio.to_thread(stack.use_sms_protocol, protocol)
            found[protocol] = await _one(stack, book, profile, protocol)
    finally:
        await asyncio.to_thread(stack.use_sms_protocol, next(iter(PROTOCOLS)))
    return found


async def _one(stack: StackUnderTest, book: PhoneBook, profile: Profile, protocol: str) -> dict:
    pids = {NOTIFIER: stack.pids()[NOTIFIER]}
    await asyncio.sleep(profile.settle_seconds)  # the notifier may have just started: let it settle
    before, at = proc_stats.cpu(pids), time.monotonic()
    await asyncio.sleep(profile.idle_seconds)
    idle_ms_per_s = proc_stats.rates(before, proc_stats.cpu(pids), time.monotonic() - at)[NOTIFIER]

    phones = book.take(profile.sms_queries)
    codes = await verification_codes.prepare(stack, phones, profile.concurrency)
    async with aiohttp.ClientSession() as http, stack.channel() as channel:
        api = account_query_pb2_grpc.AccountQueryServiceStub(channel)
        sms = SmsCentre(http, stack.ports.sim_smsc)
        counters_before = await _centre_counters(http, stack)
        cpu_before, started = proc_stats.cpu(pids), time.monotonic()
        first = time.time()
        accepted = await _submit(api, phones, codes, profile.concurrency)
        results = await sms.wait_results(list(accepted), timeout=120 + len(accepted) / 5)
        await asyncio.sleep(RECEIPTS_SETTLE_SECONDS)
        cpu_used = proc_stats.cpu_between(cpu_before, proc_stats.cpu(pids))[NOTIFIER]
        window = time.monotonic() - started
        counters_after = await _centre_counters(http, stack)
        states = await _final_states(api, {p: accepted[p] for p in results})
        texts = [m["text"] for p in results for m in await sms.messages(p) if RESULT_MARK in m["text"]]
        submits = {p: await stack.submits(http, p) for p in list(results)[:1]}

    done = len(results)
    notifier_ms = max(0.0, cpu_used - idle_ms_per_s * window / 1000) * 1000 / done if done else float("nan")
    link = await _link_alone(stack, texts, profile.sms_link_messages)
    link_per_s = rate(link["messages"], 0.0, link["seconds"]) if link["accepted_parts"] == link["parts"] else None
    link_cpu_ms = link["cpu_seconds"] * 1000 / link["messages"] if link["messages"] else float("nan")
    delivered = sum(s == "DELIVERED" for s in states.values())
    stack_per_s = rate(done, first, max(results.values(), default=first))
    return {
        "protocol": protocol,
        "through_stack": {
            "queries": len(phones),
            "accepted": len(accepted),
            "result_sms": done,
            "parts_per_sms": _parts(next(iter(submits.values()), [])),
            "seconds": round(max(results.values(), default=first) - first, 3),
            "result_sms_per_s": round(stack_per_s, 2),
            "notifier_cpu_ms_per_sms": round(notifier_ms, 4),
            "notifier_idle_cpu_ms_per_s": idle_ms_per_s,
            "cpu_window_seconds": round(window, 2),
            "states": {s: sum(v == s for v in states.values()) for s in sorted(set(states.values()))},
            "delivered": delivered,
            # Receipts the centre had acknowledged over each face meanwhile:
            # which protocol the notifier really spoke.
            "receipts_over": {
                face: counters_after.get(key, 0) - counters_before.get(key, 0)
                for face, key in (("smpp", "receipts"), ("cmpp", "cmpp_reports"))
            },
        },
        "link_alone": {
            **link,
            "messages_per_s": round(link_per_s, 2) if link_per_s is not None else None,
            "cpu_ms_per_message": round(link_cpu_ms, 4),
        },
        "rate_vs_link": round(stack_per_s / link_per_s, 4) if link_per_s else None,
        "cpu_vs_link_floor": round(notifier_ms / link_cpu_ms, 2) if link_cpu_ms else None,
        "delivered_ratio": round(delivered / done, 4) if done else None,
    }


async def _submit(api, phones: list[str], codes: dict[str, str], concurrency: int) -> dict[str, str]:
    """{phone: query id} of the queries accepted, `concurrency` in flight."""
    gate = asyncio.Semaphore(concurrency)
    accepted: dict[str, str] = {}

    async def one(phone: str) -> None:
        async with gate:
            try:
                answer = await api.SubmitQuery(
                    pb.SubmitQueryRequest(
                        phone=phone,
                        id_last6=ID_LAST6,
                        code=codes[phone],
                        consent=True,
                        requester_id=REQUESTER,
                    ),
                    timeout=30,
                )
            except grpc.aio.AioRpcError:
                return
            accepted[phone] = answer.query_id

    await asyncio.gather(*(one(p) for p in phones if p in codes))
    if not accepted:
        raise RuntimeError(f"sms: none of {len(phones)} queries accepted")
    return accepted


async def _final_states(api, queries: dict[str, str]) -> dict[str, str]:
    """{phone: DELIVERED, FAILED, or the state still shown at SETTLE_TIMEOUT}."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    states: dict[str, str] = {}
    waiting = dict(queries)
    while waiting:
        for phone, query_id in list(waiting.items()):
            try:
                query = await api.GetQuery(pb.GetQueryRequest(query_id=query_id, requester_id=REQUESTER), timeout=10)
            except grpc.aio.AioRpcError as error:
                states[phone] = f"error {error.code().name}"
                continue
            states[phone] = FINAL.get(query.sms_state) or pb.SmsState.Name(query.sms_state).removeprefix("SMS_STATE_")
            if query.sms_state in FINAL:
                del waiting[phone]
        if not waiting or time.monotonic() > deadline:
            return states
        await asyncio.sleep(0.2)
    return states


async def _centre_counters(http: aiohttp.ClientSession, stack: StackUnderTest) -> dict[str, int]:
    """The SMS-centre simulator's session counters (GET /sim/smpp: SMPP
    `receipts`, CMPP `cmpp_reports` acknowledged, among others)."""
    async with http.get(f"http://127.0.0.1:{stack.ports.sim_smsc}/sim/smpp") as response:
        response.raise_for_status()
        return await response.json()


def _parts(submits: list[dict]) -> int | None:
    """Parts of one result SMS: its submits carrying a UDH (one when none did)."""
    if not submits:
        return None
    return sum(1 for s in submits if s.get("udh")) or 1


async def _link_alone(stack: StackUnderTest, texts: list[str], messages: int) -> dict:
    """The ceiling: sms_link_client.py with the notifier's environment,
    sending `messages` of the result texts (in turn) to LINK_SEGMENT phones."""
    if not texts:
        raise RuntimeError("sms: no result SMS text to send over the link alone")
    job = {
        "texts": [texts[n % len(texts)] for n in range(messages)],
        "dests": [f"{LINK_SEGMENT}{n:08d}" for n in range(messages)],
        "receipt_timeout": 30,
    }
    env = {k: v for k, v in stack.notifier_env().items() if not k.startswith("YZTC_TRACES")}
    env["YZTC_TRACES_EXPORTER"] = "none"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.sms_link_client",
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(json.dumps(job).encode()), 180)
    if process.returncode != 0:
        raise RuntimeError(f"sms link client failed: {err.decode(errors='replace')[-2000:]}")
    return json.loads(out)
