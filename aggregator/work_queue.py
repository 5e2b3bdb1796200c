"""The queries' open work, shared between aggregator replicas with leases
(the mechanism, and why a lease is a unique insert: yztc/lease_queue.py).

One item per unfinished query in `work_items`, keyed by the query id; lease
documents `<query id>#<generation>` in `leases`. The query document itself
has one writer at a time, the holder of the current generation: its writes
are fenced on the item's generation.
"""
from __future__ import annotations

import datetime as dt

from pymongo.asynchronous.database import AsyncDatabase

from yztc.lease_queue import LeaseQueue


class WorkQueue(LeaseQueue):
    def __init__(self, db: AsyncDatabase, lease: dt.timedelta, owner: str | None = None) -> None:
        super().__init__(db["work_items"], db["leases"], lease, owner)
        self._queries = db["queries"]

    async def write(self, query_id: str, gen: int, changes: dict, now: dt.datetime | None = None) -> bool:
        """Applies the owner's `$set` changes to the query; False if the lease
        has passed to a later generation."""
        if not await self.holds(query_id, gen, now):
            return False
        await self._queries.update_one({"_id": query_id}, {"$set": changes})
        return True

    async def end_round(
        self, query_id: str, gen: int, changes: dict, next_at: dt.datetime | None, now: dt.datetime | None = None
    ) -> bool:
        """The round's last write and the end of its lease, behind one fence
        check: the query gets `changes`, then its item is due again at
        `next_at`, or goes when `next_at` is None (nothing more to do).
        False, writing nothing, if the lease has passed on."""
        if not await self.holds(query_id, gen, now):
            return False
        if changes:
            await self._queries.update_one({"_id": query_id}, {"$set": changes})
        if next_at is None:
            await self.drop(query_id)
        else:
            await self._items.update_one({"_id": query_id}, {"$set": {"next_at": next_at}})
            self.let_go(query_id)
        return True
