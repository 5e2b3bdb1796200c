"""Request bodies: strict JSON (gateway.strict_json), then a pydantic model
per body, strict (no coercion: `"phone": 13800138000` is not a string).

These models are what the handlers validate with and what the OpenAPI
document's request schemas are generated from. Identifiers are checked and
normalised by yztc.identifiers, the one normalisation both doors (HTTP here,
gRPC in the aggregator) share; the schema's `pattern`s only document it.

Messages name the field that is wrong and never echo its value: the value
may be a phone number, an ID fragment or a code. The aggregator validates
again; checking here saves it the call and gives the person a precise hint.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, ClassVar, Literal, TypeVar

from aiohttp import web
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, ValidationError

from gateway import strict_json
from yztc.errors import ServiceError
from yztc.identifiers import (
    CODE_MAX_LENGTH,
    CODE_PATTERN,
    ID_LAST6_MAX_LENGTH,
    ID_LAST6_PATTERN,
    PHONE_MAX_LENGTH,
    PHONE_PATTERN,
    normalise_code,
    normalise_id_last6,
    normalise_phone,
)

_QUERY_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")

NOT_JSON = "请求体不是有效的 JSON：须为 UTF-8 编码的标准 JSON，字段不得重复。"
NOT_AN_OBJECT = "请求体须为 JSON 对象。"
BODY_CUT_SHORT = "请求体不完整，请重试。"


def _invalid(message: str) -> ServiceError:
    return ServiceError("INVALID_ARGUMENT", detail=message)


def _normalised(normalise: Callable[[str], str | None]) -> AfterValidator:
    """yztc.identifiers' verdict as a pydantic validator (None: not of the form)."""

    def check(value: str) -> str:
        result = normalise(value)
        if result is None:
            raise ValueError("not of the form")  # never the value: it is personal data
        return result

    return AfterValidator(check)


# The patterns and lengths are yztc.identifiers' too, and only document the
# fields (the OpenAPI document); the validators decide.
Phone = Annotated[
    str,
    _normalised(normalise_phone),
    Field(
        description="中国大陆手机号码，11位；可带 +86/86 前缀、空格和连字符，全角数字与全角空格亦可",
        examples=["+86 138-0013-8000"],
        json_schema_extra={"pattern": PHONE_PATTERN, "maxLength": PHONE_MAX_LENGTH},
    ),
]
IdLast6 = Annotated[
    str,
    _normalised(normalise_id_last6),
    Field(
        description="身份证号码后六位：5位数字加1位数字或X（全角亦可）",
        examples=["12345X"],
        json_schema_extra={"pattern": ID_LAST6_PATTERN, "maxLength": ID_LAST6_MAX_LENGTH},
    ),
]
Code = Annotated[
    str,
    _normalised(normalise_code),
    Field(
        description="短信验证码，6位数字",
        examples=["123456"],
        json_schema_extra={"pattern": CODE_PATTERN, "maxLength": CODE_MAX_LENGTH},
    ),
]


class RequestBody(BaseModel):
    """A JSON object body. Unknown members are ignored; `messages` gives, per
    field, the message for the person when that field is wrong."""

    # hide_input_in_errors: a ValidationError's text never carries the value.
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True, hide_input_in_errors=True)
    messages: ClassVar[dict[str, str]] = {}

    @classmethod
    def refusal(cls, error: ValidationError) -> ServiceError:
        """The CONTRACT error for the first wrong field, in field order."""
        first = error.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else ""
        return _invalid(cls.messages.get(field, NOT_AN_OBJECT))

    def check(self) -> None:
        """Rules beyond each field's form, once every field is right."""


class SessionRequest(RequestBody):
    auth_code: str = Field(min_length=1, max_length=256, pattern=r"^[ -~]+$", description="my.getAuthCode 的授权码")

    messages: ClassVar[dict[str, str]] = {"auth_code": "授权码（auth_code）缺失或格式有误，请重新进入小程序。"}


_PHONE_AUTHORISATION = "手机号授权信息（response、sign）缺失或格式有误，请重新授权。"


# A model's docstring is its description in the OpenAPI document: for the
# people writing clients, in Chinese.


class PhoneNumberRequest(RequestBody):
    """my.getPhoneNumber 返回的内容，原样提交"""

    # my.getPhoneNumber's answer as the mini-program got it; the optional
    # sign_type/encrypt_type/charset must be the only ones Alipay uses for us.
    # An encrypted getPhoneNumber answer is ~100 characters; base64 of a
    # 4096-bit RSA signature is 684.
    response: str = Field(min_length=1, max_length=4096, description="AES 加密的内容（base64）")
    sign: str = Field(min_length=1, max_length=1024, description="支付宝的 RSA2 签名")
    sign_type: Literal["RSA2"] = "RSA2"
    encrypt_type: Literal["AES"] = "AES"
    charset: Literal["UTF-8"] = "UTF-8"

    messages: ClassVar[dict[str, str]] = {
        "response": _PHONE_AUTHORISATION,
        "sign": _PHONE_AUTHORISATION,
        **{name: f"手机号授权信息的 {name} 不受支持。" for name in ("sign_type", "encrypt_type", "charset")},
    }


_PHONE_MESSAGE = "手机号码（phone）格式有误，请输入11位中国大陆手机号码。"


class VerificationCodeRequest(RequestBody):
    phone: Phone

    messages: ClassVar[dict[str, str]] = {"phone": _PHONE_MESSAGE}


class QueryRequest(RequestBody):
    """字段格式有误：400 INVALID_ARGUMENT（先于 consent 检查）；consent 不是 true：400 CONSENT_REQUIRED"""

    # Every field is checked before consent: a wrong field is the likelier
    # mistake. Then anything but JSON `true` (missing, false, "true", 1,
    # null) is CONSENT_REQUIRED: the CONTRACT's row for consent ("`consent`
    # is not `true`") is more specific than its "wrong types" row, and it is
    # what the API answered before strict bodies.
    phone: Phone
    id_last6: IdLast6
    code: Code
    consent: StrictBool = Field(
        description="已阅读并同意个人信息处理规则；须为 true", json_schema_extra={"const": True}
    )

    messages: ClassVar[dict[str, str]] = {
        "phone": _PHONE_MESSAGE,
        "id_last6": "身份证号码后六位（id_last6）格式有误，应为5位数字加1位数字或X。",
        "code": "验证码（code）格式有误，应为6位数字。",
    }

    @classmethod
    def refusal(cls, error: ValidationError) -> ServiceError:
        first = error.errors()[0]
        if first["loc"] == ("consent",):
            return ServiceError("CONSENT_REQUIRED")
        return super().refusal(error)

    def check(self) -> None:
        if not self.consent:
            raise ServiceError("CONSENT_REQUIRED")


Body = TypeVar("Body", bound=RequestBody)


def parse(model: type[Body], body: object) -> Body:
    """`body` (decoded JSON) as `model`; INVALID_ARGUMENT naming the first
    wrong field, or CONSENT_REQUIRED (QueryRequest) once every field is right."""
    if not isinstance(body, dict):
        raise _invalid(NOT_AN_OBJECT)
    try:
        form = model.model_validate(body)
    except ValidationError as error:
        raise model.refusal(error) from None
    form.check()
    return form


async def read(request: web.Request, model: type[Body]) -> Body:
    """The request's body as `model`. Over-size bodies raise 413 inside
    read(); a body the client cut short (a bad chunk) is INVALID_ARGUMENT."""
    try:
        raw = await request.read()
    except web.RequestPayloadError:
        raise _invalid(BODY_CUT_SHORT) from None
    try:
        body = strict_json.loads(raw)
    except strict_json.NotStrictJson:
        raise _invalid(NOT_JSON) from None
    return parse(model, body)


def query_id(request: web.Request) -> str:
    """A malformed id cannot name a query: answer as for an unknown one."""
    value = request.match_info["query_id"]
    if not _QUERY_ID.fullmatch(value):
        raise ServiceError("NOT_FOUND")
    return value
