"""The open queries, owned by aggregator replicas for as long as they live.

The work item is the open query itself (collection `work`, query_store.py):
the accepting replica inserts it as its own (`owner`, lease generation 1)
and keeps it in memory, running each of its rounds when due without a scan,
a claim or a read. Ownership lasts while the owner's heartbeat does
(yztc/replicas.py), so nothing per item is renewed and nothing is polled.

When an owner is gone (its heartbeat older than a lease, or it left at a
graceful stop), the others scan `work` once for its queries and take each
over by inserting the lease document `<query id>#<gen+1>` (a unique insert:
exactly one replica wins; yztc/lease_queue.py, whose claim this reuses,
including its skip of a generation whose claimer died half-way). A holder
writes only while its own heartbeat surely holds (`Replicas.fresh`), the
fence against a stalled replica whose work was taken over meanwhile.
"""

from __future__ import annotations

import datetime as dt

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from yztc import claims
from yztc.lease_queue import LeaseQueue
from yztc.replicas import Replicas

OWNED_GEN = 1


class WorkQueue(LeaseQueue):
    def __init__(self, db: AsyncDatabase, replicas: Replicas) -> None:
        super().__init__(claims.majority(db["work"]), db["leases"], replicas.lease, replicas.owner)
        self._replicas = replicas

    def _sync_owner(self) -> None:
        self.owner = self._replicas.owner

    async def add_owned(self, doc: dict, now: dt.datetime) -> bool:
        """Inserts a new open query owned by this replica; False if the id exists already."""
        await self._replicas.ensure_fresh()
        self._sync_owner()
        try:
            await self._items.insert_one(
                {**doc, "lease_gen": OWNED_GEN, "next_at": now, "created_at": now, "owner": self.owner}
            )
        except DuplicateKeyError:
            return False
        return True

    def may_write(self) -> bool:
        """Whether this replica may still write what it owns: its heartbeat
        surely holds its work (no read)."""
        return self._replicas.fresh()

    async def write(self, query_id: str, gen: int, changes: dict, now: dt.datetime | None = None) -> bool:
        """Applies the owner's `$set` changes; False if this replica may no longer write."""
        if not self._replicas.fresh():
            return False
        await self._items.update_one({"_id": query_id}, {"$set": changes})
        return True

    async def end_round(
        self, query_id: str, gen: int, changes: dict, next_at: dt.datetime, now: dt.datetime | None = None
    ) -> bool:
        """The round's changes and when the next is due, in one update; False,
        writing nothing, if this replica may no longer write."""
        return await self.write(query_id, gen, {**changes, "next_at": next_at})

    async def orphans(self, alive: set[str], limit: int = 10_000) -> list[dict]:
        """Open queries whose owner is not among the live replicas (a full
        scan: only when an owner has gone)."""
        found = []
        async for doc in self._items.find({}):
            if doc.get("owner") not in alive:
                found.append(doc)
                if len(found) >= limit:
                    break
        return found

    async def take_over(self, doc: dict, now: dt.datetime) -> int | None:
        """The generation won for an orphan, or None if another replica took it."""
        self._sync_owner()
        return await self.claim(doc, now)
