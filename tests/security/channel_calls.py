"""Helpers for the security tests that call the channel API of a real
aggregator (the stack as `make run` starts it, tests/e2e/conftest.py
make_stack) as channel `wechat-demo`: one call's outcome as the CONTRACT
code, the gRPC status and the google.rpc.ErrorInfo metadata it carried."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from pymongo import MongoClient

from devstack.stack import ROOT


@dataclass
class Outcome:
    """ "OK" and the answer, or the CONTRACT code with what the error carried."""

    code: str
    status: grpc.StatusCode = grpc.StatusCode.OK
    metadata: dict[str, str] = field(default_factory=dict)
    details: str = ""
    retry_info: bool = False  # a google.rpc.RetryInfo detail came with it
    answer: object = None


async def outcome(call) -> Outcome:
    """Awaits `call` (a stub call); its answer or its error, unpacked."""
    try:
        return Outcome("OK", answer=await call)
    except grpc.aio.AioRpcError as error:
        status = rpc_status.from_call(error)
        found = Outcome("NO_ERROR_INFO", error.code(), details=error.details() or "")
        for detail in status.details if status is not None else ():
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                found.code, found.metadata = info.reason, dict(info.metadata)
            elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                found.retry_info = True
        return found


def requester_limit(method: str, channel: str = "wechat-demo") -> int:
    """The per-requester limit config/channels.json sets for `method` (the
    file make_stack gives the aggregator keeps these limits)."""
    data = json.loads((ROOT / "config" / "channels.json").read_text(encoding="utf-8"))
    return int(data["channels"][channel]["requester_limits"][method]["count"])


def database(stack):
    """A synchronous client on the stack's database (close it after use)."""
    client = MongoClient(stack.mongodb_uri)
    return client, client.get_default_database("yztc")
