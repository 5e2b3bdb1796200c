"""Receipts a session to the SMS centre has acknowledged, recorded off the
session's read loop. Both links (smsc_link.SmscLink, SMPP 3.4;
cmpp_link.CmppLink, CMPP 3.0) put each receipt here once the centre has its
deliver_sm_resp / CMPP_DELIVER_RESP: it will not be sent again, so one the
owner's callback cannot record (the database away) is tried again with
back-off for RETRY_SECONDS before it is given up on.

Bounded (`capacity`, L5/M8): a receipt that finds the queue full is not
taken, and the link answers the centre with a temporary error instead of
acknowledging it (SMPP deliver_sm_resp ESME_RX_T_APPN, CMPP DELIVER_RESP
Result 8), so the centre sends it again later and memory never grows
with what a centre sends."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from sms_notifier.receipts import Receipt

log = logging.getLogger(__name__)

# A few tasks record, so reading the session never waits on the database.
WORKERS = 4
RETRY_SECONDS = 600.0
CAPACITY = 10_000


class ReceiptQueue:
    def __init__(self, record: Callable[[Receipt], Awaitable[None]], name: str, capacity: int = CAPACITY) -> None:
        """`record` is called with each receipt (the link's current
        `on_receipt`: look it up at call time); `name` prefixes task names;
        `capacity`: receipts waiting at most."""
        self._record_one = record
        self._name = name
        self._queue: asyncio.Queue[Receipt] = asyncio.Queue(maxsize=capacity)
        self._workers: list[asyncio.Task] = []
        self.refused = 0

    def put(self, receipt: Receipt) -> bool:
        """Queues the receipt; False (not taken) when the queue is full: the
        caller must not acknowledge it to the centre."""
        try:
            self._queue.put_nowait(receipt)
        except asyncio.QueueFull:
            self.refused += 1
            if self.refused == 1 or self.refused % 1000 == 0:
                log.warning("receipt queue full; receipts refused", extra={"fields": {"refused": self.refused}})
            return False
        return True

    def __len__(self) -> int:
        return self._queue.qsize()

    def start(self) -> None:
        self._workers = [asyncio.create_task(self._work(), name=f"{self._name}-{i}") for i in range(WORKERS)]

    async def stop(self, timeout: float = 5.0) -> None:
        """Records what is queued (within `timeout` s), then stops the workers."""
        try:
            await asyncio.wait_for(self._queue.join(), timeout=timeout)
        except TimeoutError:
            log.warning("receipts left unrecorded at stop", extra={"fields": {"count": self._queue.qsize()}})
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)

    async def _work(self) -> None:
        while True:
            receipt = await self._queue.get()
            try:
                await self._record(receipt)
            finally:
                self._queue.task_done()

    async def _record(self, receipt: Receipt) -> None:
        fields = {"smsc_message_id": receipt.smsc_message_id}
        give_up_at = time.monotonic() + RETRY_SECONDS
        delay = 0.2
        while True:
            try:
                await self._record_one(receipt)
                return
            except Exception as error:
                if time.monotonic() + delay > give_up_at:
                    log.exception("receipt not recorded; given up", extra={"fields": fields})
                    return
                log.warning(
                    "receipt not recorded yet; retrying", extra={"fields": {**fields, "error": type(error).__name__}}
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
