"""The gateway's JSON answers (CONTRACT "HTTP API"), as pydantic models:
the OpenAPI document's answer schemas are generated from them.

The handlers build the answers as dicts (gateway.aggregator_client from the
aggregator's protos); tests/unit/test_gateway_answers.py validates what
they build against these models. An optional member is absent, never null
(`X | SkipJsonSchema[None] = None`: the schema says only X). Descriptions
are for the people writing clients: in Chinese.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from yztc.errors import CATALOGUE

# The catalogue's codes, and the one the HTTP parser's refusals carry
# (gateway.http_protocol: 414/431, before any route).
ERROR_CODES = tuple(sorted({*CATALOGUE, "REQUEST_TOO_LARGE"}))

QueryStatus = Literal["IN_PROGRESS", "COMPLETED", "PARTIAL"]
DeliverBy = Annotated[dt.datetime | None, Field(description="最迟送达时间（UTC）", examples=["2026-12-01T08:30:15Z"])]


def _known_code(code: str) -> str:
    if code not in ERROR_CODES:
        raise ValueError("not a CONTRACT error code")
    return code


class Answer(BaseModel):
    # strict and closed: a test validating what a handler builds fails on
    # any member or type the document does not show.
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class ErrorDetail(Answer):
    code: Annotated[str, AfterValidator(_known_code)] = Field(json_schema_extra={"enum": list(ERROR_CODES)})
    message: str = Field(description="给用户看的中文说明")
    retry_after: int | SkipJsonSchema[None] = Field(None, description="秒；429 时必有")
    query_id: str | SkipJsonSchema[None] = Field(None, description="QUERY_IN_PROGRESS 时进行中的查询")


class Error(Answer):
    error: ErrorDetail


class Session(Answer):
    token: str = Field(description="Authorization: Bearer <token>")
    expires_in: int = Field(description="秒")


class PhoneNumber(Answer):
    phone: str = Field(
        pattern="^1[3-9][0-9]{9}$", examples=["13800138000"], description="供表单预填；查询仍需短信验证码"
    )


class VerificationCodeAccepted(Answer):
    resend_after: int = Field(description="秒")


class QueryAccepted(Answer):
    query_id: str
    status: QueryStatus
    deliver_by: DeliverBy


class AppCount(Answer):
    name: str
    count: int


class EnterpriseResult(Answer):
    id: str
    name: str
    state: Literal["PENDING", "DONE", "FAILED"]
    count: int | None = Field(description="DONE 时为整数，否则为 null")
    apps: list[AppCount] = Field(description="按应用的分项（如微信1个、QQ2个），企业未提供时为空")


class SmsState(Answer):
    state: Literal["PENDING", "SENT", "DELIVERED", "FAILED"]


class Query(Answer):
    query_id: str
    status: QueryStatus
    phone: str = Field(description="打码的手机号码", examples=["138****0000"])
    deliver_by: DeliverBy
    enterprises: list[EnterpriseResult]
    sms: SmsState


class Enterprise(Answer):
    id: str
    name: str
    hotline: str
    detail_and_unbind: str = Field(description="解绑与明细查询")


class Enterprises(Answer):
    enterprises: list[Enterprise]


class Status(Answer):
    status: str


ANSWERS = (Error, Session, PhoneNumber, VerificationCodeAccepted, QueryAccepted, Query, Enterprises, Status)
