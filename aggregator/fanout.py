"""Fan-out of one accepted query: ask every company through its connector,
record each answer in the query document, then hand the result SMS to the
notifier and close the query.

Walking-skeleton version: one asyncio task per query in the replica that
accepted it, resumed at start-up for queries left IN_PROGRESS. Leases,
per-company policy and the 48-hour deadline come with the engine issue.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable

import grpc
from opentelemetry import trace

from aggregator import sms_text
from aggregator.catalogue import Enterprise
from aggregator.links import Links
from aggregator.personal_data import PhoneProtector
from aggregator.query_store import COMPLETED, DONE, FAILED, PARTIAL, QueryStore
from yztc.v1 import company_connector_pb2 as cc_pb2
from yztc.v1 import sms_notifier_pb2

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)

RETRYABLE = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
}
MAX_POLLS = 300
Outcome = cc_pb2.CountAccountsResponse.Outcome
SMS_STATES = {
    sms_notifier_pb2.SmsStatus.STATE_PENDING: "PENDING",
    sms_notifier_pb2.SmsStatus.STATE_SENT: "SENT",
    sms_notifier_pb2.SmsStatus.STATE_DELIVERED: "DELIVERED",
    sms_notifier_pb2.SmsStatus.STATE_FAILED: "FAILED",
}


class Fanout:
    def __init__(
        self,
        *,
        queries: QueryStore,
        links: Links,
        protector: PhoneProtector,
        catalogue: list[Enterprise],
        call_timeout: float,
        max_attempts: int,
        poll_interval: float,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self._queries = queries
        self._links = links
        self._protector = protector
        self._catalogue = catalogue
        self._timeout = call_timeout
        self._max_attempts = max_attempts
        self._poll = poll_interval
        self._clock = clock
        self._tasks: set[asyncio.Task] = set()

    def start(self, query_id: str) -> None:
        task = asyncio.create_task(self.run(query_id), name=f"fanout-{query_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def resume_all(self) -> None:
        for doc in await self._queries.in_progress():
            self.start(doc["_id"])

    async def stop(self) -> None:
        """Cancel running fan-outs; their queries stay IN_PROGRESS and are resumed on the next start."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def run(self, query_id: str) -> None:
        with tracer.start_as_current_span("fanout", attributes={"yztc.query_id": query_id}):
            try:
                await self._run(query_id)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("fan-out failed", extra={"fields": {"query_id": query_id}})

    async def _run(self, query_id: str) -> None:
        doc = await self._queries.get(query_id)
        if doc is None or doc["status"] != "IN_PROGRESS":
            return
        phone = self._protector.decrypt(doc["phone"], query_id)
        pending = [e.id for e in self._catalogue if doc["companies"].get(e.id, {}).get("state") == "PENDING"]
        parts = await asyncio.gather(*(self._ask(query_id, cid, phone) for cid in pending))
        for cid, part in zip(pending, parts):
            await self._queries.record_company(query_id, cid, part)
            doc["companies"][cid] = part

        counts = {
            cid: part["count"] if part["state"] == DONE else None
            for cid, part in doc["companies"].items()
        }
        status = COMPLETED if all(c is not None for c in counts.values()) else PARTIAL
        text = sms_text.result_text(phone, self._catalogue, counts)
        sms_state = await self._send_result(doc["sms"]["message_id"], phone, text)
        await self._queries.finish(query_id, status, sms_state, self._clock())
        await self._queries.release_phone(doc["phone_hash"], query_id)
        log.info("query finished", extra={"fields": {"query_id": query_id, "status": status}})

    async def _ask(self, query_id: str, company: str, phone: str) -> dict:
        stub = self._links.companies[company]
        attempts = polls = 0
        ticket = ""
        while attempts < self._max_attempts and polls < MAX_POLLS:
            attempts += 1
            try:
                if ticket:
                    answer = await stub.PollCount(
                        cc_pb2.PollCountRequest(query_id=query_id, ticket=ticket),
                        timeout=self._timeout,
                    )
                else:
                    answer = await stub.CountAccounts(
                        cc_pb2.CountAccountsRequest(query_id=query_id, phone=phone),
                        timeout=self._timeout,
                    )
            except grpc.aio.AioRpcError as error:
                log.warning(
                    "company call failed",
                    extra={"fields": {"query_id": query_id, "company": company, "grpc": error.code().name}},
                )
                if error.code() not in RETRYABLE:
                    break
                await asyncio.sleep(self._poll * 2 ** attempts)
                continue
            if answer.outcome == Outcome.OUTCOME_DONE:
                return {
                    "state": DONE,
                    "count": answer.count,
                    "apps": [{"name": a.name, "count": a.count} for a in answer.apps],
                    "attempts": attempts,
                }
            # ACCEPTED: the company counts asynchronously; poll its ticket.
            # A pending poll is progress, not a failed attempt; polls have their own cap.
            ticket = answer.ticket or ticket
            attempts -= 1
            polls += 1
            await asyncio.sleep(self._poll)
        return {"state": FAILED, "count": None, "apps": [], "attempts": attempts}

    async def _send_result(self, message_id: str, phone: str, text: str) -> str:
        try:
            status = await self._links.notifier.Send(
                sms_notifier_pb2.SendRequest(message_id=message_id, dest=phone, text=text),
                timeout=self._timeout,
            )
        except grpc.aio.AioRpcError as error:
            log.warning("result SMS not handed over", extra={"fields": {"grpc": error.code().name}})
            return "PENDING"
        return SMS_STATES.get(status.state, "PENDING")
