"""Verification codes and their limits in MongoDB.

- `verification_codes`: the phone's current code (only its keyed hash), and
  when the phone's last five codes were sent; one document per phone hash.
- `code_sends`, `code_failures`, `code_uses`: one inserted document per
  event under a unique _id. Taking an event's unique number instead of
  `$inc`-ing a counter keeps the limits exact under concurrency on FerretDB
  too, whose `$inc` is a read then a write: two racing events cannot take
  the same _id. Every read is by _id (FerretDB scans for anything else).
"""
from __future__ import annotations

import datetime as dt
import hmac
import uuid

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

CODE_TTL = dt.timedelta(minutes=5)
RESEND_AFTER = dt.timedelta(seconds=60)
SENDS_PER_DAY = 5
DAY = dt.timedelta(hours=24)
MAX_WRONG_ATTEMPTS = 5


class CodeStore:
    def __init__(self, db: AsyncDatabase) -> None:
        self._codes = db["verification_codes"]
        self._sends = db["code_sends"]
        self._failures = db["code_failures"]
        self._uses = db["code_uses"]

    async def ensure_indexes(self) -> None:
        for events in (self._sends, self._failures, self._uses):
            await events.create_index("at")
        await self._codes.create_index("expires_at")

    async def issue(self, phone_hash: str, code_hash: str, now: dt.datetime) -> dt.datetime | None:
        """Makes `code_hash` the phone's code if the send limits allow (1 per
        60 s, 5 per 24 h); otherwise returns when a send will be allowed."""
        current = await self._codes.find_one({"_id": phone_hash})
        sent = current["sent"] if current else []
        number = current["n"] if current else 0
        if sent and now < sent[-1] + RESEND_AFTER:
            return sent[-1] + RESEND_AFTER
        if len(sent) >= SENDS_PER_DAY and now < sent[-SENDS_PER_DAY] + DAY:
            return sent[-SENDS_PER_DAY] + DAY
        try:
            await self._sends.insert_one({"_id": f"{phone_hash}:{number + 1}", "at": now})
        except DuplicateKeyError:  # a concurrent request took this send
            return now + RESEND_AFTER
        # Only the winner of the send number writes the code document.
        await self._codes.replace_one(
            {"_id": phone_hash},
            {
                "_id": phone_hash,
                "n": number + 1,
                "sent": [*sent, now][-SENDS_PER_DAY:],
                "code_id": uuid.uuid4().hex,
                "code_hash": code_hash,
                "expires_at": now + CODE_TTL,
            },
            upsert=True,
        )
        return None

    async def consume(self, phone_hash: str, code_hash: str, now: dt.datetime) -> str:
        """'ok' (and the code is now used), 'invalid' or 'expired'."""
        outcome, _ = await self.use(phone_hash, code_hash, now)
        return outcome

    async def use(self, phone_hash: str, code_hash: str, now: dt.datetime) -> tuple[str, str | None]:
        """As `consume`, also returning the code's id so a use can be given back."""
        code = await self._codes.find_one({"_id": phone_hash})
        if code is None or "code_id" not in code:
            return "invalid", None
        code_id = code["code_id"]
        if await self._failures.find_one({"_id": f"{code_id}:{MAX_WRONG_ATTEMPTS}"}, {"_id": 1}):
            return "invalid", code_id  # five wrong attempts: the code is dead
        if not hmac.compare_digest(code["code_hash"], code_hash):
            await self._record_failure(code_id, now)
            return "invalid", code_id
        if now >= code["expires_at"]:
            return "expired", code_id
        try:
            await self._uses.insert_one({"_id": code_id, "at": now})
        except DuplicateKeyError:
            return "invalid", code_id
        return "ok", code_id

    async def give_back(self, code_id: str) -> None:
        """Un-uses a code when the query could not be taken for our own fault
        (a dependency down): the person need not ask for another."""
        await self._uses.delete_one({"_id": code_id})

    async def _record_failure(self, code_id: str, now: dt.datetime) -> None:
        # Take the next free attempt number; racing failures each get their own.
        for k in range(1, MAX_WRONG_ATTEMPTS + 1):
            try:
                await self._failures.insert_one({"_id": f"{code_id}:{k}", "at": now})
                return
            except DuplicateKeyError:
                continue
