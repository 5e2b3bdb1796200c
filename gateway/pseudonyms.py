"""Keyed hashes (HMAC-SHA-256) of what identifies a person: client
addresses, Alipay user ids, session ids. They are what the gateway stores in
place of the values (rate-limit slot ids, the sessions' user field), so a
copy of the database cannot be reversed by enumerating IPv4 addresses or
user ids without the key (PIPL minimisation, review L6).

Every keyed hash carries the id of its key ("k2.3f9c…"), so the key can be
rotated without forgetting the limits counted under the previous one: during
a rotation the gateway is given the new key as current and the old one as
previous, writes under the current one, and looks up under both
(`all_digests`). Keys come from the secret `YZTC_GATEWAY_HASH_KEYS`
(a JSON object {key id: base64 of 32 random bytes}) and
`YZTC_GATEWAY_HASH_KEY_ID` (the current one); see docs/runbook.md.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping

# A key id is short and plain: it is part of every stored hash.
KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,16}")
# Hex characters kept of the 256-bit MAC: 128 bits, collision-free for any
# realistic number of subjects, and short in every slot id.
DIGEST_CHARS = 32
# Used only when no key is configured, which production refuses at start
# (gateway.settings.GatewaySettings.production_refusals): tests and
# `make run` need no secret, and their hashes are not private.
DEVELOPMENT_KEY_ID = "dev"
DEVELOPMENT_KEY = hashlib.sha256(b"yztc gateway development hash key; never in production").digest()


class KeyedHasher:
    """HMAC-SHA-256 of (purpose, value) under the current key, "<key id>.<32 hex>"."""

    def __init__(self, keys: Mapping[str, bytes], current: str) -> None:
        if current not in keys:
            raise ValueError("the current hash key id has no key")
        for kid, key in keys.items():
            if not KEY_ID.fullmatch(kid):
                raise ValueError("a hash key id is 1-16 letters, digits, '-' or '_'")
            if len(key) < 32:
                raise ValueError("a hash key is at least 256 bits")
        self._keys = dict(keys)
        self.current = current
        # The current key first: look-ups try the likeliest first.
        self.key_ids = (current, *sorted(k for k in keys if k != current))

    @classmethod
    def development(cls) -> KeyedHasher:
        return cls({DEVELOPMENT_KEY_ID: DEVELOPMENT_KEY}, DEVELOPMENT_KEY_ID)

    def digest(self, purpose: str, value: str, key_id: str | None = None) -> str:
        """The keyed hash of `value` for `purpose` ("ip", "user", "session",
        a rule name: one value gets unrelated hashes per purpose), under
        `key_id` (default: the current key)."""
        kid = key_id or self.current
        mac = hmac.new(self._keys[kid], f"{purpose}\0{value}".encode(), hashlib.sha256)
        return f"{kid}.{mac.hexdigest()[:DIGEST_CHARS]}"

    def all_digests(self, purpose: str, value: str) -> list[str]:
        """`digest` under every configured key, the current one first: what
        a look-up during a rotation matches."""
        return [self.digest(purpose, value, kid) for kid in self.key_ids]

    @property
    def rotating(self) -> bool:
        """More than one key configured: look-ups must try the previous ones too."""
        return len(self.key_ids) > 1
