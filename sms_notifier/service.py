"""The SmsNotifier servicer: idempotent Send on the caller's message id, GetStatus."""
from __future__ import annotations

import datetime as dt
import logging

import grpc

from sms_notifier.message_store import MessageStore
from sms_notifier.smsc_link import SmscError, SmscLink
from yztc.v1 import sms_notifier_pb2 as pb
from yztc.v1 import sms_notifier_pb2_grpc

log = logging.getLogger(__name__)


def _status(doc: dict) -> pb.SmsStatus:
    return pb.SmsStatus(
        message_id=doc["_id"],
        state=pb.SmsStatus.State.Value(f"STATE_{doc['state']}"),
        segments=doc.get("segments", 0),
    )


class SmsNotifierServicer(sms_notifier_pb2_grpc.SmsNotifierServicer):
    def __init__(self, store: MessageStore, link: SmscLink) -> None:
        self._store = store
        self._link = link

    async def Send(self, request, context: grpc.aio.ServicerContext):
        if not request.message_id or not request.dest or not request.text:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "message_id, dest and text are required")
        existing = await self._store.create(request.message_id, dt.datetime.now(dt.UTC))
        if existing is not None:
            return _status(existing)  # a repeat: never a second SMS
        try:
            smsc_id, segments = await self._link.submit(request.dest, request.text)
        except SmscError as error:
            log.warning("submit failed", extra={"fields": {"message_id": request.message_id, "why": str(error)}})
            return _status(await self._store.mark(request.message_id, "FAILED"))
        log.info("sent", extra={"fields": {"message_id": request.message_id, "segments": segments}})
        return _status(await self._store.mark(request.message_id, "SENT", segments=segments, smsc_id=smsc_id))

    async def GetStatus(self, request, context: grpc.aio.ServicerContext):
        doc = await self._store.get(request.message_id)
        if doc is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, "no such message")
        return _status(doc)
