"""gRPC server bootstrap shared by every service: health checking, reflection,
telemetry, the keep-alive policy (yztc/grpc_options.py), graceful shutdown on
SIGTERM/SIGINT (grpc/grpc examples/python).

Health and reflection answer whoever passed the port's TLS (on internal
ports: any certificate of the internal CA, so a probe can use the pod's own),
or, given a `gate`, only the callers it lets through (the aggregator's
public channel port: admitted channels only, I2). Plaintext (no
credentials, the development switch) binds loopback addresses only."""

from __future__ import annotations

import asyncio
import inspect
import logging
import signal
from collections.abc import Awaitable, Callable, Iterable

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from yztc.grpc_options import MAX_CONCURRENT_RPCS, server_options
from yztc.tls import is_loopback

log = logging.getLogger(__name__)

Registrar = Callable[[grpc.aio.Server], None]
# Awaited before a gated method runs; aborts the call to refuse it.
Gate = Callable[[grpc.aio.ServicerContext], Awaitable[None]]


def _gated(behavior, gate: Gate):
    if inspect.isasyncgenfunction(behavior):

        async def stream(request, context):
            await gate(context)
            async for item in behavior(request, context):
                yield item

        return stream

    async def call(request, context):
        await gate(context)
        return await behavior(request, context)

    return call


class _GateInterceptor(grpc.aio.ServerInterceptor):
    """Runs `gate` before every method of the services named in `gated`."""

    def __init__(self, gate: Gate, gated: frozenset[str]) -> None:
        self._gate = gate
        self._gated = gated

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        service = handler_call_details.method.lstrip("/").split("/", 1)[0]
        if handler is None or service not in self._gated:
            return handler
        for kind in ("unary_unary", "unary_stream", "stream_unary", "stream_stream"):
            behavior = getattr(handler, kind)
            if behavior is not None:
                return handler._replace(**{kind: _gated(behavior, self._gate)})
        return handler


class GrpcService:
    """A server with its servicers, health and reflection, bound to one port."""

    def __init__(
        self,
        address: str,
        register: Registrar,
        service_names: Iterable[str],
        credentials: grpc.ServerCredentials | None = None,
        grace_seconds: float = 5.0,
        gate: Gate | None = None,
    ) -> None:
        """`credentials` None is plaintext: loopback `address` only (else
        SystemExit). `gate`, if given, guards health and reflection."""
        if credentials is None and not is_loopback(address):
            raise SystemExit(f"refusing plaintext gRPC on non-loopback {address}: configure YZTC_TLS_*")
        gated = frozenset({health.SERVICE_NAME, reflection.SERVICE_NAME})
        interceptors = [_GateInterceptor(gate, gated)] if gate is not None else []
        self.server = grpc.aio.server(
            options=[("grpc.so_reuseport", 0), *server_options()],
            interceptors=interceptors,
            maximum_concurrent_rpcs=MAX_CONCURRENT_RPCS,
        )
        register(self.server)
        self.health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        self._names = list(service_names)
        reflection.enable_server_reflection([*self._names, health.SERVICE_NAME, reflection.SERVICE_NAME], self.server)
        if credentials is None:
            self.port = self.server.add_insecure_port(address)
        else:
            self.port = self.server.add_secure_port(address, credentials)
        if self.port == 0:
            raise RuntimeError(f"cannot bind {address}")
        self._grace = grace_seconds
        self._watcher: asyncio.Task | None = None

    async def set_serving(self, serving: bool) -> None:
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ["", *self._names]:
            await self.health.set(name, status)

    async def start(self) -> None:
        await self.server.start()
        await self.set_serving(True)

    def watch(self, probe: Callable[[], Awaitable[None]], interval: float = 2.0) -> None:
        """Health follows `probe` (e.g. a database ping): NOT_SERVING while it
        fails, so load balancers and Kubernetes route around this replica."""

        async def loop() -> None:
            serving = True
            while True:
                try:
                    await asyncio.wait_for(probe(), timeout=interval)
                    healthy = True
                except Exception:
                    healthy = False
                if healthy != serving:
                    serving = healthy
                    log.warning("health changed", extra={"fields": {"serving": serving}})
                    await self.set_serving(serving)
                await asyncio.sleep(interval)

        self._watcher = asyncio.create_task(loop(), name="health-watch")

    async def stop(self) -> None:
        """Stop in order: NOT_SERVING first, then finish in-flight calls within the grace."""
        if self._watcher is not None:
            self._watcher.cancel()
        await self.set_serving(False)
        await self.server.stop(self._grace)


async def run_until_signalled(start: Callable[[], Awaitable[None]], stop: Callable[[], Awaitable[None]]) -> None:
    """Start, wait for SIGTERM or SIGINT, then stop: the life of every service."""
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await start()
    await stopping.wait()
    log.info("stopping")
    await stop()
