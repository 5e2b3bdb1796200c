"""Gateway sessions in MongoDB (collection `sessions`) and the decorator
that requires one (and counts the request against the user's rate limit).

The token is shown to the client once and stored only as its SHA-256: a
copy of the database does not let anyone act as a user. FerretDB has no TTL
indexes, so expiry is checked on every lookup and old rows are purged by
`purge_expired`, run periodically.
"""
from __future__ import annotations

import datetime as dt
import functools
import hashlib
import re
import secrets
from collections.abc import Awaitable, Callable

from aiohttp import web
from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from gateway.keys import RATE_LIMITER, SESSION_ID, SESSIONS, SETTINGS, USER_ID
from gateway.middlewares import address_claim
from gateway.rate_limits import Claim
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
        """A new session for the Alipay user: (token, seconds it lasts)."""
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
        """The Alipay user id of a live session, else None."""
        if not _TOKEN.fullmatch(token):
            return None
        doc = await self._call(
            self._sessions.find_one(
                {"_id": _digest(token), "expires_at": {"$gt": self._clock()}},
                projection={"user_id": 1},
            )
        )
        return doc["user_id"] if doc else None

    async def purge_expired(self) -> int:
        result = await self._call(self._sessions.delete_many({"expires_at": {"$lte": self._clock()}}))
        return result.deleted_count

    @staticmethod
    async def _call(operation: Awaitable):
        try:
            return await operation
        except PyMongoError:
            raise ServiceError("UNAVAILABLE") from None


def _bearer(request: web.Request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def authenticated(handler: Handler) -> Handler:
    """Requires `Authorization: Bearer <token>` of a live session; puts the
    Alipay user id in request[USER_ID] and the session's id in
    request[SESSION_ID]. Counts the request against its client address's
    limit and the user's, both in one insert (see middlewares.limit_per_client);
    a request without a session against its address's alone."""

    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        limiter = request.app[RATE_LIMITER]
        token = _bearer(request)
        user_id = await request.app[SESSIONS].lookup(token) if token else None
        if user_id is None:
            await limiter.claim(address_claim(request))
            raise ServiceError("UNAUTHENTICATED")
        request[USER_ID] = user_id
        request[SESSION_ID] = session_id(token)
        user_limit = request.app[SETTINGS].limit_user_requests
        await limiter.claim(address_claim(request), Claim("user_requests", user_limit, user_id))
        return await handler(request)

    wrapper.needs_session = True  # type: ignore[attr-defined]
    return wrapper
