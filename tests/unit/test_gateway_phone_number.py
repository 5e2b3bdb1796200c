"""my.getPhoneNumber payloads as the Alipay simulator makes them, checked
by the gateway's independent verification and decryption."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from devstack.secrets import rsa_pair
from gateway import request_bodies
from gateway.phone_number import NO_NUMBER, NOT_ALIPAYS, NOT_MAINLAND, PhoneAuthorisation
from gateway.request_bodies import PhoneNumberRequest
from simulators import alipay_phone_number
from simulators.alipay_signature import load_private_key, sign_rsa2
from yztc.errors import ServiceError

AES = bytes(range(16))


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("keys")
    alipay_private, alipay_public = rsa_pair(folder, "alipay")
    _, rogue_public = rsa_pair(folder, "rogue")
    return {"alipay_private": alipay_private, "alipay_public": alipay_public, "rogue_public": rogue_public}


@pytest.fixture(scope="module")
def alipay_key(keys) -> rsa.RSAPrivateKey:
    return load_private_key(keys["alipay_private"])


@pytest.fixture(scope="module")
def phones(keys) -> PhoneAuthorisation:
    return PhoneAuthorisation(keys["alipay_public"], AES)


def _refused(call, message: str) -> None:
    with pytest.raises(ServiceError) as caught:
        call()
    assert caught.value.code == "INVALID_ARGUMENT"
    assert caught.value.message == message


@pytest.mark.parametrize("mobile", ["13800138000", "8613800138000", "+8613800138000"])
def test_valid_payload_gives_the_normalised_number(phones, alipay_key, mobile):
    payload = alipay_phone_number.payload(alipay_key, AES, mobile)
    assert not payload["response"].startswith("{")  # encrypted
    assert phones.phone(payload["response"], payload["sign"]) == "13800138000"


@pytest.mark.parametrize("key_bytes", [16, 24, 32])
def test_every_aes_key_length(keys, alipay_key, key_bytes):
    aes = bytes(range(key_bytes))
    payload = alipay_phone_number.payload(alipay_key, aes, "19200192000")
    assert PhoneAuthorisation(keys["alipay_public"], aes).phone(payload["response"], payload["sign"]) == "19200192000"


def test_signature_over_the_unquoted_string_is_refused(phones, alipay_key):
    # Alipay signs the response with its quotes: a signature without them is not Alipay's.
    response = alipay_phone_number.encrypt_content(AES, '{"code":"10000","mobile":"13800138000"}')
    sign = sign_rsa2(alipay_key, response.encode())
    _refused(lambda response=response, sign=sign: phones.phone(response, sign), NOT_ALIPAYS)


def test_tampered_payloads_are_refused(phones, alipay_key):
    good = alipay_phone_number.payload(alipay_key, AES, "13800138000")
    forged = alipay_phone_number.payload(alipay_key, AES, "13800138000", tamper=True)
    other = alipay_phone_number.payload(alipay_key, AES, "13900139000")
    flipped = base64.b64decode(good["sign"])
    flipped = base64.b64encode(bytes([flipped[0] ^ 1]) + flipped[1:]).decode()
    for response, sign in (
        (forged["response"], forged["sign"]),
        (other["response"], good["sign"]),  # a signature of another payload
        (good["response"], flipped),
        (good["response"][:-4] + "AAAA", good["sign"]),
        (good["response"], "not base64!"),
        (good["response"], ""),
        ("中文", good["sign"]),
    ):
        _refused(lambda response=response, sign=sign: phones.phone(response, sign), NOT_ALIPAYS)


def test_payload_signed_by_another_key_is_refused(keys, alipay_key):
    payload = alipay_phone_number.payload(alipay_key, AES, "13800138000")
    phones = PhoneAuthorisation(keys["rogue_public"], AES)
    _refused(lambda: phones.phone(payload["response"], payload["sign"]), NOT_ALIPAYS)


def _signed(alipay_key, response: str) -> tuple[str, str]:
    return response, sign_rsa2(alipay_key, f'"{response}"'.encode())


def test_signed_but_undecryptable_content_has_no_number(phones, alipay_key):
    other_key = alipay_phone_number.payload(alipay_key, bytes(16), "13800138000")  # another app's AES key
    for response, sign in (
        (other_key["response"], other_key["sign"]),
        _signed(alipay_key, "AAAA"),  # not whole blocks
        _signed(alipay_key, "@@@@"),  # not base64
        _signed(alipay_key, alipay_phone_number.encrypt_content(AES, "not json")),
        _signed(alipay_key, alipay_phone_number.encrypt_content(AES, '["10000"]')),
        _signed(alipay_key, alipay_phone_number.encrypt_content(AES, '{"code":"10000"}')),
        _signed(alipay_key, alipay_phone_number.encrypt_content(AES, '{"code":"10000","mobile":13800138000}')),
    ):
        _refused(lambda response=response, sign=sign: phones.phone(response, sign), NO_NUMBER)


def test_refusal_by_alipay_has_no_number(phones, alipay_key):
    payload = alipay_phone_number.payload(alipay_key, AES, "13800138000", refused=True)
    content = json.loads(alipay_phone_number.decrypt_content(AES, payload["response"]))
    assert content["code"] == "40003" and "mobile" not in content
    _refused(lambda: phones.phone(payload["response"], payload["sign"]), NO_NUMBER)


@pytest.mark.parametrize("mobile", ["85291234567", "12800138000", "1380013800", "１3800138000"])
def test_number_that_is_not_a_mainland_mobile(phones, alipay_key, mobile):
    response, sign = _signed(
        alipay_key, alipay_phone_number.encrypt_content(AES, json.dumps({"code": "10000", "mobile": mobile}))
    )
    _refused(lambda: phones.phone(response, sign), NOT_MAINLAND)


def test_unencrypted_content_is_taken_when_signed(phones, alipay_key):
    # Alipay's rule: content starting with "{" is plain (an app without an AES key).
    response, sign = _signed(alipay_key, '{"code":"10000","msg":"Success","mobile":"13300133000"}')
    assert phones.phone(response, sign) == "13300133000"


def test_error_messages_never_echo_the_payload(phones, alipay_key):
    payload = alipay_phone_number.payload(alipay_key, AES, "13800138000", tamper=True)
    with pytest.raises(ServiceError) as caught:
        phones.phone(payload["response"], payload["sign"])
    text = json.dumps(caught.value.to_json(), ensure_ascii=False)
    assert payload["response"] not in text and "13800138000" not in text


# -- the request body -------------------------------------------------------------


def test_body_with_alipays_fields_is_taken():
    body = {"response": "abc", "sign": "def", "sign_type": "RSA2", "encrypt_type": "AES", "charset": "UTF-8"}
    form = request_bodies.parse(PhoneNumberRequest, body)
    assert (form.response, form.sign) == ("abc", "def")
    assert request_bodies.parse(PhoneNumberRequest, {"response": "abc", "sign": "def"}).sign == "def"


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"response": "abc"},
        {"sign": "abc"},
        {"response": "", "sign": "x"},
        {"response": 1, "sign": "x"},
        {"response": "x", "sign": ["x"]},
        {"response": "x" * 4097, "sign": "x"},
        {"response": "x", "sign": "x" * 1025},
        {"response": "x", "sign": "x", "sign_type": "RSA"},
        {"response": "x", "sign": "x", "sign_type": None},
        {"response": "x", "sign": "x", "encrypt_type": "DES"},
        {"response": "x", "sign": "x", "charset": "GBK"},
    ],
)
def test_malformed_body_is_invalid_argument(body):
    with pytest.raises(ServiceError) as caught:
        request_bodies.parse(PhoneNumberRequest, body)
    assert caught.value.code == "INVALID_ARGUMENT"
