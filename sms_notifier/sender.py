"""The worker of each replica: claims due messages from the shared queue,
submits their parts over the SMPP link at the configured pace, records each
part's outcome, and turns delivery receipts into DELIVERED or FAILED.

A message is worked in rounds. A round submits, in order, the parts not yet
accepted (so after a failure only what is missing goes again, under the same
concatenation reference, and the handset still joins the parts). It ends:

- every part accepted: SENT; destination and text are deleted;
- a transient answer (throttled, queue full, system error) or a lost
  session: the message is due again after a backoff, for any replica;
- a permanent answer (invalid destination, …): FAILED at once, no retry;
- transient trouble for longer than `give_up_after`: FAILED.

Delivery is at least once per part: a part whose submit_sm_resp never came
(the session broke first) is submitted again, because the centre may or may
not have taken it. A dropped session with nothing unanswered, the common
case, sends nothing twice. A part the centre took is recorded before
anything else; if the database is away at that moment the record is retried
while the round's lease lasts (no other replica can claim the message
meanwhile), so a database restart does not send the part again. Only a
notifier killed between a submit_sm_resp and its record, or a database away
for longer than a lease, can still repeat a part.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
import time
from collections import deque
from collections.abc import Callable

from pymongo.errors import PyMongoError

from sms_notifier import smpp_status, ucs2_parts
from sms_notifier.message_store import DELIVERED, FAILED, PENDING, SENT, MessageStore
from sms_notifier.metrics import Metrics
from sms_notifier.receipts import DELIVERED as DELIVERED_STATS
from sms_notifier.receipts import Receipt
from sms_notifier.sealed_fields import Sealer, SealError
from sms_notifier.send_queue import SendQueue
from sms_notifier.send_rate import SendPacer
from sms_notifier.smsc_link import SmscLink, SubmitResult

log = logging.getLogger(__name__)

_THROTTLING = frozenset({smpp_status.ESME_RTHROTTLED, smpp_status.ESME_RMSGQFUL})
# A queue item whose message is still missing after this was left by a Send
# that failed between its two inserts; it is dropped.
_ORPHAN_AFTER = dt.timedelta(seconds=60)
# Parts whose message this replica remembers for their receipts.
_REMEMBERED_PARTS = 100_000
# How long the receipts of a long message's first parts are held in memory
# for the others before they are kept aside in the database.
_IN_HAND_SECONDS = 10.0


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Sender:
    def __init__(
        self,
        store: MessageStore,
        queue: SendQueue,
        link: SmscLink,
        sealer: Sealer,
        pacer: SendPacer,
        metrics: Metrics,
        *,
        window: int,
        poll_seconds: float,
        retry_min: float,
        retry_max: float,
        give_up_after: dt.timedelta,
        throttle_pause: float,
        retention: dt.timedelta,
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
        self._retry_min, self._retry_max = retry_min, retry_max
        self._give_up_after = give_up_after
        self._throttle_pause = throttle_pause
        self._retention = retention
        self._now = now
        self._rng = rng or random.Random()
        self._wake = asyncio.Event()
        self._working: dict[str, asyncio.Task] = {}
        self._submitted: dict[str, str] = {}  # SMS centre's part id -> message id, ours, awaiting receipts
        self._in_hand: dict[str, dict[str, str]] = {}  # message id -> its parts' receipts held so far
        self._spilling: set[asyncio.Task] = set()
        self._candidates: deque[dict] = deque()
        self._candidates_read_at = 0.0
        self._tasks: list[asyncio.Task] = []

    def wake(self) -> None:
        """Something may be due now (a new message, a free slot, a new session)."""
        self._wake.set()

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._dispatch(), name="sms-dispatch"),
            asyncio.create_task(self._housekeeping(), name="sms-housekeeping"),
        ]

    async def stop(self, grace: float = 3.0) -> None:
        """Stops claiming and lets rounds in progress finish for `grace`
        seconds (a round cut off between a submit_sm and its answer would
        have that part sent again); rounds still going then are abandoned:
        their leases run out and another replica takes them up."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        rounds = list(self._working.values())
        if rounds:
            await asyncio.wait(rounds, timeout=grace)
        for task in rounds:
            task.cancel()
        await asyncio.gather(*rounds, return_exceptions=True)

    async def spill_held(self) -> None:
        """At shutdown, once the link has handed over its last receipts:
        receipts held in memory go aside into the database, where any
        replica finds them."""
        for message_id in list(self._in_hand):
            await self._spill(message_id)

    # -- claiming ---------------------------------------------------------------

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
        while len(self._working) < self._window:
            if not self._candidates or time.monotonic() - self._candidates_read_at > self._poll:
                # One scan of the queue for a batch of rounds, not one per
                # round: on FerretDB every such query reads the whole queue.
                self._candidates = deque(await self._queue.due(self._now(), limit=2 * self._window))
                self._candidates_read_at = time.monotonic()
                if not self._candidates:
                    return
            item = self._candidates.popleft()
            if item["_id"] in self._working:
                continue
            claimed_at = self._now()
            gen = await self._queue.claim(item, claimed_at)
            if gen is None:
                continue  # another replica has it, or it moved on since the scan
            task = asyncio.create_task(self._round(item, gen, claimed_at), name=f"sms-round-{item['_id']}")
            self._working[item["_id"]] = task
            task.add_done_callback(lambda _t, mid=item["_id"]: self._round_done(mid))

    def _round_done(self, message_id: str) -> None:
        self._working.pop(message_id, None)
        self.wake()

    # -- one round of one message -----------------------------------------------

    async def _round(self, item: dict, gen: int, claimed_at: dt.datetime) -> None:
        message_id = item["_id"]
        try:
            await self._submit_missing_parts(item, gen, claimed_at)
        except asyncio.CancelledError:
            raise
        except Exception:
            # The database or something unforeseen: the lease runs out and
            # the message is tried again; nothing is lost.
            log.exception("round failed", extra={"fields": {"message_id": message_id}})
        finally:
            self._queue.let_go(message_id)

    async def _submit_missing_parts(self, item: dict, gen: int, claimed_at: dt.datetime) -> None:
        message_id = item["_id"]
        doc = await self._store.get(message_id)
        if doc is None and self._now() - item["created_at"] < _ORPHAN_AFTER:
            # Send stores the queue item, then the message: not there yet.
            await self._queue.release(message_id, gen, self._now() + dt.timedelta(seconds=self._retry_min))
            return
        if doc is None or doc["state"] != PENDING:
            await self._queue.finish(message_id, gen)
            return
        attempts = doc["attempts"] + 1
        if self._now() - doc["created_at"] > self._give_up_after:
            await self._fail(message_id, gen, attempts - 1, f"gave up after {doc.get('last_error', 'retries')}")
            return
        try:
            dest, text = self._sealer.open(message_id, doc["sealed"])
        except (SealError, KeyError) as error:
            await self._fail(message_id, gen, attempts, f"unreadable: {error}")
            return
        parts = ucs2_parts.split(text, doc["udh_ref"], max_parts=255)
        done = {p["seq"] for p in doc.get("sent_parts", [])}
        missing = [part for part in parts if part.seq not in done]
        if not missing:  # (every part was accepted, but the SENT not written)
            await self._store.mark_sent(message_id, attempts, self._now())
        renewed_at = time.monotonic()
        lease_until = claimed_at + self._queue.lease
        for part in missing:
            if time.monotonic() - renewed_at > self._queue.lease.total_seconds() / 3:
                renewing_at = self._now()
                if not await self._queue.renew(message_id, gen, renewing_at):
                    return  # lost the lease: submit nothing more
                renewed_at, lease_until = time.monotonic(), renewing_at + self._queue.lease
            await self._pacer.acquire()
            result = await self._link.submit(dest, part)
            verdict = result.verdict
            if verdict is smpp_status.Verdict.ACCEPTED:
                self._metrics.submitted("accepted")
                self._pacer.accepted()
                assert result.smsc_message_id is not None
                self._remember_part(result.smsc_message_id, message_id)
                if not await self._record_accepted(
                    message_id, gen, attempts, part.seq, result.smsc_message_id, part is missing[-1], lease_until
                ):
                    return  # a later lease holder has it (and will send this part again)
                continue
            if verdict is smpp_status.Verdict.TRANSIENT:
                await self._retry_later(message_id, gen, attempts, result)
                return
            self._metrics.submitted("permanent")
            await self._fail(message_id, gen, attempts, result.reason)
            return
        if missing:
            # Every part recorded, the last with the lease checked just
            # before: the item goes without a second check.
            await self._queue.drop(message_id)
        else:
            await self._queue.finish(message_id, gen)
        self._metrics.sent()
        log.info("sent", extra={"fields": {"message_id": message_id, "segments": len(parts)}})
        await self.settle(message_id)

    async def _record_accepted(
        self, message_id: str, gen: int, attempts: int, seq: int, smsc_id: str, last: bool, lease_until: dt.datetime
    ) -> bool:
        """Records a part the centre took; False if the lease has passed on.

        Forgetting that the centre took a part means sending it again, so a
        database error here is retried while the lease surely lasts (a
        margin of a sixth of it for clocks and the last try's own time),
        rather than failing the round. The record is idempotent, so a retry
        after a write that landed but whose answer was lost changes nothing.
        """
        margin = self._queue.lease / 6
        delay = 0.2
        while True:
            try:
                if not await self._queue.holds(message_id, gen, self._now()):
                    return False
                await self._store.part_accepted(message_id, attempts, seq, smsc_id, last, self._now())
                return True
            except PyMongoError as error:
                if self._now() + dt.timedelta(seconds=delay) > lease_until - margin:
                    raise
                log.warning(
                    "recording an accepted part failed; retrying",
                    extra={"fields": {"message_id": message_id, "error": type(error).__name__}},
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    async def _retry_later(self, message_id: str, gen: int, attempts: int, result: SubmitResult) -> None:
        reason = result.reason
        self._metrics.submitted("connection_lost" if result.command_status is None else "transient")
        self._metrics.failure(reason, final=False)
        if result.command_status in _THROTTLING:
            self._pacer.throttled()
            delay = self._throttle_pause * (1 + self._rng.random())
        else:
            backoff = min(self._retry_max, self._retry_min * 2 ** min(attempts - 1, 30))
            delay = backoff * (0.5 + self._rng.random() / 2)
        if not await self._queue.holds(message_id, gen):
            return
        await self._store.note_error(message_id, attempts, reason)
        await self._queue.release(message_id, gen, self._now() + dt.timedelta(seconds=delay))
        log.info(
            "submit to retry",
            extra={"fields": {"message_id": message_id, "why": reason, "attempt": attempts, "retry_in": round(delay, 2)}},
        )

    async def _fail(self, message_id: str, gen: int, attempts: int, reason: str) -> None:
        if not await self._queue.holds(message_id, gen):
            return
        await self._store.mark_failed(message_id, attempts, reason, self._now())
        await self._queue.finish(message_id, gen)
        self._metrics.failure(reason, final=True)
        self._metrics.finished(FAILED)
        log.warning("failed", extra={"fields": {"message_id": message_id, "why": reason}})

    # -- receipts ---------------------------------------------------------------

    async def on_receipt(self, receipt: Receipt) -> None:
        """Settles the message with the receipts in hand if it can.

        A receipt for a part this replica submitted waits for the round that
        is recording it, then is held in memory with the message's other
        receipts until all are in (they come to this replica's session in the
        usual case): one read and one write settle the message. A receipt for
        a part we do not know, or held longer than `_IN_HAND_SECONDS` (the
        others went to another replica's session), is kept aside in the
        database, then the message is tried again. The worker writes "SENT"
        and then reads kept receipts; this writes the receipt and then reads
        the message: whichever comes second sees the other's write."""
        if not receipt.final:
            return  # ENROUTE, ACCEPTD: a final one follows
        smsc_id = receipt.smsc_message_id
        message_id = self._submitted.get(smsc_id)
        if message_id is not None:
            if (round_ := self._working.get(message_id)) is not None:
                # Our own round is still recording the parts (the centre
                # answers fast): let it finish first.
                await asyncio.wait([round_], timeout=self._queue.lease.total_seconds())
            in_hand = self._in_hand.setdefault(message_id, {})
            in_hand[smsc_id] = receipt.stat
            if await self.settle(message_id, in_hand, look_aside=False):
                return
            if len(in_hand) == 1:  # the first held: the others have this long
                asyncio.get_running_loop().call_later(_IN_HAND_SECONDS, self._spill_soon, message_id)
            return
        message_id = await self._store.message_of_part(smsc_id)
        if message_id is not None and await self.settle(message_id, {smsc_id: receipt.stat}):
            return
        await self._store.keep_receipt(smsc_id, receipt.stat, self._now())
        message_id = message_id or await self._store.message_of_part(smsc_id)
        if message_id is not None:
            await self.settle(message_id)

    def _spill_soon(self, message_id: str) -> None:
        task = asyncio.create_task(self._spill(message_id), name=f"sms-spill-{message_id}")
        self._spilling.add(task)
        task.add_done_callback(self._spilling.discard)

    async def _spill(self, message_id: str) -> None:
        """Receipts held in memory go aside into the database (for a replica
        that gets the rest), and the message is tried again with them."""
        held = self._in_hand.pop(message_id, None)
        if not held:
            return
        try:
            for smsc_id, stat in held.items():
                await self._store.keep_receipt(smsc_id, stat, self._now())
            await self.settle(message_id)
        except Exception:
            # The database is away: hold them again, and try later.
            self._in_hand.setdefault(message_id, {}).update(held)
            asyncio.get_running_loop().call_later(_IN_HAND_SECONDS, self._spill_soon, message_id)
            log.warning("held receipts not kept yet; retrying", extra={"fields": {"message_id": message_id}})

    def _remember_part(self, smsc_id: str, message_id: str) -> None:
        """Which message a part this replica submitted belongs to, for its
        receipt; the oldest are forgotten past a bound (a receipt for one
        of those is looked up in the database instead)."""
        self._submitted[smsc_id] = message_id
        while len(self._submitted) > _REMEMBERED_PARTS:
            self._submitted.pop(next(iter(self._submitted)))

    async def settle(self, message_id: str, in_hand: dict[str, str] | None = None, look_aside: bool = True) -> bool:
        """SENT → DELIVERED once every part's receipt says delivered; → FAILED
        on the first part that failed. False while that cannot be told yet
        (the message is not SENT yet, or receipts are missing). Receipts not
        in hand are looked for among those kept aside unless `look_aside` is
        off."""
        doc = await self._store.get(message_id)
        if doc is None or doc["state"] in (DELIVERED, FAILED):
            self._in_hand.pop(message_id, None)
            return True  # nothing left to decide
        if doc["state"] != SENT:
            return False
        in_hand = in_hand or {}
        smsc_ids = [p["smsc_id"] for p in doc["sent_parts"]]
        stats: list[str | None] = []
        kept: list[str] = []
        for smsc_id in smsc_ids:
            stat = in_hand.get(smsc_id)
            if stat is None and look_aside and (stat := await self._store.kept_receipt(smsc_id)) is not None:
                kept.append(smsc_id)
            stats.append(stat)
        failed = [stat for stat in stats if stat is not None and stat not in DELIVERED_STATS]
        if failed:
            state, reason = FAILED, f"receipt {failed[0]}"
        elif all(stat is not None for stat in stats):
            state, reason = DELIVERED, None
        else:
            return False
        now = self._now()
        await self._store.finalize(message_id, state, reason, now)
        self._metrics.finished(state)
        self._metrics.receipt_latency((now - doc["sent_at"]).total_seconds(), state)
        if reason:
            self._metrics.failure(reason, final=True)
        log.info("receipt", extra={"fields": {"message_id": message_id, "state": state}})
        await self._store.forget_receipts(kept)
        for smsc_id in smsc_ids:
            self._submitted.pop(smsc_id, None)
        self._in_hand.pop(message_id, None)
        return True

    # -- housekeeping -----------------------------------------------------------

    async def _housekeeping(self) -> None:
        """Metrics every few seconds; every minute, forget old lease
        documents; every hour, delete what is past retention. Each replica
        does it; doing it twice is harmless."""
        rounds = 0
        while True:
            try:
                await self.refresh_metrics()
                if rounds % 12 == 0:
                    await self._queue.forget_leases(self._now() - max(self._queue.lease * 2, dt.timedelta(minutes=1)))
                if rounds % 720 == 0:
                    await self._store.purge(self._now() - self._retention)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("housekeeping failed")
            rounds += 1
            await asyncio.sleep(5.0)

    async def refresh_metrics(self) -> None:
        depth, oldest = await self._queue.backlog()
        self._metrics.queue_depth = depth
        self._metrics.oldest_pending_age_seconds = (
            max(0.0, (self._now() - oldest).total_seconds()) if oldest else 0.0
        )
