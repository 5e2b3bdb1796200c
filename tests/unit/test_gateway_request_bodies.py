"""Body validation of the gateway: strict JSON, then strict models; which
field is wrong, never its value."""

import json

import pytest

from gateway import request_bodies, strict_json
from gateway.request_bodies import (
    PhoneNumberRequest,
    QueryRequest,
    SessionRequest,
    VerificationCodeRequest,
)
from yztc.errors import ServiceError
from yztc.identifiers import normalise_id_last6, normalise_phone

GOOD = {"phone": "13800138000", "id_last6": "12345X", "code": "123456", "consent": True}


def _identifier(normalise, raw: str) -> str | None:
    """yztc.identifiers' verdict: the normalised value, or None if refused."""
    try:
        return normalise(raw)
    except ValueError:
        return None


def _refusal(call) -> ServiceError:
    with pytest.raises(ServiceError) as caught:
        call()
    return caught.value


# -- strict JSON ------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b'{"consent":false,"consent":true}',
        b'{"a":{"b":1,"b":1}}',
        b'[{"x":1,"x":2}]',
        b'{"n":NaN}',
        b'{"n":Infinity}',
        b'{"n":-Infinity}',
        b'{"n":1e400}',
        b'{"n":-1e400}',
        b'{"s":"\\ud800"}',
        b'{"s":"\\udfff x"}',
        b'{"\\ud83d":1}',
        b'["\\ude00\\ud83d"]',
        b'{"s":"\xed\xa0\x80"}',  # a surrogate encoded in UTF-8 is not UTF-8
        b'{"s":"\xff"}',
        b"\xef\xbb\xbf{}",
        '{"a":1}'.encode("utf-16"),
        '{"a":1}'.encode("utf-32"),
        b'{"a":1} {"a":2}',
        b'{"a":1}x',
        b'{"s":"tab\there"}',
        b"{'a':1}",
        b'{"a":01}',
        b'{"n":' + b"9" * 5000 + b"}",
        b"[" * 100000 + b"]" * 100000,
        b"",
    ],
)
def test_not_strict_json_is_refused(raw):
    with pytest.raises(strict_json.NotStrictJson):
        strict_json.loads(raw)


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        (b' {"a" : [1, -0, 2.5e3, true, false, null]}\r\n\t', {"a": [1, 0, 2500.0, True, False, None]}),
        (b'{"s":"\\ud83d\\ude00\\u4e2d\xe4\xb8\xad"}', {"s": "\U0001f600中中"}),
        (b'{"a":{"a":1},"b":{"a":1}}', {"a": {"a": 1}, "b": {"a": 1}}),
        (b'"text"', "text"),
        (b"1.7976931348623157e308", 1.7976931348623157e308),
        (b'{"n":' + b"9" * 4000 + b"}", {"n": int("9" * 4000)}),
    ],
)
def test_strict_json_is_taken(raw, value):
    assert strict_json.loads(raw) == value


def test_refusals_never_quote_the_input():
    with pytest.raises(strict_json.NotStrictJson) as caught:
        strict_json.loads(b'{"phone":"13800138000","phone":"13800138000"}')
    assert "138" not in str(caught.value)


# -- models -------------------------------------------------------------------------


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
    assert request_bodies.parse(VerificationCodeRequest, {"phone": raw}).phone == expected


@pytest.mark.parametrize(
    "raw",
    [
        "1３800138000",
        "138\u30000013\u30008000",
        "13800138000\u001f",
        "\u200b13800138000",
        "13800138000\u3000",
        "１３８００１３８０００",
        "+86\u00a013800138000",
        "12800138000",
        "1380013800",
    ],
)
def test_phones_are_what_yztc_identifiers_says(raw):
    # The one normalisation of both doors: no second opinion here.
    expected = _identifier(normalise_phone, raw)
    if expected is None:
        error = _refusal(lambda: request_bodies.parse(VerificationCodeRequest, {"phone": raw}))
        assert error.code == "INVALID_ARGUMENT" and "phone" in error.message
    else:
        assert request_bodies.parse(VerificationCodeRequest, {"phone": raw}).phone == expected


@pytest.mark.parametrize("raw", ["12345X", "12345x", "１２３４５Ｘ", "１２３４５６", "12345\u00a0X", "X12345"])
def test_id_last6_is_what_yztc_identifiers_says(raw):
    expected = _identifier(normalise_id_last6, raw)
    body = {**GOOD, "id_last6": raw}
    if expected is None:
        assert "id_last6" in _refusal(lambda: request_bodies.parse(QueryRequest, body)).message
    else:
        assert request_bodies.parse(QueryRequest, body).id_last6 == expected


@pytest.mark.parametrize(
    "raw",
    [
        None,
        13800138000,
        13800138000.0,
        "",
        "1380013800",
        "23800138000",
        "12800138000",
        "+1 13800138000",
        ["13800138000"],
        {"n": "13800138000"},
        True,
    ],
)
def test_bad_phone_names_the_field(raw):
    error = _refusal(lambda: request_bodies.parse(VerificationCodeRequest, {"phone": raw}))
    assert error.code == "INVALID_ARGUMENT"
    assert "phone" in error.message
    assert "138" not in error.message


def test_query_form_normalises():
    form = request_bodies.parse(QueryRequest, {**GOOD, "phone": "+86 138 0013 8000", "id_last6": "12345x"})
    assert (form.phone, form.id_last6, form.code, form.consent) == ("13800138000", "12345X", "123456", True)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("id_last6", "12345"),
        ("id_last6", 123456),
        ("code", "12345"),
        ("code", 123456),
        ("code", "١٢٣٤٥٦"),
        ("code", "12345\n"),
    ],
)
def test_bad_query_field_names_it(field, value):
    error = _refusal(lambda: request_bodies.parse(QueryRequest, {**GOOD, field: value}))
    assert error.code == "INVALID_ARGUMENT"
    assert field in error.message


@pytest.mark.parametrize("consent", [False, "true", 1, None, "yes", {}, 1.0])
def test_consent_anything_but_true_is_consent_required(consent):
    # CONTRACT: CONSENT_REQUIRED when `consent` is not `true` (strictly: "true" and 1 are not).
    assert _refusal(lambda: request_bodies.parse(QueryRequest, {**GOOD, "consent": consent})).code == "CONSENT_REQUIRED"


def test_consent_missing_is_consent_required():
    body = {k: v for k, v in GOOD.items() if k != "consent"}
    assert _refusal(lambda: request_bodies.parse(QueryRequest, body)).code == "CONSENT_REQUIRED"


def test_fields_are_checked_before_consent():
    for consent in (False, "true", "missing"):
        body = {**GOOD, "id_last6": "x", "consent": consent}
        if consent == "missing":
            del body["consent"]
        error = _refusal(lambda body=body: request_bodies.parse(QueryRequest, body))
        assert error.code == "INVALID_ARGUMENT" and "id_last6" in error.message


def test_the_first_wrong_field_in_order_is_named():
    error = _refusal(lambda: request_bodies.parse(QueryRequest, {"code": 1, "id_last6": 2}))
    assert "phone" in error.message


def test_unknown_members_are_ignored():
    assert request_bodies.parse(VerificationCodeRequest, {"phone": "13800138000", "pad": "x"}).phone == "13800138000"


@pytest.mark.parametrize("body", [[], "x", 1, None, [GOOD]])
def test_a_body_must_be_an_object(body):
    error = _refusal(lambda: request_bodies.parse(QueryRequest, body))
    assert error.code == "INVALID_ARGUMENT" and "JSON 对象" in error.message


@pytest.mark.parametrize("value", [None, "", 42, "a b\x00", "x" * 257, "授权码", "a\n"])
def test_bad_auth_code(value):
    error = _refusal(lambda: request_bodies.parse(SessionRequest, {"auth_code": value}))
    assert error.code == "INVALID_ARGUMENT" and "auth_code" in error.message


def test_auth_code_accepted():
    form = request_bodies.parse(SessionRequest, {"auth_code": "4b203fe6c11548bcabd8da5bb087a83b"})
    assert form.auth_code.startswith("4b2")


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({}, "response"),
        ({"response": "x"}, "sign"),
        ({"response": "x", "sign": 5}, "sign"),
        ({"response": "x" * 4097, "sign": "y"}, "response"),
        ({"response": "x", "sign": "y", "encrypt_type": "RSA"}, "encrypt_type"),
        ({"response": "x", "sign": "y", "sign_type": None}, "sign_type"),
        ({"response": "x", "sign": "y", "charset": "utf-8"}, "charset"),
    ],
)
def test_bad_phone_authorisation(body, named):
    error = _refusal(lambda: request_bodies.parse(PhoneNumberRequest, body))
    assert error.code == "INVALID_ARGUMENT" and named in error.message and "手机号授权信息" in error.message


def test_phone_authorisation_with_alipays_own_options():
    body = {"response": "x", "sign": "y", "sign_type": "RSA2", "encrypt_type": "AES", "charset": "UTF-8"}
    assert request_bodies.parse(PhoneNumberRequest, body).response == "x"


def test_messages_name_every_field_of_every_model():
    for model in (SessionRequest, PhoneNumberRequest, VerificationCodeRequest, QueryRequest):
        # consent has no message: anything but true is CONSENT_REQUIRED
        assert set(model.messages) == set(model.model_fields) - {"consent"}, model.__name__


def test_a_refusal_carries_no_input():
    for body in ({"phone": "13800138000x"}, {"phone": 13800138000}):
        error = _refusal(lambda body=body: request_bodies.parse(VerificationCodeRequest, body))
        assert "13800138000" not in json.dumps(error.to_json(), ensure_ascii=False)
