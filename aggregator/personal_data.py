"""How the phone number is kept: AES-GCM encrypted (to send the result SMS)
and a keyed hash for look-ups and limits (yztc.keyed_hashes: "<key id>.<hex>",
so either key can rotate without losing what is stored under the old one).
Keys come from the environment; the key id stored beside each ciphertext,
and inside each hash, says which key reads it."""

from __future__ import annotations

import base64
import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from yztc.keyed_hashes import KeyedHasher

# Purposes of the aggregator's keyed hashes (one value, unrelated hashes).
PHONE, CODE = "phone", "code"


class PhoneProtector:
    """enc_keys: {key id: 256-bit AES key}, current_key_id the one new
    ciphertexts use; hasher: the keyed hashes (its own key ids). ValueError
    for a key of another length or a current id with no key."""

    def __init__(self, enc_keys: dict[str, bytes], current_key_id: str, hasher: KeyedHasher) -> None:
        if current_key_id not in enc_keys:
            raise ValueError("current phone key id has no key")
        for key in enc_keys.values():
            if len(key) != 32:
                raise ValueError("phone keys must be 256-bit")
        self._keys = {kid: AESGCM(key) for kid, key in enc_keys.items()}
        self._current = current_key_id
        self.hasher = hasher

    def lookup_hash(self, phone: str) -> str:
        """The phone's keyed hash under the current key ("<kid>.<32 hex>"):
        the `_id` a new phone document and its claims are made under."""
        return self.hasher.digest(PHONE, phone)

    def lookup_hashes(self, phone: str) -> list[str]:
        """The phone's keyed hash under every configured key, the current
        one first: where an existing phone document may be (phone_store.read)."""
        return self.hasher.all_digests(PHONE, phone)

    def encrypt(self, phone: str, context: str) -> dict:
        """Ciphertext bound to `context` (the query id), so it cannot be moved to another record."""
        nonce = os.urandom(12)
        sealed = self._keys[self._current].encrypt(nonce, phone.encode(), context.encode())
        return {"kid": self._current, "ct": base64.b64encode(nonce + sealed).decode()}

    def decrypt(self, box: dict, context: str) -> str:
        raw = base64.b64decode(box["ct"])
        return self._keys[box["kid"]].decrypt(raw[:12], raw[12:], context.encode()).decode()


def code_hash(hasher: KeyedHasher, phone_hash: str, code: str, stored: str = "") -> str:
    """A verification code is kept only as this keyed hash, bound to the
    phone (its look-up hash). With `stored` (the hash kept of the phone's
    current code), under the key that one was made with, to compare with
    it; else under the current key."""
    return hasher.digest_under(stored, CODE, f"{phone_hash}:{code}")
