"""The channel API servicer (yztc.v1.AccountQueryService): translates
messages, identifies the channel by its client certificate, delegates to
`Intake`, and maps domain errors to gRPC status once."""

from __future__ import annotations

import contextlib
import functools
import logging

import grpc
from google.protobuf import timestamp_pb2
from opentelemetry import trace

from aggregator.catalogue import Enterprise
from aggregator.channel_quotas import Admission, ChannelConfig, ChannelQuotas, ChannelsFile
from aggregator.intake import Intake
from aggregator.query_store import Query
from yztc.errors import ServiceError
from yztc.telemetry import rpc_span
from yztc.tls import CHANNEL_PREFIX, SERVICE_PREFIX, is_plaintext, peer_certificate
from yztc.v1 import account_query_pb2 as pb
from yztc.v1 import account_query_pb2_grpc

log = logging.getLogger(__name__)

LOCAL_CHANNEL = "local-dev"
SERVICE = pb.DESCRIPTOR.services_by_name["AccountQueryService"].full_name


def _maps_errors(method):
    """Every ServiceError becomes a status with ErrorInfo; anything else UNAVAILABLE, logged."""

    @functools.wraps(method)
    async def wrapper(self, request, context: grpc.aio.ServicerContext):
        try:
            return await method(self, request, context)
        except ServiceError as error:
            await context.abort_with_status(error.to_grpc_status())
        except Exception:
            log.exception("unexpected error", extra={"fields": {"method": method.__name__}})
            await context.abort_with_status(ServiceError("UNAVAILABLE").to_grpc_status())

    return wrapper


@contextlib.asynccontextmanager
async def _charged(admission: Admission):
    """A call answered with a CONTRACT error before its phone claim took the
    quota slot takes it alone; if the quota was used up meanwhile (other
    replicas), the answer is RATE_LIMITED instead. A successful call's claim
    took the slot."""
    try:
        yield
    except ServiceError:
        if not await admission.spend():
            raise ServiceError("RATE_LIMITED", retry_after=max(1, int(admission.retry_after + 0.999))) from None
        raise


def _timestamp(moment) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(moment)
    return ts


class ChannelAdmission:
    """Which channel a call is, on one of the aggregator's two ports (M2, M3).

    - The public channel port (`internal=False`; TLS trusts only the
      channels' CA): the client certificate's one SAN URI
      `spiffe://yztc/channel/<id>`, a channel of the channels file that no
      internal service stands for.
    - The internal port (`internal=True`; TLS trusts only the internal CA):
      the certificate's `spiffe://yztc/service/<name>`, admitted as the
      channel whose `internal_caller` is that name (gateway → alipay-gateway).

    On both, a certificate whose serial is in the file's `revoked_serials`
    is refused; the file's latest version applies (ChannelsFile). Under the
    plaintext development switch, public callers are channel `local-dev`
    and internal ones the gateway; each still needs its entry, and quotas.
    Refusals are UNAUTHENTICATED in the CONTRACT error shape."""

    def __init__(self, channels: ChannelConfig | ChannelsFile, *, internal: bool) -> None:
        self._channels = channels
        self._internal = internal

    def channel(self, context: grpc.aio.ServicerContext) -> str:
        """The admitted channel of the call; ServiceError UNAUTHENTICATED if none."""
        auth = context.auth_context()  # built afresh on every call: read it once
        config = self._channels.current()
        channel: str | None
        if is_plaintext(auth):
            channel = config.internal_callers.get("gateway") if self._internal else LOCAL_CHANNEL
        else:
            peer = peer_certificate(auth)
            if peer is None:
                raise ServiceError("UNAUTHENTICATED", detail="渠道证书无效。")
            if peer.serial in config.revoked_serials:
                raise ServiceError("UNAUTHENTICATED", detail="渠道证书已吊销。")
            if self._internal:
                service = peer.identity(SERVICE_PREFIX)
                channel = config.internal_callers.get(service) if service else None
            else:
                channel = peer.identity(CHANNEL_PREFIX)
                if channel is not None and not config.public_channel(channel):
                    channel = None
        if channel is None or channel not in config.channels:
            raise ServiceError("UNAUTHENTICATED", detail="渠道未登记。")
        return channel

    async def gate(self, context: grpc.aio.ServicerContext) -> None:
        """For health and reflection on the public port (I2): only admitted channels."""
        try:
            self.channel(context)
        except ServiceError as error:
            await context.abort_with_status(error.to_grpc_status())


class AccountQueryServicer(account_query_pb2_grpc.AccountQueryServiceServicer):
    def __init__(
        self,
        intake: Intake,
        catalogue: list[Enterprise],
        admission: ChannelAdmission,
        quotas: ChannelQuotas,
    ) -> None:
        """One servicer per port, each with that port's `admission`."""
        self._intake = intake
        self._catalogue = catalogue
        self._admitted = admission
        self._quotas = quotas

    def _identify(self, context: grpc.aio.ServicerContext, method: str) -> str:
        channel = self._admitted.channel(context)
        trace.get_current_span().set_attribute("yztc.channel", channel)
        return channel

    async def _channel(self, context: grpc.aio.ServicerContext, method: str) -> str:
        """The calling channel, admitted and within its quota for `method`
        (quotas apply to every channel, the plaintext development one too)."""
        channel = self._identify(context, method)
        wait = await self._quotas.take(channel, method)
        if wait is not None:
            raise ServiceError("RATE_LIMITED", retry_after=max(1, int(wait + 0.999)))
        return channel

    async def _admission(self, context: grpc.aio.ServicerContext, method: str, requester: str) -> tuple[str, Admission]:
        """The calling channel and its quota slot for `method`, to be taken
        with the phone's claim (or spent by `_spend` if the call ends first)."""
        channel = self._identify(context, method)
        admitted = await self._quotas.admit(channel, method, requester)
        if isinstance(admitted, float):
            raise ServiceError("RATE_LIMITED", retry_after=max(1, int(admitted + 0.999)))
        return channel, admitted

    @rpc_span(SERVICE)
    @_maps_errors
    async def RequestVerificationCode(self, request, context):
        channel, admission = await self._admission(context, "RequestVerificationCode", request.requester_id)
        async with _charged(admission):
            resend_after = await self._intake.request_code(request.phone, channel, request.requester_id, admission)
        return pb.RequestVerificationCodeResponse(resend_after=resend_after)

    @rpc_span(SERVICE)
    @_maps_errors
    async def SubmitQuery(self, request, context):
        channel, admission = await self._admission(context, "SubmitQuery", request.requester_id)
        async with _charged(admission):
            accepted = await self._intake.submit(
                request.phone,
                request.id_last6,
                request.code,
                request.consent,
                channel,
                request.requester_id,
                admission,
            )
        trace.get_current_span().set_attribute("yztc.query_id", accepted["query_id"])
        return pb.SubmitQueryResponse(
            query_id=accepted["query_id"],
            status=pb.QUERY_STATUS_IN_PROGRESS,
            deliver_by=_timestamp(accepted["deliver_by"]),
        )

    @rpc_span(SERVICE)
    @_maps_errors
    async def GetQuery(self, request, context):
        channel = await self._channel(context, "GetQuery")
        query = await self._intake.get(request.query_id, channel, request.requester_id)
        return self._query_message(query)

    @rpc_span(SERVICE)
    @_maps_errors
    async def ListEnterprises(self, request, context):
        await self._channel(context, "ListEnterprises")
        return pb.ListEnterprisesResponse(
            enterprises=[
                pb.Enterprise(id=e.id, name=e.name, hotline=e.hotline, detail_and_unbind=e.detail_and_unbind)
                for e in self._catalogue
            ]
        )

    def _query_message(self, query: Query) -> pb.Query:
        enterprises = []
        for enterprise in self._catalogue:
            part = query.companies.get(enterprise.id)
            if part is None:
                continue
            result = pb.EnterpriseResult(
                id=enterprise.id,
                name=enterprise.name,
                state=pb.EnterpriseState.Value(f"ENTERPRISE_STATE_{part.state}"),
                apps=[pb.AppCount(name=a["name"], count=a["count"]) for a in part.apps],
            )
            if part.state == "DONE" and part.count is not None:
                result.count = part.count
            enterprises.append(result)
        return pb.Query(
            query_id=query.id,
            status=pb.QueryStatus.Value(f"QUERY_STATUS_{query.status}"),
            phone=query.phone_masked,
            deliver_by=_timestamp(query.deliver_by),
            enterprises=enterprises,
            sms_state=pb.SmsState.Value(f"SMS_STATE_{query.sms.state}"),
        )
