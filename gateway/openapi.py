"""The OpenAPI 3.0 document of the gateway's HTTP API (CONTRACT "HTTP API"),
built in code so the error codes come from the one catalogue."""
from __future__ import annotations

from yztc.errors import CATALOGUE


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict) -> dict:
    return {"application/json": {"schema": schema}}


def _error_response(*codes: str) -> dict:
    http = CATALOGUE[codes[0]].http
    return {
        "description": " / ".join(codes),
        "content": _json(_ref("Error")),
        **(
            {"headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "秒"}}}
            if http == 429
            else {}
        ),
    }


def _errors(*codes: str) -> dict:
    """Responses for the given CONTRACT codes, grouped by HTTP status."""
    by_status: dict[int, list[str]] = {}
    for code in (*codes, "UNAVAILABLE"):
        by_status.setdefault(CATALOGUE[code].http, []).append(code)
    return {str(status): _error_response(*group) for status, group in sorted(by_status.items())}


_BODY_ERRORS = ("INVALID_ARGUMENT", "PAYLOAD_TOO_LARGE", "UNSUPPORTED_MEDIA_TYPE")
_BEARER = [{"bearer": []}]

_PHONE = {
    "type": "string",
    "description": "中国大陆手机号码，11位；可带 +86/86 前缀、空格和连字符",
    "example": "+86 138-0013-8000",
}

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
                    "retry_after": {"type": "integer", "description": "秒"},
                    "query_id": {"type": "string", "description": "QUERY_IN_PROGRESS 时进行中的查询"},
                },
            }
        },
    },
    "SessionRequest": {
        "type": "object",
        "required": ["auth_code"],
        "properties": {"auth_code": {"type": "string", "description": "my.getAuthCode 的授权码"}},
    },
    "Session": {
        "type": "object",
        "required": ["token", "expires_in"],
        "properties": {
            "token": {"type": "string"},
            "expires_in": {"type": "integer", "description": "秒"},
        },
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
            "deliver_by": {"type": "string", "format": "date-time"},
        },
    },
    "QueryStatus": {"type": "string", "enum": ["IN_PROGRESS", "COMPLETED", "PARTIAL"]},
    "Query": {
        "type": "object",
        "required": ["query_id", "status", "phone", "deliver_by", "enterprises", "sms"],
        "properties": {
            "query_id": {"type": "string"},
            "status": _ref("QueryStatus"),
            "phone": {"type": "string", "example": "138****0000"},
            "deliver_by": {"type": "string", "format": "date-time"},
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


def _post(summary: str, request: str, status: int, answer: str, errors: tuple, secured: bool) -> dict:
    return {
        "post": {
            "summary": summary,
            **({"security": _BEARER} if secured else {"security": []}),
            "requestBody": {"required": True, "content": _json(_ref(request))},
            "responses": {
                str(status): {"description": "OK", "content": _json(_ref(answer))},
                **_errors(*errors),
            },
        }
    }


def _get(
    summary: str, answer: str, errors: tuple | None = (), secured: bool = False, **extra
) -> dict:
    """errors=None: an endpoint that always answers 200 (liveness)."""
    return {
        "get": {
            "summary": summary,
            "security": _BEARER if secured else [],
            **extra,
            "responses": {
                "200": {"description": "OK", "content": _json(_ref(answer))},
                **(_errors(*errors) if errors is not None else {}),
            },
        }
    }


OPENAPI: dict = {
    "openapi": "3.0.3",
    "info": {"title": "一证通查 2.0 网关", "version": "1.0.0"},
    "servers": [{"url": "/"}],
    "security": _BEARER,
    "paths": {
        "/api/v1/sessions": _post(
            "以支付宝授权码登录",
            "SessionRequest",
            200,
            "Session",
            (*_BODY_ERRORS, "UNAUTHENTICATED"),
            secured=False,
        ),
        "/api/v1/verification-codes": _post(
            "向手机号码发送验证码",
            "VerificationCodeRequest",
            202,
            "VerificationCodeAccepted",
            (*_BODY_ERRORS, "UNAUTHENTICATED", "RATE_LIMITED"),
            secured=True,
        ),
        "/api/v1/queries": _post(
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
                "RATE_LIMITED",
                "QUERY_LIMITED",
            ),
            secured=True,
        ),
        "/api/v1/queries/{query_id}": _get(
            "查询结果",
            "Query",
            ("UNAUTHENTICATED", "NOT_FOUND"),
            secured=True,
            parameters=[
                {"name": "query_id", "in": "path", "required": True, "schema": {"type": "string"}}
            ],
        ),
        "/api/v1/enterprises": _get("参与查询的企业及解绑与明细查询方式", "Enterprises"),
        "/api/v1/openapi.json": {
            "get": {
                "summary": "本文档",
                "security": [],
                "responses": {"200": {"description": "OpenAPI 3 文档", "content": _json({"type": "object"})}},
            }
        },
        "/healthz": _get("存活检查", "Status", None),
        "/readyz": _get("就绪检查：数据库与聚合服务可达", "Status", ()),
    },
    "components": {
        "schemas": SCHEMAS,
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
    },
}
