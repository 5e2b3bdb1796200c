"""Parsing and validating request bodies before anything is called.

Messages name the field that is wrong and never echo its value: the value
may be a phone number, an ID fragment or a code. The aggregator validates
again; checking here saves it the call and gives the person a precise hint.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass

from aiohttp import web

from yztc.errors import ServiceError
from yztc.identifiers import normalise_id_last6, normalise_phone, valid_code

_QUERY_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_AUTH_CODE_MAX = 256


def _invalid(message: str) -> ServiceError:
    return ServiceError("INVALID_ARGUMENT", detail=message)


async def read_json_object(request: web.Request) -> dict:
    """The body as a JSON object; over-size bodies raise 413 inside read()."""
    raw = await request.read()
    try:
        body = json.loads(raw)
    # RecursionError: a 16 KiB body of "[[[[..." nests past the parser's limit.
    except (ValueError, RecursionError):
        raise _invalid("请求体不是有效的 JSON。") from None
    if not isinstance(body, dict):
        raise _invalid("请求体须为 JSON 对象。")
    return body


def auth_code(body: dict) -> str:
    value = body.get("auth_code")
    if (
        not isinstance(value, str)
        or not 0 < len(value) <= _AUTH_CODE_MAX
        or not (value.isascii() and value.isprintable())
    ):
        raise _invalid("授权码（auth_code）缺失或格式有误，请重新进入小程序。")
    return value


def _ascii(value: object) -> object:
    """Non-ASCII strings become None: yztc.identifiers' `\\d` also matches
    full-width and other Unicode digits, which no operator accepts."""
    if isinstance(value, str) and not value.isascii():
        return None
    return value


def phone(body: dict) -> str:
    value = normalise_phone(_ascii(body.get("phone")))
    if value is None:
        raise _invalid("手机号码（phone）格式有误，请输入11位中国大陆手机号码。")
    return value


@dataclass(frozen=True)
class QueryForm:
    phone: str
    id_last6: str
    code: str


def query_form(body: dict) -> QueryForm:
    """Every field checked before consent: a wrong field is the likelier mistake."""
    number = phone(body)
    id_last6 = normalise_id_last6(_ascii(body.get("id_last6")))
    if id_last6 is None:
        raise _invalid("身份证号码后六位（id_last6）格式有误，应为5位数字加1位数字或X。")
    code = _ascii(body.get("code"))
    if not valid_code(code):
        raise _invalid("验证码（code）格式有误，应为6位数字。")
    # Only JSON true counts as consent: not "true", not 1.
    if body.get("consent") is not True:
        raise ServiceError("CONSENT_REQUIRED")
    return QueryForm(number, id_last6, code)


def query_id(request: web.Request) -> str:
    """A malformed id cannot name a query: answer as for an unknown one."""
    value = request.match_info["query_id"]
    if not _QUERY_ID.fullmatch(value):
        raise ServiceError("NOT_FOUND")
    return value


_RESPONSE_MAX = 4096  # an encrypted getPhoneNumber answer is ~100 characters
_SIGN_MAX = 1024  # base64 of a 4096-bit RSA signature is 684
# The only values Alipay sends for an app with content encryption.
_PHONE_AUTH_OPTIONS = {"sign_type": "RSA2", "encrypt_type": "AES", "charset": "UTF-8"}


@dataclass(frozen=True)
class PhoneAuthorisationForm:
    response: str
    sign: str


def phone_authorisation(body: dict) -> PhoneAuthorisationForm:
    """my.getPhoneNumber's answer as the mini-program got it; the optional
    sign_type/encrypt_type/charset must be the only ones Alipay uses for us."""
    response, sign = body.get("response"), body.get("sign")
    if (
        not isinstance(response, str)
        or not 0 < len(response) <= _RESPONSE_MAX
        or not isinstance(sign, str)
        or not 0 < len(sign) <= _SIGN_MAX
    ):
        raise _invalid("手机号授权信息（response、sign）缺失或格式有误，请重新授权。")
    for name, allowed in _PHONE_AUTH_OPTIONS.items():
        if name in body and body[name] != allowed:
            raise _invalid(f"手机号授权信息的 {name} 不受支持。")
    return PhoneAuthorisationForm(response, sign)
