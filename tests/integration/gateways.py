"""The one way the gateway tests start a gateway (GatewayTestServer, as
`python -m gateway` serves it) and what it talks to (`Gateways`, the
`gateways` fixture of tests/integration/conftest.py)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import grpc
from aiohttp.test_utils import TestClient, TestServer

from devstack.stack import free_port
from gateway.app import create_app
from gateway.http_protocol import GatewayRunner
from gateway.keys import SESSIONS
from gateway.settings import GatewaySettings
from simulators import alipay_openapi
from simulators.scenario import Scenario, parse_scenario
from yztc.grpc_server import GrpcService
from yztc.settings import GrpcTlsSettings
from yztc.v1 import account_query_pb2 as pb
from yztc.v1 import account_query_pb2_grpc as pb_grpc

AES_KEY = base64.b64encode(bytes(range(16))).decode()
APP_ID = "2021000000000001"


class GatewayTestServer(TestServer):
    """The app served as `python -m gateway` serves it: by GatewayRunner,
    whose protocol answers the HTTP parser's refusals."""

    async def _make_runner(self, **kwargs: Any) -> GatewayRunner:
        return GatewayRunner(self.app, **kwargs)


class Gateways:
    """Starts gateways (each a TestClient on a free port) and what they talk
    to; everything it started is stopped, last first, when the test ends.

    A gateway's defaults: this test's database, our app's keys, plaintext
    gRPC, and an aggregator and Alipay at dead ports (every call to them is
    UNAVAILABLE) unless `aggregator()`/`alipay()` started them or settings
    say otherwise."""

    def __init__(self, mongodb_uri: str, keys: dict[str, Path]) -> None:
        self._mongodb_uri = mongodb_uri
        self.keys = keys
        self._running: list[Any] = []

    async def start(self, **settings: Any) -> TestClient:
        """A gateway with GatewaySettings(**defaults, **settings)."""
        dead = free_port()
        chosen = {
            "mongodb_uri": self._mongodb_uri,
            "aggregator_target": f"127.0.0.1:{dead}",
            "alipay_url": f"http://127.0.0.1:{dead}/gateway.do",
            "alipay_app_id": APP_ID,
            "alipay_app_private_key_file": self.keys["app_private"],
            "alipay_public_key_file": self.keys["alipay_public"],
            "alipay_aes_key": AES_KEY,
            # Plaintext to the stub aggregator: the development switch (yztc/tls.py).
            "tls": GrpcTlsSettings(tls_ca="", tls_cert="", tls_key="", development=True),
            **settings,
        }
        client = TestClient(GatewayTestServer(create_app(GatewaySettings(**chosen))))
        await client.start_server()
        self._running.append(client)
        return client

    async def aggregator(
        self, servicer: pb_grpc.AccountQueryServiceServicer, credentials: grpc.ServerCredentials | None = None
    ) -> GrpcService:
        """`servicer` serving the channel API on a free port (`.port`)."""
        service = GrpcService(
            "127.0.0.1:0",
            lambda server: pb_grpc.add_AccountQueryServiceServicer_to_server(servicer, server),
            [pb.DESCRIPTOR.services_by_name["AccountQueryService"].full_name],
            credentials=credentials,
            grace_seconds=0.5,
        )
        await service.start()
        self._running.append(service)
        return service

    async def alipay(self, scenario: Scenario | None = None, **options: Any) -> TestClient:
        """An Alipay OpenAPI simulator for our app (`.make_url("/gateway.do")`
        is what a gateway's alipay_url takes); `options` as its create_app's."""
        options.setdefault("app_public_key", self.keys["app_public"])
        options.setdefault("alipay_private_key", self.keys["alipay_private"])
        app = alipay_openapi.create_app(scenario or parse_scenario({}), app_id=APP_ID, **options)
        client = TestClient(TestServer(app))
        await client.start_server()
        self._running.append(client)
        return client

    async def stop(self) -> None:
        for thing in reversed(self._running):
            await (thing.close() if isinstance(thing, TestClient) else thing.stop())
        self._running.clear()


async def bearer(gateway: TestClient, user_id: str) -> dict[str, str]:
    """Headers of a fresh session of `user_id` (a user's key) on `gateway`."""
    token, _ = await gateway.app[SESSIONS].create(user_id)
    return {"Authorization": f"Bearer {token}"}
