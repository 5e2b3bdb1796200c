"""Queries in MongoDB (collection `queries`), one document per query with the
state of every company's part embedded, so a query's progress is one
document; and the one-running-query-per-phone guard (`running_queries`,
keyed by phone hash: a second insert fails on the unique _id, atomically on
MongoDB and FerretDB alike)."""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

PENDING, DONE, FAILED = "PENDING", "DONE", "FAILED"
IN_PROGRESS, COMPLETED, PARTIAL = "IN_PROGRESS", "COMPLETED", "PARTIAL"


class QueryStore:
    def __init__(self, db: AsyncDatabase) -> None:
        self._queries = db["queries"]
        self._running = db["running_queries"]

    async def ensure_indexes(self) -> None:
        await self._queries.create_index([("phone_hash", 1), ("completed_at", -1)])
        await self._queries.create_index("status")

    async def claim_phone(self, phone_hash: str, query_id: str) -> str | None:
        """Marks the phone as having a running query; returns the running query id if it already has one."""
        try:
            await self._running.insert_one({"_id": phone_hash, "query_id": query_id})
            return None
        except DuplicateKeyError:
            doc = await self._running.find_one({"_id": phone_hash})
            return doc["query_id"] if doc else None

    async def release_phone(self, phone_hash: str, query_id: str) -> None:
        await self._running.delete_one({"_id": phone_hash, "query_id": query_id})

    async def last_completed_at(self, phone_hash: str) -> dt.datetime | None:
        doc = await self._queries.find_one(
            {"phone_hash": phone_hash, "completed_at": {"$ne": None}},
            {"completed_at": 1},
            sort=[("completed_at", -1)],
        )
        return doc["completed_at"] if doc else None

    async def insert(
        self,
        *,
        query_id: str,
        phone_hash: str,
        phone_box: dict,
        phone_masked: str,
        channel: str,
        requester_id: str,
        companies: Iterable[str],
        now: dt.datetime,
        deliver_by: dt.datetime,
    ) -> None:
        await self._queries.insert_one(
            {
                "_id": query_id,
                "phone_hash": phone_hash,
                "phone": phone_box,
                "phone_masked": phone_masked,
                "channel": channel,
                "requester_id": requester_id,
                "status": IN_PROGRESS,
                "created_at": now,
                "deliver_by": deliver_by,
                "completed_at": None,
                "companies": {
                    cid: {"state": PENDING, "count": None, "apps": [], "attempts": 0}
                    for cid in companies
                },
                "sms": {"message_id": f"result:{query_id}", "state": "PENDING"},
            }
        )

    async def get(self, query_id: str) -> dict | None:
        return await self._queries.find_one({"_id": query_id})

    async def in_progress(self) -> list[dict]:
        return await self._queries.find({"status": IN_PROGRESS}).to_list(None)

    async def record_company(self, query_id: str, company: str, part: dict) -> None:
        await self._queries.update_one(
            {"_id": query_id, f"companies.{company}.state": PENDING},
            {"$set": {f"companies.{company}": part}},
        )

    async def finish(
        self, query_id: str, status: str, sms_state: str, now: dt.datetime
    ) -> None:
        await self._queries.update_one(
            {"_id": query_id, "status": IN_PROGRESS},
            {"$set": {"status": status, "completed_at": now, "sms.state": sms_state}},
        )

    async def set_sms_state(self, query_id: str, state: str) -> None:
        await self._queries.update_one({"_id": query_id}, {"$set": {"sms.state": state}})
