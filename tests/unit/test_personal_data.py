import os

import pytest
from cryptography.exceptions import InvalidTag

from aggregator.personal_data import PhoneProtector, code_hash
from yztc.keyed_hashes import KeyedHasher

HASHER = KeyedHasher({"h1": b"h" * 32}, "h1")


def protector(**keys):
    keys = keys or {"k1": os.urandom(32)}
    return PhoneProtector(keys, next(iter(keys)), HASHER)


def test_phone_round_trips_and_is_not_in_the_box():
    p = protector()
    box = p.encrypt("13800138000", "q1")
    assert "13800138000" not in str(box)
    assert p.decrypt(box, "q1") == "13800138000"


def test_box_is_bound_to_its_record():
    p = protector()
    box = p.encrypt("13800138000", "q1")
    with pytest.raises(InvalidTag):
        p.decrypt(box, "q2")


def test_old_key_still_decrypts_after_rotation():
    old, new = os.urandom(32), os.urandom(32)
    box = PhoneProtector({"k1": old}, "k1", HASHER).encrypt("13800138000", "q")
    rotated = PhoneProtector({"k1": old, "k2": new}, "k2", HASHER)
    assert rotated.decrypt(box, "q") == "13800138000"
    assert rotated.encrypt("13800138000", "q")["kid"] == "k2"


def test_lookup_hash_is_keyed_and_stable():
    a = PhoneProtector({"k": os.urandom(32)}, "k", KeyedHasher({"h1": b"a" * 32}, "h1"))
    b = PhoneProtector({"k": os.urandom(32)}, "k", KeyedHasher({"h1": b"b" * 32}, "h1"))
    assert a.lookup_hash("13800138000") == a.lookup_hash("13800138000")
    assert a.lookup_hash("13800138000") != b.lookup_hash("13800138000")
    assert a.lookup_hash("13800138000").startswith("h1.") and "13800138000" not in a.lookup_hash("13800138000")


def test_lookup_hashes_name_every_key_the_current_first():
    """During a hash-key rotation a phone is looked for under each key (review L6)."""
    before = protector().lookup_hash("13800138000")
    rotated = PhoneProtector({"k1": os.urandom(32)}, "k1", KeyedHasher({"h1": b"h" * 32, "h2": b"n" * 32}, "h2"))
    hashes = rotated.lookup_hashes("13800138000")
    assert hashes[0] == rotated.lookup_hash("13800138000") and hashes[0].startswith("h2.")
    assert hashes[1:] == [before]


def test_code_hash_depends_on_phone_and_code():
    assert code_hash(HASHER, "p1", "123456") != code_hash(HASHER, "p2", "123456")
    assert code_hash(HASHER, "p1", "123456") != code_hash(HASHER, "p1", "123457")


def test_a_code_sent_before_a_key_rotation_is_checked_under_its_key():
    stored = code_hash(HASHER, "p1", "123456")
    rotated = KeyedHasher({"h1": b"h" * 32, "h2": b"n" * 32}, "h2")
    assert code_hash(rotated, "p1", "123456").startswith("h2.")
    assert code_hash(rotated, "p1", "123456", stored) == stored
    assert code_hash(rotated, "p1", "123457", stored) != stored


def test_short_keys_refused():
    with pytest.raises(ValueError):
        PhoneProtector({"k": b"short"}, "k", HASHER)
