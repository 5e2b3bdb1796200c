"""Trace context across real hops, without any instrumentor: the gateway's
request span → its call to a stub aggregator (gRPC metadata); a connector's
server span → its HTTP request to the company (`traceparent` header). One
trace when sampled, nothing carried when not. And grpc.aio on uvloop."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from opentelemetry import trace
from opentelemetry.util._once import Once

from devstack.stack import free_port
from gateway.app import RUNNER_OPTIONS, create_app
from gateway.keys import SESSIONS
from gateway.middlewares import trace_request
from gateway.settings import GatewaySettings
from platform_connectors.company import CompanyConnectorServicer
from platform_connectors.upstream import Upstream
from yztc import event_loop, telemetry
from yztc.grpc_server import GrpcService
from yztc.settings import CommonSettings, GrpcTlsSettings
from yztc.v1 import account_query_pb2 as aq
from yztc.v1 import account_query_pb2_grpc as aq_grpc
from yztc.v1 import company_connector_pb2 as cc
from yztc.v1 import company_connector_pb2_grpc as cc_grpc

AES_KEY = base64.b64encode(bytes(range(16))).decode()
USER = "2088000000000007"


@pytest.fixture
def tracing(tmp_path: Path) -> Iterator:
    """tracing(ratio) turns console tracing on (spans to a file); spans()
    flushes and reads them. Back to no provider afterwards."""
    path = tmp_path / "spans.jsonl"

    def turn_on(ratio: float) -> None:
        telemetry.setup_telemetry(
            "test",
            CommonSettings.model_validate(
                {
                    "YZTC_TRACES_EXPORTER": "console",
                    "YZTC_TRACES_FILE": str(path),
                    "YZTC_TRACES_SAMPLE_RATIO": ratio,
                }
            ),
        )

    def spans() -> list[dict]:
        telemetry.shutdown_telemetry()
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]

    turn_on.spans = spans
    yield turn_on
    telemetry.shutdown_telemetry()
    trace._TRACER_PROVIDER = None
    trace._TRACER_PROVIDER_SET_ONCE = Once()


class RecordingAggregator(aq_grpc.AccountQueryServiceServicer):
    """Records each call's incoming metadata; continues sampled traces."""

    def __init__(self) -> None:
        self.metadata: list[dict[str, str]] = []

    @telemetry.rpc_span("yztc.v1.AccountQueryService")
    async def SubmitQuery(self, request, context):
        self.metadata.append(dict(context.invocation_metadata()))
        return aq.SubmitQueryResponse(query_id="q1", status=aq.QUERY_STATUS_IN_PROGRESS)


async def _serve(register, name: str) -> GrpcService:
    service = GrpcService("127.0.0.1:0", register, [name], grace_seconds=0.5)
    await service.start()
    return service


@pytest.fixture
async def gateway(mongodb_uri: str, key_files: tuple[Path, Path]) -> AsyncIterator:
    """start() -> (gateway client, recording aggregator); call after tracing()."""
    running: list = []

    async def start():
        stub = RecordingAggregator()
        service = await _serve(
            lambda s: aq_grpc.add_AccountQueryServiceServicer_to_server(stub, s),
            aq.DESCRIPTOR.services_by_name["AccountQueryService"].full_name,
        )
        running.append(service)
        settings = GatewaySettings(
            mongodb_uri=mongodb_uri,
            aggregator_target=f"127.0.0.1:{service.port}",
            alipay_url=f"http://127.0.0.1:{free_port()}/gateway.do",
            alipay_app_private_key_file=key_files[0],
            alipay_public_key_file=key_files[1],
            alipay_aes_key=AES_KEY,
            call_timeout_seconds=2.0,
            tls=GrpcTlsSettings(tls_ca="", tls_cert="", tls_key="", development=True),
        )
        server = TestServer(create_app(settings))
        await server.start_server(**RUNNER_OPTIONS)
        client = TestClient(server)
        await client.start_server()
        running.append(client)
        return client, stub

    yield start
    for thing in reversed(running):
        await (thing.close() if isinstance(thing, TestClient) else thing.stop())


async def _submit(client: TestClient) -> int:
    token, _ = await client.app[SESSIONS].create(USER)
    body = {"phone": "13800138000", "id_last6": "12345x", "code": "123456", "consent": True}
    response = await client.post("/api/v1/queries", json=body, headers={"Authorization": f"Bearer {token}"})
    return response.status


async def test_a_sampled_request_is_one_trace_from_gateway_to_aggregator(tracing, gateway) -> None:
    tracing(1.0)
    client, stub = await gateway()
    assert await _submit(client) == 202
    traceparent = stub.metadata[0]["traceparent"]
    spans = tracing.spans()
    by_name = {s["name"]: s for s in spans}
    root = by_name["POST /api/v1/queries"]
    call = by_name["yztc.v1.AccountQueryService/SubmitQuery"]
    assert root["parent_id"] is None and root["kind"] == "SpanKind.SERVER"
    assert {s["context"]["trace_id"] for s in spans} == {root["context"]["trace_id"]}
    assert traceparent.split("-")[1] == root["context"]["trace_id"].removeprefix("0x")
    kinds = sorted(s["kind"] for s in spans if s["name"] == call["name"])
    assert kinds == ["SpanKind.CLIENT", "SpanKind.SERVER"]
    assert all(s["attributes"].get("yztc.query_id") == "q1" for s in spans if s["kind"] == "SpanKind.CLIENT")
    assert "13800138000" not in json.dumps(spans)


async def test_an_unsampled_request_carries_nothing(tracing, gateway) -> None:
    tracing(0.0)
    client, stub = await gateway()
    assert await _submit(client) == 202
    assert "traceparent" not in stub.metadata[0]
    assert tracing.spans() == []


async def test_off_the_gateway_has_no_request_span_and_carries_nothing(gateway) -> None:
    client, stub = await gateway()
    assert trace_request not in client.app.middlewares
    assert await _submit(client) == 202
    assert "traceparent" not in stub.metadata[0]


class Company:
    """The company's HTTP API: counts 3 (or is down), records the headers it was sent."""

    def __init__(self, down: bool = False) -> None:
        self.headers: list[dict[str, str]] = []
        self.down = down

    async def count(self, request: web.Request) -> web.Response:
        self.headers.append(dict(request.headers))
        if self.down:
            return web.json_response({}, status=503)
        return web.json_response({"status": "done", "total": 3, "apps": []})


async def _call_connector(company: Company) -> cc.CountAccountsResponse:
    """A company connector in front of `company`, called once, all served here."""
    app = web.Application()
    app.router.add_post("/accounts/count", company.count)
    async with TestServer(app) as http:
        upstream = Upstream(str(http.make_url("")), 2.0)
        await upstream.open()
        service = await _serve(
            lambda s: cc_grpc.add_CompanyConnectorServicer_to_server(
                CompanyConnectorServicer(upstream, frozenset()), s
            ),
            cc.DESCRIPTOR.services_by_name["CompanyConnector"].full_name,
        )
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{service.port}") as channel:
                return await cc_grpc.CompanyConnectorStub(channel).CountAccounts(
                    cc.CountAccountsRequest(query_id="q1", phone="13800138000"),
                    timeout=5.0,
                    metadata=telemetry.outgoing_metadata(),
                )
        finally:
            await service.stop()
            await upstream.close()


@pytest.mark.parametrize("ratio", [1.0, 0.0])
async def test_the_connector_passes_a_sampled_trace_to_the_company(tracing, ratio: float) -> None:
    tracing(ratio)
    company = Company()
    with telemetry.tracer().start_as_current_span("query.round") as round_span:
        answer = await _call_connector(company)
        trace_id = f"{round_span.get_span_context().trace_id:032x}"
    assert answer.count == 3
    spans = tracing.spans()
    if ratio == 0.0:
        assert "traceparent" not in {k.lower() for k in company.headers[0]}
        assert spans == []
        return
    assert company.headers[0]["traceparent"].split("-")[1] == trace_id
    names = {s["name"]: s for s in spans}
    server = names["yztc.v1.CompanyConnector/CountAccounts"]
    http = names["POST"]
    assert server["kind"] == "SpanKind.SERVER" and http["kind"] == "SpanKind.CLIENT"
    assert http["parent_id"] == server["context"]["span_id"]
    assert http["attributes"]["http.response.status_code"] == 200
    assert {s["context"]["trace_id"] for s in spans} == {"0x" + trace_id}


async def test_a_failed_call_records_its_status_code(tracing) -> None:
    tracing(1.0)
    with telemetry.tracer().start_as_current_span("query.round"):
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await _call_connector(Company(down=True))
    assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
    (server,) = [s for s in tracing.spans() if s["name"] == "yztc.v1.CompanyConnector/CountAccounts"]
    assert server["attributes"]["rpc.grpc.status_code"] == grpc.StatusCode.UNAVAILABLE.value[0]
    assert server["status"]["status_code"] == "ERROR"


def test_grpc_aio_serves_and_calls_on_uvloop() -> None:
    async def main() -> tuple[str, int]:
        import asyncio

        answer = await _call_connector(Company())
        return type(asyncio.get_running_loop()).__module__, answer.count

    loop_module, count = event_loop.run(main())
    assert loop_module == "uvloop" and count == 3
