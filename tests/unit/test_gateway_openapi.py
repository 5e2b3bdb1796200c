"""The OpenAPI document says what the gateway does: every route, the errors
each can give (rate limits and a down dependency on all API routes, the
HTTP parser's refusals on every route), the caching of the enterprise
directory, the links the stateful fuzzing follows; and its schemas are the
models the gateway validates with."""

from __future__ import annotations

import re

import pytest
import schemathesis
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway import request_bodies
from gateway.answers import ERROR_CODES
from gateway.openapi import OPENAPI, SCHEMAS, SchemaGenerator
from gateway.request_bodies import QueryRequest, VerificationCodeRequest
from yztc.errors import CATALOGUE, ServiceError


def _operations():
    for path, operations in OPENAPI["paths"].items():
        for method, operation in operations.items():
            yield path, method, operation


def test_schemathesis_loads_the_document():
    schema = schemathesis.openapi.from_dict(OPENAPI)
    names = {op.ok().label for op in schema.get_all_operations()}
    assert "POST /api/v1/phone-number" in names and "DELETE /api/v1/sessions" in names and len(names) == 10


def test_operation_ids_are_unique():
    ids = [op["operationId"] for _, _, op in _operations()]
    assert len(ids) == len(set(ids))


def test_every_api_operation_documents_rate_limits_and_unavailability():
    for path, _, operation in _operations():
        responses = operation["responses"]
        if path.startswith("/api/v1/"):
            assert responses["429"]["headers"]["Retry-After"]["required"] is True, path
            assert "RATE_LIMITED" in responses["429"]["description"], path
            assert "503" in responses, path
        else:  # probes are never limited
            assert "429" not in responses, path


def test_every_operation_documents_the_parsers_refusals():
    for path, _, operation in _operations():
        for status in ("414", "431"):
            assert operation["responses"][status]["description"] == "REQUEST_TOO_LARGE", path


def test_secured_operations_document_401():
    for path, _, operation in _operations():
        if operation["security"]:
            assert "401" in operation["responses"], path


def test_phone_number_errors_are_400_not_401_for_the_payload():
    operation = OPENAPI["paths"]["/api/v1/phone-number"]["post"]
    assert set(operation["responses"]) == {"200", "400", "401", "413", "414", "415", "429", "431", "503"}
    assert "400 INVALID_ARGUMENT" in operation["description"]
    request = SCHEMAS["PhoneNumberRequest"]
    assert request["required"] == ["response", "sign"]
    assert SCHEMAS["PhoneNumber"]["properties"]["phone"]["pattern"] == "^1[3-9][0-9]{9}$"


def test_enterprises_are_cacheable():
    operation = OPENAPI["paths"]["/api/v1/enterprises"]["get"]
    assert operation["security"] == []
    assert [p["name"] for p in operation["parameters"]] == ["If-None-Match"]
    for status in ("200", "304"):
        assert {"ETag", "Cache-Control"} <= set(operation["responses"][status]["headers"])
    assert "content" not in operation["responses"]["304"]


def test_links_name_real_operations_and_parameters():
    ids = {op["operationId"]: op for _, _, op in _operations()}
    for _, _, operation in _operations():
        for response in operation["responses"].values():
            for link in response.get("links", {}).values():
                target = ids[link["operationId"]]
                names = {p["name"] for p in target.get("parameters", [])}
                assert set(link["parameters"]) <= names


def test_error_codes_are_the_catalogue_and_the_parsers():
    codes = SCHEMAS["ErrorDetail"]["properties"]["code"]["enum"]
    assert set(codes) == set(CATALOGUE) | {"REQUEST_TOO_LARGE"} == set(ERROR_CODES)
    documented = set()
    for _, _, operation in _operations():
        for response in operation["responses"].values():
            documented.update(c.strip() for c in response["description"].split("/"))
    # Every CONTRACT code is documented on some operation (405 is aiohttp's, for any route).
    assert set(ERROR_CODES) - {"METHOD_NOT_ALLOWED"} <= documented


def test_limits_in_the_description_are_the_settings_defaults():
    description = OPENAPI["info"]["description"]
    for text in ("600/60s", "120/60s", "20/3600s", "5/3600s", "60/3600s", "X-Forwarded-For", "16384", "8190"):
        assert text in description


def test_request_schemas_are_the_models_the_gateway_validates_with():
    assert SCHEMAS["QueryRequest"] == QueryRequest.model_json_schema(
        ref_template="#/components/schemas/{model}", schema_generator=SchemaGenerator
    )
    query = SCHEMAS["QueryRequest"]
    assert query["required"] == ["phone", "id_last6", "code", "consent"]
    assert query["properties"]["consent"] == {
        "type": "boolean",
        "const": True,
        "description": "已阅读并同意个人信息处理规则；须为 true",
    }
    body = OPENAPI["paths"]["/api/v1/queries"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/QueryRequest"}


def _refs(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def test_refs_resolve():
    for ref in _refs(OPENAPI):
        assert ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[1] in SCHEMAS


def test_optional_answer_members_are_absent_not_null():
    error = SCHEMAS["ErrorDetail"]
    assert error["required"] == ["code", "message"]
    assert error["properties"]["retry_after"] == {"type": "integer", "description": "秒；429 时必有"}
    # count is there and may be null; it is not optional.
    result = SCHEMAS["EnterpriseResult"]
    assert "count" in result["required"]
    assert {"type": "null"} in result["properties"]["count"]["anyOf"]


# -- the identifiers' patterns say exactly what the gateway takes ----------------------

_FIELDS = {
    "phone": (VerificationCodeRequest, lambda value: {"phone": value}),
    "id_last6": (
        QueryRequest,
        lambda value: {"phone": "13800138000", "id_last6": value, "code": "123456", "consent": True},
    ),
    "code": (
        QueryRequest,
        lambda value: {"phone": "13800138000", "id_last6": "12345X", "code": value, "consent": True},
    ),
}


def _documented(field: str, value: str) -> bool:
    model, _ = _FIELDS[field]
    schema = SCHEMAS[model.__name__]["properties"][field]
    # JSON Schema patterns are ECMA-262: `$` is the end, not before a last newline as in Python.
    pattern = schema["pattern"].removesuffix("$") + r"\Z"
    return len(value) <= schema["maxLength"] and re.search(pattern, value) is not None


def _taken(field: str, value: str) -> bool:
    model, body = _FIELDS[field]
    try:
        request_bodies.parse(model, body(value))
    except ServiceError:
        return False
    return True


@pytest.mark.parametrize(
    "value",
    [
        "13800138000",
        "+86 138-0013-8000",
        "8613800138000",
        "+8613800138000",
        "\t138 0013\n8000\n",
        "\x1c13800138000",
        "12800138000",
        "868613800138000",
        "+86+8613800138000",
        "138001380001",
        "1380013800a",
        "+1 13800138000",
        "1３800138000",
        "13800138000\u3000",
        "138\u30000013\u30008000",
        "13800138000\u001f",
        " " * 21 + "13800138000",
        " " * 22 + "13800138000",
        "",
        "+86",
        "＋８６　１３８－００１３－８０００",
    ],
)
def test_phone_pattern_examples(value):
    assert _documented("phone", value) == _taken("phone", value)


@pytest.mark.parametrize("value", ["12345X", "12345x", "１２３４５Ｘ", "123456", "12345", "12345Y", "12345X\n"])
def test_id_last6_pattern_examples(value):
    assert _documented("id_last6", value) == _taken("id_last6", value)


@pytest.mark.parametrize("value", ["123456", "１２３４５６", "12345", "1234567", "١٢٣٤٥٦", "123456\n"])
def test_code_pattern_examples(value):
    assert _documented("code", value) == _taken("code", value)


_PHONE_PATTERN = SCHEMAS["VerificationCodeRequest"]["properties"]["phone"]["pattern"]


@settings(max_examples=500, database=None, deadline=None)
@given(st.text(alphabet="0123456789 +-\t\n\x1c\x0bx８\u3000＋－\u200b", max_size=40) | st.from_regex(_PHONE_PATTERN))
def test_phone_pattern_is_what_the_gateway_takes(value):
    assert _documented("phone", value) == _taken("phone", value)
