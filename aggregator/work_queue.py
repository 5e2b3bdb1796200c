"""Sharing the queries' work between aggregator replicas with leases.

The work to do lives in `work_items`, one small document per unfinished
query ({_id: query id, next_at, created_at, lease_gen}); a query leaves it
when nothing more is to be done. Keeping the open work apart from the
queries matters on FerretDB, which filters only `_id` lookups in the
database and scans a collection for anything else: scanning the few open
items is cheap, scanning every query ever made is not.

A replica claims a due item by inserting a lease document
`<query id>#<n>`, n one more than the item's `lease_gen`: the unique _id
lets exactly one claimer win, atomically on MongoDB and on FerretDB (whose
find-and-modify is a read then a write, so two claimers could both "win" a
conditional update). The winner then writes `lease_gen = n` and moves the
item's `next_at` a lease length ahead, so other replicas stop seeing it as
due. The owner's later writes are fenced on the generation: after a crash
the lease runs out, another replica claims n+1, and a stalled former owner
can no longer write.
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


class WorkQueue:
    def __init__(self, db: AsyncDatabase, lease: dt.timedelta, owner: str | None = None) -> None:
        self._items = db["work_items"]
        self._leases = db["leases"]
        self._queries = db["queries"]
        self.lease = lease
        self.owner = owner or replica_id()

    async def add(self, query_id: str, now: dt.datetime) -> None:
        try:
            await self._items.insert_one({"_id": query_id, "next_at": now, "created_at": now, "lease_gen": 0})
        except DuplicateKeyError:
            pass  # already there (a repair pass, or a retry)

    async def due(self, now: dt.datetime, limit: int) -> list[dict]:
        """Items whose work is due, in acceptance order."""
        cursor = self._items.find({"next_at": {"$lte": now}}, sort=[("created_at", ASCENDING)], limit=limit)
        return await cursor.to_list(limit)

    async def claim(self, item: dict, now: dt.datetime) -> int | None:
        """The lease generation won, or None if another replica has it."""
        gen = item["lease_gen"] + 1
        try:
            await self._leases.insert_one(
                {"_id": f"{item['_id']}#{gen}", "query_id": item["_id"], "owner": self.owner, "at": now}
            )
        except DuplicateKeyError:
            return None
        result = await self._items.update_one(
            {"_id": item["_id"], "lease_gen": gen - 1},
            {"$set": {"lease_gen": gen, "next_at": now + self.lease}},
        )
        return gen if result.matched_count == 1 else None

    async def renew(self, query_id: str, gen: int, now: dt.datetime) -> bool:
        result = await self._items.update_one(
            {"_id": query_id, "lease_gen": gen}, {"$set": {"next_at": now + self.lease}}
        )
        return result.matched_count == 1

    async def write(self, query_id: str, gen: int, changes: dict) -> bool:
        """Applies the owner's `$set` changes to the query; False if the lease
        has passed to a later generation.

        The fence is checked on the (small) work item, and the query is then
        updated by `_id` alone: FerretDB runs a filter in the database only
        when it is exactly {_id: ...}, and scans the whole collection for
        any other, which on `queries` grows with every query ever made.
        """
        item = await self._items.find_one({"_id": query_id})
        if item is None or item["lease_gen"] != gen:
            return False
        await self._queries.update_one({"_id": query_id}, {"$set": changes})
        return True

    async def reschedule(self, query_id: str, gen: int, next_at: dt.datetime) -> None:
        """Ends the round: the lease is released and the item is due again at `next_at`."""
        await self._items.update_one({"_id": query_id, "lease_gen": gen}, {"$set": {"next_at": next_at}})

    async def finish(self, query_id: str, gen: int) -> None:
        """Nothing more to do for the query."""
        await self._items.delete_one({"_id": query_id, "lease_gen": gen})

    async def drop(self, query_id: str) -> None:
        await self._items.delete_one({"_id": query_id})

    async def backlog(self) -> tuple[int, dt.datetime | None]:
        """How many queries have work left, and when the oldest was accepted."""
        count = await self._items.count_documents({})
        oldest = await self._items.find_one({}, {"created_at": 1}, sort=[("created_at", ASCENDING)])
        return count, (oldest["created_at"] if oldest else None)
