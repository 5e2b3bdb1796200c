"""The messages waiting to be submitted, shared by every notifier replica
with leases.

Each PENDING message has one small document in `sms_queue`
({_id: message id, next_at, created_at, lease_gen}); it leaves when the
message is SENT or FAILED. The open work is kept apart from `sms_messages`
because FerretDB answers only `_id` look-ups from an index and scans the
collection for anything else: scanning the few waiting messages is cheap,
scanning every message kept for GetStatus is not.

Claiming must be atomic on MongoDB and on FerretDB v1 alike. FerretDB has no
transactions and runs findAndModify and conditional updates as a read, then
a write of the whole document, so two replicas can both "win" a
`{lease_gen: n}` → `{lease_gen: n+1}` update. A unique `_id` is the one
thing both enforce atomically, so a replica claims a due message by
inserting the lease document `<message id>#<n+1>` in `sms_leases`; exactly
one insert succeeds. The winner then moves the item's `next_at` a lease
ahead (other replicas stop seeing it as due) and checks, before each write
of its round, that the item still carries its generation: after a crash the
lease runs out, another replica claims n+2, and a stalled former owner can
no longer write.
"""
from __future__ import annotations

import datetime as dt
import socket
import uuid

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError


def replica_id() -> str:
    return f"{socket.gethostname()}:{uuid.uuid4().hex[:8]}"


class SendQueue:
    def __init__(self, db: AsyncDatabase, lease: dt.timedelta, owner: str | None = None) -> None:
        self._items = db["sms_queue"]
        self._leases = db["sms_leases"]
        self.lease = lease
        self.owner = owner or replica_id()

    async def ensure_indexes(self) -> None:
        # Used by MongoDB; FerretDB scans these small collections either way.
        await self._items.create_index([("next_at", ASCENDING)])
        await self._leases.create_index([("at", ASCENDING)])

    async def add(self, message_id: str, now: dt.datetime) -> None:
        try:
            await self._items.insert_one({"_id": message_id, "next_at": now, "created_at": now, "lease_gen": 0})
        except DuplicateKeyError:
            pass  # already queued (a concurrent repeat of Send)

    async def due(self, now: dt.datetime, limit: int) -> list[dict]:
        """Items due now, oldest message first."""
        cursor = self._items.find({"next_at": {"$lte": now}}, sort=[("created_at", ASCENDING)], limit=limit)
        return await cursor.to_list(limit)

    async def next_due_at(self) -> dt.datetime | None:
        item = await self._items.find_one({}, {"next_at": 1}, sort=[("next_at", ASCENDING)])
        return item["next_at"] if item else None

    async def claim(self, item: dict, now: dt.datetime) -> int | None:
        """The lease generation won, or None if another replica holds the item."""
        gen = item["lease_gen"] + 1
        while True:
            try:
                await self._leases.insert_one(
                    {"_id": f"{item['_id']}#{gen}", "message_id": item["_id"], "owner": self.owner, "at": now}
                )
                break
            except DuplicateKeyError:
                taken = await self._leases.find_one({"_id": f"{item['_id']}#{gen}"})
                if taken is not None and now - taken["at"] < self.lease:
                    return None  # another replica's claim, alive
                # That claimer died between its lease document and moving the
                # item on (or the document is being forgotten): its
                # generation is skipped, else the item would stay unclaimable.
                gen += 1
                if gen > item["lease_gen"] + 3:
                    return None
        # Won the lease document; but `item` may be stale (the message moved
        # on, finished or claimed and released, since it was read).
        if not await self.holds(item["_id"], item["lease_gen"]):
            return None
        await self._items.update_one({"_id": item["_id"]}, {"$set": {"lease_gen": gen, "next_at": now + self.lease}})
        return gen

    async def holds(self, message_id: str, gen: int) -> bool:
        """Whether generation `gen` still holds the message: the fence checked
        before each write of a round. Every read and write here is by `_id`
        alone, the one filter FerretDB runs on an index; it scans for any
        other (tools/ferretdb/README.md)."""
        item = await self._items.find_one({"_id": message_id}, {"lease_gen": 1})
        return item is not None and item["lease_gen"] == gen

    async def renew(self, message_id: str, gen: int, now: dt.datetime) -> bool:
        """False if the lease is lost: the holder must stop before submitting anything more."""
        if not await self.holds(message_id, gen):
            return False
        await self._items.update_one({"_id": message_id}, {"$set": {"next_at": now + self.lease}})
        return True

    async def release(self, message_id: str, gen: int, next_at: dt.datetime) -> None:
        """The round is over with work left: due again at `next_at`, for any replica."""
        if await self.holds(message_id, gen):
            await self._items.update_one({"_id": message_id}, {"$set": {"next_at": next_at}})

    async def finish(self, message_id: str, gen: int) -> None:
        """Nothing left to submit: the item goes."""
        if await self.holds(message_id, gen):
            await self._items.delete_one({"_id": message_id})

    async def forget_leases(self, before: dt.datetime) -> int:
        """Lease documents only matter while a claimer may still hold an old
        view of the item (read at most a poll interval earlier): once the
        item carries generation n, or is gone, `#n` can no longer decide a
        race. They are deleted in bulk, not one write per round."""
        result = await self._leases.delete_many({"at": {"$lt": before}})
        return result.deleted_count

    async def backlog(self) -> tuple[int, dt.datetime | None]:
        """How many messages wait to be submitted, and when the oldest was accepted."""
        count = await self._items.count_documents({})
        oldest = await self._items.find_one({}, {"created_at": 1}, sort=[("created_at", ASCENDING)])
        return count, (oldest["created_at"] if oldest else None)
