"""The destination and text of a message, sealed with AES-GCM while the
message waits to be submitted. Both are personal data (a phone number; a
verification code or a person's account counts), so they are stored only
encrypted and deleted once no further submission can need them. The key id
stored beside the ciphertext lets the key rotate: old keys stay configured
until the queue has no message sealed with them."""

from __future__ import annotations

import base64
import json
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM


class SealError(ValueError):
    pass


def decode_key(value: str) -> bytes:
    """A 256-bit key from its base64 form."""
    try:
        key = base64.b64decode(value, validate=True)
    except ValueError:
        raise ValueError("not base64") from None
    if len(key) != 32:
        raise ValueError("must be 256 bits (32 bytes) in base64")
    return key


class Sealer:
    def __init__(self, keys: dict[str, bytes], current_key_id: str) -> None:
        if current_key_id not in keys:
            raise ValueError(f"no key for the current key id {current_key_id!r}")
        if any(len(key) != 32 for key in keys.values()):
            raise ValueError("data keys must be 256-bit")
        self._aead = {kid: AESGCM(key) for kid, key in keys.items()}
        self._current = current_key_id

    def seal(self, message_id: str, dest: str, text: str) -> dict:
        """Ciphertext bound to the message id (associated data), so it cannot
        be copied into another message's record and decrypted there."""
        nonce = os.urandom(12)
        plain = json.dumps({"dest": dest, "text": text}, ensure_ascii=False).encode()
        sealed = self._aead[self._current].encrypt(nonce, plain, message_id.encode())
        return {"kid": self._current, "ct": base64.b64encode(nonce + sealed).decode()}

    def open(self, message_id: str, box: dict) -> tuple[str, str]:
        """(dest, text); SealError if the key is unknown or the box was tampered with."""
        aead = self._aead.get(box.get("kid", ""))
        if aead is None:
            raise SealError(f"no key {box.get('kid')!r} configured")
        try:
            raw = base64.b64decode(box["ct"])
            plain = json.loads(aead.decrypt(raw[:12], raw[12:], message_id.encode()))
        except (InvalidTag, ValueError, KeyError):
            raise SealError("sealed fields do not decrypt") from None
        return plain["dest"], plain["text"]
