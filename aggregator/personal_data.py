"""How the phone number is kept: AES-GCM encrypted (to send the result SMS)
and an HMAC for look-ups and limits. Keys come from the environment; the
key id stored beside each ciphertext lets keys rotate."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM


class PhoneProtector:
    def __init__(self, enc_keys: dict[str, bytes], current_key_id: str, hash_key: bytes) -> None:
        if current_key_id not in enc_keys:
            raise ValueError("current phone key id has no key")
        for key in [*enc_keys.values(), hash_key]:
            if len(key) != 32:
                raise ValueError("phone keys must be 256-bit")
        self._keys = {kid: AESGCM(key) for kid, key in enc_keys.items()}
        self._current = current_key_id
        self._hash_key = hash_key

    def lookup_hash(self, phone: str) -> str:
        return hmac.new(self._hash_key, phone.encode(), hashlib.sha256).hexdigest()

    def encrypt(self, phone: str, context: str) -> dict:
        """Ciphertext bound to `context` (the query id), so it cannot be moved to another record."""
        nonce = os.urandom(12)
        sealed = self._keys[self._current].encrypt(nonce, phone.encode(), context.encode())
        return {"kid": self._current, "ct": base64.b64encode(nonce + sealed).decode()}

    def decrypt(self, box: dict, context: str) -> str:
        raw = base64.b64decode(box["ct"])
        return self._keys[box["kid"]].decrypt(raw[:12], raw[12:], context.encode()).decode()


def code_hash(hash_key: bytes, phone_hash: str, code: str) -> str:
    """A verification code is kept only as this keyed hash, bound to the phone."""
    return hmac.new(hash_key, f"code:{phone_hash}:{code}".encode(), hashlib.sha256).hexdigest()
