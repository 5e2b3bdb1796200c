"""The aggregator's gRPC links to its dependencies: the company connectors,
the operator connectors and the SMS notifier. One channel each, made at
start-up, closed at shutdown; keep-alive and the retries of VerifySubscriber
and GetStatus come with every channel (yztc/grpc_options.py)."""

from __future__ import annotations

import grpc

from yztc.tls import open_channel
from yztc.v1 import (
    company_connector_pb2_grpc,
    operator_connector_pb2_grpc,
    sms_notifier_pb2_grpc,
)


class Links:
    def __init__(
        self,
        companies: dict[str, str],
        operators: dict[str, str],
        notifier: str,
        creds: grpc.ChannelCredentials | None = None,
    ) -> None:
        self._channels: list[grpc.aio.Channel] = []
        self.companies = {
            cid: company_connector_pb2_grpc.CompanyConnectorStub(self._open(target, creds))
            for cid, target in companies.items()
        }
        self.operators = {
            oid: operator_connector_pb2_grpc.OperatorConnectorStub(self._open(target, creds))
            for oid, target in operators.items()
        }
        self.notifier = sms_notifier_pb2_grpc.SmsNotifierStub(self._open(notifier, creds))

    def _open(self, target: str, creds: grpc.ChannelCredentials | None) -> grpc.aio.Channel:
        channel = open_channel(target, creds)
        self._channels.append(channel)
        return channel

    async def close(self) -> None:
        for channel in self._channels:
            await channel.close()
