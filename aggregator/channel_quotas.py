"""Per-channel quotas from configuration (config/channels.json): requests per
second and per day, per method, held across aggregator replicas in MongoDB.

Per second, exactly: a request takes one of the second's `per_second` slots
by inserting `<channel>|<method>|<second>|<k>` (unique _id, so no slot is
taken twice on MongoDB or FerretDB); a replica hands out the second's slot
numbers in memory in order, so the usual cost is one insert, and more only
when other replicas took the same numbers.

Per day, to within a second of traffic: each replica counts its own requests
in memory and writes the count to a document only it writes, from one
flushing task (one writer, one write at a time: nothing lost, even on
FerretDB); it reads the other replicas' counts at most once a second.
"""
from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from pathlib import Path

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from yztc.lease_queue import replica_id


@dataclass(frozen=True)
class Quota:
    per_second: int
    per_day: int


class ChannelConfig:
    """Which channels exist, and each one's quota per method ('*' = default)."""

    def __init__(self, channels: dict[str, dict[str, Quota]]) -> None:
        self.channels = channels

    @classmethod
    def from_file(cls, path: Path) -> "ChannelConfig":
        data = json.loads(path.read_text(encoding="utf-8"))["channels"]
        return cls({
            name: {method: Quota(int(q["per_second"]), int(q["per_day"])) for method, q in spec["quotas"].items()}
            for name, spec in data.items()
        })

    def quota(self, channel: str, method: str) -> Quota | None:
        quotas = self.channels.get(channel)
        if quotas is None:
            return None
        return quotas.get(method) or quotas["*"]


class ChannelQuotas:
    def __init__(self, db: AsyncDatabase, config: ChannelConfig, owner: str | None = None,
                 clock=time.time) -> None:
        self._slots = db["channel_slots"]
        self._days = db["channel_days"]
        self._config = config
        self._owner = owner or replica_id()
        self._clock = clock
        self._next_slot: dict[tuple[str, int], int] = {}  # (slot key, second) -> next slot to try
        self._slot_second = 0
        self._others: dict[str, tuple[float, int]] = {}  # day key -> (read at, other replicas' count)
        self._mine: dict[str, int] = {}  # day key -> this replica's count (it is the only writer)
        self._dirty: set[str] = set()
        self._flusher: asyncio.Task | None = None

    async def ensure_indexes(self) -> None:
        await self._slots.create_index("second")
        await self._days.create_index("key")

    async def take(self, channel: str, method: str) -> float | None:
        """Counts one request; or returns seconds until the channel may call again."""
        quota = self._config.quota(channel, method)
        assert quota is not None
        now = self._clock()
        second = int(now)
        key = f"{channel}|{method}|{second}"
        k = self._reserve(key, second)
        while k <= quota.per_second:
            try:
                await self._slots.insert_one({"_id": f"{key}|{k}", "second": second})
                break
            except DuplicateKeyError:
                k = self._reserve(key, second)  # another replica took it: the next one
        if k > quota.per_second:
            return max(0.001, second + 1 - now)

        day = time.strftime("%Y-%m-%d", time.gmtime(now))
        day_key = f"{channel}|{method}|{day}"
        used = await self._count_day(day_key, now)
        if used >= quota.per_day:
            return float(86400 - (second % 86400))
        self._mine[day_key] = self._mine.get(day_key, 0) + 1
        self._dirty.add(day_key)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="quota-flush")
        return None

    def _reserve(self, key: str, second: int) -> int:
        """The slot this request tries next. Taken in memory before the insert
        (no await in between), so concurrent requests of this replica try
        different slots and only other replicas' requests collide."""
        if second > self._slot_second:
            # Past seconds are no longer worth remembering; a request still
            # working in the one before keeps its numbers.
            self._next_slot = {k: n for k, n in self._next_slot.items() if k[1] >= second - 1}
            self._slot_second = second
        k = self._next_slot.get((key, second), 1)
        self._next_slot[(key, second)] = k + 1
        return k

    async def _flush(self) -> None:
        while self._dirty:
            day_key = self._dirty.pop()
            try:
                await self._days.update_one(
                    {"_id": f"{day_key}|{self._owner}"},
                    {"$set": {"n": self._mine[day_key], "key": day_key}},
                    upsert=True,
                )
            except Exception:
                self._dirty.add(day_key)  # the next request tries again
                return

    async def _count_day(self, day_key: str, now: float) -> int:
        read_at, others = self._others.get(day_key, (0.0, 0))
        if now - read_at >= 1.0:
            mine_id = f"{day_key}|{self._owner}"
            rows = await self._days.find({"key": day_key}).to_list(None)
            others = sum(r["n"] for r in rows if r["_id"] != mine_id)
            self._others[day_key] = (now, others)
        return others + self._mine.get(day_key, 0)
