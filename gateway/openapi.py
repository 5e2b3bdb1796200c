"""The OpenAPI 3.0 document of the gateway's HTTP API (CONTRACT "HTTP API"),
built in code so the error codes come from the one catalogue and the
limits from the settings' defaults. The fuzz test (tests/e2e) holds the
live gateway to it."""
from __future__ import annotations

from gateway.settings import GatewaySettings
from yztc.errors import CATALOGUE


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict) -> dict:
    return {"application/json": {"schema": schema}}


_RETRY_AFTER = {
    "Retry-After": {"required": True, "schema": {"type": "integer", "minimum": 1}, "description": "秒"}
}


def _error_response(*codes: str) -> dict:
    http = CATALOGUE[codes[0]].http
    return {
        "description": " / ".join(codes),
        "content": _json(_ref("Error")),
        **({"headers": _RETRY_AFTER} if http == 429 else {}),
    }


def _errors(*codes: str) -> dict:
    """Responses for the given CONTRACT codes, grouped by HTTP status; every
    operation can meet its client's rate limit and a dependency that is down."""
    by_status: dict[int, list[str]] = {}
    for code in (*codes, "RATE_LIMITED", "UNAVAILABLE"):
        group = by_status.setdefault(CATALOGUE[code].http, [])
        if code not in group:
            group.append(code)
    return {str(status): _error_response(*group) for status, group in sorted(by_status.items())}


_BODY_ERRORS = ("INVALID_ARGUMENT", "PAYLOAD_TOO_LARGE", "UNSUPPORTED_MEDIA_TYPE")
_BEARER = [{"bearer": []}]

# What yztc.identifiers.normalise_phone accepts of ASCII text (its separators
# are the ASCII characters of Python's \s, and the hyphen), as a pattern.
_SEP = r"[\t-\r\x1c-\x1f -]*"
_PHONE = {
    "type": "string",
    "maxLength": 32,
    "pattern": rf"^{_SEP}(\+{_SEP}8{_SEP}6{_SEP}|8{_SEP}6{_SEP})?1{_SEP}[3-9]({_SEP}[0-9]){{9}}{_SEP}$",
    "description": "中国大陆手机号码，11位；可带 +86/86 前缀、空格和连字符",
    "example": "+86 138-0013-8000",
}
_NORMALISED_PHONE = {"type": "string", "pattern": "^1[3-9][0-9]{9}$", "example": "13800138000"}
_TIME = {"type": "string", "format": "date-time", "nullable": True, "example": "2026-12-01T08:30:15Z"}

SCHEMAS = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string", "enum": sorted(CATALOGUE)},
                    "message": {"type": "string", "description": "给用户看的中文说明"},
                    "retry_after": {"type": "integer", "description": "秒；429 时必有"},
                    "query_id": {"type": "string", "description": "QUERY_IN_PROGRESS 时进行中的查询"},
                },
            }
        },
    },
    "SessionRequest": {
        "type": "object",
        "required": ["auth_code"],
        "properties": {
            "auth_code": {
                "type": "string",
                "minLength": 1,
                "maxLength": 256,
                "pattern": "^[ -~]+$",
                "description": "my.getAuthCode 的授权码",
            }
        },
    },
    "Session": {
        "type": "object",
        "required": ["token", "expires_in"],
        "properties": {
            "token": {"type": "string", "description": "Authorization: Bearer <token>"},
            "expires_in": {"type": "integer", "description": "秒"},
        },
    },
    "PhoneNumberRequest": {
        "type": "object",
        "required": ["response", "sign"],
        "description": "my.getPhoneNumber 返回的内容，原样提交",
        "properties": {
            "response": {"type": "string", "minLength": 1, "maxLength": 4096, "description": "AES 加密的内容（base64）"},
            "sign": {"type": "string", "minLength": 1, "maxLength": 1024, "description": "支付宝的 RSA2 签名"},
            "sign_type": {"type": "string", "enum": ["RSA2"]},
            "encrypt_type": {"type": "string", "enum": ["AES"]},
            "charset": {"type": "string", "enum": ["UTF-8"]},
        },
    },
    "PhoneNumber": {
        "type": "object",
        "required": ["phone"],
        "properties": {"phone": {**_NORMALISED_PHONE, "description": "供表单预填；查询仍需短信验证码"}},
    },
    "VerificationCodeRequest": {
        "type": "object",
        "required": ["phone"],
        "properties": {"phone": _PHONE},
    },
    "VerificationCodeAccepted": {
        "type": "object",
        "required": ["resend_after"],
        "properties": {"resend_after": {"type": "integer", "description": "秒"}},
    },
    "QueryRequest": {
        "type": "object",
        "required": ["phone", "id_last6", "code", "consent"],
        "properties": {
            "phone": _PHONE,
            "id_last6": {"type": "string", "pattern": "^[0-9]{5}[0-9Xx]$"},
            "code": {"type": "string", "pattern": "^[0-9]{6}$"},
            "consent": {"type": "boolean", "enum": [True]},
        },
    },
    "QueryAccepted": {
        "type": "object",
        "required": ["query_id", "status", "deliver_by"],
        "properties": {
            "query_id": {"type": "string"},
            "status": _ref("QueryStatus"),
            "deliver_by": _TIME,
        },
    },
    "QueryStatus": {"type": "string", "enum": ["IN_PROGRESS", "COMPLETED", "PARTIAL"]},
    "Query": {
        "type": "object",
        "required": ["query_id", "status", "phone", "deliver_by", "enterprises", "sms"],
        "properties": {
            "query_id": {"type": "string"},
            "status": _ref("QueryStatus"),
            "phone": {"type": "string", "example": "138****0000", "description": "打码的手机号码"},
            "deliver_by": _TIME,
            "enterprises": {"type": "array", "items": _ref("EnterpriseResult")},
            "sms": {
                "type": "object",
                "required": ["state"],
                "properties": {
                    "state": {"type": "string", "enum": ["PENDING", "SENT", "DELIVERED", "FAILED"]}
                },
            },
        },
    },
    "EnterpriseResult": {
        "type": "object",
        "required": ["id", "name", "state", "count", "apps"],
        "properties": {
            "id": {"type": "string"},
            "name": {"type": "string"},
            "state": {"type": "string", "enum": ["PENDING", "DONE", "FAILED"]},
            "count": {"type": "integer", "nullable": True, "description": "DONE 时为整数，否则为 null"},
            "apps": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name", "count"],
                    "properties": {"name": {"type": "string"}, "count": {"type": "integer"}},
                },
            },
        },
    },
    "Enterprises": {
        "type": "object",
        "required": ["enterprises"],
        "properties": {
            "enterprises": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["id", "name", "hotline", "detail_and_unbind"],
                    "properties": {
                        "id": {"type": "string"},
                        "name": {"type": "string"},
                        "hotline": {"type": "string"},
                        "detail_and_unbind": {"type": "string", "description": "解绑与明细查询"},
                    },
                },
            }
        },
    },
    "Status": {"type": "object", "required": ["status"], "properties": {"status": {"type": "string"}}},
}


def _post(
    operation_id: str,
    summary: str,
    request: str,
    status: int,
    answer: str,
    errors: tuple,
    secured: bool,
    description: str = "",
    links: dict | None = None,
) -> dict:
    success: dict = {"description": "OK", "content": _json(_ref(answer))}
    if links:
        success["links"] = links
    return {
        "post": {
            "operationId": operation_id,
            "summary": summary,
            **({"description": description} if description else {}),
            "security": _BEARER if secured else [],
            "requestBody": {"required": True, "content": _json(_ref(request))},
            "responses": {str(status): success, **_errors(*errors)},
        }
    }


def _get(operation_id: str, summary: str, answer: str, errors: tuple = (), secured: bool = False, **extra) -> dict:
    return {
        "get": {
            "operationId": operation_id,
            "summary": summary,
            "security": _BEARER if secured else [],
            **extra,
            "responses": {
                "200": {"description": "OK", "content": _json(_ref(answer))},
                **_errors(*errors),
            },
        }
    }


def _probe(operation_id: str, summary: str, errors: tuple) -> dict:
    """Probes: not rate limited, so only the errors named."""
    responses: dict = {"200": {"description": "OK", "content": _json(_ref("Status"))}}
    for code in errors:
        responses[str(CATALOGUE[code].http)] = _error_response(code)
    return {"get": {"operationId": operation_id, "summary": summary, "security": [], "responses": responses}}


_GET_QUERY_LINK = {
    "operationId": "getQuery",
    "description": "查看刚受理（或进行中）的查询",
}

_CACHE_HEADERS = {
    "ETag": {"required": True, "schema": {"type": "string"}},
    "Cache-Control": {"required": True, "schema": {"type": "string"}, "example": "public, max-age=300"},
}

_DEFAULTS = {name: field.default for name, field in GatewaySettings.model_fields.items()}

DESCRIPTION = f"""一证通查 2.0 支付宝小程序网关。

除 `GET /api/v1/enterprises`、`/healthz`、`/readyz` 与本文档外，均需 `Authorization: Bearer <token>`（`POST /api/v1/sessions` 取得）。

错误统一为 `{{"error":{{"code","message","retry_after"?}}}}`；429 时带 `Retry-After` 头。

频率限制（固定时间窗，各网关副本共享，超出时 429 `RATE_LIMITED`）：
- 每个客户端 IP，`/api/v1` 下所有接口：{_DEFAULTS["limit_ip_requests"]}（IPv6 按 /64 计）；
- 每个支付宝用户，所有需登录的接口及登录本身：{_DEFAULTS["limit_user_requests"]}；每个支付宝用户登录：{_DEFAULTS["limit_user_sessions"]}；
- 验证码：每个会话 {_DEFAULTS["limit_session_codes"]}，每个客户端 IP {_DEFAULTS["limit_ip_codes"]}（每个手机号码的限制由聚合服务执行）。
以上为默认值（可配置）。客户端 IP 为对端地址；仅当对端为受信代理时采用 X-Forwarded-For。
超出客户端 IP 限制的请求，其 429 应答延迟 {_DEFAULTS["limit_refusal_delay_seconds"]} 秒。
"""

OPENAPI: dict = {
    "openapi": "3.0.3",
    "info": {"title": "一证通查 2.0 网关", "version": "1.1.0", "description": DESCRIPTION},
    "servers": [{"url": "/"}],
    "security": _BEARER,
    "paths": {
        "/api/v1/sessions": _post(
            "createSession",
            "以支付宝授权码登录",
            "SessionRequest",
            200,
            "Session",
            (*_BODY_ERRORS, "UNAUTHENTICATED"),
            secured=False,
            description="支付宝拒绝授权码或其应答验签失败：401 UNAUTHENTICATED；支付宝不可达：503 UNAVAILABLE。",
        ),
        "/api/v1/phone-number": _post(
            "authorisePhoneNumber",
            "解密 my.getPhoneNumber 的手机号码",
            "PhoneNumberRequest",
            200,
            "PhoneNumber",
            (*_BODY_ERRORS, "UNAUTHENTICATED"),
            secured=True,
            description=(
                "用支付宝公钥验签（签名覆盖带引号的 response 字符串），再用应用的 AES 密钥解密。"
                "签名不符、内容无法解密、用户未授权或号码不是中国大陆手机号码：400 INVALID_ARGUMENT"
                "（会话本身有效，故不用 401）。返回的号码仅供预填表单，查询仍需短信验证码。"
            ),
        ),
        "/api/v1/verification-codes": _post(
            "requestVerificationCode",
            "向手机号码发送验证码",
            "VerificationCodeRequest",
            202,
            "VerificationCodeAccepted",
            (*_BODY_ERRORS, "UNAUTHENTICATED", "VERIFICATION_FAILED"),
            secured=True,
            description="号码因校验未通过被锁定 24 小时：422 VERIFICATION_FAILED（带 retry_after）。",
        ),
        "/api/v1/queries": _post(
            "submitQuery",
            "提交查询",
            "QueryRequest",
            202,
            "QueryAccepted",
            (
                *_BODY_ERRORS,
                "CONSENT_REQUIRED",
                "UNAUTHENTICATED",
                "QUERY_IN_PROGRESS",
                "CODE_INVALID",
                "CODE_EXPIRED",
                "VERIFICATION_FAILED",
                "NUMBER_CANCELLED",
                "QUERY_LIMITED",
            ),
            secured=True,
            links={"GetQuery": {**_GET_QUERY_LINK, "parameters": {"query_id": "$response.body#/query_id"}}},
        ),
        "/api/v1/queries/{query_id}": _get(
            "getQuery",
            "查询结果",
            "Query",
            ("UNAUTHENTICATED", "NOT_FOUND"),
            secured=True,
            description="未知的查询，或不是本用户的查询：404 NOT_FOUND。",
            parameters=[
                {"name": "query_id", "in": "path", "required": True, "schema": {"type": "string"}}
            ],
        ),
        "/api/v1/enterprises": {
            "get": {
                "operationId": "listEnterprises",
                "summary": "参与查询的企业及解绑与明细查询方式",
                "description": "可缓存：带 ETag 与 Cache-Control；If-None-Match 命中时 304。",
                "security": [],
                "parameters": [
                    {"name": "If-None-Match", "in": "header", "required": False, "schema": {"type": "string"}}
                ],
                "responses": {
                    "200": {"description": "OK", "headers": _CACHE_HEADERS, "content": _json(_ref("Enterprises"))},
                    "304": {"description": "未改变", "headers": _CACHE_HEADERS},
                    **_errors(),
                },
            }
        },
        "/api/v1/openapi.json": {
            "get": {
                "operationId": "getOpenApiDocument",
                "summary": "本文档",
                "security": [],
                "responses": {
                    "200": {"description": "OpenAPI 3 文档", "content": _json({"type": "object"})},
                    **_errors(),
                },
            }
        },
        "/healthz": _probe("healthz", "存活检查", ()),
        "/readyz": _probe("readyz", "就绪检查：数据库与聚合服务可达", ("UNAVAILABLE",)),
    },
    "components": {
        "schemas": SCHEMAS,
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
    },
}
