"""Sent messages in MongoDB (collection `sms_messages`), keyed by the
caller's message id. Neither the destination nor the text is stored: a
verification text holds a live code, and the phone is personal data."""
from __future__ import annotations

import datetime as dt

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError


class MessageStore:
    def __init__(self, db: AsyncDatabase) -> None:
        self._messages = db["sms_messages"]

    async def create(self, message_id: str, now: dt.datetime) -> dict | None:
        """Records a new PENDING message; returns the existing one instead if the id is taken."""
        try:
            await self._messages.insert_one(
                {"_id": message_id, "state": "PENDING", "segments": 0, "attempts": 0,
                 "smsc_ids": [], "created_at": now}
            )
            return None
        except DuplicateKeyError:
            return await self._messages.find_one({"_id": message_id})

    async def mark(self, message_id: str, state: str, *, segments: int = 0, smsc_id: str | None = None) -> dict:
        update: dict = {"$set": {"state": state, "segments": segments}, "$inc": {"attempts": 1}}
        if smsc_id:
            update["$push"] = {"smsc_ids": smsc_id}
        await self._messages.update_one({"_id": message_id}, update)
        return {"_id": message_id, "state": state, "segments": segments}

    async def get(self, message_id: str) -> dict | None:
        return await self._messages.find_one({"_id": message_id})
