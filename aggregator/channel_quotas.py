"""Per-channel quotas from configuration (config/channels.json): requests per
second and per day, per method, held across aggregator replicas in MongoDB.

Per second, exactly: a request takes one of the second's `per_second` slots
by inserting the claim `q:<channel>|<method>|<second>|<k>` into `claims`
(yztc/claims.py: a unique _id, so no slot is taken twice on MongoDB or
FerretDB); a replica hands out the second's slot numbers in memory in
order, so the usual cost is one insert, and more only when other replicas
took the same numbers. For the two methods that claim a phone's next
version anyway (RequestVerificationCode, SubmitQuery) the slot goes in that
same insert (`admit` gives an `Admission`): no round trip of its own.

Per day, to within ten seconds of traffic (one second once half of the day
quota is used): each replica counts its own requests in memory and writes
the count to a document only it writes, from one flushing task (one
writer, one write at a time: nothing lost, even on FerretDB); it reads the
other replicas' counts as often.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from pymongo.asynchronous.database import AsyncDatabase

from aggregator import request_rules
from yztc import claims
from yztc.keyed_hashes import KeyedHasher
from yztc.lease_queue import replica_id
from yztc.reloading_file import PARSE_ERRORS, ReloadingFile
from yztc.revoked_certificates import serial_from_text

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Quota:
    per_second: int
    per_day: int


@dataclass(frozen=True)
class RequesterLimit:
    """At most `count` calls of one method per requester per `seconds` window."""

    count: int
    seconds: int


class ChannelConfig:
    """Which channels exist, each one's quota per method ('*' = default),
    and its per-requester limits per method (account_query.proto: the
    requester_id is the channel's own id of the person; limits apply to
    calls that carry one)."""

    def __init__(
        self,
        channels: dict[str, dict[str, Quota]],
        requester_limits: dict[str, dict[str, RequesterLimit]] | None = None,
        internal_callers: dict[str, str] | None = None,
        revoked_serials: frozenset[int] = frozenset(),
    ) -> None:
        self.channels = channels
        self.requester_limits = requester_limits or {}
        # internal service name -> the channel it is admitted as, on the
        # aggregator's internal port only (e.g. gateway -> alipay-gateway).
        self.internal_callers = internal_callers or {}
        self.revoked_serials = revoked_serials

    def current(self) -> ChannelConfig:
        """This configuration (a `ChannelsFile` gives its latest instead)."""
        return self

    def public_channel(self, channel: str) -> bool:
        """Admitted on the public channel port: configured, and not one only
        an internal service may be."""
        return channel in self.channels and channel not in self.internal_callers.values()

    @classmethod
    def from_file(cls, path: Path) -> ChannelConfig:
        document = json.loads(path.read_text(encoding="utf-8"))
        data = document["channels"]
        internal = {spec["internal_caller"]: name for name, spec in data.items() if spec.get("internal_caller")}
        revoked = frozenset(serial_from_text(s) for s in document.get("revoked_serials", []))
        return cls(
            {
                name: {method: Quota(int(q["per_second"]), int(q["per_day"])) for method, q in spec["quotas"].items()}
                for name, spec in data.items()
            },
            {
                name: {
                    method: RequesterLimit(int(r["count"]), int(r["seconds"]))
                    for method, r in spec.get("requester_limits", {}).items()
                }
                for name, spec in data.items()
            },
            internal,
            revoked,
        )

    def quota(self, channel: str, method: str) -> Quota | None:
        quotas = self.channels.get(channel)
        if quotas is None:
            return None
        return quotas.get(method) or quotas["*"]

    def requester_limit(self, channel: str, method: str) -> RequesterLimit | None:
        return self.requester_limits.get(channel, {}).get(method)


# Channels only development may admit (L7): the demo channel, and the one
# every plaintext caller is under YZTC_DEVELOPMENT.
DEVELOPMENT_CHANNELS = frozenset({"wechat-demo", "local-dev"})


class ChannelsFile:
    """The channels file, re-read when it changes (yztc.reloading_file: one
    stat per call): admissions, quotas and revocations apply without a
    restart. A file that does not parse keeps the previous configuration
    (logged); replace it atomically (write, then rename). Outside
    development a file admitting a development channel is refused: at start
    (SystemExit) and on reload (the previous one is kept)."""

    def __init__(self, path: Path, development: bool) -> None:
        self._development = development
        try:
            self._file = ReloadingFile(path, self._load, "channels file")
        except PARSE_ERRORS as error:
            raise SystemExit(f"aggregator: cannot read channels file {path}: {error}") from None

    def _load(self, path: Path) -> ChannelConfig:
        config = ChannelConfig.from_file(path)
        refused = sorted(DEVELOPMENT_CHANNELS & config.channels.keys())
        if refused and not self._development:
            raise ValueError(f"admits development channels {refused} outside YZTC_DEVELOPMENT")
        return config

    def current(self) -> ChannelConfig:
        return self._file.current()


_MAX_HINTS = 100_000
# How often a replica writes its day counts and reads the others' while
# every day quota is less than half used: the day quota then holds to
# within ten seconds of traffic, at two round trips per ten seconds.
_FAR_SECONDS = 10.0


class Admission:
    """The quota slots a request takes with its phone claim: `slots()` gives
    the claim documents not taken yet, `taken()` says they went in,
    `retake(slot_id)` moves on from a slot another replica took (False: the
    quota is used up, for `retry_after` seconds), and `spend()` takes them
    alone when the request ends without a claim. The base class admits
    without a quota (tests, tools)."""

    retry_after: float = 1.0

    def slots(self) -> list[dict]:
        return []

    def taken(self) -> None:
        return None

    def retake(self, slot_id: str) -> bool:
        return False

    async def spend(self) -> bool:
        """Takes the slots alone if no claim took them; False if another
        replica had taken every slot left (the request is not admitted)."""
        return True


NO_QUOTA = Admission()


@dataclass
class _Slot:
    """One limit's slot: claim `<prefix>|<k>`, k up to `limit` in its window."""

    prefix: str
    k: int
    limit: int
    at: dt.datetime
    refused_for: float  # seconds until the window ends, for RATE_LIMITED


class _SlotAdmission(Admission):
    def __init__(self, quotas: ChannelQuotas, slots: list[_Slot]) -> None:
        self._quotas = quotas
        self._slots = slots
        self.retry_after = 1.0

    def slots(self) -> list[dict]:
        return [{"_id": f"{s.prefix}|{s.k}", "at": s.at} for s in self._slots]

    def taken(self) -> None:
        self._slots = []

    def retake(self, slot_id: str) -> bool:
        # Ordered insert: the slots before the refused one are ours now.
        for i, slot in enumerate(self._slots):
            if f"{slot.prefix}|{slot.k}" == slot_id:
                self._slots = self._slots[i:]
                slot.k = self._quotas._reserve(slot.prefix)
                if slot.k > slot.limit:
                    self.retry_after = slot.refused_for
                    return False
                return True
        return False

    async def spend(self) -> bool:
        while self._slots:
            outcome = await claims.take(self._quotas._slots, self.slots())
            if outcome.all_won:
                self._slots = []
            elif not self.retake(outcome.refused or ""):
                return False
        return True


class ChannelQuotas:
    def __init__(
        self,
        db: AsyncDatabase,
        config: ChannelConfig | ChannelsFile,
        hasher: KeyedHasher,
        owner: str | None = None,
        clock=time.time,
    ) -> None:
        """`config`: fixed, or a `ChannelsFile` whose latest version applies
        to each call; `hasher`: the keys of the requester tags in
        per-requester slots (request_rules.requester_tags)."""
        self._hasher = hasher
        self._slots = db["claims"]
        self._days = db["channel_days"]
        self._config = config
        self._owner = owner or replica_id()
        self._clock = clock
        self._next_slot: dict[str, int] = {}  # slot prefix (limit and window) -> next slot to try
        self._others: dict[str, tuple[float, int]] = {}  # day key -> (read at, other replicas' count)
        self._mine: dict[str, int] = {}  # day key -> this replica's count (it is the only writer)
        self._dirty: set[str] = set()
        self._flusher: asyncio.Task | None = None
        self._near = False  # some day quota is half used: count every second

    async def ensure_indexes(self) -> None:
        await self._days.create_index("key")

    async def take(self, channel: str, method: str, requester: str = "") -> float | None:
        """Counts one request; or returns seconds until the channel may call again."""
        admitted = await self.admit(channel, method, requester)
        if isinstance(admitted, float):
            return admitted
        if not await admitted.spend():
            return admitted.retry_after
        return None

    async def admit(self, channel: str, method: str, requester: str = "") -> Admission | float:
        """The request's quota slots (the channel's second, and the
        requester's window where the channel sets a requester limit), to be
        taken with its claim (or alone, `spend`); or the seconds until the
        caller may call again. Counts the request against the day quota."""
        quota = self._config.current().quota(channel, method)
        assert quota is not None
        now = self._clock()
        second = int(now)
        slots = []
        prefix = f"q:{channel}|{method}|{second}"
        k = self._reserve(prefix)
        if k > quota.per_second:
            return max(0.001, second + 1 - now)
        slots.append(
            _Slot(prefix, k, quota.per_second, dt.datetime.fromtimestamp(second, dt.UTC), max(0.001, second + 1 - now))
        )
        limit = self._config.current().requester_limit(channel, method)
        if limit is not None and requester:
            window = int(now // limit.seconds)
            ends = (window + 1) * limit.seconds
            # The requester as a keyed tag (review L6), under every
            # configured key: during a key rotation the request counts under
            # each and the limit holds under each, so the count under the
            # new key is whole by the time the old one goes, whichever key
            # each replica writes with (docs/runbook.md, "Keyed-hash keys").
            for tag in request_rules.requester_tags(self._hasher, channel, requester):
                prefix = f"r:{tag}|{method}|{window}"
                k = self._reserve(prefix)
                if k > limit.count:
                    return max(1.0, ends - now)
                at = dt.datetime.fromtimestamp(now, dt.UTC)
                slots.append(_Slot(prefix, k, limit.count, at, max(1.0, ends - now)))

        day = time.strftime("%Y-%m-%d", time.gmtime(now))
        day_key = f"{channel}|{method}|{day}"
        used = await self._count_day(day_key, now, quota.per_day)
        self._near = self._near or used + 1 >= quota.per_day / 2
        if used >= quota.per_day:
            return float(86400 - (second % 86400))
        self._mine[day_key] = self._mine.get(day_key, 0) + 1
        self._dirty.add(day_key)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="quota-flush")
        return _SlotAdmission(self, slots)

    def _reserve(self, prefix: str) -> int:
        """The slot this request tries next under `prefix` (a limit and its
        window). Taken in memory before the insert (no await in between), so
        concurrent requests of this replica try different slots and only
        other replicas' requests collide. Windows past are forgotten as the
        map grows."""
        if len(self._next_slot) > _MAX_HINTS:
            self._next_slot.clear()
        k = self._next_slot.get(prefix, 1)
        self._next_slot[prefix] = k + 1
        return k

    async def _flush(self) -> None:
        # At most one write every ten seconds per replica, whatever the
        # traffic; every second once a day quota is half used.
        await asyncio.sleep(1.0)
        waited = 1.0
        while waited < _FAR_SECONDS and not self._near:
            await asyncio.sleep(1.0)
            waited += 1.0
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

    async def _count_day(self, day_key: str, now: float, per_day: int) -> int:
        read_at, others = self._others.get(day_key, (0.0, 0))
        near = others + self._mine.get(day_key, 0) >= per_day / 2
        if now - read_at >= (1.0 if near else _FAR_SECONDS):
            mine_id = f"{day_key}|{self._owner}"
            rows = await self._days.find({"key": day_key}).to_list(None)
            others = sum(r["n"] for r in rows if r["_id"] != mine_id)
            self._others[day_key] = (now, others)
        return others + self._mine.get(day_key, 0)
