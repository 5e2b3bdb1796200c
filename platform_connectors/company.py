"""The company connector: CountAccounts / PollCount over the company's HTTP API."""

from __future__ import annotations

import grpc

from platform_connectors.upstream import Upstream, UpstreamError, abort
from yztc.telemetry import rpc_span
from yztc.tls import require_caller
from yztc.v1 import company_connector_pb2 as pb
from yztc.v1 import company_connector_pb2_grpc

SERVICE = pb.DESCRIPTOR.services_by_name["CompanyConnector"].full_name


def _answer(body: dict) -> pb.CountAccountsResponse:
    if body.get("status") == "done":
        return pb.CountAccountsResponse(
            outcome=pb.CountAccountsResponse.OUTCOME_DONE,
            count=int(body["total"]),
            apps=[pb.AppAccounts(name=a["name"], count=int(a["count"])) for a in body.get("apps", [])],
        )
    return pb.CountAccountsResponse(
        outcome=pb.CountAccountsResponse.OUTCOME_ACCEPTED, ticket=str(body.get("ticket", ""))
    )


class CompanyConnectorServicer(company_connector_pb2_grpc.CompanyConnectorServicer):
    def __init__(self, upstream: Upstream, allowed_callers: frozenset[str]) -> None:
        self._upstream = upstream
        self._allowed = allowed_callers

    @rpc_span(SERVICE)
    async def CountAccounts(self, request, context: grpc.aio.ServicerContext):
        await require_caller(context, self._allowed)
        try:
            _, body = await self._upstream.call(
                "POST", "/accounts/count", {"request_id": request.query_id, "phone": request.phone}
            )
        except UpstreamError as error:
            await abort(context, error)
        return _answer(body)

    @rpc_span(SERVICE)
    async def PollCount(self, request, context: grpc.aio.ServicerContext):
        await require_caller(context, self._allowed)
        if not request.ticket:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "ticket is required")
        try:
            _, body = await self._upstream.call("GET", f"/accounts/count/{request.ticket}")
        except UpstreamError as error:
            await abort(context, error)
        if body.get("status") == "pending":
            return pb.CountAccountsResponse(outcome=pb.CountAccountsResponse.OUTCOME_ACCEPTED, ticket=request.ticket)
        return _answer(body)
