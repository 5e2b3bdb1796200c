"""Open work shared by the replicas of a service with leases: the
aggregator's queries (aggregator/work_queue.py) and the notifier's messages
(sms_notifier/send_queue.py).

Each unit of open work has one small item document
({_id, next_at, created_at, lease_gen}); it leaves when nothing more is to
be done. The open work is kept apart from the records it stands for because
FerretDB answers only `_id` look-ups from an index and scans the collection
for anything else: scanning the few open items is cheap, scanning every
record ever kept is not.

Claiming must be atomic on MongoDB and on FerretDB v1 alike. FerretDB has no
transactions and runs findAndModify and conditional updates as a read, then
a write of the whole document, so two replicas can both "win" a
`{lease_gen: n}` -> `{lease_gen: n+1}` update. A unique `_id` is the one
thing both enforce atomically, so a replica claims a due item by inserting
the lease document `<item id>#<n+1>`; exactly one insert succeeds. The
winner then moves the item's `next_at` a lease ahead (other replicas stop
seeing it as due) and checks, before each write of its round, that the item
still carries its generation: after a crash the lease runs out, another
replica claims a later generation, and a stalled former owner can no longer
write.

A claimer can die between its two writes (the lease document inserted, the
item not yet moved on). That generation must not block the item for ever:
a lease document older than a lease whose generation the item never took is
skipped, and the next generation claimed.

Every read and write of an item is by `_id` alone, the one filter FerretDB
runs on an index (tools/ferretdb/README.md); a fenced write is therefore a
read of the generation, then the write. The read is skipped while the
holder's own lease has surely not run out (it took or renewed it until a
time no other replica claims before, less a sixth of a lease for clocks):
the fence matters to a holder that stalled past its lease, and such a
holder, reading the clock afresh, finds the lease near its end and reads.
"""

from __future__ import annotations

import datetime as dt
import socket
import uuid

from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

# Generations a claim may skip. Each skip needs a lease document older than
# a lease: one abandoned claim, or, for an item added again after it had
# gone (the aggregator's repair pass), each of its earlier claims whose
# lease documents are still kept. The bound only guards against a bug.
MAX_SKIPPED = 1000


def replica_id() -> str:
    return f"{socket.gethostname()}:{uuid.uuid4().hex[:8]}"


class LeaseQueue:
    def __init__(self, items: AsyncCollection, leases: AsyncCollection, lease: dt.timedelta, owner: str | None) -> None:
        self._items = items
        self._leases = leases
        self.lease = lease
        self.owner = owner or replica_id()
        self._held: dict[str, tuple[int, dt.datetime]] = {}  # item id -> (generation, lease end), ours

    async def ensure_indexes(self) -> None:
        # Used by MongoDB; FerretDB scans these small collections either way.
        await self._items.create_index([("next_at", ASCENDING)])
        await self._leases.create_index([("at", ASCENDING)])

    async def add(self, item_id: str, now: dt.datetime) -> None:
        try:
            await self._items.insert_one({"_id": item_id, "next_at": now, "created_at": now, "lease_gen": 0})
        except DuplicateKeyError:
            pass  # already there (a concurrent repeat, or a repair pass)

    async def due(self, now: dt.datetime, limit: int) -> list[dict]:
        """Items due now, oldest first."""
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
                    {"_id": f"{item['_id']}#{gen}", "item": item["_id"], "owner": self.owner, "at": now}
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
                if gen > item["lease_gen"] + MAX_SKIPPED:
                    return None
        # Won the lease document. Had the item moved on since it was read
        # (claimed, released, finished), that claim would have inserted
        # `#<lease_gen + 1>` first and ours would have failed: lease documents
        # are kept far longer than any read is used (forget_leases). Only
        # after skipping an abandoned generation can `item` be behind.
        if gen > item["lease_gen"] + 1 and not await self.holds(item["_id"], item["lease_gen"]):
            return None
        await self._items.update_one(
            {"_id": item["_id"]}, {"$set": {"lease_gen": gen, "next_at": now + self.lease, "owner": self.owner}}
        )
        self._held[item["_id"]] = (gen, now + self.lease)
        return gen

    async def holds(self, item_id: str, gen: int, now: dt.datetime | None = None) -> bool:
        """Whether generation `gen` still holds the item: the fence checked
        before each write of a round. Given the time `now`, answered without
        a read while our own lease surely lasts."""
        held = self._held.get(item_id)
        if now is not None and held is not None and held[0] == gen and now < held[1] - self.lease / 6:
            return True
        item = await self._items.find_one({"_id": item_id}, {"lease_gen": 1})
        if item is not None and item["lease_gen"] == gen:
            return True
        self._held.pop(item_id, None)
        return False

    def let_go(self, item_id: str) -> None:
        """The round is over, however it ended: its lease is no longer ours
        to rely on (it runs out, or was released or finished already)."""
        self._held.pop(item_id, None)

    async def renew(self, item_id: str, gen: int, now: dt.datetime) -> bool:
        """False if the lease is lost: the holder must stop before doing anything more."""
        if not await self.holds(item_id, gen):
            return False
        await self._items.update_one({"_id": item_id}, {"$set": {"next_at": now + self.lease}})
        self._held[item_id] = (gen, now + self.lease)
        return True

    async def release(self, item_id: str, gen: int, next_at: dt.datetime, now: dt.datetime | None = None) -> None:
        """The round is over with work left: due again at `next_at`, for any replica."""
        if await self.holds(item_id, gen, now):
            await self._items.update_one({"_id": item_id}, {"$set": {"next_at": next_at}})
        self._held.pop(item_id, None)

    async def finish(self, item_id: str, gen: int, now: dt.datetime | None = None) -> None:
        """Nothing left to do: the item goes."""
        if await self.holds(item_id, gen, now):
            await self._items.delete_one({"_id": item_id})
        self._held.pop(item_id, None)

    async def drop(self, item_id: str) -> None:
        """The item's record is gone (purged): so is its work, whoever holds it."""
        await self._items.delete_one({"_id": item_id})
        self._held.pop(item_id, None)

    async def forget_leases(self, before: dt.datetime) -> int:
        """Lease documents only matter while a claimer may still hold an old
        view of the item (read at most a poll interval earlier): once the
        item carries generation n, or is gone, `#n` can no longer decide a
        race. They are deleted in bulk, not one write per round."""
        result = await self._leases.delete_many({"at": {"$lt": before}})
        return result.deleted_count

    async def backlog(self) -> tuple[int, dt.datetime | None]:
        """How many items have work left, and when the oldest was added."""
        count = await self._items.count_documents({})
        oldest = await self._items.find_one({}, {"created_at": 1}, sort=[("created_at", ASCENDING)])
        return count, (oldest["created_at"] if oldest else None)
