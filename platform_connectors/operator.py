"""The operator connector: the real-name check over the operator's HTTP API.

The ID six passes through in memory only: never logged, never stored.
"""

from __future__ import annotations

import grpc

from platform_connectors.upstream import Upstream, UpstreamError, abort
from yztc.identifiers import OPERATOR_IDS
from yztc.revoked_certificates import RevokedCertificates
from yztc.telemetry import rpc_span
from yztc.tls import require_caller
from yztc.v1 import operator_connector_pb2 as pb
from yztc.v1 import operator_connector_pb2_grpc

SERVICE = pb.DESCRIPTOR.services_by_name["OperatorConnector"].full_name

Verdict = pb.VerifySubscriberResponse.Verdict
VERDICTS = {
    "match": Verdict.VERDICT_MATCH,
    "mismatch": Verdict.VERDICT_MISMATCH,
    "cancelled": Verdict.VERDICT_CANCELLED,
    "unknown": Verdict.VERDICT_UNKNOWN,
    "ported": Verdict.VERDICT_PORTED,
}


class OperatorConnectorServicer(operator_connector_pb2_grpc.OperatorConnectorServicer):
    def __init__(
        self, upstream: Upstream, allowed_callers: frozenset[str], revoked: RevokedCertificates | None = None
    ) -> None:
        """`allowed_callers`: the service names that may call; `revoked`:
        internal certificates refused by serial (None: none)."""
        self._upstream = upstream
        self._allowed = allowed_callers
        self._revoked = revoked

    @rpc_span(SERVICE)
    async def VerifySubscriber(self, request, context: grpc.aio.ServicerContext):
        await require_caller(context, self._allowed, self._revoked)
        try:
            _, body = await self._upstream.call(
                "POST", "/subscribers/verify", {"phone": request.phone, "id_last6": request.id_last6}
            )
        except UpstreamError as error:
            await abort(context, error)
        verdict = VERDICTS.get(str(body.get("result", "")))
        ported_to = body.get("ported_to", "")
        if verdict is None or not isinstance(ported_to, str) or (ported_to and ported_to not in OPERATOR_IDS):
            await context.abort(grpc.StatusCode.UNAVAILABLE, "operator answered an unknown result")
        return pb.VerifySubscriberResponse(verdict=verdict, ported_to=ported_to)
