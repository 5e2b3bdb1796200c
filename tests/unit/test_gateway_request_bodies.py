"""Body validation of the gateway: which field is wrong, never its value."""
import pytest

from gateway import request_bodies
from yztc.errors import ServiceError

GOOD = {"phone": "13800138000", "id_last6": "12345X", "code": "123456", "consent": True}


def _code(call) -> ServiceError:
    with pytest.raises(ServiceError) as caught:
        call()
    return caught.value


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("13800138000", "13800138000"),
        ("+86 138-0013-8000", "13800138000"),
        ("+8613800138000", "13800138000"),
        ("8613800138000", "13800138000"),
        ("138 0013 8000", "13800138000"),
        ("199-9999-9999", "19999999999"),
    ],
)
def test_phone_forms_are_normalised(raw, expected):
    assert request_bodies.phone({"phone": raw}) == expected


@pytest.mark.parametrize(
    "raw", [None, 13800138000, "", "1380013800", "23800138000", "12800138000", "1３800138000", "+1 13800138000"]
)
def test_bad_phone_names_the_field(raw):
    error = _code(lambda: request_bodies.phone({"phone": raw}))
    assert error.code == "INVALID_ARGUMENT"
    assert "phone" in error.message
    assert "138" not in error.message


def test_query_form_normalises():
    form = request_bodies.query_form({**GOOD, "phone": "+86 138 0013 8000", "id_last6": "12345x"})
    assert form == request_bodies.QueryForm("13800138000", "12345X", "123456")


@pytest.mark.parametrize(
    ("field", "value"),
    [("id_last6", "12345"), ("id_last6", 123456), ("id_last6", "１２３４５６"),
     ("code", "12345"), ("code", 123456), ("code", "١٢٣٤٥٦"), ("code", "12345\n")],
)
def test_bad_query_field_names_it(field, value):
    error = _code(lambda: request_bodies.query_form({**GOOD, field: value}))
    assert error.code == "INVALID_ARGUMENT"
    assert field in error.message


@pytest.mark.parametrize("consent", [False, "true", 1, None, "yes", {}])
def test_consent_is_only_json_true(consent):
    assert _code(lambda: request_bodies.query_form({**GOOD, "consent": consent})).code == "CONSENT_REQUIRED"
    body = {k: v for k, v in GOOD.items() if k != "consent"}
    assert _code(lambda: request_bodies.query_form(body)).code == "CONSENT_REQUIRED"


def test_fields_are_checked_before_consent():
    error = _code(lambda: request_bodies.query_form({**GOOD, "id_last6": "x", "consent": False}))
    assert error.code == "INVALID_ARGUMENT"


@pytest.mark.parametrize("value", [None, "", 42, "a b\x00", "x" * 257, "授权码"])
def test_bad_auth_code(value):
    error = _code(lambda: request_bodies.auth_code({"auth_code": value}))
    assert error.code == "INVALID_ARGUMENT" and "auth_code" in error.message


def test_auth_code_accepted():
    assert request_bodies.auth_code({"auth_code": "4b203fe6c11548bcabd8da5bb087a83b"}).startswith("4b2")
