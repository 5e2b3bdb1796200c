"""The SmsNotifier servicer: Send queues a message and returns at once
(idempotent on the caller's message id), GetStatus reads it back."""
from __future__ import annotations

import datetime as dt
import re
import secrets
from collections.abc import Callable

import grpc

from sms_notifier import ucs2_parts
from sms_notifier.message_store import MessageStore
from sms_notifier.sealed_fields import Sealer
from sms_notifier.send_queue import SendQueue
from sms_notifier.sender import utc_now
from yztc.tls import require_caller
from yztc.v1 import sms_notifier_pb2 as pb
from yztc.v1 import sms_notifier_pb2_grpc

# SMPP destination_addr holds up to 20 digits. Which numbers exist is the
# SMS centre's call (ESME_RINVDSTADR), not ours.
_DEST = re.compile(r"\d{1,20}")
_MAX_MESSAGE_ID = 200


def status(doc: dict) -> pb.SmsStatus:
    return pb.SmsStatus(
        message_id=doc["_id"],
        state=pb.SmsStatus.State.Value(f"STATE_{doc['state']}"),
        segments=doc.get("segments", 0),
        attempts=doc.get("attempts", 0),
        smsc_message_ids=[p["smsc_id"] for p in sorted(doc.get("sent_parts", []), key=lambda p: p["seq"])],
        failure_reason=doc.get("failure_reason", ""),
    )


class SmsNotifierServicer(sms_notifier_pb2_grpc.SmsNotifierServicer):
    def __init__(
        self,
        store: MessageStore,
        queue: SendQueue,
        sealer: Sealer,
        wake: Callable[[], None],
        max_parts: int,
        allowed_callers: frozenset[str] = frozenset({"aggregator"}),
        now: Callable[[], dt.datetime] = utc_now,
    ) -> None:
        self._store = store
        self._queue = queue
        self._sealer = sealer
        self._wake = wake
        self._max_parts = max_parts
        self._allowed = allowed_callers
        self._now = now

    async def Send(self, request: pb.SendRequest, context: grpc.aio.ServicerContext) -> pb.SmsStatus:
        await require_caller(context, self._allowed)
        if not request.message_id or not request.dest or not request.text:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "message_id, dest and text are required")
        if len(request.message_id) > _MAX_MESSAGE_ID:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"message_id longer than {_MAX_MESSAGE_ID}")
        if not _DEST.fullmatch(request.dest):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "dest must be 1 to 20 digits")
        # A random concatenation reference, kept with the message so that
        # every retry of its parts carries the same one.
        udh_ref = secrets.randbelow(256)
        try:
            segments = len(ucs2_parts.split(request.text, udh_ref, self._max_parts))
        except ucs2_parts.TooLong as error:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
        existing = await self._store.get(request.message_id)
        if existing is not None:
            return status(existing)  # a repeat: never a second SMS
        now = self._now()
        # The queue item first: if we crash before the message is stored,
        # the worker drops the orphan item and the caller, who got an
        # error, sends again; never a message that no worker will find.
        await self._queue.add(request.message_id, now)
        sealed = self._sealer.seal(request.message_id, request.dest, request.text)
        existing = await self._store.create(request.message_id, sealed, segments, udh_ref, now)
        if existing is not None:
            return status(existing)  # a concurrent repeat won the insert
        self._wake()
        return pb.SmsStatus(message_id=request.message_id, state=pb.SmsStatus.STATE_PENDING, segments=segments)

    async def GetStatus(self, request: pb.GetStatusRequest, context: grpc.aio.ServicerContext) -> pb.SmsStatus:
        await require_caller(context, self._allowed)
        doc = await self._store.get(request.message_id)
        if doc is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, "no such message")
        return status(doc)
