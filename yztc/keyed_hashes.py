"""Keyed hashes (HMAC-SHA-256) of what identifies a person, stored in place
of the value: the gateway's client addresses, Alipay user ids and session
ids; the aggregator's phone look-up hash, verification codes and requester
tags (security review L6; PIPL minimisation). Without the key a copy of the
database cannot be reversed by enumerating IPv4 addresses, phone numbers
or user ids.

Every keyed hash carries the id of its key ("k2.3f9c…", `digest`), so a key
can be rotated without forgetting what was counted under the one before:
during a rotation a service is given the new key as current and the old one
beside it, writes under the current one, and looks up under all of them
(`all_digests`), or under the key a stored hash names (`digest_under`).
Keys come from a secret per service, a JSON object {key id: base64 of at
least 32 random bytes} with the current key id beside it
(YZTC_GATEWAY_HASH_KEYS / _HASH_KEY_ID, YZTC_AGGREGATOR_HASH_KEYS /
_HASH_KEY_ID); docs/runbook.md, "Keyed-hash keys", says how to rotate.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Mapping

from pydantic import SecretStr

# A key id is short and plain: it is part of every stored hash.
KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,16}")
# Hex characters kept of the 256-bit MAC: 128 bits, collision-free for any
# realistic number of subjects, and short in every slot id.
DIGEST_CHARS = 32
# Used only where a service may run without a configured key, which
# production refuses at start (gateway.settings.GatewaySettings.production_refusals):
# tests and `make run` need no secret, and their hashes are not private.
DEVELOPMENT_KEY_ID = "dev"


class KeyedHasher:
    """HMAC-SHA-256 of (purpose, value) under the current key, "<key id>.<32 hex>".

    keys: {key id: key}, ids of 1-16 of [A-Za-z0-9_-], keys of at least 32
    bytes; current: the id written with. ValueError otherwise."""

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
    def from_secrets(cls, keys: Mapping[str, SecretStr | str], current: str) -> KeyedHasher:
        """From settings: {key id: base64 key}; ValueError naming the key id
        (never the key) when one is not base64."""
        decoded = {}
        for kid, value in keys.items():
            text = value.get_secret_value() if isinstance(value, SecretStr) else value
            try:
                decoded[kid] = base64.b64decode(text, validate=True)
            except (binascii.Error, ValueError):
                raise ValueError(f"hash key {kid!r} is not base64") from None
        return cls(decoded, current)

    @classmethod
    def development(cls, service: str) -> KeyedHasher:
        """A fixed key derived from the service's name, for development only."""
        key = hashlib.sha256(f"yztc {service} development hash key; never in production".encode()).digest()
        return cls({DEVELOPMENT_KEY_ID: key}, DEVELOPMENT_KEY_ID)

    def digest(self, purpose: str, value: str, key_id: str | None = None) -> str:
        """The keyed hash of `value` for `purpose` ("ip", "user", "phone", a
        rule name: one value gets unrelated hashes per purpose), under
        `key_id` (default: the current key; KeyError if not configured)."""
        kid = key_id or self.current
        mac = hmac.new(self._keys[kid], f"{purpose}\0{value}".encode(), hashlib.sha256)
        return f"{kid}.{mac.hexdigest()[:DIGEST_CHARS]}"

    def all_digests(self, purpose: str, value: str) -> list[str]:
        """`digest` under every configured key, the current one first: what
        a look-up during a rotation matches."""
        return [self.digest(purpose, value, kid) for kid in self.key_ids]

    def digest_under(self, stored: str, purpose: str, value: str) -> str:
        """`digest` under the key `stored` (a digest) was made with, to
        compare with it; under the current key when that one is no longer
        configured (so the two differ), or `stored` names no key ("": a
        new hash)."""
        kid = key_id_of(stored)
        return self.digest(purpose, value, kid if kid in self._keys else None)

    def matches(self, stored: str, purpose: str, value: str) -> bool:
        """Whether `stored` is the keyed hash of `value` for `purpose` under
        any configured key (constant-time comparison)."""
        return bool(stored) and hmac.compare_digest(stored, self.digest_under(stored, purpose, value))

    @property
    def rotating(self) -> bool:
        """More than one key configured: look-ups must try the previous ones too."""
        return len(self.key_ids) > 1


def made_under(key_id: str) -> dict:
    """A MongoDB filter value matching the keyed hashes made under `key_id`
    (a prefix regex: a scan, for clean-up and counts, never a request's path)."""
    return {"$regex": f"^{re.escape(key_id)}\\."}


def key_id_of(digest: str) -> str:
    """The key id a stored keyed hash names ("" for a value of no such form)."""
    kid, dot, _ = digest.partition(".")
    return kid if dot and KEY_ID.fullmatch(kid) else ""
