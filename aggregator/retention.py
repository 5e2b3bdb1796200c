"""Deleting personal data once it is no longer needed (FerretDB has no TTL
indexes, so a job does it; on MongoDB it is the same job).

A final query record (`queries`) keeps its personal fields (encrypted phone,
phone hash, masked phone, requester, trace context) for the retention period
after completion, then loses them; what stays is an anonymous record per
query (`query_stats`: day, channel, status, each company's count) from which
daily counters per company are computed. Phone documents and claims go once
nothing they hold can limit anything (phone_store.KEEP_CLAIMS); lease
documents after a day.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TypeVar

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from aggregator import request_rules
from aggregator.phone_store import PhoneStore
from aggregator.query_store import DONE, Part
from yztc.keyed_hashes import KeyedHasher, made_under

log = logging.getLogger(__name__)

T = TypeVar("T")

PERSONAL_FIELDS = ("phone", "phone_hash", "phone_masked", "requester", "trace")
# Unset too: records made before the requester was kept as a keyed tag
# (request_rules.requester_tag) held the requester id itself here.
_FIELDS_BEFORE_TAGS = ("requester_id",)


@dataclass(frozen=True)
class PassOutcome:
    """What one Retention.run_pass did; None where that step failed or was
    not run."""

    tagged: int | None
    purged: int | None
    under_previous_keys: dict[tuple[str, str], int] | None


async def _step(name: str, work: Awaitable[T]) -> T | None:
    try:
        return await work
    except Exception as error:  # the database may be away: the next pass tries again
        log.warning(f"{name} failed", extra={"fields": {"error": type(error).__name__}})
        return None


class Retention:
    def __init__(self, db: AsyncDatabase, keep: dt.timedelta, phones: PhoneStore) -> None:
        self._db = db
        self._keep = keep
        self._phones = phones

    async def ensure_indexes(self) -> None:
        await self._db["query_stats"].create_index("day")

    async def run_pass(self, hasher: KeyedHasher, now: dt.datetime, *, tag: bool) -> PassOutcome:
        """One pass of the retention job: tag requester ids stored before
        keyed tags (`tag`), purge, and count what is still under a previous
        hash key (only while `hasher` is rotating). Each step fails alone,
        logged at WARNING with the error's type: a tagging scan that keeps
        failing must not stop the purge, or personal fields would outlive
        their retention."""
        tagged = await _step("requester tagging", self.tag_requesters(hasher)) if tag else None
        purged = await _step("purge", self.purge(now))
        counted = await _step("previous-key count", self.count_previous_keys(hasher)) if hasher.rotating else None
        return PassOutcome(tagged, purged, counted)

    async def purge(self, now: dt.datetime, batch: int = 500) -> int:
        """One pass; returns how many queries lost their personal data."""
        queries = self._db["queries"]
        stale = await queries.find(
            {"completed_at": {"$lte": now - self._keep}, "purged_at": None},
            limit=batch,
        ).to_list(batch)
        for doc in stale:
            await self._keep_statistics(doc)
            await queries.update_one(
                {"_id": doc["_id"]},  # a final record: nobody else writes it
                {"$unset": {name: "" for name in (*PERSONAL_FIELDS, *_FIELDS_BEFORE_TAGS)}, "$set": {"purged_at": now}},
            )
        await self._phones.forget(now)
        await self._db["leases"].delete_many({"at": {"$lte": now - dt.timedelta(hours=24)}})
        if stale:
            log.info("personal data purged", extra={"fields": {"queries": len(stale)}})
        return len(stale)

    async def _keep_statistics(self, doc: dict) -> None:
        try:
            await self._db["query_stats"].insert_one(
                {
                    "_id": doc["_id"],
                    "day": doc["created_at"].strftime("%Y-%m-%d"),
                    "channel": doc["channel"],
                    "status": doc["status"],
                    "companies": {
                        cid: part.count if part.state == DONE else None
                        for cid, part in ((c, Part.from_doc(d)) for c, d in doc["companies"].items())
                    },
                }
            )
        except DuplicateKeyError:
            pass  # kept by an earlier pass that stopped before the unset

    async def count_previous_keys(self, hasher: KeyedHasher) -> dict[tuple[str, str], int]:
        """What is still kept under each hash key other than the current
        one, {(key id, collection): documents} ({} when only one key is
        configured): phone documents (`phones`), and queries, open (`work`)
        or not yet purged (`queries`), whose requester tag it made. A key
        rotation is finished, and the previous key may go, once all are 0
        (docs/runbook.md, "Keyed-hash keys"). A scan of each collection per
        previous key, only during a rotation."""
        counts = {}
        for kid in hasher.key_ids[1:]:
            counts[(kid, "phones")] = await self._phones.count_under_key(kid)
            for name in ("work", "queries"):
                counts[(kid, name)] = await self._db[name].count_documents({"requester": made_under(kid)})
        return counts

    async def tag_requesters(self, hasher: KeyedHasher) -> int:
        """Queries made before requester ids were kept as keyed tags (review
        L6) get their tag in place of the id (`requester`, and
        `requester_id` unset), open or final; one that named no requester
        just loses the empty field (nobody reads it). Returns how many were
        changed; a scan of `work` and `queries` (the aggregator calls it
        each pass in its first hour, and after that until a pass finds
        none). Each change is conditional on the id still being there. The
        only other writer of these fields is the final record's insert: a
        query the engine took over is tagged as it is read
        (query_store.Query.tag_requester), and any other carries the id
        through to its record, for a later pass."""
        changed = 0
        for name in ("work", "queries"):
            async for doc in self._db[name].find(
                {"requester_id": {"$exists": True}}, {"channel": 1, "requester_id": 1}
            ):
                raw = doc["requester_id"]
                tag = {"requester": request_rules.requester_tag(hasher, doc["channel"], raw)} if raw else {}
                update: dict = {"$unset": {"requester_id": ""}}
                if tag:
                    update["$set"] = tag
                result = await self._db[name].update_one({"_id": doc["_id"], "requester_id": raw}, update)
                changed += result.modified_count
        if changed:
            log.info("requester ids replaced by keyed tags", extra={"fields": {"queries": changed}})
        return changed

    async def daily_counts(self, day: str) -> dict[str, dict[str, int]]:
        """Per company: queries answered and accounts counted that day (anonymous)."""
        totals: dict[str, dict[str, int]] = {}
        async for row in self._db["query_stats"].find({"day": day}):
            for cid, count in row["companies"].items():
                entry = totals.setdefault(cid, {"answered": 0, "accounts": 0})
                if count is not None:
                    entry["answered"] += 1
                    entry["accounts"] += count
        return totals
