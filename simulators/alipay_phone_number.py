"""What my.getPhoneNumber hands the mini-program, made as Alipay makes it:
the content `{"code":"10000","msg":"Success","mobile":...}` AES-encrypted with
the app's content key (AES-CBC, zero IV, PKCS#7, base64) and signed RSA2 by
Alipay over the encrypted string *with* its surrounding double quotes.

Written on `cryptography` independently of the gateway's decryption, so the
tests check one implementation against another.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from simulators.alipay_signature import sign_rsa2

_ZERO_IV = bytes(16)

# What Alipay encrypts when the user allowed, and when the app may not have the number.
AUTHORISED = {"code": "10000", "msg": "Success"}
REFUSED = {
    "code": "40003",
    "msg": "Insufficient Conditions",
    "subCode": "isv.insufficient-isv-permissions",
    "subMsg": "ISV权限不足，建议在开发者中心检查对应功能是否已经添加",
}


def aes_key(text: str) -> bytes:
    """The app's AES content key from its base64 form; ValueError if it is none."""
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the Alipay AES key must be base64") from None
    if len(key) not in (16, 24, 32):
        raise ValueError("the Alipay AES key must be 128, 192 or 256 bits")
    return key


def encrypt_content(key: bytes, content: str) -> str:
    padder = padding.PKCS7(128).padder()
    padded = padder.update(content.encode("utf-8")) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(_ZERO_IV)).encryptor()
    return base64.b64encode(encryptor.update(padded) + encryptor.finalize()).decode("ascii")


def decrypt_content(key: bytes, response: str) -> str:
    decryptor = Cipher(algorithms.AES(key), modes.CBC(_ZERO_IV)).decryptor()
    padded = decryptor.update(base64.b64decode(response)) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    return (unpadder.update(padded) + unpadder.finalize()).decode("utf-8")


def payload(
    alipay_key: rsa.RSAPrivateKey, aes: bytes, mobile: str, *, refused: bool = False, tamper: bool = False
) -> dict[str, Any]:
    """The object my.getPhoneNumber gives the mini-program for `mobile`.

    `refused`: the content is Alipay's refusal (no number); `tamper`: the
    signature covers other text, as a forged payload's would."""
    content = dict(REFUSED) if refused else {**AUTHORISED, "mobile": mobile}
    response = encrypt_content(aes, json.dumps(content, ensure_ascii=False, separators=(",", ":")))
    signed = f'"{response}"'
    if tamper:
        signed = '"tampered' + signed[1:]
    return {
        "response": response,
        "sign": sign_rsa2(alipay_key, signed.encode("utf-8")),
        "sign_type": "RSA2",
        "encrypt_type": "AES",
        "charset": "UTF-8",
    }
