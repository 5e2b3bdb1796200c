"""Verification codes and their limits in MongoDB.

- `verification_codes`: the phone's current code, one document per phone
  hash, holding only the code's keyed hash.
- `code_sends`, `code_failures`, `code_uses`: one inserted document per
  event under a unique _id. Counting events instead of `$inc`-ing counters
  keeps the limits exact under concurrency on FerretDB too, whose `$inc` is a
  read then a write: two racing events cannot take the same _id.
"""
from __future__ import annotations

import datetime as dt
import hmac
import uuid

from pymongo import DESCENDING
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
        await self._codes.create_index("expires_at")
        await self._sends.create_index([("phone_hash", 1), ("n", -1)])
        await self._sends.create_index("at")
        await self._failures.create_index("code_id")

    async def reserve_send(self, phone_hash: str, now: dt.datetime) -> dt.datetime | None:
        """Records a send if the limits allow it (1 per 60 s, 5 per 24 h);
        otherwise returns when the next send will be allowed."""
        recent = await self._sends.find(
            {"phone_hash": phone_hash}, {"n": 1, "at": 1}, sort=[("n", DESCENDING)], limit=SENDS_PER_DAY
        ).to_list(SENDS_PER_DAY)
        if recent:
            if now < recent[0]["at"] + RESEND_AFTER:
                return recent[0]["at"] + RESEND_AFTER
            if len(recent) == SENDS_PER_DAY and now < recent[-1]["at"] + DAY:
                return recent[-1]["at"] + DAY
        n = recent[0]["n"] + 1 if recent else 1
        try:
            await self._sends.insert_one({"_id": f"{phone_hash}:{n}", "phone_hash": phone_hash, "n": n, "at": now})
        except DuplicateKeyError:  # a concurrent request took this send
            return now + RESEND_AFTER
        return None

    async def put(self, phone_hash: str, code_hash: str, now: dt.datetime) -> None:
        """A new code replaces any earlier one for the phone (only the winner
        of reserve_send gets here, so there is one writer)."""
        await self._codes.replace_one(
            {"_id": phone_hash},
            {"_id": phone_hash, "code_id": uuid.uuid4().hex, "code_hash": code_hash,
             "sent_at": now, "expires_at": now + CODE_TTL},
            upsert=True,
        )

    async def consume(self, phone_hash: str, code_hash: str, now: dt.datetime) -> str:
        """'ok' (and the code is now used), 'invalid' or 'expired'."""
        outcome, _ = await self.use(phone_hash, code_hash, now)
        return outcome

    async def use(self, phone_hash: str, code_hash: str, now: dt.datetime) -> tuple[str, str | None]:
        """As `consume`, also returning the code's id so a use can be given back."""
        code = await self._codes.find_one({"_id": phone_hash})
        if code is None:
            return "invalid", None
        outcome = await self._check(code, code_hash, now)
        return outcome, code["code_id"]

    async def give_back(self, code_id: str) -> None:
        """Un-uses a code when the query could not be taken for our own fault
        (a dependency down): the person need not ask for another."""
        await self._uses.delete_one({"_id": code_id})

    async def _check(self, code: dict, code_hash: str, now: dt.datetime) -> str:
        failures = await self._failures.count_documents({"code_id": code["code_id"]})
        if failures >= MAX_WRONG_ATTEMPTS:
            return "invalid"
        if not hmac.compare_digest(code["code_hash"], code_hash):
            await self._record_failure(code["code_id"], failures, now)
            return "invalid"
        if now >= code["expires_at"]:
            return "expired"
        try:
            await self._uses.insert_one({"_id": code["code_id"], "at": now})
        except DuplicateKeyError:
            return "invalid"
        return "ok"

    async def _record_failure(self, code_id: str, seen: int, now: dt.datetime) -> None:
        # Take the next free attempt number; racing failures each get their own.
        for k in range(seen + 1, MAX_WRONG_ATTEMPTS + 1):
            try:
                await self._failures.insert_one({"_id": f"{code_id}:{k}", "code_id": code_id, "at": now})
                return
            except DuplicateKeyError:
                continue
