"""Delivery receipts turned into each message's final state: matched in
memory, written as `d:{message_id}` records in batches across messages.

The usual case costs no read and a share of one write: the replica that
submitted a message gets its parts' receipts on its own SMPP session (the
centre sends a receipt on the session that submitted the part), knows the
parts (registered as each submit_sm_resp came), settles the message when the
last receipt is in (message_records.settle: DELIVERED when every part's
says delivered, FAILED on the first that failed), and queues the `d:`
record; one insert_many writes what gathered in `batch_seconds`.

The look-aside path, for a receipt this replica cannot place (the part was
submitted by another replica, or before a restart, or the session that
submitted it broke and the centre sent its receipt to another): the part's
`p:` record names the message, its `s:` record lists the parts, and the
receipts of the others are looked for among those kept aside (`r:`). A
receipt that still cannot settle its message is kept aside itself. Each
side writes its own receipts and then reads the others', so whichever
comes second sees both. Receipts a replica holds for a message whose other
receipts do not come within `in_hand_seconds` go aside the same way (they
went to another replica's session). The centre may send a receipt before
its submit_sm_resp: a receipt for an unknown part first waits for this
replica's submissions in flight to register their parts.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from pymongo.errors import PyMongoError

from sms_notifier import message_records as records
from sms_notifier.message_records import FAILED
from sms_notifier.message_store import MessageStore
from sms_notifier.metrics import Metrics
from sms_notifier.receipts import Receipt

log = logging.getLogger(__name__)

# Parts and open messages this replica remembers for their receipts; the
# oldest are forgotten past these bounds (their receipts take the look-aside
# path instead).
_REMEMBERED_PARTS = 200_000
_REMEMBERED_MESSAGES = 100_000
# A receipt kept aside for a part whose `p:` record was not there yet (its
# submitter records it right after the centre's answer) is tried again after
# these delays.
_RECHECK_AFTER = (5.0, 30.0)


@dataclass
class _Open:
    """A message this replica submitted, awaiting its receipts."""

    known: list[str] = field(default_factory=list)  # its parts accepted so far
    smsc_ids: list[str] | None = None  # in part order, once every part was accepted (SENT)
    sent_at: dt.datetime | None = None
    stats: dict[str, str] = field(default_factory=dict)  # receipts in hand, by SMS centre id
    spill: asyncio.TimerHandle | None = None


class Settler:
    def __init__(
        self,
        store: MessageStore,
        metrics: Metrics,
        *,
        now: Callable[[], dt.datetime],
        on_final: Callable[[str, str, str], None],
        in_flight: Callable[[], list[asyncio.Task]],
        wait_for_parts: float,
        batch_seconds: float = 0.05,
        in_hand_seconds: float = 10.0,
    ) -> None:
        self._store = store
        self._metrics = metrics
        self._now = now
        self._on_final = on_final  # (message id, state, reason): the sender's memory
        self._in_flight = in_flight  # this replica's submissions in flight
        self._wait_for_parts = wait_for_parts
        self._batch_seconds = batch_seconds
        self._in_hand_seconds = in_hand_seconds
        self._part_of: OrderedDict[str, str] = OrderedDict()  # SMS centre id -> message id
        self._open: OrderedDict[str, _Open] = OrderedDict()
        self._finals: list[dict] = []
        self._finals_waiting = asyncio.Event()
        self._tasks: set[asyncio.Task] = set()
        self._flusher: asyncio.Task | None = None

    async def start(self) -> None:
        self._flusher = asyncio.create_task(self._flush_loop(), name="sms-finals")

    async def close(self) -> None:
        """At shutdown, once the link has handed over its last receipts:
        receipts held for unsettled messages go aside, and the final records
        gathered so far are written."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for message_id, message in list(self._open.items()):
            if message.stats and message.smsc_ids is not None:
                try:
                    await self._spill(message_id)
                except PyMongoError:
                    log.warning("held receipts lost at stop", extra={"fields": {"message_id": message_id}})
        if self._flusher is not None:
            self._flusher.cancel()
            await asyncio.gather(self._flusher, return_exceptions=True)
        if self._finals:
            try:
                await self._store.record_finals(self._finals)
                self._finals = []
            except PyMongoError:
                log.warning("final records lost at stop", extra={"fields": {"count": len(self._finals)}})

    # -- what the sender tells ---------------------------------------------------

    def expect(self, message_id: str, smsc_id: str) -> None:
        """A part was accepted (called at its submit_sm_resp, before any record)."""
        self._part_of[smsc_id] = message_id
        self._part_of.move_to_end(smsc_id)
        while len(self._part_of) > _REMEMBERED_PARTS:
            self._part_of.popitem(last=False)
        message = self._open.get(message_id)
        if message is None:
            message = self._open[message_id] = _Open()
            while len(self._open) > _REMEMBERED_MESSAGES:
                _, old = self._open.popitem(last=False)
                self._forget_parts(old)
        message.known.append(smsc_id)

    def sent(self, message_id: str, smsc_ids: list[str], sent_at: dt.datetime) -> None:
        """Every part accepted: the message can settle once the receipts say."""
        message = self._open.get(message_id)
        if message is None:
            message = self._open[message_id] = _Open()
        message.smsc_ids, message.sent_at = smsc_ids, sent_at
        if message.stats:
            self._settle_in_memory(message_id, message)

    def given_up(self, message_id: str) -> None:
        """The message failed before it was SENT: its receipts decide nothing."""
        message = self._open.pop(message_id, None)
        if message is not None and message.spill is not None:
            message.spill.cancel()

    # -- receipts ----------------------------------------------------------------

    async def on_receipt(self, receipt: Receipt) -> None:
        if not receipt.final:
            return  # ENROUTE, ACCEPTD: a final one follows
        smsc_id = receipt.smsc_message_id
        message_id = self._part_of.get(smsc_id)
        if message_id is None and (pending := self._in_flight()):
            # The centre may answer a part's receipt before its submit_sm_resp
            # reached us: let this replica's submissions register their parts.
            await asyncio.wait(pending, timeout=self._wait_for_parts)
            message_id = self._part_of.get(smsc_id)
        if message_id is not None:
            message = self._open.get(message_id)
            if message is None:
                return  # settled already (a repeated receipt, or a later part of a FAILED message)
            message.stats[smsc_id] = receipt.stat
            if message.smsc_ids is not None and self._settle_in_memory(message_id, message):
                return
            if message.spill is None:
                message.spill = asyncio.get_running_loop().call_later(
                    self._in_hand_seconds, self._spill_soon, message_id
                )
            return
        await self._look_aside(smsc_id, receipt.stat)

    def _settle_in_memory(self, message_id: str, message: _Open) -> bool:
        assert message.smsc_ids is not None
        verdict = records.settle(message.smsc_ids, message.stats)
        if verdict is None:
            return False
        self._open.pop(message_id, None)
        if message.spill is not None:
            message.spill.cancel()
        self._finish(message_id, verdict, message.sent_at)
        return True

    def _finish(self, message_id: str, verdict: tuple[str, str], sent_at: dt.datetime | None) -> None:
        state, reason = verdict
        now = self._now()
        self._finals.append(records.final_record(message_id, state, reason, now))
        self._finals_waiting.set()
        self._on_final(message_id, state, reason)
        self._metrics.finished(state)
        if sent_at is not None:
            self._metrics.receipt_latency((now - sent_at).total_seconds(), state)
        if state == FAILED:
            self._metrics.failure(reason, final=True)
        log.info("sms final", extra={"fields": {"message_id": message_id, "state": state}})

    def _forget_parts(self, message: _Open) -> None:
        if message.spill is not None:
            message.spill.cancel()
        for smsc_id in message.known:
            self._part_of.pop(smsc_id, None)

    # -- the look-aside path -----------------------------------------------------

    async def _look_aside(self, smsc_id: str, stat: str) -> None:
        message_id = await self._store.message_of_part(smsc_id)
        if message_id is None:
            await self._store.keep_receipt(smsc_id, stat, self._now())
            self._background(self._recheck(smsc_id), f"sms-recheck-{smsc_id}")
            return
        await self._settle_from_records(message_id, {smsc_id: stat})

    async def _recheck(self, smsc_id: str) -> None:
        """A receipt kept aside before its part was recorded: once the part's
        submitter has recorded it, the message is tried again."""
        for delay in _RECHECK_AFTER:
            await asyncio.sleep(delay)
            try:
                message_id = await self._store.message_of_part(smsc_id)
                if message_id is not None:
                    await self._settle_from_records(message_id, {})
                    return
            except PyMongoError:
                continue

    async def _settle_from_records(self, message_id: str, in_hand: dict[str, str]) -> bool | None:
        """Settles a message from its records, the receipts in hand and those
        kept aside; keeps the ones in hand aside if it cannot. True: the
        message is final (now or already); False: receipts are missing;
        None: it is not recorded as SENT yet."""
        state = await self._store.state(message_id, with_queue=False)
        if state is None:
            return None
        if state.state != records.SENT:
            return True
        smsc_ids = state.smsc_ids
        stats = dict(in_hand)
        if records.settle(smsc_ids, stats) is None:
            # Ours aside first, then theirs read: of two replicas doing this
            # at once, the second sees the first's.
            for smsc_id, stat in in_hand.items():
                await self._store.keep_receipt(smsc_id, stat, self._now())
            for smsc_id in smsc_ids:
                if smsc_id not in stats and (kept := await self._store.kept_receipt(smsc_id)) is not None:
                    stats[smsc_id] = kept
        verdict = records.settle(smsc_ids, stats)
        if verdict is None:
            return False
        self._finish(message_id, verdict, state.sent_at)
        return True

    def _spill_soon(self, message_id: str) -> None:
        self._background(self._spill_or_retry(message_id), f"sms-spill-{message_id}")

    async def _spill_or_retry(self, message_id: str) -> None:
        try:
            await self._spill(message_id)
        except PyMongoError:
            message = self._open.get(message_id)
            if message is not None:
                message.spill = asyncio.get_running_loop().call_later(
                    self._in_hand_seconds, self._spill_soon, message_id
                )
            log.warning("held receipts not kept yet; retrying", extra={"fields": {"message_id": message_id}})

    async def _spill(self, message_id: str) -> None:
        """Receipts held here while the message's others did not come: they
        went to another replica's session. Ours go aside, theirs are read."""
        message = self._open.get(message_id)
        if message is None:
            return
        message.spill = None
        settled = await self._settle_from_records(message_id, dict(message.stats))
        if settled:
            self._open.pop(message_id, None)
        elif settled is None:
            # Not SENT yet (parts still in the fallback queue): hold on.
            message.spill = asyncio.get_running_loop().call_later(self._in_hand_seconds, self._spill_soon, message_id)

    def _background(self, coro, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- the batch of final records ----------------------------------------------

    async def _flush_loop(self) -> None:
        delay = self._batch_seconds
        while True:
            await self._finals_waiting.wait()
            await asyncio.sleep(delay)
            self._finals_waiting.clear()
            batch, self._finals = self._finals, []
            if not batch:
                continue
            try:
                await self._store.record_finals(batch)
                delay = self._batch_seconds
            except PyMongoError as error:
                # Kept in memory meanwhile (GetStatus answers from there).
                self._finals = batch + self._finals
                self._finals_waiting.set()
                delay = min(max(delay * 2, 0.2), 5.0)
                log.warning(
                    "final records not written yet; retrying",
                    extra={"fields": {"count": len(batch), "error": type(error).__name__}},
                )
