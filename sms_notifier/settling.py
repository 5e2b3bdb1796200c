"""Delivery receipts turned into each message's final state: matched in
memory, written as `d:{message_id}` records in batches across messages.

Matching. A receipt names the part by the centre's id, in whatever form the
centre writes it (receipts.py: `keys`, canonical keys best first); parts are
known by the canonical key of the id their submit response gave
(`key_of`). A centre that reuses ids (its counter wraps, or it restarted)
gives one key to several submissions: a receipt settles the newest one
still unsettled that it fits (message_records.pick_part: its submit date is
not earlier than the part's submission), never a settled or an older one.
A receipt whose submit date is earlier than the submission its id names is
not applied (M8: a replayed or late receipt for an earlier message).

The usual case costs no read and a share of one write: the replica that
submitted a message gets its parts' receipts on its own session (the centre
sends a receipt on the session that submitted the part), knows the parts
(registered as each submit response came), settles the message when the
last receipt is in (message_records.settle: DELIVERED when every part's says
delivered, FAILED on the first that failed), and queues the `d:` record; one
insert_many writes what gathered in `batch_seconds`.

One receipt per message, or none. Some centres send a receipt for the first
or the last part of a long message only, or none at all. When a message's
receipt window (`window_seconds` after SENT) closes unsettled, it is decided
from what arrived (message_records.settle_at_window: a failed part fails
it, a delivered one delivers it); when nothing did, the centre is asked
(SMPP query_sm, where the link can: `query`), and if it cannot say either,
the message is FAILED with reason "no receipt" (the CONTRACT's sms.state has
no "unknown"; SMPP counts EXPIRED and UNKNOWN as failures too). A centre
that answers a query with "still en route", or that cannot be asked (not
bound), gets up to `_MAX_WINDOWS` windows. A message whose window closed on another replica, or before a
restart, is decided the same way the first time GetStatus asks about it
(`decide_late`); once final it costs no further reads.

The look-aside path, for a receipt this replica cannot place (the part was
submitted by another replica, or before a restart, or the session that
submitted it broke and the centre sent its receipt to another): the part's
`p:` record names the message, its `s:` record lists the parts, and the
receipts of the others are looked for among those kept aside (`r:`). A
receipt that still cannot settle its message is kept aside itself
(bounded: message_store.py). Each side writes its own receipts and then
reads the others', so whichever comes second sees both. Receipts a replica
holds for a message whose other receipts do not come within
`in_hand_seconds` go aside the same way (they went to another replica's
session). The centre may send a receipt before its submit response: a
receipt for an unknown part first waits for this replica's submissions in
flight to register their parts.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from pymongo.errors import PyMongoError

from sms_notifier import message_records as records
from sms_notifier.message_records import FAILED, FINAL, NO_RECEIPT, SENT, MessageState, PartAt
from sms_notifier.message_store import MessageStore
from sms_notifier.metrics import Metrics
from sms_notifier.receipts import INTERMEDIATE, Receipt

log = logging.getLogger(__name__)

# Parts and open messages this replica remembers for their receipts; the
# oldest are forgotten past these bounds (their receipts take the look-aside
# path instead).
_REMEMBERED_PARTS = 200_000
_REMEMBERED_MESSAGES = 100_000
# Submissions remembered per centre id (ids reused by a wrapping counter).
_SUBMISSIONS_PER_ID = 4
# A receipt kept aside for a part whose `p:` record was not there yet (its
# submitter records it right after the centre's answer) is tried again after
# these delays.
_RECHECK_AFTER = (5.0, 30.0)
# Receipt windows a message waits at most while the centre says "en route".
_MAX_WINDOWS = 6
# Parts asked about per message when no receipt came.
_MAX_QUERIES = 10

Query = Callable[[str], Awaitable[str | None]]


@dataclass
class _Open:
    """A message this replica submitted, awaiting its receipts."""

    known: list[str] = field(default_factory=list)  # keys of its parts accepted so far
    part_at: dict[str, dt.datetime] = field(default_factory=dict)  # when each (key) was accepted
    smsc_ids: list[str] | None = None  # as the centre gave them, in part order, once SENT
    keys: list[str] | None = None  # their canonical keys
    sent_at: dt.datetime | None = None
    stats: dict[str, str] = field(default_factory=dict)  # receipts in hand, by key
    spill: asyncio.TimerHandle | None = None
    window: asyncio.TimerHandle | None = None
    windows: int = 0


def _cancel(*handles: asyncio.TimerHandle | None) -> None:
    for handle in handles:
        if handle is not None:
            handle.cancel()


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
        window_seconds: float = 600.0,
        date_slack: dt.timedelta = dt.timedelta(minutes=2),
        key_of: Callable[[str], str] = str,
        query: Query | None = None,
    ) -> None:
        """`window_seconds`: the receipt window; `date_slack`: allowance for
        the centre's clock when a receipt's submit date is compared with a
        part's submission; `key_of`: a submit response id's canonical key
        (the link's); `query`: asks the centre how a part ended (None: the
        link cannot)."""
        self._store = store
        self._metrics = metrics
        self._now = now
        self._on_final = on_final  # (message id, state, reason): the sender's memory
        self._in_flight = in_flight  # this replica's submissions in flight
        self._wait_for_parts = wait_for_parts
        self._batch_seconds = batch_seconds
        self._in_hand_seconds = in_hand_seconds
        self.window = dt.timedelta(seconds=window_seconds)
        self._slack = date_slack
        self.key_of = key_of
        self._query = query
        self._part_of: OrderedDict[str, list[PartAt]] = OrderedDict()  # key -> submissions, oldest first
        self._open: OrderedDict[str, _Open] = OrderedDict()
        self._finals: list[dict] = []
        self._finals_waiting = asyncio.Event()
        self._tasks: set[asyncio.Task] = set()
        self._deciding: dict[str, asyncio.Task] = {}
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
            _cancel(message.window)
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
        """A part was accepted (called at its submit response, before any record)."""
        key = self.key_of(smsc_id)
        at = self._now()
        submissions = [p for p in self._part_of.pop(key, []) if p.message_id != message_id]
        submissions.append(PartAt(message_id, at))
        self._part_of[key] = submissions[-_SUBMISSIONS_PER_ID:]
        while len(self._part_of) > _REMEMBERED_PARTS:
            self._part_of.popitem(last=False)
        message = self._open.get(message_id)
        if message is None:
            message = self._open[message_id] = _Open()
            while len(self._open) > _REMEMBERED_MESSAGES:
                old_id, old = self._open.popitem(last=False)
                self._forget_parts(old_id, old)
        message.known.append(key)
        message.part_at[key] = at

    def accepted_at(self, message_id: str, smsc_id: str) -> dt.datetime | None:
        """When this replica saw the part accepted (None: not here)."""
        message = self._open.get(message_id)
        return message.part_at.get(self.key_of(smsc_id)) if message is not None else None

    def sent(self, message_id: str, smsc_ids: list[str], sent_at: dt.datetime) -> None:
        """Every part accepted: the message can settle once the receipts say,
        or when its receipt window closes."""
        message = self._open.get(message_id)
        if message is None:
            message = self._open[message_id] = _Open()
        message.smsc_ids, message.sent_at = smsc_ids, sent_at
        message.keys = [self.key_of(s) for s in smsc_ids]
        if message.stats and self._settle_in_memory(message_id, message):
            return
        self._arm_window(message_id, message)

    def given_up(self, message_id: str) -> None:
        """The message failed before it was SENT: its receipts decide nothing."""
        message = self._open.pop(message_id, None)
        if message is not None:
            _cancel(message.spill, message.window)

    def unsettled(self, message_id: str) -> bool:
        return message_id in self._open

    # -- receipts ----------------------------------------------------------------

    async def on_receipt(self, receipt: Receipt) -> None:
        if receipt.stat in INTERMEDIATE:
            return  # ENROUTE, ACCEPTD: a final one follows
        placed = self._place(receipt)
        if placed is None and (pending := self._in_flight()):
            # The centre may send a part's receipt before its submit response
            # reached us: let this replica's submissions register their parts.
            await asyncio.wait(pending, timeout=self._wait_for_parts)
            placed = self._place(receipt)
        if placed is not None:
            message_id, key = placed
            message = self._open[message_id]
            message.stats[key] = receipt.stat
            if message.smsc_ids is not None and self._settle_in_memory(message_id, message):
                return
            if message.spill is None:
                message.spill = asyncio.get_running_loop().call_later(
                    self._in_hand_seconds, self._spill_soon, message_id
                )
            return
        if any(key in self._part_of for key in receipt.keys):
            # Its id names submissions here, every one settled or at another
            # time than the receipt's submit date: a repeated receipt, a late
            # one for an earlier message, or a forged one.
            self._stale(receipt)
            return
        await self._look_aside(receipt)

    def _stale(self, receipt: Receipt, part_at: dt.datetime | None = None) -> None:
        self._metrics.receipt_unmatched("stale")
        fields: dict[str, object] = {"smsc_message_id": receipt.smsc_message_id}
        if receipt.submitted_at is not None:
            # Many of these, all off by whole hours: the centre's clock is not
            # the one configured (YZTC_NOTIFIER_SMSC_UTC_OFFSET_MINUTES).
            fields["receipt_minus_now_min"] = round((receipt.submitted_at - self._now()).total_seconds() / 60)
        if part_at is not None and receipt.submitted_at is not None:
            fields["receipt_minus_part_min"] = round((receipt.submitted_at - part_at).total_seconds() / 60)
        log.info("receipt not applied: no unsettled submission at its date", extra={"fields": fields})

    def _place(self, receipt: Receipt) -> tuple[str, str] | None:
        """(message id, part key) of the open message this receipt is about."""
        for key in receipt.keys:
            candidates = self._part_of.get(key)
            if not candidates:
                continue
            message_id = records.pick_part(candidates, receipt.submitted_at, self.unsettled, self._slack)
            if message_id is not None:
                return message_id, key
        return None

    def _settle_in_memory(self, message_id: str, message: _Open) -> bool:
        assert message.keys is not None
        verdict = records.settle(message.keys, message.stats)
        if verdict is None:
            return False
        self._close(message_id, message)
        self._finish(message_id, verdict, message.sent_at)
        return True

    def _close(self, message_id: str, message: _Open) -> None:
        self._open.pop(message_id, None)
        _cancel(message.spill, message.window)

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
        log.info("sms final", extra={"fields": {"message_id": message_id, "state": state, "why": reason}})

    def _forget_parts(self, message_id: str, message: _Open) -> None:
        _cancel(message.spill, message.window)
        for key in message.known:
            left = [p for p in self._part_of.get(key, []) if p.message_id != message_id]
            if left:
                self._part_of[key] = left
            else:
                self._part_of.pop(key, None)

    # -- the receipt window ------------------------------------------------------

    def _arm_window(self, message_id: str, message: _Open) -> None:
        _cancel(message.window)
        message.window = asyncio.get_running_loop().call_later(
            self.window.total_seconds(), self._window_closed, message_id
        )

    def _window_closed(self, message_id: str) -> None:
        message = self._open.get(message_id)
        if message is None:
            return
        message.window = None
        message.windows += 1
        self._background(self._decide_open(message_id, message), f"sms-window-{message_id}")

    async def _decide_open(self, message_id: str, message: _Open) -> None:
        assert message.smsc_ids is not None and message.keys is not None
        try:
            state = await self._store.state(message_id, with_queue=False)
            if state is not None and state.state in FINAL:
                self._close(message_id, message)  # another replica settled it
                self._on_final(message_id, state.state, state.reason)
                return
            stats = dict(message.stats)
            await self._read_kept(message.keys, message.part_at, message.sent_at, stats)
        except PyMongoError:
            stats = dict(message.stats)  # decided from what this replica holds
        verdict = await self._verdict_at_window(message.smsc_ids, message.keys, stats)
        if message_id not in self._open:
            return  # a receipt settled it meanwhile
        if verdict is None and message.windows < _MAX_WINDOWS:
            self._arm_window(message_id, message)  # the centre says it is still trying
            return
        self._close(message_id, message)
        self._finish(message_id, verdict or (FAILED, NO_RECEIPT), message.sent_at)

    async def decide_late(self, state: MessageState) -> MessageState:
        """A SENT message past its receipt window that no replica holds open
        (its window closed elsewhere, or before a restart): decided as at the
        window's close, recorded, and returned final; returned as it is if
        the centre says it is still trying (and the message is not too old),
        or while this replica holds it open (its own timer decides)."""
        if state.state != SENT or state.sent_at is None or state.message_id in self._open:
            return state
        age = self._now() - state.sent_at
        if age < self.window:
            return state
        task = self._deciding.get(state.message_id)
        if task is None:
            task = asyncio.create_task(self._decide_from_records(state, age), name=f"sms-late-{state.message_id}")
            self._deciding[state.message_id] = task
            message_id = state.message_id

            def forget(_task: asyncio.Task) -> None:
                self._deciding.pop(message_id, None)

            task.add_done_callback(forget)
        return await asyncio.shield(task)

    async def _decide_from_records(self, state: MessageState, age: dt.timedelta) -> MessageState:
        keys = [self.key_of(s) for s in state.smsc_ids]
        stats: dict[str, str] = {}
        await self._read_kept(keys, {}, state.sent_at, stats)
        verdict = await self._verdict_at_window(state.smsc_ids, keys, stats)
        if verdict is None:
            if age < self.window * _MAX_WINDOWS:
                return state
            verdict = (FAILED, NO_RECEIPT)
        final = records.final_record(state.message_id, *verdict, self._now())
        if not await self._store.record_final(final):
            found = await self._store.final(state.message_id)  # decided elsewhere meanwhile
            if found is not None:
                verdict = (found["state"], found.get("reason", ""))
        else:
            self._metrics.finished(verdict[0])
            if verdict[0] == FAILED:
                self._metrics.failure(verdict[1], final=True)
            log.info("sms final", extra={"fields": {"message_id": state.message_id, "state": verdict[0]}})
        state.state, state.reason = verdict
        self._on_final(state.message_id, *verdict)
        return state

    async def _verdict_at_window(
        self, smsc_ids: list[str], keys: list[str], stats: dict[str, str]
    ) -> tuple[str, str] | None:
        """The verdict at the window's close; None: the centre says it is
        still trying. Asks the centre about the parts without a receipt
        when none says how the message ended."""
        verdict = records.settle_at_window(keys, stats)
        if verdict is not None or self._query is None:
            return verdict or (FAILED, NO_RECEIPT)
        still_trying = False
        for smsc_id, key in list(zip(smsc_ids, keys, strict=True))[:_MAX_QUERIES]:
            if key in stats:
                continue
            try:
                stat = await self._query(smsc_id)
            except ConnectionError:
                still_trying = True  # not bound now: ask at the next window
                continue
            self._metrics.receipt_queried(stat)
            if stat is None:
                continue
            if stat in INTERMEDIATE:
                still_trying = True
            else:
                stats[key] = stat
        verdict = records.settle_at_window(keys, stats)
        if verdict is not None:
            return verdict
        return None if still_trying else (FAILED, NO_RECEIPT)

    async def _read_kept(
        self,
        keys: list[str],
        part_at: dict[str, dt.datetime],
        sent_at: dt.datetime | None,
        stats: dict[str, str],
    ) -> None:
        """Adds to `stats` the receipts kept aside for parts without one, if
        they fit the part (not older than its submission)."""
        for key in keys:
            if key in stats:
                continue
            kept = await self._store.kept_receipt(key)
            if kept is None:
                continue
            stat, submitted = kept
            at = part_at.get(key) or (sent_at - self._slack if sent_at else None)
            if at is None or records.receipt_fits(at, submitted, self._slack):
                stats[key] = stat

    # -- the look-aside path -----------------------------------------------------

    async def _look_aside(self, receipt: Receipt) -> None:
        for key in receipt.keys:
            part = await self._store.part(key)
            if part is None:
                continue
            if not records.receipt_fits(part.at, receipt.submitted_at, self._slack):
                # Its id was reused since: this receipt is about an earlier
                # submission (settled, or decided at its window), not the newest.
                self._stale(receipt, part.at)
                return
            await self._settle_from_records(part.message_id, {key: (receipt.stat, receipt.submitted_at)})
            return
        if await self._store.keep_receipt(receipt.keys, receipt.stat, self._now(), receipt.submitted_at):
            self._background(self._recheck(receipt.keys), f"sms-recheck-{receipt.keys[0]}")
        else:
            self._metrics.receipt_unmatched("dropped")

    async def _recheck(self, keys: tuple[str, ...]) -> None:
        """A receipt kept aside before its part was recorded: once the part's
        submitter has recorded it, the message is tried again."""
        for delay in _RECHECK_AFTER:
            await asyncio.sleep(delay)
            try:
                for key in keys:
                    part = await self._store.part(key)
                    if part is not None:
                        await self._settle_from_records(part.message_id, {})
                        return
            except PyMongoError:
                continue

    async def _settle_from_records(
        self, message_id: str, in_hand: dict[str, tuple[str, dt.datetime | None]]
    ) -> bool | None:
        """Settles a message from its records, the receipts in hand (key ->
        (stat, submit date)) and those kept aside; keeps the ones in hand
        aside if it cannot. True: the message is final (now or already);
        False: receipts are missing; None: it is not recorded as SENT yet."""
        state = await self._store.state(message_id, with_queue=False)
        if state is None:
            return None
        if state.state != records.SENT:
            return True
        keys = [self.key_of(s) for s in state.smsc_ids]
        stats = {key: stat for key, (stat, _) in in_hand.items()}
        if records.settle(keys, stats) is None:
            # Ours aside first, then theirs read: of two replicas doing this
            # at once, the second sees the first's.
            for key, (stat, submitted) in in_hand.items():
                await self._store.keep_receipt(key, stat, self._now(), submitted)
            await self._read_kept(keys, {}, state.sent_at, stats)
        verdict = records.settle(keys, stats)
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
        went to another replica's session, or the centre sends one receipt
        per message. Ours go aside, theirs are read; the window decides the rest."""
        message = self._open.get(message_id)
        if message is None:
            return
        message.spill = None
        # Matched here already (they fit their parts): kept without a date.
        in_hand: dict[str, tuple[str, dt.datetime | None]] = {key: (stat, None) for key, stat in message.stats.items()}
        settled = await self._settle_from_records(message_id, in_hand)
        if settled:
            self._close(message_id, message)
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
