"""The happy path over the gRPC channel API, as a WeChat channel's backend
calls it with its client certificate (CONTRACT: var/pki/wechat-demo*.pem)."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.e2e.conftest import expected_counts, latest_code, messages_for
from yztc.errors import ServiceError
from yztc.v1 import account_query_pb2 as pb
from yztc.v1 import account_query_pb2_grpc

PHONE = "18600186000"


def _channel(stack, identity: str | None = "wechat-demo") -> grpc.aio.Channel:
    pki = stack.pki_dir
    creds = grpc.ssl_channel_credentials(
        root_certificates=(pki / "ca.pem").read_bytes(),
        private_key=(pki / f"{identity}-key.pem").read_bytes() if identity else None,
        certificate_chain=(pki / f"{identity}.pem").read_bytes() if identity else None,
    )
    return grpc.aio.secure_channel(f"127.0.0.1:{stack.ports.aggregator}", creds)


async def test_happy_path_over_grpc(stack, scenario):
    id_last6 = next(s["id_last6"] for s in scenario["subscribers"] if s["phone"] == PHONE)
    async with _channel(stack) as channel:
        api = account_query_pb2_grpc.AccountQueryServiceStub(channel)
        listed = await api.ListEnterprises(pb.ListEnterprisesRequest(), timeout=5)
        assert [e.id for e in listed.enterprises] == list(expected_counts(scenario, PHONE))
        assert all(e.hotline and e.detail_and_unbind for e in listed.enterprises)

        sent = await api.RequestVerificationCode(
            pb.RequestVerificationCodeRequest(phone=PHONE, requester_id="openid-1"), timeout=5
        )
        assert sent.resend_after > 0
        code = await latest_code(stack, PHONE)
        accepted = await api.SubmitQuery(
            pb.SubmitQueryRequest(phone=PHONE, id_last6=id_last6, code=code, consent=True, requester_id="openid-1"),
            timeout=10,
        )
        assert accepted.query_id and accepted.status == pb.QUERY_STATUS_IN_PROGRESS

        deadline = time.monotonic() + 60
        while True:
            query = await api.GetQuery(
                pb.GetQueryRequest(query_id=accepted.query_id, requester_id="openid-1"), timeout=5
            )
            if query.status != pb.QUERY_STATUS_IN_PROGRESS and query.sms_state != pb.SMS_STATE_PENDING:
                break
            assert time.monotonic() < deadline
            await asyncio.sleep(0.2)

        # Another requester of the same channel does not see it.
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await api.GetQuery(pb.GetQueryRequest(query_id=accepted.query_id, requester_id="openid-2"), timeout=5)
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
        assert ServiceError.from_grpc_error(caught.value).code == "NOT_FOUND"

        health = health_pb2_grpc.HealthStub(channel)
        assert (
            await health.Check(health_pb2.HealthCheckRequest(), timeout=5)
        ).status == health_pb2.HealthCheckResponse.SERVING

    assert query.status == pb.QUERY_STATUS_COMPLETED and query.phone == "186****6000"
    expected = expected_counts(scenario, PHONE)
    got = {e.id: e.count for e in query.enterprises}
    assert got == {cid: total for cid, (total, _) in expected.items()}
    results = [m for m in await messages_for(stack, PHONE) if "关联的互联网账号" in m["text"]]
    assert len(results) == 1 and results[0]["source"] == "10699000"


async def test_channel_errors_carry_contract_codes(stack):
    async with _channel(stack) as channel:
        api = account_query_pb2_grpc.AccountQueryServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await api.RequestVerificationCode(
                pb.RequestVerificationCodeRequest(phone="12345", requester_id="openid-1"), timeout=5
            )
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert ServiceError.from_grpc_error(caught.value).code == "INVALID_ARGUMENT"
        assert "12345" not in caught.value.details()

        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await api.SubmitQuery(
                pb.SubmitQueryRequest(
                    phone="13900139000", id_last6="123456", code="000000", consent=False, requester_id="openid-1"
                ),
                timeout=5,
            )
        assert ServiceError.from_grpc_error(caught.value).code == "CONSENT_REQUIRED"


async def test_channel_without_certificate_is_refused(stack):
    async with _channel(stack, identity=None) as channel:
        api = account_query_pb2_grpc.AccountQueryServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await api.ListEnterprises(pb.ListEnterprisesRequest(), timeout=5)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE  # the TLS handshake fails
