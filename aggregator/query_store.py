"""Queries in MongoDB (collection `queries`): one document per query with the
state of every company's part embedded, so a query's progress is written in
one update.

Who writes a query document: the intake inserts it; after that only the
replica holding its lease (see work_queue.py). FerretDB v1 applies an update
as a read, then a write of the whole document, without a transaction, so two
concurrent writers to one document could lose each other's changes; one
writer per document at a time avoids that on both servers.

One running query per phone: each query of a phone gets the next `seq`, and
(phone_hash, seq) is a unique index, so of two concurrent submissions only
one insert succeeds, atomically on MongoDB and FerretDB alike.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

PENDING, DONE, FAILED = "PENDING", "DONE", "FAILED"
IN_PROGRESS, COMPLETED, PARTIAL = "IN_PROGRESS", "COMPLETED", "PARTIAL"


class QueryStore:
    def __init__(self, db: AsyncDatabase) -> None:
        self.collection = db["queries"]

    async def ensure_indexes(self) -> None:
        await self.collection.create_index([("phone_hash", ASCENDING), ("seq", ASCENDING)], unique=True)
        await self.collection.create_index([("open", ASCENDING), ("next_at", ASCENDING)])
        await self.collection.create_index([("open", ASCENDING), ("created_at", ASCENDING)])

    async def latest_for_phone(self, phone_hash: str) -> dict | None:
        return await self.collection.find_one(
            {"phone_hash": phone_hash},
            {"_id": 1, "seq": 1, "status": 1, "completed_at": 1},
            sort=[("seq", DESCENDING)],
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
        try:
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
                    "next_at": now,
                    "lease_gen": 0,
                    "companies": {
                        cid: {"state": PENDING, "count": None, "apps": [], "attempts": 0,
                              "polls": 0, "next_at": now, "ticket": ""}
                        for cid in companies
                    },
                    "sms": {"message_id": f"result:{query_id}", "state": "PENDING", "handed_over": False},
                }
            )
            return True
        except DuplicateKeyError:
            return False

    async def get(self, query_id: str) -> dict | None:
        return await self.collection.find_one({"_id": query_id})
