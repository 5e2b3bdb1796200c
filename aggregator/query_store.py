"""Queries in MongoDB, as typed values (`Query`, `Part`) converted here and
nowhere else.

- `work`: one document per open query, `_id` the query id: the whole query
  (encrypted phone, channel, requester, consent, trace context, deadline,
  every company's part, the result SMS's hand-over) plus its lease fields
  (`lease_gen`, `next_at`, `created_at`; yztc/lease_queue.py). It is the work
  item itself: the accepting replica inserts it owned (generation 1, due
  only when that lease runs out), starts the round on the value it holds,
  and writes it only as its lease holder. No other copy exists while it is
  open.
- `queries`: the final record, inserted once when nothing more is to be
  done (`Recorder` batches these inserts and the `work` deletes that follow
  them, across queries); `GetQuery` after completion and the retention purge
  read it.

Every hot read and write is by `_id` (FerretDB v1 pushes only `{_id: x}`
down to SQLite); on a MongoDB cluster both collections shard on hashed
`_id`. The final record is written with `w: "majority"`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from dataclasses import dataclass, field

from pymongo import ASCENDING, DeleteOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from aggregator import request_rules
from yztc import claims
from yztc.keyed_hashes import KeyedHasher

log = logging.getLogger(__name__)

PENDING, DONE, FAILED = "PENDING", "DONE", "FAILED"
IN_PROGRESS, COMPLETED, PARTIAL = "IN_PROGRESS", "COMPLETED", "PARTIAL"


@dataclass
class Part:
    """One company's part of a query; changed only by the round holding the lease."""

    state: str = PENDING
    count: int | None = None
    apps: list[dict] = field(default_factory=list)  # [{"name", "count"}]
    attempts: int = 0
    polls: int = 0
    next_at: dt.datetime | None = None  # pending: next try (None: now); settled: None
    ticket: str = ""  # an async company's handle for a later poll
    error: str = ""

    def to_doc(self) -> dict:
        """Only what differs from a fresh part (a new query's eight parts are
        `{}`): every byte of a query is
        written twice (open, final) and decoded once more on delete, and
        FerretDB stores a type schema beside each field (a query of eight
        full parts was 5.7 KB there, 60 % of it schema)."""
        doc: dict = {}
        if self.state != PENDING:
            doc["state"] = self.state
        if self.count is not None:
            doc["count"] = self.count
        if self.apps:
            doc["apps"] = self.apps
        if self.attempts:
            doc["attempts"] = self.attempts
        if self.polls:
            doc["polls"] = self.polls
        if self.next_at is not None:
            doc["next_at"] = self.next_at
        if self.ticket:
            doc["ticket"] = self.ticket
        if self.error:
            doc["error"] = self.error
        return doc

    @classmethod
    def from_doc(cls, doc: dict) -> Part:
        return cls(
            doc.get("state", PENDING),
            doc.get("count"),
            list(doc.get("apps", [])),
            doc.get("attempts", 0),
            doc.get("polls", 0),
            doc.get("next_at"),
            doc.get("ticket", ""),
            doc.get("error", ""),
        )


@dataclass
class ResultSms:
    message_id: str
    state: str = "PENDING"  # PENDING SENT DELIVERED FAILED (CONTRACT sms.state)
    handed_over: bool = False
    attempts: int = 0  # hand-overs tried; the notifier de-duplicates on message_id


@dataclass
class Query:
    id: str
    phone_hash: str
    phone_box: dict  # the phone, encrypted (personal_data.PhoneProtector)
    phone_masked: str
    channel: str
    # request_rules.requester_tag of the channel and requester: the
    # requester id itself is never stored (review L6).
    requester_tag: str
    consent: dict  # {"at", "terms_version"}
    trace: dict[str, str]  # W3C trace context of the accepting request
    created_at: dt.datetime
    deliver_by: dt.datetime
    finalize_at: dt.datetime
    companies: dict[str, Part]
    sms: ResultSms
    status: str = IN_PROGRESS
    completed_at: dt.datetime | None = None
    open: bool = True
    # Set by retention.py when it removed the personal fields (written by
    # it alone, after the final record: never part of to_doc).
    purged_at: dt.datetime | None = None
    # A record made before requester ids were kept as keyed tags (review
    # L6) held the id itself: carried through as read, never made anew, so
    # Retention.tag_requesters can still turn it into its tag.
    requester_id_before_tags: str = ""

    def current_requester_tag(self, hasher: KeyedHasher) -> str:
        """The requester's tag: the stored one, or for a record made before
        keyed tags (review L6) the tag of the id it held, as
        Retention.tag_requesters would write it, so its requester reads it
        before that pass reaches it. "" for a query that names nobody."""
        if self.requester_tag or not self.requester_id_before_tags:
            return self.requester_tag
        return request_rules.requester_tag(hasher, self.channel, self.requester_id_before_tags)

    def tag_requester(self, hasher: KeyedHasher) -> None:
        """A query read from a record made before keyed tags (review L6)
        gets its tag in place of the id it held, so its final record holds
        no id (the engine, on taking over an open query)."""
        self.requester_tag = self.current_requester_tag(hasher)
        self.requester_id_before_tags = ""

    @property
    def purged(self) -> bool:
        """Its personal data is gone (retention.py): it is shown to nobody."""
        return self.purged_at is not None

    def to_doc(self) -> dict:
        return {
            "_id": self.id,
            "phone_hash": self.phone_hash,
            "phone": self.phone_box,
            "phone_masked": self.phone_masked,
            "channel": self.channel,
            "requester": self.requester_tag,
            "consent": self.consent,
            "trace": self.trace,
            "status": self.status,
            "open": self.open,
            "created_at": self.created_at,
            "deliver_by": self.deliver_by,
            "finalize_at": self.finalize_at,
            "completed_at": self.completed_at,
            **({"requester_id": self.requester_id_before_tags} if self.requester_id_before_tags else {}),
            "companies": {cid: part.to_doc() for cid, part in self.companies.items()},
            "sms": {
                "message_id": self.sms.message_id,
                "state": self.sms.state,
                "handed_over": self.sms.handed_over,
                "attempts": self.sms.attempts,
            },
        }

    @classmethod
    def from_doc(cls, doc: dict) -> Query:
        sms = doc["sms"]
        return cls(
            id=doc["_id"],
            phone_hash=doc.get("phone_hash", ""),
            phone_box=doc.get("phone", {}),
            phone_masked=doc.get("phone_masked", ""),
            channel=doc["channel"],
            requester_tag=doc.get("requester", ""),
            consent=doc.get("consent", {}),
            trace=doc.get("trace") or {},
            created_at=doc["created_at"],
            deliver_by=doc["deliver_by"],
            finalize_at=doc["finalize_at"],
            companies={cid: Part.from_doc(p) for cid, p in doc["companies"].items()},
            sms=ResultSms(
                sms["message_id"], sms.get("state", "PENDING"), sms.get("handed_over", False), sms.get("attempts", 0)
            ),
            status=doc["status"],
            completed_at=doc.get("completed_at"),
            open=doc.get("open", True),
            purged_at=doc.get("purged_at"),
            requester_id_before_tags=doc.get("requester_id", ""),
        )


class QueryStore:
    """Reads of a query wherever it is (open in `work`, or final in `queries`)."""

    def __init__(self, db: AsyncDatabase) -> None:
        self.work = db["work"]
        self.records = claims.majority(db["queries"])

    async def ensure_indexes(self) -> None:
        await self.records.create_index([("completed_at", ASCENDING)])

    async def get(self, query_id: str) -> Query | None:
        doc = await self.work.find_one({"_id": query_id})
        if doc is None:
            doc = await self.records.find_one({"_id": query_id})
        return Query.from_doc(doc) if doc is not None else None

    async def record_exists(self, query_id: str) -> bool:
        return await self.records.find_one({"_id": query_id}, {"_id": 1}) is not None


class Recorder:
    """Final records in batches: a finished query's record is inserted into
    `queries`, then its `work` document deleted, each as one command for all
    the queries finished within `delay` seconds (FerretDB runs the statements
    of one delete command one by one, each by `_id`). `finish` returns once
    both are written; it raises if they could not be (the round's lease then
    runs out and the query is finished again: the insert is idempotent)."""

    def __init__(self, db: AsyncDatabase, delay: float = 0.02, batch: int = 200) -> None:
        self._records = claims.majority(db["queries"])
        self._work = db["work"]
        self._delay = delay
        self._batch = batch
        self._pending: list[tuple[dict, asyncio.Future]] = []
        self._flusher: asyncio.Task | None = None

    async def finish(self, record: dict) -> None:
        future = asyncio.get_running_loop().create_future()
        self._pending.append((record, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_soon(), name="query-records")
        await future

    async def _flush_soon(self) -> None:
        await asyncio.sleep(self._delay)
        while self._pending:
            batch, self._pending = self._pending[: self._batch], self._pending[self._batch :]
            try:
                await self._write([record for record, _ in batch])
            except Exception as error:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                continue
            for _, future in batch:
                if not future.done():
                    future.set_result(None)

    async def _write(self, records: list[dict]) -> None:
        try:
            await self._records.insert_many(records, ordered=False)
        except BulkWriteError as error:
            # A record already there: an earlier round wrote it and died
            # before deleting the work item. Anything else is a real failure.
            if any(e.get("code") != 11000 for e in error.details.get("writeErrors", [])):
                raise
        await self._work.bulk_write([DeleteOne({"_id": r["_id"]}) for r in records], ordered=False)
