"""Readiness: the database answers a ping and the aggregator's standard gRPC
health check says SERVING, both within one short budget."""

from __future__ import annotations

import asyncio

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError

BUDGET_SECONDS = 1.0


class Readiness:
    def __init__(self, mongo: AsyncMongoClient, channel: grpc.aio.Channel) -> None:
        self._mongo = mongo
        self._health = health_pb2_grpc.HealthStub(channel)

    async def _database(self) -> bool:
        try:
            await self._mongo.admin.command("ping")
        except PyMongoError:
            return False
        return True

    async def _aggregator(self) -> bool:
        try:
            answer = await self._health.Check(health_pb2.HealthCheckRequest(service=""), timeout=BUDGET_SECONDS)
        except grpc.aio.AioRpcError:
            return False
        return answer.status == health_pb2.HealthCheckResponse.SERVING

    async def ready(self) -> bool:
        try:
            async with asyncio.timeout(BUDGET_SECONDS):
                database, aggregator = await asyncio.gather(self._database(), self._aggregator())
        except TimeoutError:
            return False
        return database and aggregator
