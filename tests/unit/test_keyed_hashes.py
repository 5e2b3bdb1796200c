"""yztc/keyed_hashes.py without I/O: every keyed hash names its key, and a
hash read back is compared under the key it names (review L6)."""

from __future__ import annotations

import base64

import pytest
from pydantic import SecretStr

from yztc.keyed_hashes import KeyedHasher, key_id_of

K1, K2 = b"1" * 32, b"2" * 32


def test_a_digest_names_its_key_and_depends_on_key_purpose_and_value():
    hasher = KeyedHasher({"h1": K1}, "h1")
    digest = hasher.digest("phone", "13800138000")
    assert key_id_of(digest) == "h1" and len(digest) == len("h1.") + 32
    assert digest != hasher.digest("code", "13800138000")
    assert digest != hasher.digest("phone", "13800138001")
    assert digest != KeyedHasher({"h1": K2}, "h1").digest("phone", "13800138000")


def test_a_stored_digest_is_compared_under_the_key_it_names():
    before = KeyedHasher({"h1": K1}, "h1").digest("requester", "u1")
    rotated = KeyedHasher({"h1": K1, "h2": K2}, "h2")
    assert rotated.digest("requester", "u1").startswith("h2.")
    assert rotated.digest_under(before, "requester", "u1") == before
    assert rotated.matches(before, "requester", "u1")
    assert not rotated.matches(before, "requester", "u2")
    assert not rotated.matches("", "requester", "u1")
    # A key no longer configured, or no key id at all: it matches nothing.
    assert not KeyedHasher({"h2": K2}, "h2").matches(before, "requester", "u1")
    assert not rotated.matches(before.partition(".")[2], "requester", "u1")
    assert rotated.all_digests("requester", "u1") == [rotated.digest("requester", "u1"), before]
    assert rotated.rotating and not KeyedHasher({"h1": K1}, "h1").rotating


@pytest.mark.parametrize("stored", ["", "abc", ".abc", "h 1.abc", "x" * 17 + ".abc"])
def test_key_id_of_a_value_of_no_such_form_is_empty(stored):
    assert key_id_of(stored) == ""


def test_keys_from_settings_are_checked_and_never_echoed():
    good = base64.b64encode(K1).decode()
    assert KeyedHasher.from_secrets({"h1": SecretStr(good)}, "h1").digest("p", "v").startswith("h1.")
    with pytest.raises(ValueError, match="'h1' is not base64") as refused:
        KeyedHasher.from_secrets({"h1": "not base64!"}, "h1")
    assert "not base64!" not in str(refused.value)
    with pytest.raises(ValueError, match="at least 256 bits"):
        KeyedHasher.from_secrets({"h1": base64.b64encode(b"short").decode()}, "h1")
    with pytest.raises(ValueError, match="current hash key id"):
        KeyedHasher.from_secrets({"h1": good}, "h2")
    with pytest.raises(ValueError, match="key id"):
        KeyedHasher.from_secrets({"h.1": good}, "h.1")


def test_development_keys_differ_per_service():
    gateway, aggregator = KeyedHasher.development("gateway"), KeyedHasher.development("aggregator")
    assert gateway.digest("p", "v") != aggregator.digest("p", "v")
