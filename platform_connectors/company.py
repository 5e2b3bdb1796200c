"""The company connector: CountAccounts / PollCount over the company's HTTP API."""

from __future__ import annotations

import re
from urllib.parse import quote

import grpc

from platform_connectors.upstream import Upstream, UpstreamError, abort
from yztc.revoked_certificates import RevokedCertificates
from yztc.telemetry import rpc_span
from yztc.tls import require_caller
from yztc.v1 import company_connector_pb2 as pb
from yztc.v1 import company_connector_pb2_grpc

SERVICE = pb.DESCRIPTOR.services_by_name["CompanyConnector"].full_name

# What a company's ticket may be (docs/partner-api.openapi.yaml, Ticket): it
# goes into a URL path, so nothing that could leave the path segment.
TICKET = re.compile(r"[A-Za-z0-9_-]{1,128}")


def ticket_path(ticket: str) -> str:
    """The poll path of `ticket`, `/accounts/count/<ticket>` (percent-encoded,
    though a valid ticket needs none); UpstreamError FAILED_PRECONDITION for a
    ticket that is not 1..128 of A-Za-z0-9_- (nothing is sent then)."""
    if not TICKET.fullmatch(ticket):
        raise UpstreamError(grpc.StatusCode.FAILED_PRECONDITION, "malformed company ticket")
    return f"/accounts/count/{quote(ticket, safe='')}"


def _answer(body: dict) -> pb.CountAccountsResponse:
    """Our answer from the company's; UpstreamError UNAVAILABLE when the
    company's body is not one the partner API allows (a partner failure)."""
    try:
        if body.get("status") == "done":
            apps = body.get("apps", [])
            if not isinstance(apps, list):
                raise TypeError("apps")
            return pb.CountAccountsResponse(
                outcome=pb.CountAccountsResponse.OUTCOME_DONE,
                count=_count(body["total"]),
                apps=[pb.AppAccounts(name=str(a["name"]), count=_count(a["count"])) for a in apps],
            )
        ticket = body.get("ticket")
        if body.get("status") != "accepted" or not isinstance(ticket, str) or not TICKET.fullmatch(ticket):
            raise UpstreamError(grpc.StatusCode.UNAVAILABLE, "company answered no valid ticket")
    except (KeyError, TypeError, ValueError):
        raise UpstreamError(grpc.StatusCode.UNAVAILABLE, "company answered a malformed count") from None
    return pb.CountAccountsResponse(outcome=pb.CountAccountsResponse.OUTCOME_ACCEPTED, ticket=ticket)


def _count(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**31:
        raise ValueError("count")
    return value


class CompanyConnectorServicer(company_connector_pb2_grpc.CompanyConnectorServicer):
    def __init__(
        self, upstream: Upstream, allowed_callers: frozenset[str], revoked: RevokedCertificates | None = None
    ) -> None:
        """`allowed_callers`: the service names that may call; `revoked`:
        internal certificates refused by serial (None: none)."""
        self._upstream = upstream
        self._allowed = allowed_callers
        self._revoked = revoked

    @rpc_span(SERVICE)
    async def CountAccounts(self, request, context: grpc.aio.ServicerContext):
        await require_caller(context, self._allowed, self._revoked)
        try:
            _, body = await self._upstream.call(
                "POST", "/accounts/count", {"request_id": request.query_id, "phone": request.phone}
            )
            return _answer(body)
        except UpstreamError as error:
            await abort(context, error)
            raise

    @rpc_span(SERVICE)
    async def PollCount(self, request, context: grpc.aio.ServicerContext):
        await require_caller(context, self._allowed, self._revoked)
        if not request.ticket:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "ticket is required")
        try:
            _, body = await self._upstream.call("GET", ticket_path(request.ticket))
            if body.get("status") == "pending":
                return pb.CountAccountsResponse(
                    outcome=pb.CountAccountsResponse.OUTCOME_ACCEPTED, ticket=request.ticket
                )
            return _answer(body)
        except UpstreamError as error:
            await abort(context, error)
            raise
