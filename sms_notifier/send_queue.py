"""The messages waiting to be submitted, shared by every notifier replica
with leases (the mechanism, and why a lease is a unique insert:
yztc/lease_queue.py).

Each PENDING message has one item in `sms_queue`, keyed by the message id;
it leaves when the message is SENT or FAILED. Lease documents
`<message id>#<generation>` live in `sms_leases`.
"""
from __future__ import annotations

import datetime as dt

from pymongo.asynchronous.database import AsyncDatabase

from yztc.lease_queue import LeaseQueue


class SendQueue(LeaseQueue):
    def __init__(self, db: AsyncDatabase, lease: dt.timedelta, owner: str | None = None) -> None:
        super().__init__(db["sms_queue"], db["sms_leases"], lease, owner)
