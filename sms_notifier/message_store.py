"""Messages in MongoDB: the insert-only collection `sms` (record shapes and
their meaning: message_records.py), its queries and its index.

Who writes what. Every record is inserted once and never updated, so no
two writers ever change one document (FerretDB v1 applies an update as a
read, then a write of the whole document, and would lose one of two
concurrent updates):

- `s:` + `p:`: by the Send (or fallback queue round) that had every part
  accepted, in one insert_many, right after the last submit_sm_resp;
- `d:`: by whoever settles the message from its receipts (batched across
  messages, settling.py), or by the attempt the centre refused for
  good; two settling at once compute the same answer, and the second insert
  meets E11000 and is dropped;
- `r:`: a receipt a replica could not match (the part is not known here, or
  the message's other receipts went to another replica); bounded: each
  replica keeps at most `kept_receipts_per_hour` a rolling hour (more are
  dropped, counted), and they are purged after `kept_receipt_seconds`
  (an hourly delete by `_id` range, so the database holds at most about
  replicas × that many, whatever a centre sends);
- `a:`: a claim per attempt not known to be the first (yztc/claims.py).

Every hot read and write is by exact `_id`, the one filter FerretDB answers
from an index (`{_id: {$in: …}}` and `{_id, other}` are scans there), so a
message's state is read with separate find_one calls. Records and claims are
written with `w: "majority"`: a SENT record rolled back by a failover would
let a retry send the message again. The hourly retention purge is the one
scan.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections import deque

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from sms_notifier import message_records as records
from sms_notifier.message_records import MessageState
from yztc import claims

_DUPLICATE_KEY = 11000


# Receipts kept aside per replica in a rolling hour, and how long one is kept.
KEPT_RECEIPTS_PER_HOUR = 50_000
KEPT_RECEIPT_SECONDS = 6 * 3600.0


class MessageStore:
    def __init__(
        self,
        db: AsyncDatabase,
        *,
        kept_receipts_per_hour: int = KEPT_RECEIPTS_PER_HOUR,
        kept_receipt_seconds: float = KEPT_RECEIPT_SECONDS,
        monotonic=time.monotonic,
    ) -> None:
        self._sms = claims.majority(db["sms"])
        self._queue = db["sms_queue"]
        self._kept_limit = kept_receipts_per_hour
        self.kept_receipt_age = dt.timedelta(seconds=kept_receipt_seconds)
        self._kept: deque[float] = deque()  # when this replica kept each receipt, the last hour
        self._monotonic = monotonic
        self.receipts_dropped = 0

    async def ensure_indexes(self) -> None:
        # For the retention purge on MongoDB (FerretDB scans regardless).
        await self._sms.create_index([("at", ASCENDING)])

    # -- reads, by _id -----------------------------------------------------------

    async def state(self, message_id: str, with_queue: bool = True) -> MessageState | None:
        """The message from its records: `s:` and `d:` read at once, then, if
        neither exists, its fallback queue item (PENDING)."""
        sent, final = await asyncio.gather(
            self._sms.find_one({"_id": records.sent_id(message_id)}),
            self._sms.find_one({"_id": records.final_id(message_id)}),
        )
        queued = None
        if sent is None and final is None and with_queue:
            queued = await self._queue.find_one({"_id": records.queue_id(message_id)}, {"sealed": 0})
        return records.state_of(message_id, sent, final, queued)

    async def final(self, message_id: str) -> dict | None:
        return await self._sms.find_one({"_id": records.final_id(message_id)})

    async def message_of_part(self, key: str) -> str | None:
        part = await self.part(key)
        return part.message_id if part else None

    async def part(self, key: str) -> records.PartAt | None:
        """The newest submission whose centre id has canonical key `key`."""
        found = await self._sms.find_one({"_id": records.part_id(key)}, {"m": 1, "at": 1})
        if found is None:
            return None
        return records.PartAt(found["m"], _aware(found["at"]) or found["at"])

    async def kept_receipt(self, key: str) -> tuple[str, dt.datetime | None] | None:
        """(stat, its submit date) of a receipt kept aside under `key`."""
        found = await self._sms.find_one({"_id": records.receipt_id(key)}, {"stat": 1, "sub": 1, "at": 1})
        if found is None:
            return None
        return found["stat"], _aware(found.get("sub"))

    # -- writes ------------------------------------------------------------------

    async def record_sent(self, docs: list[dict]) -> None:
        """The `s:` record and its `p:` look-ups, one round trip. An `s:` that
        exists already (an earlier attempt recorded it) is kept. A `p:` that
        exists belongs to an older part whose id the centre has reused (ids
        that wrap): the newest submission takes it over."""
        try:
            await self._sms.insert_many(docs, ordered=False)
        except BulkWriteError as error:
            errors = error.details.get("writeErrors", [])
            if any(e.get("code") != _DUPLICATE_KEY for e in errors):
                raise
            for e in errors:
                doc = docs[e["index"]]
                if doc["_id"].startswith("p:"):
                    await self._sms.replace_one({"_id": doc["_id"]}, doc, upsert=True)

    async def record_final(self, doc: dict) -> bool:
        """One `d:` record now (a refusal the caller is answered with); False
        if the message had one already."""
        try:
            await self._sms.insert_one(doc)
            return True
        except DuplicateKeyError:
            return False

    async def record_finals(self, docs: list[dict]) -> None:
        """`d:` records of several messages in one round trip (the settling
        batch); one that exists already is dropped."""
        try:
            await self._sms.insert_many(docs, ordered=False)
        except BulkWriteError as error:
            if any(e.get("code") != _DUPLICATE_KEY for e in error.details.get("writeErrors", [])):
                raise

    async def keep_receipt(
        self, keys: str | tuple[str, ...], stat: str, now: dt.datetime, submitted_at: dt.datetime | None = None
    ) -> bool:
        """Keeps a receipt that cannot settle its message here (its part is not
        known here, or the other parts' receipts went elsewhere), under each
        key it may stand for. False: dropped, this replica kept its share of
        receipts for the hour already (a centre flooding unknown ids)."""
        if not self._room_to_keep():
            self.receipts_dropped += 1
            return False
        docs = [
            records.receipt_record(k, stat, now, submitted_at) for k in ((keys,) if isinstance(keys, str) else keys)
        ]
        try:
            await self._sms.insert_many(docs, ordered=False)
        except BulkWriteError as error:
            # One that exists already: the centre repeated it (it did not see our answer).
            if any(e.get("code") != _DUPLICATE_KEY for e in error.details.get("writeErrors", [])):
                raise
        return True

    def _room_to_keep(self) -> bool:
        now = self._monotonic()
        while self._kept and self._kept[0] < now - 3600.0:
            self._kept.popleft()
        if len(self._kept) >= self._kept_limit:
            return False
        self._kept.append(now)
        return True

    async def claim_attempt(self, message_id: str, n: int, owner: str, now: dt.datetime) -> dict | None:
        """Claims attempt `n`; None if won, else the claim that holds it."""
        claim_id = records.attempt_id(message_id, n)
        outcome = await claims.take(self._sms, [{"_id": claim_id, "at": now, "owner": owner}])
        if outcome.all_won:
            return None
        return await self._sms.find_one({"_id": claim_id}) or {"_id": claim_id, "at": now}

    # -- housekeeping (the one scan) ---------------------------------------------

    async def purge(self, before: dt.datetime) -> int:
        """Every record older than `before` goes: a message's records, its part
        look-ups (a receipt later than that is no longer awaited), receipts
        that never found their message, and attempt claims."""
        result = await self._sms.delete_many({"at": {"$lt": before}})
        return result.deleted_count

    async def purge_kept_receipts(self, now: dt.datetime) -> int:
        """Receipts kept aside longer than `kept_receipt_age` go (by `_id`
        range: `r:` only)."""
        result = await self._sms.delete_many(
            {"_id": {"$gte": "r:", "$lt": "r;"}, "at": {"$lt": now - self.kept_receipt_age}}
        )
        return result.deleted_count


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    """Datetimes come back from BSON naive (UTC)."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=dt.UTC)
