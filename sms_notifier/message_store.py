"""Messages in MongoDB: `sms_messages`, one document per message keyed by the
caller's message id, and the two look-ups that tie delivery receipts to it.

    sms_messages  {_id: message id, state: PENDING|SENT|DELIVERED|FAILED,
                   segments, udh_ref, attempts, sent_parts: [{seq, smsc_id}],
                   sealed: {kid, ct} (destination and text, while PENDING),
                   last_error, failure_reason, created_at, sent_at, final_at}
    sms_parts     {_id: SMS centre's message id, message_id, seq, at}, kept
                  for the retention period (receipts may come late; an SMS
                  centre may repeat one)
    sms_receipts  {_id: SMS centre's message id, stat, at}, only for a receipt
                  that came before its message could be settled

Who writes what, so that no two writers ever update one document at once
(FerretDB v1 applies an update as a read, then a write of the whole
document, and would lose one of two concurrent updates): while PENDING only
the replica holding the message's lease writes it, after checking it still
holds it (send_queue.py); a receipt that cannot settle its message yet is
kept as its own document, never merged into the message; the one move out
of SENT (to DELIVERED or FAILED) is made by whoever sees the last receipt
and computes the same answer whoever makes it. Every read and write is by
`_id` alone, the one filter FerretDB runs on an index (it scans the
collection for any other), but the hourly retention purge.
"""
from __future__ import annotations

import datetime as dt

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

PENDING, SENT, DELIVERED, FAILED = "PENDING", "SENT", "DELIVERED", "FAILED"
FINAL = (DELIVERED, FAILED)


class MessageStore:
    def __init__(self, db: AsyncDatabase) -> None:
        self._messages = db["sms_messages"]
        self._parts = db["sms_parts"]
        self._receipts = db["sms_receipts"]

    async def ensure_indexes(self) -> None:
        # For the retention purge on MongoDB (FerretDB scans regardless).
        await self._messages.create_index([("state", ASCENDING), ("final_at", ASCENDING)])
        await self._parts.create_index([("at", ASCENDING)])

    # -- the caller's side ----------------------------------------------------

    async def create(
        self, message_id: str, sealed: dict, segments: int, udh_ref: int, now: dt.datetime
    ) -> dict | None:
        """Records a new PENDING message; returns the existing one instead if the id is taken."""
        try:
            await self._messages.insert_one(
                {
                    "_id": message_id,
                    "state": PENDING,
                    "segments": segments,
                    "udh_ref": udh_ref,
                    "attempts": 0,
                    "sent_parts": [],
                    "sealed": sealed,
                    "created_at": now,
                }
            )
            return None
        except DuplicateKeyError:
            return await self._messages.find_one({"_id": message_id})

    async def get(self, message_id: str) -> dict | None:
        return await self._messages.find_one({"_id": message_id})

    # -- the lease holder's writes (it checks its lease first: SendQueue.holds) --

    async def part_accepted(
        self, message_id: str, attempts: int, seq: int, smsc_id: str, last: bool, now: dt.datetime
    ) -> None:
        """Records an accepted part; with the `last` one the message is SENT,
        and its destination and text, no longer needed, are deleted."""
        # The look-up first: a receipt may come back before the message
        # document says the part was accepted.
        try:
            await self._parts.insert_one({"_id": smsc_id, "message_id": message_id, "seq": seq, "at": now})
        except DuplicateKeyError:
            # The centre reuses ids over time; the newest submission owns it.
            await self._parts.replace_one({"_id": smsc_id}, {"message_id": message_id, "seq": seq, "at": now})
        update: dict = {
            # $addToSet: a retried record (its first answer lost) adds nothing.
            "$addToSet": {"sent_parts": {"seq": seq, "smsc_id": smsc_id}},
            "$set": {"attempts": attempts},
        }
        if last:
            update["$set"].update(state=SENT, sent_at=now)
            update["$unset"] = {"sealed": ""}
        await self._messages.update_one({"_id": message_id}, update)

    async def mark_sent(self, message_id: str, attempts: int, now: dt.datetime) -> None:
        await self._messages.update_one(
            {"_id": message_id},
            {"$set": {"state": SENT, "sent_at": now, "attempts": attempts}, "$unset": {"sealed": ""}},
        )

    async def note_error(self, message_id: str, attempts: int, error: str) -> None:
        await self._messages.update_one({"_id": message_id}, {"$set": {"attempts": attempts, "last_error": error}})

    async def mark_failed(self, message_id: str, attempts: int, reason: str, now: dt.datetime) -> None:
        await self._messages.update_one(
            {"_id": message_id},
            {
                "$set": {"state": FAILED, "attempts": attempts, "failure_reason": reason, "final_at": now},
                "$unset": {"sealed": ""},
            },
        )

    # -- receipts -------------------------------------------------------------

    async def message_of_part(self, smsc_id: str) -> str | None:
        part = await self._parts.find_one({"_id": smsc_id})
        return part["message_id"] if part else None

    async def keep_receipt(self, smsc_id: str, stat: str, now: dt.datetime) -> None:
        """Keeps a receipt that cannot settle its message yet (not SENT yet, or other parts to come)."""
        try:
            await self._receipts.insert_one({"_id": smsc_id, "stat": stat, "at": now})
        except DuplicateKeyError:
            pass  # the centre repeated it (it did not see our deliver_sm_resp)

    async def kept_receipt(self, smsc_id: str) -> str | None:
        found = await self._receipts.find_one({"_id": smsc_id})
        return found["stat"] if found else None

    async def finalize(self, message_id: str, state: str, reason: str | None, now: dt.datetime) -> None:
        """SENT → DELIVERED or FAILED (the caller saw SENT; two settling at
        once would write the same answer)."""
        changes: dict = {"state": state, "final_at": now}
        if reason:
            changes["failure_reason"] = reason
        await self._messages.update_one({"_id": message_id}, {"$set": changes})

    async def forget_receipts(self, smsc_ids: list[str]) -> None:
        for smsc_id in smsc_ids:
            await self._receipts.delete_one({"_id": smsc_id})

    # -- housekeeping (rare full scans) ----------------------------------------

    async def purge(self, before: dt.datetime) -> int:
        """Final messages past retention go, with the part look-ups of
        everything sent before then (a receipt later than that is no longer
        awaited) and receipts that never found their message."""
        result = await self._messages.delete_many({"state": {"$in": list(FINAL)}, "final_at": {"$lt": before}})
        await self._parts.delete_many({"at": {"$lt": before}})
        await self._receipts.delete_many({"at": {"$lt": before}})
        return result.deleted_count
