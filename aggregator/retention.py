"""Deleting personal data once it is no longer needed (FerretDB has no TTL
indexes, so a job does it; on MongoDB it is the same job).

A closed query keeps its personal fields (encrypted phone, phone hash,
masked phone, requester) for the retention period after completion, then
loses them; what stays is an anonymous record per query (`query_stats`:
day, channel, status, each company's count) from which daily counters per
company are computed. Expired codes, code events, locks and leases go too.
"""
from __future__ import annotations

import datetime as dt
import logging

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

log = logging.getLogger(__name__)

PERSONAL_FIELDS = ("phone", "phone_hash", "phone_masked", "requester_id", "trace")


class Retention:
    def __init__(self, db: AsyncDatabase, keep: dt.timedelta) -> None:
        self._db = db
        self._keep = keep

    async def ensure_indexes(self) -> None:
        await self._db["queries"].create_index([("open", 1), ("completed_at", 1)])
        await self._db["query_stats"].create_index("day")

    async def purge(self, now: dt.datetime, batch: int = 500) -> int:
        """One pass; returns how many queries lost their personal data."""
        queries = self._db["queries"]
        stale = await queries.find(
            {"open": False, "completed_at": {"$lte": now - self._keep}, "purged_at": None},
            limit=batch,
        ).to_list(batch)
        for doc in stale:
            await self._keep_statistics(doc)
            await queries.update_one(
                {"_id": doc["_id"]},  # closed, so no owner writes it any more
                {"$unset": {name: "" for name in PERSONAL_FIELDS}, "$set": {"purged_at": now}},
            )
            # The phone's pointer to this query and its number go too (a newer
            # query of the phone has replaced the pointer, and keeps it).
            await self._db["phones"].delete_one({"_id": doc["phone_hash"], "query_id": doc["_id"]})
            await self._db["phone_slots"].delete_one({"_id": f"{doc['phone_hash']}:{doc['seq']}"})
        await self._forget_events(now)
        if stale:
            log.info("personal data purged", extra={"fields": {"queries": len(stale)}})
        return len(stale)

    async def repair(self, now: dt.datetime, queue) -> int:
        """Gives a work item back to any query left without one (a crash
        between accepting it and queueing it); returns how many."""
        items = self._db["work_items"]
        repaired = 0
        async for doc in self._db["queries"].find({"open": True}, {"_id": 1, "created_at": 1}):
            if now - doc["created_at"] <= dt.timedelta(seconds=30) or await items.find_one({"_id": doc["_id"]}):
                continue
            # The scan may be older than the query's last round: a query that
            # closed meanwhile has no item because it needs none.
            current = await self._db["queries"].find_one({"_id": doc["_id"]}, {"open": 1})
            if current and current.get("open"):
                await queue.add(doc["_id"], now)
                repaired += 1
        if repaired:
            log.warning("work items repaired", extra={"fields": {"queries": repaired}})
        return repaired

    async def _keep_statistics(self, doc: dict) -> None:
        try:
            await self._db["query_stats"].insert_one(
                {
                    "_id": doc["_id"],
                    "day": doc["created_at"].strftime("%Y-%m-%d"),
                    "channel": doc["channel"],
                    "status": doc["status"],
                    "companies": {
                        cid: part["count"] if part["state"] == "DONE" else None
                        for cid, part in doc["companies"].items()
                    },
                }
            )
        except DuplicateKeyError:
            pass  # kept by an earlier pass that stopped before the unset

    async def _forget_events(self, now: dt.datetime) -> None:
        day_ago = now - dt.timedelta(hours=24)
        await self._db["verification_codes"].delete_many({"expires_at": {"$lte": day_ago}})
        await self._db["code_sends"].delete_many({"at": {"$lte": day_ago}})
        await self._db["code_failures"].delete_many({"at": {"$lte": day_ago}})
        await self._db["code_uses"].delete_many({"at": {"$lte": day_ago}})
        await self._db["phone_locks"].delete_many({"until": {"$lte": now}})
        await self._db["leases"].delete_many({"at": {"$lte": day_ago}})
        # Channel quota slots (channel_quotas.py) matter for their second only.
        await self._db["channel_slots"].delete_many({"second": {"$lt": int(now.timestamp()) - 60}})

    async def daily_counts(self, day: str) -> dict[str, dict[str, int]]:
        """Per company: queries answered and accounts counted that day (anonymous)."""
        totals: dict[str, dict[str, int]] = {}
        async for row in self._db["query_stats"].find({"day": day}):
            for cid, count in row["companies"].items():
                entry = totals.setdefault(cid, {"answered": 0, "accounts": 0})
                if count is not None:
                    entry["answered"] += 1
                    entry["accounts"] += count
        return totals
