"""Numbers locked for 24 hours after a failed identity check (collection
`phone_locks`, keyed by phone hash)."""
from __future__ import annotations

import datetime as dt

from pymongo.asynchronous.database import AsyncDatabase

LOCK = dt.timedelta(hours=24)


class PhoneLocks:
    def __init__(self, db: AsyncDatabase) -> None:
        self._locks = db["phone_locks"]

    async def ensure_indexes(self) -> None:
        await self._locks.create_index("until")

    async def locked_until(self, phone_hash: str, now: dt.datetime) -> dt.datetime | None:
        doc = await self._locks.find_one({"_id": phone_hash})
        return doc["until"] if doc and doc["until"] > now else None

    async def lock(self, phone_hash: str, now: dt.datetime) -> dt.datetime:
        until = now + LOCK
        await self._locks.replace_one({"_id": phone_hash}, {"_id": phone_hash, "until": until}, upsert=True)
        return until
