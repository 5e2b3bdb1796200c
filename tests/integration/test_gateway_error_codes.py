"""Every error code of the CONTRACT's table, produced over HTTP, each in its
CONTRACT shape: status, `{"error":{"code","message","retry_after"?}}`, a
Chinese message, `Retry-After` with 429, the running `query_id` with 409.

| code                   | HTTP | produced here by                                        |
|------------------------|------|---------------------------------------------------------|
| INVALID_ARGUMENT       | 400  | malformed JSON (gateway)                                |
| CONSENT_REQUIRED       | 400  | `consent: false` (gateway)                              |
| UNAUTHENTICATED        | 401  | no token (gateway)                                      |
| NOT_FOUND              | 404  | another user's query (aggregator says so by requester)  |
| METHOD_NOT_ALLOWED     | 405  | DELETE on a GET route (gateway; not in the CONTRACT)    |
| QUERY_IN_PROGRESS      | 409  | aggregator, with the running query's id                 |
| PAYLOAD_TOO_LARGE      | 413  | a body over 16 KiB (gateway)                            |
| UNSUPPORTED_MEDIA_TYPE | 415  | a form body (gateway)                                   |
| CODE_INVALID           | 422  | aggregator                                              |
| CODE_EXPIRED           | 422  | aggregator                                              |
| VERIFICATION_FAILED    | 422  | aggregator, with retry_after (the 24 h lock)            |
| NUMBER_CANCELLED       | 422  | aggregator                                              |
| RATE_LIMITED           | 429  | the gateway's per-IP limit                              |
| QUERY_LIMITED          | 429  | aggregator, with retry_after                            |
| UNAVAILABLE            | 503  | the aggregator failing without a CONTRACT code          |

The aggregator here is a stub that answers each rule's error for a given
phone: the rules themselves are the aggregator's tests; this module shows
the gateway carries every code to the client intact. REQUEST_TOO_LARGE
(414/431), which only the HTTP parser's refusals carry and no gRPC call
can, is produced in test_gateway_parser_refusals.py.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

import grpc
import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from tests.integration.gateways import Gateways, bearer
from yztc.errors import CATALOGUE, ServiceError
from yztc.v1 import account_query_pb2 as pb
from yztc.v1 import account_query_pb2_grpc as pb_grpc

USER, OTHER_USER = "2088000000000001", "2088000000000002"
IP_LIMIT = 3

# The aggregator's refusal of a query, by phone.
REFUSALS = {
    "13000000001": ServiceError("QUERY_IN_PROGRESS", query_id="q-running"),
    "13000000002": ServiceError("CODE_INVALID"),
    "13000000003": ServiceError("CODE_EXPIRED"),
    "13000000004": ServiceError("VERIFICATION_FAILED", retry_after=86400),
    "13000000005": ServiceError("NUMBER_CANCELLED"),
    "13000000006": ServiceError("QUERY_LIMITED", retry_after=3600),
}
BROKEN_PHONE = "13000000009"


class RefusingAggregator(pb_grpc.AccountQueryServiceServicer):
    async def SubmitQuery(self, request, context):
        if request.phone == BROKEN_PHONE:
            await context.abort(grpc.StatusCode.INTERNAL, "no ErrorInfo")
        await context.abort_with_status(REFUSALS[request.phone].to_grpc_status())

    async def GetQuery(self, request, context):
        # The aggregator shows a query only to the user who made it.
        if request.requester_id != USER:
            await context.abort_with_status(ServiceError("NOT_FOUND").to_grpc_status())
        query = pb.Query(query_id=request.query_id, status=pb.QUERY_STATUS_IN_PROGRESS, phone="130****0001")
        query.deliver_by.GetCurrentTime()
        return query


@pytest.fixture
async def client(gateways: Gateways) -> TestClient:
    service = await gateways.aggregator(RefusingAggregator())
    return await gateways.start(aggregator_target=f"127.0.0.1:{service.port}", limit_ip_requests=f"{IP_LIMIT}/60")


async def _auth(client: TestClient, user: str = USER) -> dict[str, str]:
    return await bearer(client, user)


async def _query(client: TestClient, phone: str, consent: bool = True) -> ClientResponse:
    body = {"phone": phone, "id_last6": "12345X", "code": "123456", "consent": consent}
    return await client.post("/api/v1/queries", json=body, headers=await _auth(client))


async def _rate_limited(client: TestClient) -> ClientResponse:
    for _ in range(IP_LIMIT):
        assert (await client.get("/api/v1/openapi.json")).status == 200
    return await client.get("/api/v1/openapi.json")


async def _other_users_query(client: TestClient) -> ClientResponse:
    mine = await client.get("/api/v1/queries/q1", headers=await _auth(client, USER))
    assert mine.status == 200
    return await client.get("/api/v1/queries/q1", headers=await _auth(client, OTHER_USER))


Producer = Callable[[TestClient], Awaitable[ClientResponse]]

PRODUCERS: dict[str, Producer] = {
    "INVALID_ARGUMENT": lambda c: c.post(
        "/api/v1/sessions", data=b'{"auth_code": ', headers={"Content-Type": "application/json"}
    ),
    "CONSENT_REQUIRED": lambda c: _query(c, "13800138000", consent=False),
    "UNAUTHENTICATED": lambda c: c.get("/api/v1/queries/q1"),
    "NOT_FOUND": _other_users_query,
    "METHOD_NOT_ALLOWED": lambda c: c.delete("/api/v1/enterprises"),
    "QUERY_IN_PROGRESS": lambda c: _query(c, "13000000001"),
    "PAYLOAD_TOO_LARGE": lambda c: c.post(
        "/api/v1/sessions", data=b"{" + b" " * 17000 + b"}", headers={"Content-Type": "application/json"}
    ),
    "UNSUPPORTED_MEDIA_TYPE": lambda c: c.post("/api/v1/sessions", data={"auth_code": "x"}),
    "CODE_INVALID": lambda c: _query(c, "13000000002"),
    "CODE_EXPIRED": lambda c: _query(c, "13000000003"),
    "VERIFICATION_FAILED": lambda c: _query(c, "13000000004"),
    "NUMBER_CANCELLED": lambda c: _query(c, "13000000005"),
    "RATE_LIMITED": _rate_limited,
    "QUERY_LIMITED": lambda c: _query(c, "13000000006"),
    "UNAVAILABLE": lambda c: _query(c, BROKEN_PHONE),
}


def test_every_code_of_the_catalogue_is_produced_here():
    assert set(PRODUCERS) == set(CATALOGUE)


@pytest.mark.parametrize("code", list(PRODUCERS))
async def test_error_code_over_http(client, code):
    response = await PRODUCERS[code](client)
    assert response.status == CATALOGUE[code].http, await response.text()
    assert response.content_type == "application/json"
    body = await response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert error["code"] == code
    assert error["message"] and any("\u4e00" <= ch <= "\u9fff" for ch in error["message"])
    assert "Traceback" not in json.dumps(body)
    if response.status == 429:
        assert error["retry_after"] >= 1
        assert response.headers["Retry-After"] == str(error["retry_after"])
    if code == "VERIFICATION_FAILED":
        assert error["retry_after"] == 86400
    if code == "QUERY_IN_PROGRESS":
        assert error["query_id"] == "q-running"
    if code == "UNAUTHENTICATED":
        assert response.headers["WWW-Authenticate"] == "Bearer"
    if code == "METHOD_NOT_ALLOWED":
        assert response.headers["Allow"] == "GET, HEAD"
