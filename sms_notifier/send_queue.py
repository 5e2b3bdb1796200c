"""The fallback queue, shared by every notifier replica with leases (the
mechanism, and why a lease is a unique insert: yztc/lease_queue.py).

Only a message whose immediate push could not finish has an item here: the
SMS centre was not bound, throttled, answered transiently, or the push ran
out of time. The item `q:{message_id}` in `sms_queue` carries what a later
round needs and nothing is stored elsewhere meanwhile:

    {_id: "q:<message id>", next_at, created_at, lease_gen,
     sealed: {kid, ct} (destination and text, AES-GCM: sealed_fields.py),
     segments, udh_ref, parts: [{seq, smsc_id}] (accepted so far: never sent
     again), rounds, attempt, last_error}

It leaves when the message is SENT (after its `s:` record) or FAILED (after
its `d:` record). Lease documents `q:<message id>#<generation>` live in
`sms_leases`. The collection stays small, so the worker's scan of it (≤ 1/s
when idle) is cheap on FerretDB too.
"""

from __future__ import annotations

import datetime as dt

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from sms_notifier import message_records as records
from yztc import claims
from yztc.lease_queue import LeaseQueue


class SendQueue(LeaseQueue):
    def __init__(self, db: AsyncDatabase, lease: dt.timedelta, owner: str | None = None) -> None:
        # `w: "majority"`: a queued message rolled back by a failover would be
        # lost after its caller was told PENDING; a rolled-back lease would
        # let two replicas hold one item.
        super().__init__(claims.majority(db["sms_queue"]), claims.majority(db["sms_leases"]), lease, owner)

    async def add_message(
        self,
        message_id: str,
        sealed: dict,
        *,
        segments: int,
        udh_ref: int,
        parts: dict[int, str],
        rounds: int,
        attempt: int,
        last_error: str,
        now: dt.datetime,
        next_at: dt.datetime,
    ) -> bool:
        """Queues a message for the worker; False if it is queued already (an
        earlier attempt queued it: its item goes on)."""
        try:
            await self._items.insert_one(
                {
                    "_id": records.queue_id(message_id),
                    "next_at": next_at,
                    "created_at": now,
                    "lease_gen": 0,
                    "sealed": sealed,
                    "segments": segments,
                    "udh_ref": udh_ref,
                    "parts": [{"seq": s, "smsc_id": i} for s, i in sorted(parts.items())],
                    "rounds": rounds,
                    "attempt": attempt,
                    "last_error": last_error,
                }
            )
            return True
        except DuplicateKeyError:
            return False

    async def release_with(
        self, item_id: str, gen: int, next_at: dt.datetime, parts: dict[int, str], rounds: int, last_error: str
    ) -> bool:
        """The round is over with work left: what it achieved and when the item
        is due again, in one write (the one write after the centre's answer).
        False if the lease had passed on (nothing written)."""
        if not await self.holds(item_id, gen):
            self.let_go(item_id)
            return False
        await self._items.update_one(
            {"_id": item_id},
            {
                "$set": {
                    "next_at": next_at,
                    "parts": [{"seq": s, "smsc_id": i} for s, i in sorted(parts.items())],
                    "rounds": rounds,
                    "last_error": last_error,
                }
            },
        )
        self.let_go(item_id)
        return True
