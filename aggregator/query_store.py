"""Queries in MongoDB (collection `queries`): one document per query with the
state of every company's part embedded, so a query's progress is written in
one update.

Who writes a query document: the intake inserts it; after that only the
replica holding its lease (see work_queue.py). FerretDB v1 applies an update
as a read, then a write of the whole document, without a transaction, so two
concurrent writers to one document could lose each other's changes; one
writer per document at a time avoids that on both servers.

One running query per phone (`phones`, keyed by phone hash, points at the
phone's latest query): a submission takes the phone's next number by
inserting `phone_slots` `<phone hash>:<n>`, so of two concurrent submissions
only one gets on, atomically on MongoDB and FerretDB alike. Every read here
is by `_id`, the one lookup FerretDB does not answer by scanning.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

PENDING, DONE, FAILED = "PENDING", "DONE", "FAILED"
IN_PROGRESS, COMPLETED, PARTIAL = "IN_PROGRESS", "COMPLETED", "PARTIAL"


class QueryStore:
    def __init__(self, db: AsyncDatabase) -> None:
        self.collection = db["queries"]
        self._phones = db["phones"]
        self._slots = db["phone_slots"]

    async def ensure_indexes(self) -> None:
        await self.collection.create_index([("status", ASCENDING), ("completed_at", ASCENDING)])

    async def latest_for_phone(self, phone_hash: str) -> dict | None:
        """The phone's latest query (`_id`, `seq`, `status`, `completed_at`), if any."""
        phone = await self._phones.find_one({"_id": phone_hash})
        if phone is None:
            return None
        doc = await self.collection.find_one({"_id": phone["query_id"]}, {"status": 1, "completed_at": 1})
        if doc is None:  # purged after the retention period: long completed
            return {"_id": phone["query_id"], "seq": phone["seq"], "status": "COMPLETED", "completed_at": None}
        return {**doc, "seq": phone["seq"]}

    async def take_slot(self, phone_hash: str, seq: int, query_id: str) -> bool:
        """The phone's query number `seq`, for `query_id`; False if taken."""
        try:
            await self._slots.insert_one({"_id": f"{phone_hash}:{seq}", "query_id": query_id, "at": dt.datetime.now(dt.UTC)})
        except DuplicateKeyError:
            return False
        return True

    async def slot(self, phone_hash: str, seq: int) -> dict | None:
        return await self._slots.find_one({"_id": f"{phone_hash}:{seq}"})

    async def point_phone(self, phone_hash: str, seq: int, query_id: str) -> None:
        # Only the slot's winner writes, one submission at a time per phone.
        await self._phones.replace_one(
            {"_id": phone_hash}, {"_id": phone_hash, "seq": seq, "query_id": query_id}, upsert=True
        )

    async def insert(
        self,
        *,
        query_id: str,
        seq: int,
        phone_hash: str,
        phone_box: dict,
        phone_masked: str,
        channel: str,
        requester_id: str,
        companies: Iterable[str],
        now: dt.datetime,
        deliver_by: dt.datetime,
        finalize_at: dt.datetime,
        terms_version: str,
        trace_carrier: dict[str, str],
    ) -> bool:
        """False if another query of the phone took this seq first."""
        if not await self.take_slot(phone_hash, seq, query_id):
            return False
        await self.collection.insert_one(
            {
                "_id": query_id,
                "phone_hash": phone_hash,
                "seq": seq,
                "phone": phone_box,
                "phone_masked": phone_masked,
                "channel": channel,
                "requester_id": requester_id,
                "consent": {"at": now, "terms_version": terms_version},
                # W3C trace context of the accepting request: every round
                # of the query continues that one trace.
                "trace": trace_carrier,
                "status": IN_PROGRESS,
                "open": True,
                "created_at": now,
                "deliver_by": deliver_by,
                "finalize_at": finalize_at,
                "completed_at": None,
                "lease_gen": 0,
                "companies": {
                    cid: {"state": PENDING, "count": None, "apps": [], "attempts": 0,
                          "polls": 0, "next_at": now, "ticket": ""}
                    for cid in companies
                },
                "sms": {"message_id": f"result:{query_id}", "state": "PENDING", "handed_over": False},
            }
        )
        await self.point_phone(phone_hash, seq, query_id)
        return True

    async def get(self, query_id: str) -> dict | None:
        return await self.collection.find_one({"_id": query_id})
