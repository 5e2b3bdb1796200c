"""The retry policy as service configuration (yztc/grpc_options.py, issue 17):
through the channels our services really open (aggregator/links.py for the
operator connectors and the notifier, yztc.tls.open_channel as the gateway
opens its channel to the aggregator), an idempotent call that meets one
UNAVAILABLE from a server is tried again and succeeds; Send is not retried;
other codes are not retried."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import grpc
import pytest

from aggregator.links import Links
from yztc.grpc_server import GrpcService
from yztc.tls import open_channel
from yztc.v1 import account_query_pb2 as aq
from yztc.v1 import account_query_pb2_grpc as aq_grpc
from yztc.v1 import operator_connector_pb2 as op
from yztc.v1 import operator_connector_pb2_grpc as op_grpc
from yztc.v1 import sms_notifier_pb2 as sms
from yztc.v1 import sms_notifier_pb2_grpc as sms_grpc


@dataclass
class Script:
    """Per method: the status codes its first calls fail with, then success;
    and how many calls each method received."""

    failures: dict[str, list[grpc.StatusCode]] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)

    async def answer(self, method: str, context: grpc.aio.ServicerContext) -> None:
        self.calls[method] = self.calls.get(method, 0) + 1
        pending = self.failures.get(method, [])
        if pending:
            await context.abort(pending.pop(0), "scripted failure")


class Operator(op_grpc.OperatorConnectorServicer):
    def __init__(self, script: Script) -> None:
        self._script = script

    async def VerifySubscriber(self, request, context):
        await self._script.answer("VerifySubscriber", context)
        return op.VerifySubscriberResponse(verdict=op.VerifySubscriberResponse.VERDICT_MATCH)


class Notifier(sms_grpc.SmsNotifierServicer):
    def __init__(self, script: Script) -> None:
        self._script = script

    async def Send(self, request, context):
        await self._script.answer("Send", context)
        return sms.SmsStatus(message_id=request.message_id, state=sms.SmsStatus.STATE_SENT)

    async def GetStatus(self, request, context):
        await self._script.answer("GetStatus", context)
        return sms.SmsStatus(message_id=request.message_id, state=sms.SmsStatus.STATE_DELIVERED)


class Aggregator(aq_grpc.AccountQueryServiceServicer):
    def __init__(self, script: Script) -> None:
        self._script = script

    async def GetQuery(self, request, context):
        await self._script.answer("GetQuery", context)
        return aq.Query(query_id=request.query_id, status=aq.QUERY_STATUS_COMPLETED)

    async def ListEnterprises(self, request, context):
        await self._script.answer("ListEnterprises", context)
        return aq.ListEnterprisesResponse(enterprises=[aq.Enterprise(id="tencent", name="腾讯")])


@dataclass
class Clients:
    script: Script
    links: Links
    aggregator: aq_grpc.AccountQueryServiceStub


@pytest.fixture
async def clients() -> AsyncIterator[Clients]:
    """One server with the three services; fresh channels (and so fresh retry
    throttling tokens) for every test."""
    script = Script()

    def register(server: grpc.aio.Server) -> None:
        op_grpc.add_OperatorConnectorServicer_to_server(Operator(script), server)
        sms_grpc.add_SmsNotifierServicer_to_server(Notifier(script), server)
        aq_grpc.add_AccountQueryServiceServicer_to_server(Aggregator(script), server)

    names = [
        op.DESCRIPTOR.services_by_name["OperatorConnector"].full_name,
        sms.DESCRIPTOR.services_by_name["SmsNotifier"].full_name,
        aq.DESCRIPTOR.services_by_name["AccountQueryService"].full_name,
    ]
    service = GrpcService("127.0.0.1:0", register, names, grace_seconds=0.1)
    await service.start()
    target = f"127.0.0.1:{service.port}"
    links = Links(companies={}, operators={"cmcc": target}, notifier=target)
    gateway_channel = open_channel(target, None)  # as gateway/app.py opens it
    try:
        yield Clients(script, links, aq_grpc.AccountQueryServiceStub(gateway_channel))
    finally:
        await gateway_channel.close()
        await links.close()
        await service.stop()


CALLS = {
    "VerifySubscriber": lambda c: c.links.operators["cmcc"].VerifySubscriber(
        op.VerifySubscriberRequest(phone="13800138000", id_last6="12345X"), timeout=5
    ),
    "GetStatus": lambda c: c.links.notifier.GetStatus(sms.GetStatusRequest(message_id="result:q1"), timeout=5),
    "GetQuery": lambda c: c.aggregator.GetQuery(aq.GetQueryRequest(query_id="q1", requester_id="u1"), timeout=5),
    "ListEnterprises": lambda c: c.aggregator.ListEnterprises(aq.ListEnterprisesRequest(), timeout=5),
}


@pytest.mark.parametrize("method", list(CALLS))
async def test_an_idempotent_call_succeeds_after_one_unavailable(clients: Clients, method: str):
    clients.script.failures[method] = [grpc.StatusCode.UNAVAILABLE]
    answer = await CALLS[method](clients)
    assert answer.ByteSize() > 0
    assert clients.script.calls[method] == 2


@pytest.mark.parametrize("method", list(CALLS))
async def test_three_unavailable_in_a_row_end_the_call(clients: Clients, method: str):
    clients.script.failures[method] = [grpc.StatusCode.UNAVAILABLE] * 3
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await CALLS[method](clients)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert clients.script.calls[method] == 3  # maxAttempts


@pytest.mark.parametrize(
    "code",
    [
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.INTERNAL,
    ],
)
async def test_other_codes_are_not_retried(clients: Clients, code: grpc.StatusCode):
    clients.script.failures["GetQuery"] = [code]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await CALLS["GetQuery"](clients)
    assert caught.value.code() == code
    assert clients.script.calls["GetQuery"] == 1


async def test_send_is_not_retried(clients: Clients):
    """A retry would resend attempt=1 ("first: read nothing") after a try
    that may have submitted the SMS: its caller tries again with a new
    attempt number instead (yztc/grpc_options.py says why)."""
    clients.script.failures["Send"] = [grpc.StatusCode.UNAVAILABLE]
    request = sms.SendRequest(message_id="code:c1", dest="13800138000", text="验证码", attempt=1)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await clients.links.notifier.Send(request, timeout=5)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert clients.script.calls["Send"] == 1
