"""Getting messages to the SMS centre: Send submits at once ("push"), and a
small lease-based queue is the safety net for what could not go at once.

Send (`Sender.send`), one task per message, which the gRPC handler awaits
behind `asyncio.shield` (a caller that cancels or dies mid-call cannot stop
it half-way, between the centre's answer and the record):

1. An attempt not known to be the first (`attempt` 0 or ≥ 2) first looks for
   the message: in memory, then its records (`s:`, `d:`, and `q:` in the
   fallback queue), and answers one it finds without sending anything; then
   it claims `a:{message_id}#{n}` (a unique insert). The first attempt
   (`attempt` 1) reads and writes nothing before submitting.
2. The parts (UCS-2, concatenation reference derived from the message id:
   message_records.udh_ref) go out pipelined: each takes its turn at the
   pacer (shared by every push and queue round of this replica) and is
   sent without waiting for the previous part's answer, at most `window`
   unanswered on the session. No part is submitted later than
   `push_seconds` (T_max) after the push began.
3. Every part accepted: one insert of `s:` and the `p:` look-ups, then SENT
   with the centre's ids. A part refused for good: `d:` FAILED, answered
   FAILED. Otherwise (not bound, throttled, a transient answer, the session
   lost, T_max reached): `q:{message_id}` in `sms_queue` with the sealed
   destination and text and the parts accepted so far, answered PENDING.

The fallback worker claims due `q:` items (yztc/lease_queue.py: a unique
lease document per generation), submits the parts not yet accepted the same
way, and ends each round with one write: `s:` (then the item goes), `d:`
FAILED, or the item updated with the parts now accepted and when to try
again (backoff, or a pause after throttling). Transient trouble for longer
than `give_up_after`: FAILED. The worker's scan runs every `poll_seconds`
(1 s by default) and at once when this replica queues something or binds.

Crash window. A part the centre accepted is recorded by the one write that
follows its answer; a notifier killed in between leaves no trace of it, and
the caller's next attempt (or the queue's next round) submits it again
under the same concatenation reference, so it joins its message on the
handset instead of making a second one (a one-part message does repeat).
A database that is away at that moment does not widen the window: the
SENT state is kept in memory and its record retried in the background,
and a repeated Send reaching this replica is answered from memory.

Memory: the state of the messages this replica sent (bounded, oldest
forgotten first), for Send repeats and GetStatus; receipts: settling.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import random
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from pymongo.errors import PyMongoError

from sms_notifier import message_records as records
from sms_notifier import smpp_status, ucs2_parts
from sms_notifier.message_records import FAILED, FINAL, PENDING, SENT, MessageState
from sms_notifier.message_store import MessageStore
from sms_notifier.metrics import Metrics
from sms_notifier.sealed_fields import Sealer, SealError
from sms_notifier.send_queue import SendQueue
from sms_notifier.send_rate import SendPacer
from sms_notifier.settling import Settler
from sms_notifier.smsc_session import SmscSession, SubmitAnswer

log = logging.getLogger(__name__)

# Messages whose state this replica remembers (Send repeats, GetStatus).
_REMEMBERED = 100_000
# Claims an attempt of unknown number walks past (each one an attempt that
# ended without a record: it died before the centre answered). A bound
# against a bug only.
_MAX_CLAIMS_WALKED = 50


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class Submitted:
    """How the submission of some parts went."""

    accepted: dict[int, str] = field(default_factory=dict)  # seq -> SMS centre id
    refused: SubmitAnswer | None = None  # the answer that stopped it (permanent first)
    cut: bool = False  # the deadline came before every part went

    @property
    def permanent(self) -> bool:
        return self.refused is not None and self.refused.verdict is smpp_status.Verdict.PERMANENT


class Sender:
    def __init__(
        self,
        store: MessageStore,
        queue: SendQueue,
        link: SmscSession,
        sealer: Sealer,
        pacer: SendPacer,
        metrics: Metrics,
        *,
        window: int,
        poll_seconds: float,
        push_seconds: float,
        record_wait: float,
        retry_min: float,
        retry_max: float,
        give_up_after: dt.timedelta,
        throttle_pause: float,
        retention: dt.timedelta,
        finals_batch_seconds: float = 0.05,
        receipt_window_seconds: float = 600.0,
        receipt_date_slack_seconds: float = 120.0,
        now: Callable[[], dt.datetime] = utc_now,
        rng: random.Random | None = None,
    ) -> None:
        self._store = store
        self._queue = queue
        self._link = link
        self._sealer = sealer
        self._pacer = pacer
        self._metrics = metrics
        self._window = window
        self._poll = poll_seconds
        self._push_seconds = push_seconds
        self._record_wait = record_wait
        self._retry_min, self._retry_max = retry_min, retry_max
        self._give_up_after = give_up_after
        self._throttle_pause = throttle_pause
        self._retention = retention
        self._now = now
        self._rng = rng or random.Random()
        self.settler = Settler(
            store,
            metrics,
            now=now,
            on_final=self._finalized,
            in_flight=self.in_flight,
            wait_for_parts=push_seconds + record_wait + 1.0,
            batch_seconds=finals_batch_seconds,
            window_seconds=receipt_window_seconds,
            date_slack=dt.timedelta(seconds=receipt_date_slack_seconds),
            key_of=link.key_of,
            query=link.query if link.can_query else None,
        )
        self._wake = asyncio.Event()
        self._known: OrderedDict[str, MessageState] = OrderedDict()
        self._pushing: dict[str, asyncio.Task[MessageState]] = {}
        self._working: dict[str, asyncio.Task] = {}  # queue rounds, by item id
        self._partial: OrderedDict[str, dict[int, str]] = OrderedDict()  # accepted parts not stored anywhere
        self._background: set[asyncio.Task] = set()
        self._tasks: list[asyncio.Task] = []

    def wake(self) -> None:
        """Something may be due now (a message queued, a free slot, a new session)."""
        self._wake.set()

    def in_flight(self) -> list[asyncio.Task]:
        return [*self._pushing.values(), *self._working.values()]

    async def start(self) -> None:
        await self.settler.start()
        self._tasks = [
            asyncio.create_task(self._dispatch(), name="sms-dispatch"),
            asyncio.create_task(self._housekeeping(), name="sms-housekeeping"),
        ]

    async def stop(self, grace: float = 3.0) -> None:
        """Stops claiming and lets pushes, rounds and background records in
        progress finish for `grace` seconds (cut off between a submit_sm and
        its record, a part would be sent again); what is still going then is
        abandoned: leases run out, callers try again."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        going = [*self.in_flight(), *self._background]
        if going:
            await asyncio.wait(going, timeout=grace)
        for task in going:
            task.cancel()
        await asyncio.gather(*going, return_exceptions=True)

    # -- Send ---------------------------------------------------------------------

    async def send(
        self, message_id: str, dest: str, parts: list[ucs2_parts.Part], text: str, attempt: int
    ) -> MessageState:
        """Submits the message now (see the module's docstring) and returns its
        state: SENT, PENDING (queued) or FAILED; a repeat returns the message
        as it stands. Raises PyMongoError when the database is needed and
        away (nothing was sent then, or what was is remembered here)."""
        known = self._known.get(message_id)
        if known is not None:
            # SENT or final here: answered from memory, database or not.
            return known if known.state != PENDING else await self._current(known)
        task = self._pushing.get(message_id)
        if task is None:
            task = asyncio.create_task(
                self._push(message_id, dest, parts, text, attempt), name=f"sms-push-{message_id}"
            )
            self._pushing[message_id] = task
            started = time.monotonic()
            task.add_done_callback(lambda t, mid=message_id: self._push_done(mid, t, started))
        return await asyncio.shield(task)

    def _push_done(self, message_id: str, task: asyncio.Task, started: float) -> None:
        self._pushing.pop(message_id, None)
        if not task.cancelled() and task.exception() is None:
            self._metrics.pushed(message_id, time.monotonic() - started, task.result().state)
        if not task.cancelled() and task.exception() is not None and not isinstance(task.exception(), PyMongoError):
            log.error("push failed", exc_info=task.exception(), extra={"fields": {"message_id": message_id}})

    async def status(self, message_id: str) -> MessageState | None:
        """GetStatus: memory, else the records (`s:`, `d:`, `q:`), by `_id`."""
        known = self._known.get(message_id)
        if known is not None:
            return await self._current(known)
        if message_id in self._pushing:
            return MessageState(message_id, PENDING)
        found = await self._store.state(message_id)
        if found is not None and found.state == SENT:
            found = await self.settler.decide_late(found)  # past its receipt window: decided now
        if found is not None and found.state in FINAL:
            self._remember(found)
        return found

    async def _current(self, known: MessageState) -> MessageState:
        """A remembered state, brought up to date where another replica may
        have moved it on: a final state is final; SENT may have been settled
        by a receipt that went to another replica; PENDING (queued) may have
        been sent by any replica's worker."""
        if known.state in FINAL:
            return known
        try:
            if known.state == SENT:
                final = await self._store.final(known.message_id)
                if final is not None:
                    known.state, known.reason = final["state"], final.get("reason", "")
                    return known
                return await self.settler.decide_late(known)
            found = await self._store.state(known.message_id)
        except PyMongoError:
            return known  # the database is away: what this replica knows
        if found is None:
            return known
        if found.state in FINAL:
            self._remember(found)
        return found

    async def _push(
        self, message_id: str, dest: str, parts: list[ucs2_parts.Part], text: str, attempt: int
    ) -> MessageState:
        segments = len(parts)
        if attempt != 1:
            found = await self._store.state(message_id)
            if found is not None:
                return found  # sent, queued or failed by an earlier attempt: not again
            held = await self._claim(message_id, attempt, segments)
            if held is not None:
                return held
        accepted = dict(self._partial.pop(message_id, {}))
        if not self._link.bound.is_set():
            self._metrics.failure("not_bound", final=False)
            return await self._fall_back(message_id, dest, text, segments, accepted, attempt, 0, "not_bound", 0.0)
        missing = [part for part in parts if part.seq not in accepted]
        submitted = await self._submit(message_id, dest, missing, time.monotonic() + self._push_seconds)
        accepted.update(submitted.accepted)
        if submitted.permanent:
            assert submitted.refused is not None
            return await self._fail(message_id, submitted.refused.reason, segments, 1, accepted)
        if len(accepted) == segments:
            return await self._sent(message_id, accepted, segments, records.udh_ref(message_id), attempt, 1)
        reason = submitted.refused.reason if submitted.refused else "deadline"
        delay = self._retry_delay(submitted.refused, 1)
        return await self._fall_back(message_id, dest, text, segments, accepted, attempt, 1, reason, delay)

    async def _claim(self, message_id: str, attempt: int, segments: int) -> MessageState | None:
        """Claims this attempt (None: won). An attempt of unknown number (0)
        walks past claims of attempts that ended without a record. A claim
        held by an attempt still under way: answered PENDING (that attempt
        sends it; GetStatus tells how it ended)."""
        n = attempt if attempt >= 2 else 0
        bound = dt.timedelta(seconds=self._push_seconds + self._record_wait)
        for _ in range(_MAX_CLAIMS_WALKED):
            holder = await self._store.claim_attempt(message_id, n, self._queue.owner, self._now())
            if holder is None:
                return None
            if not records.is_claim_stale(holder["at"], self._now(), bound):
                return MessageState(message_id, PENDING, segments=segments)
            found = await self._store.state(message_id)
            if found is not None:
                return found
            n += 1
        raise RuntimeError(f"{_MAX_CLAIMS_WALKED} attempts of one message ended without a record")

    # -- submitting parts (pushes and queue rounds alike) ----------------------------

    async def _submit(self, message_id: str, dest: str, parts: list[ucs2_parts.Part], deadline: float) -> Submitted:
        """Submits `parts` pipelined: in order, each after its turn at the
        pacer, none after `deadline` (time.monotonic()), none after an answer
        other than "accepted" came; then awaits every answer."""
        going: list[asyncio.Task[tuple[int, SubmitAnswer]]] = []
        cut = False
        for part in parts:
            if any(t.done() and t.result()[1].verdict is not smpp_status.Verdict.ACCEPTED for t in going):
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                cut = True
                break
            try:
                await asyncio.wait_for(self._pacer.acquire(), remaining)
            except TimeoutError:
                cut = True
                break
            going.append(asyncio.create_task(self._submit_part(message_id, dest, part, deadline)))
        results = sorted(await asyncio.gather(*going))
        outcome = Submitted(cut=cut)
        for seq, result in results:
            if result.verdict is smpp_status.Verdict.ACCEPTED:
                assert result.smsc_message_id is not None
                outcome.accepted[seq] = result.smsc_message_id
            elif outcome.refused is None or result.verdict is smpp_status.Verdict.PERMANENT and not outcome.permanent:
                outcome.refused = result
        return outcome

    async def _submit_part(
        self, message_id: str, dest: str, part: ucs2_parts.Part, deadline: float
    ) -> tuple[int, SubmitAnswer]:
        result = await self._link.submit(dest, part, deadline)
        verdict = result.verdict
        if verdict is smpp_status.Verdict.ACCEPTED:
            assert result.smsc_message_id is not None
            # Known here before any record: its receipt may come at once.
            self.settler.expect(message_id, result.smsc_message_id)
            self._metrics.submitted("accepted")
            self._pacer.accepted()
        elif verdict is smpp_status.Verdict.PERMANENT:
            self._metrics.submitted("permanent")
        elif result.error in ("deadline", "not_bound"):
            self._metrics.failure(result.error, final=False)  # nothing was sent
        else:
            self._metrics.submitted("connection_lost" if result.command_status is None else "transient")
            self._metrics.failure(result.reason, final=False)
            if result.throttled:
                self._pacer.throttled()
        return part.seq, result

    def _retry_delay(self, refused: SubmitAnswer | None, rounds: int) -> float:
        if refused is None:
            return 0.0  # out of time, not refused: due again at once
        if refused.throttled:
            return self._throttle_pause * (1 + self._rng.random())
        backoff = min(self._retry_max, self._retry_min * 2 ** min(max(rounds - 1, 0), 30))
        return backoff * (0.5 + self._rng.random() / 2)

    # -- how a push ends ------------------------------------------------------------

    async def _sent(
        self, message_id: str, accepted: dict[int, str], segments: int, ref: int, attempt: int, rounds: int
    ) -> MessageState:
        now = self._now()
        state = MessageState(message_id, SENT, segments, rounds, sorted(accepted.items()), sent_at=now)
        self._remember(state)
        self.settler.sent(message_id, state.smsc_ids, now)
        self._metrics.sent()
        log.debug("sent", extra={"fields": {"message_id": message_id, "segments": segments}})
        answer = dataclasses.replace(state)  # SENT, though a receipt may settle it before the record lands
        docs = records.sent_records(
            message_id,
            accepted,
            segments,
            ref,
            now,
            attempt,
            rounds,
            key_of=self.settler.key_of,
            part_at=self._part_times(message_id, accepted, now - dt.timedelta(seconds=self._push_seconds)),
        )
        await self._durably(message_id, lambda: self._store.record_sent(docs))
        return answer

    async def _fail(
        self, message_id: str, reason: str, segments: int, rounds: int, accepted: dict[int, str]
    ) -> MessageState:
        now = self._now()
        state = MessageState(message_id, FAILED, segments, rounds, sorted(accepted.items()), reason=reason)
        self._remember(state)
        self.settler.given_up(message_id)
        self._metrics.failure(reason, final=True)
        self._metrics.finished(FAILED)
        log.warning("sms failed", extra={"fields": {"message_id": message_id, "why": reason}})
        doc = records.final_record(message_id, FAILED, reason, now, segments=segments, rounds=rounds, parts=accepted)
        await self._durably(message_id, lambda: self._store.record_final(doc))
        return state

    async def _durably(self, message_id: str, write: Callable[[], Coroutine[Any, Any, Any]]) -> None:
        """Writes a record, waiting at most `record_wait` for it; a write that
        fails or takes longer goes on in the background until it lands (the
        state is in memory meanwhile)."""
        first = asyncio.ensure_future(write())
        try:
            await asyncio.wait_for(asyncio.shield(first), self._record_wait)
        except (TimeoutError, PyMongoError):
            self._in_background(self._write_later(message_id, first, write), f"sms-record-{message_id}")

    async def _write_later(
        self, message_id: str, first: asyncio.Future, write: Callable[[], Coroutine[Any, Any, Any]]
    ) -> None:
        try:
            await first
            return
        except PyMongoError:
            pass
        delay = 0.5
        while True:
            log.warning("record not written yet; retrying", extra={"fields": {"message_id": message_id}})
            await asyncio.sleep(delay)
            try:
                await write()
                return
            except PyMongoError:
                delay = min(delay * 2, 10.0)

    async def _fall_back(
        self,
        message_id: str,
        dest: str,
        text: str,
        segments: int,
        accepted: dict[int, str],
        attempt: int,
        rounds: int,
        reason: str,
        delay: float,
    ) -> MessageState:
        """Into the fallback queue, with what was accepted (never sent again)."""
        now = self._now()
        try:
            await self._queue.add_message(
                message_id,
                self._sealer.seal(message_id, dest, text),
                segments=segments,
                udh_ref=records.udh_ref(message_id),
                parts=accepted,
                rounds=rounds,
                attempt=attempt,
                last_error=reason,
                now=now,
                next_at=now + dt.timedelta(seconds=delay),
            )
        except PyMongoError:
            if accepted:
                # The caller gets an error and tries again; here, the parts
                # already accepted are not sent again.
                self._partial[message_id] = accepted
                while len(self._partial) > _REMEMBERED:
                    self._partial.popitem(last=False)
            raise
        state = MessageState(message_id, PENDING, segments, rounds, sorted(accepted.items()))
        self._remember(state)
        self.wake()
        log.debug("queued", extra={"fields": {"message_id": message_id, "why": reason}})
        return state

    def _part_times(self, message_id: str, accepted: dict[int, str], earliest: dt.datetime) -> dict[int, dt.datetime]:
        """When each part was accepted, as this replica saw it, else `earliest`
        (a lower bound: receipts are compared against it)."""
        times = {}
        for seq, smsc_id in accepted.items():
            at = self.settler.accepted_at(message_id, smsc_id)
            times[seq] = at if at is not None else earliest
        return times

    # -- memory -----------------------------------------------------------------------

    def _remember(self, state: MessageState) -> None:
        self._known[state.message_id] = state
        self._known.move_to_end(state.message_id)
        while len(self._known) > _REMEMBERED:
            self._known.popitem(last=False)

    def _finalized(self, message_id: str, state: str, reason: str) -> None:
        """From the settler: a message's receipts decided it."""
        known = self._known.get(message_id)
        if known is not None:
            known.state, known.reason = state, reason

    def _in_background(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- the fallback queue --------------------------------------------------------------

    async def _dispatch(self) -> None:
        while True:
            self._wake.clear()
            try:
                if self._link.bound.is_set():
                    await self._claim_due()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("claiming failed; trying again")
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self._poll)
            except TimeoutError:
                pass

    async def _claim_due(self) -> None:
        room = self._window - len(self._working)
        if room <= 0:
            return
        # One scan for a batch of rounds: on FerretDB every such query reads
        # the whole (small) queue.
        for item in await self._queue.due(self._now(), limit=room):
            if item["_id"] in self._working:
                continue
            gen = await self._queue.claim(item, self._now())
            if gen is None:
                continue  # another replica has it, or it moved on since the scan
            task = asyncio.create_task(self._round(item, gen), name=f"sms-round-{item['_id']}")
            self._working[item["_id"]] = task
            task.add_done_callback(lambda _t, item_id=item["_id"]: self._round_done(item_id))

    def _round_done(self, item_id: str) -> None:
        self._working.pop(item_id, None)
        self.wake()

    async def _round(self, item: dict, gen: int) -> None:
        item_id = item["_id"]
        message_id = records.message_of_queue_id(item_id)
        try:
            await self._work(item, gen, message_id)
        except asyncio.CancelledError:
            raise
        except Exception:
            # The database or something unforeseen: the lease runs out and
            # the message is tried again; what the item records is not lost.
            log.exception("round failed", extra={"fields": {"message_id": message_id}})
        finally:
            self._queue.let_go(item_id)

    async def _work(self, item: dict, gen: int, message_id: str) -> None:
        item_id = item["_id"]
        found = await self._store.state(message_id, with_queue=False)
        if found is not None:
            # Recorded already: by a holder that died before the item went.
            await self._queue.finish(item_id, gen)
            return
        accepted = {p["seq"]: p["smsc_id"] for p in item.get("parts", [])}
        rounds = item.get("rounds", 0) + 1
        segments = item["segments"]
        if self._now() - item["created_at"] > self._give_up_after:
            await self._fail_queued(
                item_id,
                gen,
                message_id,
                f"gave up after {item.get('last_error') or 'retries'}",
                segments,
                rounds - 1,
                accepted,
            )
            return
        try:
            dest, text = self._sealer.open(message_id, item["sealed"])
        except (SealError, KeyError) as error:
            await self._fail_queued(item_id, gen, message_id, f"unreadable: {error}", segments, rounds, accepted)
            return
        parts = ucs2_parts.split(text, item["udh_ref"], max_parts=255)
        missing = [part for part in parts if part.seq not in accepted]
        # A round stays well inside its lease: no renewal is needed.
        deadline = time.monotonic() + self._queue.lease.total_seconds() / 3
        submitted = await self._submit(message_id, dest, missing, deadline)
        accepted.update(submitted.accepted)
        if submitted.permanent:
            assert submitted.refused is not None
            await self._fail_queued(item_id, gen, message_id, submitted.refused.reason, segments, rounds, accepted)
            return
        if len(accepted) < len(parts):
            reason = submitted.refused.reason if submitted.refused else "deadline"
            delay = self._retry_delay(submitted.refused, rounds)
            await self._queue.release_with(
                item_id, gen, self._now() + dt.timedelta(seconds=delay), accepted, rounds, reason
            )
            log.debug("to retry", extra={"fields": {"message_id": message_id, "why": reason, "round": rounds}})
            return
        now = self._now()
        state = MessageState(message_id, SENT, len(parts), rounds, sorted(accepted.items()), sent_at=now)
        self._remember(state)
        self.settler.sent(message_id, state.smsc_ids, now)
        self._metrics.sent()
        # A part accepted in an earlier round elsewhere went after the item was made.
        earliest = item["created_at"] - dt.timedelta(seconds=self._push_seconds)
        docs = records.sent_records(
            message_id,
            accepted,
            len(parts),
            item["udh_ref"],
            now,
            item.get("attempt", 0),
            rounds,
            key_of=self.settler.key_of,
            part_at=self._part_times(message_id, accepted, earliest),
        )
        await self._record_in_lease(message_id, lambda: self._store.record_sent(docs))
        await self._queue.finish(item_id, gen)

    async def _fail_queued(
        self, item_id: str, gen: int, message_id: str, reason: str, segments: int, rounds: int, accepted: dict[int, str]
    ) -> None:
        if not await self._queue.holds(item_id, gen):
            return
        state = MessageState(message_id, FAILED, segments, rounds, sorted(accepted.items()), reason=reason)
        doc = records.final_record(
            message_id, FAILED, reason, self._now(), segments=segments, rounds=rounds, parts=accepted
        )
        await self._record_in_lease(message_id, lambda: self._store.record_final(doc))
        await self._queue.finish(item_id, gen)
        self._remember(state)
        self.settler.given_up(message_id)
        self._metrics.failure(reason, final=True)
        self._metrics.finished(FAILED)
        log.warning("sms failed", extra={"fields": {"message_id": message_id, "why": reason}})

    async def _record_in_lease(self, message_id: str, write: Callable[[], Coroutine[Any, Any, Any]]) -> None:
        """A round's record after the centre answered: retried on database
        errors while the lease surely lasts (another replica cannot take the
        item meanwhile), so a database restart does not send parts again."""
        give_up_at = time.monotonic() + self._queue.lease.total_seconds() / 2
        delay = 0.2
        while True:
            try:
                await write()
                return
            except PyMongoError as error:
                if time.monotonic() + delay > give_up_at:
                    raise
                log.warning(
                    "record not written yet; retrying",
                    extra={"fields": {"message_id": message_id, "error": type(error).__name__}},
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    # -- housekeeping -----------------------------------------------------------------

    async def _housekeeping(self) -> None:
        """Metrics every few seconds; every minute, forget old lease
        documents; every hour, delete what is past retention and receipts
        kept aside past their age. Each replica
        does it; doing it twice is harmless."""
        rounds = 0
        while True:
            try:
                await self.refresh_metrics()
                if rounds % 12 == 0:
                    await self._queue.forget_leases(self._now() - max(self._queue.lease * 2, dt.timedelta(minutes=1)))
                if rounds % 720 == 0:
                    await self._store.purge(self._now() - self._retention)
                    await self._store.purge_kept_receipts(self._now())
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("housekeeping failed")
            rounds += 1
            await asyncio.sleep(5.0)

    async def refresh_metrics(self) -> None:
        depth, oldest = await self._queue.backlog()
        self._metrics.queue_depth = depth + len(self._pushing)
        self._metrics.oldest_pending_age_seconds = max(0.0, (self._now() - oldest).total_seconds()) if oldest else 0.0
