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
from aggregator.channel_quotas import NO_QUOTA, Admission, ChannelConfig, ChannelQuotas
from aggregator.intake import Intake
from aggregator.query_store import Query
from yztc.errors import ServiceError
from yztc.telemetry import rpc_span
from yztc.tls import peer_common_name
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


class AccountQueryServicer(account_query_pb2_grpc.AccountQueryServiceServicer):
    def __init__(
        self,
        intake: Intake,
        catalogue: list[Enterprise],
        channels: ChannelConfig,
        quotas: ChannelQuotas,
        mtls: bool,
    ) -> None:
        self._intake = intake
        self._catalogue = catalogue
        self._channels = channels
        self._quotas = quotas
        self._mtls = mtls

    def _identify(self, context: grpc.aio.ServicerContext, method: str) -> str:
        if not self._mtls:
            return LOCAL_CHANNEL  # plaintext development switch: one implicit channel
        channel = peer_common_name(context)
        if channel is None or self._channels.quota(channel, method) is None:
            raise ServiceError("UNAUTHENTICATED", detail="渠道未登记。")
        trace.get_current_span().set_attribute("yztc.channel", channel)
        return channel

    async def _channel(self, context: grpc.aio.ServicerContext, method: str) -> str:
        """The calling channel, admitted and within its quota for `method`."""
        channel = self._identify(context, method)
        if self._mtls:
            wait = await self._quotas.take(channel, method)
            if wait is not None:
                raise ServiceError("RATE_LIMITED", retry_after=max(1, int(wait + 0.999)))
        return channel

    async def _admission(self, context: grpc.aio.ServicerContext, method: str, requester: str) -> tuple[str, Admission]:
        """The calling channel and its quota slot for `method`, to be taken
        with the phone's claim (or spent by `_spend` if the call ends first)."""
        channel = self._identify(context, method)
        if not self._mtls:
            return channel, NO_QUOTA
        admitted = await self._quotas.admit(channel, method, requester)
        if isinstance(admitted, float):
            raise ServiceError("RATE_LIMITED", retry_after=max(1, int(admitted + 0.999)))
        return channel, admitted

    @rpc_span(SERVICE)
    @_maps_errors
    async def RequestVerificationCode(self, request, context):
        _, admission = await self._admission(context, "RequestVerificationCode", request.requester_id)
        async with _charged(admission):
            resend_after = await self._intake.request_code(request.phone, admission)
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
