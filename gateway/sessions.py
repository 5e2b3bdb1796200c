"""Gateway sessions in MongoDB (collection `sessions`).

The token is shown to the client once and stored only as its SHA-256: a
copy of the database does not let anyone act as a user. Nor does it name the
user (L6): the Alipay user id is stored sealed (AES-GCM) under a key derived
from the token, which only the client holds, and as a keyed hash
(yztc.keyed_hashes, with its key id) to find a user's sessions.

A session ends at `expires_at` (ttl), after `idle_seconds` unused, on
logout (`delete`), or when its user logs in again while holding
`max_per_user` live sessions: the new login ends the oldest (L8; the
new login is never refused for it). FerretDB has no TTL indexes, so expiry
is checked on every lookup and old rows are purged by `purge_expired`, run
periodically. The decorator that requires a session is
gateway.auth.authenticated.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import os
import re
import secrets
from collections.abc import Awaitable, Callable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from yztc.errors import ServiceError
from yztc.keyed_hashes import KeyedHasher

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


# A session's last use is written at most this often (a write per request
# would double the database's work), so the idle timeout is exact to it.
IDLE_REFRESH_SECONDS = 60


def _token_key(token: str) -> AESGCM:
    """The AES-256-GCM key of the session's sealed user id: derived from the
    token (256 random bits) by HKDF-SHA-256; the database never holds it."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"yztc gateway session user id")
    return AESGCM(hkdf.derive(token.encode()))


def _seal(token: str, user_id: str) -> str:
    nonce = os.urandom(12)
    sealed = _token_key(token).encrypt(nonce, user_id.encode(), _digest(token).encode())
    return base64.b64encode(nonce + sealed).decode()


def _open(token: str, box: str) -> str | None:
    try:
        raw = base64.b64decode(box)
        return _token_key(token).decrypt(raw[:12], raw[12:], _digest(token).encode()).decode()
    except (InvalidTag, ValueError):
        return None


class SessionStore:
    def __init__(
        self,
        db: AsyncDatabase,
        ttl_seconds: int,
        clock: Clock = _utcnow,
        *,
        idle_seconds: int = 1800,
        max_per_user: int = 5,
        hasher: KeyedHasher | None = None,
    ) -> None:
        self._sessions = db["sessions"]
        self._ttl = dt.timedelta(seconds=ttl_seconds)
        self._idle = dt.timedelta(seconds=idle_seconds)
        self._max_per_user = max_per_user
        self._hasher = hasher or KeyedHasher.development("gateway")
        self._clock = clock

    async def ensure_indexes(self) -> None:
        await self._sessions.create_index([("expires_at", ASCENDING)])
        await self._sessions.create_index([("user", ASCENDING)])

    async def create(self, user_id: str) -> tuple[str, int]:
        """A new session for the user's key (gateway.alipay_login): (token,
        seconds it lasts). The user's oldest sessions beyond `max_per_user`
        end."""
        token = secrets.token_urlsafe(32)
        now = self._clock()
        await self._call(
            self._sessions.insert_one(
                {
                    "_id": _digest(token),
                    "user": self._hasher.digest("user", user_id),
                    "user_box": _seal(token, user_id),
                    "created_at": now,
                    "expires_at": now + self._ttl,
                    "idle_until": now + self._idle,
                }
            )
        )
        await self._end_beyond_cap(user_id)
        return token, int(self._ttl.total_seconds())

    async def _end_beyond_cap(self, user_id: str) -> None:
        """Ends the user's oldest sessions beyond `max_per_user` (under every
        hash key: a rotation does not lift the cap)."""
        users = self._hasher.all_digests("user", user_id)
        docs = await self._call(self._sessions.find({"user": {"$in": users}}, projection={"created_at": 1}).to_list())
        if len(docs) <= self._max_per_user:
            return
        docs.sort(key=lambda d: (d["created_at"], d["_id"]), reverse=True)
        ended = [d["_id"] for d in docs[self._max_per_user :]]
        await self._call(self._sessions.delete_many({"_id": {"$in": ended}}))

    async def lookup(self, token: str) -> str | None:
        """The user's key of a live session (not expired, not idle for
        `idle_seconds`), else None. Counts as a use of the session."""
        if not _TOKEN.fullmatch(token):
            return None
        now = self._clock()
        doc = await self._call(
            self._sessions.find_one(
                {"_id": _digest(token), "expires_at": {"$gt": now}},
                projection={"user_box": 1, "idle_until": 1},
            )
        )
        if doc is None or "user_box" not in doc or doc.get("idle_until", now) <= now:
            return None
        user_id = _open(token, doc["user_box"])
        if user_id is not None and doc["idle_until"] - now < self._idle - dt.timedelta(seconds=IDLE_REFRESH_SECONDS):
            await self._call(self._sessions.update_one({"_id": doc["_id"]}, {"$set": {"idle_until": now + self._idle}}))
        return user_id

    async def delete(self, token: str) -> None:
        """Ends the session of `token` (a logout); nothing if there is none."""
        if _TOKEN.fullmatch(token):
            await self._call(self._sessions.delete_one({"_id": _digest(token)}))

    async def purge_expired(self) -> int:
        now = self._clock()
        expired = await self._call(self._sessions.delete_many({"expires_at": {"$lte": now}}))
        idle = await self._call(self._sessions.delete_many({"idle_until": {"$lte": now}}))
        return expired.deleted_count + idle.deleted_count

    @staticmethod
    async def _call(operation: Awaitable):
        try:
            return await operation
        except PyMongoError:
            raise ServiceError("UNAVAILABLE") from None
