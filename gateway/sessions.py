"""Gateway sessions in MongoDB (collection `sessions`).

The token is shown to the client once and stored only as its SHA-256: a
copy of the database does not let anyone act as a user. FerretDB has no TTL
indexes, so expiry is checked on every lookup and old rows are purged by
`purge_expired`, run periodically. The decorator that requires a session
is gateway.auth.authenticated.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
from collections.abc import Awaitable, Callable

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from yztc.errors import ServiceError

# token_urlsafe(32) gives 43 characters of this alphabet; anything else is
# not one of ours and is refused without a database round trip.
_TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")

Clock = Callable[[], dt.datetime]


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def session_id(token: str) -> str:
    """The id a session is stored under: its token's hash."""
    return _digest(token)


class SessionStore:
    def __init__(self, db: AsyncDatabase, ttl_seconds: int, clock: Clock = _utcnow) -> None:
        self._sessions = db["sessions"]
        self._ttl = dt.timedelta(seconds=ttl_seconds)
        self._clock = clock

    async def ensure_indexes(self) -> None:
        await self._sessions.create_index([("expires_at", ASCENDING)])

    async def create(self, user_id: str) -> tuple[str, int]:
        """A new session for the user's key (gateway.alipay_login): (token,
        seconds it lasts)."""
        token = secrets.token_urlsafe(32)
        now = self._clock()
        await self._call(
            self._sessions.insert_one(
                {
                    "_id": _digest(token),
                    "user_id": user_id,
                    "created_at": now,
                    "expires_at": now + self._ttl,
                }
            )
        )
        return token, int(self._ttl.total_seconds())

    async def lookup(self, token: str) -> str | None:
        """The user's key of a live session, else None."""
        if not _TOKEN.fullmatch(token):
            return None
        doc = await self._call(
            self._sessions.find_one(
                {"_id": _digest(token), "expires_at": {"$gt": self._clock()}},
                projection={"user_id": 1},
            )
        )
        return doc["user_id"] if doc else None

    async def delete(self, token: str) -> None:
        """Ends the session of `token` (a logout); nothing if there is none."""
        if _TOKEN.fullmatch(token):
            await self._call(self._sessions.delete_one({"_id": _digest(token)}))

    async def purge_expired(self) -> int:
        result = await self._call(self._sessions.delete_many({"expires_at": {"$lte": self._clock()}}))
        return result.deleted_count

    @staticmethod
    async def _call(operation: Awaitable):
        try:
            return await operation
        except PyMongoError:
            raise ServiceError("UNAVAILABLE") from None
