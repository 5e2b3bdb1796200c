"""Rate limits shared by every gateway replica, in MongoDB (collection
`rate_limit_slots`), exact under concurrency on FerretDB too.

A limit of N per fixed window is N numbered slots; an event is allowed if
it claims one by inserting the slot's document, whose `_id` names rule,
subject, window and slot number. Why slots and not a counter: FerretDB v1
runs `$inc`/findAndModify as a read then a write without a transaction, so
concurrent increments are lost (tried: 200 concurrent `$inc` left 7), and it
pushes down only `{_id: value}` filters, so counting events in a window
would scan the whole collection on every request. A unique `_id` insert is
atomic there, and finding one by `_id` is an index look-up: those are the
only two operations used here. More than N events can never be allowed,
because only N slot ids exist in a window.

Cost: each process hands out slot numbers from an in-memory hint, so one
insert usually settles a request (all of a request's limits go in one
`insert_many`), and once a window's slots are all known to be taken,
further events are refused without asking the database at all: a flood
from one client costs nothing past its limit. Another replica may have
taken the hinted slot; then the next one is tried, and after that the first
free slot is found by point look-ups (slots are taken in order, so the
taken ones form a prefix), a handful of rounds at most. A refused event
may still have used a slot of another of the request's limits: it counts
as an attempt there.

Subjects (addresses, user ids, sessions) are stored only as a keyed hash
inside the `_id` (yztc.keyed_hashes: HMAC with a secret key, never a bare
hash an IPv4 address could be recovered from by enumeration), which names
its key id. When the key is rotated (a previous key still configured), the
first event of a window in this process also counts the slots the same
subject took under the previous key, so a rotation resets no limit. A slot lives until its window has ended plus a grace for
clocks that differ between replicas. FerretDB has no TTL index: expired
slots are deleted by `purge_expired`, run periodically.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, PyMongoError

from gateway.settings import RateLimit
from yztc.errors import ServiceError
from yztc.keyed_hashes import KeyedHasher

# Seconds a slot outlives its window: replicas' clocks may disagree a little.
GRACE_SECONDS = 120
# Attempts to claim one limit's slot against other replicas before refusing
# (a refusal here is the conservative answer: the limit is being hammered).
MAX_ROUNDS = 4
MAX_HINTS = 100_000


@dataclass(frozen=True)
class Claim:
    """One event to count: `rule` names the limit ("ip_requests"), `subject` whom it limits."""

    rule: str
    limit: RateLimit
    subject: str


@dataclass(frozen=True)
class Slot:
    id: str
    expires_at: dt.datetime


class SlotStore(Protocol):
    async def insert(self, slots: Sequence[Slot]) -> set[int]:
        """Insert every slot that is free; the indices of those already taken."""

    async def taken(self, slot_id: str) -> bool: ...


@dataclass(frozen=True)
class _Window:
    bucket: str  # the slot ids' common prefix
    ends_at: float  # epoch seconds


_DEVELOPMENT_HASHER = KeyedHasher.development("gateway")


def window(claim: Claim, now: float, hasher: KeyedHasher = _DEVELOPMENT_HASHER, key_id: str | None = None) -> _Window:
    """The fixed window `now` falls in, and the bucket naming it:
    "<rule>:<seconds>:<window index>:<key id>.<keyed hash of the subject>"
    (under `key_id`, default the current key)."""
    seconds = claim.limit.seconds
    index = math.floor(now / seconds)
    subject = hasher.digest(claim.rule, claim.subject, key_id)
    return _Window(f"{claim.rule}:{seconds}:{index}:{subject}", (index + 1) * seconds)


def limited(rule: str, ends_at: float, now: float) -> ServiceError:
    """RATE_LIMITED; the limit's name travels in `metadata` (never shown to clients)."""
    return ServiceError("RATE_LIMITED", retry_after=max(1, math.ceil(ends_at - now)), metadata={"limit": rule})


class RateLimiter:
    def __init__(
        self,
        store: SlotStore,
        clock: Callable[[], float] = time.time,
        max_hints: int = MAX_HINTS,
        hasher: KeyedHasher = _DEVELOPMENT_HASHER,
    ) -> None:
        self._store = store
        self._clock = clock
        self._max_hints = max_hints
        self._hasher = hasher
        # bucket -> (next slot number to hand out, window end)
        self._hints: dict[str, tuple[int, float]] = {}

    def refuse_if_exhausted(self, *claims: Claim) -> None:
        """RATE_LIMITED if this process already knows a limit has no slot left
        in its window; asks nothing, counts nothing."""
        now = self._clock()
        for claim in claims:
            win = window(claim, now, self._hasher)
            if self._peek(win) > claim.limit.count:
                raise limited(claim.rule, win.ends_at, now)

    async def claim(self, *claims: Claim) -> None:
        """Count one event against every claim's limit; RATE_LIMITED (with
        retry_after) if any of them has no slot left in its window."""
        now = self._clock()
        windows = [window(c, now, self._hasher) for c in claims]
        if self._hasher.rotating:
            await self._carry_over(claims, windows, now)
        for claim, win in zip(claims, windows, strict=False):
            if self._peek(win) > claim.limit.count:
                raise limited(claim.rule, win.ends_at, now)
        numbers = [self._reserve(win) for win in windows]
        taken = await self._store.insert([self._slot(w, n) for w, n in zip(windows, numbers, strict=False)])
        for i in sorted(taken):
            await self._contended(claims[i], windows[i], now)

    async def _carry_over(self, claims: Sequence[Claim], windows: list[_Window], now: float) -> None:
        """During a key rotation: a window this process has not counted in
        yet starts after the slots its subject took under the previous keys
        (found by point look-ups, as `_first_free` does)."""
        for claim, win in zip(claims, windows, strict=False):
            if win.bucket in self._hints:
                continue
            used = 0
            for kid in self._hasher.key_ids[1:]:
                old = window(claim, now, self._hasher, kid)
                used += await self._first_free(old, 1, claim.limit.count) - 1
            self._skip_to(win, used + 1)

    async def _contended(self, claim: Claim, win: _Window, now: float) -> None:
        """Another replica took the slot we hinted: try the next one, then
        look for the first free slot, a few rounds at most."""
        for round_ in range(1, MAX_ROUNDS):
            number = self._reserve(win)
            if round_ > 1:
                number = await self._first_free(win, number, claim.limit.count)
                self._skip_to(win, number + 1)
            if number > claim.limit.count:
                raise limited(claim.rule, win.ends_at, now)
            if not await self._store.insert([self._slot(win, number)]):
                return
        raise limited(claim.rule, now + 1, now)

    async def _first_free(self, win: _Window, start: int, count: int) -> int:
        """The lowest free slot number from `start` on (count + 1 if none),
        taken slots being a prefix: galloping, then bisection, by _id look-ups."""
        taken = self._store.taken
        if start > count or not await taken(self._slot_id(win, start)):
            return start
        low, step = start, 1  # low: known taken
        high = start + step
        while high <= count and await taken(self._slot_id(win, high)):
            low, step = high, step * 2
            high = low + step
        high = min(high, count + 1)  # high: known free, or past the last slot
        while high - low > 1:
            middle = (low + high) // 2
            if await taken(self._slot_id(win, middle)):
                low = middle
            else:
                high = middle
        return high

    # -- the in-memory hints --------------------------------------------------

    def _peek(self, win: _Window) -> int:
        hint = self._hints.get(win.bucket)
        return hint[0] if hint else 1

    def _reserve(self, win: _Window) -> int:
        number = self._peek(win)
        self._skip_to(win, number + 1)
        return number

    def _skip_to(self, win: _Window, number: int) -> None:
        if win.bucket not in self._hints and len(self._hints) >= self._max_hints:
            self._prune()
        current = self._peek(win)
        self._hints[win.bucket] = (max(current, number), win.ends_at)

    def _prune(self) -> None:
        now = self._clock()
        self._hints = {b: h for b, h in self._hints.items() if h[1] > now}
        if len(self._hints) >= self._max_hints:
            # Hints only save round trips; correctness is in the database.
            self._hints.clear()

    # -- slot documents -------------------------------------------------------

    @staticmethod
    def _slot_id(win: _Window, number: int) -> str:
        return f"{win.bucket}:{number}"

    def _slot(self, win: _Window, number: int) -> Slot:
        expires = dt.datetime.fromtimestamp(win.ends_at + GRACE_SECONDS, dt.UTC)
        return Slot(self._slot_id(win, number), expires)


class MongoSlotStore:
    def __init__(self, db: AsyncDatabase) -> None:
        self._slots = db["rate_limit_slots"]

    async def ensure_indexes(self) -> None:
        await self._slots.create_index([("expires_at", ASCENDING)])

    async def insert(self, slots: Sequence[Slot]) -> set[int]:
        docs = [{"_id": s.id, "expires_at": s.expires_at} for s in slots]
        try:
            await self._slots.insert_many(docs, ordered=False)
        except BulkWriteError as error:
            errors = error.details.get("writeErrors", [])
            if error.details.get("writeConcernErrors") or any(e.get("code") != 11000 for e in errors):
                raise ServiceError("UNAVAILABLE") from None
            return {e["index"] for e in errors}
        except PyMongoError:
            raise ServiceError("UNAVAILABLE") from None
        return set()

    async def taken(self, slot_id: str) -> bool:
        doc = await _call(self._slots.find_one({"_id": slot_id}, projection={"_id": 1}))
        return doc is not None

    async def purge_expired(self, now: dt.datetime | None = None) -> int:
        now = now or dt.datetime.now(dt.UTC)
        result = await _call(self._slots.delete_many({"expires_at": {"$lte": now}}))
        return result.deleted_count


async def _call(operation: Awaitable):
    try:
        return await operation
    except PyMongoError:
        raise ServiceError("UNAVAILABLE") from None
