"""The open queries, shared between aggregator replicas with leases (the
mechanism, and why a lease is a unique insert: yztc/lease_queue.py).

The work item is the open query itself (collection `work`, query_store.py):
the accepting replica inserts it already held (generation 1, due again only
when that lease would have run out), so the round starts on the value in
hand without a scan, a claim or a read. Takeovers claim later generations
with lease documents `<query id>#<gen>` in `leases`, as before. The holder
writes the document alone, each write fenced on its generation.
"""
from __future__ import annotations

import datetime as dt

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from yztc import claims
from yztc.lease_queue import LeaseQueue

OWNED_GEN = 1


class WorkQueue(LeaseQueue):
    def __init__(self, db: AsyncDatabase, lease: dt.timedelta, owner: str | None = None) -> None:
        super().__init__(claims.majority(db["work"]), db["leases"], lease, owner)

    async def add_owned(self, doc: dict, now: dt.datetime) -> bool:
        """Inserts a new open query held by this replica (generation 1) and
        due for others only when that lease would have run out; False if the
        id exists already."""
        try:
            await self._items.insert_one(
                {**doc, "lease_gen": OWNED_GEN, "next_at": now + self.lease, "created_at": now, "owner": self.owner}
            )
        except DuplicateKeyError:
            return False
        self._held[doc["_id"]] = (OWNED_GEN, now + self.lease)
        return True

    async def add_due(self, doc: dict, now: dt.datetime) -> bool:
        """Inserts a new open query due now for any replica (when this one has
        no room for another round: max_in_flight)."""
        try:
            await self._items.insert_one({**doc, "lease_gen": 0, "next_at": now, "created_at": now})
        except DuplicateKeyError:
            return False
        return True

    async def write(self, query_id: str, gen: int, changes: dict, now: dt.datetime | None = None) -> bool:
        """Applies the holder's `$set` changes; False if the lease has passed
        to a later generation."""
        if not await self.holds(query_id, gen, now):
            return False
        await self._items.update_one({"_id": query_id}, {"$set": changes})
        return True

    async def end_round(
        self, query_id: str, gen: int, changes: dict, next_at: dt.datetime, now: dt.datetime | None = None
    ) -> bool:
        """The round's last write and the end of its lease in one update: the
        query gets `changes` and is due again at `next_at`. False, writing
        nothing, if the lease has passed on."""
        if not await self.holds(query_id, gen, now):
            return False
        await self._items.update_one({"_id": query_id}, {"$set": {**changes, "next_at": next_at}})
        self.let_go(query_id)
        return True
