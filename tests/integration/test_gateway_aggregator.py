"""The gateway in front of a stub aggregator (a real gRPC server on a free
port): answers mapped to the CONTRACT's JSON, ErrorInfo reasons to CONTRACT
errors, the session's Alipay user id passed as requester_id, deadlines,
readiness, and the mutual-TLS channel."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable

import grpc
import pytest
from aiohttp.test_utils import TestClient

from devstack.pki import issue
from tests.integration.gateways import Gateways, bearer
from yztc.errors import ServiceError
from yztc.grpc_server import GrpcService
from yztc.settings import GrpcTlsSettings
from yztc.tls import server_credentials
from yztc.v1 import account_query_pb2 as pb
from yztc.v1 import account_query_pb2_grpc as pb_grpc

USER = "2088000000000007"
DELIVER_BY = dt.datetime(2026, 12, 1, 8, 30, 15, tzinfo=dt.UTC)
SLOW_PHONE = "13700137000"
LIMITED_PHONE = "13900139000"
RUNNING_PHONE = "13600136000"


class StubAggregator(pb_grpc.AccountQueryServiceServicer):
    """Answers like the aggregator, records what it was asked."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []

    async def _fail(self, context, error: ServiceError):
        await context.abort_with_status(error.to_grpc_status())

    async def RequestVerificationCode(self, request, context):
        self.calls.append(("RequestVerificationCode", request))
        if request.phone == SLOW_PHONE:
            await asyncio.sleep(3)
        if request.phone == LIMITED_PHONE:
            await self._fail(context, ServiceError("RATE_LIMITED", retry_after=42))
        return pb.RequestVerificationCodeResponse(resend_after=60)

    async def SubmitQuery(self, request, context):
        self.calls.append(("SubmitQuery", request))
        if request.phone == RUNNING_PHONE:
            await self._fail(context, ServiceError("QUERY_IN_PROGRESS", query_id="q-running"))
        if request.code == "000000":
            await self._fail(context, ServiceError("CODE_INVALID"))
        if request.code == "999999":
            await context.abort(grpc.StatusCode.INTERNAL, "no ErrorInfo here")
        answer = pb.SubmitQueryResponse(query_id="q1", status=pb.QUERY_STATUS_IN_PROGRESS)
        answer.deliver_by.FromDatetime(DELIVER_BY)
        return answer

    async def GetQuery(self, request, context):
        self.calls.append(("GetQuery", request))
        if request.query_id != "q1" or request.requester_id != USER:
            await self._fail(context, ServiceError("NOT_FOUND"))
        query = pb.Query(
            query_id="q1",
            status=pb.QUERY_STATUS_PARTIAL,
            phone="138****8000",
            sms_state=pb.SMS_STATE_DELIVERED,
            enterprises=[
                pb.EnterpriseResult(
                    id="tencent",
                    name="腾讯",
                    state=pb.ENTERPRISE_STATE_DONE,
                    count=3,
                    apps=[pb.AppCount(name="微信", count=1), pb.AppCount(name="QQ", count=2)],
                ),
                pb.EnterpriseResult(id="jd", name="京东", state=pb.ENTERPRISE_STATE_DONE, count=0),
                pb.EnterpriseResult(id="baidu", name="百度", state=pb.ENTERPRISE_STATE_PENDING),
                pb.EnterpriseResult(id="meituan", name="美团", state=pb.ENTERPRISE_STATE_FAILED),
            ],
        )
        query.deliver_by.FromDatetime(DELIVER_BY)
        return query

    async def ListEnterprises(self, request, context):
        self.calls.append(("ListEnterprises", request))
        return pb.ListEnterprisesResponse(
            enterprises=[
                pb.Enterprise(id="tencent", name="腾讯", hotline="95017", detail_and_unbind="微信：我-设置"),
            ]
        )


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, GrpcTlsSettings]:
    folder = tmp_path_factory.mktemp("pki")
    server_cert, server_key = issue(folder, "aggregator", server=True)
    client_cert, client_key = issue(folder, "alipay-gateway")
    ca = str(folder / "ca.pem")
    return {
        "server": GrpcTlsSettings(tls_ca=ca, tls_cert=str(server_cert), tls_key=str(server_key)),
        "client": GrpcTlsSettings(tls_ca=ca, tls_cert=str(client_cert), tls_key=str(client_key)),
    }


Start = Callable[..., Awaitable[tuple[TestClient, StubAggregator, GrpcService]]]


@pytest.fixture
def start(gateways: Gateways) -> Start:
    """start(server_tls=None, client_tls=None) -> (gateway client, stub, gRPC service)."""

    async def _start(server_tls: GrpcTlsSettings | None = None, client_tls: GrpcTlsSettings | None = None):
        stub = StubAggregator()
        service = await gateways.aggregator(stub, server_credentials(server_tls) if server_tls else None)
        settings = {"tls": client_tls} if client_tls else {}
        client = await gateways.start(
            aggregator_target=f"127.0.0.1:{service.port}", call_timeout_seconds=0.5, **settings
        )
        return client, stub, service

    return _start


async def _auth(client: TestClient) -> dict[str, str]:
    return await bearer(client, USER)


async def test_verification_code_passes_normalised_phone_and_requester(start):
    client, stub, _ = await start()
    response = await client.post(
        "/api/v1/verification-codes", json={"phone": "+86 138-0013-8000"}, headers=await _auth(client)
    )
    assert response.status == 202
    assert await response.json() == {"resend_after": 60}
    [(name, request)] = stub.calls
    assert name == "RequestVerificationCode"
    assert request.phone == "13800138000" and request.requester_id == USER


async def test_rate_limited_carries_retry_after_header(start):
    client, _, _ = await start()
    response = await client.post(
        "/api/v1/verification-codes", json={"phone": LIMITED_PHONE}, headers=await _auth(client)
    )
    assert response.status == 429
    assert response.headers["Retry-After"] == "42"
    body = await response.json()
    assert body["error"]["code"] == "RATE_LIMITED" and body["error"]["retry_after"] == 42
    assert body["error"]["message"] == "操作过于频繁，请稍后再试。"


async def test_submit_query_is_accepted(start):
    client, stub, _ = await start()
    body = {"phone": "13800138000", "id_last6": "12345x", "code": "123456", "consent": True}
    response = await client.post("/api/v1/queries", json=body, headers=await _auth(client))
    assert response.status == 202
    assert await response.json() == {
        "query_id": "q1",
        "status": "IN_PROGRESS",
        "deliver_by": "2026-12-01T08:30:15Z",
    }
    [(_, request)] = stub.calls
    assert (request.phone, request.id_last6, request.code, request.consent, request.requester_id) == (
        "13800138000",
        "12345X",
        "123456",
        True,
        USER,
    )


@pytest.mark.parametrize(
    ("phone", "code", "status", "error"),
    [
        (RUNNING_PHONE, "123456", 409, "QUERY_IN_PROGRESS"),
        ("13800138000", "000000", 422, "CODE_INVALID"),
        ("13800138000", "999999", 503, "UNAVAILABLE"),  # a status without ErrorInfo
    ],
)
async def test_aggregator_errors_become_contract_errors(start, phone, code, status, error):
    client, _, _ = await start()
    body = {"phone": phone, "id_last6": "123456", "code": code, "consent": True}
    response = await client.post("/api/v1/queries", json=body, headers=await _auth(client))
    assert response.status == status
    answer = (await response.json())["error"]
    assert answer["code"] == error
    if error == "QUERY_IN_PROGRESS":
        assert answer["query_id"] == "q-running"


async def test_invalid_input_never_reaches_the_aggregator(start):
    client, stub, _ = await start()
    auth = await _auth(client)
    await client.post("/api/v1/queries", json={"phone": "1"}, headers=auth)
    await client.post(
        "/api/v1/queries", json={"phone": "13800138000", "id_last6": "123456", "code": "123456"}, headers=auth
    )
    await client.post("/api/v1/verification-codes", json={"phone": 1}, headers=auth)
    assert stub.calls == []


async def test_query_is_mapped_to_contract_json(start):
    client, stub, _ = await start()
    response = await client.get("/api/v1/queries/q1", headers=await _auth(client))
    assert response.status == 200
    assert await response.json() == {
        "query_id": "q1",
        "status": "PARTIAL",
        "phone": "138****8000",
        "deliver_by": "2026-12-01T08:30:15Z",
        "enterprises": [
            {
                "id": "tencent",
                "name": "腾讯",
                "state": "DONE",
                "count": 3,
                "apps": [{"name": "微信", "count": 1}, {"name": "QQ", "count": 2}],
            },
            {"id": "jd", "name": "京东", "state": "DONE", "count": 0, "apps": []},
            {"id": "baidu", "name": "百度", "state": "PENDING", "count": None, "apps": []},
            {"id": "meituan", "name": "美团", "state": "FAILED", "count": None, "apps": []},
        ],
        "sms": {"state": "DELIVERED"},
    }
    [(_, request)] = stub.calls
    assert request.requester_id == USER


async def test_unknown_or_other_users_query_is_not_found(start):
    client, _, _ = await start()
    response = await client.get("/api/v1/queries/q2", headers=await _auth(client))
    assert response.status == 404
    assert (await response.json())["error"]["code"] == "NOT_FOUND"


async def test_enterprises_without_a_token(start):
    client, _, _ = await start()
    response = await client.get("/api/v1/enterprises")
    assert response.status == 200
    assert await response.json() == {
        "enterprises": [{"id": "tencent", "name": "腾讯", "hotline": "95017", "detail_and_unbind": "微信：我-设置"}]
    }


async def test_slow_aggregator_meets_the_deadline_as_unavailable(start):
    client, _, _ = await start()
    started = asyncio.get_running_loop().time()
    response = await client.post("/api/v1/verification-codes", json={"phone": SLOW_PHONE}, headers=await _auth(client))
    assert response.status == 503
    assert asyncio.get_running_loop().time() - started < 2


async def test_readyz_follows_the_aggregator_health(start):
    client, _, service = await start()
    response = await client.get("/readyz")
    assert response.status == 200
    assert await response.json() == {"status": "ready"}
    await service.set_serving(False)
    response = await client.get("/readyz")
    assert response.status == 503
    assert (await response.json())["error"]["code"] == "UNAVAILABLE"


async def test_mutual_tls_channel_with_server_name_override(start, pki):
    client, stub, _ = await start(server_tls=pki["server"], client_tls=pki["client"])
    response = await client.get("/api/v1/enterprises")
    assert response.status == 200
    assert (await client.get("/readyz")).status == 200


async def test_plaintext_gateway_cannot_reach_a_tls_aggregator(start, pki):
    client, stub, _ = await start(server_tls=pki["server"])
    response = await client.get("/api/v1/enterprises")
    assert response.status == 503
    assert stub.calls == []
