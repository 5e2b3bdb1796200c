"""The fan-out engine: works off due queries in acceptance order, one round
at a time under a lease (work_queue.py), asking each due company through its
policy (company_calls.py), and ends each query in exactly one result SMS.

A round: claim the query, ask every company whose part is due (polling an
async company and retrying short backoffs inline while the round lasts),
then write everything in one fenced update. When no part is pending, or the
48-hour deadline is near, the result SMS is handed to the notifier (which
de-duplicates on the message id `result:<query id>`) and the query is closed
in that same write. A crash anywhere repeats at most the round, never the
SMS: the message id makes a repeated hand-over a no-op, and the companies
are asked with our query id as their idempotency key.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
from collections.abc import Callable

import grpc
from opentelemetry import propagate, trace

from aggregator import sms_text
from aggregator.catalogue import Enterprise
from aggregator.company_calls import Answer, CompanyCaller
from aggregator.metrics import Metrics
from aggregator.personal_data import PhoneProtector
from aggregator.policy import backoff
from aggregator.query_store import COMPLETED, DONE, FAILED, IN_PROGRESS, PARTIAL, PENDING, QueryStore
from aggregator.work_queue import WorkQueue
from yztc.v1 import sms_notifier_pb2, sms_notifier_pb2_grpc

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)

SMS_STATES = {
    sms_notifier_pb2.SmsStatus.STATE_PENDING: "PENDING",
    sms_notifier_pb2.SmsStatus.STATE_SENT: "SENT",
    sms_notifier_pb2.SmsStatus.STATE_DELIVERED: "DELIVERED",
    sms_notifier_pb2.SmsStatus.STATE_FAILED: "FAILED",
}


class Engine:
    def __init__(
        self,
        *,
        queue: WorkQueue,
        queries: QueryStore,
        callers: dict[str, CompanyCaller],
        notifier: sms_notifier_pb2_grpc.SmsNotifierStub,
        protector: PhoneProtector,
        catalogue: list[Enterprise],
        metrics: Metrics,
        max_in_flight: int = 200,
        poll_interval: float = 0.1,
        inline_wait: float = 2.0,
        round_budget: float = 10.0,
        flush_after: float = 0.3,
        late_window: dt.timedelta = dt.timedelta(hours=24),
        notifier_timeout: float = 5.0,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        rng: random.Random | None = None,
    ) -> None:
        self._queue = queue
        self._queries = queries
        self._callers = callers
        self._notifier = notifier
        self._protector = protector
        self._catalogue = catalogue
        self._metrics = metrics
        self._max_in_flight = max_in_flight
        self._poll_interval = poll_interval
        self._inline_wait = inline_wait
        self._round_budget = round_budget
        self._flush_after = flush_after
        self._late_window = late_window
        self._notifier_timeout = notifier_timeout
        self._clock = clock
        self._rng = rng or random.Random()
        self._active: dict[str, asyncio.Task] = {}
        # Rounds whose answers so far are recorded and that only wait for a
        # slow company's calls: they do not count against max_in_flight (up
        # to a bound), so a hanging company does not stall everyone's rounds.
        self._parked: set[str] = set()
        self._wake = asyncio.Event()
        self._stopping = False
        self._loops: list[asyncio.Task] = []

    # -- life -------------------------------------------------------------

    def start(self) -> None:
        self._loops = [
            asyncio.create_task(self._dispatch(), name="engine-dispatch"),
            asyncio.create_task(self._watch_backlog(), name="engine-backlog"),
        ]

    def wake(self) -> None:
        """New work was accepted here: look now rather than at the next poll."""
        self._wake.set()

    async def stop(self) -> None:
        """Stop taking work and cancel rounds in flight; their leases run out
        and another replica (or this one, restarted) repeats those rounds."""
        self._stopping = True
        for task in [*self._loops, *self._active.values()]:
            task.cancel()
        await asyncio.gather(*self._loops, *self._active.values(), return_exceptions=True)

    # -- dispatching -------------------------------------------------------

    async def _dispatch(self) -> None:
        while not self._stopping:
            free = self._max_in_flight - (len(self._active) - len(self._parked))
            found = 0
            if free > 0:
                try:
                    docs = await self._queue.due(self._clock(), limit=free + len(self._active))
                    docs = [d for d in docs if d["_id"] not in self._active][:free]
                    found = len(docs)
                    if docs:
                        await asyncio.gather(*(self._claim_and_start(d) for d in docs))
                except Exception as error:  # the database may be away; try again shortly
                    log.warning("dispatch failed", extra={"fields": {"error": type(error).__name__}})
            if found and found >= free:
                await asyncio.sleep(0)  # more may be due: look again at once
                continue
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self._poll_interval)
            except TimeoutError:
                pass

    async def _claim_and_start(self, item: dict) -> None:
        qid = item["_id"]
        gen = await self._queue.claim(item, self._clock())
        if gen is None or qid in self._active:
            return
        task = asyncio.create_task(self._work(qid, gen), name=f"round-{qid}")
        self._active[qid] = task
        task.add_done_callback(lambda _t: self._finished(qid))

    def _finished(self, query_id: str) -> None:
        self._active.pop(query_id, None)
        self._parked.discard(query_id)
        self._wake.set()

    async def _watch_backlog(self) -> None:
        while not self._stopping:
            try:
                count, oldest = await self._queue.backlog()
                self._metrics.backlog = count
                self._metrics.oldest_age_seconds = (
                    (self._clock() - oldest).total_seconds() if oldest else 0.0
                )
            except Exception:
                pass
            await asyncio.sleep(5.0)

    # -- one round ---------------------------------------------------------

    async def _work(self, qid: str, gen: int) -> None:
        doc = await self._queries.get(qid)
        if doc is None:  # an item whose query is gone (purged): nothing to do
            await self._queue.drop(qid)
            return
        # Our own writes to the document go one at a time: FerretDB applies an
        # update as a read then a whole-document write, so a lease renewal
        # racing the round's progress write could undo it.
        writes = asyncio.Lock()
        renewer = asyncio.create_task(self._renew(qid, gen, writes))
        try:
            parent = propagate.extract(doc.get("trace") or {})
            with tracer.start_as_current_span("query.round", context=parent, attributes={"yztc.query_id": qid}):
                await self._round(doc, gen, writes)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("round failed", extra={"fields": {"query_id": qid}})
        finally:
            renewer.cancel()
            self._queue.let_go(qid)

    async def _renew(self, qid: str, gen: int, writes: asyncio.Lock) -> None:
        period = self._queue.lease.total_seconds() / 3
        while True:
            await asyncio.sleep(period)
            async with writes:
                await self._queue.renew(qid, gen, self._clock())

    async def _round(self, doc: dict, gen: int, writes: asyncio.Lock) -> None:
        qid = doc["_id"]
        phone = self._protector.decrypt(doc["phone"], qid)
        parts: dict[str, dict] = doc["companies"]
        started = self._clock()
        due = [
            cid for cid, part in parts.items()
            if part["state"] == PENDING and cid in self._callers and part["next_at"] <= started
        ]
        changes: dict = {}
        if due:
            tasks = {asyncio.create_task(self._ask(qid, cid, phone, dict(parts[cid]))): cid for cid in due}
            done, waiting = await asyncio.wait(tasks, timeout=self._flush_after)
            if waiting:
                # Stragglers: record who has answered so far, then wait for the rest.
                progress = {f"companies.{tasks[t]}": t.result() for t in done}
                if progress:
                    async with writes:
                        kept = await self._queue.write(qid, gen, progress, self._clock())
                    if not kept:
                        return self._lost(qid, tasks)
                if len(self._parked) < self._max_in_flight * 4:
                    self._parked.add(qid)
                    self._wake.set()  # a round's place is free
                await asyncio.wait(waiting)
            for task, cid in tasks.items():
                parts[cid] = task.result()
                changes[f"companies.{cid}"] = parts[cid]

        now = self._clock()
        pending = [cid for cid, p in parts.items() if p["state"] == PENDING]
        status = doc["status"]
        if status == IN_PROGRESS:
            if not pending:
                status = COMPLETED if all(p["state"] == DONE for p in parts.values()) else PARTIAL
            elif now >= doc["finalize_at"]:
                status = PARTIAL
            if status != IN_PROGRESS:
                changes.update(status=status, completed_at=now)
                self._metrics.query_finished(status)
                log.info("query finished", extra={"fields": {"query_id": qid, "status": status}})

        if status != IN_PROGRESS and not doc["sms"]["handed_over"]:
            state = await self._hand_over(doc["sms"]["message_id"], phone, parts)
            if state is None:  # the notifier is away: keep the results, try again soon
                retry = now + dt.timedelta(seconds=backoff(1, 1.0, 30.0, self._rng))
                async with writes:
                    await self._queue.end_round(qid, gen, changes, retry, self._clock())
                return
            changes.update({"sms.handed_over": True, "sms.state": state})

        # Companies still pending that we can ask (one taken out of the
        # configuration is not waited for: it ends as 暂未返回).
        live = [cid for cid in pending if cid in self._callers]
        late_until = doc["deliver_by"] + self._late_window
        more = status == IN_PROGRESS or (live and now < late_until)
        if not more:
            changes["open"] = False
        next_at = None
        if more:
            # At the earliest company retry, never past the deadline (and,
            # once the SMS is out, late answers are still recorded).
            horizon = doc["finalize_at"] if status == IN_PROGRESS else late_until
            next_at = min([parts[cid]["next_at"] for cid in live] + [horizon])
        async with writes:
            if not await self._queue.end_round(qid, gen, changes, next_at, self._clock()):
                return self._lost(qid, {})

    def _lost(self, qid: str, tasks: dict) -> None:
        log.warning("lease lost", extra={"fields": {"query_id": qid}})
        for task in tasks:
            task.cancel()

    async def _ask(self, qid: str, cid: str, phone: str, part: dict) -> dict:
        """Ask one company until it answers, or its next try is not soon."""
        caller = self._callers[cid]
        round_end = self._clock() + dt.timedelta(seconds=self._round_budget)
        while True:
            answer: Answer = await caller.ask(qid, phone, part["ticket"], part["attempts"])
            now = self._clock()
            if answer.kind == "done":
                part.update(state=DONE, count=answer.count, apps=answer.apps, ticket="", next_at=now, error="")
                return part
            if answer.kind == "accepted":
                part["polls"] += 1
                part["ticket"] = answer.ticket
                wait = min(caller.policy.poll_max_seconds, caller.policy.poll_base_seconds * 1.5 ** (part["polls"] - 1))
            elif answer.kind == "retry":
                if answer.error != "CIRCUIT_OPEN":
                    part["attempts"] += 1
                part["error"] = answer.error
                wait = answer.retry_in
            elif part["ticket"]:
                # The company lost our ticket (e.g. restarted): ask afresh.
                part["ticket"] = ""
                part["attempts"] += 1
                wait = backoff(part["attempts"], caller.policy.backoff_base_seconds, caller.policy.backoff_max_seconds, self._rng)
            else:
                part.update(state=FAILED, error=answer.error, next_at=now)
                return part
            part["next_at"] = now + dt.timedelta(seconds=wait)
            if wait > self._inline_wait or part["next_at"] > round_end:
                return part
            await asyncio.sleep(wait)

    async def _hand_over(self, message_id: str, phone: str, parts: dict[str, dict]) -> str | None:
        counts = {cid: (p["count"] if p["state"] == DONE else None) for cid, p in parts.items()}
        text = sms_text.result_text(phone, self._catalogue, counts)
        try:
            status = await self._notifier.Send(
                sms_notifier_pb2.SendRequest(message_id=message_id, dest=phone, text=text),
                timeout=self._notifier_timeout,
            )
        except grpc.aio.AioRpcError as error:
            log.warning("result SMS not handed over", extra={"fields": {"grpc": error.code().name}})
            return None
        return SMS_STATES.get(status.state, "PENDING")
