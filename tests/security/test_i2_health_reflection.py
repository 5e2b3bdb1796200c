"""I2: health and reflection on the public channel port answer admitted
channels only (not any certificate of the CA, not a removed or revoked
channel). Probes use the internal port, where any internal-CA certificate
(the pod's own) may ask."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from devstack import pki
from devstack.stack import Stack
from tests.security.services import channel_stack_fixture, channels_document, open_channel, pair, write_atomically


@pytest.fixture(scope="module")
def channel_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, Path]]:
    yield from channel_stack_fixture(tmp_path_factory)


async def _health(channel: grpc.aio.Channel) -> int:
    answer = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    return answer.status


async def _services(channel: grpc.aio.Channel) -> list[str]:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    call = stub.ServerReflectionInfo(timeout=5)
    await call.write(reflection_pb2.ServerReflectionRequest(list_services=""))
    answer = await call.read()
    await call.done_writing()
    return [s.name for s in answer.list_services_response.service]


async def _reflection_status(channel: grpc.aio.Channel, timeout: float = 5) -> grpc.StatusCode:
    """The status a reflection stream ends with when the client sends nothing.

    The gate refuses as the stream opens, before any request is read, so
    the refusal needs no request; an admitted channel's stream would wait
    for one until the deadline. (Writing first races the server's early
    status: grpcio's aio client turns the failed send into INTERNAL,
    "Internal error from Core", though the server sent UNAUTHENTICATED.)"""
    call = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(timeout=timeout)
    return await call.code()


async def _both_refused(stack: Stack, cert: Path, key: Path, why: str) -> None:
    async with open_channel(stack, cert, key) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await _health(channel)
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED, (why, "health")
        assert await _reflection_status(channel) == grpc.StatusCode.UNAUTHENTICATED, (why, "reflection")


async def test_admitted_channels_only(channel_stack, tmp_path):
    stack, channels = channel_stack
    demo = pair(stack, "wechat-demo")
    async with open_channel(stack, *demo) as channel:
        assert await _health(channel) == health_pb2.HealthCheckResponse.SERVING
        assert "yztc.v1.AccountQueryService" in await _services(channel)
        # The probe's control: an admitted stream is not ended, it waits for a request.
        assert await _reflection_status(channel, timeout=1) == grpc.StatusCode.DEADLINE_EXCEEDED

    channels_ca = pki.ensure_ca(stack.pki_dir, pki.CHANNELS_CA)
    await _both_refused(stack, *pki.issue_channel(tmp_path / "rogue", "rogue-channel", ca=channels_ca), "unknown")
    await _both_refused(stack, *pki.issue(tmp_path / "cn", "wechat-demo", ca=channels_ca), "no SAN URI")

    document = channels_document()
    document["revoked_serials"] = [pki.serial_hex(demo[0])]
    write_atomically(channels, document)
    try:
        await _both_refused(stack, *demo, "revoked")
    finally:
        write_atomically(channels, channels_document())


async def test_probes_use_the_internal_port_with_the_pods_own_certificate(channel_stack):
    stack, _ = channel_stack
    async with open_channel(stack, *pair(stack, "aggregator"), port=stack.ports.aggregator_internal) as channel:
        assert await _health(channel) == health_pb2.HealthCheckResponse.SERVING
