"""Which replicas of a service are alive: a heartbeat document per replica
(collection `replicas`, `_id` the replica's owner id, `beat_at`), written
every sixth of a lease and read by every replica as often.

Why: work a replica owns (the aggregator's open queries) is then held for
as long as its owner lives, with no lease per item to renew and no scan of
the work to find what is due. Other replicas look for orphans only when an
owner's heartbeat is older than `lease`, which, outside crashes and
deployments, is never; on FerretDB every scan of a large collection reads
and decodes each document in full (tried: 20,000 open queries cost seconds
of its CPU per scan), so "never" is what makes a backlog cheap.

Fencing is by time, as with leases (yztc/lease_queue.py): a replica whose
own last heartbeat is older than `lease` less a margin for clocks must stop
writing what it owns (`fresh` is False) and start again under a new owner
id; by then others may have taken its work over. Work whose owner is not
among the live replicas is an orphan (a replica that stopped gracefully
`leave`s at once).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Callable

from pymongo.asynchronous.database import AsyncDatabase

from yztc import claims
from yztc.lease_queue import replica_id

log = logging.getLogger(__name__)


class Replicas:
    def __init__(
        self,
        db: AsyncDatabase,
        service: str,
        lease: dt.timedelta,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._docs = claims.majority(db["replicas"])
        self._service = service
        self.lease = lease
        # A heartbeat every sixth of a lease: four may fail or be slow before
        # the replica gives up what it owns.
        self.beat = lease.total_seconds() / 6
        self._clock = clock
        self._monotonic = monotonic
        self.owner = replica_id()
        self._beaten_at: float | None = None  # monotonic time of our last heartbeat the database took
        self._others: dict[str, dt.datetime] = {}
        self._task: asyncio.Task | None = None
        self._lost_callbacks: list[Callable[[], None]] = []

    async def start(self) -> None:
        """The first heartbeat (raises if the database is away), then one every `beat` seconds."""
        await self.heartbeat()
        self._task = asyncio.create_task(self._loop(), name=f"{self._service}-heartbeat")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def heartbeat(self) -> None:
        started = self._monotonic()
        await self._docs.replace_one(
            {"_id": self.owner}, {"_id": self.owner, "service": self._service, "beat_at": self._clock()}, upsert=True
        )
        self._beaten_at = started

    def fresh(self) -> bool:
        """Whether our heartbeat surely still holds our work for us: taken
        less than a lease ago, less a sixth of a lease for clocks."""
        if self._beaten_at is None:
            return False
        return self._monotonic() - self._beaten_at < self.lease.total_seconds() * 5 / 6

    def on_identity_lost(self, callback: Callable[[], None]) -> None:
        """`callback()` runs (synchronously) when our heartbeat went stale and
        we take a new id: drop everything owned under the old one."""
        self._lost_callbacks.append(callback)

    async def ensure_fresh(self) -> None:
        """Makes our heartbeat fresh before writing what we own. If it went
        stale (others may be taking our work over), first carry on as a new
        replica: the callbacks drop what we owned, and our old id is an
        orphan like any dead replica's (whoever looks first, us included,
        takes its work over). Raises PyMongoError if the database is away."""
        if self.fresh():
            return
        if self._beaten_at is not None:
            old, self.owner = self.owner, replica_id()
            self._beaten_at = None
            log.warning("heartbeat stale; new replica id", extra={"fields": {"old": old, "new": self.owner}})
            for callback in self._lost_callbacks:
                callback()
        await self.heartbeat()

    async def alive(self) -> set[str]:
        """Owner ids of this service whose heartbeat is younger than a lease,
        ours included (one read of a tiny collection). Heartbeat documents
        of replicas gone for ten leases are deleted on the way."""
        now = self._clock()
        alive = {self.owner}
        for doc in await self._docs.find({"service": self._service}).to_list(None):
            age = now - doc["beat_at"]
            if age <= self.lease:
                alive.add(doc["_id"])
            elif age > self.lease * 10:
                await self._docs.delete_one({"_id": doc["_id"]})
        return alive

    async def leave(self) -> None:
        """At a graceful stop: our work is free for the others at once."""
        await self._docs.delete_one({"_id": self.owner})

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.beat)
            try:
                await (self.ensure_fresh() if not self.fresh() else self.heartbeat())
            except Exception as error:  # the database is away: `fresh` will say when to stop
                log.warning("heartbeat failed", extra={"fields": {"error": type(error).__name__}})
