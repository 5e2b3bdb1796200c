"""The one error catalogue (CONTRACT "Errors"), mapped once to HTTP and once to gRPC.

A `ServiceError` carries a CONTRACT code and optional details; the aggregator
turns it into a gRPC status with `google.rpc.ErrorInfo` (reason = code), the
gateway turns that back into the CONTRACT's JSON shape. Messages are in
Chinese, for the person, and never contain personal data.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

DOMAIN = "yztc.gov.cn"


@dataclass(frozen=True)
class ErrorKind:
    http: int
    grpc: grpc.StatusCode
    message: str


CATALOGUE: dict[str, ErrorKind] = {
    "INVALID_ARGUMENT": ErrorKind(400, grpc.StatusCode.INVALID_ARGUMENT, "请求参数有误，请检查后重试。"),
    "CONSENT_REQUIRED": ErrorKind(400, grpc.StatusCode.FAILED_PRECONDITION, "请先阅读并同意个人信息处理规则。"),
    "UNAUTHENTICATED": ErrorKind(401, grpc.StatusCode.UNAUTHENTICATED, "登录已失效，请重新进入小程序。"),
    "NOT_FOUND": ErrorKind(404, grpc.StatusCode.NOT_FOUND, "未找到该查询。"),
    "METHOD_NOT_ALLOWED": ErrorKind(405, grpc.StatusCode.UNIMPLEMENTED, "不支持该请求方法。"),
    "QUERY_IN_PROGRESS": ErrorKind(409, grpc.StatusCode.ALREADY_EXISTS, "该号码已有查询正在进行，请留意短信。"),
    "PAYLOAD_TOO_LARGE": ErrorKind(413, grpc.StatusCode.INVALID_ARGUMENT, "请求内容过大。"),
    "UNSUPPORTED_MEDIA_TYPE": ErrorKind(415, grpc.StatusCode.INVALID_ARGUMENT, "请求须为 JSON 格式。"),
    "CODE_INVALID": ErrorKind(422, grpc.StatusCode.FAILED_PRECONDITION, "验证码错误或已使用，请重新获取。"),
    "CODE_EXPIRED": ErrorKind(422, grpc.StatusCode.FAILED_PRECONDITION, "验证码已过期（有效期5分钟），请重新获取。"),
    "VERIFICATION_FAILED": ErrorKind(
        422,
        grpc.StatusCode.FAILED_PRECONDITION,
        "手机号码与身份证号码后六位校验未通过，请核对输入信息，24小时后再试。",
    ),
    "NUMBER_CANCELLED": ErrorKind(
        422,
        grpc.StatusCode.FAILED_PRECONDITION,
        "该号码已注销，无法查询。请联系各互联网企业客服处理相关账号。",
    ),
    "RATE_LIMITED": ErrorKind(429, grpc.StatusCode.RESOURCE_EXHAUSTED, "操作过于频繁，请稍后再试。"),
    "QUERY_LIMITED": ErrorKind(429, grpc.StatusCode.RESOURCE_EXHAUSTED, "该号码24小时内已完成查询，请稍后再试。"),
    "UNAVAILABLE": ErrorKind(503, grpc.StatusCode.UNAVAILABLE, "服务暂时不可用，请稍后再试。"),
}


@dataclass
class ServiceError(Exception):
    code: str
    retry_after: int | None = None
    query_id: str | None = None
    detail: str | None = None  # for people; never personal data
    metadata: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.code not in CATALOGUE:
            raise ValueError(f"unknown error code {self.code}")
        super().__init__(self.code)

    @property
    def kind(self) -> ErrorKind:
        return CATALOGUE[self.code]

    @property
    def message(self) -> str:
        return self.detail or self.kind.message

    def to_json(self) -> dict:
        body: dict = {"code": self.code, "message": self.message}
        if self.retry_after is not None:
            body["retry_after"] = self.retry_after
        if self.query_id is not None:
            body["query_id"] = self.query_id
        return {"error": body}

    def to_grpc_status(self) -> grpc.Status:
        meta = dict(self.metadata)
        if self.retry_after is not None:
            meta["retry_after"] = str(self.retry_after)
        if self.query_id is not None:
            meta["query_id"] = self.query_id
        details = [error_details_pb2.ErrorInfo(reason=self.code, domain=DOMAIN, metadata=meta)]
        if self.retry_after is not None:
            # The standard place gRPC clients look for how long to wait.
            details.append(error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=self.retry_after)))
        packed = []
        for message in details:
            detail = any_pb2.Any()
            detail.Pack(message)
            packed.append(detail)
        status = status_pb2.Status(code=self.kind.grpc.value[0], message=self.message, details=packed)
        return rpc_status.to_status(status)

    @classmethod
    def from_grpc_error(cls, error: grpc.aio.AioRpcError) -> ServiceError:
        """The CONTRACT error a failed call to one of our services carried;
        UNAVAILABLE when the failure was the transport, not an answer."""
        status = rpc_status.from_call(error)
        if status is not None:
            for detail in status.details:
                if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                    info = error_details_pb2.ErrorInfo()
                    detail.Unpack(info)
                    if info.reason in CATALOGUE:
                        meta = dict(info.metadata)
                        retry = meta.pop("retry_after", None)
                        return cls(
                            info.reason,
                            retry_after=int(retry) if retry else None,
                            query_id=meta.pop("query_id", None),
                            # Our own services' messages: for people, never personal data.
                            detail=status.message or None,
                            metadata=meta,
                        )
        return cls("UNAVAILABLE")
