"""Verification codes in MongoDB (collection `verification_codes`): one
document per phone hash, holding only the code's keyed hash."""
from __future__ import annotations

import datetime as dt

from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

CODE_TTL = dt.timedelta(minutes=5)
RESEND_AFTER = dt.timedelta(seconds=60)
MAX_WRONG_ATTEMPTS = 5


class CodeStore:
    def __init__(self, db: AsyncDatabase) -> None:
        self._codes = db["verification_codes"]

    async def ensure_indexes(self) -> None:
        await self._codes.create_index("expires_at")

    async def last_sent_at(self, phone_hash: str) -> dt.datetime | None:
        doc = await self._codes.find_one({"_id": phone_hash}, {"sent_at": 1})
        return doc["sent_at"] if doc else None

    async def put(self, phone_hash: str, code_hash: str, now: dt.datetime) -> None:
        """A new code replaces any earlier one for the phone."""
        await self._codes.replace_one(
            {"_id": phone_hash},
            {
                "_id": phone_hash,
                "code_hash": code_hash,
                "sent_at": now,
                "expires_at": now + CODE_TTL,
                "wrong_attempts": 0,
                "used": False,
            },
            upsert=True,
        )

    async def consume(self, phone_hash: str, code_hash: str, now: dt.datetime) -> str:
        """'ok' if the code was right and is now used; else 'invalid' or 'expired'.

        The conditional update on `used: False` makes a code single-use even
        when two submissions race: only one update matches.
        """
        doc = await self._codes.find_one_and_update(
            {"_id": phone_hash, "code_hash": code_hash, "used": False,
             "wrong_attempts": {"$lt": MAX_WRONG_ATTEMPTS}},
            {"$set": {"used": True, "used_at": now}},
            return_document=ReturnDocument.BEFORE,
        )
        if doc is not None:
            return "expired" if doc["expires_at"] <= now else "ok"
        await self._codes.update_one(
            {"_id": phone_hash, "used": False}, {"$inc": {"wrong_attempts": 1}}
        )
        return "invalid"
