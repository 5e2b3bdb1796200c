"""The OpenAPI document says what the gateway does: every route, the errors
each can give (rate limits and a down dependency on all API routes), the
caching of the enterprise directory, the links the stateful fuzzing follows."""
from __future__ import annotations

import re

import pytest
import schemathesis
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway import request_bodies
from gateway.openapi import OPENAPI
from yztc.errors import CATALOGUE, ServiceError


def _operations():
    for path, operations in OPENAPI["paths"].items():
        for method, operation in operations.items():
            yield path, method, operation


def test_schemathesis_loads_the_document():
    schema = schemathesis.openapi.from_dict(OPENAPI)
    names = {op.ok().label for op in schema.get_all_operations()}
    assert "POST /api/v1/phone-number" in names and len(names) == 9


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


def test_secured_operations_document_401():
    for path, _, operation in _operations():
        if operation["security"]:
            assert "401" in operation["responses"], path


def test_phone_number_errors_are_400_not_401_for_the_payload():
    operation = OPENAPI["paths"]["/api/v1/phone-number"]["post"]
    assert set(operation["responses"]) == {"200", "400", "401", "413", "415", "429", "503"}
    assert "400 INVALID_ARGUMENT" in operation["description"]
    request = OPENAPI["components"]["schemas"]["PhoneNumberRequest"]
    assert request["required"] == ["response", "sign"]
    assert OPENAPI["components"]["schemas"]["PhoneNumber"]["properties"]["phone"]["pattern"] == "^1[3-9][0-9]{9}$"


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


def test_error_codes_are_the_catalogue():
    codes = OPENAPI["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"]["enum"]
    assert set(codes) == set(CATALOGUE)
    documented = set()
    for _, _, operation in _operations():
        for response in operation["responses"].values():
            documented.update(c.strip() for c in response["description"].split("/"))
    # Every CONTRACT code is documented on some operation (405 is aiohttp's, for any route).
    assert set(CATALOGUE) - {"METHOD_NOT_ALLOWED"} <= documented


def test_limits_in_the_description_are_the_settings_defaults():
    description = OPENAPI["info"]["description"]
    for text in ("600/60s", "120/60s", "20/3600s", "5/3600s", "60/3600s", "X-Forwarded-For"):
        assert text in description


# -- the phone pattern says exactly what the gateway takes ----------------------------

_PATTERN = re.compile(OPENAPI["components"]["schemas"]["VerificationCodeRequest"]["properties"]["phone"]["pattern"])
_MAX = OPENAPI["components"]["schemas"]["VerificationCodeRequest"]["properties"]["phone"]["maxLength"]


def _documented(value: str) -> bool:
    return len(value) <= _MAX and _PATTERN.search(value) is not None


def _taken(value: str) -> bool:
    try:
        request_bodies.phone({"phone": value})
    except ServiceError:
        return False
    return True


@pytest.mark.parametrize(
    "value",
    ["13800138000", "+86 138-0013-8000", "8613800138000", "+8613800138000", "\t138 0013\n8000\n", "\x1c13800138000",
     "12800138000", "868613800138000", "+86+8613800138000", "138001380001", "1380013800a", "+1 13800138000",
     "1３800138000", "13800138000\u3000", " " * 21 + "13800138000", " " * 22 + "13800138000", "", "+86"],
)
def test_phone_pattern_examples(value):
    assert _documented(value) == _taken(value)


@settings(max_examples=500, database=None, deadline=None)
@given(st.text(alphabet="0123456789 +-\t\n\x1c\x0bx８\u3000", max_size=40) | st.from_regex(_PATTERN))
def test_phone_pattern_is_what_the_gateway_takes(value):
    assert _documented(value) == _taken(value)
