"""L1: a client's `traceparent` and `baggage` from the public Internet were
extracted, stored with every query and sent on to the partners' APIs (the
review's bag.py: the client's trace id and baggage came out unchanged). Now
the gateway starts its own trace for every request, the channel API starts
its own for a channel's call (linked, never adopted), and baggage is never
read nor sent. Our own services' context is still continued (the gateway's
call into the aggregator stays one trace)."""

from __future__ import annotations

from pathlib import Path

import grpc

from aggregator.service import SERVICE
from devstack import pki
from gateway.keys import SESSIONS
from tests.integration.conftest import key_files, keys  # noqa: F401  (fixtures)
from tests.integration.test_telemetry_propagation import (  # noqa: F401  (fixtures)
    USER,
    Company,
    _call_connector,
    gateway,
    tracing,
)
from yztc import telemetry
from yztc.grpc_server import GrpcService
from yztc.v1 import account_query_pb2 as pb
from yztc.v1 import account_query_pb2_grpc as pb_grpc

CLIENT_TRACE = "0af7651916cd43dd8448eb211c80319c"
TRACEPARENT = f"00-{CLIENT_TRACE}-b7ad6b7169203331-01"  # sampled: "record me"
BAGGAGE = "evil=" + "A" * 200 + ",x=%3Cscript%3E"


def _trace_id(traceparent: str) -> str:
    return traceparent.split("-")[1]


async def test_the_gateway_starts_its_own_trace_and_drops_baggage(tracing, gateway) -> None:  # noqa: F811
    tracing(1.0)
    client, aggregator = await gateway()
    token, _ = await client.app[SESSIONS].create(USER)
    body = {"phone": "13800138000", "id_last6": "12345x", "code": "123456", "consent": True}
    headers = {"Authorization": f"Bearer {token}", "traceparent": TRACEPARENT, "baggage": BAGGAGE}
    response = await client.post("/api/v1/queries", json=body, headers=headers)
    assert response.status == 202
    (sent,) = aggregator.metadata
    assert "traceparent" in sent  # traced, but under the gateway's own trace
    assert _trace_id(sent["traceparent"]) != CLIENT_TRACE
    assert "baggage" not in sent
    spans = tracing.spans()
    assert spans and all(s["context"]["trace_id"] != f"0x{CLIENT_TRACE}" for s in spans)
    assert "evil" not in str(spans)


class ChannelApi(pb_grpc.AccountQueryServiceServicer):
    """The channel API's method as the aggregator wraps it (rpc_span of its
    SERVICE), keeping what intake stores with a query: trace_carrier()."""

    def __init__(self) -> None:
        self.stored: list[dict[str, str]] = []

    @telemetry.rpc_span(SERVICE)
    async def SubmitQuery(self, request, context):
        self.stored.append(telemetry.trace_carrier())
        return pb.SubmitQueryResponse(query_id="q1", status=pb.QUERY_STATUS_IN_PROGRESS)


async def _submit_as(folder: Path, cert: tuple[Path, Path]) -> tuple[dict[str, str], list[dict[str, str]]]:
    """A SubmitQuery over mutual TLS as `cert`, with a client's traceparent
    and baggage; then the query's round, resumed from what was stored, calls
    a company connector. (the stored carrier, the headers the company got)."""
    server_cert, server_key = pki.issue_service(folder, "aggregator")
    pki.ensure_ca(folder, pki.CHANNELS_CA)
    trusted = (folder / f"{pki.INTERNAL_CA}.pem").read_bytes() + (folder / f"{pki.CHANNELS_CA}.pem").read_bytes()
    credentials = grpc.ssl_server_credentials(
        [(server_key.read_bytes(), server_cert.read_bytes())], root_certificates=trusted, require_client_auth=True
    )
    api = ChannelApi()
    service = GrpcService(
        "127.0.0.1:0",
        lambda s: pb_grpc.add_AccountQueryServiceServicer_to_server(api, s),
        [SERVICE],
        credentials=credentials,
        grace_seconds=0.5,
    )
    await service.start()
    try:
        channel_credentials = grpc.ssl_channel_credentials(
            root_certificates=(folder / f"{pki.INTERNAL_CA}.pem").read_bytes(),
            private_key=cert[1].read_bytes(),
            certificate_chain=cert[0].read_bytes(),
        )
        async with grpc.aio.secure_channel(f"127.0.0.1:{service.port}", channel_credentials) as channel:
            await pb_grpc.AccountQueryServiceStub(channel).SubmitQuery(
                pb.SubmitQueryRequest(phone="13800138000", id_last6="12345x", code="123456", consent=True),
                timeout=5.0,
                metadata=(("traceparent", TRACEPARENT), ("baggage", BAGGAGE)),
            )
    finally:
        await service.stop()
    (stored,) = api.stored
    company = Company()
    parent = telemetry.context_from_carrier(stored)
    with telemetry.tracer().start_as_current_span("query.round", context=parent):
        await _call_connector(company)
    return stored, company.headers


async def test_a_channels_trace_context_is_not_stored_nor_sent_to_partners(tracing, tmp_path: Path) -> None:  # noqa: F811
    tracing(1.0)
    stored, partner = await _submit_as(tmp_path, pki.issue_channel(tmp_path, "wechat-two"))
    assert _trace_id(stored["traceparent"]) != CLIENT_TRACE
    (headers,) = partner
    assert _trace_id(headers["traceparent"]) == _trace_id(stored["traceparent"])  # our own trace goes on
    assert "baggage" not in {k.lower() for k in headers}
    # The channel's span is linked to, for whoever debugs with the channel.
    spans = tracing.spans()
    (server,) = [s for s in spans if s["name"] == f"{SERVICE}/SubmitQuery"]
    assert server["parent_id"] is None
    assert [link["context"]["trace_id"] for link in server["links"]] == [f"0x{CLIENT_TRACE}"]


async def test_our_own_services_trace_is_continued(tracing, tmp_path: Path) -> None:  # noqa: F811
    tracing(1.0)
    stored, partner = await _submit_as(tmp_path, pki.issue_service(tmp_path, "gateway"))
    assert _trace_id(stored["traceparent"]) == CLIENT_TRACE
    (headers,) = partner
    assert _trace_id(headers["traceparent"]) == CLIENT_TRACE
    assert "baggage" not in {k.lower() for k in headers}
