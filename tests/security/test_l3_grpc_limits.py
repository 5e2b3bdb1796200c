"""L3: gRPC limits.

The review: no `grpc.max_receive_message_length`, `maximum_concurrent_rpcs`
or field-length checks; "a requester id of up to about 4 MB is stored with
each query". Issue 13: "a 4 MB `requester_id` is refused with
INVALID_ARGUMENT".

Now: every field of the channel API has a length limit checked before
anything is stored or looked up (aggregator/request_rules.py,
yztc/identifiers.py), and every server of ours is built by one bootstrap
(yztc/grpc_server.GrpcService) with explicit message-size and stream limits
(yztc/grpc_options.py). The message cap (4 MiB) admits the issue's
4,000,000-byte field, so the field check answers it with the CONTRACT's
INVALID_ARGUMENT; a message over the cap is refused by the transport
(RESOURCE_EXHAUSTED).
"""

from __future__ import annotations

import ast

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from devstack.stack import ROOT
from tests.e2e.channel_client import channel, requester_for, write_scenario
from tests.e2e.conftest import latest_code, make_stack  # noqa: F401  (fixture)
from tests.security.channel_calls import database, outcome
from yztc import grpc_options
from yztc.grpc_server import GrpcService
from yztc.v1 import account_query_pb2 as pb
from yztc.v1 import account_query_pb2_grpc

PHONE = "13800000301"
HUGE = "r" * 4_000_000  # the 4 MB requester_id
OVER_THE_CAP = "r" * (grpc_options.MAX_RECEIVE_MESSAGE_BYTES + 1)


async def test_a_4_mb_requester_id_is_invalid_argument_on_every_call_and_stored_nowhere(make_stack, tmp_path):
    stack = make_stack(write_scenario(tmp_path / "scenario.json", [PHONE], {}))
    async with channel(stack) as ch:
        api = account_query_pb2_grpc.AccountQueryServiceStub(ch)
        # A live code of the phone's own requester: the 4 MB submission
        # below would be accepted but for its requester_id.
        await api.RequestVerificationCode(
            pb.RequestVerificationCodeRequest(phone=PHONE, requester_id=requester_for(PHONE)), timeout=10
        )
        code = await latest_code(stack, PHONE)
        calls = {
            "RequestVerificationCode": api.RequestVerificationCode(
                pb.RequestVerificationCodeRequest(phone="13800000302", requester_id=HUGE), timeout=30
            ),
            "SubmitQuery": api.SubmitQuery(
                pb.SubmitQueryRequest(phone=PHONE, id_last6="12345X", code=code, consent=True, requester_id=HUGE),
                timeout=30,
            ),
            "GetQuery": api.GetQuery(pb.GetQueryRequest(query_id="0" * 32, requester_id=HUGE), timeout=30),
        }
        for method, call in calls.items():
            found = await outcome(call)
            assert (found.status, found.code) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT"), method
            assert len(found.details) < 200, method  # the field is not echoed

        # Every other string field of the channel API, at 4 MB, alike.
        me = requester_for(PHONE)
        others = {
            "phone": pb.SubmitQueryRequest(phone=HUGE, id_last6="12345X", code=code, consent=True, requester_id=me),
            "id_last6": pb.SubmitQueryRequest(phone=PHONE, id_last6=HUGE, code=code, consent=True, requester_id=me),
            "code": pb.SubmitQueryRequest(phone=PHONE, id_last6="12345X", code=HUGE, consent=True, requester_id=me),
        }
        for name, request in others.items():
            found = await outcome(api.SubmitQuery(request, timeout=30))
            assert (found.status, found.code) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT"), name
        found = await outcome(
            api.RequestVerificationCode(pb.RequestVerificationCodeRequest(phone=HUGE, requester_id=me), timeout=30)
        )
        assert found.code == "INVALID_ARGUMENT"

        # One character over the field's limit, and the limit itself.
        over = await outcome(
            api.RequestVerificationCode(
                pb.RequestVerificationCodeRequest(phone="13800000303", requester_id="r" * 129), timeout=10
            )
        )
        assert over.code == "INVALID_ARGUMENT"
        at_limit = await outcome(
            api.RequestVerificationCode(
                pb.RequestVerificationCodeRequest(phone="13800000303", requester_id="r" * 128), timeout=10
            )
        )
        assert at_limit.code == "OK"

        # The code was not spent by the refused submission: its requester
        # uses it now.
        accepted = await outcome(
            api.SubmitQuery(
                pb.SubmitQueryRequest(
                    phone=PHONE, id_last6="12345X", code=code, consent=True, requester_id=requester_for(PHONE)
                ),
                timeout=10,
            )
        )
        assert accepted.code == "OK"

    client, db = database(stack)
    try:
        for name in ("work", "queries", "phones", "claims"):
            for doc in db[name].find():
                assert "r" * 129 not in repr(doc), name
    finally:
        client.close()


async def test_a_4_mb_query_id_names_no_query(make_stack, tmp_path):
    stack = make_stack(write_scenario(tmp_path / "scenario.json", [PHONE], {}))
    async with channel(stack) as ch:
        api = account_query_pb2_grpc.AccountQueryServiceStub(ch)
        found = await outcome(
            api.GetQuery(pb.GetQueryRequest(query_id="q" * 4_000_000, requester_id=requester_for(PHONE)), timeout=30)
        )
        assert (found.status, found.code) == (grpc.StatusCode.NOT_FOUND, "NOT_FOUND")
        # Over the message cap: the transport refuses it before our code runs.
        refused = await outcome(
            api.GetQuery(pb.GetQueryRequest(query_id="0" * 32, requester_id=OVER_THE_CAP), timeout=30)
        )
        assert refused.status == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_the_limits_are_explicit_and_admit_the_fields_limit_checks():
    options = dict(grpc_options.server_options())
    assert options["grpc.max_receive_message_length"] == grpc_options.MAX_RECEIVE_MESSAGE_BYTES
    assert options["grpc.max_send_message_length"] == grpc_options.MAX_SEND_MESSAGE_BYTES
    assert options["grpc.max_concurrent_streams"] == grpc_options.MAX_CONCURRENT_STREAMS
    # The 4,000,000-byte field, framed with the rest of a
    # SubmitQuery, reaches the field check (else it would be
    # RESOURCE_EXHAUSTED, not the CONTRACT's INVALID_ARGUMENT).
    largest = pb.SubmitQueryRequest(
        phone="+86 138-0013-8000", id_last6="12345X", code="123456", consent=True, requester_id=HUGE
    )
    assert largest.ByteSize() < grpc_options.MAX_RECEIVE_MESSAGE_BYTES


@pytest.mark.parametrize("package", ["aggregator", "platform_connectors", "sms_notifier", "gateway", "yztc"])
def test_every_grpc_server_of_ours_is_built_by_the_one_bootstrap(package):
    """grpc.aio.server is called in yztc/grpc_server.py alone, with
    server_options(): the aggregator, every connector and the notifier get
    the same limits."""
    for path in (ROOT / package).rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        calls = [
            node
            for node in ast.walk(ast.parse(text))
            if isinstance(node, ast.Call) and ast.unparse(node.func) in ("grpc.aio.server", "grpc.server")
        ]
        if path.relative_to(ROOT).as_posix() == "yztc/grpc_server.py":
            assert len(calls) == 1 and "*server_options()" in ast.unparse(calls[0]), path
        else:
            assert not calls, path
    mains = {
        "aggregator": "aggregator/__main__.py",
        "platform_connectors": "platform_connectors/__main__.py",
        "sms_notifier": "sms_notifier/__main__.py",
    }
    if package in mains:
        assert "GrpcService(" in (ROOT / mains[package]).read_text(encoding="utf-8")


async def test_the_bootstrap_applies_the_limits():
    """A server built by GrpcService (as every service's) refuses to send an
    answer over MAX_SEND_MESSAGE_BYTES (gRPC's own default sends any size)
    and to receive a request over MAX_RECEIVE_MESSAGE_BYTES; a client that
    would take any size shows the server's limit, not its own."""
    size = {"n": 0}

    async def big(request: bytes, context) -> bytes:
        return b"x" * size["n"]

    def register(server: grpc.aio.Server) -> None:
        handler = grpc.unary_unary_rpc_method_handler(big)
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("test.Big", {"Get": handler}),))

    service = GrpcService("127.0.0.1:0", register, [], grace_seconds=0.1)
    await service.start()
    try:
        unlimited = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]
        async with grpc.aio.insecure_channel(f"127.0.0.1:{service.port}", options=unlimited) as ch:
            get = ch.unary_unary("/test.Big/Get")
            size["n"] = grpc_options.MAX_SEND_MESSAGE_BYTES - 64
            assert len(await get(b"", timeout=30)) == size["n"]
            size["n"] = grpc_options.MAX_SEND_MESSAGE_BYTES + 1
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await get(b"", timeout=30)
            assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            size["n"] = 1
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await get(b"x" * (grpc_options.MAX_RECEIVE_MESSAGE_BYTES + 1), timeout=30)
            assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            # Health, on the same server, takes a request under the cap.
            health = health_pb2_grpc.HealthStub(ch)
            answer = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        await service.stop()
