"""The SmsNotifier servicer: validates and translates, and delegates to the
sender. Send submits the message now and answers SENT, PENDING (in the
fallback queue) or FAILED (refused for good), idempotent on the caller's
message id (protos/yztc/v1/sms_notifier.proto, sender.py); GetStatus reads it
back. A database that is needed and away is UNAVAILABLE (nothing was sent,
or what was is remembered for the caller's next try)."""

from __future__ import annotations

import re

import grpc
from pymongo.errors import PyMongoError

from sms_notifier import message_records, ucs2_parts
from sms_notifier.message_records import MessageState
from sms_notifier.sender import Sender
from yztc.revoked_certificates import RevokedCertificates
from yztc.telemetry import rpc_span
from yztc.tls import require_caller
from yztc.v1 import sms_notifier_pb2 as pb
from yztc.v1 import sms_notifier_pb2_grpc

SERVICE = pb.DESCRIPTOR.services_by_name["SmsNotifier"].full_name

# SMPP destination_addr holds up to 20 digits. Which numbers exist is the
# SMS centre's call (ESME_RINVDSTADR), not ours.
_DEST = re.compile(r"\d{1,20}")
_MAX_MESSAGE_ID = 200


def status(state: MessageState) -> pb.SmsStatus:
    return pb.SmsStatus(
        message_id=state.message_id,
        state=pb.SmsStatus.State.Value(f"STATE_{state.state}"),
        segments=state.segments,
        attempts=state.rounds,
        smsc_message_ids=state.smsc_ids,
        failure_reason=state.reason,
    )


class SmsNotifierServicer(sms_notifier_pb2_grpc.SmsNotifierServicer):
    def __init__(
        self,
        sender: Sender,
        max_parts: int,
        allowed_callers: frozenset[str] = frozenset({"aggregator"}),
        revoked: RevokedCertificates | None = None,
    ) -> None:
        """`allowed_callers`: the service names that may call; `revoked`:
        internal certificates refused by serial (None: none)."""
        self._sender = sender
        self._max_parts = max_parts
        self._allowed = allowed_callers
        self._revoked = revoked

    @rpc_span(SERVICE)
    async def Send(self, request: pb.SendRequest, context: grpc.aio.ServicerContext) -> pb.SmsStatus:
        await require_caller(context, self._allowed, self._revoked)
        if not request.message_id or not request.dest or not request.text:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "message_id, dest and text are required")
        if len(request.message_id) > _MAX_MESSAGE_ID:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"message_id longer than {_MAX_MESSAGE_ID}")
        if not _DEST.fullmatch(request.dest):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "dest must be 1 to 20 digits")
        if request.attempt < 0:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "attempt must be 0 or more")
        try:
            parts = ucs2_parts.split(request.text, message_records.udh_ref(request.message_id), self._max_parts)
        except ucs2_parts.TooLong as error:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
        try:
            state = await self._sender.send(request.message_id, request.dest, parts, request.text, request.attempt)
        except PyMongoError:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "database unavailable")
        return status(state)

    @rpc_span(SERVICE)
    async def GetStatus(self, request: pb.GetStatusRequest, context: grpc.aio.ServicerContext) -> pb.SmsStatus:
        await require_caller(context, self._allowed, self._revoked)
        try:
            state = await self._sender.status(request.message_id) if request.message_id else None
        except PyMongoError:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "database unavailable")
        if state is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, "no such message")
        assert state is not None  # abort raises; grpc.aio types it as returning None
        return status(state)
