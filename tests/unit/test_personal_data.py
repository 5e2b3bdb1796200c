import os

import pytest
from cryptography.exceptions import InvalidTag

from aggregator.personal_data import PhoneProtector, code_hash


def protector(**keys):
    keys = keys or {"k1": os.urandom(32)}
    return PhoneProtector(keys, next(iter(keys)), b"h" * 32)


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
    box = PhoneProtector({"k1": old}, "k1", b"h" * 32).encrypt("13800138000", "q")
    rotated = PhoneProtector({"k1": old, "k2": new}, "k2", b"h" * 32)
    assert rotated.decrypt(box, "q") == "13800138000"
    assert rotated.encrypt("13800138000", "q")["kid"] == "k2"


def test_lookup_hash_is_keyed_and_stable():
    a = PhoneProtector({"k": os.urandom(32)}, "k", b"a" * 32)
    b = PhoneProtector({"k": os.urandom(32)}, "k", b"b" * 32)
    assert a.lookup_hash("13800138000") == a.lookup_hash("13800138000")
    assert a.lookup_hash("13800138000") != b.lookup_hash("13800138000")


def test_code_hash_depends_on_phone_and_code():
    assert code_hash(b"k" * 32, "p1", "123456") != code_hash(b"k" * 32, "p2", "123456")
    assert code_hash(b"k" * 32, "p1", "123456") != code_hash(b"k" * 32, "p1", "123457")


def test_short_keys_refused():
    with pytest.raises(ValueError):
        PhoneProtector({"k": b"short"}, "k", b"h" * 32)
