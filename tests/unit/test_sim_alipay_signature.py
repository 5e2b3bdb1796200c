"""RSA2 signing as the Alipay simulator does it, checked against alipay-sdk-python."""

from __future__ import annotations

from pathlib import Path

import pytest
from alipay.aop.api.util.SignatureUtils import get_sign_content, sign_with_rsa2, verify_with_rsa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from simulators.alipay_signature import load_private_key, load_public_key, sign_content, sign_rsa2, verify_rsa2

PARAMS = {
    "app_id": "2021000000000001",
    "method": "alipay.system.oauth.token",
    "charset": "utf-8",
    "format": "json",
    "sign_type": "RSA2",
    "timestamp": "2024-05-01 12:00:00",
    "version": "1.0",
    "grant_type": "authorization_code",
    "code": "中文 & =",
}


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _body(pem: bytes) -> str:
    return "".join(line for line in pem.decode().splitlines() if not line.startswith("-----"))


def _pkcs1(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )


def _spki(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def test_sign_content_matches_the_sdk_and_leaves_out_sign_and_empty_values() -> None:
    assert sign_content(PARAMS) == get_sign_content(PARAMS)
    assert sign_content({**PARAMS, "sign": "xyz", "notify_url": ""}) == get_sign_content(PARAMS)
    assert sign_content({"b": "2", "a": "1"}) == "a=1&b=2"


def test_sdk_signature_verifies_here_and_ours_verifies_in_the_sdk(key: rsa.RSAPrivateKey) -> None:
    content = sign_content(PARAMS).encode("utf-8")
    sdk_sign = sign_with_rsa2(_body(_pkcs1(key)), sign_content(PARAMS), "utf-8")
    assert verify_rsa2(key.public_key(), content, sdk_sign)
    assert verify_with_rsa(_body(_spki(key)), content, sign_rsa2(key, content))
    assert not verify_rsa2(key.public_key(), content + b"x", sdk_sign)
    assert not verify_rsa2(key.public_key(), content, "not base64!")


def test_keys_load_from_file_pem_text_or_bare_body(key: rsa.RSAPrivateKey, tmp_path: Path) -> None:
    spki, pkcs1 = _spki(key), _pkcs1(key)
    (tmp_path / "pub.pem").write_bytes(spki)
    (tmp_path / "priv.pem").write_bytes(pkcs1)
    expected = key.public_key().public_numbers()
    for source in (tmp_path / "pub.pem", str(tmp_path / "pub.pem"), spki.decode(), _body(spki)):
        assert load_public_key(source).public_numbers() == expected
    for source in (tmp_path / "priv.pem", pkcs1.decode(), _body(pkcs1)):
        assert load_private_key(source).private_numbers() == key.private_numbers()
