"""Sharing the queries' work between aggregator replicas with leases.

A replica claims a due query by inserting a lease document `<query id>#<n>`
where n is one more than the query's `lease_gen`: the unique _id lets exactly
one claimer win, atomically on MongoDB and on FerretDB (whose
find-and-modify is a read then a write, so two claimers could both "win" a
conditional update). The winner then writes `lease_gen = n` and pushes the
query's `next_at` a lease length ahead, so other replicas stop seeing it as
due. Every later write of the owner is fenced on `lease_gen = n`: after a
crash, the lease runs out (next_at passes), another replica claims n+1, and
a stalled former owner can no longer write.
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
        self._queries = db["queries"]
        self._leases = db["leases"]
        self.lease = lease
        self.owner = owner or replica_id()

    async def due(self, now: dt.datetime, limit: int) -> list[dict]:
        """Open queries whose work is due, in acceptance order."""
        cursor = self._queries.find(
            {"open": True, "next_at": {"$lte": now}},
            sort=[("created_at", ASCENDING)],
            limit=limit,
        )
        return await cursor.to_list(limit)

    async def claim(self, doc: dict, now: dt.datetime) -> int | None:
        """The lease generation won, or None if another replica has it."""
        gen = doc["lease_gen"] + 1
        try:
            await self._leases.insert_one(
                {"_id": f"{doc['_id']}#{gen}", "query_id": doc["_id"], "owner": self.owner, "at": now}
            )
        except DuplicateKeyError:
            return None
        result = await self._queries.update_one(
            {"_id": doc["_id"], "lease_gen": gen - 1},
            {"$set": {"lease_gen": gen, "next_at": now + self.lease}},
        )
        return gen if result.matched_count == 1 else None

    async def renew(self, query_id: str, gen: int, now: dt.datetime) -> bool:
        result = await self._queries.update_one(
            {"_id": query_id, "lease_gen": gen}, {"$set": {"next_at": now + self.lease}}
        )
        return result.matched_count == 1

    async def write(self, query_id: str, gen: int, changes: dict) -> bool:
        """Applies the owner's `$set` changes; False if the lease was lost."""
        result = await self._queries.update_one({"_id": query_id, "lease_gen": gen}, {"$set": changes})
        return result.matched_count == 1

    async def backlog(self) -> tuple[int, dt.datetime | None]:
        """How many queries are open, and when the oldest of them was accepted."""
        count = await self._queries.count_documents({"open": True, "status": "IN_PROGRESS"})
        oldest = await self._queries.find_one(
            {"open": True, "status": "IN_PROGRESS"}, {"created_at": 1}, sort=[("created_at", ASCENDING)]
        )
        return count, (oldest["created_at"] if oldest else None)
