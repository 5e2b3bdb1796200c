"""The fan-out engine: runs each open query's rounds under a lease
(work_queue.py), asking each due company through its policy
(company_calls.py), and ends each query in exactly one result SMS.

Push, with the database as the safety net (issue 12): the accepting replica
hands the query it just inserted to `adopt`, and the round starts on that
value (no scan, claim or read). When no part is pending, or the 48-hour
deadline is near, the result SMS goes to the notifier at once (it submits
before answering, and de-duplicates on the message id `result:<query id>`),
then the final record is written (query_store.Recorder, batched) and the
work item deleted. Zero database round trips lie between the last company
answer and the notifier's submit.

The scan (`_dispatch`) only finds work whose owner died, whose next company
retry is due, or that overflowed `max_in_flight`; idle, it looks once every
`poll_interval` seconds. A crash anywhere repeats at most a round, never the
SMS: the message id makes a repeated hand-over answer from the notifier's
record, and the companies are asked with our query id as their idempotency
key.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import heapq
import logging
import random
from collections.abc import Callable

import grpc
from opentelemetry import trace

from aggregator import round_rules, sms_text
from aggregator.catalogue import Enterprise
from aggregator.company_calls import Answer, CompanyCaller
from aggregator.metrics import Metrics
from aggregator.personal_data import PhoneProtector
from aggregator.policy import backoff
from aggregator.query_store import IN_PROGRESS, Part, Query, QueryStore, Recorder
from aggregator.work_queue import OWNED_GEN, WorkQueue
from yztc import telemetry
from yztc.replicas import Replicas
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
        replicas: Replicas,
        queries: QueryStore,
        recorder: Recorder,
        callers: dict[str, CompanyCaller],
        notifier: sms_notifier_pb2_grpc.SmsNotifierStub,
        protector: PhoneProtector,
        catalogue: list[Enterprise],
        metrics: Metrics,
        max_in_flight: int = 200,
        poll_interval: float = 1.0,
        inline_wait: float = 2.0,
        round_budget: float = 10.0,
        flush_after: float = 0.3,
        late_window: dt.timedelta = dt.timedelta(hours=24),
        notifier_timeout: float = 5.0,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        rng: random.Random | None = None,
    ) -> None:
        self._queue = queue
        self._replicas = replicas
        replicas.on_identity_lost(self._lose_everything)
        self._queries = queries
        self._recorder = recorder
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
        # The open queries this replica owns, and when each is next due.
        self._owned: dict[str, tuple[Query, int]] = {}
        self._due: list[tuple[dt.datetime, str]] = []  # a heap
        self._next: dict[str, dt.datetime] = {}  # set by a round, queued when its task ends
        self._wake = asyncio.Event()
        self._stopping = False
        self._loops: list[asyncio.Task] = []

    # -- life -------------------------------------------------------------

    def start(self) -> None:
        self._loops = [
            asyncio.create_task(self._dispatch(), name="engine-dispatch"),
            asyncio.create_task(self._watch_owners(), name="engine-takeover"),
        ]

    def adopt(self, query: Query, gen: int = OWNED_GEN) -> None:
        """Takes a query this replica owns (just inserted by the intake, or
        taken over) into its schedule; its round starts when due and a
        place is free."""
        self._owned[query.id] = (query, gen)
        heapq.heappush(self._due, (self._clock(), query.id))
        self._wake.set()

    async def stop(self) -> None:
        """Stop, cancelling rounds in flight: another replica (or this one,
        restarted) takes the queries over and repeats those rounds."""
        self._stopping = True
        for task in [*self._loops, *self._active.values()]:
            task.cancel()
        await asyncio.gather(*self._loops, *self._active.values(), return_exceptions=True)

    # -- dispatching ----------------------------------------------------------

    async def _dispatch(self) -> None:
        """Starts the rounds of owned queries as they fall due, up to
        max_in_flight at once; sleeps until the next is due or work arrives."""
        while not self._stopping:
            self._wake.clear()
            if not self._queue.may_write():
                try:
                    await self._replicas.ensure_fresh()  # may drop what we own: _lose_everything
                except Exception as error:  # the database is away: nothing can be written
                    log.warning("heartbeat failed", extra={"fields": {"error": type(error).__name__}})
                    await asyncio.sleep(self._poll_interval)
                    continue
            now = self._clock()
            while self._due and len(self._active) - len(self._parked) < self._max_in_flight:
                at, qid = self._due[0]
                if at > now:
                    break
                heapq.heappop(self._due)
                owned = self._owned.get(qid)
                if owned is not None and qid not in self._active:
                    self._start(*owned)
            timeout = self._poll_interval
            if self._due and len(self._active) - len(self._parked) < self._max_in_flight:
                timeout = min(timeout, max(0.0, (self._due[0][0] - now).total_seconds()))
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=timeout)
            except TimeoutError:
                pass

    def _lose_everything(self) -> None:
        """Our heartbeat went stale (yztc/replicas.py): what we own may be
        taken over by now. Stop it all; under our new id we take over what
        nobody else has (our old id is an orphan owner like any other)."""
        if self._owned:
            log.warning("ownership lost", extra={"fields": {"queries": len(self._owned)}})
        for task in self._active.values():
            task.cancel()
        self._owned.clear()
        self._due.clear()
        self._next.clear()

    async def _watch_owners(self) -> None:
        """Every heartbeat period: if a replica has gone since the last look
        (or at start), take over the queries it owned. The scan of `work`
        happens only then."""
        known: set[str] | None = None
        retry_scan = False
        while not self._stopping:
            try:
                await self._replicas.ensure_fresh()
                alive = await self._replicas.alive()
                if known is None or known - alive or retry_scan:
                    retry_scan = await self._take_over(alive)
                known = alive
                self._metrics.backlog = len(self._owned)
                oldest = min((q.created_at for q, _ in self._owned.values()), default=None)
                self._metrics.oldest_age_seconds = (self._clock() - oldest).total_seconds() if oldest else 0.0
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the database may be away; next beat
                log.warning("takeover check failed", extra={"fields": {"error": type(error).__name__}})
                retry_scan = True
            await asyncio.sleep(self._replicas.beat)

    async def _take_over(self, alive: set[str]) -> bool:
        """Claims every orphan query; True if some could not be claimed yet
        (a claimer died half-way: its generation is skipped a lease later)."""
        orphans = await self._queue.orphans(alive)
        missed = 0
        for doc in orphans:
            if doc["_id"] in self._owned:
                continue
            gen = await self._queue.take_over(doc, self._clock())
            if gen is None:
                missed += 1
                continue
            query = Query.from_doc(doc)
            query.tag_requester(self._protector.hasher)
            self.adopt(query, gen)
        if orphans:
            log.warning("queries taken over", extra={"fields": {"found": len(orphans), "missed": missed}})
        return missed > 0

    def _start(self, query: Query, gen: int) -> None:
        task = asyncio.create_task(self._work(query, gen), name=f"round-{query.id}")
        self._active[query.id] = task
        task.add_done_callback(lambda _t: self._finished(query.id))

    def _finished(self, query_id: str) -> None:
        self._active.pop(query_id, None)
        self._parked.discard(query_id)
        at = self._next.pop(query_id, None)
        if at is not None and query_id in self._owned:
            heapq.heappush(self._due, (at, query_id))
        self._wake.set()

    # -- one round ---------------------------------------------------------

    async def _work(self, query: Query, gen: int) -> None:
        qid = query.id
        if gen > OWNED_GEN and await self._queries.record_exists(qid):
            # Taken over after a crash between the final record and the
            # work item's delete: only the delete is left to do.
            await self._queue.drop(qid)
            return self._schedule(query, gen, None)
        # Our own writes to the document go one at a time: FerretDB applies an
        # update as a read then a whole-document write, so a straggler's
        # progress write racing the round's last write could undo it.
        writes = asyncio.Lock()
        try:
            # Rounds continue the accepting request's trace when it was
            # sampled, and record nothing otherwise (one decision per query).
            parent = telemetry.context_from_carrier(query.trace)
            if parent is None:
                await self._round(query, gen, writes)
            else:
                with tracer.start_as_current_span("query.round", context=parent, attributes={"yztc.query_id": qid}):
                    await self._round(query, gen, writes)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("round failed", extra={"fields": {"query_id": qid}})
            # The database or something unforeseen: try the round again later.
            self._schedule(query, gen, self._clock() + dt.timedelta(seconds=backoff(1, 1.0, 30.0, self._rng)))

    def _schedule(self, query: Query, gen: int, at: dt.datetime | None) -> None:
        """The query's next round at `at`, or, with None, it is done here.
        (Queued when this round's task has ended: `_finished`.)"""
        if at is None or self._stopping:
            self._owned.pop(query.id, None)
            return
        if query.id in self._owned:
            self._next[query.id] = at

    async def _round(self, query: Query, gen: int, writes: asyncio.Lock) -> None:
        qid = query.id
        phone = self._protector.decrypt(query.phone_box, qid)
        parts = query.companies
        started = self._clock()
        due = round_rules.due_companies(parts, self._callers.keys(), started)
        changes: dict = {}
        if due:
            tasks = {asyncio.create_task(self._ask(qid, cid, phone, parts[cid])): cid for cid in due}
            done, waiting = await asyncio.wait(tasks, timeout=self._flush_after)
            if waiting:
                # Stragglers: record who has answered so far, then wait for the rest.
                progress = {f"companies.{tasks[t]}": t.result().to_doc() for t in done}
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
                changes[f"companies.{cid}"] = parts[cid].to_doc()

        now = self._clock()
        if query.status == IN_PROGRESS:
            status = round_rules.decide_status(parts, now, query.finalize_at)
            if status != IN_PROGRESS:
                query.status, query.completed_at = status, now
                changes.update(status=status, completed_at=now)
                self._metrics.query_finished(status)
                log.info("query finished", extra={"fields": {"query_id": qid, "status": status}})

        if query.status != IN_PROGRESS and not query.sms.handed_over:
            query.sms.attempts += 1
            # The first hand-over of the accepting replica's own round is
            # surely the first: the notifier then skips its record look-up.
            attempt = 1 if gen == OWNED_GEN and query.sms.attempts == 1 else query.sms.attempts + 1
            state = await self._hand_over(query.sms.message_id, phone, parts, attempt)
            changes["sms.attempts"] = query.sms.attempts
            if state is None:  # the notifier is away: keep the results, try again soon
                retry = now + dt.timedelta(seconds=backoff(query.sms.attempts, 1.0, 30.0, self._rng))
                async with writes:
                    kept = await self._queue.end_round(qid, gen, changes, retry, self._clock())
                return self._schedule(query, gen, retry if kept else None)
            query.sms.handed_over, query.sms.state = True, state
            self._metrics.result_sms_handed_over(query.status, state, query.created_at, query.deliver_by, self._clock())
            changes.update({"sms.handed_over": True, "sms.state": state})

        next_at = round_rules.next_round_at(
            parts, self._callers.keys(), query.status, now, query.finalize_at, query.deliver_by + self._late_window
        )
        if next_at is None:
            query.open = False
            async with writes:
                if not self._queue.may_write():
                    return self._lost(qid, {})
                await self._recorder.finish(query.to_doc())
            return self._schedule(query, gen, None)
        async with writes:
            if not await self._queue.end_round(qid, gen, changes, next_at, self._clock()):
                return self._lost(qid, {})
        self._schedule(query, gen, next_at)

    def _lost(self, qid: str, tasks: dict) -> None:
        log.warning("ownership lost", extra={"fields": {"query_id": qid}})
        self._owned.pop(qid, None)
        for task in tasks:
            task.cancel()

    async def _ask(self, qid: str, cid: str, phone: str, part: Part) -> Part:
        """Ask one company until it answers, or its next try is not soon."""
        caller = self._callers[cid]
        round_end = self._clock() + dt.timedelta(seconds=self._round_budget)
        while True:
            answer: Answer = await caller.ask(qid, phone, part.ticket, part.attempts)
            now = self._clock()
            wait = round_rules.apply_answer(part, answer, caller.policy, now, self._rng)
            if wait is None:
                return part
            if wait > self._inline_wait or part.next_at > round_end:
                return part
            await asyncio.sleep(wait)

    async def _hand_over(self, message_id: str, phone: str, parts: dict[str, Part], attempt: int) -> str | None:
        counts = {cid: (p.count if p.state == "DONE" else None) for cid, p in parts.items()}
        apps = {
            cid: [sms_text.AppCount(str(a["name"]), int(a["count"])) for a in p.apps]
            for cid, p in parts.items()
            if p.state == "DONE" and p.apps
        }
        text = sms_text.result_text(phone, self._catalogue, counts, apps)
        try:
            status = await self._notifier.Send(
                sms_notifier_pb2.SendRequest(message_id=message_id, dest=phone, text=text, attempt=attempt),
                timeout=self._notifier_timeout,
                metadata=telemetry.outgoing_metadata(),
            )
        except grpc.aio.AioRpcError as error:
            log.warning("result SMS not handed over", extra={"fields": {"grpc": error.code().name}})
            return None
        return SMS_STATES.get(status.state, "PENDING")
