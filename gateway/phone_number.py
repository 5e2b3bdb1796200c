"""my.getPhoneNumber: the mobile number Alipay vouches for, taken from the
mini-program's signed and encrypted answer.

Alipay signs (RSA2) the `response` string with its surrounding double
quotes, as it stood in its own JSON, and encrypts the content with the
app's AES key: AES-CBC, a zero IV, PKCS#7 padding, base64. The signature is
checked before anything is decrypted, so nobody can probe the decryption
with altered ciphertexts (CBC without a MAC would allow a padding oracle).

Written on `cryptography`: alipay-sdk-python's AES helpers crash on Python 3
(they pass a str IV to the cipher), and its RSA check is pure Python.
"""

from __future__ import annotations

import base64
import binascii
import json
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, padding, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from yztc.errors import ServiceError
from yztc.identifiers import normalise_phone

_ZERO_IV = bytes(16)
SUCCESS = "10000"

# Messages for the person; 400 INVALID_ARGUMENT, not 401: the session is
# fine, the authorisation payload is what is wrong (and a 401 would send the
# mini-program back to log in).
NOT_ALIPAYS = "手机号授权信息无效，请重新授权或手动输入手机号码。"
NO_NUMBER = "未能从手机号授权信息中取得手机号码，请重新授权或手动输入。"
NOT_MAINLAND = "该支付宝账号绑定的不是中国大陆手机号码，请手动输入。"


def _invalid(message: str) -> ServiceError:
    return ServiceError("INVALID_ARGUMENT", detail=message)


class PhoneAuthorisation:
    def __init__(self, alipay_public_key_file: Path, aes_key: bytes) -> None:
        key = serialization.load_pem_public_key(alipay_public_key_file.read_bytes())
        if not isinstance(key, rsa.RSAPublicKey):
            raise ValueError("Alipay's public key must be an RSA key")
        self._alipay_key = key
        self._aes_key = aes_key

    def phone(self, response: str, sign: str) -> str:
        """The 11-digit mainland number in Alipay's answer; INVALID_ARGUMENT
        if the answer is not Alipay's, holds no number, or not a mainland one."""
        if not self._signed_by_alipay(response, sign):
            raise _invalid(NOT_ALIPAYS)
        # Alipay's rule: the content is encrypted unless it is plain JSON.
        content = response if response.startswith("{") else self._decrypt(response)
        try:
            answer = json.loads(content)
        except (ValueError, RecursionError):
            raise _invalid(NO_NUMBER) from None
        if not isinstance(answer, dict) or answer.get("code") != SUCCESS:
            raise _invalid(NO_NUMBER)  # e.g. the user did not authorise
        mobile = answer.get("mobile")
        if not isinstance(mobile, str) or not mobile:
            raise _invalid(NO_NUMBER)
        phone = normalise_phone(mobile) if mobile.isascii() else None
        if phone is None:
            raise _invalid(NOT_MAINLAND)
        return phone

    def _signed_by_alipay(self, response: str, sign: str) -> bool:
        try:
            signature = base64.b64decode(sign, validate=True)
            signed = f'"{response}"'.encode()
            self._alipay_key.verify(signature, signed, PKCS1v15(), hashes.SHA256())
        except (InvalidSignature, binascii.Error, ValueError, UnicodeEncodeError):
            return False
        return True

    def _decrypt(self, response: str) -> str:
        try:
            data = base64.b64decode(response, validate=True)
            if not data or len(data) % 16:
                raise ValueError("not whole AES blocks")
            decryptor = Cipher(algorithms.AES(self._aes_key), modes.CBC(_ZERO_IV)).decryptor()
            padded = decryptor.update(data) + decryptor.finalize()
            unpadder = padding.PKCS7(128).unpadder()
            return (unpadder.update(padded) + unpadder.finalize()).decode("utf-8")
        except (binascii.Error, ValueError):  # UnicodeDecodeError is a ValueError
            raise _invalid(NO_NUMBER) from None
