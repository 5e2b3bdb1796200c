"""The aggregator's channel API as the gateway uses it: one deadline per
call, errors as CONTRACT ServiceErrors, answers as CONTRACT JSON, and the
trace context of sampled requests carried along as gRPC metadata."""

from __future__ import annotations

import datetime as dt

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from yztc.errors import ServiceError
from yztc.telemetry import client_span, outgoing_metadata
from yztc.v1 import account_query_pb2 as pb
from yztc.v1.account_query_pb2_grpc import AccountQueryServiceStub

SERVICE = pb.DESCRIPTOR.services_by_name["AccountQueryService"].full_name


def _iso(ts: Timestamp) -> str:
    return ts.ToDatetime(tzinfo=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _enum(enum, value: int, prefix: str) -> str:
    return enum.Name(value).removeprefix(prefix)


def query_json(query: pb.Query) -> dict:
    return {
        "query_id": query.query_id,
        "status": _enum(pb.QueryStatus, query.status, "QUERY_STATUS_"),
        "phone": query.phone,  # masked by the aggregator
        "deliver_by": _iso(query.deliver_by) if query.HasField("deliver_by") else None,
        "enterprises": [
            {
                "id": e.id,
                "name": e.name,
                "state": _enum(pb.EnterpriseState, e.state, "ENTERPRISE_STATE_"),
                # proto3 `optional`: unset until DONE, and 0 is a real count.
                "count": e.count if e.state == pb.ENTERPRISE_STATE_DONE and e.HasField("count") else None,
                "apps": [{"name": a.name, "count": a.count} for a in e.apps],
            }
            for e in query.enterprises
        ],
        "sms": {"state": _enum(pb.SmsState, query.sms_state, "SMS_STATE_")},
    }


def submitted_json(answer: pb.SubmitQueryResponse) -> dict:
    return {
        "query_id": answer.query_id,
        "status": _enum(pb.QueryStatus, answer.status, "QUERY_STATUS_"),
        "deliver_by": _iso(answer.deliver_by) if answer.HasField("deliver_by") else None,
    }


def enterprises_json(answer: pb.ListEnterprisesResponse) -> dict:
    return {
        "enterprises": [
            {
                "id": e.id,
                "name": e.name,
                "hotline": e.hotline,
                "detail_and_unbind": e.detail_and_unbind,
            }
            for e in answer.enterprises
        ]
    }


class AggregatorClient:
    def __init__(self, channel: grpc.aio.Channel, timeout_seconds: float) -> None:
        self._stub = AccountQueryServiceStub(channel)
        self._timeout = timeout_seconds

    async def _call(self, name: str, request, query_id: str = ""):
        """Calls the method `name` ("SubmitQuery"); inside a sampled trace a
        CLIENT span covers the call and its context goes along as metadata."""
        attributes = {"rpc.system": "grpc", "rpc.service": SERVICE, "rpc.method": name}
        with client_span(f"{SERVICE}/{name}", attributes) as span:
            try:
                answer = await getattr(self._stub, name)(request, timeout=self._timeout, metadata=outgoing_metadata())
            except grpc.aio.AioRpcError as error:
                if span is not None:
                    span.set_attribute("rpc.grpc.status_code", error.code().value[0])
                # The aggregator's ErrorInfo reason is the CONTRACT code; a
                # transport failure or deadline has none and becomes UNAVAILABLE.
                raise ServiceError.from_grpc_error(error) from None
            if span is not None and (query_id or getattr(answer, "query_id", "")):
                # The id that ties a query's trace together (never the phone).
                span.set_attribute("yztc.query_id", query_id or answer.query_id)
            return answer

    async def request_code(self, phone: str, requester_id: str) -> dict:
        answer = await self._call(
            "RequestVerificationCode",
            pb.RequestVerificationCodeRequest(phone=phone, requester_id=requester_id),
        )
        return {"resend_after": answer.resend_after}

    async def submit_query(self, phone: str, id_last6: str, code: str, requester_id: str) -> dict:
        answer = await self._call(
            "SubmitQuery",
            pb.SubmitQueryRequest(
                phone=phone,
                id_last6=id_last6,
                code=code,
                consent=True,  # the gateway only gets here with consent given
                requester_id=requester_id,
            ),
        )
        return submitted_json(answer)

    async def get_query(self, query_id: str, requester_id: str) -> dict:
        answer = await self._call(
            "GetQuery", pb.GetQueryRequest(query_id=query_id, requester_id=requester_id), query_id
        )
        return query_json(answer)

    async def list_enterprises(self) -> dict:
        answer = await self._call("ListEnterprises", pb.ListEnterprisesRequest())
        return enterprises_json(answer)
